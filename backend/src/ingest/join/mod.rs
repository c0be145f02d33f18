//! The hub's half: every agent's batches go through one `Joiner` on one thread, in the order
//! they arrive, corrected by each agent's clock offset; records are flushed up to the oldest
//! capture time any connected agent has reached, so a partner observation still on its way from
//! another node is waited for. Per-agent status (connected, lag, offset, drops) is kept here and
//! published for `/healthz`, `/metrics` and the page.
//!
//! Over a bus (`bus`), this hub is one replica: its parts are the partitions it owns, each agent
//! instance has one part per partition, the records go back to the bus (`Outlet::Bus`) for every
//! replica's store, and a batch is acknowledged to the bus only after the records made of it.

mod agent;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use agent::Reply;
use agent::{Agent, SAMPLES};

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
        reply: Reply,
        have: oneshot::Sender<u64>,
        /// The bus partition the connection carries (0 for a WebSocket).
        partition: u32,
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
    /// Over the bus: an agent's batch was sent at `agent_us` (its clock) and stored by the bus at
    /// `bus_us` (the bus's).
    Stamp {
        slot: u64,
        agent_us: u64,
        bus_us: u64,
    },
    /// Over the bus: an agent's counters.
    BusReport {
        hello: Hello,
        report: Box<Report>,
    },
    /// The hub refused an agent (another protocol version).
    Refused {
        node: String,
        version: String,
        reason: String,
    },
    /// Over the bus: this replica gives its share of the partitions up. The thread ends at once,
    /// without flushing what waits in the merge: whoever takes the share over reads it again.
    Stop,
}

/// How long a disconnected agent's capture time still holds the merge back: it may reconnect
/// and send what it buffered.
pub(crate) const GRACE_US: u64 = 5_000_000;
/// A batch is acknowledged once the merge has passed it by this much: everything in it has left
/// the merge as records (a request bound for another node's pod waits longest: `RETRANSMIT_US`),
/// so a hub restarted later need not see it again.
const SETTLED_US: u64 = RETRANSMIT_US + WINDOW_US;
/// An agent on the bus whose batches stopped this long ago is shown as gone.
const BUS_SILENCE_US: u64 = 3_000_000;
/// Events taken before one flush.
const BURST: usize = 32;
/// Outages kept per agent.
const OUTAGES: usize = 16;
/// After the hub starts, the merge waits this long (wall clock) for every node the cluster lists
/// to connect: agents that buffered while the hub was away send their backlogs as they come
/// back, and one node's must not be merged before another's has arrived. Agents replaying
/// captures (`--capture-clock`) are not in step with each other at all: they get longer.
const EXPECT_WAIT_US: u64 = 10_000_000;
const EXPECT_WAIT_REPLAY_US: u64 = 30_000_000;

/// Where the merged records go.
pub enum Outlet {
    /// Into this hub's store.
    Hub,
    /// To the bus, for every replica's store: records and acknowledgements in the order made.
    /// Each agent's batches come in `parts` parts (the partitions of this share); `agents`: this
    /// join is the one that shows the agents on `/healthz` (a replica's own share, not one it
    /// took over).
    Bus { tx: mpsc::UnboundedSender<BusOut>, parts: usize, agents: bool },
}

/// What the join thread hands the bus.
pub enum BusOut {
    /// What a flush up to `watermark` (capture time) merged.
    Records { records: Vec<Record>, watermark: u64 },
    /// Every batch up to `seq` of the part on `slot` is merged.
    Ack { slot: u64, seq: u64 },
}

