//! Folding keeps every count: a folded box's edges sum its members', toggles take away exactly
//! the requests they name, and ids follow `shared::group`.

use podtap_shared::{EndpointKind, MapEdge, MapNode, ServiceMap};

use super::*;

fn node(id: &str, kind: EndpointKind, ns: Option<&str>, workload: Option<&str>) -> MapNode {
    MapNode {
        id: id.into(),
        kind,
        // As the server labels them: a pod by its name, an address by itself.
        label: id.rsplit(['/', ':']).next().unwrap().into(),
        namespace: ns.map(str::to_string),
        workload: workload.map(str::to_string),
        node: (kind == EndpointKind::Pod).then(|| "node-1".to_string()),
        locked: false,
    }
}

fn edge(s: &str, t: &str, requests: u64, connections: u64) -> MapEdge {
    MapEdge {
        source: s.into(),
        target: t.into(),
        requests,
        connections,
        errors: requests / 10,
        probe_requests: 0,
        bytes: requests * 100,
        p50_ms: Some(1.0),
        p95_ms: Some(2.0),
        p99_ms: Some(3.0),
        dns_requests: 0,
        protocols: vec!["http".into()],
        gapped_connections: 0,
        topic: None,
    }
}

/// The demo's shape: a client through Service web to two web pods, probes from the node, DNS
/// through kube-dns, two external peers in one block, and web calling shop/api's three pods.
fn map() -> ServiceMap {
    use EndpointKind::*;
    let mut edges = vec![
        edge("pod:default/client", "service:default/web", 30, 6),
        edge("service:default/web", "pod:default/web-1", 20, 4),
        edge("service:default/web", "pod:default/web-2", 10, 2),
        edge("external:203.0.113.5", "service:default/web", 4, 4),
        edge("external:203.0.113.9", "service:default/web", 6, 6),
        edge("pod:default/web-1", "service:shop/api", 7, 1),
        edge("pod:default/web-2", "service:shop/api", 5, 1),
        edge("service:shop/api", "pod:shop/api-1", 12, 2),
        edge("pod:default/client", "service:kube-system/kube-dns", 8, 8),
        edge("service:kube-system/kube-dns", "pod:kube-system/coredns-1", 8, 8),
        edge("node:n1", "pod:default/web-1", 3, 3),
        edge("pod:default/client", "ip:10.9.9.9", 0, 2),
    ];
    for e in &mut edges[8..10] {
        e.dns_requests = e.requests;
        e.protocols = vec!["dns".into()];
    }
    edges[10].probe_requests = 3;
    edges.sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    let mut nodes = vec![
        node("pod:default/client", Pod, Some("default"), None),
        node("service:default/web", Service, Some("default"), None),
        node("pod:default/web-1", Pod, Some("default"), Some("Deployment/web")),
        node("pod:default/web-2", Pod, Some("default"), Some("Deployment/web")),
        node("external:203.0.113.5", External, None, None),
        node("external:203.0.113.9", External, None, None),
        node("service:shop/api", Service, Some("shop"), None),
        node("pod:shop/api-1", Pod, Some("shop"), Some("Deployment/api")),
        node("service:kube-system/kube-dns", Service, Some("kube-system"), None),
        node("pod:kube-system/coredns-1", Pod, Some("kube-system"), Some("Deployment/coredns")),
        node("node:n1", Node, None, None),
        node("ip:10.9.9.9", Unknown, None, None),
    ];
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    ServiceMap { nodes, edges }
}

fn at(level: Level) -> Options {
    Options { level: Some(level), ..Options::default() }
}

fn link<'a>(f: &'a Folded, s: &str, t: &str) -> &'a Link {
    f.links.iter().find(|l| l.source == s && l.target == t).unwrap_or_else(|| panic!("no {s} → {t} in {:?}", f.links))
}

fn group<'a>(f: &'a Folded, id: &str) -> &'a Group {
    f.groups.iter().find(|g| g.id == id).unwrap_or_else(|| panic!("no {id}"))
}

