//! The hub's half: every agent's batches go through one `Joiner` on one thread, in the order
//! they arrive, corrected by each agent's clock offset; records are flushed up to the oldest
//! capture time any connected agent has reached, so a partner observation still on its way from
//! another node is waited for. Per-agent status (connected, lag, offset, drops) is kept here and
//! published for `/healthz`, `/metrics` and the page.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use podtap_shared::{AgentStatus, Name, Outage, Record};
use tokio::sync::{mpsc, oneshot};

use super::wire::{Batch, Hello, HubMessage, Report};
use crate::correlate::merge::{RETRANSMIT_US, WINDOW_US};
use crate::dissect::Dissected;
use crate::engine::{EngineStats, Joiner};
use crate::feed::ClusterFeed;
use crate::feed::replay::now_us;
use crate::publish::Hub;

/// What a connection tells the join thread.
pub enum Event {
    /// A new agent connection (`slot` is the connection's number); `have` gets the last batch
    /// the hub has from this agent instance.
    Connected {
        slot: u64,
        hello: Hello,
        reply: mpsc::UnboundedSender<HubMessage>,
        have: oneshot::Sender<u64>,
    },
    Batch {
        slot: u64,
        batch: Batch,
    },
    Report {
        slot: u64,
        report: Box<Report>,
    },
    /// An answer to the ping sent at `hub_us`, received at `back_us`.
    Pong {
        slot: u64,
        hub_us: u64,
        agent_us: u64,
        back_us: u64,
    },
    Disconnected {
        slot: u64,
    },
    /// The hub refused an agent (another protocol version).
    Refused {
        node: String,
        version: String,
        reason: String,
    },
}

/// How long a disconnected agent's capture time still holds the merge back: it may reconnect
/// and send what it buffered.
const GRACE_US: u64 = 5_000_000;
/// A batch is acknowledged once the merge has passed it by this much: everything in it has left
/// the merge as records (a request bound for another node's pod waits longest: `RETRANSMIT_US`),
/// so a hub restarted later need not see it again.
const SETTLED_US: u64 = RETRANSMIT_US + WINDOW_US;
/// Events taken before one flush.
const BURST: usize = 32;
/// Round-trip samples kept for the clock offset.
const SAMPLES: usize = 16;
/// Outages kept per agent.
const OUTAGES: usize = 16;
/// After the hub starts, the merge waits this long (wall clock) for every node the cluster lists
/// to connect: agents that buffered while the hub was away send their backlogs as they come
/// back, and one node's must not be merged before another's has arrived. Agents replaying
/// captures (`--capture-clock`) are not in step with each other at all: they get longer.
const EXPECT_WAIT_US: u64 = 10_000_000;
const EXPECT_WAIT_REPLAY_US: u64 = 30_000_000;

/// One agent instance (one run of `podtap agent`).
struct Agent {
    node: String,
    instance: u64,
    wall_clock: bool,
    origin: usize,
    /// The last batch applied.
    have: u64,
    /// Capture time it has reached (corrected), `u64::MAX` once its input ended.
    watermark: u64,
    /// Its last real capture time, for a finished replay.
    last_time: u64,
    /// When its last batch came (wall clock).
    last_batch_us: u64,
    connected: Option<u64>,
    reply: Option<mpsc::UnboundedSender<HubMessage>>,
    /// Batches not yet acknowledged: (seq, watermark).
    unacked: VecDeque<(u64, u64)>,
    /// (round trip, offset) samples, µs.
    samples: VecDeque<(u64, i64)>,
    status: AgentStatus,
}

impl Agent {
    /// Its clock minus the hub's, from the sample with the shortest round trip.
    fn offset_us(&self) -> i64 {
        if !self.wall_clock {
            return 0;
        }
        self.samples.iter().min_by_key(|(rtt, _)| *rtt).map_or(0, |(_, o)| *o)
    }

    fn fix(&self, t: u64) -> u64 {
        t.saturating_add_signed(-self.offset_us())
    }

    /// Whether its capture time still holds the merge back.
    fn holds(&self, now: u64) -> bool {
        self.watermark != u64::MAX
            // Connected and sending, or gone only lately (it may come back with its buffer).
            && now.saturating_sub(self.last_batch_us) < GRACE_US
    }
}

