//! What a request was granted and what a grant may read. A request is the admin (no token and no
//! identity source configured, the token as a bearer, or the signed cookie the token was exchanged
//! for), a person signed in through an identity source (`User`: what they see was decided by
//! `decide`), or the holder of a signed link: to one saved session (its data, read-only) or to
//! the live view under a filter (narrowed, never widened) and its creator's sight. `Gate::grant` decides the grant; `reads` decides, for a
//! route of the API, which data it reads under that grant; a page is decided by asking `reads`
//! for the route the page will read (`page_route`), so a page and its data never disagree.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, header};

use super::decide::Viewer;
use super::link::{LinkError, LinkKeys, Scope, same_secret};
use super::rule::Sight;

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
    /// A live link under `filter`, seeing what its creator saw when they made it.
    Live {
        id: String,
        filter: String,
        expires_s: u64,
        sight: Sight,
    },
    /// A signed-in person.
    User(Arc<Viewer>),
}

impl Grant {
    /// The namespaces this grant sees records of.
    pub fn sight(&self) -> Sight {
        match self {
            // A saved session holds what its creator saw, already through their sight.
            Grant::Admin | Grant::Session { .. } => Sight::All,
            Grant::Live { sight, .. } => sight.clone(),
            Grant::User(v) => v.sight.clone(),
        }
    }

    /// Whether this grant may do everything: see all, manage every session, link and sign-in.
    pub fn is_admin(&self) -> bool {
        match self {
            Grant::Admin => true,
            Grant::User(v) => v.admin,
            _ => false,
        }
    }

    /// Whether this grant manages (sees, links, deletes) what `owner` made: an admin everything,
    /// a person their own, a link nothing. (A link to a saved session reads that session: `reads`.)
    pub fn manages(&self, owner: Option<&str>) -> bool {
        match self {
            Grant::Admin => true,
            Grant::User(v) => v.admin || owner == Some(v.who.user.as_str()),
            Grant::Session { .. } | Grant::Live { .. } => false,
        }
    }

    /// The signed-in person's name (`None` for the admin token and links).
    pub fn user(&self) -> Option<&str> {
        match self {
            Grant::User(v) => Some(&v.who.user),
            _ => None,
        }
    }
}

/// Why a request gets nothing, in one sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Neither the admin nor a link.
    #[error(
        "a valid token is required: sign in (open podtap with the token, or POST it to /api/v1/login), or send Authorization: Bearer TOKEN"
    )]
    Unauthorized,
    /// A link that grants nothing here (tampered, revoked, another scope).
    #[error("{0}")]
    Forbidden(String),
    /// A link past its expiry.
    #[error("{0}")]
    Expired(String),
    /// The links could not be looked up.
    #[error("{0}")]
    Storage(String),
    /// Credentials that do not hold: a token not valid (signature, audience, expiry), a sign-in
    /// that ended.
    #[error("{0}")]
    Invalid(String),
    /// What decides could not be asked (the identity provider's keys).
    #[error("{0}")]
    Unavailable(String),
}

impl From<LinkError> for Refusal {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Tampered => Refusal::Forbidden(e.to_string()),
            LinkError::Expired(_) => Refusal::Expired(e.to_string()),
        }
    }
}

/// What the link store holds under an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEntry {
    /// A saved session.
    Session,
    /// A live link and its creator's sight; a revoked one is kept so its holder is told so.
    Live { filter: String, revoked: bool, sight: Sight },
}

/// Where links are kept (the share's database): asked, never written, by the gate.
pub trait Links {
    fn entry(&self, id: &str) -> Result<Option<LinkEntry>, String>;
}

/// What a request presents: a bearer, the sign-in cookie, a link (`id`, `exp`, `sig`).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub bearer: Option<String>,
    pub cookie: Option<String>,
    pub link: Option<(String, String, String)>,
}

