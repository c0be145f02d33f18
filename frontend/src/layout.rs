//! Service Map layout: a pure function from the map to boxes and curves in SVG coordinates.
//! Columns follow the traffic (a node sits one column right of the furthest node that calls it),
//! so clients, Services and the pods behind them read left to right. Deterministic: the same map
//! always gives the same picture, which keeps shared links and screenshots stable.

use std::collections::BTreeMap;

use podtap_shared::{EndpointKind, MapNode, ServiceMap};

pub const NODE_W: f64 = 230.0;
pub const NODE_H: f64 = 46.0;
const COL_GAP: f64 = 190.0;
const ROW_GAP: f64 = 28.0;
const MARGIN: f64 = 16.0;

/// A node's box.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeBox {
    pub node: MapNode,
    pub x: f64,
    pub y: f64,
}

/// An edge's curve and label position.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeCurve {
    pub source: String,
    pub target: String,
    pub requests: u64,
    pub connections: u64,
    pub errors: u64,
    pub p95_ms: Option<f64>,
    /// SVG path data.
    pub d: String,
    pub label_x: f64,
    pub label_y: f64,
    pub stroke_width: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<NodeBox>,
    pub edges: Vec<EdgeCurve>,
}

fn kind_order(k: EndpointKind) -> u8 {
    match k {
        EndpointKind::External => 0,
        EndpointKind::Node => 1,
        EndpointKind::Unknown => 2,
        EndpointKind::Service => 3,
        EndpointKind::Pod => 4,
    }
}