/// The join thread's state.
struct Join {
    joiner: Joiner,
    hub: Hub,
    agents: Vec<Agent>,
    /// Connection slot → agent.
    slots: HashMap<u64, usize>,
    refused: Vec<AgentStatus>,
    /// Counters of every agent's observer, as last reported, by origin.
    fronts: HashMap<usize, EngineStats>,
    out: Vec<Record>,
    /// Time is the captures' own (`--capture-clock`).
    capture_clock: bool,
    started_us: u64,
}

/// Runs the join thread until every connection's sender is gone.
/// `merged` is kept at the capture time the merge has reached (0 before it starts, `u64::MAX`
/// when nothing holds it): connections that run far ahead of it wait (`server`).
pub fn run(mut events: mpsc::Receiver<Event>, hub: Hub, mut cluster: ClusterFeed, merged: Arc<AtomicU64>) {
    let capture_clock = hub.clock() == podtap_shared::Clock::Capture;
    let mut join = Join {
        capture_clock,
        started_us: now_us(),
        joiner: {
            // Before the API server's first lists, what agents send is held, then named.
            let first = cluster.borrow_and_update().clone();
            let mut joiner = Joiner::new(first.clone().unwrap_or_default());
            if first.is_none() {
                joiner.hold();
            }
            if crate::feed::is_live(&cluster) {
                joiner.await_names(crate::correlate::late::LIVE_WAIT_US);
            }
            joiner
        },
        hub,
        agents: Vec::new(),
        slots: HashMap::new(),
        refused: Vec::new(),
        fronts: HashMap::new(),
        out: Vec::new(),
    };
    let mut last_status = 0;
    loop {
        let event = events.blocking_recv();
        let Some(event) = event else { break };
        if cluster.has_changed().unwrap_or(false)
            && let Some(state) = cluster.borrow_and_update().clone()
        {
            join.joiner.set_cluster(state);
            join.joiner.release(&mut join.out);
        }
        let mut changed = join.on(event);
        // Take a few more that are waiting before merging: one flush for a burst of batches
        // (a bounded burst: agents that never pause must not keep the merge from flushing).
        for _ in 0..BURST {
            let Ok(e) = events.try_recv() else { break };
            changed |= join.on(e);
        }
        merged.store(join.flush(), Ordering::Relaxed);
        let now = now_us();
        // An agent that came or went is shown at once; counters every half second.
        if changed || now.saturating_sub(last_status) >= 500_000 {
            last_status = now;
            join.publish_status(now);
        }
    }
}

/// Sends the join thread a tick every so often, so it flushes and reports even with no traffic.
pub async fn tick(events: mpsc::Sender<Event>) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        every.tick().await;
        // Slot 0 is never a connection: a report for nobody, which only wakes the thread.
        if events.send(Event::Report { slot: 0, report: Box::default() }).await.is_err() {
            return;
        }
    }
}