#[test]
fn at_pod_level_nothing_folds() {
    let m = map();
    let f = fold(&m, &at(Level::Pod));
    assert_eq!(f.groups.len(), m.nodes.len());
    assert_eq!(f.links.len(), m.edges.len());
    assert_eq!(link(&f, "service:default/web", "pod:default/web-1").p95_ms, Some(2.0));
    assert!(f.groups.iter().all(|g| g.members == 0 && !g.folded));
    assert_eq!(group(&f, "ip:10.9.9.9").level, "unresolved");
}

#[test]
fn replicas_fold_into_their_workload_and_the_sums_are_exact() {
    let f = fold(&map(), &at(Level::Workload));
    let web = group(&f, "workload:default/Deployment/web");
    assert_eq!((web.level, web.members, web.folded), ("workload", 2, true));
    assert_eq!(web.replicas, vec![("pod:default/web-1".into(), 23), ("pod:default/web-2".into(), 10)]);
    let into_web = link(&f, "service:default/web", "workload:default/Deployment/web");
    assert_eq!((into_web.requests, into_web.connections, into_web.members), (30, 6, 2));
    assert_eq!(into_web.errors, 2 + 1);
    // A sum has no percentiles of its own: the hover card asks the server.
    assert_eq!(into_web.p95_ms, None);
    let out = link(&f, "workload:default/Deployment/web", "service:shop/api");
    assert_eq!((out.requests, out.connections), (12, 2));
    // The two peers of 203.0.113.0/24 are one box; the client is a bare pod and stays one.
    let ext = link(&f, "external:203.0.113.0/24", "service:default/web");
    assert_eq!((ext.requests, ext.connections), (10, 10));
    assert!(f.groups.iter().any(|g| g.id == "pod:default/client" && g.level == "pod"));
    assert_eq!(group(&f, "pod:default/client").parent.as_deref(), Some("namespace:default"));
}

#[test]
fn external_peers_fold_by_the_name_dns_gave_them_else_by_block() {
    use EndpointKind::External;
    let mut m = map();
    // Two addresses of one name in two blocks, and one named peer alone in its block.
    for (ip, req) in [("198.51.100.7", 5), ("192.0.2.44", 7), ("203.0.113.77", 2)] {
        let id = format!("external:{ip}");
        m.nodes.push(MapNode {
            label: if ip == "203.0.113.77" { "cdn.example.net" } else { "api.example.com" }.into(),
            ..node(&id, External, None, None)
        });
        m.edges.push(edge("pod:default/client", &id, req, 1));
    }
    m.nodes.sort_by(|a, b| a.id.cmp(&b.id));
    m.edges.sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    let f = fold(&m, &at(Level::Workload));
    let api = group(&f, "external:api.example.com");
    assert_eq!((api.level, api.label.as_str(), api.folded), ("external", "api.example.com", true));
    assert_eq!(link(&f, "pod:default/client", "external:api.example.com").requests, 12);
    // Alone under its name: its own box, labelled with the name; the unnamed pair keeps its block.
    assert_eq!(group(&f, "external:203.0.113.77").label, "cdn.example.net");
    assert_eq!(link(&f, "external:203.0.113.0/24", "service:default/web").requests, 10);
    // Opened, the name's box shows its addresses.
    let open = Options { open: ["external:api.example.com".to_string()].into(), ..at(Level::Workload) };
    let f = fold(&m, &open);
    assert_eq!(link(&f, "pod:default/client", "external:192.0.2.44").requests, 7);
    assert_eq!(group(&f, "external:192.0.2.44").parent.as_deref(), Some("external:api.example.com"));
}

