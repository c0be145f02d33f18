//! The windowed queries of the store: the map (as mergeable numbers too), the balance, the
//! timeline, a page of records and a count, each of what a `Lens` shows — from the rollups the
//! window covers whole and the records of the steps it cuts when the lens sees every record whole
//! and unfiltered, else folded from the records as the viewer sees them.

use podtap_shared::{EdgeStats, Filter, MapBuilder, MapStats, Record, ServiceMap};

use super::{Bucket, Cursor, Kinds, Lens, NO_FILTER, Piece, STEP_US, Step, Store, Window};
use crate::access::Sight;
use crate::aggregate::balance::{Balance, BalanceBuilder};
use crate::resolve::ClusterState;

impl Store {
    /// The Service Map of the window; with a filter, of the matching records in it; for a viewer
    /// of some namespaces, of the records as they see them.
    pub fn map(&self, w: Window, lens: Lens) -> ServiceMap {
        if !lens.sees_all() {
            return self.seen_map(w, lens).build();
        }
        let acc = self.edge_stats(w, lens.filter);
        self.names.build_with(|i| acc[i].as_ref())
    }

    /// The same, as mergeable numbers (a live view adds new records to them).
    pub fn map_stats(&self, w: Window, lens: Lens) -> MapStats {
        if !lens.sees_all() {
            return self.seen_map(w, lens).take_stats();
        }
        let mut acc = self.edge_stats(w, lens.filter);
        self.names.stats_with(|i| acc[i].take())
    }

    /// The map folded from the records a viewer of some namespaces sees (their edges differ from
    /// the stored ones: a hidden peer is its workload's box).
    fn seen_map(&self, w: Window, lens: Lens) -> MapBuilder {
        let mut b = MapBuilder::new();
        for (_, step, _) in self.steps_in(w) {
            for (r, _) in step.records.iter().filter(|(r, _)| w.contains(r.ts)) {
                if let Some(seen) = lens.show(r) {
                    b.add(&seen);
                }
            }
        }
        b
    }

    /// Stats by edge number over the window.
    fn edge_stats(&self, w: Window, filter: &Filter) -> Vec<Option<EdgeStats>> {
        // Edge numbers are dense: a vector, not a hash map, holds the sums.
        let mut acc: Vec<Option<EdgeStats>> = vec![None; self.names.edge_count()];
        let fold = |acc: &mut Vec<Option<EdgeStats>>, step: &Step| {
            for (r, path) in step.records.iter().filter(|(r, _)| w.contains(r.ts) && filter.matches(r)) {
                for e in path.edges() {
                    acc[e].get_or_insert_with(EdgeStats::default).add(r);
                }
            }
        };
        if !filter.is_empty() {
            // Rollups count everything; a filter needs the records.
            self.steps_in(w).for_each(|(_, step, _)| fold(&mut acc, step));
        } else {
            for piece in self.pieces(w) {
                match piece {
                    Piece::Rollup(r) => {
                        for (e, s) in &r.edges {
                            match &mut acc[*e] {
                                Some(sum) => sum.merge(s),
                                slot => *slot = Some(s.clone()),
                            }
                        }
                    }
                    Piece::Cut(step) => fold(&mut acc, step),
                }
            }
        }
        acc
    }

    /// Replica balance of Service `ns/name` over the window (unfiltered: balance is per Service).
    /// A viewer sees the balance of their namespaces' Services only, from the records they see.
    pub fn balance(&self, w: Window, service: &str, cluster: &ClusterState, sight: &Sight) -> Option<Balance> {
        if !sight.owns(service.split_once('/').map(|(ns, _)| ns)) {
            return None;
        }
        self.balance_builder(w, Some(service), sight).balance(service, cluster)
    }

    /// Every Service's balance over the window (a viewer's: their namespaces' Services).
    pub fn balances(&self, w: Window, cluster: &ClusterState, sight: &Sight) -> Vec<Balance> {
        let mut all = self.balance_builder(w, None, sight).build(cluster);
        all.retain(|b| sight.owns(b.service.split_once('/').map(|(ns, _)| ns)));
        all
    }

