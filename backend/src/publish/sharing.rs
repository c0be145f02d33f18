//! The sharing API: `POST/GET /api/v1/sessions`, `GET/DELETE /api/v1/sessions/{id}`,
//! `POST /api/v1/sessions/{id}/links`, `POST/GET /api/v1/links`, `DELETE /api/v1/links/{id}`,
//! `GET /api/v1/access` (what this request may do), the downloads (`export`, `packets`) of the
//! live store or a session, and sign-in (`POST /api/v1/login`, `/logout`).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use podtap_shared::{Access, Filter, PacketsInfo, Record, SharedLink};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::{ApiError, Scoped, WindowQuery, find_packets};
use super::auth::{now_s, over_tls, sign_in_cookie, sign_out_cookie};
use super::pages;
use crate::access::Grant;
use crate::access::link::{Scope, random_text, same_secret};
use crate::packets::Found;
use crate::share::db::LiveLink;
use crate::share::export;
use crate::share::session::{MAX_SESSION_RECORDS, Payload, SessionMeta};
use crate::store::{Cursor, Kinds};

/// A link's lifetime when none is asked for, and the longest one podtap signs.
pub const DEFAULT_TTL_S: u64 = 7 * 24 * 3600;
pub const MAX_TTL_S: u64 = 365 * 24 * 3600;
/// Most records one download holds.
pub const MAX_EXPORT: usize = MAX_SESSION_RECORDS;

/// A time in a JSON body: RFC 3339, relative (`-5m`), or µs since the epoch.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum TimeArg {
    Text(String),
    Micros(u64),
}

