//! REST calls the app makes besides the stream: everything about a chosen window (map, balance,
//! its records page by page, the overview strip), one record, one connection, the Services to
//! pick from; what the page may see (`access`), saving sessions and links, and exports. URLs come
//! from `Page`: under the mount path, for the live store or the page's session, with its link.

pub use podtap_shared::{Access, PacketsInfo, SessionMeta, SharedLink};
use podtap_shared::{Balance, Record, ServiceMap};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::page::Page;

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

pub fn encode(s: &str) -> String {
    crate::page::enc(s)
}

/// An answer that was not a success: its status and its sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub message: String,
    /// Where to sign in with the organisation's identity, when podtap offers it (a 401's
    /// `sign_in`).
    pub sign_in: Option<String>,
}

async fn fetch(url: &str, init: Option<&web_sys::RequestInit>) -> Result<String, Refused> {
    let unreachable = |m: &str| Refused { status: 0, message: m.to_string(), sign_in: None };
    let window = web_sys::window().ok_or_else(|| unreachable("no window"))?;
    let promise = match init {
        Some(init) => window.fetch_with_str_and_init(url, init),
        None => window.fetch_with_str(url),
    };
    let response = JsFuture::from(promise).await.map_err(|_| unreachable("the server did not answer"))?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| unreachable("not an HTTP response"))?;
    let text = JsFuture::from(response.text().map_err(|_| unreachable("no body"))?)
        .await
        .map_err(|_| unreachable("the body did not arrive"))?;
    let text = text.as_string().unwrap_or_default();
    if !response.ok() {
        let body = serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default();
        let field = |name: &str| body.get(name).and_then(|e| e.as_str()).map(str::to_string);
        let status = response.status();
        let message = field("error").unwrap_or_else(|| format!("HTTP {status}"));
        return Err(Refused { status, message, sign_in: field("sign_in") });
    }
    Ok(text)
}

/// GET `url` (made by `Page`) as JSON; the error is a sentence for the page.
async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, String> {
    let text = fetch(url, None).await.map_err(|r| r.message)?;
    serde_json::from_str(&text).map_err(|e| format!("unreadable answer: {e}"))
}

/// POST `body` as JSON to `url`.
pub async fn post_json<T: DeserializeOwned>(url: &str, body: &serde_json::Value) -> Result<T, String> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&wasm_bindgen::JsValue::from_str(&body.to_string()));
    let headers = web_sys::Headers::new().map_err(|_| "no headers")?;
    headers.set("content-type", "application/json").map_err(|_| "no headers")?;
    init.set_headers(&headers);
    let text = fetch(url, Some(&init)).await.map_err(|r| r.message)?;
    serde_json::from_str(&text).map_err(|e| format!("unreadable answer: {e}"))
}

fn data(path_and_query: &str) -> String {
    Page::get().data_url(path_and_query)
}

/// `GET /api/v1/access`: what this page may see — or why it may see nothing (401: sign in;
/// 403/410: the link grants nothing).
pub async fn fetch_access() -> Result<Access, Refused> {
    let page = Page::get();
    let query = match (&page.session, &page.link) {
        (Some(id), None) => format!("access?session={}", encode(id)),
        _ => "access".to_string(),
    };
    let text = fetch(&page.api_url(&query), None).await?;
    serde_json::from_str(&text).map_err(|e| Refused {
        status: 0,
        message: format!("unreadable answer: {e}"),
        sign_in: None,
    })
}

/// `POST /api/v1/sessions`: saves the window (or everything retained) under the filter, with the
/// page's view, and signs a link valid for `ttl_s`.
pub async fn save_session(
    span: Option<Span>,
    filter: &str,
    view: &std::collections::BTreeMap<String, String>,
    ttl_s: u64,
    title: &str,
) -> Result<SharedLink, String> {
    let mut body = serde_json::json!({ "filter": filter, "ttl_s": ttl_s, "view": view, "title": title });
    if let Some(s) = span {
        body["from"] = s.from.into();
        body["to"] = s.to.into();
    }
    post_json(&Page::get().api_url("sessions"), &body).await
}

/// `GET /api/v1/sessions`: every saved session, oldest first.
pub async fn fetch_sessions() -> Result<Vec<SessionMeta>, String> {
    get_json(&Page::get().api_url("sessions")).await
}

/// `POST /api/v1/sessions/{id}/links`: a new link to a saved session.
pub async fn link_session(id: &str, ttl_s: u64) -> Result<SharedLink, String> {
    post_json(&Page::get().api_url(&format!("sessions/{}/links", encode(id))), &serde_json::json!({ "ttl_s": ttl_s }))
        .await
}

