//! Sharing, through the real router: the built-in demo replayed into a hub that keeps its packets,
//! a session saved from it, and what a link to it opens — the same counts after more traffic and
//! after a restart, nothing outside it, nothing once expired, tampered or revoked; a live link
//! that cannot be widened; the token exchanged for a cookie (no secret left in an address); a
//! sub-path mount; the frame policy; and the exports read back — the pcapng by `podtap analyze`
//! and by `tshark`, giving the session's requests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use podtap::access::link::Scope;
use podtap::publish::{Assets, Hub, app};
use podtap::share::{Share, from_config};
use podtap_shared::Record;
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;

use common::router::*;

/// `/s/{id}?exp=…&sig=…` → `(id, "exp=…&sig=…")`.
fn link_parts(url: &str) -> (String, String) {
    let rest = url.split("/s/").nth(1).expect("a session link");
    let (id, query) = rest.split_once('?').unwrap();
    (id.to_string(), query.to_string())
}

/// Per pod, the requests into it on the map.
fn requests_into(map: &Value) -> BTreeMap<String, u64> {
    let mut into = BTreeMap::new();
    for e in map["edges"].as_array().unwrap() {
        *into.entry(e["target"].as_str().unwrap().to_string()).or_default() += e["requests"].as_u64().unwrap();
    }
    into
}

/// More traffic after the session: every record again, a minute later, with new ids.
fn more_traffic(hub: &Hub) {
    let all = podtap::publish::api::Data::records(
        hub,
        podtap::store::Window::ALL,
        podtap::store::Lens::all(&Default::default()),
        podtap::store::Kinds::All,
        None,
        1_000_000,
    )
    .0;
    let later: Vec<Record> =
        all.iter().map(|r| Record { id: r.id + 10_000_000, ts: r.ts + 60_000_000, ..r.clone() }).collect();
    hub.publish(&later);
}

