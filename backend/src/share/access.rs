//! Who may read what. A request is the admin (no token configured, or the token as a bearer
//! header, or the signed cookie the token was exchanged for), or the holder of a signed link: to
//! one saved session (its data, read-only) or to the live view under a filter (narrowed, never
//! widened). `authorize` runs before every API handler and hands it a `Scoped` view of the data;
//! nothing else decides access.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::db::LiveLink;
use super::link::{LinkError, Scope};
use crate::publish::AppState;
use crate::publish::api::{ApiError, Scoped};
use crate::publish::guard::same_secret;

/// The cookie a browser holds once it signed in with the token.
pub const AUTH_COOKIE: &str = "podtap_auth";
/// How long a sign-in lasts.
pub const SIGN_IN_S: u64 = 7 * 24 * 3600;
/// The id the admin cookie's grant is signed for.
const ADMIN_ID: &str = "browser";

/// What a request was granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    Admin,
    /// A link to this saved session, valid until `expires_s`.
    Session {
        id: String,
        expires_s: u64,
    },
    /// A live link.
    Live {
        link: LiveLink,
        expires_s: u64,
    },
}

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

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Whether the request comes from the admin: no token configured, the token as a bearer, or a
/// valid sign-in cookie.
pub fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.token else { return true };
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|b| same_secret(b, token)) {
        return true;
    }
    cookie(headers, AUTH_COOKIE).and_then(|c| c.split_once('.')).is_some_and(|(exp, sig)| {
        exp.parse().is_ok_and(|exp| state.share.keys.verify(ADMIN_ID, exp, &Scope::Admin, sig, now_s()).is_ok())
    })
}

/// The `Set-Cookie` value that signs a browser in for `SIGN_IN_S`.
pub fn sign_in_cookie(state: &AppState, secure: bool) -> String {
    let exp = now_s() + SIGN_IN_S;
    let sig = state.share.keys.sign(ADMIN_ID, exp, &Scope::Admin);
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{AUTH_COOKIE}={exp}.{sig}; Path={}; HttpOnly; SameSite=Strict; Max-Age={SIGN_IN_S}{secure}",
        state.share.base
    )
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

fn link_error(e: LinkError) -> ApiError {
    match e {
        LinkError::Tampered => ApiError::Forbidden(e.to_string()),
        LinkError::Expired(_) => ApiError::Expired(e.to_string()),
    }
}

/// What the link `id` with `exp` and `sig` grants: a session's or a live link's, checked against
/// its signature, its expiry and whether it still exists (deleting a session or revoking a link
/// revokes every URL of it).
pub fn check_link(state: &AppState, id: &str, exp: &str, sig: &str) -> Result<Grant, ApiError> {
    let tampered = || ApiError::Forbidden(LinkError::Tampered.to_string());
    let exp: u64 = exp.parse().map_err(|_| tampered())?;
    let (keys, db, now) = (&state.share.keys, &state.share.sessions, now_s());
    let storage = |e: super::db::DbError| ApiError::Storage(e.to_string());
    if db.meta(id).map_err(storage)?.is_some() {
        keys.verify(id, exp, &Scope::Session, sig, now).map_err(link_error)?;
        return Ok(Grant::Session { id: id.to_string(), expires_s: exp });
    }
    if let Some(link) = db.link(id).map_err(storage)? {
        keys.verify(id, exp, &Scope::Live(link.filter.clone()), sig, now).map_err(link_error)?;
        if link.revoked_us.is_some() {
            return Err(ApiError::Forbidden("this link was revoked".into()));
        }
        return Ok(Grant::Live { link, expires_s: exp });
    }
    // Gone: say "revoked" only to a holder of a genuine link.
    match keys.verify(id, exp, &Scope::Session, sig, u64::MIN) {
        Ok(()) => Err(ApiError::Forbidden("this link was revoked: its session was deleted".into())),
        Err(_) => Err(tampered()),
    }
}

/// The grant of a request: a link when it presents one (a bad link is refused even where the
/// request would be allowed without it), else the admin, else nothing.
pub fn grant_of(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    path_id: Option<&str>,
) -> Result<Grant, ApiError> {
    if let Some(sig) = params.get("sig") {
        let id = params.get("link").map(String::as_str).or(path_id).unwrap_or("");
        let exp = params.get("exp").map_or("", String::as_str);
        return check_link(state, id, exp, sig);
    }
    if is_admin(state, headers) { Ok(Grant::Admin) } else { Err(ApiError::Unauthorized) }
}

/// API routes a live link may read (relative to `/api/v1`).
fn live_readable(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(
        first,
        "records" | "connections" | "map" | "timeline" | "services" | "stream" | "export" | "packets" | "access"
    )
}

/// The middleware on `/api/v1`: decides the grant and the data the handler reads.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let path = path.strip_prefix("/api/v1").unwrap_or(path).to_string();
    if path == "/login" || path == "/logout" {
        return next.run(req).await; // signing in needs no grant yet
    }
    // `/sessions/{id}[/…]`: the id, and whether the rest reads the session's data (its links do not).
    let session = path.strip_prefix("/sessions/").map(|rest| {
        let mut parts = rest.splitn(2, '/');
        let id = parts.next().unwrap_or("").to_string();
        (id, parts.next().is_some_and(|sub| !sub.is_empty() && sub != "links"))
    });
    let params = query_params(req.uri());
    let grant = match grant_of(&state, req.headers(), &params, session.as_ref().map(|(id, _)| id.as_str())) {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let hub = || Arc::new(state.hub.clone()) as Arc<dyn crate::publish::api::Data>;
    let scoped = match (&grant, &session) {
        (Grant::Session { id, .. }, Some((sid, _))) if id == sid && read => None,
        (Grant::Session { .. }, _) if path == "/access" => None,
        (Grant::Session { .. }, _) => {
            return ApiError::Forbidden("this link opens one saved session, read-only, and nothing else".into())
                .into_response();
        }
        (Grant::Live { link, .. }, None) if read && live_readable(&path) => {
            Some(Scoped { data: hub(), restrict: Some(link.filter.as_str().into()) })
        }
        (Grant::Live { link, .. }, _) => {
            let text = format!("this link opens the live view under `{}`, read-only, and nothing else", link.filter);
            return ApiError::Forbidden(text).into_response();
        }
        (Grant::Admin, _) if session.is_none() => Some(Scoped { data: hub(), restrict: None }),
        (Grant::Admin, _) => None,
    };
    let scoped = match (scoped, &session) {
        (Some(s), _) => Some(s),
        (None, Some((sid, true))) => {
            // Reading and building a big session takes a while: off the async workers.
            let (share, id) = (state.share.clone(), sid.clone());
            match tokio::task::spawn_blocking(move || share.open(&id)).await {
                Ok(Ok(Some(frozen))) => Some(Scoped { data: frozen, restrict: None }),
                Ok(Ok(None)) => return ApiError::NoSuchSession(sid.clone()).into_response(),
                Ok(Err(e)) => return ApiError::Storage(e.to_string()).into_response(),
                Err(e) => return ApiError::Storage(e.to_string()).into_response(),
            }
        }
        (None, _) => None,
    };
    if let Some(s) = scoped {
        req.extensions_mut().insert(s);
    }
    req.extensions_mut().insert(grant);
    next.run(req).await
}
