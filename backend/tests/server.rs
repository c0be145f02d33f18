//! The HTTP server: REST answers through `app().oneshot(…)`, the browser app's files with their
//! MIME types and cache headers, the token gate, and `WS /api/v1/stream` over a real socket with
//! tokio-tungstenite (hello, snapshot, live records, map updates, lag, a broken client).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use futures_util::{SinkExt, StreamExt};
use podtap::publish::{AppState, Assets, Guard, Hub, app};
use podtap_shared::{Record, ServerMessage};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

fn rec(id: u64) -> Record {
    Record { id, conn: id % 3, ..Record::test() }
}

fn state(hub: Hub, token: Option<&str>) -> AppState {
    let guard = Guard::new("127.0.0.1:8080".parse().unwrap(), vec![]);
    let share = Arc::new(podtap::share::Share::ephemeral());
    AppState::new(hub, Arc::new(Assets::not_built()), token.map(Into::into), guard, share)
}

async fn get(state: AppState, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app(state).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, to_bytes(body, 10 << 20).await.unwrap().to_vec())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("JSON body")
}

#[tokio::test]
async fn health_is_503_until_the_cluster_state_is_ready() {
    let hub = Hub::new("live", 10);
    hub.set_cluster_status("api", false);
    let (status, _, body) = get(state(hub.clone(), None), "/healthz", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(&body)["status"], "starting");
    assert_eq!(json(&body)["cluster"]["ready"], false);
    hub.set_cluster_status("api", true);
    let (status, _, body) = get(state(hub, None), "/healthz", &[]).await;
    assert_eq!((status, json(&body)["status"].clone()), (StatusCode::OK, serde_json::json!("ok")));
}