impl Credentials {
    /// From a request's headers and query (`link`/`session`, `exp`, `sig`); `path_id` is the id
    /// the path names when the query does not (`/sessions/{id}`, `/s/{id}`, `/l/{id}`).
    pub fn of(headers: &HeaderMap, params: &HashMap<String, String>, path_id: Option<&str>) -> Self {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let cookie = cookie(headers, AUTH_COOKIE).map(str::to_string);
        let link = params.get("sig").map(|sig| {
            let id = params.get("link").or_else(|| params.get("session")).map(String::as_str).or(path_id);
            let exp = params.get("exp").map_or("", String::as_str);
            (id.unwrap_or("").to_string(), exp.to_string(), sig.clone())
        });
        Credentials { bearer, cookie, link }
    }
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

/// What decides grants: the admin token, the link keys and where links are kept, at a time.
/// `open`: no token and no identity source is configured, so every request is the admin's
/// (podtap on loopback, for one person).
pub struct Gate<'a> {
    pub token: Option<&'a str>,
    pub open: bool,
    pub keys: &'a LinkKeys,
    pub links: &'a dyn Links,
    pub now_s: u64,
}

impl Gate<'_> {
    /// The admin: no token configured, the token as a bearer, or a valid sign-in cookie.
    pub fn is_admin(&self, c: &Credentials) -> bool {
        let Some(token) = self.token else { return self.open };
        if c.bearer.as_deref().is_some_and(|b| same_secret(b, token)) {
            return true;
        }
        c.cookie.as_deref().and_then(|c| c.split_once('.')).is_some_and(|(exp, sig)| {
            exp.parse().is_ok_and(|exp| self.keys.verify(ADMIN_ID, exp, &Scope::Admin, sig, self.now_s).is_ok())
        })
    }

    /// The value of the sign-in cookie, good for `SIGN_IN_S`.
    pub fn admin_cookie(&self) -> String {
        let exp = self.now_s + SIGN_IN_S;
        format!("{exp}.{}", self.keys.sign(ADMIN_ID, exp, &Scope::Admin))
    }

    /// What the link `id` with `exp` and `sig` grants, checked against its signature, its expiry
    /// and whether it still exists (deleting a session or revoking a link revokes every URL of it).
    pub fn check_link(&self, id: &str, exp: &str, sig: &str) -> Result<Grant, Refusal> {
        let tampered = || Refusal::Forbidden(LinkError::Tampered.to_string());
        let exp: u64 = exp.parse().map_err(|_| tampered())?;
        match self.links.entry(id).map_err(Refusal::Storage)? {
            Some(LinkEntry::Session) => {
                self.keys.verify(id, exp, &Scope::Session, sig, self.now_s)?;
                Ok(Grant::Session { id: id.to_string(), expires_s: exp })
            }
            Some(LinkEntry::Live { filter, revoked, sight }) => {
                self.keys.verify(id, exp, &Scope::Live(filter.clone()), sig, self.now_s)?;
                if revoked {
                    return Err(Refusal::Forbidden("this link was revoked".into()));
                }
                Ok(Grant::Live { id: id.to_string(), filter, expires_s: exp, sight })
            }
            // Gone: say "revoked" only to a holder of a genuine link.
            None => match self.keys.verify(id, exp, &Scope::Session, sig, u64::MIN) {
                Ok(()) => Err(Refusal::Forbidden("this link was revoked: its session was deleted".into())),
                Err(_) => Err(tampered()),
            },
        }
    }

    /// The grant of a request: a link when it presents one (a bad link is refused even where the
    /// request would be allowed without it), else the admin, else nothing (a person's identity is
    /// asked of `People` after this).
    pub fn grant(&self, c: &Credentials) -> Result<Grant, Refusal> {
        if let Some((id, exp, sig)) = &c.link {
            return self.check_link(id, exp, sig);
        }
        if self.is_admin(c) { Ok(Grant::Admin) } else { Err(Refusal::Unauthorized) }
    }
}

/// A request to the API, as access sees it: its path under `/api/v1`, the saved session it is
/// under (`/sessions/{id}[/…]`, and whether the rest reads that session's data) and whether it
/// only reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub session: Option<(String, bool)>,
    pub read: bool,
}

impl Route {
    /// `path` relative to `/api/v1`.
    pub fn new(path: &str, read: bool) -> Self {
        let session = path.strip_prefix("/sessions/").map(|rest| {
            let mut parts = rest.splitn(2, '/');
            let id = parts.next().unwrap_or("").to_string();
            (id, parts.next().is_some_and(|sub| !sub.is_empty() && sub != "links"))
        });
        Route { path: path.to_string(), session, read }
    }
}

