//! Past one hub: agents and hub replicas over NATS JetStream (an existing partitioned log), in
//! place of the agent → hub WebSocket.
//!
//! - Agents (`send`) split each batch by the join key (`key`) over `partitions` subjects
//!   (`podtap.obs.P`) of the stream `PODTAP_OBS`, and forget a batch once the bus has stored
//!   every part of it.
//! - Hub replica `I` of `N` (`replica`) merges share `I`, the partitions `P` with `P % N == I`,
//!   through one durable consumer each, as one hub merges its agents (`slot`); it publishes the
//!   records to `PODTAP_RECORDS` (`podtap.records.P`), and only then acknowledges the
//!   observations. A share started again (its replica restarted, or a peer took it over:
//!   `lease`) is read again from a little before what was acknowledged, and what was published
//!   already is dropped: nothing on the bus is lost, nothing counted twice.
//! - Every replica reads every partition's records (`records`) into its own store, so any hub
//!   answers every API, the stream and the page for the whole cluster.
//!
//! - A pcapng export asks the agents for their packets over the bus (`packets`).
//! - Sign-ins, live links and saved sessions are kept on the bus (`kept`, `saved`), so every
//!   replica knows them alike.
//!
//! Messages are MessagePack, like the WebSocket's (`wire`).

pub mod kept;
pub mod key;
pub mod lease;
pub mod packets;
pub mod records;
pub mod replica;
pub mod saved;
pub mod send;
pub mod slot;

use std::time::Duration;

use async_nats::jetstream;
use serde::{Deserialize, Serialize};

use super::wire::{Batch, Hello, Report};

/// How the bus is reached and cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// `nats://HOST:PORT`.
    pub url: String,
    /// Partitions of the observations (agents and hubs must agree).
    pub partitions: u32,
    /// This hub is replica `.0` of `.1`.
    pub replica: (u32, u32),
    /// How long the bus keeps observations and records.
    pub retention: Duration,
    /// A replica takes over the share of a peer silent this long (`None`: never; the share waits
    /// for its replica).
    pub takeover: Option<Duration>,
}

/// The stream of agents' observations, one subject per partition.
pub const OBS: &str = "PODTAP_OBS";
/// The stream of merged records, one subject per partition.
pub const RECORDS: &str = "PODTAP_RECORDS";

pub fn obs_subject(partition: u32) -> String {
    format!("podtap.obs.{partition}")
}

/// Where an agent announces a new instance (the stream's sequence numbers its connections).
pub const HELLO_SUBJECT: &str = "podtap.obs.hello";

pub fn records_subject(partition: u32) -> String {
    format!("podtap.records.{partition}")
}

/// Agents' counters, every second (not kept: the next replaces it).
pub fn report_subject(node: &str) -> String {
    format!("podtap.report.{}", node.replace(['.', '*', '>', ' '], "_"))
}

/// One part of an agent's batch, as stored on the bus.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub hello: Hello,
    /// When the agent sent it (its clock, skew included): with the bus's own time of storing it,
    /// the agent's clock offset.
    pub sent_us: u64,
    pub batch: Batch,
}

/// An agent's counters on the bus.
#[derive(Debug, Serialize, Deserialize)]
pub struct Counters {
    pub hello: Hello,
    pub report: Report,
}

/// Why the bus could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The server did not answer or refused the connection.
    #[error("cannot reach the bus at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    /// JetStream refused to make or open a stream or consumer.
    #[error("the bus at {url} refused {what}: {detail}")]
    Refused { url: String, what: String, detail: String },
}

/// Connects with a name the server's monitoring shows.
pub async fn connect(url: &str, name: &str) -> Result<(async_nats::Client, jetstream::Context), BusError> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|source| BusError::Connect { url: url.to_string(), source })?;
    let js = jetstream::new(client.clone());
    Ok((client, js))
}

/// Opens the two streams, making those that are not there yet (whoever comes first).
pub async fn streams(js: &jetstream::Context, url: &str, retention: Duration) -> Result<(), BusError> {
    let make = |name: &str, subjects: &str| jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![subjects.to_string()],
        max_age: retention,
        storage: jetstream::stream::StorageType::File,
        // Within it the bus drops a part an agent sent again (its `Nats-Msg-Id`).
        duplicate_window: Duration::from_secs(120).min(retention),
        ..Default::default()
    };
    for config in [make(OBS, "podtap.obs.>"), make(RECORDS, "podtap.records.*")] {
        let what = format!("the stream {}", config.name);
        js.get_or_create_stream(config).await.map_err(|e| BusError::Refused {
            url: url.to_string(),
            what,
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// The key-value bucket `bucket` (one value per key), made if it is not there yet.
pub async fn key_value(js: &jetstream::Context, url: &str, bucket: &str) -> Result<jetstream::kv::Store, BusError> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        return Ok(kv);
    }
    let config = jetstream::kv::Config { bucket: bucket.into(), history: 1, ..Default::default() };
    js.create_key_value(config).await.map_err(|e| BusError::Refused {
        url: url.into(),
        what: format!("the key-value bucket {bucket}"),
        detail: e.to_string(),
    })
}

/// A JetStream message's stored time, µs since the epoch.
pub fn stored_us(info: &jetstream::message::Info<'_>) -> u64 {
    u64::try_from(info.published.unix_timestamp_nanos() / 1000).unwrap_or(0)
}
