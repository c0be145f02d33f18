//! Merging against the lab's cluster (backend/demo/cluster.json): web (ClusterIP 10.96.12.34:80,
//! NodePort 30007) backed by 10.244.0.11 and .12, the node at 192.168.49.2 (bridge 10.244.0.1),
//! curl-client at 10.244.0.20.

use std::net::SocketAddr;

use podtap_shared::{EndpointKind, HttpExchange, ViaKind};

use super::*;
use crate::correlate::record;
use crate::dissect::Exchange;
use crate::resolve::load_files;

fn cluster() -> ClusterState {
    load_files(&[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cluster.json")]).unwrap()
}

/// An observation of `GET path` from `client` to `server` on `iface`, answered after `latency`.
#[allow(clippy::too_many_arguments)] // a test fixture reads best with every field in the call
fn seen(id: u64, conn: u64, iface: &str, client: &str, server: &str, path: &str, ua: &str, latency: u64) -> Record {
    let mut http = HttpExchange { method: "GET".into(), path: path.into(), status: Some(200), ..Default::default() };
    http.headers.insert("user-agent", ua);
    let ex = Exchange {
        conn,
        opened_us: None,
        interface: 0,
        points: 1,
        tunnel: None,
        proxied: None,
        client: client.parse::<SocketAddr>().unwrap(),
        server: server.parse::<SocketAddr>().unwrap(),
        ts_us: 1_800_000_000_000_000, // 2027-01-15: after the lab pods were created
        response_ts_us: Some(1_800_000_000_000_000 + latency),
        end_us: None,
        request_size: 50,
        response_size: 70,
        seq: None,
        detail: Detail::Http(http),
    };
    record(ex, id, Some(&iface.into()), &cluster())
}

fn push(m: &mut Merger, r: Record, now: u64, c: &ClusterState, out: &mut Vec<Record>) {
    m.push(Box::new(r), now, c, out);
}

fn merge(records: Vec<Record>) -> Vec<Record> {
    let c = cluster();
    let mut m = Merger::default();
    let mut out = Vec::new();
    for r in records {
        push(&mut m, r, 5_000_000, &c, &mut out);
    }
    m.flush_all(&mut out);
    out
}

#[test]
fn a_cluster_ip_request_before_and_after_dnat_is_one_record() {
    let client_side = seen(1, 10, "veth-client", "10.244.0.20:40000", "10.96.12.34:80", "/users", "curl/8", 900);
    let server_side = seen(2, 11, "veth-web1", "10.244.0.20:40000", "10.244.0.11:3000", "/users", "curl/8", 400);
    let out = merge(vec![server_side, client_side]);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(r.observations, 2);
    assert_eq!(r.src.qualified_name().as_deref(), Some("default/curl-client"));
    assert_eq!(r.dst.qualified_name().as_deref(), Some("default/web-7d4b9c8f6-x2k9p"));
    assert_eq!((r.via.kind, r.via.service.as_deref()), (ViaKind::ClusterIp, Some("default/web")));
    assert_eq!((r.conn, r.latency_us, r.id), (10, Some(900), 1), "the client's connection and wait");
    assert_eq!(r.interface.as_deref(), Some("veth-web1"), "where the pod answered");
}

#[test]
fn a_node_port_request_keeps_the_outside_client_through_snat() {
    let outside = seen(1, 20, "eth0", "192.168.49.100:51000", "192.168.49.2:30007", "/users", "curl/8", 800);
    // Another request to the same path whose SNAT port differs, and this one's port kept.
    let other = seen(2, 21, "veth-web2", "10.244.0.1:33333", "10.244.0.12:3000", "/users", "curl/8", 300);
    let inside = seen(3, 22, "veth-web1", "10.244.0.1:51000", "10.244.0.11:3000", "/users", "curl/8", 300);
    let out = merge(vec![outside, other, inside]);
    assert_eq!(out.len(), 2);
    let r = out.iter().find(|r| r.observations == 2).expect("merged");
    assert_eq!((r.src.kind, r.src.ip.to_string()), (EndpointKind::External, "192.168.49.100".to_string()));
    assert_eq!(r.dst.qualified_name().as_deref(), Some("default/web-7d4b9c8f6-x2k9p"), "the one that kept the port");
    assert_eq!((r.via.kind, r.via.service.as_deref()), (ViaKind::NodePort, Some("default/web")));
    let alone = out.iter().find(|r| r.observations == 1).unwrap();
    assert_eq!(alone.src.kind, EndpointKind::Node);
}

#[test]
fn two_requests_to_one_address_never_merge() {
    // The same request twice from one socket to one pod (a keep-alive repeat, or the port reused
    // within the window): nothing rewrote either, so they are two requests.
    let a = seen(1, 30, "veth-client", "10.244.0.20:40001", "10.244.0.11:3000", "/x", "curl/8", 500);
    let b = seen(2, 31, "veth-web1", "10.244.0.20:40001", "10.244.0.11:3000", "/x", "curl/8", 200);
    let out = merge(vec![a, b]);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|r| r.observations == 1));
}

