//! The hub: the store (records and connections in time order, with rollups), the cluster state
//! records are named with, and the fan-out to browsers. Producers call `publish` from any thread;
//! a slow browser never slows them — each browser has a bounded queue of record batches, and
//! what does not fit is counted for it (`lagged`) instead of waited for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use podtap_shared::{Clock, Filter, MapStats, MissingKind, Name, Record, ServerMessage, ServiceMap};
use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, mpsc};

use crate::access::rule::sees_ends;
use crate::access::{Sight, sees, view};
use crate::aggregate::balance::Balance;
use crate::capture::live::LiveStats;
use crate::engine::EngineStats;
use crate::packets::PacketStore;
use crate::publish::api::RemotePackets;
use crate::resolve::ClusterState;
use crate::resolve::access::Access;
use crate::store::{Bucket, Connection, Cursor, Kinds, Lens, Limits, Store, StoreStats, Window};
use podtap_shared::AgentStatus;

/// Record batches queued per browser before its records are counted as skipped.
const CLIENT_QUEUE: usize = 256;
/// Control messages (cluster status) queued per browser.
const CONTROL_QUEUE: usize = 64;

/// Records published together, numbered so a subscriber can tell them from what its snapshot
/// already holds.
pub struct Published {
    pub seq: u64,
    /// The same records the store holds.
    pub records: Vec<Arc<Record>>,
}

struct Subscriber {
    tx: mpsc::Sender<Arc<Published>>,
    /// Records it would have seen that did not fit in the queue, not yet reported.
    skipped: Arc<AtomicU64>,
    /// What its viewer sees: only those records are counted as skipped.
    sight: Arc<Sight>,
}

struct State {
    store: Store,
    total: u64,
    /// Records since start by (source, destination) namespace: a viewer's total is the sum over
    /// the pairs they see, never a number of records they may not see.
    by_namespaces: FxHashMap<(Option<Name>, Option<Name>), u64>,
    /// Batches published so far.
    seq: u64,
    capture: Option<LiveStats>,
    /// `podtap hub`: the agents, and what their captures saw.
    agents: Option<(Vec<AgentStatus>, EngineStats)>,
    /// `podtap hub --bus`: this replica's view of the bus.
    bus: Option<podtap_shared::BusStatus>,
    /// `podtap serve`: what its own engine saw (gaps, responses without a request, …).
    engine: Option<EngineStats>,
    subscribers: Vec<Subscriber>,
}

struct Inner {
    state: Mutex<State>,
    /// Names and Service backends, for the balance API (replaced as the cluster changes).
    cluster: std::sync::RwLock<Arc<ClusterState>>,
    /// Where names come from and whether they are loaded (the counts are read off `cluster`).
    cluster_source: Mutex<(String, bool)>,
    /// What the API server let podtap list, when names come from it.
    access: Mutex<Option<Arc<Access>>>,
    /// The last `cluster` message streamed, to stream it again only when it changes.
    cluster_sent: Mutex<Option<ServerMessage>>,
    control: broadcast::Sender<Arc<str>>,
    source: String,
    clock: Clock,
    metrics: super::metrics::Metrics,
    /// This node's retained packets (`serve` with `--packet-retention-mb` above 0).
    packets: std::sync::OnceLock<Arc<PacketStore>>,
    remote: std::sync::OnceLock<Arc<dyn RemotePackets>>,
}

/// The cluster state's source and readiness, for `/healthz`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClusterStatus {
    pub source: String,
    pub ready: bool,
    /// Objects in the current state (pods, Services, EndpointSlices, nodes, …).
    pub objects: usize,
    pub namespaces: usize,
    /// Kinds the API server did not let podtap list everywhere, and what that costs.
    pub missing: Vec<MissingKind>,
}

/// What a new (or re-subscribing) browser starts from.
pub struct Subscription {
    pub snapshot: ServerMessage,
    /// The map's numbers at the snapshot, for the live view to add new records to.
    pub map: MapStats,
    /// Batches up to this one are in the snapshot.
    pub seq: u64,
}

/// A browser's end of the fan-out.
pub struct Feed {
    pub records: mpsc::Receiver<Arc<Published>>,
    pub skipped: Arc<AtomicU64>,
    pub control: broadcast::Receiver<Arc<str>>,
}

