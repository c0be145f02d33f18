//! Who sees what, through the real router, on the built-in demo (namespaces `default`, `shop` and
//! `kube-system`, requests across them, and node and outside clients with no namespace): people
//! named by a trusted proxy, their namespaces from a scopes file. For each person, every channel —
//! records (paged, one by one, filtered), connections, the map, an edge, the timeline, the
//! balance, the exports, the packets, the stream, saved sessions and links — must equal the rule
//! (`access::view`) applied to the admin's records, and nothing else.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::router::*;
use podtap::access::scopes::Scopes;
use podtap::access::who::ProxyAuth;
use podtap::access::{Decider, People, Sight, view};
use podtap::aggregate::balance::BalanceBuilder;
use podtap::publish::{AppState, app};
use podtap::share::from_config;
use podtap_shared::{MapBuilder, Record, ServerMessage};
use serde_json::{Value, json};

const SCOPES: &str =
    "users:\n  alice: [shop]\n  bob: [default]\n  olga: [shop]\ngroups:\n  dns: [kube-system]\n  sre: ['*']\n";
const PROXY: &str = "127.0.0.1:40000";

/// Each person: name, groups, and what the scopes file and the flags say they see.
fn people() -> Vec<(&'static str, &'static str, Sight)> {
    let shop_and_none = Sight::Namespaces { names: ["shop".to_string()].into(), unnamespaced: true };
    vec![
        ("alice", "", Sight::of(["shop"])),
        ("bob", "", Sight::of(["default"])),
        ("carol", "", Sight::of(Vec::<String>::new())),
        ("dana", "dns", Sight::of(["kube-system"])),
        ("erin", "sre", Sight::All),
        ("olga", "nodes-team", shop_and_none),
        ("root", "podtap-admins", Sight::All),
    ]
}

fn scoped_state(name: &str) -> (AppState, std::path::PathBuf) {
    let dir = scratch(name);
    let cfg = config(&dir, "/");
    let hub = demo_hub(&cfg);
    let mut s = state(&hub, from_config(&cfg).unwrap(), Some(TOKEN));
    let proxy = ProxyAuth {
        user_header: "x-forwarded-user".parse().unwrap(),
        groups_header: Some("x-forwarded-groups".parse().unwrap()),
        from: vec!["127.0.0.1/32".parse().unwrap()],
    };
    let decider = Decider::new(
        Some(Scopes::parse(SCOPES).unwrap()),
        None,
        ["podtap-admins".to_string()].into(),
        ["nodes-team".to_string()].into(),
    );
    s.people = Arc::new(People { proxy: Some(proxy), decider, ..People::default() });
    (s, dir)
}

/// A GET as `user` (in `groups`, comma-separated) through the proxy.
async fn get_as(s: &AppState, user: &str, groups: &str, uri: &str) -> Answer {
    send_as(s, user, groups, Method::GET, uri, None).await
}

async fn send_as(s: &AppState, user: &str, groups: &str, method: Method, uri: &str, body: Option<Value>) -> Answer {
    let headers = [("x-forwarded-user", user), ("x-forwarded-groups", groups)];
    let n = if groups.is_empty() { 1 } else { 2 };
    call_from(s, Some(PROXY.parse().unwrap()), method, uri, &headers[..n], body).await
}

fn records_of(page: &Value) -> Vec<Record> {
    serde_json::from_value(page["records"].clone()).unwrap()
}

/// Every record the admin sees, oldest first.
async fn everything(s: &AppState) -> Vec<Record> {
    let page = admin_get(s, "/api/v1/records?kind=all&limit=10000&from=0").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    records_of(&page.json())
}

fn seen(all: &[Record], sight: &Sight) -> Vec<Record> {
    all.iter().filter_map(|r| view(r, sight)).collect()
}

/// The map a fold over `records` draws.
fn map_of(records: &[Record]) -> Value {
    let mut b = MapBuilder::new();
    records.iter().for_each(|r| b.add(r));
    serde_json::to_value(b.build()).unwrap()
}

