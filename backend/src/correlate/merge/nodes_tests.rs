//! Merging what several nodes' agents saw: a two-node cluster (n1 192.168.50.11 with pods on
//! 10.244.1.0/24, n2 192.168.50.12 with 10.244.2.0/24), Service web (ClusterIP 10.96.12.34:80,
//! NodePort 30007) backed by web-a on n1 and web-b on n2, client-a on n1.

use std::net::SocketAddr;

use podtap_shared::{EndpointKind, HttpExchange, Name, ViaKind};

use super::*;
use crate::correlate::record;
use crate::dissect::Exchange;

const T0: u64 = 1_800_000_000_000_000;

fn cluster() -> ClusterState {
    let pod = |name: &str, ip: &str, node: &str, app: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app},
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}], "startTime": "2025-01-01T00:00:00Z"}})
    };
    let node = |name: &str, ip: &str, cidr: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
    };
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        pod("web-a", "10.244.1.11", "n1", "web"), pod("web-b", "10.244.2.11", "n2", "web"),
        pod("client-a", "10.244.1.20", "n1", "client"),
        node("n1", "192.168.50.11", "10.244.1.0/24"), node("n2", "192.168.50.12", "10.244.2.0/24"),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"type": "NodePort", "clusterIP": "10.96.12.34", "selector": {"app": "web"},
                  "ports": [{"port": 80, "targetPort": 3000, "nodePort": 30007}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"port": 3000}],
         "endpoints": [{"addresses": ["10.244.1.11"], "nodeName": "n1", "conditions": {"ready": true}},
                       {"addresses": ["10.244.2.11"], "nodeName": "n2", "conditions": {"ready": true}}]}
    ]});
    let mut state = ClusterState::default();
    crate::resolve::parse_list("two nodes", &serde_json::to_vec(&list).unwrap(), &mut state).unwrap();
    state
}

/// `GET /users` from `client` to `server`, seen by `node`'s agent `after` µs past T0.
fn seen(id: u64, node: &str, client: &str, server: &str, after: u64, c: &ClusterState) -> Record {
    let http = HttpExchange { method: "GET".into(), path: "/users".into(), status: Some(200), ..Default::default() };
    let ex = Exchange {
        conn: id,
        opened_us: None,
        interface: 0,
        points: 1,
        tunnel: None,
        proxied: None,
        client: client.parse::<SocketAddr>().unwrap(),
        server: server.parse::<SocketAddr>().unwrap(),
        ts_us: T0 + after,
        response_ts_us: Some(T0 + after + 500),
        end_us: None,
        request_size: 50,
        response_size: 70,
        seq: None,
        detail: Detail::Http(http),
    };
    let mut r = record(ex, id, Some(&"eth0".into()), c);
    r.nodes.push(Name::from(node));
    r
}

/// Pushes in order; returns what left before any window passed, and everything.
fn merge(records: Vec<Record>, c: &ClusterState) -> (usize, Vec<Record>) {
    let mut m = Merger::default();
    let mut out = Vec::new();
    for r in records {
        let now = r.ts;
        m.push(Box::new(r), now, c, &mut out);
    }
    let early = out.len();
    m.flush_all(&mut out);
    (early, out)
}

#[test]
fn a_pod_seen_from_the_clients_node_and_its_own_is_one_request_each_time() {
    let c = cluster();
    // client-a on n1 calls web-b's own address on n2 twice on one connection.
    let records = vec![
        seen(1, "n1", "10.244.1.20:40000", "10.244.2.11:3000", 0, &c),
        seen(2, "n2", "10.244.1.20:40000", "10.244.2.11:3000", 200, &c),
        seen(3, "n1", "10.244.1.20:40000", "10.244.2.11:3000", 300_000, &c),
        seen(4, "n2", "10.244.1.20:40000", "10.244.2.11:3000", 300_200, &c),
    ];
    let (early, out) = merge(records, &c);
    assert_eq!(early, 0, "a request that crossed nodes waits for its window");
    assert_eq!(out.len(), 2);
    for r in &out {
        assert_eq!((r.observations, r.nodes.len()), (2, 2));
        assert_eq!(r.dst.qualified_name().as_deref(), Some("default/web-b"));
    }
}