impl Join {
    /// Takes one event; whether an agent came, went or was refused.
    fn on(&mut self, event: Event) -> bool {
        let now = now_us();
        let changed = matches!(event, Event::Connected { .. } | Event::Disconnected { .. } | Event::Refused { .. });
        match event {
            Event::Connected { slot, hello, reply, have } => {
                let index = self.agent_for(&hello, now);
                let agent = &mut self.agents[index];
                agent.connected = Some(slot);
                agent.reply = Some(reply);
                agent.samples.clear();
                agent.unacked.clear();
                let s = &mut agent.status;
                (s.connected, s.since_us, s.last_seen_us, s.version) = (true, now, now, hello.version.clone());
                s.sessions += 1;
                if let Some(o) = s.outages.last_mut().filter(|o| o.to_us.is_none()) {
                    o.to_us = Some(now);
                }
                self.refused.retain(|r| r.node != hello.node);
                self.slots.insert(slot, index);
                let _ = have.send(self.agents[index].have);
            }
            Event::Batch { slot, batch } => {
                if let Some(&i) = self.slots.get(&slot) {
                    self.apply(i, batch, now);
                }
            }
            Event::Report { slot, report } => {
                if let Some(&i) = self.slots.get(&slot) {
                    let a = &mut self.agents[i];
                    let s = &mut a.status;
                    s.last_seen_us = now;
                    (s.buffered_batches, s.buffered_bytes) = (report.buffered_batches, report.buffered_bytes);
                    (s.dropped_batches, s.dropped_observations) = (report.dropped_batches, report.dropped_observations);
                    (s.kernel_packets, s.kernel_drops) = (report.kernel_packets, report.kernel_drops);
                    s.reassembly_gaps = report.engine.tcp.gaps;
                    s.interfaces = report.interfaces.clone();
                    let origin = a.origin;
                    self.fronts.insert(origin, report.engine);
                }
            }
            Event::Pong { slot, hub_us, agent_us, back_us } => {
                if let Some(&i) = self.slots.get(&slot) {
                    let a = &mut self.agents[i];
                    let rtt = back_us.saturating_sub(hub_us);
                    let mid = hub_us + rtt / 2;
                    a.samples.push_back((rtt, agent_us as i64 - mid as i64));
                    if a.samples.len() > SAMPLES {
                        a.samples.pop_front();
                    }
                    let best = a.samples.iter().map(|(r, _)| *r).min().unwrap_or(rtt);
                    a.status.rtt_ms = Some(best as f64 / 1000.0);
                    a.status.clock_offset_ms = a.wall_clock.then(|| a.offset_us() as f64 / 1000.0);
                    a.status.last_seen_us = back_us;
                }
            }
            Event::Disconnected { slot } => {
                if let Some(i) = self.slots.remove(&slot) {
                    let a = &mut self.agents[i];
                    if a.connected == Some(slot) {
                        a.connected = None;
                        a.reply = None;
                        let s = &mut a.status;
                        (s.connected, s.since_us, s.last_seen_us) = (false, now, now);
                        // A replay that ended and was fully acknowledged is not an outage.
                        if a.watermark != u64::MAX {
                            s.outages.push(Outage { from_us: now, to_us: None });
                            if s.outages.len() > OUTAGES {
                                s.outages.remove(0);
                            }
                        }
                    }
                }
            }
            Event::Refused { node, version, reason } => {
                self.refused.retain(|r| r.node != node);
                self.refused.push(AgentStatus {
                    node,
                    version,
                    refused: Some(reason),
                    since_us: now,
                    last_seen_us: now,
                    ..AgentStatus::default()
                });
            }
        }
        changed
    }

    /// The agent for this instance, new if it is.
    fn agent_for(&mut self, hello: &Hello, now: u64) -> usize {
        if let Some(i) = self.agents.iter().position(|a| a.node == hello.node && a.instance == hello.instance) {
            return i;
        }
        let origin = self.agents.len() + 1;
        let o = self.joiner.origin_mut(origin);
        o.node = Some(Name::from(hello.node.as_str()));
        // An agent that restarted is a new instance: the old one is gone for good.
        let sessions = self.agents.iter().filter(|a| a.node == hello.node).map(|a| a.status.sessions).sum();
        let outages = self
            .agents
            .iter()
            .filter(|a| a.node == hello.node)
            .flat_map(|a| a.status.outages.iter().copied())
            .collect::<Vec<_>>();
        self.agents.retain(|a| a.node != hello.node || a.connected.is_some());
        let index = self.agents.len();
        self.agents.push(Agent {
            node: hello.node.clone(),
            instance: hello.instance,
            wall_clock: hello.wall_clock,
            origin,
            have: 0,
            watermark: 0,
            last_time: 0,
            last_batch_us: now,
            connected: None,
            reply: None,
            unacked: VecDeque::new(),
            samples: VecDeque::new(),
            status: AgentStatus {
                node: hello.node.clone(),
                version: hello.version.clone(),
                since_us: now,
                sessions,
                outages,
                ..AgentStatus::default()
            },
        });
        // Indexes moved: rebuild the slot map.
        self.slots = self.agents.iter().enumerate().filter_map(|(i, a)| a.connected.map(|slot| (slot, i))).collect();
        index
    }

