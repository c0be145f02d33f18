//! The whole pipeline on a cluster-sized map — 1,000 pods in 50 namespaces, 250 Deployments
//! behind their Services, 3,000 caller → callee pairs (the shape of `podtap serve --synthetic`):
//! every level keeps the counts, no boxes overlap, and a new edge moves nothing.

use podtap_shared::{EndpointKind, MapEdge, MapNode, ServiceMap};

use super::*;
use crate::map::fold::{self, Level, Options};
use crate::map::layered::{BOX_H, BOX_W};

fn edge(s: &str, t: &str, requests: u64) -> MapEdge {
    MapEdge {
        source: s.into(),
        target: t.into(),
        requests,
        connections: 1 + requests / 8,
        errors: requests / 100,
        probe_requests: 0,
        bytes: 0,
        p50_ms: None,
        p95_ms: None,
        p99_ms: None,
        dns_requests: 0,
        protocols: vec!["http".into()],
        gapped_connections: 0,
        topic: None,
    }
}

pub fn cluster(pods: u32, pairs: u32) -> ServiceMap {
    let ns = |app: u32| format!("ns-{}", app % 50);
    let pod_id = |p: u32| format!("pod:{}/app-{}-{p:05x}", ns(p / 4), p / 4);
    let mut nodes: Vec<MapNode> = (0..pods)
        .map(|p| MapNode {
            id: pod_id(p),
            kind: EndpointKind::Pod,
            label: pod_id(p).rsplit('/').next().unwrap().into(),
            namespace: Some(ns(p / 4)),
            workload: Some(format!("Deployment/app-{}", p / 4)),
            node: Some(format!("node-{}", p % 8)),
            locked: false,
        })
        .collect();
    for app in 0..pods / 4 {
        nodes.push(MapNode {
            id: format!("service:{}/app-{app}", ns(app)),
            kind: EndpointKind::Service,
            label: format!("app-{app}"),
            namespace: Some(ns(app)),
            workload: None,
            node: None,
            locked: false,
        });
    }
    let mut edges = std::collections::BTreeMap::new();
    for i in 0..pairs {
        let (from, to) = (i % pods, (i.wrapping_mul(2_654_435_761) >> 7) % pods);
        let svc = format!("service:{}/app-{}", ns(to / 4), to / 4);
        *edges.entry((pod_id(from), svc.clone())).or_insert(0) += 10 + u64::from(i % 7);
        *edges.entry((svc, pod_id(to))).or_insert(0) += 10 + u64::from(i % 7);
    }
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    ServiceMap { nodes, edges: edges.into_iter().map(|((s, t), n)| edge(&s, &t, n)).collect() }
}

fn overlaps(s: &Scene) -> usize {
    let mut n = 0;
    for i in 0..s.pos.len() {
        for j in i + 1..s.pos.len() {
            let (a, b) = (s.pos[i], s.pos[j]);
            n += usize::from((a.0 - b.0).abs() < BOX_W && (a.1 - b.1).abs() < BOX_H);
        }
    }
    n
}

fn state() -> MapState {
    MapState { size: (1400.0, 560.0), ..MapState::default() }
}