    fn balance_builder(&self, w: Window, service: Option<&str>, sight: &Sight) -> BalanceBuilder {
        let mut b = BalanceBuilder::default();
        if !sight.is_all() {
            let lens = Lens::new(&NO_FILTER, sight);
            for (_, step, _) in self.steps_in(w) {
                for (r, _) in step.records.iter().filter(|(r, _)| w.contains(r.ts)) {
                    if let Some(seen) = lens.show(r) {
                        b.add(&seen);
                    }
                }
            }
            return b;
        }
        for piece in self.pieces(w) {
            match (piece, service) {
                (Piece::Rollup(r), Some(s)) => b.merge_one(&r.balance, s),
                (Piece::Rollup(r), None) => b.merge(&r.balance),
                (Piece::Cut(step), _) => {
                    step.records.iter().filter(|(r, _)| w.contains(r.ts)).for_each(|(r, _)| b.add(r))
                }
            }
        }
        b
    }

    /// Requests, errors and new connections per `step_us` over the window, every step listed.
    pub fn timeline(&self, w: Window, step_us: u64, lens: Lens) -> Vec<Bucket> {
        let step_us = step_us.max(1);
        let start = w.from - w.from % step_us;
        let n = w.to.saturating_sub(start).div_ceil(step_us) as usize;
        let mut buckets: Vec<Bucket> =
            (0..n as u64).map(|i| Bucket { ts: start + i * step_us, ..Bucket::default() }).collect();
        let aligned = step_us.is_multiple_of(STEP_US);
        for (ts, step, whole) in self.steps_in(w) {
            if whole && aligned && lens.is_whole() {
                let b = &mut buckets[((ts.max(start) - start) / step_us) as usize];
                b.requests += step.rollup.requests;
                b.errors += step.rollup.errors;
                b.connections += step.rollup.connections;
            } else {
                for (r, _) in step.records.iter().filter(|(r, _)| w.contains(r.ts) && lens.show(r).is_some()) {
                    let b = &mut buckets[((r.ts - start) / step_us) as usize];
                    if r.is_request() {
                        b.requests += 1;
                        b.errors += u64::from(r.is_error());
                    } else {
                        b.connections += 1;
                    }
                }
            }
        }
        buckets
    }

    /// Up to `limit` matching records of the window in time order: after `after` when given,
    /// else the newest ones. Returns them and whether more follow the page.
    pub fn records(
        &self,
        w: Window,
        lens: Lens,
        kinds: Kinds,
        after: Option<Cursor>,
        limit: usize,
    ) -> (Vec<Record>, bool) {
        fn admit<'r>(
            r: &'r Record,
            w: Window,
            lens: Lens,
            kinds: Kinds,
            after: Option<Cursor>,
        ) -> Option<std::borrow::Cow<'r, Record>> {
            let wanted = w.contains(r.ts) && kinds.admits(r) && after.is_none_or(|c| (r.ts, r.id) > (c.ts, c.id));
            if wanted { lens.show(r) } else { None }
        }
        let mut page = Vec::new();
        let mut more = false;
        match after {
            Some(_) => {
                'steps: for (_, step, _) in self.steps_in(w) {
                    for r in step.records.iter().filter_map(|(r, _)| admit(r, w, lens, kinds, after)) {
                        if page.len() == limit {
                            more = true;
                            break 'steps;
                        }
                        page.push(r.into_owned());
                    }
                }
            }
            None => {
                'back: for (_, step, _) in self.steps_in(w).rev() {
                    for r in step.records.iter().rev().filter_map(|(r, _)| admit(r, w, lens, kinds, after)) {
                        if page.len() == limit {
                            more = true;
                            break 'back;
                        }
                        page.push(r.into_owned());
                    }
                }
                page.reverse();
            }
        }
        (page, more)
    }

    /// How many records of the window the lens shows.
    pub fn count(&self, w: Window, lens: Lens) -> u64 {
        let steps = self.steps_in(w);
        steps
            .map(|(_, step, _)| {
                step.records.iter().filter(|(r, _)| w.contains(r.ts) && lens.show(r).is_some()).count() as u64
            })
            .sum()
    }
}
