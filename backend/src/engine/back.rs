//! The back half of the engine: dissected exchanges → records (name with the cluster state, then
//! merge the observations of one request). One `Joiner` takes the exchanges of every source — one
//! capture, several nodes' files, or every node's agent at the hub — each as an `Origin`.

use std::sync::Arc;

use podtap_shared::{Detail, Name, Record};

use crate::correlate;
use crate::correlate::late::LateNames;
use crate::correlate::merge::Merger;
use crate::correlate::socket_lb::SocketLb;
use crate::dissect::Dissected;
use crate::resolve::{ClusterState, DnsNames, TopicNames};

use super::{Batch, EngineStats};

/// Where dissected exchanges came from: one capture (a node, when named) with its interfaces.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// Interface names by `Exchange::interface`, shared by the records seen on them.
    interfaces: Vec<Option<Name>>,
    /// The node whose interfaces these are, when known.
    pub node: Option<Name>,
    /// Added to this origin's connection ids: two origins never share one.
    pub conn_base: u64,
}

impl Origin {
    /// Names the interfaces (index = `Exchange::interface`).
    pub fn set_interfaces(&mut self, names: Vec<Option<String>>) {
        self.interfaces = names.into_iter().map(|n| n.map(Name::from)).collect();
    }

    /// Names interface `index`.
    pub fn name_interface(&mut self, index: usize, name: Option<String>) {
        if self.interfaces.len() <= index {
            self.interfaces.resize(index + 1, None);
        }
        self.interfaces[index] = name.map(Name::from);
    }

    fn interface(&self, index: u32) -> Option<&Name> {
        self.interfaces.get(index as usize).and_then(Option::as_ref)
    }
}

/// How far apart the connection ids of two origins start: far more connections than one capture
/// or one agent's run ever opens.
pub const CONN_STRIDE: u64 = 1 << 40;

/// The most exchanges held for the cluster's first state: past it they are named with what is
/// known (a busy node at the API server's worst is well under this in `--api-wait`'s 30 s).
const HOLD_AT_MOST: usize = 200_000;

/// What the joiner was given while it held: replayed in order once the cluster state comes.
enum Held {
    Take { origin: usize, items: Vec<Dissected>, now_us: u64 },
    Flush(u64),
}

/// Dissected exchanges → records.
pub struct Joiner {
    cluster: Arc<ClusterState>,
    /// While the API server's first lists are coming: exchanges waiting to be named, with their
    /// flushes, so they are named as of their own time with the state that comes.
    held: Option<(Vec<Held>, usize)>,
    origins: Vec<Origin>,
    next_id: u64,
    /// One record per request (`None`: one per observation).
    merger: Option<Merger>,
    /// Names for external addresses from the DNS answers and TLS SNIs seen so far.
    names: DnsNames,
    /// Kafka topic names for the ids Metadata responses named so far.
    topics: TopicNames,
    /// Which Services' ClusterIPs each pod was given by DNS: for calls a socket-level load
    /// balancer translated before the wire.
    socket_lb: SocketLb,
    /// Records that leave before the cluster state names a new pod's address, waiting for it.
    late: LateNames,
    pub(super) stats: EngineStats,
}

impl Joiner {
    /// A joiner with one unnamed origin (index 0).
    pub fn new(cluster: Arc<ClusterState>) -> Self {
        Self {
            cluster,
            held: None,
            origins: vec![Origin::default()],
            next_id: 1,
            merger: Some(Merger::default()),
            names: DnsNames::default(),
            topics: TopicNames::default(),
            socket_lb: SocketLb::default(),
            late: LateNames::default(),
            stats: EngineStats::default(),
        }
    }

    /// One record per observation instead of one per request.
    pub fn per_interface(&mut self) {
        self.merger = None;
    }

    /// Names records with a newer cluster state from now on (and those waiting for it).
    pub fn set_cluster(&mut self, cluster: Arc<ClusterState>) {
        self.cluster = cluster;
        self.late.changed();
    }

