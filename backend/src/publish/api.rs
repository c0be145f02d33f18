//! The REST API: `/healthz`, `/api/v1/records?limit=`, `/api/v1/map`,
//! `/api/v1/services/{ns}/{name}/balance`. Errors are JSON with one
//! sentence and never carry internals.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use podtap_shared::{Filter, Record, ServiceMap};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::aggregate::balance::Balance;
use crate::capture::live::LiveStats;
use crate::publish::hub::ClusterStatus;

/// Largest `limit` accepted by `/api/v1/records`.
pub const MAX_LIMIT: usize = 10_000;

/// API errors as the client sees them.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong token.
    #[error("a valid token is required: send Authorization: Bearer TOKEN or ?token=TOKEN")]
    Unauthorized,
    /// A query parameter is out of range.
    #[error("{0}")]
    BadRequest(String),
    /// No such API route.
    #[error("no such API endpoint")]
    NotFound,
    /// A Service neither the cluster state nor the traffic knows.
    #[error("no Service {0} in the cluster state or the traffic")]
    NoSuchService(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound | ApiError::NoSuchService(_) => StatusCode::NOT_FOUND,
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
}

/// 200 when serving with names loaded; 503 while the API server's first lists are still coming
/// (a readiness probe then keeps the pod out of its Service), with the same JSON either way.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let hub = &state.hub;
    let cluster = hub.cluster_status();
    let code = if cluster.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        code,
        Json(Health {
            status: if cluster.ready { "ok" } else { "starting" },
            source: hub.source().to_string(),
            records: hub.total(),
            capture: hub.capture(),
            cluster,
            app: state.assets.origin.clone(),
        }),
    )
}

/// `GET /api/v1/services/{ns}/{name}/balance`: how the Service's requests and connections spread
/// over its pods, with the skew and its cause.
pub async fn balance(
    State(state): State<AppState>,
    axum::extract::Path((namespace, name)): axum::extract::Path<(String, String)>,
) -> Result<Json<Balance>, ApiError> {
    let service = format!("{namespace}/{name}");
    state.hub.balance(&service).map(Json).ok_or(ApiError::NoSuchService(service))
}

#[derive(Deserialize)]
pub struct RecordsQuery {
    limit: Option<usize>,
    #[serde(default)]
    filter: String,
}

#[derive(Deserialize)]
pub struct MapQuery {
    #[serde(default)]
    filter: String,
}

fn parse_filter(text: &str) -> Result<Filter, ApiError> {
    Filter::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

#[derive(Serialize, Deserialize)]
pub struct RecordsPage {
    /// Oldest first; the newest `limit` retained records.
    pub records: Vec<Record>,
    /// Records seen since start.
    pub total: u64,
}

pub async fn records(
    State(state): State<AppState>,
    Query(q): Query<RecordsQuery>,
) -> Result<Json<RecordsPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let filter = parse_filter(&q.filter)?;
    Ok(Json(RecordsPage { records: state.hub.recent(limit, &filter), total: state.hub.total() }))
}

pub async fn map(State(state): State<AppState>, Query(q): Query<MapQuery>) -> Result<Json<ServiceMap>, ApiError> {
    Ok(Json(state.hub.map(&parse_filter(&q.filter)?)))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
