//! The REST API: `/healthz`; windowed (`from`, `to`, `filter`) `/api/v1/records` (paged),
//! `/api/v1/map`, `/api/v1/services[/{ns}/{name}/balance]`, `/api/v1/timeline`; one record
//! `/api/v1/records/{id}`, one connection `/api/v1/connections/{conn}`. Errors are JSON with one
//! sentence and never carry internals.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use podtap_shared::{Filter, Record, ServiceMap};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::access::{Refusal, Sight};
use crate::aggregate::balance::Balance;
use crate::capture::live::LiveStats;
use crate::packets::{Found, Wanted};
use crate::publish::hub::{ClusterStatus, Hub};
use crate::store::{Bucket, Connection, Cursor, Kinds, Lens, STEP_US, StoreStats, Window};
pub use crate::store::{Data, RemotePackets, find_packets};
use crate::timespec;

/// Largest `limit` accepted by `/api/v1/records`.
pub const MAX_LIMIT: usize = 10_000;

/// API errors as the client sees them.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What access refused: no token, a link that grants nothing here, or has expired.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Session storage refused (full, failed).
    #[error("{0}")]
    Storage(String),
    #[error("no session {0}")]
    NoSuchSession(String),
    /// Packets asked for that are not kept.
    #[error("{0}")]
    NotRetained(String),
    /// A query parameter is out of range.
    #[error("{0}")]
    BadRequest(String),
    /// No such API route.
    #[error("no such API endpoint")]
    NotFound,
    /// A Service neither the cluster state nor the traffic knows.
    #[error("no Service {0} in the cluster state or the traffic")]
    NoSuchService(String),
    #[error("no record {0} is retained")]
    NoSuchRecord(u64),
    #[error("no connection {0} is retained")]
    NoSuchConnection(u64),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Refused(Refusal::Unauthorized | Refusal::Invalid(_)) => StatusCode::UNAUTHORIZED,
            ApiError::Refused(Refusal::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused(Refusal::Forbidden(_)) => StatusCode::FORBIDDEN,
            ApiError::Refused(Refusal::Expired(_)) => StatusCode::GONE,
            ApiError::Refused(Refusal::Storage(_)) | ApiError::Storage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound
            | ApiError::NoSuchService(_)
            | ApiError::NoSuchRecord(_)
            | ApiError::NoSuchConnection(_)
            | ApiError::NoSuchSession(_)
            | ApiError::NotRetained(_) => StatusCode::NOT_FOUND,
        };
        (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}

#[derive(Serialize)]
pub struct Health {
    pub status: &'static str,
    pub source: String,
    pub records: u64,
    /// Live capture only: kernel counters per interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<LiveStats>,
    /// Where names come from and whether they are loaded.
    pub cluster: ClusterStatus,
    /// Where the browser app is served from: `embedded`, a directory, or `not built`.
    pub app: String,
    /// What the store holds: records, their time span, evictions.
    pub store: StoreStats,
    /// `wall`, or `capture` for a capture replayed on its own time axis.
    pub clock: podtap_shared::Clock,
    /// `podtap hub`: every node's agent, connected or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<podtap_shared::AgentStatus>>,
    /// What the capture saw and the engine made of it: `podtap hub`'s agents summed, or
    /// `serve`'s own engine (reassembly gaps, responses without a request, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<crate::engine::EngineStats>,
    /// `podtap hub --bus`: this replica, and every partition's, merged or waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<podtap_shared::BusStatus>,
}

impl Data for Hub {
    fn now_us(&self) -> u64 {
        Hub::now_us(self)
    }
    fn store_stats(&self) -> StoreStats {
        Hub::store_stats(self)
    }
    fn total(&self, sight: &Sight) -> u64 {
        Hub::total_seen(self, sight)
    }
    fn records(&self, w: Window, lens: Lens, k: Kinds, after: Option<Cursor>, limit: usize) -> (Vec<Record>, bool) {
        Hub::records(self, w, lens, k, after, limit)
    }
    fn record(&self, id: u64, sight: &Sight) -> Option<Record> {
        Hub::record(self, id, sight)
    }
    fn connection(&self, conn: u64, sight: &Sight) -> Option<Connection> {
        Hub::connection(self, conn, sight)
    }
    fn map(&self, lens: Lens, w: Window) -> ServiceMap {
        Hub::map(self, lens, w)
    }
    fn timeline(&self, w: Window, step_us: u64, lens: Lens) -> Vec<Bucket> {
        Hub::timeline(self, w, step_us, lens)
    }
    fn balance(&self, service: &str, w: Window, sight: &Sight) -> Option<Balance> {
        Hub::balance(self, service, w, sight)
    }
    fn balances(&self, w: Window, sight: &Sight) -> Vec<Balance> {
        Hub::balances(self, w, sight)
    }
    fn packets(&self, wanted: &[Wanted]) -> Option<Found> {
        let store = self.packets()?;
        match store.found(wanted, None) {
            Ok(found) => Some(found),
            Err(e) => {
                tracing::warn!("reading retained packets: {e}");
                None
            }
        }
    }
    fn remote(&self) -> Option<Arc<dyn RemotePackets>> {
        self.remote_packets()
    }
}