#[test]
fn a_thousand_pods_at_every_level_keep_their_counts_and_never_overlap() {
    let map = cluster(1000, 3000);
    let first_legs =
        |m: &ServiceMap| m.edges.iter().filter(|e| !e.source.starts_with("service:")).map(|e| e.requests).sum::<u64>();
    let total = first_legs(&map);
    for level in [Level::Namespace, Level::Workload, Level::Pod] {
        let folded = fold::fold(&map, &Options { level: Some(level), ..Options::default() });
        let drawn: u64 = folded.links.iter().filter(|l| !l.source.starts_with("service:")).map(|l| l.requests).sum();
        let inner: u64 = folded.groups.iter().map(|g| g.internal).sum();
        // Every request is drawn on an edge or counted inside a box (both legs of those through a
        // Service, the second leg inside a folded namespace).
        assert!(drawn <= total && drawn + inner >= total, "{level:?}: {drawn} + {inner} vs {total}");
        let mut s = state();
        s.rebuild(folded, Some(60.0), &Context::default(), 0.0);
        assert_eq!(overlaps(&s.scene), 0, "{level:?}");
        // Fitted: everything is in view, so every box and edge has its DOM hook.
        let (boxes, edges) = s.scene.in_view(&s.view());
        assert_eq!((boxes.len(), edges.len()), (s.scene.groups.len(), s.scene.links.len()), "{level:?}");
    }
    // The default for this size folds namespaces.
    assert_eq!(fold::fold(&map, &Options::default()).level, Some(Level::Namespace));
    let pods = fold::fold(&map, &Options { level: Some(Level::Pod), ..Options::default() });
    assert_eq!(pods.groups.len(), 1250);
}

#[test]
fn an_update_with_one_more_edge_moves_no_box() {
    let map = cluster(1000, 3000);
    let opts = Options { level: Some(Level::Workload), ..Options::default() };
    let mut s = state();
    s.rebuild(fold::fold(&map, &opts), None, &Context::default(), 0.0);
    let before = s.scene.pos.clone();
    let mut more = map.clone();
    more.edges.push(edge("pod:ns-3/app-3-0000c", "service:ns-40/app-40", 5));
    more.edges.sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    s.rebuild(fold::fold(&more, &opts), None, &Context::default(), 1000.0);
    assert_eq!(s.scene.pos, before, "a new edge moved boxes");
    assert!(!s.tick(1000.0 + MOVE_MS), "nothing to move");
}

#[test]
fn opening_a_workload_puts_its_pods_where_it_was_and_they_move_there_smoothly() {
    let map = cluster(40, 60);
    let mut opts = Options { level: Some(Level::Workload), ..Options::default() };
    let mut s = state();
    s.rebuild(fold::fold(&map, &opts), None, &Context::default(), 0.0);
    let wl = "workload:ns-2/Deployment/app-2";
    let at = s.scene.pos[s.scene.index[wl]];
    opts.open.insert(wl.into());
    s.rebuild(fold::fold(&map, &opts), None, &Context::default(), 100.0);
    let pods: Vec<usize> =
        (0..s.scene.groups.len()).filter(|&i| s.scene.groups[i].parent.as_deref() == Some(wl)).collect();
    assert_eq!(pods.len(), 4);
    for &i in &pods {
        // They start where the workload was, and end in its layer.
        assert_eq!(s.pos[i], at);
        assert_eq!(s.scene.pos[i].0, at.0);
    }
    let layout = s.layout;
    assert!(s.tick(100.0 + MOVE_MS / 2.0));
    assert!(s.layout > layout, "boxes moving: a raster of where they were is of another map");
    assert!(!s.tick(100.0 + MOVE_MS));
    assert_eq!(s.pos, s.scene.pos);
    assert_eq!(overlaps(&s.scene), 0);
}

#[test]
fn focus_lights_a_box_and_its_neighbours_only() {
    let map = cluster(40, 60);
    let mut s = state();
    s.rebuild(
        fold::fold(&map, &Options { level: Some(Level::Workload), ..Options::default() }),
        None,
        &Context::default(),
        0.0,
    );
    let svc = "service:ns-1/app-1";
    let lit = s.lit(Some(svc)).unwrap();
    let i = s.scene.index[svc];
    let (callers, callees) = s.scene.neighbours(i);
    let distinct: std::collections::HashSet<usize> = callers.iter().chain(&callees).map(|n| n.0).chain([i]).collect();
    assert!(callers.len() + callees.len() > 1);
    assert_eq!(lit, distinct);
    assert!(s.lit(Some("pod:nowhere/x")).is_none());
    assert!(s.centre(svc) && s.moved);
}

