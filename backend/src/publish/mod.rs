//! Stage 8, publish: the HTTP server. `app()` builds the whole router (API, WebSocket stream, the
//! browser app, sharing) from a `Hub` and a `Share` so tests drive it without a socket; `main`
//! only binds it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};

use crate::share::Share;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::compression::CompressionLayer;

pub mod api;
pub mod assets;
pub mod auth;
pub mod edge;
pub mod guard;
pub mod hub;
pub mod metrics;
pub mod pages;
pub mod sharing;
pub mod signin;
pub mod stream;
pub mod whoami;

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
    pub share: Arc<Share>,
    /// Identity sources and how people's sight is decided.
    pub people: Arc<crate::access::People>,
    pub audit: Arc<crate::access::audit::Audit>,
}

impl AppState {
    /// A server with no identity source: the token is the admin (no token: whoever reaches it).
    /// Its audit events are counted, and written nowhere (`main` says where).
    pub fn new(hub: Hub, assets: Arc<Assets>, token: Option<Arc<str>>, guard: Guard, share: Arc<Share>) -> Self {
        let counting = Arc::new(hub.audit_counting());
        let audit = Arc::new(crate::access::audit::Audit::new(Some(Box::new(std::io::sink())), Some(counting)));
        AppState { hub, assets, token, guard, share, people: Arc::default(), audit }
    }
}

/// The windowed data routes, served for the live store at `/api/v1/…` and for a saved session at
/// `/api/v1/sessions/{sid}/…` (the access check hands each handler its data).
fn data_routes() -> Router<AppState> {
    Router::new()
        .route("/records", get(api::records))
        .route("/records/{id}", get(api::record))
        .route("/connections/{conn}", get(api::connection))
        .route("/map", get(api::map))
        .route("/edge", get(edge::edge))
        .route("/timeline", get(api::timeline))
        .route("/services", get(api::services))
        .route("/services/{namespace}/{name}/balance", get(api::balance))
        .route("/export", get(sharing::export))
        .route("/packets", get(sharing::packets))
}

/// The podtap router: `/healthz`, `/metrics`, `/api/v1/…`, `WS /api/v1/stream`, and the app for
/// every other path — at `/` and, with `--base-path`, under it too (a proxy that keeps the prefix
/// and one that strips it both work).
pub fn app(state: AppState) -> Router {
    let api = data_routes()
        .nest("/sessions/{sid}", data_routes())
        .route("/stream", get(stream::upgrade))
        .route("/access", get(sharing::access))
        .route("/whoami", get(whoami::whoami))
        .route("/sessions", get(sharing::list_sessions).post(sharing::create_session))
        .route("/sessions/{sid}", get(sharing::session_meta).delete(sharing::delete_session))
        .route("/sessions/{sid}/links", post(sharing::link_session))
        .route("/links", get(sharing::list_links).post(sharing::create_link))
        .route("/links/{id}", delete(sharing::revoke_link))
        .route("/signins", get(signin::list).delete(signin::revoke_user))
        .route("/signins/{id}", delete(signin::revoke))
        .route("/login", post(sharing::login))
        .route("/logout", post(sharing::logout))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authorize))
        .fallback(api::not_found);
    let metrics = Router::new()
        .route("/metrics", get(api::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let base = state.share.base.trim_end_matches('/').to_string();
    let router = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/auth/login", get(signin::login))
        .route("/auth/callback", get(signin::callback))
        .merge(metrics)
        .nest("/api/v1", api)
        .fallback(assets::serve)
        .layer(middleware::from_fn_with_state(state.clone(), guard::check))
        .with_state(state);
    let router = if base.is_empty() {
        router
    } else {
        Router::new().nest_service(&base, router.clone()).fallback_service(router)
    };
    router.layer(CompressionLayer::new())
}

/// `/metrics` is the admin's only (a scraper sends the token as a bearer).
async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if auth::is_admin(&state, req.headers()) {
        next.run(req).await
    } else {
        api::ApiError::Refused(crate::access::Refusal::Unauthorized).into_response()
    }
}

/// A plain-text status for anything that is not JSON-shaped.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}