#[tokio::test]
async fn a_session_link_shows_what_was_saved_and_nothing_more() {
    let dir = scratch("session");
    let cfg = config(&dir, "/");
    let hub = demo_hub(&cfg);
    let s = state(&hub, from_config(&cfg).unwrap(), Some(TOKEN));
    let live_map = admin_get(&s, "/api/v1/map").await.json();
    let live_records = admin_get(&s, "/api/v1/records?kind=all&limit=10000&from=0").await.json();

    // Saving needs the admin.
    let body = json!({"filter": "", "ttl_s": 3600, "view": {"sel": "7", "service": "shop/api"}});
    assert_eq!(
        call(&s, Method::POST, "/api/v1/sessions", &[], Some(body.clone())).await.status,
        StatusCode::UNAUTHORIZED
    );
    let saved = call(&s, Method::POST, "/api/v1/sessions", ADMIN, Some(body)).await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.text());
    let url = saved.json()["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("/s/") && url.contains("exp=") && url.contains("sig="), "{url}");
    assert!(!url.contains(TOKEN), "no secret in a link");
    let (id, q) = link_parts(&url);

    more_traffic(&hub);
    let now_map = admin_get(&s, "/api/v1/map").await.json();
    assert_ne!(requests_into(&now_map), requests_into(&live_map), "traffic arrived since");

    // The link, with no token: the same map, records and view as when saved.
    let map = anon_get(&s, &format!("/api/v1/sessions/{id}/map?{q}")).await;
    assert_eq!(map.status, StatusCode::OK, "{}", map.text());
    assert_eq!(requests_into(&map.json()), requests_into(&live_map));
    let records = anon_get(&s, &format!("/api/v1/sessions/{id}/records?kind=all&limit=10000&from=0&{q}")).await.json();
    assert_eq!(records["records"], live_records["records"]);
    let meta = anon_get(&s, &format!("/api/v1/sessions/{id}?{q}")).await.json();
    assert_eq!(meta["view"], json!({"sel": "7", "service": "shop/api"}));
    assert!(meta["packets"].as_u64().unwrap() > 1000, "the connections' packets were kept: {meta}");
    let access = anon_get(&s, &format!("/api/v1/access?link={id}&{q}")).await.json();
    assert_eq!(access["scope"], "session");
    let balance = anon_get(&s, &format!("/api/v1/sessions/{id}/services/shop/api/balance?{q}")).await;
    assert_eq!(balance.status, StatusCode::OK, "{}", balance.text());

    // Nothing else: not the live data, not the list, not another session, not a write.
    for uri in [
        format!("/api/v1/map?link={id}&{q}"),
        format!("/api/v1/sessions?link={id}&{q}"),
        format!("/api/v1/stream?link={id}&{q}"),
        format!("/metrics?link={id}&{q}"),
    ] {
        let a = anon_get(&s, &uri).await;
        assert!(matches!(a.status, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED), "{uri}: {}", a.status);
    }
    let delete = call(&s, Method::DELETE, &format!("/api/v1/sessions/{id}?{q}"), &[], None).await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);

    // The page opens, and its embed; tampered and expired links get a page that says so.
    assert_eq!(anon_get(&s, &format!("/s/{id}?{q}")).await.status, StatusCode::OK);
    assert_eq!(anon_get(&s, &format!("/embed/timeline?session={id}&{q}")).await.status, StatusCode::OK);
    // The session's link where an embed of the live view wants a live link (`link=` for
    // `session=`): refused with a page saying what the link opens, not served to retry forever.
    let misused = anon_get(&s, &format!("/embed/map?link={id}&{q}")).await;
    assert_eq!(misused.status, StatusCode::FORBIDDEN);
    assert!(misused.text().contains("opens one saved session"), "{}", misused.text());
    let sig = q.split("sig=").nth(1).unwrap();
    let exp: u64 = q.split("exp=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    let tampered = anon_get(&s, &format!("/s/{id}?exp={}&sig={sig}", exp + 3600)).await;
    assert_eq!(tampered.status, StatusCode::FORBIDDEN);
    assert!(tampered.text().contains("signature does not match"), "{}", tampered.text());
    let expired_exp = podtap::publish::auth::now_s() - 1;
    let expired_sig = s.share.keys.sign(&id, expired_exp, &Scope::Session);
    let expired = anon_get(&s, &format!("/s/{id}?exp={expired_exp}&sig={expired_sig}")).await;
    assert_eq!(expired.status, StatusCode::GONE);
    assert!(expired.text().contains("expired"));
    let api_expired = anon_get(&s, &format!("/api/v1/sessions/{id}/map?exp={expired_exp}&sig={expired_sig}")).await;
    assert_eq!(api_expired.status, StatusCode::GONE);

    // After a restart (the same data dir: the same database and link key).
    drop(s);
    let s = state(&hub, from_config(&cfg).unwrap(), Some(TOKEN));
    let reopened = anon_get(&s, &format!("/api/v1/sessions/{id}/map?{q}")).await;
    assert_eq!(reopened.status, StatusCode::OK, "{}", reopened.text());
    assert_eq!(requests_into(&reopened.json()), requests_into(&live_map));
    let listed = admin_get(&s, "/api/v1/sessions").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Deleting the session revokes every link to it.
    assert_eq!(
        call(&s, Method::DELETE, &format!("/api/v1/sessions/{id}"), ADMIN, None).await.status,
        StatusCode::NO_CONTENT
    );
    let revoked = anon_get(&s, &format!("/api/v1/sessions/{id}/map?{q}")).await;
    assert_eq!(revoked.status, StatusCode::FORBIDDEN);
    assert!(revoked.text().contains("revoked"), "{}", revoked.text());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_live_link_cannot_be_widened() {
    let dir = scratch("live");
    let cfg = config(&dir, "/");
    let hub = demo_hub(&cfg);
    let s = state(&hub, from_config(&cfg).unwrap(), Some(TOKEN));
    let made = call(&s, Method::POST, "/api/v1/links", ADMIN, Some(json!({"filter": "ns:shop", "ttl_s": 600}))).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let made = made.json();
    let (url, id) = (made["url"].as_str().unwrap(), made["id"].as_str().unwrap());
    assert!(url.starts_with(&format!("/l/{id}?")), "{url}");
    let q = format!("link={id}&{}", url.split_once('?').unwrap().1);

    let everything = admin_get(&s, "/api/v1/records?kind=all&limit=10000&from=0").await.json();
    let in_shop = |r: &Value| r["src"]["namespace"] == "shop" || r["dst"]["namespace"] == "shop";
    let expected: Vec<&Value> = everything["records"].as_array().unwrap().iter().filter(|r| in_shop(r)).collect();
    assert!(!expected.is_empty() && expected.len() < everything["records"].as_array().unwrap().len());
    for widen in ["", "-ns:shop", "ns:default"] {
        let got = anon_get(&s, &format!("/api/v1/records?kind=all&limit=10000&from=0&filter={widen}&{q}")).await.json();
        let got = got["records"].as_array().unwrap();
        assert!(got.iter().all(in_shop), "`{widen}` widened the link");
        if widen.is_empty() {
            assert_eq!(got.len(), expected.len());
        }
    }
    let outside = everything["records"].as_array().unwrap().iter().find(|r| !in_shop(r)).unwrap();
    let one = anon_get(&s, &format!("/api/v1/records/{}?{q}", outside["id"])).await;
    assert_eq!(one.status, StatusCode::NOT_FOUND, "a record outside the filter is not shown");
    assert_eq!(anon_get(&s, &format!("/api/v1/sessions?{q}")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(anon_get(&s, &format!("/l/{id}?{}", url.split_once('?').unwrap().1)).await.status, StatusCode::OK);
    let changed = url.replace("exp=", "exp=1");
    assert_eq!(anon_get(&s, &changed).await.status, StatusCode::FORBIDDEN);

    assert_eq!(
        call(&s, Method::DELETE, &format!("/api/v1/links/{id}"), ADMIN, None).await.status,
        StatusCode::NO_CONTENT
    );
    let revoked = anon_get(&s, &format!("/api/v1/map?{q}")).await;
    assert_eq!(revoked.status, StatusCode::FORBIDDEN);
    assert!(revoked.text().contains("revoked"), "{}", revoked.text());
    assert!(admin_get(&s, "/api/v1/links").await.json().as_array().unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_token_is_exchanged_for_a_cookie_and_leaves_the_address() {
    let hub = Hub::new("t", 10);
    let s = state(&hub, Share::ephemeral(), Some(TOKEN));
    let opened = anon_get(&s, &format!("/?filter=ns%3Ashop&token={TOKEN}")).await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER);
    assert_eq!(opened.headers[header::LOCATION], "/?filter=ns%3Ashop", "the same page, without the token");
    let cookie = opened.headers[header::SET_COOKIE].to_str().unwrap();
    for attr in ["podtap_auth=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains(TOKEN), "the cookie is a signed grant, not the token");
    assert!(!cookie.contains("Secure"), "plain HTTP");
    let jar = cookie.split(';').next().unwrap();
    assert_eq!(call(&s, Method::GET, "/api/v1/map", &[("cookie", jar)], None).await.status, StatusCode::OK);
    let forged = format!("podtap_auth={}", jar.split('=').nth(1).unwrap().replace('.', ".x"));
    assert_eq!(
        call(&s, Method::GET, "/api/v1/map", &[("cookie", &forged)], None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let tls = call(&s, Method::GET, &format!("/?token={TOKEN}"), &[("x-forwarded-proto", "https")], None).await;
    assert!(tls.headers[header::SET_COOKIE].to_str().unwrap().contains("Secure"));

    let wrong = anon_get(&s, "/?token=nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("Sign in") && wrong.text().contains("not podtap"), "{}", wrong.text());

    // The sign-in form does the same.
    let mut req = Request::post("/api/v1/login").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    req = req.header(header::ORIGIN, "http://127.0.0.1:8080").header(header::HOST, "127.0.0.1:8080");
    let resp = app(s.clone())
        .oneshot(req.body(Body::from(format!("token={TOKEN}&next=%2F%3Fsel%3D3"))).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/?sel=3");
    assert!(resp.headers()[header::SET_COOKIE].to_str().unwrap().starts_with("podtap_auth="));
    // …and never sends anyone elsewhere.
    let req = Request::post("/api/v1/login").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    let resp = app(s.clone())
        .oneshot(req.body(Body::from(format!("token={TOKEN}&next=https://evil.example/"))).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.headers()[header::LOCATION], "/");
    // A foreign page cannot post to podtap.
    let req = Request::post("/api/v1/sessions")
        .header(header::ORIGIN, "http://evil.example")
        .header(header::HOST, "127.0.0.1:8080");
    let resp = app(s.clone()).oneshot(req.header("cookie", jar).body(Body::from("{}")).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn under_a_base_path_everything_is_found_with_or_without_the_prefix() {
    let hub = Hub::new("t", 10);
    let mut share = Share::ephemeral();
    share.base = "/podtap/".into();
    let s = state(&hub, share, None);
    for uri in ["/podtap/api/v1/map", "/api/v1/map", "/podtap/healthz"] {
        assert_eq!(anon_get(&s, uri).await.status, StatusCode::OK, "{uri}");
    }
    let page = anon_get(&s, "/podtap/s/abc").await;
    assert!(page.text().contains(r#"<base href="/podtap/">"#), "{}", page.text());
    let stripped = call(&s, Method::GET, "/", &[("x-forwarded-prefix", "/tools/podtap")], None).await;
    assert!(stripped.text().contains(r#"<base href="/tools/podtap/">"#));
    let made = call(&s, Method::POST, "/podtap/api/v1/sessions", &[], Some(json!({}))).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    assert!(made.json()["url"].as_str().unwrap().starts_with("/podtap/s/"));
    let hostile = call(&s, Method::GET, "/", &[("x-forwarded-prefix", "//evil.example/\"><script>")], None).await;
    assert!(hostile.text().contains(r#"<base href="/podtap/">"#), "a hostile prefix is ignored");
}

#[tokio::test]
async fn frames_are_refused_unless_an_embed_origin_is_allowed() {
    let hub = Hub::new("t", 10);
    let s = state(&hub, Share::ephemeral(), None);
    let csp = anon_get(&s, "/embed/map").await.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let mut s = s;
    s.assets = Arc::new(Assets::not_built().framed_by(&["https://portal.example/".into()]));
    let csp = anon_get(&s, "/embed/map").await.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
    assert!(
        csp.contains("frame-ancestors https://portal.example;")
            || csp.ends_with("frame-ancestors https://portal.example"),
        "{csp}"
    );
}

/// `(request line, status, client, server)` of every request, counted.
fn requests(records: impl IntoIterator<Item = Value>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records.into_iter().filter(|r| r["kind"] != "tcp") {
        let line = match r["kind"].as_str().unwrap() {
            "http" => format!("{} {} {}", r["method"], r["path"], r["status"]),
            "grpc" => format!("grpc {} {}", r["path"], r["grpc_status"]),
            "dns" => format!("dns {} {} {}", r["qtype"], r["query"], r["rcode"]),
            other => format!("{other} {}", r["sni"]),
        };
        let who = |e: &Value| e["name"].as_str().map_or_else(|| e["ip"].to_string(), str::to_string);
        *out.entry(format!("{line} {} → {}", who(&r["src"]), who(&r["dst"]))).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn exports_read_back_as_the_sessions_requests() {
    let dir = scratch("export");
    let cfg = config(&dir, "/");
    let hub = demo_hub(&cfg);
    let s = state(&hub, from_config(&cfg).unwrap(), None);
    let saved = call(&s, Method::POST, "/api/v1/sessions", &[], Some(json!({}))).await.json();
    let (id, q) = link_parts(saved["url"].as_str().unwrap());
    let session: Vec<Value> =
        anon_get(&s, &format!("/api/v1/sessions/{id}/records?kind=all&limit=10000&from=0&{q}")).await.json()["records"]
            .as_array()
            .unwrap()
            .clone();
    let want = requests(session.clone());
    assert!(want.values().sum::<u64>() > 100, "the demo has requests");

    // JSON lines: the records, one a line.
    let jsonl = anon_get(&s, &format!("/api/v1/sessions/{id}/export?format=jsonl&{q}")).await;
    assert_eq!(jsonl.headers[header::CONTENT_DISPOSITION], "attachment; filename=\"podtap.jsonl\"");
    let lines: Vec<Value> = jsonl.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, session);

    // HAR: every HTTP and gRPC request (its schema is checked by the browser tests with the HAR
    // 1.2 JSON schema).
    let har = anon_get(&s, &format!("/api/v1/sessions/{id}/export?format=har&{q}")).await.json();
    let http = session.iter().filter(|r| r["kind"] == "http" || r["kind"] == "grpc").count();
    assert_eq!(har["log"]["entries"].as_array().unwrap().len(), http);
    assert_eq!(har["log"]["version"], "1.2");

    // pcapng: read back by podtap analyze, the same requests.
    let pcap = anon_get(&s, &format!("/api/v1/sessions/{id}/export?format=pcapng&{q}")).await;
    assert_eq!(pcap.status, StatusCode::OK, "{}", pcap.text());
    let file = dir.join("export.pcapng");
    std::fs::write(&file, &pcap.body).unwrap();
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cluster.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_podtap"))
        .arg("analyze")
        .arg(&file)
        .args(["--format", "jsonl", "--cluster"])
        .arg(&cluster)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(requests(again), want, "analyze of the export gives the session's requests");

    // …and by tshark: every HTTP/1 request it finds (one a copy: a request crosses several
    // interfaces, before and after kube-proxy's rewrite) is one of the session's, at one of its
    // legs, and every one of the session's HTTP/1 requests is found.
    let http1: Vec<&Value> = session.iter().filter(|r| r["kind"] == "http" && r["version"].is_null()).collect();
    let socket = |e: &Value| format!("{}:{}", e["ip"].as_str().unwrap(), e["port"]);
    let mut ports = std::collections::BTreeSet::new();
    for r in &http1 {
        ports.insert(r["dst"]["port"].as_u64().unwrap());
        if let Some(p) = r["addressed"]["port"].as_u64() {
            ports.insert(p);
        }
    }
    let mut tshark = std::process::Command::new("tshark");
    tshark.arg("-n").arg("-r").arg(&file);
    for p in &ports {
        tshark.args(["-d", &format!("tcp.port=={p},http")]);
    }
    let fields = ["ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "http.request.method", "http.request.uri"];
    tshark.args(["-Y", "http.request", "-T", "fields"]);
    for f in fields {
        tshark.args(["-e", f]);
    }
    let out = tshark.output().unwrap();
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<String>> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| l.split('\t').map(str::to_string).collect()).collect();
    // One frame may carry several pipelined requests: tshark lists them comma-separated.
    let rows: Vec<[String; 6]> = rows
        .iter()
        .flat_map(|row| {
            row[4].split(',').zip(row[5].split(',')).map(|(m, u)| {
                [row[0].clone(), row[1].clone(), row[2].clone(), row[3].clone(), m.to_string(), u.to_string()]
            })
        })
        .collect();
    assert!(rows.len() >= http1.len());
    let mut found = vec![false; http1.len()];
    for row in &rows {
        let (from, to) = (format!("{}:{}", row[0], row[1]), format!("{}:{}", row[2], row[3]));
        let matches = |r: &Value| {
            let clients = [socket(&r["src"]), if r["snat"].is_null() { String::new() } else { socket(&r["snat"]) }];
            let servers =
                [socket(&r["dst"]), if r["addressed"].is_null() { String::new() } else { socket(&r["addressed"]) }];
            clients.contains(&from)
                && servers.contains(&to)
                && r["method"] == row[4].as_str()
                && r["path"] == row[5].as_str()
        };
        let hits: Vec<usize> = (0..http1.len()).filter(|&i| matches(http1[i])).collect();
        assert!(!hits.is_empty(), "tshark found a request that is not the session's: {row:?}");
        for i in hits {
            found[i] = true;
        }
    }
    let missed: Vec<&&Value> = http1.iter().zip(&found).filter(|(_, f)| !**f).map(|(r, _)| r).collect();
    assert!(missed.is_empty(), "tshark did not find {} of the session's requests, e.g. {}", missed.len(), missed[0]);
    let comments = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-T", "fields", "-e", "frame.comment"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&comments.stdout).contains("podtap conn "), "packet comments name the connection");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_live_links_stream_is_narrowed_too() {
    use futures_util::SinkExt;
    let dir = scratch("stream");
    let cfg = config(&dir, "/");
    let hub = demo_hub(&cfg);
    let s = state(&hub, from_config(&cfg).unwrap(), Some(TOKEN));
    let made = call(&s, Method::POST, "/api/v1/links", ADMIN, Some(json!({"filter": "ns:shop"}))).await.json();
    let query =
        format!("link={}&{}", made["id"].as_str().unwrap(), made["url"].as_str().unwrap().split_once('?').unwrap().1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(s)).await.unwrap() });
    let in_shop = |r: &Record| r.src.namespace.as_deref() == Some("shop") || r.dst.namespace.as_deref() == Some("shop");
    // Without the link or the token: refused.
    assert!(tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream")).await.is_err());
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream?{query}")).await.unwrap();
    for _ in 0..2 {
        next_message(&mut ws).await; // hello, cluster
    }
    let podtap_shared::ServerMessage::Snapshot { records, .. } = next_message(&mut ws).await else {
        panic!("snapshot")
    };
    assert!(!records.is_empty() && records.iter().all(in_shop), "the first snapshot is the link's");
    // A subscription that tries to widen it gets only the link's records.
    let widen = r#"{"type":"subscribe","filter":"ns:default"}"#;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(widen.into())).await.unwrap();
    let podtap_shared::ServerMessage::Snapshot { records, .. } = next_message(&mut ws).await else {
        panic!("snapshot")
    };
    assert!(records.iter().all(|r| in_shop(r)
        && (r.src.namespace.as_deref() == Some("default") || r.dst.namespace.as_deref() == Some("default"))));
    let _ = std::fs::remove_dir_all(&dir);
}
