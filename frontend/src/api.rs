//! REST calls the app makes besides the stream: everything about a chosen window (map, balance,
//! its records page by page, the overview strip), one record, one connection, and the Services to
//! pick from.

use podtap_shared::{Balance, Record, ServiceMap};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// A time window in µs since the epoch, `from ≤ ts ≤ to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub from: u64,
    pub to: u64,
}

impl Span {
    fn query(span: Option<Span>) -> String {
        span.map(|s| format!("&from={}&to={}", s.from, s.to)).unwrap_or_default()
    }
}

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

/// `GET /api/v1/map?filter=…&from=…&to=…`.
pub async fn fetch_map(filter: &str, span: Option<Span>) -> Result<ServiceMap, String> {
    get_json(&format!("/api/v1/map?filter={}{}", encode(filter), Span::query(span))).await
}

/// `GET /api/v1/services/{ns}/{name}/balance` for `ns/name`.
pub async fn fetch_balance(service: &str, span: Option<Span>) -> Result<Balance, String> {
    let (namespace, name) = service.split_once('/').ok_or("a Service is named ns/name")?;
    let q = Span::query(span);
    get_json(&format!("/api/v1/services/{}/{}/balance?{}", encode(namespace), encode(name), q.trim_start_matches('&')))
        .await
}

/// `GET /api/v1/services`: every Service's balance, most skewed first.
pub async fn fetch_services(span: Option<Span>) -> Result<Vec<Balance>, String> {
    get_json(&format!("/api/v1/services?{}", Span::query(span).trim_start_matches('&'))).await
}

#[derive(Deserialize)]
struct Page {
    records: Vec<Record>,
    next: Option<String>,
}

/// Every record of the window that matches (requests and connections), up to `cap`, fetched a
/// page at a time; and whether the cap cut it short.
pub async fn fetch_window(filter: &str, span: Span, cap: usize) -> Result<(Vec<Record>, bool), String> {
    let mut all = Vec::new();
    let mut cursor = String::from("0.0");
    loop {
        let page: Page = get_json(&format!(
            "/api/v1/records?kind=all&limit=10000&filter={}&from={}&to={}&cursor={cursor}",
            encode(filter),
            span.from,
            span.to
        ))
        .await?;
        all.extend(page.records);
        match page.next {
            Some(next) if all.len() < cap => cursor = next,
            Some(_) => return Ok((all, true)),
            None => return Ok((all, false)),
        }
    }
}

/// `GET /api/v1/records/{id}`.
pub async fn fetch_record(id: u64) -> Result<Record, String> {
    get_json(&format!("/api/v1/records/{id}")).await
}

/// A connection and its requests, as `GET /api/v1/connections/{conn}` answers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Connection {
    pub conn: u64,
    pub connection: Option<Record>,
    pub requests: Vec<Record>,
}

pub async fn fetch_connection(conn: u64) -> Result<Connection, String> {
    get_json(&format!("/api/v1/connections/{conn}")).await
}

/// One step of the overview strip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Bucket {
    pub ts: u64,
    pub requests: u64,
    pub errors: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Overview {
    pub from: u64,
    pub to: u64,
    pub step_us: u64,
    pub buckets: Vec<Bucket>,
}

/// `GET /api/v1/timeline?filter=…`: requests and errors per step over everything retained.
pub async fn fetch_overview(filter: &str) -> Result<Overview, String> {
    get_json(&format!("/api/v1/timeline?filter={}", encode(filter))).await
}