    /// The cluster state is live (the API server's watch): a record with an address in a pod
    /// network that no pod holds yet waits up to `wait_us` (capture time) for the state to name it.
    pub fn await_names(&mut self, wait_us: u64) {
        self.late.wait_up_to(wait_us);
    }

    /// The start of the oldest record waiting for a name: the observations before it have left.
    pub fn waiting_since(&self) -> Option<u64> {
        self.late.waiting_since()
    }

    /// Holds every exchange (and the merge's flushes) until `release`: the cluster state is not
    /// there yet, and a record named without it would stay unnamed.
    pub fn hold(&mut self) {
        self.held.get_or_insert_with(|| (Vec::new(), 0));
    }

    /// Whether exchanges are held for the cluster state.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Names and merges what was held, in the order it came, with the cluster state there is now.
    pub fn release(&mut self, out: &mut Vec<Record>) {
        let Some((held, items)) = self.held.take() else { return };
        if items > 0 {
            tracing::info!("naming {items} exchanges held until the cluster state came");
        }
        for h in held {
            match h {
                Held::Take { origin, items, now_us } => self.take(origin, items, now_us, out),
                Held::Flush(watermark) => self.flush(watermark, out),
            }
        }
    }

    /// The cluster state records are named with.
    pub fn cluster(&self) -> &Arc<ClusterState> {
        &self.cluster
    }

    /// Counters of what was joined (the front's are the origin's own).
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Origin `index`, created (unnamed, its connection ids `index` strides up) if new.
    pub fn origin_mut(&mut self, index: usize) -> &mut Origin {
        while self.origins.len() <= index {
            let conn_base = self.origins.len() as u64 * CONN_STRIDE;
            self.origins.push(Origin { conn_base, ..Origin::default() });
        }
        &mut self.origins[index]
    }

    /// One batch from the front, in the order the frames came: the same flushes and takes that
    /// `Engine::on_frame` makes frame by frame.
    pub(super) fn apply(&mut self, origin: usize, batch: Batch, out: &mut Vec<Record>) {
        if let Some(names) = batch.interfaces {
            self.origin_mut(origin).set_interfaces(names);
        }
        let mut items = batch.items.into_iter();
        for step in batch.steps {
            self.flush(step.before, out);
            self.take(origin, items.by_ref().take(step.items), step.now_us, out);
            self.flush(step.watermark, out);
        }
        self.flush(batch.after, out);
        if batch.last {
            self.finish(origin, Vec::new(), out);
        }
    }

    /// Requests waiting in the merger.
    pub fn pending(&self) -> usize {
        self.merger.as_ref().map_or(0, Merger::pending)
    }

    /// Whether the merger holds observations waiting for their window.
    pub fn waiting(&self) -> bool {
        self.pending() > 0
    }

    /// Turns finished exchanges into records; with merging, they wait (from capture time
    /// `now_us`) for the other observations of their request.
    pub fn take(
        &mut self,
        origin: usize,
        items: impl IntoIterator<Item = Dissected>,
        now_us: u64,
        out: &mut Vec<Record>,
    ) {
        if let Some((held, count)) = &mut self.held {
            let items: Vec<Dissected> = items.into_iter().collect();
            if items.is_empty() {
                return;
            }
            *count += items.len();
            let full = *count > HOLD_AT_MOST;
            held.push(Held::Take { origin, items, now_us });
            if full {
                tracing::warn!("{HOLD_AT_MOST} exchanges held for the cluster state: naming them with what is known");
                self.release(out);
            }
            return;
        }
        self.origin_mut(origin);
        let at = origin;
        let first = out.len();
        for d in items {
            let origin = &self.origins[at];
            match d {
                Dissected::Exchange(ex) => {
                    let iface = origin.interface(ex.interface);
                    let record = Box::new(correlate::record(*ex, 0, iface, &self.cluster));
                    self.join(at, record, now_us, out);
                }
                Dissected::UnmatchedResponse => self.stats.unmatched_responses += 1,
                Dissected::OneWay => self.stats.one_way_responses += 1,
                Dissected::Resync => self.stats.resyncs += 1,
                Dissected::NotThisProtocol => self.stats.non_http_streams += 1,
                Dissected::Learn(ex) => {
                    let iface = origin.interface(ex.interface);
                    let mut ex = *ex;
                    ex.conn += origin.conn_base;
                    let record = correlate::record(ex, 0, iface, &self.cluster);
                    self.names.learn(&record);
                    self.topics.learn(&record);
                    self.socket_lb.learn(&record, &self.cluster);
                }
            }
        }
        self.late.advance(now_us);
        self.leave(first, false, out);
    }

