//! Sharing's wire types: a saved session's description, a signed link as podtap hands it out,
//! what a request may see (`GET /api/v1/access`), and what a pcapng export would hold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Clock;

/// What the session list shows, and what the page restores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub created_us: u64,
    /// The window, `from ≤ ts < to`, µs since the epoch.
    pub from: u64,
    pub to: u64,
    /// The filter the records were chosen by (the session holds nothing else).
    pub filter: String,
    /// The page's view when it was saved: its URL parameters (selection, Service, toggles…).
    #[serde(default)]
    pub view: BTreeMap<String, String>,
    pub records: u64,
    pub requests: u64,
    /// Packets kept with the session, and whether some of its connections' packets had aged out
    /// (or were never retained) when it was saved.
    #[serde(default)]
    pub packets: u64,
    #[serde(default)]
    pub packets_aged_out: bool,
    pub source: String,
    pub clock: Clock,
    /// Stored size of the payload.
    #[serde(default)]
    pub bytes: u64,
    /// Who saved it (a signed-in person; none for the admin token): people see their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What its creator saw, in words (`every namespace`, `namespaces team-a, team-b`): the
    /// session holds the records as they saw them, never more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_as: Option<String>,
}

/// A link as podtap signs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLink {
    pub id: String,
    /// The path of the link, under podtap's base path: `/s/{id}?exp=…&sig=…`.
    pub url: String,
    /// Unix seconds.
    pub expires: u64,
}

/// Who a request is and what they see (`GET /api/v1/whoami`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The person's name; none for the admin token and for links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How they proved it: `token`, `proxy`, `jwt`, `oidc`, `link`, or `none` (podtap on
    /// loopback with no token: everyone is the admin).
    pub source: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The namespaces whose traffic they see; none means every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Whether they also see traffic with no namespace on either side.
    #[serde(default)]
    pub unnamespaced: bool,
    /// Whether they manage everything (sessions, links, sign-ins of all).
    #[serde(default)]
    pub admin: bool,
    /// Why, one sentence per grant (the scopes file, an RBAC binding, an admin group).
    #[serde(default)]
    pub why: Vec<String>,
    /// When the sign-in ends (Unix seconds), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// What a request may see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Access {
    /// `admin`, `user`, `session` or `live`.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionMeta>,
    /// A live link's filter, which every view is narrowed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// When the link expires (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Whether sessions and links can be made here (the admin and signed-in people).
    #[serde(default)]
    pub can_share: bool,
    /// Origins allowed to embed podtap: the page talks `postMessage` with these only.
    #[serde(default)]
    pub embed_origins: Vec<String>,
    /// Who is looking (the page's header: name, scope, sign-out).
    #[serde(default)]
    pub whoami: WhoAmI,
}

/// What a pcapng export of a window would hold (`GET …/packets`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketsInfo {
    /// Whether this source keeps packets at all.
    pub retained: bool,
    pub frames: u64,
    /// Connections of the selection.
    pub connections: u64,
    /// Whether some of their packets aged out before they could be exported.
    pub aged_out: bool,
    /// Connections whose packets are withheld: one side is outside the viewer's namespaces.
    #[serde(default)]
    pub withheld: u64,
}