#[test]
fn repeats_on_one_interface_probes_and_late_partners_stay_apart() {
    let c = cluster();
    let mut m = Merger::default();
    let mut out = Vec::new();
    // Two identical requests on one keep-alive connection: one destination, so two requests.
    push(&mut m, seen(1, 40, "veth-client", "10.244.0.20:40002", "10.96.12.34:80", "/a", "curl/8", 1), 0, &c, &mut out);
    push(&mut m, seen(2, 40, "veth-client", "10.244.0.20:40002", "10.96.12.34:80", "/a", "curl/8", 1), 0, &c, &mut out);
    // A kubelet probe from the node's bridge address never pairs with NodePort traffic.
    push(
        &mut m,
        seen(3, 41, "eth0", "192.168.49.100:5000", "192.168.49.2:30007", "/health", "curl/8", 1),
        0,
        &c,
        &mut out,
    );
    push(
        &mut m,
        seen(4, 42, "veth-web1", "10.244.0.1:5000", "10.244.0.11:3000", "/health", "kube-probe/1.31", 1),
        0,
        &c,
        &mut out,
    );
    m.flush_due(WINDOW_US, &mut out);
    assert!(out.is_empty(), "nothing leaves before its window has passed");
    // The partner of the first /a arrives after the window: too late to be the same request.
    m.flush_due(WINDOW_US + 1, &mut out);
    assert_eq!(out.len(), 4);
    push(
        &mut m,
        seen(5, 43, "veth-web1", "10.244.0.20:40002", "10.244.0.11:3000", "/a", "curl/8", 1),
        WINDOW_US + 2,
        &c,
        &mut out,
    );
    m.flush_all(&mut out);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|r| r.observations == 1));
    assert_eq!(m.pending(), 0);
    let probe = out.iter().find(|r| r.probe).unwrap();
    assert_eq!(probe.via.kind, ViaKind::Direct);
}

#[test]
fn no_interface_is_needed_to_merge() {
    // Classic pcap (mergecap -F pcap) and `tcpdump -i any` carry no interface names or indexes.
    let c = cluster();
    let mut m = Merger::default();
    let mut a = seen(1, 50, "x", "10.244.0.20:40100", "10.96.12.34:80", "/n", "curl/8", 9);
    let mut b = seen(2, 51, "x", "10.244.0.20:40100", "10.244.0.12:3000", "/n", "curl/8", 4);
    a.interface = None;
    b.interface = None;
    let mut out = Vec::new();
    m.push(Box::new(a), 0, &c, &mut out);
    m.push(Box::new(b), 0, &c, &mut out);
    assert_eq!(out.len(), 1, "a complete request leaves at once, without waiting for its window");
    assert_eq!(m.pending(), 0);
    m.flush_all(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].observations, out[0].via.kind), (2, ViaKind::ClusterIp));
}

#[test]
fn one_client_port_towards_two_pods_is_two_requests() {
    // kubelet probes web's two pods one after the other; the kernel gave both connections the
    // same source port (it may: the destinations differ). Nothing rewrote either.
    let a = seen(1, 60, "veth-web1", "10.244.0.1:47000", "10.244.0.11:3000", "/health", "kube-probe/1.31", 300);
    let b = seen(2, 61, "veth-web2", "10.244.0.1:47000", "10.244.0.12:3000", "/health", "kube-probe/1.31", 300);
    let out = merge(vec![a, b]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|r| r.observations == 1 && r.probe));
}

#[test]
fn a_keep_alive_connection_joined_mid_stream_pairs_each_request_by_its_sequence_number() {
    // The server's veth saw requests 1-4 of a keep-alive connection; the client's capture began
    // at request 3 (a new pod's interface found a moment after it started talking). Same path,
    // same socket, all within the window: only the sequence numbers tell them apart.
    let at = |mut r: Record, i: u64, seq: u32| {
        r.ts += i * 50_000;
        r.seq = Some(seq);
        r
    };
    let server = |i: u64| {
        let r = seen(i, 11, "veth-web1", "10.244.0.20:40000", "10.244.0.11:3000", "/users", "curl/8", 400);
        at(r, i, 1000 + 100 * i as u32)
    };
    let client = |i: u64| {
        let r = seen(10 + i, 10, "veth-client", "10.244.0.20:40000", "10.96.12.34:80", "/users", "curl/8", 900);
        at(r, i, 1000 + 100 * i as u32)
    };
    let out = merge(vec![server(1), server(2), server(3), client(3), server(4), client(4)]);
    assert_eq!(out.len(), 4, "one record per request");
    let by_seq = |seq: u32| out.iter().find(|r| r.seq == Some(seq)).expect("each request");
    for i in [1, 2] {
        assert_eq!(by_seq(1000 + 100 * i).observations, 1, "request {i}: only the server saw it");
    }
    for i in [3, 4u64] {
        let r = by_seq(1000 + 100 * i as u32);
        assert_eq!((r.observations, r.via.kind), (2, ViaKind::ClusterIp), "request {i}");
        assert_eq!(r.ts, 1_800_000_000_000_000 + i * 50_000, "request {i} keeps its own time");
    }
    // Without sequence numbers (an older agent) the oldest open request is taken, as before.
    let strip = |mut r: Record| {
        r.seq = None;
        r
    };
    let out = merge(vec![strip(server(1)), strip(client(3))]);
    assert_eq!(out.len(), 1);
}