/// Every address of an endpoint the viewer may not see (their real addresses, from the admin's
/// records): none may be in what the viewer gets.
fn hidden_addresses(all: &[Record], sight: &Sight) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in all {
        let Some(v) = view(r, sight) else { continue };
        for (e, seen) in [(&r.src, &v.src), (&r.dst, &v.dst)] {
            if seen.hidden {
                out.insert(e.ip.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn every_channel_shows_each_person_what_the_rule_says() {
    let (s, dir) = scoped_state("channels");
    let all = everything(&s).await;
    assert!(all.len() > 500, "the demo: {}", all.len());
    let namespaces: BTreeSet<&str> = all.iter().filter_map(|r| r.dst.namespace.as_deref()).collect();
    assert_eq!(namespaces, ["default", "kube-system", "shop"].into());
    for (user, groups, sight) in people() {
        let mine = seen(&all, &sight);
        let who = format!("{user} ({})", sight.describe());
        // Records, paged from the start.
        let page = get_as(&s, user, groups, "/api/v1/records?kind=all&limit=10000&from=0").await;
        assert_eq!(page.status, StatusCode::OK, "{who}: {}", page.text());
        let page = page.json();
        assert_eq!(records_of(&page), mine, "{who}: records");
        assert_eq!(page["total"], json!(mine.len()), "{who}: the total counts only what they see");
        // One by one: theirs as they see it, the rest not found.
        for r in all.iter().step_by(7) {
            let one = get_as(&s, user, groups, &format!("/api/v1/records/{}", r.id)).await;
            match view(r, &sight) {
                Some(v) => {
                    assert_eq!(serde_json::from_slice::<Record>(&one.body).unwrap(), v, "{who}: record {}", r.id)
                }
                None => assert_eq!(one.status, StatusCode::NOT_FOUND, "{who}: record {}", r.id),
            }
        }
        // Connections: their records on it only.
        let conns: BTreeSet<u64> = all.iter().map(|r| r.conn).collect();
        for conn in conns.iter().step_by(5) {
            let c = get_as(&s, user, groups, &format!("/api/v1/connections/{conn}")).await;
            let theirs: Vec<&Record> = mine.iter().filter(|r| r.conn == *conn && r.is_request()).collect();
            if mine.iter().any(|r| r.conn == *conn) {
                let got: Vec<Record> = serde_json::from_value(c.json()["requests"].clone()).unwrap();
                assert_eq!(got.iter().collect::<Vec<_>>(), theirs, "{who}: connection {conn}");
            } else {
                assert_eq!(c.status, StatusCode::NOT_FOUND, "{who}: connection {conn}");
            }
        }
        // The map, folded from what they see (a peer outside is its workload's locked box).
        let map = get_as(&s, user, groups, "/api/v1/map").await.json();
        assert_eq!(map, map_of(&mine), "{who}: map");
        let text = map.to_string();
        for ip in hidden_addresses(&all, &sight) {
            assert!(
                !text.contains(&format!("\"{ip}\"")) && !text.contains(&format!(":{ip}\"")),
                "{who}: {ip} on the map"
            );
        }
        // The timeline counts their requests.
        let timeline = get_as(&s, user, groups, "/api/v1/timeline").await.json();
        let counted: u64 =
            timeline["buckets"].as_array().unwrap().iter().map(|b| b["requests"].as_u64().unwrap()).sum();
        assert_eq!(counted, mine.iter().filter(|r| r.is_request()).count() as u64, "{who}: timeline");
        // Balance: their namespaces' Services only, from what they see.
        let services = get_as(&s, user, groups, "/api/v1/services").await.json();
        let mut b = BalanceBuilder::default();
        mine.iter().for_each(|r| b.add(r));
        let cluster = podtap::demo::cluster();
        let want: BTreeMap<String, u64> = b
            .build(&cluster)
            .into_iter()
            .filter(|b| sight.owns(b.service.split_once('/').map(|(ns, _)| ns)))
            .map(|b| (b.service, b.requests))
            .collect();
        let got: BTreeMap<String, u64> = services
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["service"].as_str().unwrap().to_string(), b["requests"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, want, "{who}: services");
        if !sight.owns(Some("shop")) {
            let other = get_as(&s, user, groups, "/api/v1/services/shop/api/balance").await;
            assert_eq!(other.status, StatusCode::NOT_FOUND, "{who}: shop/api's balance");
        }
        // The JSON lines export is the same records; packets only of connections they see whole.
        let jsonl = get_as(&s, user, groups, "/api/v1/export?format=jsonl").await;
        let lines: Vec<Record> = jsonl.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines, mine, "{who}: export");
        let info = get_as(&s, user, groups, "/api/v1/packets").await.json();
        let half: BTreeSet<u64> = mine.iter().filter(|r| r.src.hidden || r.dst.hidden).map(|r| r.conn).collect();
        assert_eq!(info["withheld"], json!(half.len()), "{who}: packets withheld");
        let pcapng = get_as(&s, user, groups, "/api/v1/export?format=pcapng").await;
        if pcapng.status == StatusCode::OK {
            let file = podtap::capture::CaptureFile::from_bytes("export", pcapng.body.clone()).unwrap();
            // The addresses sit in a frame's first 64 bytes (Ethernet, IP): none may be hidden.
            let hidden: Vec<[u8; 4]> = hidden_addresses(&all, &sight)
                .iter()
                .filter_map(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
                .map(|ip| ip.octets())
                .collect();
            let frames: Vec<Vec<u8>> = file.frames().map(|f| f.unwrap().data.to_vec()).collect();
            assert!(!frames.is_empty());
            for data in frames {
                let head = &data[..data.len().min(64)];
                assert!(
                    hidden.iter().all(|ip| !head.windows(4).any(|w| w == ip)),
                    "{who}: a hidden address in a packet"
                );
            }
        } else {
            assert!(mine.iter().all(|r| r.src.hidden || r.dst.hidden), "{who}: no packets: {}", pcapng.text());
        }
        // A filter on a name they may not see finds nothing; on one they see, what it names.
        let hidden_pod = all.iter().find_map(|r| {
            let v = view(r, &sight)?;
            v.dst.hidden.then(|| r.dst.name.clone()).flatten()
        });
        if let Some(pod) = hidden_pod {
            let found =
                get_as(&s, user, groups, &format!("/api/v1/records?kind=all&limit=10000&filter=pod:{pod}")).await;
            assert_eq!(records_of(&found.json()), Vec::<Record>::new(), "{who}: filter on {pod}");
        }
        // Who they are, and why.
        let me = get_as(&s, user, groups, "/api/v1/whoami").await.json();
        assert_eq!(me["user"], user, "{who}: {me}");
        assert_eq!(me["source"], "proxy");
        let names = match &sight {
            Sight::All => Value::Null,
            Sight::Namespaces { names, .. } => json!(names),
        };
        assert_eq!(me["namespaces"], names, "{who}: {me}");
        assert!(!me["why"].as_array().unwrap().is_empty(), "{who}: {me}");
    }
    // An edge from a locked box: alice sees `default`'s web pods calling shop/api as their workload.
    let map = get_as(&s, "alice", "", "/api/v1/map").await.json();
    let locked: Vec<&Value> = map["nodes"].as_array().unwrap().iter().filter(|n| n["locked"] == true).collect();
    assert!(!locked.is_empty(), "alice's map has locked boxes: {map}");
    let ids: Vec<&str> = locked.iter().map(|n| n["id"].as_str().unwrap()).collect();
    let source = *ids.iter().find(|id| id.starts_with("workload:default/")).unwrap_or_else(|| panic!("{ids:?}"));
    let edge = get_as(&s, "alice", "", &format!("/api/v1/edge?source={source}&target=service:shop/api")).await;
    assert_eq!(edge.status, StatusCode::OK, "{}", edge.text());
    let mine = seen(&all, &Sight::of(["shop"]));
    let into_api = mine.iter().filter(|r| r.is_request() && r.via.service.as_deref() == Some("shop/api")).count();
    assert_eq!(edge.json()["edge"]["requests"], json!(into_api));
    // Carol sees no namespace, and is told so.
    let carol = get_as(&s, "carol", "", "/api/v1/whoami").await.json();
    assert!(carol["why"][0].as_str().unwrap().starts_with("no namespace"), "{carol}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sessions_and_links_hold_their_creators_sight() {
    let (s, dir) = scoped_state("sessions");
    let all = everything(&s).await;
    let alices = seen(&all, &Sight::of(["shop"]));
    let made = send_as(&s, "alice", "", Method::POST, "/api/v1/sessions", Some(json!({"title": "shop"}))).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let made = made.json();
    let (id, query) = {
        let url = made["url"].as_str().unwrap();
        let rest = url.split("/s/").nth(1).unwrap();
        let (id, q) = rest.split_once('?').unwrap();
        (id.to_string(), q.to_string())
    };
    // Saved as alice saw it; listed for her and the admins, not for bob.
    let uri = format!("/api/v1/sessions/{id}/records?kind=all&limit=10000&from=0");
    assert_eq!(records_of(&get_as(&s, "alice", "", &uri).await.json()), alices);
    let listed = |a: Answer| {
        a.json().as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(listed(get_as(&s, "alice", "", "/api/v1/sessions").await), vec![id.clone()]);
    assert_eq!(listed(get_as(&s, "bob", "", "/api/v1/sessions").await), Vec::<String>::new());
    assert_eq!(listed(admin_get(&s, "/api/v1/sessions").await), vec![id.clone()]);
    assert_eq!(get_as(&s, "bob", "", &uri).await.status, StatusCode::NOT_FOUND, "bob opens it only by its link");
    let deleted = send_as(&s, "bob", "", Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
    // Its link shows anyone what alice saw, even the admin: never more.
    let linked = anon_get(&s, &format!("{uri}&{query}")).await;
    assert_eq!(records_of(&linked.json()), alices);
    let meta = anon_get(&s, &format!("/api/v1/sessions/{id}?{query}")).await.json();
    assert_eq!((meta["owner"].as_str(), meta["seen_as"].as_str()), (Some("alice"), Some("namespace shop")));
    // A live link alice makes shows what she sees, to whoever holds it.
    let link = send_as(&s, "alice", "", Method::POST, "/api/v1/links", Some(json!({"filter": ""}))).await.json();
    let q = link["url"].as_str().unwrap().split_once('?').unwrap().1.to_string();
    let live =
        anon_get(&s, &format!("/api/v1/records?kind=all&limit=10000&from=0&link={}&{q}", link["id"].as_str().unwrap()))
            .await;
    assert_eq!(records_of(&live.json()), alices, "the link shows alice's sight");
    let who = anon_get(&s, &format!("/api/v1/whoami?link={}&{q}", link["id"].as_str().unwrap())).await.json();
    assert_eq!((who["source"].as_str(), who["namespaces"].clone()), (Some("link"), json!(["shop"])));
    assert_eq!(get_as(&s, "bob", "", "/api/v1/links").await.json(), json!([]), "bob does not list alice's links");
    let uri = format!("/api/v1/links/{}", link["id"].as_str().unwrap());
    let revoke = send_as(&s, "bob", "", Method::DELETE, &uri, None).await;
    assert_eq!(revoke.status, StatusCode::BAD_REQUEST, "nor revoke them");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_proxy_is_believed_from_its_address_only_and_nobody_is_not_the_admin() {
    let (s, dir) = scoped_state("proxy");
    let headers = [("x-forwarded-user", "erin"), ("x-forwarded-groups", "sre")];
    let elsewhere: SocketAddr = "192.0.2.7:5555".parse().unwrap();
    let forged = call_from(&s, Some(elsewhere), Method::GET, "/api/v1/records", &headers, None).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.text().contains("192.0.2.7") && forged.text().contains("--auth-proxy-from"), "{}", forged.text());
    // No credentials: nobody (an identity source is configured, so no-token is not the admin).
    assert_eq!(anon_get(&s, "/api/v1/records").await.status, StatusCode::UNAUTHORIZED);
    // The admin token still works, and /healthz counts only for the admin.
    assert_eq!(admin_get(&s, "/api/v1/whoami").await.json()["source"], "token");
    assert!(admin_get(&s, "/healthz").await.json()["records"].as_u64().unwrap() > 500);
    assert_eq!(get_as(&s, "alice", "", "/healthz").await.json()["records"], 0);
    assert_eq!(anon_get(&s, "/healthz").await.json()["records"], 0);
    assert_eq!(get_as(&s, "alice", "", "/metrics").await.status, StatusCode::UNAUTHORIZED);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stream_shows_its_viewer_what_they_see() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (s, dir) = scoped_state("stream");
    let all = everything(&s).await;
    let hub = s.hub.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = app(s).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    let mut req = format!("ws://{addr}/api/v1/stream").into_client_request().unwrap();
    req.headers_mut().insert("x-forwarded-user", "alice".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let sight = Sight::of(["shop"]);
    let mut messages = Vec::new();
    loop {
        let m = next_message(&mut ws).await;
        let snapshot = matches!(m, ServerMessage::Snapshot { .. });
        messages.push(m);
        if snapshot {
            break;
        }
    }
    assert!(!messages.iter().any(|m| matches!(m, ServerMessage::Agents { .. })), "no node-wide counts");
    let Some(ServerMessage::Snapshot { records, map, .. }) = messages.pop() else { unreachable!() };
    let mut want = seen(&all, &sight);
    want.sort_by_key(Record::time_order);
    assert_eq!(records, want, "the snapshot is alice's");
    assert_eq!(serde_json::to_value(&map).unwrap(), map_of(&want), "and its map");
    // New traffic: only what alice sees, as she sees it.
    let later: Vec<Record> =
        all.iter().map(|r| Record { id: r.id + 1_000_000, ts: r.ts + 60_000_000, ..r.clone() }).collect();
    hub.publish(&later);
    let mut streamed = Vec::new();
    while streamed.len() < want.len() {
        if let ServerMessage::Records { records } = next_message(&mut ws).await {
            streamed.extend(records);
        }
    }
    let expected: Vec<Record> = seen(&later, &sight);
    assert_eq!(streamed, expected);
    ws.send(tokio_tungstenite::tungstenite::Message::Close(None)).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