#[tokio::test]
async fn balance_per_service_equals_what_the_lab_servers_logged() {
    let dir = common::demo_dir();
    let truth = common::ground_truth(&dir);
    let (records, _) = common::analyze(&dir);
    let hub = Hub::new("lab", 100_000);
    hub.set_cluster(common::cluster(&dir));
    hub.publish(&records);
    let (status, _, body) = get(state(hub.clone(), None), "/api/v1/services/default/web/balance", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let web = json(&body);
    assert_eq!(web["service"], "default/web");
    let endpoints = web["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2);
    for e in endpoints {
        let t = &truth["pods"][e["pod"].as_str().unwrap()];
        let served = e["requests"].as_u64().unwrap() + e["probe_requests"].as_u64().unwrap();
        assert_eq!(served, t["requests"].as_u64().unwrap(), "{e}");
        assert_eq!(e["probe_requests"], t["probe_requests"]);
    }
    let total: u64 = endpoints.iter().map(|e| e["requests"].as_u64().unwrap()).sum();
    assert_eq!(web["requests"].as_u64(), Some(total));
    let shares: f64 = endpoints.iter().map(|e| e["share_of_requests"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 0.002, "{shares}");
    assert!(web["skew"].is_number() && web.get("cause").is_some());

    let (status, _, body) = get(state(hub, None), "/api/v1/services/default/nope/balance", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["error"], "no Service default/nope in the cluster state or the traffic");
}

#[tokio::test]
async fn health_records_and_map() {
    let hub = Hub::new("unit test", 100);
    hub.publish(&(1..=5).map(rec).collect::<Vec<_>>());
    let (status, _, body) = get(state(hub.clone(), None), "/healthz", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json(&body),
        serde_json::json!({"status": "ok", "source": "unit test", "records": 5,
            "cluster": {"source": "none", "ready": true, "objects": 0, "namespaces": 0, "missing": []},
            "app": "not built", "clock": "wall",
            "store": {"records": 5, "steps": 1, "oldest_us": 1_700_000_000_000_000u64, "newest_us": 1_700_000_000_000_000u64,
                "evicted_by_age": 0, "evicted_by_count": 0, "too_old": 0}})
    );

    let (_, _, body) = get(state(hub.clone(), None), "/api/v1/records?limit=2", &[]).await;
    let page = json(&body);
    assert_eq!(page["total"], 5);
    let ids: Vec<u64> = page["records"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![4, 5]);

    let (_, _, body) = get(state(hub.clone(), None), "/api/v1/map", &[]).await;
    let map = json(&body);
    assert_eq!(map["edges"][0]["requests"], 5);
    assert_eq!(map["edges"][0]["connections"], 3);

    let (_, _, body) = get(state(hub.clone(), None), "/api/v1/map?filter=status%3A5xx", &[]).await;
    assert_eq!(json(&body)["edges"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_requests_get_one_sentence_of_json() {
    let hub = Hub::new("t", 10);
    for (uri, status, says) in [
        ("/api/v1/records?limit=0", StatusCode::BAD_REQUEST, "limit must be between 1 and 10000"),
        ("/api/v1/records?limit=x", StatusCode::BAD_REQUEST, ""),
        ("/api/v1/map?filter=colour%3Ared", StatusCode::BAD_REQUEST, "unknown filter key `colour:`"),
        ("/api/v1/nope", StatusCode::NOT_FOUND, "no such API endpoint"),
    ] {
        let (got, _, body) = get(state(hub.clone(), None), uri, &[]).await;
        assert_eq!(got, status, "{uri}");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(says), "{uri}: {text}");
    }
}

#[tokio::test]
async fn a_token_guards_the_api_but_not_health_or_the_app() {
    let hub = Hub::new("t", 10);
    let s = || state(hub.clone(), Some("s3cret"));
    assert_eq!(get(s(), "/api/v1/map", &[]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(s(), "/api/v1/map", &[("authorization", "Bearer wrong")]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(s(), "/api/v1/map", &[("authorization", "Bearer s3cret")]).await.0, StatusCode::OK);
    // No secret in URLs: the API does not take the token as a query parameter.
    assert_eq!(get(s(), "/api/v1/records?token=s3cret", &[]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(s(), "/api/v1/stream", &[]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(s(), "/healthz", &[]).await.0, StatusCode::OK);
    assert_eq!(get(s(), "/", &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn app_files_have_types_caching_compression_and_a_route_fallback() {
    let dir = std::env::temp_dir().join(format!("podtap-assets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>podtap</title>").unwrap();
    let wasm: Vec<u8> = b"\0asm\x01\0\0\0".iter().copied().chain(std::iter::repeat_n(0u8, 4096)).collect();
    std::fs::write(dir.join("podtap-0123456789abcdef.wasm"), &wasm).unwrap();
    std::fs::write(dir.join("podtap-0123456789abcdef.js"), "export default function init() {}").unwrap();
    let assets = Arc::new(Assets::load(&dir).unwrap());
    let share = Arc::new(podtap::share::Share::ephemeral());
    let s = || AppState::new(Hub::new("t", 1), assets.clone(), None, Guard::default(), share.clone());

    let (status, h, body) = get(s(), "/podtap-0123456789abcdef.wasm", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/wasm");
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(body, wasm);
    let (_, h, body) = get(s(), "/podtap-0123456789abcdef.wasm", &[("accept-encoding", "gzip")]).await;
    assert_eq!(h[header::CONTENT_ENCODING], "gzip");
    assert!(body.len() < wasm.len() / 10);
    // Brotli: compressed once, in the background from the start; its own tag, and it decodes
    // to the file.
    let mut br = None;
    for _ in 0..100 {
        let (_, h, body) = get(s(), "/podtap-0123456789abcdef.wasm", &[("accept-encoding", "gzip, br")]).await;
        if h[header::ETAG].to_str().unwrap().ends_with("-br\"") {
            br = Some((h, body));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (h, body) = br.expect("the compressed file within 5 s");
    assert_eq!(
        (&h[header::CONTENT_ENCODING], &h[header::VARY]),
        (&"br".parse().unwrap(), &"accept-encoding".parse().unwrap())
    );
    let mut plain = Vec::new();
    brotli::BrotliDecompress(&mut &body[..], &mut plain).unwrap();
    assert_eq!(plain, wasm);
    let tag = h[header::ETAG].to_str().unwrap().to_string();
    let not_modified =
        get(s(), "/podtap-0123456789abcdef.wasm", &[("accept-encoding", "br"), ("if-none-match", &tag)]).await;
    assert_eq!(not_modified.0, StatusCode::NOT_MODIFIED);
    let (_, h, _) = get(s(), "/podtap-0123456789abcdef.js", &[]).await;
    assert_eq!(h[header::CONTENT_TYPE], "text/javascript; charset=utf-8");

    for route in ["/", "/services/default/web", "/map?filter=x"] {
        let (status, h, body) = get(s(), route, &[]).await;
        assert_eq!((status, h[header::CACHE_CONTROL].to_str().unwrap()), (StatusCode::OK, "no-cache"), "{route}");
        assert!(String::from_utf8(body).unwrap().contains("<title>podtap</title>"), "{route}");
    }
    let (_, h, _) = get(s(), "/", &[]).await;
    let etag = h[header::ETAG].to_str().unwrap().to_string();
    assert_eq!(get(s(), "/", &[("if-none-match", &etag)]).await.0, StatusCode::NOT_MODIFIED);
    assert_eq!(get(s(), "/missing-file.js", &[]).await.0, StatusCode::NOT_FOUND);
    std::fs::remove_dir_all(&dir).ok();

    let (_, _, body) = get(state(Hub::new("t", 1), None), "/anything", &[]).await;
    assert!(String::from_utf8(body).unwrap().contains("cargo xtask build"));
}

async fn serve(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    addr
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_message(ws: &mut Ws) -> ServerMessage {
    loop {
        let msg =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message in time").unwrap().unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("a ServerMessage");
        }
    }
}

#[tokio::test]
async fn the_stream_sends_hello_snapshot_then_live_records_and_map_deltas() {
    let hub = Hub::new("stream test", 100);
    hub.publish(&[rec(1), rec(2)]);
    let addr = serve(state(hub.clone(), None)).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream")).await.unwrap();

    let hello = next_message(&mut ws).await;
    assert!(matches!(hello, ServerMessage::Hello { source, protocol: 2, .. } if source == "stream test"));
    let ServerMessage::Cluster { ready, missing, .. } = next_message(&mut ws).await else { panic!("cluster expected") };
    assert!(ready && missing.is_empty());
    let ServerMessage::Snapshot { records, map, filter } = next_message(&mut ws).await else {
        panic!("snapshot expected")
    };
    assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!((map.edges[0].requests, filter.as_str()), (2, ""));

    hub.publish(&[rec(3)]);
    assert_eq!(next_message(&mut ws).await, ServerMessage::Records { records: vec![rec(3)] });
    // Within a second, the edge it changed, with its new total.
    let delta = loop {
        match next_message(&mut ws).await {
            ServerMessage::MapDelta { edges, .. } => break edges,
            ServerMessage::Cluster { .. } | ServerMessage::Balance { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!((delta.len(), delta[0].requests, delta[0].connections), (1, 3, 3));
}

#[tokio::test]
async fn a_subscription_narrows_the_stream_and_a_bad_one_changes_nothing() {
    let hub = Hub::new("subscribe test", 100);
    hub.publish(&[rec(1), rec(2), rec(4)]);
    let addr = serve(state(hub.clone(), None)).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream")).await.unwrap();
    for _ in 0..3 {
        next_message(&mut ws).await; // hello, cluster, snapshot
    }
    ws.send(Message::Text(r#"{"type":"subscribe","filter":"conn:1"}"#.into())).await.unwrap();
    let ServerMessage::Snapshot { records, map, filter } = next_message(&mut ws).await else {
        panic!("snapshot expected")
    };
    assert_eq!((filter.as_str(), records.iter().map(|r| r.id).collect::<Vec<_>>()), ("conn:1", vec![1, 4]));
    assert_eq!(map.edges[0].requests, 2);
    // Whatever the browser sends that is not a subscription is answered and changes nothing.
    ws.send(Message::Binary(vec![0xde, 0xad].into())).await.unwrap();
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert!(
        matches!(next_message(&mut ws).await, ServerMessage::Error { message } if message.starts_with("unreadable"))
    );
    ws.send(Message::Text(r#"{"type":"subscribe","filter":"probe:maybe"}"#.into())).await.unwrap();
    assert!(matches!(next_message(&mut ws).await, ServerMessage::Error { message } if message.contains("probe:maybe")));
    hub.publish(&[rec(5), rec(7)]);
    let next = loop {
        match next_message(&mut ws).await {
            ServerMessage::Records { records } => break records,
            ServerMessage::MapDelta { .. } | ServerMessage::Cluster { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(next, vec![rec(7)], "only conn 1's records (7 % 3 == 1)");
}

#[tokio::test]
async fn subscribing_to_the_filter_already_sent_sends_no_second_snapshot() {
    let hub = Hub::new("subscribe test", 100);
    hub.publish(&[rec(1), rec(2)]);
    let addr = serve(state(hub.clone(), None)).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream")).await.unwrap();
    for _ in 0..3 {
        next_message(&mut ws).await; // hello, cluster, snapshot of the empty filter
    }
    // The page's first subscription is the empty filter: no snapshot again, the stream goes on.
    ws.send(Message::Text(r#"{"type":"subscribe","filter":""}"#.into())).await.unwrap();
    hub.publish(&[rec(3)]);
    let next = loop {
        match next_message(&mut ws).await {
            ServerMessage::Records { records } => break records,
            ServerMessage::MapDelta { .. } | ServerMessage::Cluster { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(next, vec![rec(3)]);
}

#[tokio::test]
async fn a_slow_browser_is_told_what_it_missed_and_never_blocks_the_hub() {
    let hub = Hub::new("lag test", 10);
    let addr = serve(state(hub.clone(), None)).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream")).await.unwrap();
    next_message(&mut ws).await; // hello
    next_message(&mut ws).await; // cluster
    next_message(&mut ws).await; // snapshot
    // Far more batches than a client queue holds, while this client reads nothing.
    for i in 0..20_000 {
        hub.publish(&[rec(i)]);
    }
    // The marker comes after whatever the socket buffers held when the client fell behind, so
    // read until it (at most everything that was published).
    let mut lagged = 0;
    for _ in 0..20_001 {
        if let ServerMessage::Lagged { skipped } = next_message(&mut ws).await {
            lagged += skipped;
            break;
        }
    }
    assert!(lagged > 0, "the client was told it lagged");
}

#[tokio::test]
async fn a_broken_websocket_client_does_not_hurt_others() {
    let hub = Hub::new("broken test", 10);
    let addr = serve(state(hub.clone(), None)).await;
    let (mut bad, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream")).await.unwrap();
    next_message(&mut bad).await;
    // Bytes that are not a WebSocket frame (an unmasked frame with a reserved opcode).
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = bad.get_mut() {
        tcp.write_all(&[0x8b, 0x7f, 0xff, 0xff, 0xff]).await.unwrap();
    }
    let (mut good, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream")).await.unwrap();
    for _ in 0..3 {
        next_message(&mut good).await; // hello, cluster, snapshot
    }
    hub.publish(&[rec(9)]);
    assert_eq!(next_message(&mut good).await, ServerMessage::Records { records: vec![rec(9)] });
}

/// A WebSocket handshake to the stream with these extra headers: the HTTP status it got.
async fn ws_status(addr: SocketAddr, headers: &[(&str, &str)]) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/api/v1/stream").into_client_request().unwrap();
    for (k, v) in headers {
        let name = axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("handshake failed otherwise: {e}"),
    }
}

#[tokio::test]
async fn only_podtaps_own_page_and_embed_origins_may_open_the_stream() {
    let addr = serve(state(Hub::new("origin test", 10), None)).await;
    let own = format!("http://{addr}");
    assert_eq!(ws_status(addr, &[("origin", &own)]).await, 101, "the app's own origin");
    assert_eq!(ws_status(addr, &[]).await, 101, "a client that is no browser sends no Origin");
    assert_eq!(ws_status(addr, &[("origin", "http://evil.example")]).await, 403);
    assert_eq!(ws_status(addr, &[("origin", "null")]).await, 403, "a sandboxed or file: page");
    let other_port = format!("http://127.0.0.1:{}", addr.port() + 1);
    assert_eq!(ws_status(addr, &[("origin", &other_port)]).await, 403, "another local app");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let embed_addr = listener.local_addr().unwrap();
    let mut s = state(Hub::new("embed", 10), None);
    s.guard = Guard::new(embed_addr, vec!["https://portal.example".into()]);
    tokio::spawn(async move { axum::serve(listener, app(s)).await.unwrap() });
    assert_eq!(ws_status(embed_addr, &[("origin", "https://portal.example")]).await, 101);
    assert_eq!(ws_status(embed_addr, &[("origin", "https://evil.example")]).await, 403);
}

#[tokio::test]
async fn on_loopback_a_foreign_host_name_is_refused_as_dns_rebinding() {
    let hub = Hub::new("host test", 10);
    for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
        let (status, _, _) = get(state(hub.clone(), None), "/api/v1/map", &[("host", host)]).await;
        assert_eq!(status, StatusCode::OK, "{host}");
    }
    let (status, _, body) = get(state(hub.clone(), None), "/api/v1/map", &[("host", "evil.example:8080")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8(body).unwrap().contains("DNS-rebinding"));
    let (status, _, _) = get(state(hub.clone(), None), "/", &[("host", "evil.example")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the page too");
    // Listening beyond loopback (a token is then required), any name reaches it.
    let mut open = state(hub, Some("t"));
    open.guard = Guard::new("0.0.0.0:8080".parse().unwrap(), vec![]);
    let (status, _, _) = get(open, "/api/v1/map", &[("host", "podtap.internal"), ("authorization", "Bearer t")]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    for uri in ["/", "/healthz", "/api/v1/map", "/api/v1/nope"] {
        let (_, h, _) = get(state(Hub::new("t", 1), None), uri, &[]).await;
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer", "{uri}");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"), "{uri}: {csp}");
    }
}

#[tokio::test]
async fn the_csp_allows_exactly_the_apps_inline_boot_script() {
    let dir = std::env::temp_dir().join(format!("podtap-csp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let boot = "\nimport init from \"/podtap-0123456789abcdef.js\";\ninit();\n";
    std::fs::write(dir.join("index.html"), format!("<!doctype html><script type=\"module\">{boot}</script>")).unwrap();
    let assets = Assets::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    use base64::Engine;
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(boot.as_bytes()));
    let csp = assets.csp.to_str().unwrap();
    assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'") && !csp.contains("'unsafe-eval'"), "{csp}");
}

#[tokio::test]
async fn a_token_is_checked_whole() {
    let hub = Hub::new("t", 1);
    for bad in ["Bearer s3cre", "Bearer s3cretX", "Bearer S3cret", "s3cret"] {
        let (status, _, _) = get(state(hub.clone(), Some("s3cret")), "/api/v1/map", &[("authorization", bad)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    let (status, _, _) = get(state(hub, Some("s3cret")), "/api/v1/map", &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(status, StatusCode::OK);
}
