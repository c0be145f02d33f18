//! The records stage of the bus: what a replica merged, published per partition
//! (`podtap.records.P`), and read back by every replica into its own store, so each answers for
//! the whole cluster. A record's id is made from the bus's sequence number of its message and its
//! place in it: the same on every replica. A replica that resumes its partitions after a restart
//! suppresses the records it had published already (`Seen`, by `fingerprint`).

use std::hash::{Hash, Hasher};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use podtap_shared::Record;
use rustc_hash::{FxHashSet, FxHasher};

use super::{BusError, RECORDS};
use crate::ingest::wire;
use crate::publish::Hub;

/// Records in one message at most: ids are `sequence << 10 | place`, exact in JavaScript for
/// 2^43 messages.
pub const PER_MESSAGE: usize = 1000;
const PLACE_BITS: u32 = 10;

/// What makes a record the same record when a replica merges the same observations again: on
/// which connection and between which sockets, what was asked, with what bytes, how long it took.
/// Names are left out (they come from the cluster state, which a restarted replica may hold
/// differently), and so are the times: they are moved by each agent's clock offset as a replica
/// estimates it, which a restarted one does again from other samples.
pub fn fingerprint(r: &Record) -> u64 {
    let mut h = FxHasher::default();
    (r.conn, r.seq, r.observations, r.request_size, r.response_size, r.latency_us).hash(&mut h);
    (r.src.ip, r.src.port, r.dst.ip, r.dst.port).hash(&mut h);
    crate::correlate::merge::identity_of(&r.detail, r.request_size, r.response_size).hash(&mut h);
    h.finish()
}

/// How far two replicas' estimates of one agent's clock offset may differ (each takes the best of
/// the last bus stamps; they differ by the way to the bus, milliseconds): a record that left the
/// merge later than every one published before, by more than this, is new, though its
/// fingerprint is one of theirs (the same capture replayed again).
const OFFSET_PLAY_US: u64 = 1_000_000;

/// When a record left the merge, about: its end, or its start.
pub fn left_at(r: &Record) -> u64 {
    r.end_us.unwrap_or(r.ts).max(r.ts)
}

/// Records a replica had published before it stopped, which it must not publish again.
#[derive(Default)]
pub struct Seen {
    prints: FxHashSet<u64>,
    /// The latest `left_at` among them: past it (and the merge's settling), nothing is in it.
    until: u64,
}

impl Seen {
    pub fn add(&mut self, r: &Record) {
        self.prints.insert(fingerprint(r));
        self.until = self.until.max(left_at(r));
    }

    pub fn absorb(&mut self, other: Seen) {
        self.prints.extend(other.prints);
        self.until = self.until.max(other.until);
    }

    /// Whether `r` was published already: the same fingerprint, and not later than them all.
    pub fn had(&self, r: &Record) -> bool {
        !self.prints.is_empty()
            && left_at(r) <= self.until.saturating_add(OFFSET_PLAY_US)
            && self.prints.contains(&fingerprint(r))
    }

    pub fn until(&self) -> u64 {
        self.until
    }

    pub fn len(&self) -> usize {
        self.prints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prints.is_empty()
    }
}

/// The records of partition `partition` the bus stored since `since_us` (wall clock).
pub async fn published_since(
    js: &jetstream::Context,
    url: &str,
    partition: u32,
    since_us: u64,
) -> Result<Seen, BusError> {
    let refused = |detail: String| BusError::Refused { url: url.to_string(), what: "reading records".into(), detail };
    let stream = js.get_stream(RECORDS).await.map_err(|e| refused(e.to_string()))?;
    let start = time_at(since_us);
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: super::records_subject(partition),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartTime { start_time: start },
            ..Default::default()
        })
        .await
        .map_err(|e| refused(e.to_string()))?;
    let mut seen = Seen::default();
    let mut messages = consumer.messages().await.map_err(|e| refused(e.to_string()))?;
    loop {
        // The tail is read once it answers nothing new for a moment.
        let next = tokio::time::timeout(Duration::from_millis(500), messages.next()).await;
        let Ok(Some(Ok(m))) = next else { break };
        let pending = m.info().map(|i| i.pending).unwrap_or(0);
        if let Ok(records) = rmp_serde::from_slice::<Vec<Record>>(&m.payload) {
            for r in &records {
                seen.add(r);
            }
        }
        if pending == 0 {
            break;
        }
    }
    Ok(seen)
}

/// A wall-clock time in µs as the bus's time type.
pub fn time_at(us: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Reads every partition's records from `since_us` (wall clock) on into `hub`, for as long as
/// the hub runs; the bus's order within a partition is kept.
pub async fn into_hub(js: jetstream::Context, url: String, hub: Hub, since_us: u64) {
    loop {
        match read(&js, &url, &hub, since_us).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("records from the bus: {e}; reading again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn read(js: &jetstream::Context, url: &str, hub: &Hub, since_us: u64) -> Result<(), BusError> {
    let refused = |detail: String| BusError::Refused { url: url.to_string(), what: "reading records".into(), detail };
    let stream = js.get_stream(RECORDS).await.map_err(|e| refused(e.to_string()))?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: "podtap.records.*".into(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartTime { start_time: time_at(since_us) },
            ..Default::default()
        })
        .await
        .map_err(|e| refused(e.to_string()))?;
    let mut messages = consumer.messages().await.map_err(|e| refused(e.to_string()))?;
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| refused(e.to_string()))?;
        let Ok(info) = m.info() else { continue };
        let base = info.stream_sequence << PLACE_BITS;
        match rmp_serde::from_slice::<Vec<Record>>(&m.payload) {
            Ok(mut records) => {
                for (place, r) in records.iter_mut().enumerate() {
                    r.id = base | place as u64;
                }
                hub.publish_owned(records);
            }
            Err(e) => tracing::warn!("records message {} unreadable: {e}", info.stream_sequence),
        }
    }
    Ok(())
}

/// `records` as messages of at most `PER_MESSAGE`.
pub fn encode(records: &[Record]) -> Vec<Vec<u8>> {
    records.chunks(PER_MESSAGE).map(wire::encode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_from_its_message_as_it_was() {
        let mut r = Record::test();
        r.seq = Some(77);
        let back: Vec<Record> = rmp_serde::from_slice(&encode(std::slice::from_ref(&r))[0]).unwrap();
        assert_eq!(back, vec![r.clone()]);
        assert_eq!(fingerprint(&back[0]), fingerprint(&r));
        let mut seen = Seen::default();
        seen.add(&r);
        assert!(seen.had(&r));
        let mut other = r.clone();
        other.observations += 1;
        assert!(!seen.had(&other), "a lone observation is not the merged record");
        // Its clock offset estimated a little otherwise: the same record.
        let mut moved = r.clone();
        moved.ts += OFFSET_PLAY_US / 2;
        assert!(seen.had(&moved));
        // The same request again later (the capture replayed once more): a new record.
        let mut again = r.clone();
        again.ts = left_at(&r) + 10 * OFFSET_PLAY_US;
        again.end_us = Some(again.ts + 1000);
        assert!(!seen.had(&again), "a record later than all published before is new");
        assert_eq!(encode(&vec![r; PER_MESSAGE + 1]).len(), 2);
    }
}