/// The data a request may read, as the access check decided: the live store or one session,
/// for a live link the filter it is restricted to, and the namespaces the viewer sees.
#[derive(Clone)]
pub struct Scoped {
    pub data: Arc<dyn Data>,
    pub restrict: Option<Arc<str>>,
    pub sight: Arc<Sight>,
}

impl Scoped {
    /// The filter of a request: its own, narrowed by the link's.
    pub fn filter(&self, text: &str) -> Result<Filter, ApiError> {
        parse_filter(&narrowed(self.restrict.as_deref(), text))
    }

    /// What a query with `filter` sees.
    pub fn lens<'a>(&'a self, filter: &'a Filter) -> Lens<'a> {
        Lens::new(filter, &self.sight)
    }

    /// Whether one record (as the viewer sees it) may be shown under the link's filter.
    fn admits(&self, r: &Record) -> bool {
        self.restrict.as_deref().is_none_or(|t| Filter::parse(t).is_ok_and(|f| f.matches(r)))
    }
}

/// `text` narrowed by a link's filter: terms separated by spaces must all hold.
pub fn narrowed(restrict: Option<&str>, text: &str) -> String {
    match restrict {
        Some(r) if !r.trim().is_empty() => format!("{r} {text}"),
        _ => text.to_string(),
    }
}

/// Whether a live link restricted to `restrict` may see Service `service`'s balance: balance is
/// per Service, so only a Service some request under the link's filter went through.
pub fn service_visible(data: &dyn Data, restrict: Option<&str>, sight: &Sight, service: &str) -> bool {
    let Some(r) = restrict else { return true };
    let Ok(f) = Filter::parse(&format!("{r} svc:{service}")) else { return false };
    !data.records(Window::ALL, Lens::new(&f, sight), Kinds::Requests, None, 1).0.is_empty()
}

/// `GET /metrics`: OpenMetrics text (see `metrics`).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.hub.metrics_text();
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

/// 200 when serving with names loaded; 503 while the API server's first lists are still coming
/// (a readiness probe then keeps the pod out of its Service), with the same JSON either way.
/// Where people sign in (an identity source is configured), only the admin gets the counts: they
/// are of every namespace's traffic; anyone else (a probe, a person, a link) gets the status, the
/// cluster's and the span the store holds.
pub async fn healthz(State(state): State<AppState>, req: axum::extract::Request) -> (StatusCode, Json<Health>) {
    let hub = &state.hub;
    let cluster = hub.cluster_status();
    let code = if cluster.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let counts = !state.people.configured() || {
        let credentials = crate::access::Credentials::of(req.headers(), &HashMap::new(), None);
        super::auth::grant_of(&state, req.headers(), super::auth::peer(&req), &credentials)
            .await
            .is_ok_and(|g| g.is_admin())
    };
    let mut store = hub.store_stats();
    if !counts {
        store = StoreStats { oldest_us: store.oldest_us, newest_us: store.newest_us, ..StoreStats::default() };
    }
    (
        code,
        Json(Health {
            status: if cluster.ready { "ok" } else { "starting" },
            source: hub.source().to_string(),
            records: if counts { hub.total() } else { 0 },
            capture: hub.capture().filter(|_| counts),
            cluster,
            app: state.assets.origin.clone(),
            store,
            clock: hub.clock(),
            agents: hub.agents().filter(|_| counts).map(|(a, _)| a),
            engine: hub.engine().filter(|_| counts),
            bus: hub.bus().filter(|_| counts),
        }),
    )
}

/// `from`, `to` (RFC 3339, epoch µs, or relative: `-5m`, `now`) and `filter`, shared by the
/// windowed endpoints.
#[derive(Deserialize, Default)]
pub struct WindowQuery {
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    pub filter: String,
}

