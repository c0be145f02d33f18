//! One share of the partitions (`P % N == I`, "share I"), merged: each partition read through
//! one durable consumer into a join thread of its own (each agent instance's part of a partition
//! is one of the join's parts); what the join merged is published, and only then are the
//! observations acknowledged. A replica runs its own share, and a dead peer's too when it takes
//! it over (`lease`).
//!
//! Starting a share resumes it: a partition's consumer is made again to start a little before the
//! first observation not acknowledged (`REPLAY_US`), so that every partner of the observations
//! not acknowledged is read again and the same records come out; what ended before what had been
//! acknowledged, and every record the bus already holds (by fingerprint), is dropped. So a share
//! stopped anywhere (a replica killed, a share handed over) and started anywhere loses nothing on
//! the bus and publishes nothing twice.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use podtap_shared::Record;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::records::{self, Seen};
use super::{BusConfig, BusError, Counters, Envelope, OBS};
use crate::correlate::merge::{RETRANSMIT_US, WINDOW_US};
use crate::feed::ClusterFeed;
use crate::ingest::join::{self, BusOut, Event, Outlet, Reply};
use crate::ingest::wire::{self, PROTOCOL};
use crate::publish::Hub;

/// How far before the first observation not acknowledged a resumed partition is read again (bus
/// time): longer than a request waits in the merge for its partner.
const REPLAY_US: u64 = 2 * (RETRANSMIT_US + WINDOW_US) + 3_000_000;
/// Acknowledgement is expected within this (the merge settles a batch in seconds; a hub that
/// still holds everything for the cluster's first lists waits up to `--api-wait`).
const ACK_WAIT: Duration = Duration::from_secs(120);

/// Observations delivered and not yet acknowledged, by part (`slot`): (batch, message).
type Pending = Arc<Mutex<HashMap<u64, VecDeque<(u64, jetstream::Message)>>>>;

/// What every share of one replica uses.
pub struct Shared {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub hub: Hub,
    pub cluster: ClusterFeed,
    pub bus: BusConfig,
}

/// A share being merged.
pub struct Running {
    events: mpsc::Sender<Event>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops at once, as a kill would (nothing more read, published or acknowledged): whoever
    /// starts the share next resumes it.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = self.events.send(Event::Stop).await;
    }
}

/// Starts merging share `index`, resumed from what the bus holds of it; returns once its
/// consumers are made and its resume point known.
pub async fn start(shared: &Shared, index: u32) -> Result<Running, BusError> {
    let bus = &shared.bus;
    let count = bus.replica.1;
    let js = &shared.js;
    let owned: Vec<u32> = (0..bus.partitions).filter(|p| p % count == index).collect();
    let refused = |what: String, e: &dyn std::fmt::Display| BusError::Refused {
        url: bus.url.clone(),
        what,
        detail: e.to_string(),
    };
    let stream = js.get_stream(OBS).await.map_err(|e| refused(format!("the stream {OBS}"), &e))?;
    let mut consumers = Vec::new();
    // Resuming: the capture time every part had been acknowledged to, and what was published.
    let mut resume: Option<u64> = None;
    let mut seen = Seen::default();
    for &p in &owned {
        let name = format!("podtap-obs-{p}");
        let floor = match stream.consumer_info(&name).await {
            Ok(info) => Some(info.ack_floor.stream_sequence),
            Err(_) => None,
        };
        let mut deliver = jetstream::consumer::DeliverPolicy::All;
        if let Some(floor) = floor {
            let _ = stream.delete_consumer(&name).await;
            // The last observation acknowledged; none (a replica stopped before its first
            // acknowledgement), or gone with the retention: read what the bus still holds.
            let acknowledged = if floor > 0 { stream.get_raw_message(floor).await.ok() } else { None };
            let mut from = 0;
            if let Some(m) = acknowledged {
                let stored = u64::try_from(m.time.unix_timestamp_nanos() / 1000).unwrap_or(0);
                from = stored.saturating_sub(REPLAY_US);
                deliver = jetstream::consumer::DeliverPolicy::ByStartTime { start_time: records::time_at(from) };
                if let Some(w) = rmp_serde::from_slice::<Envelope>(&m.payload).ok().as_ref().and_then(seen_to) {
                    resume = Some(resume.map_or(w, |r: u64| r.min(w)));
                }
            }
            let tail = records::published_since(js, &bus.url, p, from.saturating_sub(REPLAY_US)).await?;
            tracing::info!(
                "partition {p}: resuming from {} s before the last acknowledged observation; {} records it had \
                 published are not published again",
                REPLAY_US / 1_000_000,
                tail.len()
            );
            seen.absorb(tail);
        }
        let config = jetstream::consumer::pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: super::obs_subject(p),
            deliver_policy: deliver,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: 100_000,
            max_deliver: -1,
            ..Default::default()
        };
        let consumer: jetstream::consumer::PullConsumer =
            stream.create_consumer(config).await.map_err(|e| refused(format!("the consumer {name}"), &e))?;
        consumers.push((p, consumer));
    }
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let outlet = Outlet::Bus { tx: out_tx, parts: owned.len(), agents: index == bus.replica.0 };
    let (events, _merged) = join::start(shared.hub.clone(), outlet, shared.cluster.clone())
        .map_err(|e| refused("the join thread".into(), &e))?;
    let pending: Pending = Arc::default();
    let slots = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for (p, consumer) in consumers {
        tasks.push(tokio::spawn(partition(p, consumer, events.clone(), pending.clone(), slots.clone())));
    }
    tasks.push(tokio::spawn(reports(shared.client.clone(), events.clone())));
    let publisher = Publisher {
        js: js.clone(),
        url: bus.url.clone(),
        pending,
        partitions: bus.partitions,
        resume,
        seen,
        dropped: 0,
    };
    tasks.push(tokio::spawn(publisher.run(out_rx)));
    Ok(Running { events, tasks })
}

