//! How complete podtap's picture is, as the browser shows it: the Kubernetes kinds it could not
//! list (RBAC, an API group the server lacks) and what each costs the user.

use serde::{Deserialize, Serialize};

/// One kind podtap could not list everywhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingKind {
    /// The resource, as kubectl names it: `pods`, `jobs`, `endpointslices`, …
    pub kind: String,
    /// Why, in a few words: "forbidden (403)", "not served by this API server (404)", "listed
    /// only in namespaces default, shop", or the error the server gave.
    pub reason: String,
    /// What the user loses, in one sentence.
    pub effect: String,
}

/// One node's agent as the hub sees it (`podtap hub`, `/healthz` `agents`): a node whose agent is
/// missing or behind is shown, not silently left out of the counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub node: String,
    /// The agent's podtap version.
    pub version: String,
    /// Connected now.
    pub connected: bool,
    /// Why the hub turned it away (a protocol it does not speak), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// When it connected, or when it went away (µs since the epoch).
    pub since_us: u64,
    /// When the hub last heard from it.
    pub last_seen_us: u64,
    /// How far behind the hub's clock its capture is (its newest capture time, corrected for
    /// its clock offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<f64>,
    /// Its clock minus the hub's, estimated from round trips (NTP's way: the sample with the
    /// shortest round trip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// Observations received (exchanges, before merging).
    pub observations: u64,
    /// Batches it holds that the hub has not acknowledged.
    pub buffered_batches: u64,
    pub buffered_bytes: u64,
    /// What it had to throw away while the hub was unreachable (its buffer was full).
    pub dropped_batches: u64,
    pub dropped_observations: u64,
    /// Packets its kernel rings took, and dropped (ring full).
    pub kernel_packets: u64,
    pub kernel_drops: u64,
    /// Holes in TCP streams its capture never saw.
    pub reassembly_gaps: u64,
    /// The interfaces it captures on now.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// How often it has connected; more than once means it restarted or lost the hub.
    pub sessions: u64,
    /// Times it was away (the newest few), when traffic on its node was not seen.
    #[serde(default)]
    pub outages: Vec<Outage>,
}

/// A time an agent was not connected: what its node carried then was not seen (beyond what the
/// agent buffered and sent later).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub from_us: u64,
    /// `None`: still away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_us: Option<u64>,
}

/// A hub replica's view of the bus (`podtap hub --bus`, `/healthz` `bus`): which replica it is,
/// and for every partition whether some replica merges it. A partition nobody merges (its
/// replica is away) is shown, with what waits on it: its records are late, not lost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BusStatus {
    /// This hub is replica `replica` of `replicas`.
    pub replica: u32,
    pub replicas: u32,
    pub partitions: Vec<BusPartition>,
    /// How long the bus has not answered this hub, seconds (none while it does): nothing is
    /// merged or read into this hub's store meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_s: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BusPartition {
    pub partition: u32,
    /// The replica that owns it (`partition % replicas`).
    pub replica: u32,
    /// Observations on the bus not yet read by its replica.
    pub waiting: u64,
    /// How long nothing of it has been read while observations wait (a replica away), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_s: Option<f64>,
    /// The replica merging it now, by its lease on the bus: another than `replica` while that
    /// one is away and a peer took its share over; none while nobody does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_by: Option<u32>,
}