#[test]
fn an_update_of_counts_only_keeps_every_place_and_changes_the_labels() {
    let map = cluster(200, 600);
    let opts = Options { level: Some(Level::Workload), ..Options::default() };
    let mut s = state();
    s.rebuild(fold::fold(&map, &opts), Some(10.0), &Context::default(), 0.0);
    let (pos, labels) = (s.scene.pos.clone(), s.scene.labels.clone());
    let mut busier = map.clone();
    for e in &mut busier.edges {
        e.requests *= 3;
    }
    let (picture, layout) = (s.picture, s.layout);
    s.rebuild(fold::fold(&busier, &opts), Some(10.0), &Context::default(), 10.0);
    assert_eq!(s.scene.pos, pos);
    assert_ne!(s.scene.labels, labels);
    assert!(!s.tick(10.0 + MOVE_MS));
    // Busier edges are drawn wider: a new picture of boxes where they were (the edges' raster on
    // screen may stay while the new one is built).
    assert_eq!((s.picture, s.layout), (picture + 1, layout));
    // The same again draws the same: the raster stays good.
    s.rebuild(fold::fold(&busier, &opts), Some(10.0), &Context::default(), 20.0);
    assert_eq!((s.picture, s.layout), (picture + 1, layout));
    assert!(s.dirty && s.hooks_due, "the labels and the hooks are drawn again all the same");
}

#[test]
fn the_nodes_stand_apart_in_a_band_below_under_the_pods_they_probe() {
    let mut map = cluster(40, 60);
    for n in 0..3 {
        let id = format!("node:node-{n}");
        map.nodes.push(MapNode {
            id: id.clone(),
            kind: EndpointKind::Node,
            label: format!("node-{n}"),
            namespace: None,
            workload: None,
            node: Some(format!("node-{n}")),
            locked: false,
        });
        // Each node's kubelet probes the pods on it.
        for p in map
            .nodes
            .iter()
            .filter(|m| m.node.as_deref() == Some(&format!("node-{n}")) && m.kind == EndpointKind::Pod)
            .map(|m| m.id.clone())
            .collect::<Vec<_>>()
        {
            map.edges.push(MapEdge { probe_requests: 4, ..edge(&id, &p, 4) });
        }
    }
    map.nodes.sort_by(|a, b| a.id.cmp(&b.id));
    map.edges.sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    let mut s = state();
    s.rebuild(
        fold::fold(&map, &Options { level: Some(Level::Pod), ..Options::default() }),
        None,
        &Context::default(),
        0.0,
    );
    let sc = &s.scene;
    assert_eq!(overlaps(sc), 0);
    let band: Vec<usize> = (0..sc.groups.len()).filter(|&i| sc.groups[i].level == "node").collect();
    assert_eq!(band.len(), 3);
    assert!(band.iter().all(|&i| sc.apart[i]));
    let lowest = (0..sc.groups.len()).filter(|i| !band.contains(i)).map(|i| sc.pos[i].1).fold(0.0, f64::max);
    for &i in &band {
        assert_eq!(sc.pos[i].1, sc.pos[band[0]].1, "one band");
        assert!(sc.pos[i].1 >= lowest + BOX_H, "below every box");
    }
    // The probes run up from the band.
    for (e, &(a, b)) in sc.ends.iter().enumerate() {
        if sc.apart[a] {
            assert!(sc.curves[e].p3.1 < sc.curves[e].p0.1 && !sc.apart[b]);
        }
    }
    // A layout without the nodes places the traffic's boxes the same: they are not in its layers.
    let mut without = map.clone();
    without.nodes.retain(|n| n.kind != EndpointKind::Node);
    without.edges.retain(|e| !e.source.starts_with("node:"));
    let mut t = state();
    t.rebuild(
        fold::fold(&without, &Options { level: Some(Level::Pod), ..Options::default() }),
        None,
        &Context::default(),
        0.0,
    );
    for (i, g) in t.scene.groups.iter().enumerate() {
        assert_eq!(t.scene.pos[i], sc.pos[sc.index[&g.id]], "{}", g.id);
    }
}