#[test]
fn namespaces_fold_their_services_and_count_inner_traffic_apart() {
    let f = fold(&map(), &at(Level::Namespace));
    let default = group(&f, "namespace:default");
    // Pods client, web-1, web-2; the Service folds in but is not a pod.
    assert_eq!((default.level, default.members), ("namespace", 3));
    // client → web and web → its pods are inside default: not drawn, counted.
    assert_eq!(default.internal, 30 + 20 + 10);
    let to_shop = link(&f, "namespace:default", "namespace:shop");
    assert_eq!(to_shop.requests, 12);
    assert_eq!(group(&f, "namespace:shop").internal, 12);
    // Opening a namespace shows its workloads, still folded.
    let mut opts = at(Level::Namespace);
    opts.open.insert("namespace:default".into());
    let f = fold(&map(), &opts);
    assert_eq!(group(&f, "workload:default/Deployment/web").members, 2);
    assert_eq!(link(&f, "workload:default/Deployment/web", "namespace:shop").requests, 12);
    // …and opening the workload too shows its pods.
    opts.open.insert("workload:default/Deployment/web".into());
    let f = fold(&map(), &opts);
    assert_eq!(link(&f, "pod:default/web-1", "namespace:shop").requests, 7);
    assert_eq!(group(&f, "pod:default/web-1").parent.as_deref(), Some("workload:default/Deployment/web"));
}

#[test]
fn toggles_take_away_exactly_what_they_name() {
    let m = map();
    let all = fold(&m, &at(Level::Workload));
    let total = |f: &Folded| f.links.iter().map(|l| l.requests).sum::<u64>();
    let probes = fold(&m, &Options { hide_probes: true, ..at(Level::Workload) });
    assert_eq!(total(&all) - total(&probes), 3);
    // Each request once, whatever the level: 30 + 4 + 6 + 12 + 8 + 3 on first legs.
    assert_eq!(all.requests, 63);
    assert_eq!(fold(&m, &at(Level::Namespace)).requests, 63);
    assert_eq!(all.requests - probes.requests, 3);
    assert_eq!(probes.hidden.probe_requests, 3);
    // The node sent only probes: it goes.
    assert!(!probes.groups.iter().any(|g| g.id == "node:n1"));
    let dns = fold(&m, &Options { hide_dns: true, ..at(Level::Workload) });
    // One DNS query is on two edges (client → kube-dns → coredns): 16 fewer on the map, 8 queries.
    assert_eq!(total(&all) - total(&dns), 16);
    assert_eq!(dns.hidden.dns_requests, 8);
    assert!(!dns.groups.iter().any(|g| g.id.contains("coredns")));
    let system = fold(&m, &Options { hide_system: true, ..at(Level::Workload) });
    assert!(system.groups.iter().all(|g| g.namespace.as_deref() != Some("kube-system")));
    assert_eq!(system.hidden.system_requests, 8);
    let idle = fold(&m, &Options { hide_idle: true, ..at(Level::Workload) });
    assert!(!idle.groups.iter().any(|g| g.id == "ip:10.9.9.9"));
    assert_eq!(idle.hidden.idle_edges, 1);
    assert_eq!(total(&idle), total(&all));
}

#[test]
fn styles_follow_what_an_edge_carries() {
    let f = fold(&map(), &at(Level::Pod));
    assert!(link(&f, "node:n1", "pod:default/web-1").probe_only());
    assert!(link(&f, "pod:default/client", "service:kube-system/kube-dns").dns_only());
    assert!(!link(&f, "pod:default/client", "service:default/web").probe_only());
}

#[test]
fn the_level_is_chosen_by_size_unless_asked() {
    assert_eq!(auto_level(&map()), Level::Pod);
    let mut big = ServiceMap::default();
    for i in 0..200 {
        let ns = format!("ns-{}", i / 50);
        let w = format!("Deployment/app-{}", i / 4);
        big.nodes.push(node(&format!("pod:{ns}/app-{i}"), EndpointKind::Pod, Some(&ns), Some(&w)));
    }
    assert_eq!(auto_level(&big), Level::Workload);
    for i in 200..1000 {
        let ns = format!("ns-{}", i / 50);
        let w = format!("Deployment/app-{}", i / 4);
        big.nodes.push(node(&format!("pod:{ns}/app-{i}"), EndpointKind::Pod, Some(&ns), Some(&w)));
    }
    assert_eq!(auto_level(&big), Level::Namespace);
    assert_eq!(fold(&big, &Options::default()).level, Some(Level::Namespace));
}