/// The data a route reads under a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reads {
    /// The live store, narrowed by this filter when a link says so.
    Live { restrict: Option<String> },
    /// This saved session's data.
    Session(String),
    /// No data (the grant itself, the list of sessions, a link's creation…).
    Nothing,
}

/// API routes a live link may read.
fn live_readable(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(
        first,
        "records"
            | "connections"
            | "map"
            | "edge"
            | "timeline"
            | "services"
            | "stream"
            | "export"
            | "packets"
            | "access"
            | "whoami"
    )
}

/// API routes a signed-in person may use besides the live data: their own sessions and links
/// (the handlers keep them to their own), and who they are.
fn person_route(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(first, "sessions" | "links" | "signins" | "whoami" | "access" | "logout")
}

/// What `route` reads under `grant`, or why it may not.
pub fn reads(grant: &Grant, route: &Route) -> Result<Reads, Refusal> {
    let session_data = route.session.as_ref().filter(|(_, data)| *data).map(|(sid, _)| sid.clone());
    match grant {
        Grant::Session { id, .. } => match &route.session {
            Some((sid, _)) if sid == id && route.read => Ok(session_data.map_or(Reads::Nothing, Reads::Session)),
            _ if route.path == "/access" || route.path == "/whoami" => Ok(Reads::Nothing),
            _ => Err(Refusal::Forbidden("this link opens one saved session, read-only, and nothing else".into())),
        },
        Grant::Live { filter, .. } => match &route.session {
            None if route.read && live_readable(&route.path) => Ok(Reads::Live { restrict: Some(filter.clone()) }),
            _ => Err(Refusal::Forbidden(format!(
                "this link opens the live view under `{filter}`, read-only, and nothing else"
            ))),
        },
        Grant::Admin => Ok(match (&route.session, session_data) {
            (None, _) => Reads::Live { restrict: None },
            (Some(_), Some(sid)) => Reads::Session(sid),
            (Some(_), None) => Reads::Nothing,
        }),
        Grant::User(v) => match (&route.session, session_data) {
            // The live data through their sight (saving a session reads it too).
            (None, _) if v.admin || live_readable(&route.path) || person_route(&route.path) => {
                Ok(Reads::Live { restrict: None })
            }
            (None, _) => Err(Refusal::Forbidden(format!("{} may not use {}", v.who.user, route.path))),
            (Some(_), Some(sid)) => Ok(Reads::Session(sid)),
            (Some(_), None) => Ok(Reads::Nothing),
        },
    }
}

/// The link id a page's path names: `/s/{id}` (a saved session's page) or `/l/{id}` (a live
/// link's), with whether it is a session's.
pub fn page_path_id(path: &str) -> Option<(&str, bool)> {
    let (rest, session) = match path.strip_prefix("/s/") {
        Some(rest) => (rest, true),
        None => (path.strip_prefix("/l/")?, false),
    };
    Some((rest.split('/').next().unwrap_or(""), session))
}

