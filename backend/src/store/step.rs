//! One rollup step of the store (its records in time order, each with the map edges it counts
//! on), and `Rollup`: what records add up to — edge stats, Service balance, request, error and
//! connection counts — kept as they arrive and mergeable, so blocks of 10 and 60 steps are merges
//! of their steps.

use std::sync::Arc;

use podtap_shared::{EdgePath, EdgeStats, Record};
use rustc_hash::FxHashMap;

use crate::aggregate::balance::BalanceBuilder;

/// The numbers of a step or of a block of steps.
#[derive(Clone, Default)]
pub(super) struct Rollup {
    pub edges: FxHashMap<usize, EdgeStats>,
    pub balance: BalanceBuilder,
    pub requests: u64,
    pub errors: u64,
    /// `tcp` records (connections opened in it).
    pub connections: u64,
}

impl Rollup {
    pub fn add(&mut self, r: &Record, path: &EdgePath) {
        for e in path.edges() {
            self.edges.entry(e).or_default().add(r);
        }
        self.balance.add(r);
        match r.is_request() {
            true => {
                self.requests += 1;
                self.errors += u64::from(r.is_error());
            }
            false => self.connections += 1,
        }
    }

    pub fn merge(&mut self, o: &Rollup) {
        for (e, s) in &o.edges {
            self.edges.entry(*e).or_default().merge(s);
        }
        self.balance.merge(&o.balance);
        self.requests += o.requests;
        self.errors += o.errors;
        self.connections += o.connections;
    }

    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.connections == 0
    }

    pub fn heap_bytes(&self) -> usize {
        let edges: usize = self.edges.values().map(|e| e.heap_bytes() + 64).sum();
        edges + self.balance.heap_bytes()
    }
}

#[derive(Default)]
pub(super) struct Step {
    /// In `Record::time_order`.
    pub records: Vec<(Arc<Record>, EdgePath)>,
    /// Whether records were evicted by count (the rollup stays).
    pub evicted: bool,
    pub rollup: Rollup,
}

impl Step {
    pub fn insert(&mut self, r: Arc<Record>, path: EdgePath) {
        self.rollup.add(&r, &path);
        // Records come nearly in order: the place is at or near the end.
        let key = r.time_order();
        let at = self.records.iter().rposition(|(o, _)| o.time_order() <= key).map_or(0, |i| i + 1);
        self.records.insert(at, (r, path));
    }

    /// Takes the oldest `n` records out, keeping the rollup.
    pub fn drop_oldest(&mut self, n: usize) -> std::vec::Drain<'_, (Arc<Record>, EdgePath)> {
        self.evicted = true;
        let n = n.min(self.records.len());
        self.records.drain(..n)
    }

    /// Nothing in it at all (a step between two that hold traffic).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.rollup.is_empty()
    }
}