/// The join thread's state.
struct Join {
    joiner: Joiner,
    hub: Hub,
    outlet: Outlet,
    /// Parts each agent's batch comes in.
    parts: usize,
    agents: Vec<Agent>,
    /// Connection slot → (agent, its part).
    slots: HashMap<u64, (usize, usize)>,
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
pub fn run(
    mut events: mpsc::Receiver<Event>,
    hub: Hub,
    outlet: Outlet,
    mut cluster: ClusterFeed,
    merged: Arc<AtomicU64>,
) {
    let capture_clock = hub.clock() == podtap_shared::Clock::Capture;
    let parts = match &outlet {
        Outlet::Hub => 1,
        Outlet::Bus { parts, .. } => (*parts).max(1),
    };
    let mut join = Join {
        parts,
        outlet,
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
        let Some(event) = event.filter(|e| !matches!(e, Event::Stop)) else { break };
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
            if matches!(e, Event::Stop) {
                return;
            }
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
            Event::Connected { slot, hello, reply, have, partition } => {
                let bus = matches!(reply, Reply::Bus);
                let index = self.agent_for(&hello, bus, now);
                let agent = &mut self.agents[index];
                let first = agent.parts.is_empty();
                if !bus {
                    agent.connected = Some(slot);
                    agent.samples.clear();
                }
                let part = agent.part(partition, slot, now);
                part.slot = slot;
                part.reply = Some(reply);
                part.unacked.clear();
                let had = part.have;
                let at = agent.parts.iter().position(|(p, _)| *p == partition).unwrap_or(0);
                if !bus || first {
                    let s = &mut agent.status;
                    (s.connected, s.since_us, s.last_seen_us, s.version) = (true, now, now, hello.version.clone());
                    s.sessions += 1;
                    if let Some(o) = s.outages.last_mut().filter(|o| o.to_us.is_none()) {
                        o.to_us = Some(now);
                    }
                }
                self.refused.retain(|r| r.node != hello.node);
                self.slots.insert(slot, (index, at));
                let _ = have.send(had);
            }
            Event::Batch { slot, batch } => {
                if let Some(&(i, part)) = self.slots.get(&slot) {
                    self.receive(i, part, batch, now);
                }
            }
            Event::Stamp { slot, agent_us, bus_us } => {
                if let Some(&(i, _)) = self.slots.get(&slot) {
                    self.agents[i].stamp(agent_us, bus_us);
                }
            }
            Event::BusReport { hello, report } => {
                let known = self.agents.iter().position(|a| a.node == hello.node && a.instance == hello.instance);
                if let Some(i) = known {
                    self.report(i, &report, now);
                }
            }
            Event::Report { slot, report } => {
                if let Some(&(i, _)) = self.slots.get(&slot) {
                    self.report(i, &report, now);
                }
            }
            Event::Pong { slot, hub_us, agent_us, back_us } => {
                if let Some(&(i, _)) = self.slots.get(&slot) {
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
                if let Some((i, part)) = self.slots.remove(&slot) {
                    let a = &mut self.agents[i];
                    if a.connected == Some(slot) {
                        a.connected = None;
                        a.parts[part].1.reply = None;
                        let ended = a.watermark() == u64::MAX;
                        let s = &mut a.status;
                        (s.connected, s.since_us, s.last_seen_us) = (false, now, now);
                        // A replay that ended and was fully acknowledged is not an outage.
                        if !ended {
                            s.outages.push(Outage { from_us: now, to_us: None });
                            if s.outages.len() > OUTAGES {
                                s.outages.remove(0);
                            }
                        }
                    }
                }
            }
            Event::Stop => {}
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
    fn agent_for(&mut self, hello: &Hello, bus: bool, now: u64) -> usize {
        if let Some(i) = self.agents.iter().position(|a| a.node == hello.node && a.instance == hello.instance) {
            return i;
        }
        let origin = self.agents.len() + 1;
        let o = self.joiner.origin_mut(origin);
        o.node = Some(Name::from(hello.node.as_str()));
        // Over the bus the agent's connection ids are unique already (it numbers them from its
        // place on the bus): every replica names a connection alike.
        if bus {
            o.conn_base = 0;
        }
        // An agent that restarted is a new instance: the old one is gone for good.
        let sessions = self.agents.iter().filter(|a| a.node == hello.node).map(|a| a.status.sessions).sum();
        let outages = self
            .agents
            .iter()
            .filter(|a| a.node == hello.node)
            .flat_map(|a| a.status.outages.iter().copied())
            .collect::<Vec<_>>();
        // (Over the bus an old instance's partitions may still be draining: it stays until
        // it has ended.)
        self.agents.retain(|a| a.node != hello.node || a.connected.is_some() || (a.bus && a.holding(now).is_some()));
        let index = self.agents.len();
        self.agents.push(Agent {
            node: hello.node.clone(),
            instance: hello.instance,
            wall_clock: hello.wall_clock,
            bus,
            origin,
            parts: Vec::new(),
            connected: None,
            samples: VecDeque::new(),
            stamps: VecDeque::new(),
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
        self.slots = self
            .agents
            .iter()
            .enumerate()
            .flat_map(|(i, a)| {
                let live = a.bus || a.connected.is_some();
                a.parts.iter().enumerate().filter(move |_| live).map(move |(at, (_, p))| (p.slot, (i, at)))
            })
            .collect();
        index
    }

    fn report(&mut self, i: usize, report: &Report, now: u64) {
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

    /// Takes a batch of one part; applies what every part of the agent has (`drain`).
    fn receive(&mut self, i: usize, at: usize, batch: Batch, now: u64) {
        let agent = &mut self.agents[i];
        agent.status.last_seen_us = now;
        let part = &mut agent.parts[at].1;
        part.last_batch_us = now;
        if batch.seq <= part.have {
            // Sent again after a reconnect (or delivered again by the bus), already here.
            part.unacked.push_back((batch.seq, 0));
            return;
        }
        part.have = batch.seq;
        part.queue.push_back(batch);
        self.drain(i, false);
    }

    /// Applies the agent's batches in its own order: one batch is cut into a part per bus
    /// partition, and the parts of batch N come on separate consumers, so the batch goes to the
    /// merge once every part this hub owns has it (a part already past it will not get it: a
    /// resumed partition starts a little later than another). `partial`: the agent went silent,
    /// and what its parts hold goes as it is.
    fn drain(&mut self, i: usize, partial: bool) {
        loop {
            let agent = &mut self.agents[i];
            let all_there = agent.parts.len() >= self.parts && agent.parts.iter().all(|(_, p)| !p.queue.is_empty());
            if !all_there && !partial {
                return;
            }
            let Some(next) = agent.parts.iter().filter_map(|(_, p)| p.queue.front().map(|b| b.seq)).min() else {
                return;
            };
            let taken: Vec<(usize, Batch)> = agent
                .parts
                .iter_mut()
                .enumerate()
                .filter(|(_, (_, p))| p.queue.front().is_some_and(|b| b.seq == next))
                .filter_map(|(at, (_, p))| p.queue.pop_front().map(|b| (at, b)))
                .collect();
            self.apply(i, taken);
        }
    }

    /// One batch of an agent (its parts that are here) into the merge, in the order the agent
    /// observed it.
    fn apply(&mut self, i: usize, taken: Vec<(usize, Batch)>) {
        let Some((seq, watermark_us)) = taken.first().map(|(_, b)| (b.seq, b.watermark_us)) else { return };
        let origin = self.agents[i].origin;
        let mut observed = Vec::new();
        let mut notes = crate::ingest::wire::Notes::default();
        let mut parts = Vec::with_capacity(taken.len());
        for (at, batch) in taken {
            if let Some(names) = batch.interfaces {
                self.joiner.origin_mut(origin).set_interfaces(names);
            }
            observed.extend(batch.items);
            let n = batch.notes;
            notes.unmatched_responses += n.unmatched_responses;
            notes.one_way_responses += n.one_way_responses;
            notes.resyncs += n.resyncs;
            notes.not_this_protocol += n.not_this_protocol;
            parts.push(at);
        }
        // Back in the order the agent made them (each part kept its own).
        if parts.len() > 1 {
            observed.sort_by_key(|o| o.place);
        }
        let agent = &self.agents[i];
        let mut items = Vec::with_capacity(observed.len());
        let mut observations = 0;
        for o in observed {
            let mut ex = o.exchange;
            ex.ts_us = agent.fix(ex.ts_us);
            ex.response_ts_us = ex.response_ts_us.map(|t| agent.fix(t));
            ex.end_us = ex.end_us.map(|t| agent.fix(t));
            let item = if o.learn {
                Dissected::Learn(Box::new(ex))
            } else {
                observations += 1;
                Dissected::Exchange(Box::new(ex))
            };
            items.push((agent.fix(o.at_us), item));
        }
        let notes = std::iter::repeat_n(Dissected::UnmatchedResponse, notes.unmatched_responses as usize)
            .chain(std::iter::repeat_n(Dissected::OneWay, notes.one_way_responses as usize))
            .chain(std::iter::repeat_n(Dissected::Resync, notes.resyncs as usize))
            .chain(std::iter::repeat_n(Dissected::NotThisProtocol, notes.not_this_protocol as usize));
        for (at, item) in items {
            self.joiner.take(origin, [item], at, &mut self.out);
        }
        self.joiner.take(origin, notes, 0, &mut self.out);
        let agent = &mut self.agents[i];
        agent.status.observations += observations;
        let fixed = (watermark_us != u64::MAX).then(|| agent.fix(watermark_us));
        for at in parts {
            let part = &mut agent.parts[at].1;
            // `u64::MAX`: its input ended, and its last batch settles with its last real time.
            let settles_at = match fixed {
                None => {
                    part.watermark = u64::MAX;
                    part.last_time
                }
                Some(watermark) => {
                    part.last_time = part.last_time.max(watermark);
                    part.watermark = part.watermark.max(watermark);
                    watermark
                }
            };
            part.unacked.push_back((seq, settles_at));
        }
    }

    /// Merges up to the oldest capture time of the agents that hold it back, publishes the
    /// records, and acknowledges every batch the merge has passed.
    fn flush(&mut self) -> u64 {
        let now = now_us();
        // An agent gone silent with parts of batches held: they will not be completed.
        for i in 0..self.agents.len() {
            let a = &self.agents[i];
            if a.parts.iter().any(|(_, p)| !p.queue.is_empty()) && now.saturating_sub(a.last_batch_us()) >= GRACE_US {
                self.drain(i, true);
            }
        }
        let mut holding = self.agents.iter().filter_map(|a| a.holding(now)).min();
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
            let records = std::mem::replace(&mut self.out, Vec::with_capacity(room));
            match &self.outlet {
                Outlet::Hub => self.hub.publish_owned(records),
                Outlet::Bus { tx, .. } => {
                    let _ = tx.send(BusOut::Records { records, watermark });
                }
            }
        }
        // A record waiting for a pod's name has not left: its batch is not settled either.
        let settled = self.joiner.waiting_since().map_or(watermark, |w| w.min(watermark));
        for a in &mut self.agents {
            for (_, part) in &mut a.parts {
                let mut ack = None;
                while part.unacked.front().is_some_and(|(_, w)| w.saturating_add(SETTLED_US) <= settled) {
                    ack = part.unacked.pop_front().map(|(seq, _)| seq);
                }
                match (ack, &part.reply, &self.outlet) {
                    (Some(seq), Some(Reply::Agent(reply)), _) => {
                        let _ = reply.send(HubMessage::Ack { seq });
                    }
                    (Some(seq), Some(Reply::Bus), Outlet::Bus { tx, .. }) => {
                        let _ = tx.send(BusOut::Ack { slot: part.slot, seq });
                    }
                    _ => {}
                }
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
            let watermark = a.watermark();
            // Over the bus an agent is there while its batches come (a heartbeat every half second).
            if a.bus {
                let sending = now.saturating_sub(a.last_batch_us()) < BUS_SILENCE_US || watermark == u64::MAX;
                if a.status.connected && !sending && watermark != u64::MAX {
                    a.status.outages.push(Outage { from_us: now, to_us: None });
                } else if !a.status.connected
                    && sending
                    && let Some(o) = a.status.outages.last_mut().filter(|o| o.to_us.is_none())
                {
                    o.to_us = Some(now);
                }
                a.status.connected = sending && watermark != u64::MAX;
            }
            if a.wall_clock && (a.connected.is_some() || a.status.connected) && watermark != u64::MAX {
                a.status.lag_ms = Some(now.saturating_sub(watermark) as f64 / 1000.0);
            }
        }
        // One row per node: an instance a newer one replaced (over the bus it stays while its
        // batches drain, and a resumed replica reads it again) is that node's past. Its row is
        // the instance that is there, else the one furthest on.
        let rank = |i: usize| {
            let a = &self.agents[i];
            (a.status.connected, a.watermark(), i)
        };
        let shown = (0..self.agents.len()).filter(|&i| {
            let node = &self.agents[i].node;
            !(0..self.agents.len()).any(|j| j != i && self.agents[j].node == *node && rank(j) > rank(i))
        });
        statuses.extend(shown.map(|i| self.agents[i].status.clone()));
        statuses.extend(self.refused.iter().cloned());
        statuses.sort_by(|a, b| a.node.cmp(&b.node));
        let mut fronts = EngineStats::default();
        for s in self.fronts.values() {
            fronts.add(s);
        }
        if !matches!(self.outlet, Outlet::Bus { agents: false, .. }) {
            self.hub.set_agents(statuses, EngineStats::joined(&fronts, self.joiner.stats()));
        }
    }
}

/// The channel connections send the join thread events on: bounded, so a hub that cannot keep
/// up slows its agents' sockets (they buffer) rather than growing without end.
pub fn channel() -> (mpsc::Sender<Event>, mpsc::Receiver<Event>) {
    mpsc::channel(128)
}

/// Starts the join thread publishing into `hub`.
pub fn start(hub: Hub, outlet: Outlet, cluster: ClusterFeed) -> std::io::Result<(mpsc::Sender<Event>, Arc<AtomicU64>)> {
    let (tx, rx) = channel();
    let merged = Arc::new(AtomicU64::new(0));
    let m = merged.clone();
    std::thread::Builder::new().name("join".into()).spawn(move || run(rx, hub, outlet, cluster, m))?;
    tokio::spawn(tick(tx.clone()));
    Ok((tx, merged))
}

#[cfg(test)]
mod tests;