impl WindowQuery {
    /// A window as given in a JSON body (`POST /api/v1/sessions`).
    pub fn new(from: Option<String>, to: Option<String>, filter: String) -> Self {
        Self { from, to, filter }
    }

    /// The window asked for: everything retained by default; `to` defaults to now.
    pub fn window(&self, data: &dyn Data) -> Result<Window, ApiError> {
        let now = data.now_us();
        let time = |t: &Option<String>, default: u64| match t {
            Some(text) => timespec::parse_time(text, now).map_err(|e| ApiError::BadRequest(e.to_string())),
            None => Ok(default),
        };
        let from = time(&self.from, 0)?;
        // `to` is inclusive of its microsecond for people (`to=now` includes a record made now).
        let to = time(&self.to, u64::MAX - 1)?.saturating_add(1);
        if from >= to {
            return Err(ApiError::BadRequest(format!(
                "`from` ({}) must be before `to` ({})",
                timespec::format_time(from),
                timespec::format_time(to - 1)
            )));
        }
        Ok(Window { from, to })
    }

    pub fn filter(&self, scope: &Scoped) -> Result<Filter, ApiError> {
        scope.filter(&self.filter)
    }

    pub fn filter_text(&self) -> &str {
        &self.filter
    }
}

/// A path parameter by name (nested under `/sessions/{sid}` a route has two).
fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> &'a str {
    params.get(name).map_or("", String::as_str)
}

/// `GET /api/v1/services/{ns}/{name}/balance?from=&to=`: how the Service's requests and
/// connections spread over its pods in the window, with the skew and its cause.
pub async fn balance(
    Extension(scope): Extension<Scoped>,
    Path(params): Path<HashMap<String, String>>,
    Query(q): Query<WindowQuery>,
) -> Result<Json<Balance>, ApiError> {
    let service = format!("{}/{}", param(&params, "namespace"), param(&params, "name"));
    let window = q.window(&*scope.data)?;
    if !service_visible(&*scope.data, scope.restrict.as_deref(), &scope.sight, &service) {
        return Err(ApiError::NoSuchService(service));
    }
    scope.data.balance(&service, window, &scope.sight).map(Json).ok_or(ApiError::NoSuchService(service))
}

/// `GET /api/v1/services?from=&to=`: every Service's balance in the window, most skewed first.
pub async fn services(
    Extension(scope): Extension<Scoped>,
    Query(q): Query<WindowQuery>,
) -> Result<Json<Vec<Balance>>, ApiError> {
    let mut all = scope.data.balances(q.window(&*scope.data)?, &scope.sight);
    all.retain(|b| service_visible(&*scope.data, scope.restrict.as_deref(), &scope.sight, &b.service));
    all.sort_by(|a, b| b.skew.total_cmp(&a.skew).then_with(|| a.service.cmp(&b.service)));
    Ok(Json(all))
}

fn parse_filter(text: &str) -> Result<Filter, ApiError> {
    Filter::parse(text).map_err(|e| ApiError::BadRequest(format!("filter: {e}")))
}

#[derive(Deserialize)]
pub struct RecordsQuery {
    /// A string: numbers inside a flattened query arrive as text.
    limit: Option<String>,
    /// `requests` (default), `tcp` (connections) or `all`.
    kind: Option<String>,
    /// Where the previous page ended (`next` of its answer): continue after it, oldest first.
    cursor: Option<String>,
    #[serde(flatten)]
    window: WindowQuery,
}

#[derive(Serialize, Deserialize)]
pub struct RecordsPage {
    /// Oldest first: the newest `limit` matching records of the window, or with `cursor` (or
    /// `from`) the first `limit` after it.
    pub records: Vec<Record>,
    /// Records seen since start.
    pub total: u64,
    /// The cursor of the next page, when more records follow this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /api/v1/records?filter=&limit=&from=&to=&kind=&cursor=`.
pub async fn records(
    Extension(scope): Extension<Scoped>,
    Query(q): Query<RecordsQuery>,
) -> Result<Json<RecordsPage>, ApiError> {
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) => n,
        Some(Err(_)) => 0,
    };
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let kinds = match q.kind.as_deref() {
        None | Some("requests") => Kinds::Requests,
        Some("tcp") => Kinds::Connections,
        Some("all") => Kinds::All,
        Some(other) => {
            return Err(ApiError::BadRequest(format!("kind must be requests, tcp or all, not `{other}`")));
        }
    };
    let window = q.window.window(&*scope.data)?;
    let filter = q.window.filter(&scope)?;
    let after = match (&q.cursor, &q.window.from) {
        (Some(c), _) => Some(Cursor::parse(c).ok_or_else(|| {
            ApiError::BadRequest(format!("`{c}` is not a cursor: pass the `next` of the previous page"))
        })?),
        // From a start, pages run forward in time.
        (None, Some(_)) => Some(Cursor { ts: 0, id: 0 }),
        (None, None) => None,
    };
    let (records, more) = scope.data.records(window, scope.lens(&filter), kinds, after, limit);
    let next = (more && after.is_some()).then(|| records.last().map(|r| Cursor { ts: r.ts, id: r.id }.to_string()));
    Ok(Json(RecordsPage { records, total: scope.data.total(&scope.sight), next: next.flatten() }))
}

