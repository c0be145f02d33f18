//! The agent ↔ hub protocol, one WebSocket (`/api/v1/ingest` on the hub's `--ingest` address)
//! of binary messages, each one MessagePack value (named fields: a newer side may add fields an
//! older one skips).
//!
//! 1. The agent sends `Hello` with its protocol version, node and instance (a new number each
//!    time it starts). A hub that speaks another version answers `Refused` with a sentence that
//!    says so, and closes; otherwise `Welcome` with the last batch it has from that instance.
//! 2. The agent sends its batches in order, from the one after that. Each batch has a sequence
//!    number; the hub `Ack`s a batch once everything in it has been merged into records, and
//!    skips one it already has. The agent keeps what is not acknowledged (up to `--buffer-mb`)
//!    and sends it again after a reconnect: nothing twice, nothing lost unless the buffer was
//!    full, and then counted.
//! 3. The hub `Ping`s every second; the agent answers `Pong` with its own clock, from which the
//!    hub estimates the agent's clock offset. The agent sends a `Report` (its counters) every
//!    second.
//! 4. For an export, the hub asks for `Packets` of some flows over some spans (in the agent's
//!    clock); the agent answers with what its packet ring still holds (`None`: it keeps none).

use serde::{Deserialize, Serialize};

use crate::dissect::Exchange;
use crate::engine::EngineStats;
use crate::packets::{Found, Wanted};

/// The version of this protocol. Bumped when an old peer could misread a new message.
/// 2: packets asked for and answered.
pub const PROTOCOL: u32 = 2;

/// The WebSocket path on the hub's ingest address.
pub const PATH: &str = "/api/v1/ingest";

/// Agent → hub.
#[derive(Debug, Serialize, Deserialize)]
pub enum AgentMessage {
    Hello(Hello),
    Batch(Batch),
    Report(Box<Report>),
    Pong {
        hub_us: u64,
        agent_us: u64,
    },
    /// The answer to `HubMessage::Packets`.
    Packets {
        request: u64,
        found: Option<Found>,
    },
}

/// Hub → agent.
#[derive(Debug, Serialize, Deserialize)]
pub enum HubMessage {
    /// The hub has every batch of this instance up to `have` (0: none).
    Welcome {
        protocol: u32,
        version: String,
        have: u64,
    },
    Refused {
        reason: String,
    },
    /// Every batch up to `seq` is merged: the agent may forget it.
    Ack {
        seq: u64,
    },
    Ping {
        hub_us: u64,
    },
    /// The retained packets of these flows, for an export.
    Packets {
        request: u64,
        wanted: Vec<Wanted>,
    },
}

/// Who is speaking.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// podtap's version (`CARGO_PKG_VERSION`).
    pub version: String,
    pub node: String,
    /// Different every time the agent starts: batch numbers and connection ids start over.
    pub instance: u64,
    /// Its timestamps are its wall clock (live capture, or a replay moved to now), not a
    /// capture's own time axis: the hub corrects them by the agent's clock offset.
    pub wall_clock: bool,
}

impl Hello {
    /// This agent process's: this protocol and version, a new instance number each run.
    pub fn of_this_run(node: &str, wall_clock: bool) -> Hello {
        Hello {
            protocol: PROTOCOL,
            version: env!("CARGO_PKG_VERSION").into(),
            node: node.to_string(),
            instance: crate::feed::replay::now_us() ^ (u64::from(std::process::id()) << 40),
            wall_clock,
        }
    }
}

/// What the agent's observer finished since the last batch.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Batch {
    /// 1, 2, 3, … per instance.
    pub seq: u64,
    /// The interface names (index = `Exchange::interface`), when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<Option<String>>>,
    pub items: Vec<Observed>,
    /// Responses and bytes that became no exchange, counted.
    pub notes: Notes,
    /// Capture time up to which this agent has seen everything.
    pub watermark_us: u64,
}

/// One exchange and the capture time at which it was finished.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Observed {
    pub at_us: u64,
    pub exchange: Exchange,
    /// Over the bus: another partition merges it; this one only learns names from it (a DNS
    /// answer, a TLS server name).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learn: bool,
    /// Over the bus: its place in the agent's batch, which its partitions' parts put back together.
    #[serde(default)]
    pub place: u32,
}

