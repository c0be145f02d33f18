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

/// What a request may see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Access {
    /// `admin`, `session` or `live`.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionMeta>,
    /// A live link's filter, which every view is narrowed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// When the link expires (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Whether sessions and links can be made here (the admin only).
    #[serde(default)]
    pub can_share: bool,
    /// Origins allowed to embed podtap: the page talks `postMessage` with these only.
    #[serde(default)]
    pub embed_origins: Vec<String>,
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
}