#[test]
fn a_source_port_conntrack_moved_is_one_request_by_its_sequence_number() {
    // A client connected to the pod's address from the port its connection through the Service
    // still held in conntrack: conntrack moved the new connection to another source port between
    // the client's veth and the pod's. Same pod socket, same bytes: one request, the client's
    // own port in `src`, the moved one in `snat`.
    let at = |mut r: Record, ts: u64, seq: Option<u32>| {
        r.ts += ts;
        r.seq = seq;
        r
    };
    let client =
        |seq| at(seen(1, 10, "veth-client", "10.244.0.20:40000", "10.244.0.11:3000", "/k", "lib", 900), 0, seq);
    let server = |seq| at(seen(2, 11, "veth-web1", "10.244.0.20:51000", "10.244.0.11:3000", "/k", "lib", 800), 40, seq);
    let out = merge(vec![client(Some(7)), server(Some(7))]);
    assert_eq!(out.len(), 1, "one request");
    let r = &out[0];
    assert_eq!((r.src.port, r.snat.as_ref().map(|s| s.port), r.observations), (40000, Some(51000), 2));
    assert_eq!((r.dst.ip, r.via.kind, r.latency_us), ("10.244.0.11".parse().unwrap(), ViaKind::Direct, Some(900)));
    // Whichever copy comes first.
    let out = merge(vec![server(Some(7)), client(Some(7))]);
    assert_eq!((out.len(), out[0].src.port, out[0].snat.as_ref().map(|s| s.port)), (1, 40000, Some(51000)));
    // Other bytes, or no sequence number to tell: two requests.
    assert_eq!(merge(vec![client(Some(7)), server(Some(8))]).len(), 2);
    assert_eq!(merge(vec![client(None), server(None)]).len(), 2);
}

#[test]
fn a_cluster_ip_request_whose_source_port_conntrack_moved_is_one_request_by_its_sequence_number() {
    // An earlier pod with the client's address had connected from the same port to the pod the
    // DNAT chose, and conntrack still held that connection: the DNAT'd one got another source
    // port too. Rule 1 (same client socket) cannot pair them; the sequence number does.
    let at = |mut r: Record, seq: Option<u32>| {
        r.seq = seq;
        r
    };
    let client = |seq| at(seen(1, 10, "veth-client", "10.244.0.20:40000", "10.96.12.34:80", "/k", "lib", 900), seq);
    let server = |seq, pod: &str| at(seen(2, 11, "veth-web1", "10.244.0.20:43225", pod, "/k", "lib", 800), seq);
    for order in [[0, 1], [1, 0]] {
        let pair = [client(Some(7)), server(Some(7), "10.244.0.11:3000")];
        let out = merge(order.iter().map(|i| pair[*i].clone()).collect());
        assert_eq!(out.len(), 1, "one request, whichever copy comes first");
        let r = &out[0];
        assert_eq!((r.src.port, r.snat.as_ref().map(|s| s.port), r.observations), (40000, Some(43225), 2));
        assert_eq!((r.dst.ip, r.via.kind), ("10.244.0.11".parse().unwrap(), ViaKind::ClusterIp));
        assert_eq!(r.via.service.as_deref(), Some("default/web"));
    }
    // Other bytes, no sequence number, or a pod that does not back the Service: two requests.
    assert_eq!(merge(vec![client(Some(7)), server(Some(8), "10.244.0.11:3000")]).len(), 2);
    assert_eq!(merge(vec![client(None), server(None, "10.244.0.11:3000")]).len(), 2);
    assert_eq!(merge(vec![client(Some(7)), server(Some(7), "10.244.0.20:3000")]).len(), 2);
}

#[test]
fn a_queue_keeps_its_ids_in_order_whatever_leaves_first() {
    let mut q = Queue::default();
    for id in [3, 1, 2, 5, 4] {
        q.insert(id);
    }
    assert_eq!(q.iter().copied().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    q.remove(1); // the front: skipped over
    q.remove(4); // the middle
    q.remove(9); // not there
    assert_eq!(q.iter().copied().collect::<Vec<_>>(), [2, 3, 5]);
    q.insert(6);
    q.insert(0);
    assert_eq!(q.iter().copied().collect::<Vec<_>>(), [0, 2, 3, 5, 6]);
    for id in [0, 2, 3, 5, 6] {
        q.remove(id);
    }
    assert!(q.is_empty());
    // A second's worth of one keep-alive connection's repeats, leaving oldest first.
    (0..20_000).for_each(|id| q.insert(id));
    (0..20_000).for_each(|id| q.remove(id));
    assert!(q.is_empty() && q.ids.len() < 2);
}