/// The dissectors' notes of what they could not use (`Dissected` other than exchanges).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notes {
    pub unmatched_responses: u64,
    pub one_way_responses: u64,
    pub resyncs: u64,
    pub not_this_protocol: u64,
}

/// The agent's counters, every second.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub agent_us: u64,
    pub buffered_batches: u64,
    pub buffered_bytes: u64,
    pub dropped_batches: u64,
    pub dropped_observations: u64,
    pub kernel_packets: u64,
    pub kernel_drops: u64,
    pub interfaces: Vec<String>,
    pub engine: EngineStats,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable message from the {peer}: {source}")]
pub struct DecodeError {
    peer: &'static str,
    source: rmp_serde::decode::Error,
}

/// One message as bytes (named fields).
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(msg).expect("protocol messages always encode")
}

pub fn decode_agent(bytes: &[u8]) -> Result<AgentMessage, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|source| DecodeError { peer: "agent", source })
}

pub fn decode_hub(bytes: &[u8]) -> Result<HubMessage, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|source| DecodeError { peer: "hub", source })
}

/// The sentence a hub refuses an agent of another protocol version with.
pub fn mismatch(agent: &Hello) -> String {
    let newer = if agent.protocol > PROTOCOL { "newer" } else { "older" };
    format!(
        "agent on {} speaks agent protocol {} (podtap {}), this hub speaks {} (podtap {}): the agent is {newer}; \
         run the same podtap version on the hub and the agents",
        agent.node,
        agent.protocol,
        agent.version,
        PROTOCOL,
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use podtap_shared::{Detail, HttpExchange};

    fn exchange() -> Exchange {
        let mut http =
            HttpExchange { method: "GET".into(), path: "/a".into(), status: Some(200), ..Default::default() };
        http.headers.insert("user-agent", "curl/8");
        Exchange {
            conn: 7,
            opened_us: None,
            interface: 1,
            points: 2,
            tunnel: None,
            proxied: Some(Box::new("10.0.0.9:4000".parse().unwrap())),
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "[fd00::2]:80".parse().unwrap(),
            ts_us: 1_700_000_000_000_000,
            response_ts_us: Some(1_700_000_000_000_900),
            end_us: None,
            request_size: 80,
            response_size: 120,
            seq: None,
            detail: Detail::Http(http),
        }
    }

    #[test]
    fn every_message_reads_back_as_it_was_written() {
        let batch = Batch {
            seq: 3,
            interfaces: Some(vec![Some("eth0".into()), None]),
            items: vec![Observed { at_us: 5, exchange: exchange(), learn: false, place: 0 }],
            notes: Notes { resyncs: 1, ..Notes::default() },
            watermark_us: 9,
        };
        let AgentMessage::Batch(back) = decode_agent(&encode(&AgentMessage::Batch(batch))).unwrap() else {
            panic!("a batch")
        };
        assert_eq!((back.seq, back.watermark_us, back.notes.resyncs), (3, 9, 1));
        assert_eq!(back.interfaces, Some(vec![Some("eth0".into()), None]));
        assert_eq!(back.items[0].exchange, exchange());
        let ack = decode_hub(&encode(&HubMessage::Ack { seq: 4 })).unwrap();
        assert!(matches!(ack, HubMessage::Ack { seq: 4 }));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff", b"\x81\xa5Hello\x01", &encode(&"Batch")] {
            assert!(decode_agent(bytes).is_err(), "{bytes:?}");
        }
        let e = decode_hub(b"\x93").unwrap_err().to_string();
        assert!(e.starts_with("unreadable message from the hub"), "{e}");
    }

    #[test]
    fn a_version_mismatch_says_which_side_is_newer() {
        let hello =
            |protocol| Hello { protocol, version: "9.0.0".into(), node: "n1".into(), instance: 1, wall_clock: true };
        assert!(mismatch(&hello(PROTOCOL + 1)).contains("the agent is newer"));
        assert!(mismatch(&hello(0)).contains("the agent is older"));
    }
}
