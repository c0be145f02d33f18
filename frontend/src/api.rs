//! REST calls the app makes besides the stream: the map for a filter, which the server computes
//! over everything it retains (the browser keeps only recent records, so it could not), and a
//! Service's replica balance.

use podtap_shared::{Balance, ServiceMap};
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

fn encode(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}

/// GET `path_and_query` (with the page's token, if any) as JSON; the error is a sentence for the page.
async fn get_json<T: DeserializeOwned>(path_and_query: &str) -> Result<T, String> {
    let window = web_sys::window().ok_or("no window")?;
    let mut url = path_and_query.to_string();
    if let Some(token) = crate::url_state::param("token") {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("token={}", encode(&token)));
    }
    let response = JsFuture::from(window.fetch_with_str(&url)).await.map_err(|_| "the server did not answer")?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| "not an HTTP response")?;
    let text = JsFuture::from(response.text().map_err(|_| "no body")?).await.map_err(|_| "the body did not arrive")?;
    let text = text.as_string().unwrap_or_default();
    if !response.ok() {
        let error: Option<String> = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string));
        return Err(error.unwrap_or_else(|| format!("HTTP {}", response.status())));
    }
    serde_json::from_str(&text).map_err(|e| format!("unreadable answer: {e}"))
}

/// `GET /api/v1/map?filter=…`.
pub async fn fetch_map(filter: &str) -> Result<ServiceMap, String> {
    get_json(&format!("/api/v1/map?filter={}", encode(filter))).await
}

/// `GET /api/v1/services/{ns}/{name}/balance` for `ns/name`.
pub async fn fetch_balance(service: &str) -> Result<Balance, String> {
    let (namespace, name) = service.split_once('/').ok_or("a Service is named ns/name")?;
    get_json(&format!("/api/v1/services/{}/{}/balance", encode(namespace), encode(name))).await
}
