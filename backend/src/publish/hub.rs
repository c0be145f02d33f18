//! The hub: the records retained in memory (bounded), the Service Map over them, and the fan-out
//! to browsers. Producers call `publish` from any thread; a slow browser never slows them — its
//! channel drops the oldest messages and the client is told how many it missed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use podtap_shared::{Filter, MapBuilder, MissingKind, Record, ServerMessage, ServiceMap};
use tokio::sync::broadcast;

use crate::aggregate::balance::{Balance, BalanceBuilder};
use crate::capture::live::LiveStats;
use crate::resolve::ClusterState;
use crate::resolve::access::Access;

/// Messages queued per browser before it is declared lagging.
const CLIENT_QUEUE: usize = 1024;

struct State {
    records: VecDeque<Record>,
    map: ServiceMap,
    map_dirty: bool,
    total: u64,
    capture: Option<LiveStats>,
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
    tx: broadcast::Sender<Arc<str>>,
    source: String,
    retention: usize,
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

/// Cheap to clone; all clones share one hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// `source` describes where traffic comes from (shown to browsers); `retention` bounds memory.
    pub fn new(source: impl Into<String>, retention: usize) -> Self {
        let (tx, _) = broadcast::channel(CLIENT_QUEUE);
        let state =
            State { records: VecDeque::new(), map: ServiceMap::default(), map_dirty: false, total: 0, capture: None };
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                cluster: std::sync::RwLock::new(Arc::new(ClusterState::default())),
                cluster_source: Mutex::new(("none".into(), true)),
                access: Mutex::new(None),
                cluster_sent: Mutex::new(None),
                tx,
                source: source.into(),
                retention: retention.max(1),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Adds records (oldest first) and streams them to every browser.
    pub fn publish(&self, records: &[Record]) {
        if records.is_empty() {
            return;
        }
        let mut state = self.lock();
        for r in records {
            if state.records.len() == self.inner.retention {
                state.records.pop_front();
            }
            state.records.push_back(r.clone());
        }
        state.total += records.len() as u64;
        state.map_dirty = true;
        // Sent under the lock so a subscriber's snapshot and its stream never overlap or miss.
        let _ = self.inner.tx.send(to_json(&ServerMessage::Records { records: records.to_vec() }));
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

    /// Replica balance of Service `ns/name` over the retained records; `None` for a Service
    /// nobody knows.
    pub fn balance(&self, service: &str) -> Option<Balance> {
        let cluster = self.cluster();
        let mut b = BalanceBuilder::default();
        self.lock().records.iter().for_each(|r| b.add(r));
        b.balance(service, &cluster)
    }

    /// The live capture's kernel counters (packets, drops per interface), for `/healthz`.
    pub fn set_capture(&self, stats: LiveStats) {
        self.lock().capture = Some(stats);
    }

    pub fn capture(&self) -> Option<LiveStats> {
        self.lock().capture.clone()
    }

    /// Records seen since start (including those no longer retained).
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// The newest `limit` records that pass `filter` (by arrival), in `Record::time_order`.
    pub fn recent(&self, limit: usize, filter: &Filter) -> Vec<Record> {
        let state = self.lock();
        let mut newest: Vec<Record> =
            state.records.iter().rev().filter(|r| filter.matches(r)).take(limit).cloned().collect();
        newest.sort_by_key(Record::time_order);
        newest
    }

    /// The map over the retained records that pass `filter`.
    pub fn map(&self, filter: &Filter) -> ServiceMap {
        let mut state = self.lock();
        if filter.is_empty() {
            refresh(&mut state);
            return state.map.clone();
        }
        map_of(state.records.iter().filter(|r| filter.matches(r)))
    }

    /// Rebuilds the map if records arrived and streams it, and the cluster status when it
    /// changed; called on a timer.
    pub fn tick(&self) {
        let cluster = self.cluster_message();
        let mut sent = self.inner.cluster_sent.lock().unwrap_or_else(|e| e.into_inner());
        if sent.as_ref() != Some(&cluster) {
            let _ = self.inner.tx.send(to_json(&cluster));
            *sent = Some(cluster);
        }
        drop(sent);
        let mut state = self.lock();
        if state.map_dirty {
            refresh(&mut state);
            let _ = self.inner.tx.send(to_json(&ServerMessage::Map { map: state.map.clone() }));
        }
    }

    /// A new browser: its snapshot (the newest `limit` records and the map) and its stream.
    pub fn subscribe(&self, limit: usize) -> (ServerMessage, broadcast::Receiver<Arc<str>>) {
        let mut state = self.lock();
        refresh(&mut state);
        let skip = state.records.len().saturating_sub(limit);
        let records = state.records.iter().skip(skip).cloned().collect();
        (ServerMessage::Snapshot { records, map: state.map.clone() }, self.inner.tx.subscribe())
    }
}

fn refresh(state: &mut State) {
    if state.map_dirty {
        state.map = map_of(state.records.iter());
        state.map_dirty = false;
    }
}

/// The Service Map of some records.
fn map_of<'a>(records: impl Iterator<Item = &'a Record>) -> ServiceMap {
    let mut b = MapBuilder::new();
    records.for_each(|r| b.add(r));
    b.build()
}

/// Serialises a message once for every receiver.
pub fn to_json(msg: &ServerMessage) -> Arc<str> {
    serde_json::to_string(msg).expect("wire types always serialise").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64) -> Record {
        Record { id, ..Record::test() }
    }

    #[test]
    fn retention_bounds_memory_but_totals_count_everything() {
        let hub = Hub::new("test", 3);
        hub.publish(&(1..=5).map(rec).collect::<Vec<_>>());
        assert_eq!(hub.total(), 5);
        let all = Filter::default();
        assert_eq!(hub.recent(10, &all).iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(hub.recent(1, &all)[0].id, 5);
        assert_eq!(hub.map(&all).edges[0].requests, 3);
        let none = Filter::parse("status:5xx").unwrap();
        assert!(hub.recent(10, &none).is_empty());
        assert!(hub.map(&none).edges.is_empty());
    }

    #[test]
    fn recent_records_are_in_request_time_order() {
        // A probe (a lone observation, id 1) arrives a window after a merged request made later.
        let hub = Hub::new("test", 10);
        let at = |id, ts| Record { id, ts, ..Record::test() };
        hub.publish(&[at(2, 2_000_000), at(1, 1_000_000), at(3, 3_000_000)]);
        let ids: Vec<u64> = hub.recent(10, &Filter::default()).iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(hub.recent(2, &Filter::default()).iter().map(|r| r.id).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn a_subscriber_gets_a_snapshot_then_only_newer_records() {
        let hub = Hub::new("test", 100);
        hub.publish(&[rec(1)]);
        let (snapshot, mut rx) = hub.subscribe(50);
        let ServerMessage::Snapshot { records, map } = snapshot else { panic!("not a snapshot") };
        assert_eq!(records.len(), 1);
        assert_eq!(map.edges.len(), 1);
        hub.publish(&[rec(2)]);
        let next: ServerMessage = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(next, ServerMessage::Records { records: vec![rec(2)] });
    }
}