impl TimeArg {
    fn text(self) -> String {
        match self {
            TimeArg::Text(t) => t,
            TimeArg::Micros(us) => us.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    from: Option<TimeArg>,
    to: Option<TimeArg>,
    #[serde(default)]
    filter: String,
    ttl_s: Option<u64>,
    #[serde(default)]
    title: String,
    /// The page's view (its URL parameters) to restore.
    #[serde(default)]
    view: BTreeMap<String, String>,
}

fn ttl(asked: Option<u64>) -> Result<u64, ApiError> {
    match asked.unwrap_or(DEFAULT_TTL_S) {
        0 => Err(ApiError::BadRequest("ttl_s must be at least 1 second".into())),
        t if t > MAX_TTL_S => Err(ApiError::BadRequest(format!("ttl_s must be at most {MAX_TTL_S} (a year)"))),
        t => Ok(t),
    }
}

fn storage(e: crate::share::db::DbError) -> ApiError {
    ApiError::Storage(e.to_string())
}

fn session_link(state: &AppState, id: &str, ttl_s: u64) -> SharedLink {
    let expires = now_s() + ttl_s;
    let sig = state.share.keys.sign(id, expires, &Scope::Session);
    SharedLink { id: id.to_string(), url: format!("{}s/{id}?exp={expires}&sig={sig}", state.share.base), expires }
}

/// The session `id`'s description when `grant` may see it (its owner, an admin, or its link).
fn visible_meta(state: &AppState, grant: &Grant, id: &str) -> Result<SessionMeta, ApiError> {
    let meta = state.share.saved().meta(id).map_err(storage)?;
    let linked = matches!(grant, Grant::Session { id: linked, .. } if linked == id);
    meta.filter(|m| linked || grant.manages(m.owner.as_deref())).ok_or_else(|| ApiError::NoSuchSession(id.to_string()))
}

/// `POST /api/v1/sessions`: freezes a window into a saved session and signs a link to it. It
/// holds the records as its creator sees them.
pub async fn create_session(
    State(state): State<AppState>,
    Extension(scope): Extension<Scoped>,
    Extension(grant): Extension<Grant>,
    Json(body): Json<NewSession>,
) -> Result<(StatusCode, Json<SharedLink>), ApiError> {
    let ttl_s = ttl(body.ttl_s)?;
    let q = WindowQuery::new(body.from.map(TimeArg::text), body.to.map(TimeArg::text), body.filter.clone());
    let window = q.window(&*scope.data)?;
    let filter = q.filter(&scope)?;
    let hub = &state.hub;
    // What the creator sees, as they see it: a session never shows more than its creator could.
    let (records, more) =
        hub.records(window, scope.lens(&filter), Kinds::All, Some(Cursor { ts: 0, id: 0 }), MAX_SESSION_RECORDS);
    if more {
        return Err(ApiError::BadRequest(format!(
            "this window holds more than {MAX_SESSION_RECORDS} records, more than a session keeps: choose a shorter window or a narrower filter"
        )));
    }
    let packets = find_packets(hub, export::flows(&records))
        .await
        .unwrap_or(Found { aged_out: !records.is_empty(), ..Found::default() });
    let stats = hub.store_stats();
    let to = if window.to == u64::MAX { stats.newest_us.unwrap_or(0) + 1 } else { window.to };
    let from = if window.from == 0 { stats.oldest_us.unwrap_or(to - 1) } else { window.from };
    let id = random_text(12);
    let meta = SessionMeta {
        id: id.clone(),
        title: body.title,
        created_us: crate::feed::replay::now_us(),
        from,
        to,
        filter: body.filter,
        view: body.view,
        records: records.len() as u64,
        requests: records.iter().filter(|r| r.is_request()).count() as u64,
        packets: packets.frames.len() as u64,
        packets_aged_out: packets.aged_out,
        source: hub.source().to_string(),
        clock: hub.clock(),
        bytes: 0,
        owner: grant.user().map(str::to_string),
        seen_as: (!scope.sight.is_all()).then(|| scope.sight.describe()),
    };
    let payload = Payload { records, backends: hub.cluster().backends_snapshot(), packets };
    let share = state.share.clone();
    let meta_saved = meta.clone();
    let evicted = tokio::task::spawn_blocking(move || share.saved().save(&meta_saved, &payload))
        .await
        .map_err(|e| ApiError::Storage(e.to_string()))?
        .map_err(storage)?;
    for gone in evicted {
        tracing::info!("session {gone} evicted to make room (--evict-sessions)");
        state.share.forget(&gone);
    }
    tracing::info!("session {id} saved: {} records, {} packets", meta.records, meta.packets);
    state.audit.record(
        "session_saved",
        json!({"by": actor(&grant), "session": id, "from": meta.from, "to": meta.to, "filter": meta.filter, "records": meta.records}),
    );
    Ok((StatusCode::CREATED, Json(session_link(&state, &id, ttl_s))))
}

/// `GET /api/v1/sessions`: every saved session the request manages (an admin's: all), oldest
/// first.
pub async fn list_sessions(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
) -> Result<Json<Vec<SessionMeta>>, ApiError> {
    let mut all = state.share.saved().list().map_err(storage)?;
    all.retain(|m| grant.manages(m.owner.as_deref()));
    Ok(Json(all))
}

/// `GET /api/v1/sessions/{id}`: what the session holds and the view to restore.
pub async fn session_meta(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<Json<SessionMeta>, ApiError> {
    visible_meta(&state, &grant, &id).map(Json)
}

/// `DELETE /api/v1/sessions/{id}`: the session and every link to it.
pub async fn delete_session(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    visible_meta(&state, &grant, &id)?;
    state.share.forget(&id);
    match state.share.saved().delete(&id).map_err(storage)? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NoSuchSession(id)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    #[serde(default)]
    filter: String,
    ttl_s: Option<u64>,
}

/// `POST /api/v1/sessions/{id}/links` `{"ttl_s"}`: another link to a saved session.
pub async fn link_session(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
    Json(body): Json<NewLink>,
) -> Result<(StatusCode, Json<SharedLink>), ApiError> {
    let ttl_s = ttl(body.ttl_s)?;
    visible_meta(&state, &grant, &id)?;
    Ok((StatusCode::CREATED, Json(session_link(&state, &id, ttl_s))))
}

/// `POST /api/v1/links` `{"filter", "ttl_s"}`: a link to the live view under `filter`, showing
/// what its creator sees now, never more (even if they later see more).
pub async fn create_link(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Json(body): Json<NewLink>,
) -> Result<(StatusCode, Json<SharedLink>), ApiError> {
    let ttl_s = ttl(body.ttl_s)?;
    Filter::parse(&body.filter).map_err(|e| ApiError::BadRequest(format!("filter: {e}")))?;
    let expires = now_s() + ttl_s;
    let link = LiveLink {
        id: random_text(12),
        filter: body.filter,
        created_us: crate::feed::replay::now_us(),
        expires_s: expires,
        revoked_us: None,
        owner: grant.user().map(str::to_string),
        sight: Some(grant.sight()).filter(|s| !s.is_all()),
    };
    state.share.links().add_link(&link).map_err(ApiError::Storage)?;
    state.audit.record("link_made", json!({"by": actor(&grant), "link": link.id, "filter": link.filter}));
    let sig = state.share.keys.sign(&link.id, expires, &Scope::Live(link.filter.clone()));
    let url = format!("{}l/{}?exp={expires}&sig={sig}", state.share.base, link.id);
    Ok((StatusCode::CREATED, Json(SharedLink { id: link.id, url, expires })))
}

/// `GET /api/v1/links`: the live links not revoked that the request manages.
pub async fn list_links(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
) -> Result<Json<Vec<LiveLink>>, ApiError> {
    let mut all = state.share.links().links().map_err(ApiError::Storage)?;
    all.retain(|l| grant.manages(l.owner.as_deref()));
    Ok(Json(all))
}

/// `DELETE /api/v1/links/{id}`: revokes a live link.
pub async fn revoke_link(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let link = state.share.links().link(&id).map_err(ApiError::Storage)?;
    if !link.is_some_and(|l| grant.manages(l.owner.as_deref())) {
        return Err(ApiError::BadRequest(format!("no live link {id}")));
    }
    match state.share.links().revoke(&id, crate::feed::replay::now_us()).map_err(ApiError::Storage)? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::BadRequest(format!("no live link {id}"))),
    }
}

/// `GET /api/v1/access[?link=…&exp=…&sig=…][&session=ID]`: what this request may see, for the page.
pub async fn access(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Access>, ApiError> {
    let meta = |id: &str| state.share.saved().meta(id).map_err(storage);
    let embed_origins = state.guard.embed_origins().to_vec();
    let whoami = super::whoami::of(&state, &grant);
    // A page asks this first: who opened which session or link.
    match (&grant, q.get("session")) {
        (Grant::Session { id, .. }, _) => {
            state.audit.record("session_opened", json!({"by": actor(&grant), "session": id}))
        }
        (Grant::Live { id, filter, .. }, _) => state.audit.record("link_opened", json!({"link": id, "filter": filter})),
        (_, Some(id)) => state.audit.record("session_opened", json!({"by": actor(&grant), "session": id})),
        _ => {}
    }
    Ok(Json(match &grant {
        Grant::Admin | Grant::User(_) => Access {
            scope: if matches!(grant, Grant::Admin) { "admin" } else { "user" }.into(),
            session: match q.get("session") {
                Some(id) => Some(visible_meta(&state, &grant, id)?),
                None => None,
            },
            filter: None,
            expires: None,
            can_share: true,
            embed_origins,
            whoami,
        },
        Grant::Session { id, expires_s } => Access {
            scope: "session".into(),
            session: meta(id)?,
            filter: None,
            expires: Some(*expires_s),
            can_share: false,
            embed_origins,
            whoami,
        },
        Grant::Live { filter, expires_s, .. } => Access {
            scope: "live".into(),
            session: None,
            filter: Some(filter.clone()),
            expires: Some(*expires_s),
            can_share: false,
            embed_origins,
            whoami,
        },
    }))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    /// One connection only.
    conn: Option<String>,
    #[serde(flatten)]
    window: WindowQuery,
}

/// The records an export holds: the window's, under the filter, of one connection if asked.
fn export_records(scope: &Scoped, q: &ExportQuery) -> Result<Vec<Record>, ApiError> {
    let window = q.window.window(&*scope.data)?;
    let filter = match &q.conn {
        None => q.window.filter(scope)?,
        Some(c) => {
            let conn: u64 = c.parse().map_err(|_| ApiError::BadRequest(format!("`{c}` is not a connection id")))?;
            scope.filter(&format!("{} conn:{conn}", q.window.filter_text()))?
        }
    };
    let (records, more) =
        scope.data.records(window, scope.lens(&filter), Kinds::All, Some(Cursor { ts: 0, id: 0 }), MAX_EXPORT);
    if more {
        return Err(ApiError::BadRequest(format!(
            "this window holds more than {MAX_EXPORT} records: choose a shorter window or a narrower filter"
        )));
    }
    Ok(records)
}

fn attachment(mime: &'static str, name: String, body: Vec<u8>) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).expect("a plain file name");
    ([(header::CONTENT_TYPE, HeaderValue::from_static(mime)), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response()
}

/// `GET …/export?format=pcapng|har|jsonl&from=&to=&filter=&conn=`.
pub async fn export(
    State(state): State<AppState>,
    Extension(scope): Extension<Scoped>,
    Extension(grant): Extension<Grant>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let records = export_records(&scope, &q)?;
    let window = q.window.window(&*scope.data)?;
    state.audit.record(
        "export",
        json!({"by": actor(&grant), "format": q.format.as_deref().unwrap_or("jsonl"), "from": window.from,
            "to": window.to, "filter": q.window.filter_text(), "conn": q.conn, "records": records.len()}),
    );
    let stem = match &q.conn {
        Some(c) => format!("podtap-conn-{c}"),
        None => "podtap".to_string(),
    };
    match q.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => {
            Ok(attachment("application/x-ndjson", format!("{stem}.jsonl"), export::jsonl(&records).into_bytes()))
        }
        "har" => {
            let body = serde_json::to_vec_pretty(&export::har(&records)).expect("a HAR serialises");
            Ok(attachment("application/json", format!("{stem}.har"), body))
        }
        "pcapng" => {
            let Some(found) = find_packets(&*scope.data, export::flows(&records)).await else {
                return Err(ApiError::NotRetained(
                    "this podtap keeps no packets (start it with --packet-retention-mb above 0)".into(),
                ));
            };
            if found.frames.is_empty() {
                let withheld = export::withheld(&records);
                return Err(ApiError::NotRetained(if withheld > 0 {
                    format!(
                        "no packets can be exported: {withheld} of these connections have a peer outside your namespaces, and the others' packets aged out or were none"
                    )
                } else {
                    "no packets of these connections are retained: they aged out of the packet ring".into()
                }));
            }
            let body = export::pcapng(&found, &records).map_err(|e| ApiError::Storage(e.to_string()))?;
            Ok(attachment("application/x-pcapng", format!("{stem}.pcapng"), body))
        }
        other => Err(ApiError::BadRequest(format!("format must be pcapng, har or jsonl, not `{other}`"))),
    }
}

/// `GET …/packets?from=&to=&filter=&conn=`: how many packets an export would hold, and whether
/// some aged out (the page says so before the download).
pub async fn packets(
    Extension(scope): Extension<Scoped>,
    Query(q): Query<ExportQuery>,
) -> Result<Json<PacketsInfo>, ApiError> {
    let records = export_records(&scope, &q)?;
    let connections = records.iter().map(|r| r.conn).collect::<std::collections::BTreeSet<_>>().len() as u64;
    let withheld = export::withheld(&records);
    Ok(Json(match find_packets(&*scope.data, export::flows(&records)).await {
        Some(f) => {
            PacketsInfo { retained: true, frames: f.frames.len() as u64, connections, aged_out: f.aged_out, withheld }
        }
        None => PacketsInfo { retained: false, frames: 0, connections, aged_out: connections > 0, withheld },
    }))
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
    /// Where to go after (a path of this podtap).
    #[serde(default)]
    next: String,
}

/// `POST /api/v1/login` (a form: `token`, `next`): exchanges the token for the sign-in cookie.
pub async fn login(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<SignIn>) -> Response {
    let Some(token) = &state.token else {
        return Redirect::to(&pages::local_next(&state.share.base, &form.next)).into_response();
    };
    if !same_secret(form.token.trim(), token) {
        return pages::sign_in(&state.share.base, StatusCode::UNAUTHORIZED, "That token is not podtap's.", &form.next);
    }
    let cookie = sign_in_cookie(&state, over_tls(&headers));
    let mut resp = Redirect::to(&pages::local_next(&state.share.base, &form.next)).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("a cookie is ASCII"));
    resp
}

/// `POST /api/v1/logout`: forgets the sign-in cookie, and ends an OpenID Connect sign-in.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signin = crate::access::grant::cookie(&headers, crate::access::signin::SIGNIN_COOKIE);
    if let (Some(id), Some(store)) = (signin, &state.people.signins)
        && let Ok(Some(s)) = store.get(id)
    {
        let _ = store.delete(id);
        state.audit.record("sign_out", json!({ "user": s.user }));
    }
    let mut resp = Redirect::to(&state.share.base).into_response();
    for cookie in [sign_out_cookie(&state), super::signin::forget_cookie(&state)] {
        resp.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII"));
    }
    resp
}

/// Who did it, for the audit log: a person's name, `admin`, or the link's id.
fn actor(grant: &Grant) -> String {
    match grant {
        Grant::Admin => "admin".into(),
        Grant::User(v) => v.who.user.clone(),
        Grant::Session { id, .. } | Grant::Live { id, .. } => format!("link {id}"),
    }
}
