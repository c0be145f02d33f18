//! One rollup step of the store: its records in time order (each with the map edges it counts
//! on), and what they add up to — edge stats, Service balance, request, error and connection
//! counts — kept as they arrive.

use podtap_shared::{EdgePath, EdgeStats, Record};
use rustc_hash::FxHashMap;

use crate::aggregate::balance::BalanceBuilder;

#[derive(Default)]
pub(super) struct Step {
    /// In `Record::time_order`.
    pub records: Vec<(Record, EdgePath)>,
    /// Whether records were evicted by count (the rollups stay).
    pub evicted: bool,
    pub edges: FxHashMap<usize, EdgeStats>,
    pub balance: BalanceBuilder,
    pub requests: u64,
    pub errors: u64,
    /// `tcp` records (connections opened in the step).
    pub connections: u64,
}

impl Step {
    pub fn insert(&mut self, r: Record, path: EdgePath) {
        for e in path.edges() {
            self.edges.entry(e).or_default().add(&r);
        }
        self.balance.add(&r);
        match r.is_request() {
            true => {
                self.requests += 1;
                self.errors += u64::from(r.is_error());
            }
            false => self.connections += 1,
        }
        // Records come nearly in order: the place is at or near the end.
        let key = r.time_order();
        let at = self.records.iter().rposition(|(o, _)| o.time_order() <= key).map_or(0, |i| i + 1);
        self.records.insert(at, (r, path));
    }

    /// Takes the oldest `n` records out, keeping the rollups.
    pub fn drop_oldest(&mut self, n: usize) -> Step {
        self.evicted = true;
        let n = n.min(self.records.len());
        Step { records: self.records.drain(..n).collect(), ..Step::default() }
    }

    /// Nothing in it at all (a step between two that hold traffic).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.requests == 0 && self.connections == 0
    }

    pub fn rollup_bytes(&self) -> usize {
        let edges: usize = self.edges.values().map(|e| e.heap_bytes() + 64).sum();
        edges + self.balance.heap_bytes()
    }
}