/// The capture time up to which the agent that sent `envelope` had seen everything. Its last
/// batch says "everything" (`u64::MAX`: it stopped): then the time it stopped, which a new
/// agent's records (the same capture replayed again, say) come after — the time it sent it for a
/// live agent, its last exchange's for a file read at capture time (none: no bound).
fn seen_to(envelope: &Envelope) -> Option<u64> {
    let batch = &envelope.batch;
    if batch.watermark_us != u64::MAX {
        return Some(batch.watermark_us);
    }
    if envelope.hello.wall_clock {
        return Some(envelope.sent_us);
    }
    batch.items.iter().map(|o| o.at_us).max()
}

/// Reads one partition into the join thread.
async fn partition(
    p: u32,
    consumer: jetstream::consumer::PullConsumer,
    events: mpsc::Sender<Event>,
    pending: Pending,
    slots: Arc<AtomicU64>,
) {
    // (agent instance) → its part's slot.
    let mut parts: HashMap<u64, u64> = HashMap::new();
    loop {
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("partition {p}: {e}; again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(m) = messages.next().await {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("partition {p}: {e}");
                    continue;
                }
            };
            let Ok(bus_us) = m.info().map(|i| super::stored_us(&i)) else { continue };
            let envelope = match rmp_serde::from_slice::<Envelope>(&m.payload) {
                Ok(e) => e,
                Err(e) => {
                    // Nothing else will read it either: it is dropped, once, with a sentence.
                    tracing::warn!("partition {p}: an unreadable message, dropped: {e}");
                    let _ = m.ack_with(jetstream::AckKind::Term).await;
                    continue;
                }
            };
            let hello = envelope.hello;
            if hello.protocol != PROTOCOL {
                let reason = wire::mismatch(&hello);
                let _ = events
                    .send(Event::Refused { node: hello.node.clone(), version: hello.version.clone(), reason })
                    .await;
                let _ = m.ack_with(jetstream::AckKind::Term).await;
                continue;
            }
            let slot = match parts.get(&hello.instance) {
                Some(s) => *s,
                None => {
                    let slot = slots.fetch_add(1, Ordering::Relaxed);
                    parts.insert(hello.instance, slot);
                    let (have, _) = oneshot::channel();
                    let connected =
                        Event::Connected { slot, hello: hello.clone(), reply: Reply::Bus, have, partition: p };
                    if events.send(connected).await.is_err() {
                        return;
                    }
                    slot
                }
            };
            let seq = envelope.batch.seq;
            pending.lock().unwrap_or_else(|e| e.into_inner()).entry(slot).or_default().push_back((seq, m));
            let stamp = Event::Stamp { slot, agent_us: envelope.sent_us, bus_us };
            if events.send(stamp).await.is_err()
                || events.send(Event::Batch { slot, batch: envelope.batch }).await.is_err()
            {
                return;
            }
        }
    }
}