    fn apply(&mut self, i: usize, batch: Batch, now: u64) {
        let agent = &mut self.agents[i];
        agent.status.last_seen_us = now;
        agent.last_batch_us = now;
        if batch.seq <= agent.have {
            // Sent again after a reconnect, already here.
            agent.unacked.push_back((batch.seq, 0));
            return;
        }
        agent.have = batch.seq;
        let origin = agent.origin;
        if let Some(names) = batch.interfaces {
            self.joiner.origin_mut(origin).interfaces = names;
        }
        let agent = &self.agents[i];
        let mut items = Vec::with_capacity(batch.items.len());
        for o in batch.items {
            let mut ex = o.exchange;
            ex.ts_us = agent.fix(ex.ts_us);
            ex.response_ts_us = ex.response_ts_us.map(|t| agent.fix(t));
            ex.end_us = ex.end_us.map(|t| agent.fix(t));
            items.push((agent.fix(o.at_us), Dissected::Exchange(Box::new(ex))));
        }
        let n = batch.notes;
        let notes = std::iter::repeat_n(Dissected::UnmatchedResponse, n.unmatched_responses as usize)
            .chain(std::iter::repeat_n(Dissected::OneWay, n.one_way_responses as usize))
            .chain(std::iter::repeat_n(Dissected::Resync, n.resyncs as usize))
            .chain(std::iter::repeat_n(Dissected::NotThisProtocol, n.not_this_protocol as usize));
        let observations = items.len() as u64;
        for (at, item) in items {
            self.joiner.take(origin, [item], at, &mut self.out);
        }
        self.joiner.take(origin, notes, 0, &mut self.out);
        let agent = &mut self.agents[i];
        agent.status.observations += observations;
        // `u64::MAX`: its input ended, and its last batch settles with its last real time.
        let settles_at = if batch.watermark_us == u64::MAX {
            agent.watermark = u64::MAX;
            agent.last_time
        } else {
            let watermark = agent.fix(batch.watermark_us);
            agent.last_time = agent.last_time.max(watermark);
            agent.watermark = agent.watermark.max(watermark);
            watermark
        };
        agent.unacked.push_back((batch.seq, settles_at));
    }

    /// Merges up to the oldest capture time of the agents that hold it back, publishes the
    /// records, and acknowledges every batch the merge has passed.
    fn flush(&mut self) -> u64 {
        let now = now_us();
        let mut holding = self.agents.iter().filter(|a| a.holds(now)).map(|a| a.watermark).min();
        let wait = if self.capture_clock { EXPECT_WAIT_REPLAY_US } else { EXPECT_WAIT_US };
        // Nothing is settled (and acknowledged to its agent) while the joiner holds exchanges
        // for the cluster state: a hub stopped meanwhile loses none of them.
        if (now < self.started_us + wait && !self.missing().is_empty()) || self.joiner.holding() {
            holding = Some(0);
        }
        let watermark = match holding {
            Some(w) => w,
            // Nobody holds it back: live agents' records wait for the wall clock, a replay's
            // for nothing.
            None if self.agents.iter().any(|a| a.wall_clock) => now,
            None => u64::MAX,
        };
        self.joiner.flush(watermark, &mut self.out);
        if !self.out.is_empty() {
            // The next batch is likely as big: its room is made once, not grown into.
            let room = self.out.len();
            self.hub.publish_owned(std::mem::replace(&mut self.out, Vec::with_capacity(room)));
        }
        // A record waiting for a pod's name has not left: its batch is not settled either.
        let settled = self.joiner.waiting_since().map_or(watermark, |w| w.min(watermark));
        for a in &mut self.agents {
            let mut ack = None;
            while a.unacked.front().is_some_and(|(_, w)| w.saturating_add(SETTLED_US) <= settled) {
                ack = a.unacked.pop_front().map(|(seq, _)| seq);
            }
            if let (Some(seq), Some(reply)) = (ack, &a.reply) {
                let _ = reply.send(HubMessage::Ack { seq });
            }
        }
        watermark
    }

    /// Nodes the cluster lists that no agent has connected for.
    fn missing(&self) -> Vec<Name> {
        let mut nodes = self.joiner.cluster().node_names();
        nodes.retain(|n| !self.agents.iter().any(|a| a.node == **n));
        nodes
    }

