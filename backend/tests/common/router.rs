//! The whole router in-process (no socket unless a test binds one): the built-in demo replayed
//! into a hub that keeps its packets, an `AppState` over it, and requests answered by `oneshot`.
//! Used by the sharing and the scope tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use podtap::cli::ShareConfig;
use podtap::feed::replay::{Pacing, run};
use podtap::publish::{AppState, Assets, Guard, Hub, app};
use podtap::share::{Share, packet_store};
use podtap::store::Limits;
use podtap_shared::Clock;
use serde_json::Value;
use tower::ServiceExt;

pub const TOKEN: &str = "s3cret-token";

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podtap-sharing-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn config(dir: &Path, base: &str) -> ShareConfig {
    ShareConfig { data_dir: Some(dir.to_path_buf()), base_path: base.into(), ..ShareConfig::default() }
}

/// The demo replayed once on its own clock into a hub that keeps its packets.
pub fn demo_hub(share: &ShareConfig) -> Hub {
    let hub = Hub::with_limits("built-in demo", Limits::default(), Clock::Capture);
    let cluster = Arc::new(podtap::demo::cluster());
    hub.set_cluster(cluster.clone());
    hub.set_packets(packet_store(share).unwrap().expect("retention is on by default"));
    let errors =
        run(&[podtap::demo::capture()], podtap::feed::fixed(cluster), &hub, Pacing { realtime: false, looped: false });
    assert!(errors.is_empty(), "{errors:?}");
    hub
}

pub fn state(hub: &Hub, share: Share, token: Option<&str>) -> AppState {
    let guard = Guard::new("127.0.0.1:8080".parse().unwrap(), vec![]);
    AppState::new(hub.clone(), Arc::new(Assets::not_built()), token.map(Into::into), guard, Arc::new(share))
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn call(s: &AppState, method: Method, uri: &str, headers: &[(&str, &str)], body: Option<Value>) -> Answer {
    call_from(s, None, method, uri, headers, body).await
}

/// `call`, as a request from `peer` (the address the server sees it come from).
pub async fn call_from(
    s: &AppState,
    peer: Option<std::net::SocketAddr>,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(peer) = peer {
        req = req.extension(axum::extract::ConnectInfo(peer));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = app(s.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    Answer { status, headers, body: to_bytes(resp.into_body(), 256 << 20).await.unwrap().to_vec() }
}

pub const ADMIN: &[(&str, &str)] = &[("authorization", "Bearer s3cret-token")];

pub async fn admin_get(s: &AppState, uri: &str) -> Answer {
    call(s, Method::GET, uri, ADMIN, None).await
}

pub async fn anon_get(s: &AppState, uri: &str) -> Answer {
    call(s, Method::GET, uri, &[], None).await
}

/// The next message the server sends, as the browser reads it.
pub async fn next_message(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> podtap_shared::ServerMessage {
    use futures_util::StreamExt;
    loop {
        match ws.next().await.expect("open").expect("a frame") {
            tokio_tungstenite::tungstenite::Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            _ => continue,
        }
    }
}
