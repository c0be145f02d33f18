//! `GET /api/v1/edge?source=&target=`: one Service Map edge in full, at any level of folding (`*`
//! for either end: everything into or out of one box) —
//! requests, connections, errors, p50/p95/p99 from the merged histogram of exactly the requests
//! the edge counts (the filter's `edge:` term), protocols seen, and requests per step over the
//! window for the map's sparkline, and — into a database or a broker — the same per operation (SQL
//! command tag, Redis command, Kafka API). A folded edge's percentiles cannot be summed from its
//! pods' edges; they are computed here from the requests themselves.

use axum::extract::Query;
use axum::{Extension, Json};
use std::collections::BTreeMap;

use podtap_shared::{EdgeStats, MapEdge, OperationStats};
use serde::{Deserialize, Serialize};

use super::api::{ApiError, Scoped, Timeline, TimelineQuery};
use crate::store::Kinds;

/// Most records one edge's numbers are computed from; past it the answer says it is partial.
pub const MAX_EDGE_RECORDS: usize = 500_000;
/// Most operations listed, the busiest first; `more_operations` counts the rest.
pub const MAX_OPERATIONS: usize = 30;

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
    /// Per operation, the busiest first (none on an edge that carries no database or broker
    /// requests).
    pub operations: Vec<OperationStats>,
    /// Operations beyond the `MAX_OPERATIONS` listed.
    pub more_operations: usize,
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
    let (records, more) = data.records(window, scope.lens(&filter), Kinds::All, None, MAX_EDGE_RECORDS);
    let mut stats = EdgeStats::default();
    let mut by_operation: BTreeMap<&str, EdgeStats> = BTreeMap::new();
    for r in &records {
        stats.add(r);
        if let Some(op) = r.operation() {
            by_operation.entry(op).or_default().add(r);
        }
    }
    let (operations, more_operations) = operations(by_operation);
    let timeline = q.timeline.timeline(data, scope.lens(&filter))?;
    let edge = stats.edge(&q.source, &q.target);
    Ok(Json(EdgeDetail { edge, complete: !more, timeline, operations, more_operations }))
}

/// The busiest `MAX_OPERATIONS` (ties by name), and how many more there were.
fn operations(by_operation: BTreeMap<&str, EdgeStats>) -> (Vec<OperationStats>, usize) {
    let mut all: Vec<OperationStats> = by_operation
        .into_iter()
        .map(|(op, s)| {
            let e = s.edge("", "");
            OperationStats {
                operation: op.to_string(),
                requests: e.requests,
                errors: e.errors,
                p50_ms: e.p50_ms,
                p95_ms: e.p95_ms,
                p99_ms: e.p99_ms,
            }
        })
        .collect();
    all.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.operation.cmp(&b.operation)));
    let more = all.len().saturating_sub(MAX_OPERATIONS);
    all.truncate(MAX_OPERATIONS);
    (all, more)
}
