//! REST calls the app makes besides the stream: today the map for a filter, which the server
//! computes over everything it retains (the browser keeps only recent records, so it could not).

use podtap_shared::ServiceMap;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// `GET /api/v1/map?filter=…`; the error is a sentence for the page.
pub async fn fetch_map(filter: &str) -> Result<ServiceMap, String> {
    let window = web_sys::window().ok_or("no window")?;
    let mut url = format!("/api/v1/map?filter={}", String::from(js_sys::encode_uri_component(filter)));
    if let Some(token) = crate::url_state::param("token") {
        url.push_str(&format!("&token={}", String::from(js_sys::encode_uri_component(&token))));
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
    serde_json::from_str(&text).map_err(|e| format!("unreadable map: {e}"))
}