/// Lays out the map.
pub fn layout(map: &ServiceMap) -> Layout {
    // Column = longest path from a node nobody calls; bounded relaxation keeps cycles finite.
    let mut col: BTreeMap<&str, usize> = map.nodes.iter().map(|n| (n.id.as_str(), 0)).collect();
    for _ in 0..map.nodes.len().min(8) {
        let mut changed = false;
        for e in &map.edges {
            let s = col.get(e.source.as_str()).copied().unwrap_or(0);
            if let Some(t) = col.get_mut(e.target.as_str())
                && *t < s + 1
                && e.source != e.target
            {
                *t = s + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut columns: BTreeMap<usize, Vec<&MapNode>> = BTreeMap::new();
    for n in &map.nodes {
        columns.entry(col[n.id.as_str()]).or_default().push(n);
    }
    let mut nodes = Vec::new();
    let mut height: f64 = 0.0;
    for (i, (_, members)) in columns.iter_mut().enumerate() {
        members
            .sort_by(|a, b| (kind_order(a.kind), &a.namespace, &a.id).cmp(&(kind_order(b.kind), &b.namespace, &b.id)));
        let x = MARGIN + i as f64 * (NODE_W + COL_GAP);
        for (row, n) in members.iter().enumerate() {
            let y = MARGIN + row as f64 * (NODE_H + ROW_GAP);
            height = height.max(y + NODE_H + MARGIN);
            nodes.push(NodeBox { node: (*n).clone(), x, y });
        }
    }
    let width = MARGIN * 2.0 + columns.len().max(1) as f64 * (NODE_W + COL_GAP) - COL_GAP;
    let at: BTreeMap<&str, (f64, f64)> = nodes.iter().map(|b| (b.node.id.as_str(), (b.x, b.y))).collect();
    let placed: Vec<_> =
        map.edges.iter().filter(|e| at.contains_key(e.source.as_str()) && at.contains_key(e.target.as_str())).collect();
    // Each box spreads its departures (right side) and arrivals (left side) over its height,
    // ordered by where the other end sits, so curves neither cross at the box nor share a point.
    let mut outgoing: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut incoming: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in placed.iter().enumerate() {
        outgoing.entry(e.source.as_str()).or_default().push(i);
        incoming.entry(e.target.as_str()).or_default().push(i);
    }
    let mut start_y = vec![0.0; placed.len()];
    let mut end_y = vec![0.0; placed.len()];
    for (node, list) in &mut outgoing {
        list.sort_by(|a, b| at[placed[*a].target.as_str()].1.total_cmp(&at[placed[*b].target.as_str()].1));
        spread(at[node].1, list, &mut start_y);
    }
    for (node, list) in &mut incoming {
        list.sort_by(|a, b| at[placed[*a].source.as_str()].1.total_cmp(&at[placed[*b].source.as_str()].1));
        spread(at[node].1, list, &mut end_y);
    }
    let mut taken: Vec<(f64, f64, f64)> = Vec::new(); // label centres and half-widths
    let edges = placed
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (x1, y1) = (at[e.source.as_str()].0 + NODE_W, start_y[i]);
            let (x2, y2) = (at[e.target.as_str()].0, end_y[i]);
            let bend = ((x2 - x1).abs() / 2.0).max(40.0);
            // A call back to an earlier column (a cycle) arcs below instead of running over the
            // forward curve.
            let (c1, c2) = if x2 > x1 {
                ((x1 + bend, y1), (x2 - bend, y2))
            } else {
                ((x1 + 60.0, y1 + 90.0), (x2 - 60.0, y2 + 90.0))
            };
            let d = format!("M{x1:.1},{y1:.1} C{:.1},{:.1} {:.1},{:.1} {x2:.1},{y2:.1}", c1.0, c1.1, c2.0, c2.1);
            // The first spot along the curve whose label does not cover another label.
            let half_w = label_text(e.requests, e.connections).len() as f64 * 3.3;
            let free = |(x, y): (f64, f64)| {
                taken.iter().all(|(tx, ty, tw)| (x - tx).abs() > half_w + tw || (y - ty).abs() > 13.0)
            };
            let along = [0.5, 0.35, 0.65, 0.25, 0.75, 0.15, 0.85].map(|t| bezier((x1, y1), c1, c2, (x2, y2), t));
            // On the curve first; then just above or below it.
            let mut spots =
                [0.0, -14.0, 14.0].into_iter().flat_map(|dy| along.into_iter().map(move |(x, y)| (x, y + dy)));
            let (label_x, label_y) = spots.find(|p| free(*p)).unwrap_or(along[0]);
            taken.push((label_x, label_y, half_w));
            EdgeCurve {
                source: e.source.clone(),
                target: e.target.clone(),
                requests: e.requests,
                connections: e.connections,
                errors: e.errors,
                p95_ms: e.p95_ms,
                d,
                label_x,
                label_y: label_y - 5.0,
                stroke_width: 1.5 + (e.requests.max(1) as f64).log2() * 0.6,
            }
        })
        .collect();
    let has_back_edges = placed.iter().any(|e| at[e.target.as_str()].0 <= at[e.source.as_str()].0);
    let arc_room = if has_back_edges { 70.0 } else { 0.0 };
    Layout { width, height: height.max(NODE_H + 2.0 * MARGIN) + arc_room, nodes, edges }
}

/// What an edge's label says.
pub fn label_text(requests: u64, connections: u64) -> String {
    format!("{requests} req · {connections} conn")
}

/// Spreads the edges `list` (in order) over the height of a box whose top is at `top`.
fn spread(top: f64, list: &[usize], ys: &mut [f64]) {
    let step = (NODE_H - 12.0) / list.len() as f64;
    for (k, &i) in list.iter().enumerate() {
        ys[i] = top + 6.0 + step * (k as f64 + 0.5);
    }
}

/// The point at `t` on a cubic Bézier curve.
fn bezier(p0: (f64, f64), p1: (f64, f64), p2: (f64, f64), p3: (f64, f64), t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
    (a * p0.0 + b * p1.0 + c * p2.0 + d * p3.0, a * p0.1 + b * p1.1 + c * p2.1 + d * p3.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podtap_shared::MapEdge;

    fn node(id: &str, kind: EndpointKind) -> MapNode {
        MapNode { id: id.into(), kind, label: id.into(), namespace: None, workload: None, node: None }
    }

    fn edge(s: &str, t: &str) -> MapEdge {
        MapEdge {
            source: s.into(),
            target: t.into(),
            requests: 4,
            connections: 1,
            errors: 0,
            probe_requests: 0,
            bytes: 0,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            dns_requests: 0,
            protocols: vec![],
            gapped_connections: 0,
        }
    }

    #[test]
    fn traffic_reads_left_to_right_and_cycles_terminate() {
        let map = ServiceMap {
            nodes: vec![
                node("pod:a/web", EndpointKind::Pod),
                node("service:a/web", EndpointKind::Service),
                node("pod:a/client", EndpointKind::Pod),
                node("pod:a/x", EndpointKind::Pod),
            ],
            edges: vec![
                edge("pod:a/client", "service:a/web"),
                edge("service:a/web", "pod:a/web"),
                edge("pod:a/web", "pod:a/x"),
                edge("pod:a/x", "pod:a/web"),
            ],
        };
        let l = layout(&map);
        let x = |id: &str| l.nodes.iter().find(|n| n.node.id == id).unwrap().x;
        assert!(x("pod:a/client") < x("service:a/web"));
        assert!(x("service:a/web") < x("pod:a/web"));
        assert_eq!(l.edges.len(), 4);
        // Labels of crossing curves do not sit on each other.
        for (i, a) in l.edges.iter().enumerate() {
            for b in &l.edges[i + 1..] {
                assert!((a.label_x - b.label_x).abs() > 40.0 || (a.label_y - b.label_y).abs() > 13.0, "{a:?} {b:?}");
            }
        }
        // Two curves leave pod:a/web's column-mates at different heights: no shared end points.
        let ends: std::collections::BTreeSet<String> =
            l.edges.iter().map(|e| e.d.rsplit(' ').next().unwrap().to_string()).collect();
        assert_eq!(ends.len(), 4);
        assert!(l.width > 3.0 * NODE_W);
    }

    #[test]
    fn bezier_ends_at_its_end_points() {
        assert_eq!(bezier((0.0, 0.0), (1.0, 5.0), (2.0, 5.0), (3.0, 0.0), 0.0), (0.0, 0.0));
        assert_eq!(bezier((0.0, 0.0), (1.0, 5.0), (2.0, 5.0), (3.0, 0.0), 1.0), (3.0, 0.0));
    }

    #[test]
    fn an_empty_map_has_a_size() {
        let l = layout(&ServiceMap::default());
        assert!(l.nodes.is_empty() && l.width > 0.0 && l.height > 0.0);
    }
}