    fn publish_status(&mut self, now: u64) {
        // A node without an agent is shown as one that never connected.
        let mut statuses: Vec<AgentStatus> = self
            .missing()
            .into_iter()
            .filter(|n| !self.refused.iter().any(|r| r.node == **n))
            .map(|n| AgentStatus {
                node: n.to_string(),
                since_us: self.started_us,
                outages: vec![Outage { from_us: self.started_us, to_us: None }],
                ..AgentStatus::default()
            })
            .collect();
        for a in &mut self.agents {
            if a.wall_clock && a.connected.is_some() && a.watermark != u64::MAX {
                a.status.lag_ms = Some(now.saturating_sub(a.watermark) as f64 / 1000.0);
            }
            statuses.push(a.status.clone());
        }
        statuses.extend(self.refused.iter().cloned());
        statuses.sort_by(|a, b| a.node.cmp(&b.node));
        let mut fronts = EngineStats::default();
        for s in self.fronts.values() {
            fronts.add(s);
        }
        self.hub.set_agents(statuses, EngineStats::joined(&fronts, self.joiner.stats()));
    }
}

/// The channel connections send the join thread events on: bounded, so a hub that cannot keep
/// up slows its agents' sockets (they buffer) rather than growing without end.
pub fn channel() -> (mpsc::Sender<Event>, mpsc::Receiver<Event>) {
    mpsc::channel(128)
}

