//! Signing in with OpenID Connect, on the wire: `GET /auth/login?next=PATH` sends the browser to
//! the issuer; `GET /auth/callback` takes it back, keeps the sign-in server-side and sets a cookie
//! holding only its id; `POST /api/v1/logout` ends it. `GET /api/v1/signins` lists sign-ins (an
//! admin's: all; a person's: their own), `DELETE /api/v1/signins/{id}` and
//! `DELETE /api/v1/signins?user=NAME` end them (their open streams end at the next check).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::api::ApiError;
use super::assets::base_of;
use super::auth::{now_s, over_tls};
use super::pages;
use crate::access::Grant;
use crate::access::link::random_text;
use crate::access::signin::{SIGNIN_COOKIE, SignIn};

/// The address the issuer sends the browser back to, as the browser reaches podtap.
fn redirect_uri(headers: &HeaderMap, base: &str) -> String {
    let scheme = if over_tls(headers) { "https" } else { "http" };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    format!("{scheme}://{host}{base}auth/callback")
}

fn refused(state: &AppState, why: &str) -> Response {
    state.audit.record("sign_in_refused", json!({ "reason": why }));
    pages::sign_in(&state.share.base, StatusCode::UNAUTHORIZED, why, &state.share.base)
}

/// `GET /auth/login?next=PATH`.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let base = base_of(&headers, &state.share.base);
    let Some(oidc) = &state.people.oidc else {
        return pages::sign_in(&base, StatusCode::NOT_FOUND, "This podtap has no OpenID Connect sign-in.", &base);
    };
    let next = pages::local_next(&base, q.get("next").map_or("", String::as_str));
    match oidc.begin(&redirect_uri(&headers, &base), &next).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => refused(&state, &e.to_string()),
    }
}

/// `GET /auth/callback?code=…&state=…` (or `error=…`).
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (Some(oidc), Some(store)) = (&state.people.oidc, &state.people.signins) else {
        return refused(&state, "This podtap has no OpenID Connect sign-in.");
    };
    if let Some(error) = q.get("error") {
        let why = q.get("error_description").unwrap_or(error);
        return refused(&state, &format!("The identity provider did not sign you in: {why}."));
    }
    let (Some(code), Some(flow)) = (q.get("code"), q.get("state")) else {
        return refused(&state, "That sign-in answer is incomplete.");
    };
    let (signed, next) = match oidc.finish(code, flow).await {
        Ok(done) => done,
        Err(e) => return refused(&state, &e.to_string()),
    };
    let now = now_s();
    let s = SignIn {
        id: random_text(43),
        user: signed.who.user.clone(),
        groups: signed.who.groups.clone(),
        created_s: now,
        seen_s: now,
        token_expires_s: signed.expires_s,
        refresh_token: signed.refresh_token,
    };
    if let Err(e) = store.put(&s) {
        return refused(&state, &format!("The sign-in could not be kept: {e}."));
    }
    state.audit.record("sign_in", json!({"user": s.user, "groups": s.groups, "source": "oidc"}));
    let secure = if over_tls(&headers) { "; Secure" } else { "" };
    let max_age = state.people.lifetimes.max.as_secs();
    let cookie = format!(
        "{SIGNIN_COOKIE}={}; Path={}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        s.id, state.share.base
    );
    let mut resp = Redirect::to(&next).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("a cookie is ASCII"));
    resp
}

/// The cookie that forgets a sign-in.
pub fn forget_cookie(state: &AppState) -> String {
    format!("{SIGNIN_COOKIE}=; Path={}; HttpOnly; SameSite=Lax; Max-Age=0", state.share.base)
}

/// A sign-in as listed: never its refresh token.
#[derive(Serialize)]
pub struct Listed {
    id: String,
    user: String,
    groups: Vec<String>,
    created_s: u64,
    seen_s: u64,
}

fn signins(state: &AppState) -> Result<&dyn crate::access::signin::SignIns, ApiError> {
    state.people.signins.as_deref().ok_or_else(|| ApiError::BadRequest("this podtap has no sign-ins".into()))
}

/// `GET /api/v1/signins`.
pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
) -> Result<Json<Vec<Listed>>, ApiError> {
    let all = signins(&state)?.all().map_err(ApiError::Storage)?;
    let mine = |s: &SignIn| grant.manages(Some(&s.user));
    Ok(Json(
        all.into_iter()
            .filter(mine)
            .map(|s| Listed { id: s.id, user: s.user, groups: s.groups, created_s: s.created_s, seen_s: s.seen_s })
            .collect(),
    ))
}

/// `DELETE /api/v1/signins/{id}`: an admin's any, a person's own.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let store = signins(&state)?;
    let s = store.get(&id).map_err(ApiError::Storage)?;
    let Some(s) = s.filter(|s| grant.manages(Some(&s.user))) else {
        return Err(ApiError::BadRequest(format!("no sign-in {id}")));
    };
    store.delete(&id).map_err(ApiError::Storage)?;
    state.audit.record("signed_out_by", json!({"by": grant.user().unwrap_or("admin"), "user": s.user, "count": 1}));
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/signins?user=NAME`: every sign-in of a person (an admin's only).
pub async fn revoke_user(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !grant.is_admin() {
        return Err(ApiError::Refused(crate::access::Refusal::Forbidden("only an admin ends others' sign-ins".into())));
    }
    let user = q.get("user").ok_or_else(|| ApiError::BadRequest("give ?user=NAME".into()))?;
    let store = signins(&state)?;
    let theirs: Vec<SignIn> = store.all().map_err(ApiError::Storage)?.into_iter().filter(|s| &s.user == user).collect();
    for s in &theirs {
        store.delete(&s.id).map_err(ApiError::Storage)?;
    }
    state
        .audit
        .record("signed_out_by", json!({"by": grant.user().unwrap_or("admin"), "user": user, "count": theirs.len()}));
    Ok(Json(json!({ "ended": theirs.len() })))
}
