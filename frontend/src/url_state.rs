//! What a shared link carries, in the page URL so a link shows exactly what its sender saw: the
//! filter, the Service whose balance is shown, the window brushed on the timeline (`from`, `to`
//! in µs; none = live), the selected record (`sel`), whether probes are hidden (`probes=hide`).
//! Together they are the view a saved session restores (`all`); a link's own `exp`, `sig` and
//! `link` are not part of it.

use wasm_bindgen::JsValue;

fn search_params() -> Option<web_sys::UrlSearchParams> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()
}

/// A query parameter of the page URL.
pub fn param(name: &str) -> Option<String> {
    search_params()?.get(name)
}

/// A numeric query parameter (times in µs, record ids).
pub fn param_u64(name: &str) -> Option<u64> {
    param(name)?.parse().ok()
}

/// Writes `name=value` into the URL (removes it when empty) without a reload or a new history
/// entry: the filter, the Service whose balance is shown.
pub fn set_param(name: &str, value: &str) {
    let Some(window) = web_sys::window() else { return };
    let Some(params) = search_params() else { return };
    if value.is_empty() {
        params.delete(name);
    } else {
        params.set(name, value);
    }
    let query = String::from(params.to_string());
    let path = window.location().pathname().unwrap_or_else(|_| "/".into());
    let url = if query.is_empty() { path } else { format!("{path}?{query}") };
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url));
    }
}

/// Parameters that belong to the link, not to the view.
const LINK_PARAMS: [&str; 5] = ["exp", "sig", "link", "session", "token"];

/// The page's view: every URL parameter but the link's.
pub fn all() -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    if let Some(params) = search_params() {
        let entries = js_sys::try_iter(&params).ok().flatten();
        for entry in entries.into_iter().flatten().flatten() {
            let pair = js_sys::Array::from(&entry);
            if let (Some(k), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string())
                && !LINK_PARAMS.contains(&k.as_str())
            {
                out.insert(k, v);
            }
        }
    }
    out
}

/// Writes a saved view into the URL where the URL does not say otherwise (opening a session).
pub fn restore(view: &std::collections::BTreeMap<String, String>) {
    for (k, v) in view {
        if !LINK_PARAMS.contains(&k.as_str()) && param(k).is_none() {
            set_param(k, v);
        }
    }
}