/// Agents' counters into the join thread.
async fn reports(client: async_nats::Client, events: mpsc::Sender<Event>) {
    let Ok(mut sub) = client.subscribe("podtap.report.*").await else {
        tracing::warn!("cannot hear agents' counters on the bus");
        return;
    };
    while let Some(m) = sub.next().await {
        if let Ok(c) = rmp_serde::from_slice::<Counters>(&m.payload)
            && events.send(Event::BusReport { hello: c.hello, report: Box::new(c.report) }).await.is_err()
        {
            return;
        }
    }
}

/// Publishes the join's records per partition, then acknowledges what they were made of.
struct Publisher {
    js: jetstream::Context,
    url: String,
    pending: Pending,
    partitions: u32,
    /// Resuming: records that ended before this capture time were published before.
    resume: Option<u64>,
    seen: Seen,
    dropped: u64,
}

impl Publisher {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<BusOut>) {
        while let Some(out) = rx.recv().await {
            match out {
                BusOut::Records { records, watermark } => self.records(records, watermark).await,
                BusOut::Ack { slot, seq } => self.ack(slot, seq).await,
            }
        }
    }

    async fn records(&mut self, mut records: Vec<Record>, watermark: u64) {
        if let Some(until) = self.resume {
            // What ended before the first observation not acknowledged was published before the
            // stop (its whole group had left the merge), or is half of a request whose other
            // half came before the part read again: neither is published (now).
            let before = records.len();
            records.retain(|r| records::left_at(r) > until);
            self.dropped += (before - records.len()) as u64;
            if watermark == u64::MAX || watermark > until.saturating_add(2 * RETRANSMIT_US) {
                self.resume = None;
            }
        }
        if !self.seen.is_empty() {
            let before = records.len();
            records.retain(|r| !self.seen.had(r));
            self.dropped += (before - records.len()) as u64;
            if watermark != u64::MAX && watermark > self.seen.until().saturating_add(2 * RETRANSMIT_US) {
                tracing::info!("resumed: {} records published before the stop were not published again", self.dropped);
                self.seen = Seen::default();
            }
        }
        let mut by_partition: HashMap<u32, Vec<Record>> = HashMap::new();
        for r in records {
            by_partition.entry(super::key::route_record(&r, self.partitions)).or_default().push(r);
        }
        for (p, records) in by_partition {
            for payload in records::encode(&records) {
                self.publish(super::records_subject(p), payload).await;
            }
        }
    }

    /// Publishes until the bus has it (the join's acknowledgements wait behind it).
    async fn publish(&self, subject: String, payload: Vec<u8>) {
        let payload = bytes::Bytes::from(payload);
        loop {
            let sent = async { self.js.publish(subject.clone(), payload.clone()).await?.await };
            match sent.await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!("publishing records to the bus at {}: {e}; again in 1 s", self.url);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn ack(&self, slot: u64, seq: u64) {
        let done: Vec<jetstream::Message> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let Some(queue) = pending.get_mut(&slot) else { return };
            let mut done = Vec::new();
            while queue.front().is_some_and(|(s, _)| *s <= seq) {
                done.extend(queue.pop_front().map(|(_, m)| m));
            }
            done
        };
        for m in done {
            if let Err(e) = m.ack().await {
                // Not acknowledged: the bus delivers it again, and the join skips what it has.
                tracing::debug!("acknowledging an observation: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::wire::{Batch, Hello};

    fn envelope(wall_clock: bool, watermark_us: u64) -> Envelope {
        let batch = Batch { seq: 9, watermark_us, ..Default::default() };
        Envelope { hello: Hello::of_this_run("n1", wall_clock), sent_us: 5_000, batch }
    }

    #[test]
    fn an_agents_last_batch_bounds_the_resume_at_when_it_stopped_not_at_the_end_of_time() {
        assert_eq!(seen_to(&envelope(true, 4_000)), Some(4_000));
        // A live agent's last batch: what came after it is new, so no u64::MAX, which would
        // hold every later record back as published before.
        assert_eq!(seen_to(&envelope(true, u64::MAX)), Some(5_000));
        // A file at capture time: its last exchange's time, or no bound.
        assert_eq!(seen_to(&envelope(false, u64::MAX)), None);
    }
}
