//! The `postMessage` API of an embedded podtap (documented in docs/CONTRACTS.md). The portal
//! sends `podtap:setFilter {filter}`, `podtap:setWindow {from, to}` (µs; both null: live) and
//! `podtap:select {id}` (null: none); podtap answers `podtap:ready {view, version, scope}` once
//! and `podtap:selected {id, record}` whenever the selection changes. Only messages from podtap's
//! own origin and the `--embed-origin`s are read, and podtap posts only to those origins (a
//! message for another origin is dropped by the browser), so no other page learns anything.

use leptos::prelude::*;
use podtap_shared::Record;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::api::Span;

/// The version of the message API.
pub const VERSION: u32 = 1;

/// What a portal's messages may set.
#[derive(Clone, Copy)]
pub struct Handles {
    pub filter: RwSignal<String>,
    pub window: RwSignal<Option<Span>>,
    pub selected: RwSignal<Option<u64>>,
}

fn own_origin() -> String {
    web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default()
}

fn field(data: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(data, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

fn number(v: &JsValue) -> Option<u64> {
    v.as_f64().filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64)
}

/// Reads the portal's messages into the page's signals.
pub fn listen(h: Handles, allowed: Vec<String>) {
    let Some(window) = web_sys::window() else { return };
    let own = own_origin();
    let on_message = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        let origin = e.origin();
        if origin != own && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&origin)) {
            return;
        }
        let data = e.data();
        match field(&data, "type").as_string().as_deref() {
            Some("podtap:setFilter") => h.filter.set(field(&data, "filter").as_string().unwrap_or_default()),
            Some("podtap:setWindow") => {
                let span = match (number(&field(&data, "from")), number(&field(&data, "to"))) {
                    (Some(from), Some(to)) if from < to => Some(Span { from, to }),
                    _ => None,
                };
                h.window.set(span);
            }
            Some("podtap:select") => h.selected.set(number(&field(&data, "id"))),
            _ => {}
        }
    });
    let _ = window.add_event_listener_with_callback("message", on_message.as_ref().unchecked_ref());
    on_message.forget(); // for the page's life
}

/// Posts `message` to the embedding page, if there is one, at each allowed origin.
pub fn post(message: &serde_json::Value, allowed: &[String]) {
    let Some(window) = web_sys::window() else { return };
    let Ok(Some(parent)) = window.parent() else { return };
    if parent == window {
        return; // not embedded
    }
    let Ok(value) = js_sys::JSON::parse(&message.to_string()) else { return };
    let own = own_origin();
    for origin in allowed.iter().chain(std::iter::once(&own)) {
        let _ = parent.post_message(&value, origin);
    }
}

/// `podtap:ready`.
pub fn ready(view: &str, scope: &str, allowed: &[String]) {
    post(&serde_json::json!({ "type": "podtap:ready", "view": view, "version": VERSION, "scope": scope }), allowed);
}

/// `podtap:selected`, with the record when the page holds it.
pub fn selected(id: Option<u64>, record: Option<&Record>, allowed: &[String]) {
    let record = record.and_then(|r| serde_json::to_value(r).ok()).unwrap_or(serde_json::Value::Null);
    post(&serde_json::json!({ "type": "podtap:selected", "id": id, "record": record }), allowed);
}