/// `GET /api/v1/records/{id}`: one record in full.
pub async fn record(
    Extension(scope): Extension<Scoped>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<Record>, ApiError> {
    let id = param(&params, "id");
    let n: u64 = id.parse().map_err(|_| ApiError::BadRequest(format!("`{id}` is not a record id")))?;
    scope.data.record(n, &scope.sight).filter(|r| scope.admits(r)).map(Json).ok_or(ApiError::NoSuchRecord(n))
}

/// `GET /api/v1/connections/{conn}`: the connection's `tcp` record and all its requests.
pub async fn connection(
    Extension(scope): Extension<Scoped>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<Connection>, ApiError> {
    let id = param(&params, "conn");
    let n: u64 = id.parse().map_err(|_| ApiError::BadRequest(format!("`{id}` is not a connection id")))?;
    let mut c = scope.data.connection(n, &scope.sight).ok_or(ApiError::NoSuchConnection(n))?;
    c.requests.retain(|r| scope.admits(r));
    c.connection = c.connection.filter(|r| scope.admits(r));
    if c.connection.is_none() && c.requests.is_empty() {
        return Err(ApiError::NoSuchConnection(n));
    }
    Ok(Json(c))
}

/// `GET /api/v1/map?filter=&from=&to=`.
pub async fn map(
    Extension(scope): Extension<Scoped>,
    Query(q): Query<WindowQuery>,
) -> Result<Json<ServiceMap>, ApiError> {
    let window = q.window(&*scope.data)?;
    Ok(Json(scope.data.map(scope.lens(&q.filter(&scope)?), window)))
}

#[derive(Deserialize)]
pub struct TimelineQuery {
    step: Option<String>,
    #[serde(flatten)]
    pub window: WindowQuery,
}

/// Most buckets one timeline answer may hold.
pub const MAX_BUCKETS: u64 = 10_000;

#[derive(Serialize, Deserialize)]
pub struct Timeline {
    pub from: u64,
    pub to: u64,
    pub step_us: u64,
    pub buckets: Vec<Bucket>,
}

/// `GET /api/v1/timeline?from=&to=&filter=&step=`: requests and errors per step (the overview
/// strip). The window defaults to what is retained, the step to about 200 buckets' worth.
pub async fn timeline(
    Extension(scope): Extension<Scoped>,
    Query(q): Query<TimelineQuery>,
) -> Result<Json<Timeline>, ApiError> {
    let filter = q.window.filter(&scope)?;
    Ok(Json(q.timeline(&*scope.data, scope.lens(&filter))?))
}

impl TimelineQuery {
    /// Counts per step of the records `filter` admits: the whole retained span unless `from` or
    /// `to` is given, in about 200 steps unless `step` is.
    pub fn timeline(&self, hub: &dyn Data, lens: Lens) -> Result<Timeline, ApiError> {
        let mut window = self.window.window(hub)?;
        let stats = hub.store_stats();
        if self.window.from.is_none() {
            window.from = stats.oldest_us.unwrap_or(hub.now_us()) / STEP_US * STEP_US;
        }
        if self.window.to.is_none() {
            window.to = stats.newest_us.unwrap_or(hub.now_us()).max(window.from) + 1;
        }
        let span = window.to - window.from;
        let step_us = match &self.step {
            Some(text) => timespec::parse_duration_us(text).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            None => (span / 200).max(STEP_US).div_ceil(STEP_US) * STEP_US,
        };
        if step_us == 0 || span.div_ceil(step_us) > MAX_BUCKETS {
            return Err(ApiError::BadRequest(format!(
                "step must be positive and give at most {MAX_BUCKETS} buckets over the window"
            )));
        }
        let buckets = hub.timeline(window, step_us, lens);
        Ok(Timeline { from: window.from, to: window.to, step_us, buckets })
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