/// `DELETE /api/v1/sessions/{id}` (its links stop working).
pub async fn delete_session(id: &str) -> Result<(), String> {
    let init = web_sys::RequestInit::new();
    init.set_method("DELETE");
    fetch(&Page::get().api_url(&format!("sessions/{}", encode(id))), Some(&init))
        .await
        .map(|_| ())
        .map_err(|r| r.message)
}

/// `POST /api/v1/links`: a link to the live view under `filter`.
pub async fn make_live_link(filter: &str, ttl_s: u64) -> Result<SharedLink, String> {
    post_json(&Page::get().api_url("links"), &serde_json::json!({ "filter": filter, "ttl_s": ttl_s })).await
}

/// The query of an export or its packets, for a window (or everything) under a filter.
pub fn export_query(filter: &str, span: Option<Span>, conn: Option<u64>) -> String {
    let conn = conn.map(|c| format!("&conn={c}")).unwrap_or_default();
    format!("filter={}{}{conn}", encode(filter), Span::query(span))
}

pub async fn fetch_packets(query: &str) -> Result<PacketsInfo, String> {
    get_json(&data(&format!("packets?{query}"))).await
}

/// The URL a download link points at.
pub fn export_url(format: &str, query: &str) -> String {
    data(&format!("export?format={format}&{query}"))
}

/// `GET /api/v1/map?filter=…&from=…&to=…`.
pub async fn fetch_map(filter: &str, span: Option<Span>) -> Result<ServiceMap, String> {
    get_json(&data(&format!("map?filter={}{}", encode(filter), Span::query(span)))).await
}

/// `GET /api/v1/services/{ns}/{name}/balance` for `ns/name`.
pub async fn fetch_balance(service: &str, span: Option<Span>) -> Result<Balance, String> {
    let (namespace, name) = service.split_once('/').ok_or("a Service is named ns/name")?;
    let q = Span::query(span);
    get_json(&data(&format!("services/{}/{}/balance?{}", encode(namespace), encode(name), q.trim_start_matches('&'))))
        .await
}

/// `GET /api/v1/services`: every Service's balance, most skewed first.
pub async fn fetch_services(span: Option<Span>) -> Result<Vec<Balance>, String> {
    get_json(&data(&format!("services?{}", Span::query(span).trim_start_matches('&')))).await
}

#[derive(Deserialize)]
struct RecordsPage {
    records: Vec<Record>,
    next: Option<String>,
}

/// Every record of the window that matches (requests and connections), up to `cap`, fetched a
/// page at a time; and whether the cap cut it short.
pub async fn fetch_window(filter: &str, span: Span, cap: usize) -> Result<(Vec<Record>, bool), String> {
    let mut all = Vec::new();
    let mut cursor = String::from("0.0");
    loop {
        let page: RecordsPage = get_json(&data(&format!(
            "records?kind=all&limit=10000&filter={}&from={}&to={}&cursor={cursor}",
            encode(filter),
            span.from,
            span.to
        )))
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
    get_json(&data(&format!("records/{id}"))).await
}

/// A connection and its requests, as `GET /api/v1/connections/{conn}` answers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Connection {
    pub conn: u64,
    pub connection: Option<Record>,
    pub requests: Vec<Record>,
}

pub async fn fetch_connection(conn: u64) -> Result<Connection, String> {
    get_json(&data(&format!("connections/{conn}"))).await
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
    get_json(&data(&format!("timeline?filter={}", encode(filter)))).await
}

/// `GET /healthz`: what the capture saw (drops, gaps, responses without a request) and the span
/// the store holds, for the map's quality bar and its rates.
pub async fn fetch_health() -> Result<crate::map::quality::Health, String> {
    get_json(&format!("{}healthz", Page::get().base)).await
}

/// One edge in full, as `GET /api/v1/edge` answers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct EdgeDetail {
    pub edge: podtap_shared::MapEdge,
    pub complete: bool,
    pub timeline: Overview,
    /// Into a database or a broker: per operation, the busiest first.
    #[serde(default)]
    pub operations: Vec<podtap_shared::OperationStats>,
    #[serde(default)]
    pub more_operations: usize,
}

/// `GET /api/v1/edge?source=…&target=…`: exact numbers and requests per step of one edge at any
/// folding (`*` for either end).
pub async fn fetch_edge(source: &str, target: &str, filter: &str, span: Option<Span>) -> Result<EdgeDetail, String> {
    get_json(&data(&format!(
        "edge?source={}&target={}&filter={}{}",
        encode(source),
        encode(target),
        encode(filter),
        Span::query(span)
    )))
    .await
}
