//! Access on the wire: the middleware in front of every API handler asks the access stage what the
//! request was granted and what its route reads, and hands the handler a `Scoped` view of that
//! data; a page asks the same about the route it will read. Also the sign-in cookie and the query
//! helpers the pages share. Nothing here decides access: `crate::access` does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::api::{ApiError, Scoped};
use crate::access::grant::page_path_id;
use crate::access::grant::{AUTH_COOKIE, SIGN_IN_S};
use crate::access::{Credentials, Gate, Grant, Reads, Refusal, Route, page_route, reads};

pub fn now_s() -> u64 {
    crate::feed::replay::now_us() / 1_000_000
}

/// The query parameters of a request, decoded.
pub fn query_params(uri: &axum::http::Uri) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(uri).map(|q| q.0).unwrap_or_default()
}

/// The query parameters in order, decoded (repeated names kept).
pub fn query_params_ordered(uri: &axum::http::Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

/// Query parameters put back into a query string.
pub fn encode_query(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

/// The gate of this server, now.
pub fn gate(state: &AppState) -> Gate<'_> {
    Gate {
        token: state.token.as_deref(),
        open: state.token.is_none() && !state.people.configured(),
        keys: &state.share.keys,
        links: &*state.share,
        now_s: now_s(),
    }
}

/// The address a request came from, when the server knows it.
pub fn peer(req: &Request) -> Option<IpAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// What a request was granted: a link or the admin (`Gate`), else the person an identity source
/// names, with what they see decided now (RBAC is asked, through a short cache).
pub async fn grant_of(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    credentials: &Credentials,
) -> Result<Grant, Refusal> {
    match gate(state).grant(credentials) {
        Err(Refusal::Unauthorized) => {}
        decided => return decided,
    }
    let named = state.people.who(headers, peer, now_s()).await?.ok_or(Refusal::Unauthorized)?;
    let cluster = state.hub.cluster();
    Ok(state.people.grant(named, || cluster.known_namespaces()).await)
}

/// Whether the request comes from the admin.
pub fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    gate(state).is_admin(&Credentials::of(headers, &HashMap::new(), None))
}

/// The `Set-Cookie` value that signs a browser in for `SIGN_IN_S`.
pub fn sign_in_cookie(state: &AppState, secure: bool) -> String {
    let value = gate(state).admin_cookie();
    let secure = if secure { "; Secure" } else { "" };
    format!("{AUTH_COOKIE}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={SIGN_IN_S}{secure}", state.share.base)
}

/// The cookie that signs a browser out.
pub fn sign_out_cookie(state: &AppState) -> String {
    format!("{AUTH_COOKIE}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0", state.share.base)
}

/// Whether the browser reached podtap over TLS (podtap itself speaks plain HTTP; a proxy in
/// front says so).
pub fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    forwarded.is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// Why a page opened with a link (`sig` in its query) may not be shown: the link grants nothing,
/// or not what the page reads (a saved session's link opened as the live view's embed).
pub fn page_refusal(state: &AppState, path: &str, params: &HashMap<String, String>) -> Option<Refusal> {
    params.get("sig")?;
    let path_id = page_path_id(path).map(|(id, _)| id);
    let grant = match gate(state).grant(&Credentials::of(&HeaderMap::new(), params, path_id)) {
        Ok(g) => g,
        Err(r) => return Some(r),
    };
    reads(&grant, &page_route(path, params)).err()
}

/// The middleware on `/api/v1`: decides the grant and the data the handler reads.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let path = path.strip_prefix("/api/v1").unwrap_or(path).to_string();
    if path == "/login" || path == "/logout" {
        return next.run(req).await; // signing in needs no grant yet
    }
    let route = Route::new(&path, req.method() == Method::GET || req.method() == Method::HEAD);
    let params = query_params(req.uri());
    let credentials = Credentials::of(req.headers(), &params, route.session.as_ref().map(|(id, _)| id.as_str()));
    let from = peer(&req);
    let granted = grant_of(&state, req.headers(), from, &credentials).await;
    let decided = granted.and_then(|g| reads(&g, &route).map(|r| (g, r)));
    let (grant, what) = match decided {
        Ok(d) => d,
        Err(r) => {
            let peer = from.map(|p| p.to_string());
            state.audit.record("refused", serde_json::json!({"path": path, "reason": r.to_string(), "peer": peer}));
            return refusal(&state, r);
        }
    };
    let sight = Arc::new(grant.sight());
    let scoped = match what {
        Reads::Live { restrict } => {
            Some(Scoped { data: Arc::new(state.hub.clone()), restrict: restrict.map(|f| f.as_str().into()), sight })
        }
        Reads::Session(sid) => {
            // Reading and building a big session takes a while: off the async workers.
            let (share, id) = (state.share.clone(), sid.clone());
            match tokio::task::spawn_blocking(move || share.open(&id)).await {
                // A person opens their own sessions; others' only through a link (which `reads`
                // let through for its own session only).
                Ok(Ok(Some(frozen)))
                    if !matches!(grant, Grant::Session { .. }) && !grant.manages(frozen.meta.owner.as_deref()) =>
                {
                    return ApiError::NoSuchSession(sid).into_response();
                }
                Ok(Ok(Some(frozen))) => Some(Scoped { data: frozen, restrict: None, sight }),
                Ok(Ok(None)) => return ApiError::NoSuchSession(sid).into_response(),
                Ok(Err(e)) => return ApiError::Storage(e.to_string()).into_response(),
                Err(e) => return ApiError::Storage(e.to_string()).into_response(),
            }
        }
        Reads::Nothing => None,
    };
    if let Some(s) = scoped {
        req.extensions_mut().insert(s);
    }
    req.extensions_mut().insert::<Grant>(grant);
    // A stream lives on: what it presented is kept to decide it again (`Presented`).
    if path == "/stream" {
        let presented = Presented { headers: req.headers().clone(), peer: from, credentials };
        req.extensions_mut().insert(presented);
    }
    next.run(req).await
}

/// What a request presented, kept so a long-lived stream can be decided again.
#[derive(Clone)]
pub struct Presented {
    pub headers: HeaderMap,
    pub peer: Option<IpAddr>,
    pub credentials: Credentials,
}

impl Presented {
    /// The grant these credentials get now (a revoked sign-in, an expired link or a removed
    /// RoleBinding shows here).
    pub async fn grant_now(&self, state: &AppState) -> Result<Grant, Refusal> {
        grant_of(state, &self.headers, self.peer, &self.credentials).await
    }
}

/// A refusal as the API answers it; one that signing in would lift says where to sign in, when
/// podtap offers OpenID Connect (`sign_in`, relative to the base path).
pub fn refusal(state: &AppState, r: Refusal) -> Response {
    let sign_in = matches!(r, Refusal::Unauthorized | Refusal::Invalid(_)) && state.people.oidc.is_some();
    if !sign_in {
        return ApiError::from(r).into_response();
    }
    let body = serde_json::json!({ "error": r.to_string(), "sign_in": "auth/login" });
    (axum::http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}
