//! The WebSocket protocol of `WS /api/v1/stream`, version 2: JSON text messages both ways.
//!
//! ```text
//! server → hello {version, source, protocol: 2, clock}      on connect
//! server → cluster {source, ready, missing}                 on connect, and when it changes
//! server → snapshot {filter, records, map}                  on connect (empty filter), and after
//!                                                           every subscribe, for its filter
//! browser → subscribe {filter, service?, max_rate?}         first message; again to change it
//! server → records {records}                                matching records, in batches
//! server → mapDelta {nodes, edges}                          once a second: the edges that changed,
//!                                                           with their new totals (replace, not add)
//! server → balance {balance}                                once a second when it changed, for the
//!                                                           subscribed `service`
//! server → sampled {second, shown, matched}                 when more matched than `max_rate`
//! server → lagged {skipped}                                 records this browser was too slow for
//! server → error {message}                                  a subscribe the server could not take
//!                                                           (the previous subscription stays)
//! ```
//!
//! Nothing is dropped silently: a browser that cannot take every matching record gets a bounded
//! sample and a `sampled` notice for every second it was sampled; a browser that stops reading
//! loses records (counted, `lagged`), never slows capture or other browsers. A v1 client that never
//! subscribes gets every record, as before.

use serde::{Deserialize, Serialize};

use crate::{Balance, MapEdge, MapNode, MissingKind, Record, ServiceMap};

/// The protocol version `hello` announces.
pub const PROTOCOL: u32 = 2;

/// Records per second a subscriber is sent unless it asks for fewer.
pub const DEFAULT_MAX_RATE: u32 = 2_000;

/// Whose clock the record times follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// Live capture or a paced replay: times are now.
    #[default]
    Wall,
    /// A capture replayed on its own time axis: "now" is the newest record.
    Capture,
}

/// One message from the server, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// Sent once on connect: who is talking, and what it is reading.
    Hello {
        version: String,
        source: String,
        #[serde(default)]
        protocol: u32,
        #[serde(default)]
        clock: Clock,
    },
    /// The newest matching records (oldest first) and the map of the retained window for
    /// `filter`.
    Snapshot {
        records: Vec<Record>,
        map: ServiceMap,
        #[serde(default)]
        filter: String,
    },
    /// New matching records since the last batch, oldest first.
    Records { records: Vec<Record> },
    /// The whole map (protocol 1; protocol 2 sends `mapDelta`).
    Map { map: ServiceMap },
    /// Edges whose numbers changed, with their new totals, and nodes new to this browser.
    MapDelta { nodes: Vec<MapNode>, edges: Vec<MapEdge> },
    /// The subscribed Service's balance over the retained window.
    Balance { balance: Balance },
    /// In the second starting at `second` (µs), `matched` records matched but only `shown` were
    /// sent.
    Sampled { second: u64, shown: u64, matched: u64 },
    /// Where names come from and what could not be listed; sent after `hello` and whenever it
    /// changes.
    Cluster { source: String, ready: bool, missing: Vec<MissingKind> },
    /// `podtap hub`: every node's agent (connected, lag, clock offset, drops, outages); sent after
    /// `hello` and whenever it changes.
    Agents { agents: Vec<crate::AgentStatus> },
    /// This client fell behind and `skipped` records were not sent to it (the server never waits
    /// for a slow browser).
    Lagged { skipped: u64 },
    /// A subscribe that could not be taken (an invalid filter); the previous one stays.
    Error { message: String },
}

/// One message from the browser, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientMessage {
    /// What to send: records matching `filter`, at most `max_rate` a second; the balance of
    /// `service` (`ns/name`) when given.
    Subscribe {
        #[serde(default)]
        filter: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_rate: Option<u32>,
    },
}

impl ServerMessage {
    /// Reads one message from its JSON. A `records` batch (up to megabytes, many a second) is read
    /// straight into its field when the tag comes first, as podtap writes it; serde reads an
    /// internally tagged enum by buffering the whole message as a tree first, then reading that.
    /// (The browser reads a snapshot its own way: its map first, its records later.)
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct RecordsBody {
            records: Vec<Record>,
        }
        if text.starts_with(r#"{"type":"records","#) {
            let b: RecordsBody = serde_json::from_str(text)?;
            return Ok(Self::Records { records: b.records });
        }
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_read_of_record_batches_reads_what_serde_reads() {
        let mut map = ServiceMap::default();
        map.nodes.push(crate::MapNode {
            id: "pod:default/web-1".into(),
            kind: crate::EndpointKind::Pod,
            label: "web-1".into(),
            namespace: Some("default".into()),
            workload: None,
            node: None,
            locked: false,
        });
        let messages = [
            ServerMessage::Snapshot { records: vec![Record::test(), Record::test()], map, filter: "ns:default".into() },
            ServerMessage::Records { records: vec![Record::test()] },
            ServerMessage::Lagged { skipped: 3 },
        ];
        for m in messages {
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(ServerMessage::from_json(&text).unwrap(), m, "{text}");
            assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), m);
        }
        // A tag that is not first, or a broken body, still reads or fails as serde would.
        let later = r#"{"records":[],"type":"records"}"#;
        assert_eq!(ServerMessage::from_json(later).unwrap(), ServerMessage::Records { records: vec![] });
        assert!(ServerMessage::from_json(r#"{"type":"records","records":[{"id":"x"}]}"#).is_err());
        assert!(ServerMessage::from_json(r#"{"type":"snapshot","records":[]"#).is_err());
    }

    #[test]
    fn messages_are_tagged_by_type_in_camel_case() {
        let sub = ClientMessage::Subscribe { filter: "ns:shop".into(), service: None, max_rate: Some(50) };
        let json = serde_json::to_value(&sub).unwrap();
        assert_eq!((json["type"].as_str(), json["max_rate"].as_u64()), (Some("subscribe"), Some(50)));
        let back: ClientMessage = serde_json::from_str(r#"{"type":"subscribe"}"#).unwrap();
        assert_eq!(back, ClientMessage::Subscribe { filter: String::new(), service: None, max_rate: None });
        let delta = ServerMessage::MapDelta { nodes: vec![], edges: vec![] };
        assert_eq!(serde_json::to_value(&delta).unwrap()["type"], "mapDelta");
        // A protocol 1 hello still reads.
        let old: ServerMessage = serde_json::from_str(r#"{"type":"hello","version":"0.1","source":"demo"}"#).unwrap();
        assert!(matches!(old, ServerMessage::Hello { protocol: 0, clock: Clock::Wall, .. }));
    }
}
