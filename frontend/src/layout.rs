//! Service Map layout: a pure function from the map to boxes and curves in SVG coordinates.
//! Columns follow the traffic (a node sits one column right of the furthest node that calls it),
//! so clients, Services and the pods behind them read left to right. Deterministic: the same map
//! always gives the same picture, which keeps shared links and screenshots stable.

use std::collections::BTreeMap;

use podtap_shared::{EndpointKind, MapNode, ServiceMap};

pub const NODE_W: f64 = 230.0;
pub const NODE_H: f64 = 46.0;
const COL_GAP: f64 = 120.0;
const ROW_GAP: f64 = 22.0;
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
    let edges = map
        .edges
        .iter()
        .filter_map(|e| {
            let (sx, sy) = *at.get(e.source.as_str())?;
            let (tx, ty) = *at.get(e.target.as_str())?;
            let (x1, y1) = (sx + NODE_W, sy + NODE_H / 2.0);
            let (x2, y2) = (tx, ty + NODE_H / 2.0);
            let bend = ((x2 - x1).abs() / 2.0).max(40.0);
            let (c1, c2) = ((x1 + bend, y1), (x2 - bend, y2));
            let d = format!("M{x1:.1},{y1:.1} C{:.1},{:.1} {:.1},{:.1} {x2:.1},{y2:.1}", c1.0, c1.1, c2.0, c2.1);
            // The label sits on the curve near its target, where curves into one box fan apart.
            let (label_x, label_y) = bezier((x1, y1), c1, c2, (x2, y2), 0.7);
            Some(EdgeCurve {
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
            })
        })
        .collect();
    Layout { width, height: height.max(NODE_H + 2.0 * MARGIN), nodes, edges }
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
        MapNode { id: id.into(), kind, label: id.into(), namespace: None, workload: None }
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
