//! `GET /api/v1/edge?source=&target=`: one Service Map edge in full, at any level of folding (`*`
//! for either end: everything into or out of one box) —
//! requests, connections, errors, p50/p95/p99 from the merged histogram of exactly the requests
//! the edge counts (the filter's `edge:` term), protocols seen, and requests per step over the
//! window for the map's sparkline. A folded edge's percentiles cannot be summed from its pods'
//! edges; they are computed here from the requests themselves.

use axum::extract::Query;
use axum::{Extension, Json};
use podtap_shared::{EdgeStats, MapEdge};
use serde::{Deserialize, Serialize};

use super::api::{ApiError, Scoped, Timeline, TimelineQuery};
use crate::store::Kinds;

/// Most records one edge's numbers are computed from; past it the answer says it is partial.
pub const MAX_EDGE_RECORDS: usize = 500_000;

#[derive(Deserialize)]
pub struct EdgeQuery {
    source: String,
    target: String,
    #[serde(flatten)]
    timeline: TimelineQuery,
}

#[derive(Serialize, Deserialize)]
pub struct EdgeDetail {
    pub edge: MapEdge,
    /// False when the window held more than `MAX_EDGE_RECORDS` of the edge's records: the
    /// numbers are of the first that many in time order.
    pub complete: bool,
    pub timeline: Timeline,
}

pub async fn edge(
    Extension(scope): Extension<Scoped>,
    Query(q): Query<EdgeQuery>,
) -> Result<Json<EdgeDetail>, ApiError> {
    if [&q.source, &q.target].iter().any(|id| (*id != "*" && !id.contains(':')) || id.contains(char::is_whitespace)) {
        return Err(ApiError::BadRequest("source and target must be map ids, like pod:ns/name, or *".into()));
    }
    let text = format!("{} edge:{}>{}", q.timeline.window.filter, q.source, q.target);
    let filter = scope.filter(&text)?;
    let data = &*scope.data;
    let window = q.timeline.window.window(data)?;
    let (records, more) = data.records(window, &filter, Kinds::All, None, MAX_EDGE_RECORDS);
    let mut stats = EdgeStats::default();
    for r in &records {
        stats.add(r);
    }
    let timeline = q.timeline.timeline(data, &filter)?;
    Ok(Json(EdgeDetail { edge: stats.edge(&q.source, &q.target), complete: !more, timeline }))
}
