//! The WebSocket protocol of `WS /api/v1/stream`: JSON text messages from server to browser.
//! A new client first gets `hello`, then a `snapshot`; after that `records` batches and `map`
//! updates as traffic arrives, and `cluster` when what podtap could list changes. The browser
//! sends nothing the server depends on.

use serde::{Deserialize, Serialize};

use crate::{MissingKind, Record, ServiceMap};

/// One message from the server, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// Sent once on connect: who is talking, and what it is reading.
    Hello { version: String, source: String },
    /// The recent records (oldest first) and the map so far.
    Snapshot { records: Vec<Record>, map: ServiceMap },
    /// New records since the last batch, oldest first.
    Records { records: Vec<Record> },
    /// The whole map, re-sent when it changed.
    Map { map: ServiceMap },
    /// Where names come from and what could not be listed; sent after `hello` and whenever it
    /// changes.
    Cluster { source: String, ready: bool, missing: Vec<MissingKind> },
    /// This client fell behind and `skipped` records were not sent to it (the server never waits
    /// for a slow browser).
    Lagged { skipped: u64 },
}
