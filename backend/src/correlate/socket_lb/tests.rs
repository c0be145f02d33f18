//! Against the lab's cluster (backend/demo/cluster.json): web (ClusterIP 10.96.12.34) backed by
//! 10.244.0.11 and .12; curl-client at 10.244.0.20.

use podtap_shared::{DnsExchange, HttpExchange};

use super::*;
use crate::resolve::load_files;

fn cluster() -> ClusterState {
    load_files(&[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cluster.json")]).unwrap()
}

const T0: u64 = 1_800_000_000_000_000;

fn answer(c: &ClusterState, client: [u8; 4], query: &str, ip: &str, ts: u64) -> Record {
    let mut r = Record::test();
    r.ts = ts;
    r.src = c.resolve_source(client.into(), 53000);
    r.detail = Detail::Dns(DnsExchange {
        query: query.into(),
        qtype: "A".into(),
        rcode: Some("NOERROR".into()),
        answers: vec![ip.into()],
    });
    r
}

fn call(c: &ClusterState, client: [u8; 4], pod: [u8; 4], ts: u64) -> Record {
    let mut r = Record::test();
    r.ts = ts;
    r.src = c.resolve_source(client.into(), 41000);
    r.dst = c.resolve(pod.into(), 3000);
    r.via = Via { kind: ViaKind::Direct, service: None };
    r.detail = Detail::Http(HttpExchange { method: "GET".into(), path: "/users".into(), ..Default::default() });
    r
}

#[test]
fn a_call_to_a_pod_right_after_resolving_its_service_went_through_the_service() {
    let c = cluster();
    let mut lb = SocketLb::default();
    lb.learn(&answer(&c, [10, 244, 0, 20], "web.default.svc.cluster.local", "10.96.12.34", T0), &c);
    let mut r = call(&c, [10, 244, 0, 20], [10, 244, 0, 12], T0 + 2_000);
    lb.apply(&mut r, &c);
    assert_eq!((r.via.kind, r.via.service.as_deref()), (ViaKind::SocketLb, Some("default/web")));
}

#[test]
fn without_the_answer_or_long_after_it_or_to_another_pod_a_call_stays_direct() {
    let c = cluster();
    let mut lb = SocketLb::default();
    // Nobody resolved anything: a genuine direct call.
    let mut r = call(&c, [10, 244, 0, 20], [10, 244, 0, 12], T0);
    lb.apply(&mut r, &c);
    assert_eq!(r.via.kind, ViaKind::Direct);
    lb.learn(&answer(&c, [10, 244, 0, 20], "web.default.svc.cluster.local", "10.96.12.34", T0), &c);
    // Past the window.
    let mut late = call(&c, [10, 244, 0, 20], [10, 244, 0, 12], T0 + REMEMBER_US + 1);
    lb.apply(&mut late, &c);
    assert_eq!(late.via.kind, ViaKind::Direct);
    // Another client did not resolve it.
    let mut other = call(&c, [10, 244, 0, 11], [10, 244, 0, 12], T0 + 1_000);
    lb.apply(&mut other, &c);
    assert_eq!(other.via.kind, ViaKind::Direct);
    // A pod that does not back the Service it resolved.
    let mut elsewhere = call(&c, [10, 244, 0, 20], [10, 244, 0, 20], T0 + 1_000);
    lb.apply(&mut elsewhere, &c);
    assert_eq!(elsewhere.via.kind, ViaKind::Direct);
    // An answer that is no ClusterIP teaches nothing.
    let mut lb = SocketLb::default();
    lb.learn(&answer(&c, [10, 244, 0, 20], "example.com", "203.0.113.9", T0), &c);
    let mut r = call(&c, [10, 244, 0, 20], [10, 244, 0, 12], T0 + 1_000);
    lb.apply(&mut r, &c);
    assert_eq!(r.via.kind, ViaKind::Direct);
}

#[test]
fn a_call_applied_after_the_next_answer_came_still_counts() {
    // Records leave the merge about a second after their request; by then a client that resolves
    // before each call has resolved again. The call still follows an answer it was given.
    let c = cluster();
    let mut lb = SocketLb::default();
    for i in 0..3 {
        lb.learn(&answer(&c, [10, 244, 0, 20], "web.default.svc.cluster.local", "10.96.12.34", T0 + i * 500_000), &c);
    }
    let mut first = call(&c, [10, 244, 0, 20], [10, 244, 0, 11], T0 + 1_000);
    lb.apply(&mut first, &c);
    assert_eq!(first.via.kind, ViaKind::SocketLb);
    // Before the first answer of the run (beyond the clocks' slack): not through it.
    let mut before = call(&c, [10, 244, 0, 20], [10, 244, 0, 11], T0 - 1_000_000);
    lb.apply(&mut before, &c);
    assert_eq!(before.via.kind, ViaKind::Direct);
}

fn with_host(mut r: Record, host: &str) -> Record {
    if let Detail::Http(h) = &mut r.detail {
        h.headers.insert("host", host);
    }
    r
}

#[test]
fn the_host_a_request_names_decides_and_its_connection_follows() {
    let c = cluster();
    let mut lb = SocketLb::default();
    // Asked for by name, nothing resolved seen (a DNS cache): through web.
    for host in ["web", "web.default", "web.default.svc.cluster.local:80", "10.96.12.34"] {
        let mut r = with_host(call(&c, [10, 244, 0, 20], [10, 244, 0, 11], T0), host);
        lb.apply(&mut r, &c);
        assert_eq!((r.via.kind, r.via.service.as_deref()), (ViaKind::SocketLb, Some("default/web")), "{host}");
    }
    // The pod's own address, right after resolving web (a client calling both): direct.
    lb.learn(&answer(&c, [10, 244, 0, 20], "web.default.svc.cluster.local", "10.96.12.34", T0), &c);
    let mut r = with_host(call(&c, [10, 244, 0, 20], [10, 244, 0, 12], T0 + 1_000), "10.244.0.12:3000");
    r.conn = 77;
    lb.apply(&mut r, &c);
    assert_eq!(r.via.kind, ViaKind::Direct);
    // …and so is its connection's record, though the client had just resolved web.
    let mut conn = call(&c, [10, 244, 0, 20], [10, 244, 0, 12], T0 + 1_000);
    conn.conn = 77;
    conn.detail = Detail::Tcp(podtap_shared::TcpConnection::test(1));
    lb.apply(&mut conn, &c);
    assert_eq!(conn.via.kind, ViaKind::Direct);
    // Another Service's name that this pod does not back: not through web.
    let mut other = with_host(call(&c, [10, 244, 0, 20], [10, 244, 0, 12], T0 + 2_000), "api.shop");
    lb.apply(&mut other, &c);
    assert_eq!(other.via.kind, ViaKind::Direct);
}

#[test]
fn a_call_that_leaves_the_merge_after_its_pod_left_the_service_still_went_through_it() {
    // web's 10.244.0.12 left its EndpointSlice (deleted) a second after the call, before the
    // record left the merge: the call was made through web all the same.
    let mut list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/demo/cluster.json")).unwrap())
            .unwrap();
    for item in list["items"].as_array_mut().unwrap() {
        if item["kind"] == "EndpointSlice" {
            item["endpoints"].as_array_mut().unwrap().retain(|e| e["addresses"][0] != "10.244.0.12");
        }
    }
    let mut c = ClusterState::default();
    crate::resolve::parse_list("web's pod gone", &serde_json::to_vec(&list).unwrap(), &mut c).unwrap();
    let pod = crate::resolve::Backend { ip: [10, 244, 0, 12].into(), pod: Some("default/web-2".into()) };
    c.add_former_backend("default/web", pod, T0 + 1_000_000);
    let named = |mut r: Record| {
        if let Detail::Http(h) = &mut r.detail {
            h.headers.insert("host", "web");
        }
        r
    };
    let mut lb = SocketLb::default();
    let mut before = named(call(&c, [10, 244, 0, 20], [10, 244, 0, 12], T0));
    lb.apply(&mut before, &c);
    assert_eq!((before.via.kind, before.via.service.as_deref()), (ViaKind::SocketLb, Some("default/web")));
    // Made after it left: whatever it asked for, not through web.
    let mut after = named(call(&c, [10, 244, 0, 20], [10, 244, 0, 12], T0 + 2_000_000));
    lb.apply(&mut after, &c);
    assert_eq!(after.via.kind, ViaKind::Direct);
}
