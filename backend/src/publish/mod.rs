//! Stage 8, publish: the HTTP server. `app()` builds the whole router (API, WebSocket stream, the
//! browser app) from a `Hub` so tests drive it without a socket; `main` only binds it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::compression::CompressionLayer;

pub mod api;
pub mod assets;
pub mod guard;
pub mod hub;
pub mod metrics;
pub mod stream;

pub use assets::Assets;
pub use guard::Guard;
pub use hub::Hub;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    pub assets: Arc<Assets>,
    pub token: Option<Arc<str>>,
    pub guard: Guard,
}

/// The podtap router: `/healthz`, `/api/v1/…`, `WS /api/v1/stream`, and the app for every other path.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/records", get(api::records))
        .route("/records/{id}", get(api::record))
        .route("/connections/{conn}", get(api::connection))
        .route("/map", get(api::map))
        .route("/timeline", get(api::timeline))
        .route("/services", get(api::services))
        .route("/services/{namespace}/{name}/balance", get(api::balance))
        .route("/stream", get(stream::upgrade))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .fallback(api::not_found);
    let metrics = Router::new()
        .route("/metrics", get(api::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(api::healthz))
        .merge(metrics)
        .nest("/api/v1", api)
        .fallback(assets::serve)
        .layer(middleware::from_fn_with_state(state.clone(), guard::check))
        .with_state(state)
        .layer(CompressionLayer::new())
}

/// With a token configured, API calls need `Authorization: Bearer TOKEN` or `?token=TOKEN`
/// (browsers cannot set headers on a WebSocket).
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(req).await;
    };
    let bearer =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let query = req.uri().query().into_iter().flat_map(|q| q.split('&')).find_map(|kv| kv.strip_prefix("token="));
    let presented = [bearer, query].into_iter().flatten();
    if presented.into_iter().any(|p| guard::same_secret(p, token)) {
        next.run(req).await
    } else {
        api::ApiError::Unauthorized.into_response()
    }
}

/// A plain-text status for anything that is not JSON-shaped.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}
