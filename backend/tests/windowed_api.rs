//! The windowed REST API through `app().oneshot(…)`: `from`/`to` in every form people write them,
//! records paged by cursor and by kind, one record, one connection, the timeline — and one
//! sentence of JSON with a 400 for every bad parameter.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use podtap::publish::{AppState, Assets, Guard, Hub, app};
use podtap::store::Limits;
use podtap_shared::{Clock, Detail, Record, TcpClose, TcpConnection};
use serde_json::Value;
use tower::ServiceExt;

/// 2026-11-18T11:06:40Z.
const T0: u64 = 1_795_000_000_000_000;

fn at(id: u64, conn: u64, offset_s: u64) -> Record {
    Record { id, conn, ts: T0 + offset_s * 1_000_000, end_us: Some(T0 + offset_s * 1_000_000 + 900), ..Record::test() }
}

fn connection(id: u64, conn: u64) -> Record {
    let mut r = at(id, conn, 0);
    r.detail = Detail::Tcp(TcpConnection {
        likely: None,
        handshake: true,
        close: TcpClose::Fin,
        rtt_us: Some(80),
        retransmissions: 0,
        gaps: 0,
        protocol: Some("http".into()),
        requests: 3,
    });
    r.end_us = Some(T0 + 5_000_000);
    r
}

/// A capture on its own time axis: three requests on connection 7 at 0, 2 and 4 s, one on
/// connection 8 at 3 s, and connection 7's record.
fn hub() -> Hub {
    let hub = Hub::with_limits("t", Limits::default(), Clock::Capture);
    hub.publish(&[at(1, 7, 0), at(2, 7, 2), at(4, 8, 3), at(3, 7, 4), connection(9, 7)]);
    hub
}

async fn get(hub: &Hub, uri: &str) -> (StatusCode, Value) {
    let guard = Guard::new("127.0.0.1:8080".parse().unwrap(), vec![]);
    let share = Arc::new(podtap::share::Share::ephemeral());
    let state = AppState::new(hub.clone(), Arc::new(Assets::not_built()), None, guard, share);
    let resp = app(state).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    (status, serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap())
}