/// The API route a page reads first: a saved session's map (`?session=ID`, `/s/{id}`) or the live
/// map (`?link=ID`, `/l/{id}`, any other page).
pub fn page_route(path: &str, params: &HashMap<String, String>) -> Route {
    let in_path = page_path_id(path).filter(|(_, session)| *session).map(|(id, _)| id);
    match params.get("session").map(String::as_str).or(in_path) {
        Some(id) => Route::new(&format!("/sessions/{id}/map"), true),
        None => Route::new("/map", true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Store(Vec<(&'static str, LinkEntry)>);

    impl Links for Store {
        fn entry(&self, id: &str) -> Result<Option<LinkEntry>, String> {
            Ok(self.0.iter().find(|(i, _)| *i == id).map(|(_, e)| e.clone()))
        }
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// A page decides as its data does: a saved session's link opened as an embed of the live
    /// view (`?link=` where the contract wants `?session=`) is refused, not served to retry forever.
    #[test]
    fn a_page_is_granted_exactly_what_its_data_route_is() {
        let keys = LinkKeys::random();
        let store = Store(vec![
            ("s1", LinkEntry::Session),
            ("l1", LinkEntry::Live { filter: "ns:shop".into(), revoked: false, sight: Sight::All }),
        ]);
        let gate = Gate { token: Some("t"), open: false, keys: &keys, links: &store, now_s: 1_000 };
        let session = gate.check_link("s1", "2000", &keys.sign("s1", 2_000, &Scope::Session)).unwrap();
        let live = gate.check_link("l1", "2000", &keys.sign("l1", 2_000, &Scope::Live("ns:shop".into()))).unwrap();
        let page = |path: &str, q: &[(&str, &str)], g: &Grant| reads(g, &page_route(path, &params(q)));
        assert_eq!(page("/embed/map", &[("session", "s1")], &session), Ok(Reads::Session("s1".into())));
        assert_eq!(page("/s/s1", &[], &session), Ok(Reads::Session("s1".into())));
        assert!(matches!(page("/embed/map", &[("link", "s1")], &session), Err(Refusal::Forbidden(_))));
        assert_eq!(page("/embed/map", &[("link", "l1")], &live), Ok(Reads::Live { restrict: Some("ns:shop".into()) }));
        assert!(matches!(page("/embed/map", &[("session", "l1")], &live), Err(Refusal::Forbidden(_))));
        assert_eq!(page("/", &[], &Grant::Admin), Ok(Reads::Live { restrict: None }));
    }

    #[test]
    fn links_are_checked_against_signature_expiry_scope_and_revocation() {
        let keys = LinkKeys::random();
        let store = Store(vec![("l1", LinkEntry::Live { filter: "ns:a".into(), revoked: true, sight: Sight::All })]);
        let gate = Gate { token: Some("t"), open: false, keys: &keys, links: &store, now_s: 1_000 };
        let sig = keys.sign("l1", 2_000, &Scope::Live("ns:a".into()));
        assert_eq!(gate.check_link("l1", "2000", &sig), Err(Refusal::Forbidden("this link was revoked".into())));
        // Signed for a wider filter than the store holds: tampered.
        let wider = keys.sign("l1", 2_000, &Scope::Live(String::new()));
        assert_eq!(gate.check_link("l1", "2000", &wider), Err(Refusal::Forbidden(LinkError::Tampered.to_string())));
        let gone = keys.sign("s9", 2_000, &Scope::Session);
        assert_eq!(
            gate.check_link("s9", "2000", &gone),
            Err(Refusal::Forbidden("this link was revoked: its session was deleted".into()))
        );
        let store2 = Store(vec![("s1", LinkEntry::Session)]);
        let late = Gate { now_s: 3_000, links: &store2, ..gate };
        assert!(matches!(
            late.check_link("s1", "2000", &keys.sign("s1", 2_000, &Scope::Session)),
            Err(Refusal::Expired(_))
        ));
    }

    #[test]
    fn the_admin_is_the_token_or_its_cookie_and_a_link_never_widens() {
        let keys = LinkKeys::random();
        let store = Store(vec![]);
        let gate = Gate { token: Some("secret"), open: false, keys: &keys, links: &store, now_s: 1_000 };
        let with = |bearer: Option<&str>, cookie: Option<String>| Credentials {
            bearer: bearer.map(str::to_string),
            cookie,
            link: None,
        };
        assert_eq!(gate.grant(&with(Some("secret"), None)), Ok(Grant::Admin));
        assert_eq!(gate.grant(&with(Some("guess"), None)), Err(Refusal::Unauthorized));
        assert_eq!(gate.grant(&with(None, Some(gate.admin_cookie()))), Ok(Grant::Admin));
        assert_eq!(gate.grant(&with(None, Some("99999999999.forged".into()))), Err(Refusal::Unauthorized));
        // The token with a bad link: the link decides, and is refused.
        let c = Credentials { link: Some(("x".into(), "2000".into(), "bad".into())), ..with(Some("secret"), None) };
        assert!(gate.grant(&c).is_err());
        let live = Grant::Live { id: "l".into(), filter: "ns:a".into(), expires_s: 2_000, sight: Sight::All };
        assert!(reads(&live, &Route::new("/sessions", false)).is_err());
        assert!(reads(&live, &Route::new("/links", true)).is_err());
        assert!(reads(&live, &Route::new("/sessions/s1/map", true)).is_err());
    }
}