/// Starts the join thread publishing into `hub`.
pub fn start(hub: Hub, cluster: ClusterFeed) -> std::io::Result<(mpsc::Sender<Event>, Arc<AtomicU64>)> {
    let (tx, rx) = channel();
    let merged = Arc::new(AtomicU64::new(0));
    let m = merged.clone();
    std::thread::Builder::new().name("join".into()).spawn(move || run(rx, hub, cluster, m))?;
    tokio::spawn(tick(tx.clone()));
    Ok((tx, merged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::wire::{Notes, Observed};
    use podtap_shared::{Detail, HttpExchange};

    const T0: u64 = 1_800_000_000_000_000;

    fn observed(n: u64) -> Observed {
        let http =
            HttpExchange { method: "GET".into(), path: format!("/{n}"), status: Some(200), ..Default::default() };
        let exchange = crate::dissect::Exchange {
            conn: n,
            opened_us: None,
            interface: 0,
            points: 1,
            tunnel: None,
            proxied: None,
            client: format!("10.0.0.1:{}", 40000 + n).parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            ts_us: T0 + n * 1000,
            response_ts_us: Some(T0 + n * 1000 + 500),
            end_us: None,
            request_size: 10,
            response_size: 20,
            seq: None,
            detail: Detail::Http(http),
        };
        Observed { at_us: T0 + n * 1000 + 500, exchange }
    }

    fn batch(seq: u64, items: std::ops::Range<u64>, watermark_us: u64) -> Batch {
        Batch { seq, interfaces: None, items: items.map(observed).collect(), notes: Notes::default(), watermark_us }
    }

    fn join(hub: &Hub) -> Join {
        Join {
            joiner: Joiner::new(Arc::new(crate::resolve::ClusterState::default())),
            hub: hub.clone(),
            agents: Vec::new(),
            slots: HashMap::new(),
            refused: Vec::new(),
            fronts: HashMap::new(),
            out: Vec::new(),
            capture_clock: true,
            started_us: 0,
        }
    }

    fn connect(j: &mut Join, slot: u64, instance: u64) -> (u64, mpsc::UnboundedReceiver<HubMessage>) {
        let (reply, replies) = mpsc::unbounded_channel();
        let (have, got) = oneshot::channel();
        let hello = Hello { protocol: 1, version: "t".into(), node: "n1".into(), instance, wall_clock: false };
        j.on(Event::Connected { slot, hello, reply, have });
        (got.blocking_recv().unwrap(), replies)
    }

    #[test]
    fn batches_sent_again_after_a_reconnect_are_not_counted_twice() {
        let hub = Hub::new("test", 1000);
        let mut j = join(&hub);
        let (have, _r) = connect(&mut j, 1, 7);
        assert_eq!(have, 0);
        j.on(Event::Batch { slot: 1, batch: batch(1, 0..5, T0) });
        j.on(Event::Batch { slot: 1, batch: batch(2, 5..10, T0 + 20_000) });
        j.on(Event::Disconnected { slot: 1 });
        // The same instance comes back: the hub says what it has, and what is sent again is
        // skipped.
        let (have, _r) = connect(&mut j, 2, 7);
        assert_eq!(have, 2);
        j.on(Event::Batch { slot: 2, batch: batch(2, 5..10, T0 + 20_000) });
        j.on(Event::Batch { slot: 2, batch: batch(3, 10..12, u64::MAX) });
        j.flush();
        assert_eq!(hub.total(), 12);
        // A new instance of the node starts over at batch 1.
        let (have, _r) = connect(&mut j, 3, 8);
        assert_eq!(have, 0);
    }

    #[test]
    fn a_batch_is_acknowledged_once_the_merge_has_passed_it() {
        let hub = Hub::new("test", 1000);
        let mut j = join(&hub);
        let (_, mut replies) = connect(&mut j, 1, 7);
        j.on(Event::Batch { slot: 1, batch: batch(1, 0..3, T0 + 10_000) });
        j.flush();
        assert!(replies.try_recv().is_err(), "not merged yet: no acknowledgement");
        j.on(Event::Batch { slot: 1, batch: batch(2, 3..4, T0 + 10_000 + SETTLED_US) });
        j.flush();
        assert!(matches!(replies.try_recv(), Ok(HubMessage::Ack { seq: 1 })));
    }

    /// A node whose pod network holds the test's addresses (10.0.0.0/24; 10.0.0.1, the client,
    /// is its bridge), and, with `pods`, the server pod at 10.0.0.2.
    fn cluster(pods: bool) -> Arc<crate::resolve::ClusterState> {
        let pod = |name: &str, ip: &str| {
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default",
                "creationTimestamp":"2020-01-01T00:00:00Z"}},"spec":{{"nodeName":"n1","containers":[]}},
                "status":{{"podIP":"{ip}","phase":"Running"}}}}"#
            )
        };
        let mut items = vec![
            r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},
            "spec":{"podCIDR":"10.0.0.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.10"}]}}"#
                .to_string(),
        ];
        if pods {
            items.push(pod("server", "10.0.0.2"));
        }
        let list = format!(r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#, items.join(","));
        let mut state = crate::resolve::ClusterState::default();
        crate::resolve::parse_list("test", list.as_bytes(), &mut state).unwrap();
        Arc::new(state)
    }

    #[test]
    fn a_record_waits_for_its_pods_name_and_its_batch_is_not_acknowledged_meanwhile() {
        let hub = Hub::new("test", 1000);
        let mut j = join(&hub);
        j.joiner = Joiner::new(cluster(false));
        j.joiner.await_names(crate::correlate::late::LIVE_WAIT_US);
        let (_, mut replies) = connect(&mut j, 1, 7);
        j.on(Event::Batch { slot: 1, batch: batch(1, 0..2, T0 + 10_000) });
        j.on(Event::Batch { slot: 1, batch: batch(2, 2..3, T0 + 10_000 + SETTLED_US) });
        j.flush();
        assert_eq!(hub.total(), 0, "the server's address is in the pod network and nobody's yet");
        assert!(replies.try_recv().is_err(), "what waits is not settled");
        // The API server reports the pod: the records go, named as of their time.
        j.joiner.set_cluster(cluster(true));
        j.flush();
        assert_eq!(hub.total(), 3);
        assert!(matches!(replies.try_recv(), Ok(HubMessage::Ack { seq: 1 })));
        let stats = j.joiner.stats();
        assert_eq!((stats.late_named, stats.late_unnamed), (3, 0));
        let names = hub.recent(10, &Default::default()).iter().map(|r| r.dst.qualified_name()).collect::<Vec<_>>();
        assert_eq!(names, vec![Some("default/server".to_string()); 3]);
    }

    #[test]
    fn the_clock_offset_comes_from_the_shortest_round_trip() {
        let hub = Hub::new("test", 1000);
        let mut j = join(&hub);
        let (_r1, _r2) = connect(&mut j, 1, 7);
        j.agents[0].wall_clock = true;
        // Agent 50 ms ahead; one slow round trip (20 ms, asymmetric) and one quick one.
        j.on(Event::Pong { slot: 1, hub_us: 1_000_000, agent_us: 1_065_000, back_us: 1_020_000 });
        j.on(Event::Pong { slot: 1, hub_us: 2_000_000, agent_us: 2_050_100, back_us: 2_000_200 });
        assert_eq!(j.agents[0].offset_us(), 50_000);
        assert_eq!(j.agents[0].status.rtt_ms, Some(0.2));
    }
}