#[test]
fn a_topics_edges_are_drawn_but_counted_once_on_the_brokers_edge() {
    use EndpointKind::*;
    let mut m = ServiceMap {
        nodes: vec![
            node("pod:data/kafka-0", Pod, Some("data"), Some("StatefulSet/kafka")),
            node("pod:shop/orders-1", Pod, Some("shop"), Some("Deployment/orders")),
            node("pod:shop/billing-1", Pod, Some("shop"), Some("Deployment/billing")),
            node("topic:data/kafka/orders", Topic, Some("data"), None),
        ],
        edges: vec![
            edge("pod:shop/orders-1", "pod:data/kafka-0", 12, 1),
            edge("pod:shop/billing-1", "pod:data/kafka-0", 40, 1),
            edge("pod:shop/orders-1", "topic:data/kafka/orders", 10, 1),
            edge("topic:data/kafka/orders", "pod:shop/billing-1", 35, 1),
        ],
    };
    for e in m.edges.iter_mut().filter(|e| e.source.starts_with("topic:") || e.target.starts_with("topic:")) {
        e.topic = Some("orders".into());
    }
    for level in [Level::Pod, Level::Workload, Level::Namespace] {
        let f = fold(&m, &at(level));
        assert_eq!(f.requests, 52, "each request once, on its broker edge ({level:?})");
        let topic = group(&f, "topic:data/kafka/orders");
        assert_eq!((topic.level, topic.label.as_str(), topic.members), ("topic", "orders", 0), "never folded");
        let into: Vec<&Link> = f.links.iter().filter(|l| l.target == "topic:data/kafka/orders").collect();
        assert_eq!(into.len(), 1);
        assert_eq!((into[0].requests, into[0].topic.as_deref()), (10, Some("orders")));
        assert!(into[0].counted_elsewhere());
        assert!(f.links.iter().filter(|l| l.topic.is_none()).all(|l| !l.counted_elsewhere()));
    }
    // The broker's replica bar counts the requests it served, not the fetches a consumer made.
    let f = fold(&m, &at(Level::Workload));
    let kafka = group(&f, "workload:data/StatefulSet/kafka");
    assert_eq!(kafka.replicas, vec![("pod:data/kafka-0".to_string(), 52)]);
    let billing = group(&f, "workload:shop/Deployment/billing");
    assert_eq!(billing.replicas, vec![("pod:shop/billing-1".to_string(), 0)]);
}

/// A peer outside the viewer's namespaces (the server's `workload:` box, locked) stays one
/// locked box at every level but a folded namespace, which takes it in, and is never opened.
#[test]
fn a_locked_peer_is_its_own_box_and_never_opens() {
    use EndpointKind::*;
    let peer =
        MapNode { locked: true, ..node("workload:team-b/Deployment/api", Pod, Some("team-b"), Some("Deployment/api")) };
    let m = ServiceMap {
        nodes: vec![node("pod:team-a/web-1", Pod, Some("team-a"), Some("Deployment/web")), peer],
        edges: vec![edge("pod:team-a/web-1", "workload:team-b/Deployment/api", 9, 3)],
    };
    for level in [Level::Pod, Level::Workload] {
        let f = fold(&m, &at(level));
        let g = group(&f, "workload:team-b/Deployment/api");
        assert_eq!((g.level, g.folded, g.members), ("locked", false, 0), "{level:?}");
        assert!(g.sub.contains("outside your namespaces"), "{}", g.sub);
        assert_eq!(f.requests, 9);
    }
    let f = fold(&m, &at(Level::Namespace));
    assert_eq!(group(&f, "namespace:team-b").level, "namespace");
    assert_eq!(f.requests, 9);
}
