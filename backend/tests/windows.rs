//! Time as an axis, against a fresh lab run's server logs (`cargo xtask test` runs the lab as root
//! and sets PODTAP_LAB_DIR): for a sub-window of the run, the windowed map and balance the API
//! answers equal what the servers logged in that window; every connection record is a connection
//! a server logged (count, client, pod); every request ends at or after it starts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use axum::body::{Body, to_bytes};
use axum::http::Request;
use podtap::publish::{AppState, Assets, Guard, Hub, app};
use podtap_shared::{EndpointKind, ViaKind};
use serde_json::Value;
use tower::ServiceExt;

/// One request a server logged.
struct Served {
    ts_us: u64,
    pod: String,
    conn: u64,
    peer: String,
    probe: bool,
}

fn lab_dir() -> PathBuf {
    PathBuf::from(std::env::var("PODTAP_LAB_DIR").expect("PODTAP_LAB_DIR: run through `cargo xtask test`"))
}

/// The web and api servers' logs, with each pod's namespace.
fn served(dir: &Path) -> Vec<Served> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir.join("logs")).expect("logs/") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ns = match () {
            _ if name.starts_with("web-") => "default",
            _ if name.starts_with("api-") => "shop",
            _ => continue,
        };
        for line in std::fs::read_to_string(&path).unwrap().lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            rows.push(Served {
                ts_us: (v["ts"].as_f64().unwrap() * 1e6) as u64,
                pod: format!("{ns}/{}", v["pod"].as_str().unwrap()),
                conn: v["conn"].as_u64().unwrap(),
                peer: v["peer_ip"].as_str().unwrap().to_string(),
                probe: v["user_agent"].as_str().unwrap().starts_with("kube-probe/"),
            });
        }
    }
    rows.sort_by_key(|r| r.ts_us);
    rows
}

/// A window whose edges sit in quiet gaps of the run: the widest gap in the run's second fifth and
/// the widest in its fourth, so the window always holds at least the middle fifth of the requests
/// whatever the lab's timing (the two widest gaps of the whole middle once sat side by side and
/// held 8 of 234). No request is near either edge, so the servers' clock (when they answered) and
/// the capture's (when the request began) put every request on the same side.
fn quiet_window(rows: &[Served]) -> (u64, u64) {
    let n = rows.len();
    assert!(n >= 50, "the lab run served {n} requests");
    let widest =
        |part: &[Served]| part.windows(2).map(|w| (w[1].ts_us - w[0].ts_us, w[0].ts_us)).max().expect("two requests");
    let (first, second) = (widest(&rows[n / 5..n * 2 / 5]), widest(&rows[n * 3 / 5..n * 4 / 5]));
    for (gap, at) in [first, second] {
        assert!(gap >= 20_000, "the lab run has a quiet gap of at least 20 ms in each part: {gap} µs at {at}");
    }
    (first.1 + first.0 / 2, second.1 + second.0 / 2)
}

async fn get(hub: &Hub, uri: &str) -> Value {
    let guard = Guard::new("127.0.0.1:8080".parse().unwrap(), vec![]);
    let share = std::sync::Arc::new(podtap::share::Share::ephemeral());
    let state = AppState::new(hub.clone(), std::sync::Arc::new(Assets::not_built()), None, guard, share);
    let resp = app(state).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    assert!(resp.status().is_success(), "{uri}: {}", resp.status());
    serde_json::from_slice(&to_bytes(resp.into_body(), 64 << 20).await.unwrap()).unwrap()
}