fn ids(page: &Value) -> Vec<u64> {
    page["records"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn windows_in_every_form_people_write_them() {
    let hub = hub();
    let t = |s: u64| T0 + s * 1_000_000;
    for (from, to) in [
        (t(1).to_string(), t(3).to_string()),
        ("2026-11-18T11:06:41Z".into(), "2026-11-18T11:06:43Z".into()),
        // Relative to now, which for a capture on its own axis is its newest record (4 s).
        ("-3s".into(), "-1s".into()),
    ] {
        let (status, page) = get(&hub, &format!("/api/v1/records?from={from}&to={to}")).await;
        assert_eq!(status, StatusCode::OK, "{from}..{to}: {page}");
        assert_eq!(ids(&page), [2, 4], "{from}..{to}");
        let (_, map) = get(&hub, &format!("/api/v1/map?from={from}&to={to}")).await;
        assert_eq!(map["edges"][0]["requests"], 2, "{from}..{to}");
        assert_eq!(map["edges"][0]["connections"], 2);
    }
    let (_, map) = get(&hub, "/api/v1/map?to=now").await;
    assert_eq!((map["edges"][0]["requests"].as_u64(), map["edges"][0]["connections"].as_u64()), (Some(4), Some(2)));
}

#[tokio::test]
async fn records_page_by_cursor_and_by_kind() {
    let hub = hub();
    let (_, first) = get(&hub, &format!("/api/v1/records?from={T0}&limit=2")).await;
    assert_eq!(ids(&first), [1, 2]);
    let next = first["next"].as_str().expect("a next page").to_string();
    let (_, second) = get(&hub, &format!("/api/v1/records?cursor={next}&limit=2")).await;
    assert_eq!(ids(&second), [4, 3]);
    assert!(second.get("next").is_none(), "the last page: {second}");
    // Without a start, the newest page (as before), oldest first.
    let (_, newest) = get(&hub, "/api/v1/records?limit=2").await;
    assert_eq!(ids(&newest), [4, 3]);
    let (_, tcp) = get(&hub, "/api/v1/records?kind=tcp").await;
    assert_eq!(ids(&tcp), [9]);
    assert_eq!((tcp["records"][0]["kind"].as_str(), tcp["records"][0]["close"].as_str()), (Some("tcp"), Some("fin")));
    let (_, all) = get(&hub, "/api/v1/records?kind=all").await;
    assert_eq!(ids(&all), [1, 9, 2, 4, 3]);
}

#[tokio::test]
async fn one_record_one_connection_and_the_timeline() {
    let hub = hub();
    let (status, r) = get(&hub, "/api/v1/records/2").await;
    assert_eq!((status, r["id"].as_u64(), r["end_us"].as_u64()), (StatusCode::OK, Some(2), Some(T0 + 2_000_900)));
    let (status, c) = get(&hub, "/api/v1/connections/7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["connection"]["id"], 9);
    assert_eq!(
        c["requests"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let (_, t) = get(&hub, &format!("/api/v1/timeline?from={T0}&to={}&step=2s", T0 + 5_999_999)).await;
    let buckets: Vec<(u64, u64)> = t["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["requests"].as_u64().unwrap(), b["connections"].as_u64().unwrap()))
        .collect();
    assert_eq!(buckets, [(1, 1), (2, 0), (1, 0)], "{t}");
    let (_, t) = get(&hub, "/api/v1/timeline?filter=conn:8").await;
    assert_eq!(t["buckets"].as_array().unwrap().iter().map(|b| b["requests"].as_u64().unwrap()).sum::<u64>(), 1);
    assert_eq!(t["step_us"], 1_000_000, "about 200 steps of whole seconds over what is retained");
}

#[tokio::test]
async fn every_bad_parameter_is_a_400_with_one_sentence() {
    let hub = hub();
    for (uri, status, says) in [
        ("/api/v1/map?from=yesterday", StatusCode::BAD_REQUEST, "`yesterday` is not a time"),
        ("/api/v1/records?to=-5x", StatusCode::BAD_REQUEST, "`-5x` is not a time"),
        (&format!("/api/v1/map?from={}&to={T0}", T0 + 1)[..], StatusCode::BAD_REQUEST, "must be before `to`"),
        ("/api/v1/records?kind=udp", StatusCode::BAD_REQUEST, "kind must be requests, tcp or all"),
        ("/api/v1/records?cursor=abc", StatusCode::BAD_REQUEST, "`abc` is not a cursor"),
        ("/api/v1/records?limit=0", StatusCode::BAD_REQUEST, "limit must be between 1 and 10000"),
        ("/api/v1/timeline?step=0s", StatusCode::BAD_REQUEST, "step must be positive"),
        ("/api/v1/timeline?step=1us", StatusCode::BAD_REQUEST, "at most 10000 buckets"),
        ("/api/v1/timeline?step=soon", StatusCode::BAD_REQUEST, "`soon` is not a duration"),
        ("/api/v1/map?filter=probe%3Amaybe", StatusCode::BAD_REQUEST, "`probe:maybe` is not allowed"),
        ("/api/v1/records/x", StatusCode::BAD_REQUEST, "`x` is not a record id"),
        ("/api/v1/records/99", StatusCode::NOT_FOUND, "no record 99 is retained"),
        ("/api/v1/connections/99", StatusCode::NOT_FOUND, "no connection 99 is retained"),
        ("/api/v1/services/default/web/balance?from=later", StatusCode::BAD_REQUEST, "`later` is not a time"),
    ] {
        let (got, body) = get(&hub, uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{uri}: {error}");
        assert_eq!(error.matches(". ").count(), 0, "one sentence: {error}");
    }
}

/// A request from pod `web-{pod}` (Deployment `web`) through Service `shop/api`, taking `ms`.
fn from_web(id: u64, conn: u64, pod: u8, ms: u64) -> Record {
    let mut r = at(id, conn, id % 5);
    r.src.kind = podtap_shared::EndpointKind::Pod;
    r.src.name = Some(format!("web-{pod}").into());
    r.src.namespace = Some("default".into());
    r.src.workload = Some("Deployment/web".into());
    r.src.ip = [10, 0, 0, pod].into();
    r.dst.kind = podtap_shared::EndpointKind::Pod;
    r.dst.name = Some("api-1".into());
    r.dst.namespace = Some("shop".into());
    r.via = podtap_shared::Via { kind: podtap_shared::ViaKind::ClusterIp, service: Some("shop/api".into()) };
    r.latency_us = Some(ms * 1000);
    r
}

#[tokio::test]
async fn a_folded_edge_has_the_percentiles_of_its_requests_not_of_its_pods() {
    let hub = Hub::with_limits("t", Limits::default(), Clock::Capture);
    // Pod 1: nine fast requests on one connection; pod 2: one slow request on its own.
    let mut records: Vec<Record> = (1..=9).map(|i| from_web(i, 100, 1, 1)).collect();
    records.push(from_web(10, 200, 2, 100));
    hub.publish(&records);
    let edge = "source=workload:default/Deployment/web&target=service:shop/api&step=1s";
    let (status, body) = get(&hub, &format!("/api/v1/edge?{edge}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let e = &body["edge"];
    assert_eq!((e["requests"].as_u64(), e["connections"].as_u64()), (Some(10), Some(2)), "{body}");
    // Ten requests, nine at 1 ms: p50 is 1 ms and p99 the slow one — no per-pod p50 says that.
    assert!((e["p50_ms"].as_f64().unwrap() - 1.0).abs() < 0.02, "{e}");
    assert!((e["p99_ms"].as_f64().unwrap() - 100.0).abs() < 2.0, "{e}");
    assert_eq!(e["protocols"], serde_json::json!(["http"]));
    assert_eq!(body["complete"], true);
    let per_step: u64 =
        body["timeline"]["buckets"].as_array().unwrap().iter().map(|b| b["requests"].as_u64().unwrap()).sum();
    assert_eq!(per_step, 10);
    // One pod's edge, and the edge on the other side of the Service.
    let (_, one) = get(&hub, "/api/v1/edge?source=pod:default/web-2&target=service:shop/api").await;
    assert_eq!(one["edge"]["requests"], 1);
    let (_, back) = get(&hub, "/api/v1/edge?source=service:shop/api&target=namespace:shop").await;
    assert_eq!(back["edge"]["requests"], 10);
    let (status, body) = get(&hub, "/api/v1/edge?source=web&target=service:shop/api").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