/// Cheap to clone; all clones share one hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// A hub keeping at most `max_records` records for the default retention, on the wall clock.
    pub fn new(source: impl Into<String>, max_records: usize) -> Self {
        let limits = Limits { max_records: max_records.max(1), ..Limits::default() };
        Self::with_limits(source, limits, Clock::Wall)
    }

    /// `source` describes where traffic comes from (shown to browsers); `limits` bound memory;
    /// `clock` says whether "now" is the wall clock or the capture's newest record.
    pub fn with_limits(source: impl Into<String>, limits: Limits, clock: Clock) -> Self {
        let (control, _) = broadcast::channel(CONTROL_QUEUE);
        let state = State {
            store: Store::new(limits),
            total: 0,
            by_namespaces: FxHashMap::default(),
            seq: 0,
            capture: None,
            agents: None,
            bus: None,
            engine: None,
            subscribers: Vec::new(),
        };
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                cluster: std::sync::RwLock::new(Arc::new(ClusterState::default())),
                cluster_source: Mutex::new(("none".into(), true)),
                access: Mutex::new(None),
                cluster_sent: Mutex::new(None),
                control,
                source: source.into(),
                clock,
                metrics: super::metrics::Metrics::default(),
                packets: std::sync::OnceLock::new(),
                remote: std::sync::OnceLock::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the frames of this node's capture in `store` (the feed adds them).
    pub fn set_packets(&self, store: Arc<PacketStore>) {
        let _ = self.inner.packets.set(store);
    }

    /// The packet ring, when packets are retained.
    pub fn packets(&self) -> Option<Arc<PacketStore>> {
        self.inner.packets.get().cloned()
    }

    /// `podtap hub`: packets are kept by the agents, and asked for through `remote`.
    pub fn set_remote_packets(&self, remote: Arc<dyn RemotePackets>) {
        let _ = self.inner.remote.set(remote);
    }

    pub fn remote_packets(&self) -> Option<Arc<dyn RemotePackets>> {
        self.inner.remote.get().cloned()
    }

    pub fn source(&self) -> &str {
        &self.inner.source
    }

    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// "Now" for relative times (`-5m`): the wall clock, or the newest record of a capture
    /// replayed on its own time axis.
    pub fn now_us(&self) -> u64 {
        match self.inner.clock {
            Clock::Wall => crate::feed::replay::now_us(),
            Clock::Capture => self.lock().store.newest_us(),
        }
    }

    /// Adds records (oldest first) to the store and queues them for every browser.
    pub fn publish(&self, records: &[Record]) {
        self.publish_owned(records.to_vec());
    }

    /// `publish`, taking the records: with no browser subscribed they move into the store
    /// without a copy.
    pub fn publish_owned(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        self.inner.metrics.observe(&records);
        let mut state = self.lock();
        state.total += records.len() as u64;
        for r in &records {
            *state.by_namespaces.entry((r.src.namespace.clone(), r.dst.namespace.clone())).or_default() += 1;
        }
        state.seq += 1;
        state.subscribers.retain(|s| !s.tx.is_closed());
        let records: Vec<Arc<Record>> = records.into_iter().map(Arc::new).collect();
        for r in &records {
            state.store.insert(r.clone());
        }
        if state.subscribers.is_empty() {
            return;
        }
        // Queued under the lock so a subscriber's snapshot and its stream never overlap or miss.
        let batch = Arc::new(Published { seq: state.seq, records });
        state.subscribers.retain(|s| match s.tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let seen = batch.records.iter().filter(|r| sees(r, &s.sight)).count();
                s.skipped.fetch_add(seen as u64, Ordering::Relaxed);
                self.inner.metrics.lagged(batch.records.len() as u64);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// The cluster state records are named with; the balance API lists a Service's backends from it.
    pub fn set_cluster(&self, cluster: Arc<ClusterState>) {
        *self.inner.cluster.write().unwrap_or_else(|e| e.into_inner()) = cluster;
    }

    /// Where names come from (`files`, `demo`, `api`, `none`) and whether they are loaded yet.
    pub fn set_cluster_status(&self, source: &str, ready: bool) {
        *self.inner.cluster_source.lock().unwrap_or_else(|e| e.into_inner()) = (source.into(), ready);
    }

    pub fn cluster_status(&self) -> ClusterStatus {
        let (source, ready) = self.inner.cluster_source.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let cluster = self.cluster();
        let missing =
            self.inner.access.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or_else(Vec::new, |a| a.missing());
        ClusterStatus { source, ready, objects: cluster.objects, namespaces: cluster.namespaces.len(), missing }
    }

    /// The API server's answers per kind, once the reflectors run.
    pub fn set_cluster_access(&self, access: Arc<Access>) {
        *self.inner.access.lock().unwrap_or_else(|e| e.into_inner()) = Some(access);
    }

    /// The `cluster` message a browser is sent: source, readiness, what is missing.
    pub fn cluster_message(&self) -> ServerMessage {
        let s = self.cluster_status();
        ServerMessage::Cluster { source: s.source, ready: s.ready, missing: s.missing }
    }

    pub fn cluster(&self) -> Arc<ClusterState> {
        self.inner.cluster.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replica balance of Service `ns/name` over the window; `None` for a Service nobody knows.
    pub fn balance(&self, service: &str, window: Window, sight: &Sight) -> Option<Balance> {
        let cluster = self.cluster();
        self.lock().store.balance(window, service, &cluster, sight)
    }

    /// Every Service's balance over the window, for the balance view's picker.
    pub fn balances(&self, window: Window, sight: &Sight) -> Vec<Balance> {
        let cluster = self.cluster();
        self.lock().store.balances(window, &cluster, sight)
    }

    /// The live capture's kernel counters (packets, drops per interface), for `/healthz`.
    pub fn set_capture(&self, stats: LiveStats) {
        self.lock().capture = Some(stats);
    }

    pub fn capture(&self) -> Option<LiveStats> {
        self.lock().capture.clone()
    }

    /// `podtap serve`: its engine's counters, for `/healthz` (the map's data-quality bar).
    pub fn set_engine(&self, stats: EngineStats) {
        self.lock().engine = Some(stats);
    }

    /// What the captures feeding this hub saw: the agents' summed, or `serve`'s own engine's.
    pub fn engine(&self) -> Option<EngineStats> {
        let state = self.lock();
        state.agents.as_ref().map(|(_, e)| *e).or(state.engine)
    }

    /// Where the audit log counts its events (`/metrics`).
    pub fn audit_counting(&self) -> super::metrics::AuditCounting {
        super::metrics::AuditCounting(self.inner.metrics.audit.clone())
    }

    /// `GET /metrics`: the OpenMetrics text as of now.
    pub fn metrics_text(&self) -> String {
        let store = self.store_stats();
        let agents = self.agents().map(|(a, _)| a).unwrap_or_default();
        self.inner.metrics.render(&store, &agents)
    }

    /// `podtap hub`: every agent's status and what their captures saw (the join thread's).
    pub fn set_agents(&self, agents: Vec<AgentStatus>, engine: EngineStats) {
        let changed = self.lock().agents.as_ref().is_none_or(|(a, _)| *a != agents);
        if changed {
            let _ = self.inner.control.send(to_json(&ServerMessage::Agents { agents: agents.clone() }));
        }
        self.lock().agents = Some((agents, engine));
    }

    /// A hub replica's view of the bus, every few seconds.
    pub fn set_bus(&self, bus: podtap_shared::BusStatus) {
        self.lock().bus = Some(bus);
    }

    pub fn bus(&self) -> Option<podtap_shared::BusStatus> {
        self.lock().bus.clone()
    }

    /// The agents message for a browser, in hub mode.
    pub fn agents_message(&self) -> Option<ServerMessage> {
        self.agents().map(|(agents, _)| ServerMessage::Agents { agents })
    }

    pub fn agents(&self) -> Option<(Vec<AgentStatus>, EngineStats)> {
        self.lock().agents.clone()
    }

    /// Records seen since start (including those no longer retained).
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Records since start that `sight` sees.
    pub fn total_seen(&self, sight: &Sight) -> u64 {
        let state = self.lock();
        if sight.is_all() {
            return state.total;
        }
        let pairs = state.by_namespaces.iter();
        pairs.filter(|((s, d), _)| sees_ends(s.as_deref(), d.as_deref(), sight)).map(|(_, n)| n).sum()
    }

    pub fn store_stats(&self) -> StoreStats {
        self.lock().store.stats()
    }

    /// The newest `limit` requests that pass `filter`, in `Record::time_order`.
    pub fn recent(&self, limit: usize, filter: &Filter) -> Vec<Record> {
        self.records(Window::ALL, Lens::all(filter), Kinds::Requests, None, limit).0
    }

    /// A page of records of the window: after `after`, else the newest; and whether more follow.
    pub fn records(
        &self,
        window: Window,
        lens: Lens,
        kinds: Kinds,
        after: Option<Cursor>,
        limit: usize,
    ) -> (Vec<Record>, bool) {
        self.lock().store.records(window, lens, kinds, after, limit)
    }

    /// One record, as `sight` shows it.
    pub fn record(&self, id: u64, sight: &Sight) -> Option<Record> {
        view(self.lock().store.record(id)?, sight)
    }

    pub fn connection(&self, conn: u64, sight: &Sight) -> Option<Connection> {
        self.lock().store.connection(conn, sight)
    }

    /// The map of the window, of the records the lens shows.
    pub fn map(&self, lens: Lens, window: Window) -> ServiceMap {
        self.lock().store.map(window, lens)
    }

    /// Requests and errors per step over the window.
    pub fn timeline(&self, window: Window, step_us: u64, lens: Lens) -> Vec<Bucket> {
        self.lock().store.timeline(window, step_us, lens)
    }

    /// Streams the cluster status when it changed; called on a timer.
    pub fn tick(&self) {
        let cluster = self.cluster_message();
        let mut sent = self.inner.cluster_sent.lock().unwrap_or_else(|e| e.into_inner());
        if sent.as_ref() != Some(&cluster) {
            let _ = self.inner.control.send(to_json(&cluster));
            *sent = Some(cluster);
        }
    }

    /// A new browser's feed: its records queue and the control messages.
    pub fn feed(&self, sight: Arc<Sight>) -> Feed {
        let (tx, records) = mpsc::channel(CLIENT_QUEUE);
        let skipped = Arc::new(AtomicU64::new(0));
        let control = self.inner.control.subscribe();
        self.lock().subscribers.push(Subscriber { tx, skipped: skipped.clone(), sight });
        Feed { records, skipped, control }
    }

    /// What a browser subscribing with `filter` starts from: the newest `limit` matching records
    /// (requests and connections) and the map of the retained window; batches up to `seq` are in
    /// it.
    pub fn subscribe(&self, lens: Lens, filter_text: &str, limit: usize) -> Subscription {
        let state = self.lock();
        let (records, _) = state.store.records(Window::ALL, lens, Kinds::All, None, limit);
        let map = state.store.map_stats(Window::ALL, lens);
        let snapshot = ServerMessage::Snapshot { records, map: map.build(), filter: filter_text.to_string() };
        Subscription { snapshot, map, seq: state.seq }
    }
}

/// Serialises a message once for every receiver.
pub fn to_json(msg: &ServerMessage) -> Arc<str> {
    serde_json::to_string(msg).expect("wire types always serialise").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64) -> Record {
        Record { id, ts: Record::test().ts + id, ..Record::test() }
    }

    #[test]
    fn retention_bounds_memory_but_totals_count_everything() {
        let hub = Hub::new("test", 3);
        hub.publish(&(1..=5).map(rec).collect::<Vec<_>>());
        assert_eq!(hub.total(), 5);
        let all = Filter::default();
        assert_eq!(hub.recent(10, &all).iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(hub.recent(1, &all)[0].id, 5);
        // The rollups still count what was evicted by count.
        assert_eq!(hub.map(Lens::all(&all), Window::ALL).edges[0].requests, 5);
        let none = Filter::parse("status:5xx").unwrap();
        assert!(hub.recent(10, &none).is_empty());
        assert!(hub.map(Lens::all(&none), Window::ALL).edges.is_empty());
    }

    #[test]
    fn recent_records_are_in_request_time_order() {
        // A probe (a lone observation, id 1) arrives a window after a merged request made later.
        let hub = Hub::new("test", 10);
        let at = |id, ts| Record { id, ts, ..Record::test() };
        hub.publish(&[at(2, 2_000_000), at(1, 1_000_000), at(3, 3_000_000)]);
        let ids: Vec<u64> = hub.recent(10, &Filter::default()).iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(hub.recent(2, &Filter::default()).iter().map(|r| r.id).collect::<Vec<_>>(), [2, 3], "the newest");
    }

    #[test]
    fn a_subscriber_gets_a_snapshot_then_only_newer_batches() {
        let hub = Hub::new("test", 100);
        hub.publish(&[rec(1)]);
        let mut feed = hub.feed(Arc::new(Sight::All));
        let sub = hub.subscribe(Lens::all(&Filter::default()), "", 50);
        let ServerMessage::Snapshot { records, map, .. } = sub.snapshot else { panic!("not a snapshot") };
        assert_eq!((records.len(), map.edges.len(), sub.seq), (1, 1, 1));
        hub.publish(&[rec(2)]);
        let next = feed.records.try_recv().unwrap();
        assert_eq!((next.seq, next.records.clone()), (2, vec![Arc::new(rec(2))]));
    }

    #[test]
    fn a_full_queue_counts_records_not_batches() {
        let hub = Hub::new("test", 100_000);
        let feed = hub.feed(Arc::new(Sight::All));
        for i in 0..(CLIENT_QUEUE as u64 + 3) {
            hub.publish(&[rec(2 * i + 1), rec(2 * i + 2)]);
        }
        assert_eq!(feed.skipped.load(Ordering::Relaxed), 6, "three batches of two did not fit");
    }
}