    /// One observation made into a record: its id, its origin's connection base and node, and
    /// its names; then the merge.
    fn join(&mut self, origin: usize, mut record: Box<Record>, now_us: u64, out: &mut Vec<Record>) {
        if let Detail::Http(h) = &record.detail {
            self.stats.http_exchanges += 1;
            self.stats.malformed_requests += u64::from(h.malformed.is_some());
            self.stats.uncertain_pairings += u64::from(h.paired.is_some());
        }
        self.stats.tls_handshakes += u64::from(matches!(record.detail, Detail::Tls(_)));
        self.stats.grpc_calls += u64::from(matches!(record.detail, Detail::Grpc(_)));
        let origin = &self.origins[origin];
        record.id = self.next_id;
        record.conn += origin.conn_base;
        record.nodes.extend(origin.node.clone());
        self.names.learn(&record);
        self.names.name(&mut record);
        self.topics.learn(&record);
        self.topics.name(&mut record);
        // Learned as observations come; applied as records leave the merge (below), when every
        // node's observations before them — a DNS answer on the client's node — have come too.
        self.socket_lb.learn(&record, &self.cluster);
        self.next_id += 1;
        match &mut self.merger {
            Some(m) => m.push(record, now_us, &self.cluster, out),
            None => out.push(*record),
        }
    }

    /// Records leaving (`out[first..]`): those with a pod address not named yet wait for it; what
    /// goes is counted for the Service a socket-level balancer translated it through, if one did.
    /// `all`: nothing waits any more (the input ended).
    fn leave(&mut self, first: usize, all: bool, out: &mut Vec<Record>) {
        if self.late.enabled() {
            let (late, cluster) = (&self.late, &self.cluster);
            let waiting: Vec<Record> = out.extract_if(first.., |r| !all && late.must_wait(r, cluster)).collect();
            for r in waiting {
                self.late.park(r);
            }
            self.late.release(&self.cluster, all, out);
            self.stats.late_named = self.late.stats.named_late;
            self.stats.late_unnamed = self.late.stats.wait_expired;
            self.stats.waiting_names = self.late.len() as u64;
        }
        for r in &mut out[first..] {
            self.socket_lb.apply(r, &self.cluster);
        }
    }

    /// Emits every request whose window has passed by `watermark`.
    pub fn flush(&mut self, watermark: u64, out: &mut Vec<Record>) {
        if let Some((held, _)) = &mut self.held {
            match held.last_mut() {
                Some(Held::Flush(w)) => *w = (*w).max(watermark),
                _ => held.push(Held::Flush(watermark)),
            }
            return;
        }
        let first = out.len();
        if let Some(m) = &mut self.merger {
            m.flush_due(watermark, out);
        }
        self.late.advance(watermark);
        self.leave(first, false, out);
    }

    /// End of input: takes `items` and emits everything still waiting.
    pub fn finish(&mut self, origin: usize, items: Vec<Dissected>, out: &mut Vec<Record>) {
        // The input ended before the cluster state came: nothing more will come to wait for.
        self.release(out);
        self.take(origin, items, u64::MAX, out);
        let first = out.len();
        if let Some(m) = &mut self.merger {
            m.flush_all(out);
        }
        self.leave(first, true, out);
    }
}
