//! A saved session: a window frozen with everything needed to show it again exactly — its
//! records (requests and connections), the Services' backends as they were, the packets of its
//! connections where they were retained, and the page's view (filter, window, selection,
//! expanded groups) — and `Frozen`, the same data opened again, answering every windowed query
//! the live store answers, from a store of its own.

use std::collections::BTreeMap;

pub use podtap_shared::SessionMeta;
use podtap_shared::{Filter, Record, ServiceMap};
use serde::{Deserialize, Serialize};

use crate::access::{Sight, view};
use crate::aggregate::balance::Balance;
use crate::packets::{Found, Wanted};
use crate::resolve::{Backend, ClusterState};
use crate::store::{Bucket, Connection, Cursor, Data, Kinds, Lens, Limits, STEP_US, Store, StoreStats, Window};

/// Most records one session keeps; a bigger window is refused with this number in the sentence.
pub const MAX_SESSION_RECORDS: usize = 250_000;

/// The heavy part, read only when the session is opened.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Payload {
    pub records: Vec<Record>,
    pub backends: BTreeMap<String, Vec<Backend>>,
    /// The connections' retained packets, and their interfaces.
    #[serde(default)]
    pub packets: Found,
}

/// A session opened: its own store over its records.
pub struct Frozen {
    pub meta: SessionMeta,
    store: Store,
    cluster: ClusterState,
    packets: Found,
}

impl Frozen {
    pub fn open(meta: SessionMeta, payload: Payload) -> Self {
        // Keep all of it: the session is its own retention.
        let limits =
            Limits { retention_us: 100 * 365 * 24 * 3600 * STEP_US, max_records: payload.records.len().max(1) };
        let mut store = Store::new(limits);
        let mut records = payload.records;
        records.sort_by_key(Record::time_order);
        for r in records {
            store.insert(r);
        }
        let cluster = ClusterState::from_backends(payload.backends);
        Self { meta, store, cluster, packets: payload.packets }
    }
}

impl Data for Frozen {
    /// A session's "now" is the end of its window (`-5m` means the last five minutes of it).
    fn now_us(&self) -> u64 {
        self.meta.to.saturating_sub(1)
    }
    fn store_stats(&self) -> StoreStats {
        self.store.stats()
    }
    fn total(&self, sight: &Sight) -> u64 {
        match sight {
            Sight::All => self.meta.records,
            sight => self.store.count(Window::ALL, Lens::new(&Filter::default(), sight)),
        }
    }
    fn records(&self, w: Window, lens: Lens, k: Kinds, after: Option<Cursor>, limit: usize) -> (Vec<Record>, bool) {
        self.store.records(w, lens, k, after, limit)
    }
    fn record(&self, id: u64, sight: &Sight) -> Option<Record> {
        view(self.store.record(id)?, sight)
    }
    fn connection(&self, conn: u64, sight: &Sight) -> Option<Connection> {
        self.store.connection(conn, sight)
    }
    fn map(&self, lens: Lens, w: Window) -> ServiceMap {
        self.store.map(w, lens)
    }
    fn timeline(&self, w: Window, step_us: u64, lens: Lens) -> Vec<Bucket> {
        self.store.timeline(w, step_us, lens)
    }
    fn balance(&self, service: &str, w: Window, sight: &Sight) -> Option<Balance> {
        self.store.balance(w, service, &self.cluster, sight)
    }
    fn balances(&self, w: Window, sight: &Sight) -> Vec<Balance> {
        self.store.balances(w, &self.cluster, sight)
    }
    fn packets(&self, wanted: &[Wanted]) -> Option<Found> {
        let frames = crate::packets::select(self.packets.frames.iter(), wanted);
        Some(Found { frames, interfaces: self.packets.interfaces.clone(), aged_out: self.meta.packets_aged_out })
    }
}