#[tokio::test]
#[ignore = "needs a fresh lab run with its server logs: `cargo xtask test` sets PODTAP_LAB_DIR"]
async fn a_sub_window_of_the_run_gives_the_servers_counts_for_that_window() {
    let dir = lab_dir();
    let rows = served(&dir);
    let (from, to) = quiet_window(&rows);
    let inside: Vec<&Served> = rows.iter().filter(|r| r.ts_us >= from && r.ts_us <= to).collect();
    // At least the middle fifth, at most the middle three fifths, by construction.
    let share = inside.len() as f64 / rows.len() as f64;
    assert!((0.19..=0.61).contains(&share), "a real sub-window: {} of {}", inside.len(), rows.len());

    let (records, _) = common::analyze_everything(&dir, "capture.pcapng", common::Records::PerRequest);
    let hub = Hub::new("lab", 1_000_000);
    hub.set_cluster(common::cluster(&dir));
    hub.publish(&records);

    // The map: requests into each pod, on every edge that ends there.
    let map = get(&hub, &format!("/api/v1/map?from={from}&to={to}")).await;
    let mut into: BTreeMap<String, u64> = BTreeMap::new();
    for e in map["edges"].as_array().unwrap() {
        if let Some(pod) = e["target"].as_str().unwrap().strip_prefix("pod:") {
            *into.entry(pod.to_string()).or_default() += e["requests"].as_u64().unwrap();
        }
    }
    let mut logged: BTreeMap<String, u64> = BTreeMap::new();
    for r in &inside {
        *logged.entry(r.pod.clone()).or_default() += 1;
    }
    for (pod, n) in &logged {
        assert_eq!(into.get(pod), Some(n), "requests {pod} served in the window");
    }

    // The balance: per pod, requests through the Service and their connections; probes apart.
    for service in ["default/web", "shop/api"] {
        let (ns, name) = service.split_once('/').unwrap();
        let b = get(&hub, &format!("/api/v1/services/{ns}/{name}/balance?from={from}&to={to}")).await;
        for e in b["endpoints"].as_array().unwrap() {
            let pod = e["pod"].as_str().unwrap();
            let mine: Vec<&&Served> = inside.iter().filter(|r| r.pod == pod).collect();
            let probes = mine.iter().filter(|r| r.probe).count() as u64;
            let real: Vec<&&&Served> = mine.iter().filter(|r| !r.probe).collect();
            let conns: BTreeSet<u64> = real.iter().map(|r| r.conn).collect();
            assert_eq!(e["probe_requests"].as_u64(), Some(probes), "{pod} probes in the window");
            assert_eq!(e["requests"].as_u64(), Some(real.len() as u64), "{pod} requests in the window");
            assert_eq!(e["connections"].as_u64(), Some(conns.len() as u64), "{pod} connections in the window");
        }
    }

    // The timeline counts the same requests (and the DNS and gRPC ones besides).
    let t = get(&hub, &format!("/api/v1/timeline?from={from}&to={to}&step=1s&filter=kind:http")).await;
    let total: u64 = t["buckets"].as_array().unwrap().iter().map(|b| b["requests"].as_u64().unwrap()).sum();
    let http_inside = records.iter().filter(|r| r.http().is_some() && r.ts >= from && r.ts <= to).count() as u64;
    assert_eq!(total, http_inside);
    assert!(total >= inside.len() as u64, "web and api requests are HTTP");
}

#[test]
#[ignore = "needs a fresh lab run with its server logs: `cargo xtask test` sets PODTAP_LAB_DIR"]
fn connection_records_are_the_connections_the_servers_logged() {
    let dir = lab_dir();
    let rows = served(&dir);
    let (records, _) = common::analyze_everything(&dir, "capture.pcapng", common::Records::PerRequest);
    for r in records.iter().filter(|r| r.is_request()) {
        assert!(r.end_us.is_some_and(|e| e >= r.ts), "a request ends at or after it starts: {r:?}");
    }
    let tcp: Vec<_> = records.iter().filter(|r| !r.is_request() && r.dst.kind == EndpointKind::Pod).collect();
    // Per pod: as many connections as its server logged, from the same clients. (Behind a
    // NodePort the server sees the node's address, podtap the real client.)
    let mut logged: BTreeMap<String, BTreeSet<(u64, String)>> = BTreeMap::new();
    for r in &rows {
        logged.entry(r.pod.clone()).or_default().insert((r.conn, r.peer.clone()));
    }
    for (pod, conns) in &logged {
        let seen: Vec<_> = tcp.iter().filter(|r| r.dst.qualified_name().as_deref() == Some(pod.as_str())).collect();
        assert_eq!(seen.len(), conns.len(), "connections to {pod}");
        let mut by_client: BTreeMap<String, usize> = BTreeMap::new();
        for r in seen.iter().filter(|r| r.via.kind != ViaKind::NodePort) {
            *by_client.entry(r.src.ip.to_string()).or_default() += 1;
        }
        let nodeport = seen.iter().filter(|r| r.via.kind == ViaKind::NodePort).count();
        let mut logged_by_peer: BTreeMap<String, usize> = BTreeMap::new();
        for (_, peer) in conns {
            *logged_by_peer.entry(peer.clone()).or_default() += 1;
        }
        // What the NodePort connections' servers saw as their peer (the node, after SNAT) is the
        // only difference.
        let mut expected = logged_by_peer.clone();
        for (peer, n) in &by_client {
            let left = expected.get_mut(peer).unwrap_or_else(|| panic!("{pod}: no logged connection from {peer}"));
            assert!(*left >= *n, "{pod}: {n} connections from {peer}, the server logged {left}");
            *left -= n;
        }
        assert_eq!(expected.values().sum::<usize>(), nodeport, "{pod}: the rest came through the NodePort");
    }
    // Each connection record is the connection its requests came over: same id, same client, as
    // many requests as it says (a NodePort's two sides are paired by the bytes they carried, not
    // with a probe's connection from the node to the same pod).
    for r in &tcp {
        let on_it: Vec<_> = records.iter().filter(|q| q.is_request() && q.conn == r.conn).collect();
        assert_eq!(on_it.len() as u64, r.tcp().unwrap().requests, "requests on {r:?}");
        assert!(on_it.iter().all(|q| q.src.ip == r.src.ip && q.dst.ip == r.dst.ip), "{r:?}");
    }
    for r in &tcp {
        let t = r.tcp().unwrap();
        // Still open when the capture stopped (web's keep-alive to api): no end yet.
        let open = t.close == podtap_shared::TcpClose::Open;
        assert_eq!(r.end_us.is_none(), open, "{r:?}");
        assert!(r.end_us.is_none_or(|e| e >= r.ts), "{r:?}");
        assert!(t.handshake, "the lab captures every connection from its SYN: {r:?}");
    }
}