/// A request lost between the nodes and sent again: the server's node sees it 1.73 s after the
/// client's saw it leave (a fresh clone's lab cluster did), the same bytes (TCP sequence number).
/// One request, not two; a second request on the connection, later, is its own.
#[test]
fn a_retransmitted_request_seen_late_on_the_servers_node_is_still_one() {
    let c = cluster();
    let with_seq = |mut r: Record, seq: u32| {
        r.seq = Some(seq);
        r
    };
    let records = vec![
        with_seq(seen(1, "n1", "10.244.1.20:40000", "10.244.2.11:3000", 0, &c), 7_000),
        with_seq(seen(2, "n2", "10.244.1.20:40000", "10.244.2.11:3000", 1_730_000, &c), 7_000),
        with_seq(seen(3, "n1", "10.244.1.20:40000", "10.244.2.11:3000", 1_740_000, &c), 7_050),
        with_seq(seen(4, "n2", "10.244.1.20:40000", "10.244.2.11:3000", 1_740_300, &c), 7_050),
    ];
    let (_, out) = merge(records.clone(), &c);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(out.iter().all(|r| r.nodes.len() == 2 && r.observations == 2), "{out:#?}");
    // As a hub flushes, by time: the client's copy is still held when the usual window has passed.
    let mut m = Merger::default();
    let mut out = Vec::new();
    let mut copies = records.into_iter();
    m.push(Box::new(copies.next().unwrap()), T0, &c, &mut out);
    m.flush_due(T0 + 1_500_000, &mut out);
    assert!(out.is_empty(), "the copy bound for n2 waits for n2's: {out:#?}");
    m.push(Box::new(copies.next().unwrap()), T0 + 1_730_000, &c, &mut out);
    m.flush_due(T0 + RETRANSMIT_US + WINDOW_US + 1, &mut out);
    assert_eq!(out.iter().map(|r| r.observations).collect::<Vec<_>>(), [2], "{out:#?}");
    // Without the same bytes, that far apart is two requests (one copy not captured).
    let records = vec![
        seen(1, "n1", "10.244.1.20:40000", "10.244.2.11:3000", 0, &c),
        seen(2, "n2", "10.244.1.20:40000", "10.244.2.11:3000", 1_730_000, &c),
    ];
    assert_eq!(merge(records, &c).1.len(), 2);
}

#[test]
fn a_node_port_on_one_node_to_a_pod_on_another_is_one_request_whichever_node_reports_first() {
    let c = cluster();
    // From outside to n1's NodePort; n1 sends it on (SNAT, port kept) to web-b on n2, and its
    // uplink sees the rewritten copy leave.
    let front = || seen(1, "n1", "192.168.50.100:51000", "192.168.50.11:30007", 0, &c);
    let leaving = || seen(2, "n1", "192.168.50.11:51000", "10.244.2.11:3000", 100, &c);
    let arriving = || seen(3, "n2", "192.168.50.11:51000", "10.244.2.11:3000", 300, &c);
    for order in [vec![front(), leaving(), arriving()], vec![arriving(), front(), leaving()]] {
        let (_, out) = merge(order, &c);
        assert_eq!(out.len(), 1, "{out:#?}");
        let r = &out[0];
        assert_eq!((r.src.kind, r.src.ip.to_string()), (EndpointKind::External, "192.168.50.100".into()));
        assert_eq!(r.dst.qualified_name().as_deref(), Some("default/web-b"));
        assert_eq!((r.via.kind, r.observations), (ViaKind::NodePort, 3));
        assert_eq!(r.nodes.iter().map(|n| &**n).collect::<Vec<_>>(), ["n1", "n2"]);
    }
}

#[test]
fn a_request_that_stayed_on_one_node_leaves_at_once() {
    let c = cluster();
    let records = vec![
        seen(1, "n1", "10.244.1.20:40000", "10.96.12.34:80", 0, &c),
        seen(2, "n1", "10.244.1.20:40000", "10.244.1.11:3000", 100, &c),
    ];
    let (early, out) = merge(records, &c);
    assert_eq!((early, out.len()), (1, 1));
    assert_eq!(out[0].via.kind, ViaKind::ClusterIp);
    assert_eq!(out[0].dst.qualified_name().as_deref(), Some("default/web-a"));
}

#[test]
fn copies_of_a_back_paired_with_the_wrong_front_leave_it_together() {
    let c = cluster();
    // Two NodePort requests 200 ms apart; the first's back (to web-a, on n1) is read late (the
    // capture wrote that interface's packets later), so the second's backs — to web-b, one copy
    // per node — first pair with the first front, then must all move to their own.
    let records = vec![
        seen(1, "n1", "192.168.50.100:37428", "192.168.50.11:30007", 0, &c),
        seen(2, "n2", "192.168.50.11:37430", "10.244.2.11:3000", 200_000, &c),
        seen(3, "n1", "192.168.50.11:37430", "10.244.2.11:3000", 200_000, &c),
        seen(4, "n1", "192.168.50.100:37430", "192.168.50.11:30007", 200_000, &c),
        seen(5, "n1", "10.244.1.1:37428", "10.244.1.11:3000", 0, &c),
    ];
    let (_, out) = merge(records, &c);
    let by_port: Vec<(u16, String, u32)> =
        out.iter().map(|r| (r.src.port, r.dst.name.as_deref().unwrap_or("?").to_string(), r.observations)).collect();
    assert_eq!(out.len(), 2, "{by_port:?}");
    assert!(by_port.contains(&(37428, "web-a".into(), 2)), "{by_port:?}");
    assert!(by_port.contains(&(37430, "web-b".into(), 3)), "{by_port:?}");
}

/// What a file's end hands the merger (capture time "the end": u64::MAX), bound for another
/// node's pod, waits for nothing and overflows nothing (a `tcpdump -i any` capture's connection
/// still open at its end did, in a debug build).
#[test]
fn a_request_to_another_node_at_the_end_of_a_file_leaves_with_the_rest() {
    let c = cluster();
    let mut r = seen(1, "n1", "10.244.1.20:40000", "10.244.2.11:3000", 0, &c);
    r.seq = Some(7_000);
    let (mut m, mut out) = (Merger::default(), Vec::new());
    m.push(Box::new(r), u64::MAX, &c, &mut out);
    m.flush_all(&mut out);
    assert_eq!(out.len(), 1);
}

/// A call through the ClusterIP whose source port conntrack moved, as `tcpdump -i any` on both
/// nodes sees it: on the client's node before the DNAT (its veth), after the DNAT with its own
/// port (the bridge), after conntrack moved the port (the uplink); on the pod's node with the
/// moved port. In whatever order they come, one request, its client's port in `src` and the
/// moved one in `snat` (a fresh clone's seed run made two records of three such calls).
#[test]
fn a_moved_cluster_ip_call_seen_on_every_interface_of_two_nodes_is_one_request() {
    let c = cluster();
    let with_seq = |mut r: Record| {
        r.seq = Some(7_000);
        r
    };
    let copies = [
        with_seq(seen(1, "n1", "10.244.1.20:22920", "10.96.12.34:80", 0, &c)),
        with_seq(seen(2, "n1", "10.244.1.20:22920", "10.244.2.11:3000", 10, &c)),
        with_seq(seen(3, "n1", "10.244.1.20:27217", "10.244.2.11:3000", 20, &c)),
        with_seq(seen(4, "n2", "10.244.1.20:27217", "10.244.2.11:3000", 300, &c)),
    ];
    let orders = [[0, 1, 2, 3], [3, 2, 1, 0], [0, 3, 1, 2], [3, 0, 2, 1], [1, 3, 0, 2], [2, 1, 3, 0], [1, 2, 0, 3]];
    for order in orders {
        let (_, out) = merge(order.iter().map(|i| copies[*i].clone()).collect(), &c);
        assert_eq!(out.len(), 1, "{order:?}: {out:#?}");
        let r = &out[0];
        assert_eq!((r.observations, r.src.port, r.snat.as_ref().map(|s| s.port)), (4, 22920, Some(27217)), "{order:?}");
        assert_eq!((r.dst.qualified_name().as_deref(), r.via.kind), (Some("default/web-b"), ViaKind::ClusterIp));
    }
}

/// The answer lost on its way back: the server's node saw the request answered at once, the
/// client's node 1.7 s later, so the client's copy reaches the merger 1.7 s after the server's.
/// One request, not two (fresh clone 25b's Kafka Produce).
#[test]
fn a_request_whose_answer_came_late_to_the_clients_node_is_still_one() {
    let c = cluster();
    let with_seq = |mut r: Record| {
        r.seq = Some(9_000);
        r
    };
    let server_side = with_seq(seen(1, "n2", "10.244.1.20:40000", "10.244.2.11:3000", 0, &c));
    let client_side = with_seq(seen(2, "n1", "10.244.1.20:40000", "10.244.2.11:3000", 1_000, &c));
    let (mut m, mut out) = (Merger::default(), Vec::new());
    m.push(Box::new(server_side), T0 + 10_000, &c, &mut out);
    m.flush_due(T0 + 1_700_000, &mut out);
    m.push(Box::new(client_side), T0 + 1_730_000, &c, &mut out);
    m.flush_all(&mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!((out[0].observations, out[0].nodes.len()), (2, 2));
}
