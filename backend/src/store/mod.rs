//! Stage 7½, store: records and connections in time order, bounded by age and by count, with
//! rollups per time step (one second) for every map edge and every Service's endpoints. The map,
//! the balance and the timeline of any window come from the rollups of the steps the window
//! covers whole, plus the retained records of the (at most two) steps it cuts — never a scan of
//! everything. Rollups are kept for the whole retention even after records were evicted by count;
//! a window then snaps to whole steps where its cut steps hold no records.
//!
//! A viewer who sees some namespaces only (`Lens`, `access::rule`) gets the same queries folded
//! from the records as they see them (`query.rs`): rollups count what only the admin may.
//!
//! A record belongs to the step its request started in (`ts`): "requests in a window" are those
//! that started in it, exactly as a fold over the records would count them (`tests.rs` checks that
//! property on random records, windows and viewers).

use std::collections::VecDeque;
use std::sync::Arc;

use podtap_shared::{Filter, MapBuilder, Record};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::access::Sight;

mod data;
mod lens;
mod query;
mod step;
#[cfg(test)]
mod tests;

pub use data::{Data, RemotePackets, find_packets};
pub use lens::Lens;
use step::{Rollup, Step};

/// The filter that admits everything.
static NO_FILTER: std::sync::LazyLock<Filter> = std::sync::LazyLock::new(Filter::default);

/// One rollup step.
pub const STEP_US: u64 = 1_000_000;
/// Blocks of steps rolled up once more, largest first: a 15-minute window is three 5-minute
/// blocks, or at its cut ends a few minutes, 10-second blocks and steps — never 900 steps.
const TIERS: [u64; 3] = [300, 60, 10];
/// A block is built once its last step is this far behind the newest record (records that come
/// later — a connection's, stamped with its opening — are added to it as they come).
const SETTLE_US: u64 = 3 * STEP_US;

/// A piece of a window: a rollup it covers whole, or a step it cuts (its records are folded).
enum Piece<'a> {
    Rollup(&'a Rollup),
    Cut(&'a Step),
}

/// How much the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Steps older than this (behind the newest record) are dropped, rollups and all.
    pub retention_us: u64,
    /// Records beyond this are evicted oldest first; their steps' rollups stay.
    pub max_records: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { retention_us: 15 * 60 * STEP_US, max_records: 1_000_000 }
    }
}

/// A time window, `from ≤ ts < to`, in microseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: u64,
    pub to: u64,
}

impl Window {
    pub const ALL: Window = Window { from: 0, to: u64::MAX };

    pub fn contains(&self, ts: u64) -> bool {
        self.from <= ts && ts < self.to
    }
}

/// Where a page of records ends: the (ts, id) of its last record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub ts: u64,
    pub id: u64,
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Cursor> {
        let (ts, id) = text.split_once('.')?;
        Some(Cursor { ts: ts.parse().ok()?, id: id.parse().ok()? })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.ts, self.id)
    }
}

/// Which records a listing wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kinds {
    Requests,
    Connections,
    All,
}

impl Kinds {
    pub fn admits(self, r: &Record) -> bool {
        match self {
            Kinds::Requests => r.is_request(),
            Kinds::Connections => !r.is_request(),
            Kinds::All => true,
        }
    }
}

/// Requests and errors in one step of `/api/v1/timeline`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// The step's start, µs since the epoch.
    pub ts: u64,
    pub requests: u64,
    pub errors: u64,
    /// Connections opened in the step.
    pub connections: u64,
}

/// A connection and what was read on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub conn: u64,
    /// Its `kind: "tcp"` record, once it closed (or the capture ended); `None` while still open.
    pub connection: Option<Record>,
    /// Its requests, in time order.
    pub requests: Vec<Record>,
}

/// What the store holds, for `/healthz` and the memory figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    pub records: usize,
    pub steps: usize,
    /// Oldest and newest retained record time.
    pub oldest_us: Option<u64>,
    pub newest_us: Option<u64>,
    pub evicted_by_age: u64,
    pub evicted_by_count: u64,
    /// Records older than the retention when they arrived.
    pub too_old: u64,
}

/// The store. Not thread-safe by itself: the hub holds it under its lock.
pub struct Store {
    limits: Limits,
    /// Consecutive steps, oldest first; `steps[i]` starts at `(first + i) * STEP_US`.
    steps: VecDeque<Step>,
    first: u64,
    /// Names nodes and edges; its edge numbers key every step's rollups.
    names: MapBuilder,
    /// Record id → its start time, to find it in its step.
    by_id: FxHashMap<u64, u64>,
    /// Connection id → (ts, id) of its records, oldest first.
    by_conn: FxHashMap<u64, VecDeque<(u64, u64)>>,
    /// Per tier (`TIERS`): block index → the merge of its steps' rollups; and the next block to
    /// build.
    blocks: [FxHashMap<u64, Rollup>; 3],
    built: [u64; 3],
    records: usize,
    newest_us: u64,
    stats: StoreStats,
}

impl Store {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            steps: VecDeque::new(),
            first: 0,
            names: MapBuilder::new(),
            by_id: FxHashMap::default(),
            by_conn: FxHashMap::default(),
            blocks: Default::default(),
            built: [0; 3],
            records: 0,
            newest_us: 0,
            stats: StoreStats::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The newest record's start time (0 when empty): "now" on a capture's own time axis.
    pub fn newest_us(&self) -> u64 {
        self.newest_us
    }

    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Adds one record to its step's records and rollups, then evicts what the limits say.
    pub fn insert(&mut self, r: impl Into<Arc<Record>>) {
        let r = r.into();
        let index = r.ts / STEP_US;
        if r.ts.saturating_add(self.limits.retention_us) < self.newest_us {
            self.stats.too_old += 1;
            return;
        }
        // A record from far beyond the newest (a capture's clock jumped): what the store holds is
        // older than the retention from there, so it goes at once instead of a gap of steps.
        let end = self.first + self.steps.len() as u64;
        if !self.steps.is_empty() && index > end + self.limits.retention_us / STEP_US {
            self.newest_us = r.ts;
            self.evict();
        }
        if self.steps.is_empty() {
            self.first = index;
            self.built = TIERS.map(|span| index.div_ceil(span));
        }
        while index < self.first {
            self.steps.push_front(Step::default());
            self.first -= 1;
        }
        while index >= self.first + self.steps.len() as u64 {
            // As busy as the last second, most likely: room for that many at once.
            let hint = self.steps.back().map_or(0, |s| s.records.len());
            self.steps.push_back(Step { records: Vec::with_capacity(hint), ..Step::default() });
        }
        let path = self.names.path(&r);
        self.by_id.insert(r.id, r.ts);
        let at = self.by_conn.entry(r.conn).or_default();
        let key = (r.ts, r.id);
        let pos = at.partition_point(|k| *k <= key);
        at.insert(pos, key);
        self.newest_us = self.newest_us.max(r.ts);
        for (t, span) in TIERS.iter().enumerate() {
            if let Some(block) = self.blocks[t].get_mut(&(index / span)) {
                block.add(&r, &path);
            }
        }
        self.steps[(index - self.first) as usize].insert(r, path);
        self.records += 1;
        self.evict();
        self.build_blocks();
    }

    /// Builds the blocks whose steps have all settled.
    fn build_blocks(&mut self) {
        let settled = self.newest_us.saturating_sub(SETTLE_US) / STEP_US;
        let end = self.first + self.steps.len() as u64;
        for (t, span) in TIERS.iter().enumerate() {
            while (self.built[t] + 1) * span <= settled.min(end) {
                let b = self.built[t];
                self.built[t] += 1;
                if b * span < self.first {
                    continue; // partly evicted already
                }
                let mut block = Rollup::default();
                for i in b * span..(b + 1) * span {
                    block.merge(&self.steps[(i - self.first) as usize].rollup);
                }
                if !block.is_empty() {
                    self.blocks[t].insert(b, block);
                }
            }
        }
    }

    fn evict(&mut self) {
        let horizon = self.newest_us.saturating_sub(self.limits.retention_us) / STEP_US;
        while self.first < horizon && !self.steps.is_empty() {
            let step = self.steps.pop_front().expect("not empty");
            self.first += 1;
            self.stats.evicted_by_age += step.records.len() as u64;
            self.forget(&step);
        }
        // Over the bound, go down to 1/64 below it: the oldest records leave in chunks, not one
        // record (and one shift of a busy step) per insert.
        let floor = self.limits.max_records - self.limits.max_records / 64;
        let mut over = self.records > self.limits.max_records;
        while over && self.records > floor {
            let Some(i) = self.steps.iter().position(|s| !s.records.is_empty()) else { break };
            // Drained and forgotten one by one: a chunk collected first was a fresh megabyte
            // for the allocator, and the kernel's page zeroing, every time.
            let Store { steps, by_id, by_conn, .. } = self;
            let gone = steps[i].drop_oldest(self.records - floor);
            let n = gone.len();
            for (r, _) in gone {
                Self::unindex(by_id, by_conn, &r);
            }
            over = n > 0;
            self.records -= n;
            self.stats.evicted_by_count += n as u64;
        }
        while self.steps.front().is_some_and(Step::is_empty) {
            self.steps.pop_front();
            self.first += 1;
        }
        // A block that reaches before the first step holds what is gone.
        let first = self.first;
        for (t, span) in TIERS.iter().enumerate() {
            self.blocks[t].retain(|b, _| b * span >= first);
        }
    }

    fn forget(&mut self, step: &Step) {
        self.records -= step.records.len();
        for (r, _) in &step.records {
            Self::unindex(&mut self.by_id, &mut self.by_conn, r);
        }
    }

    /// Takes one evicted record out of the indexes.
    fn unindex(by_id: &mut FxHashMap<u64, u64>, by_conn: &mut FxHashMap<u64, VecDeque<(u64, u64)>>, r: &Record) {
        by_id.remove(&r.id);
        if let Some(list) = by_conn.get_mut(&r.conn) {
            // Evicted records are their connection's oldest: almost always at the front.
            let key = (r.ts, r.id);
            if list.front() == Some(&key) {
                list.pop_front();
            } else if let Some(i) = list.iter().position(|k| *k == key) {
                list.remove(i);
            }
            if list.is_empty() {
                by_conn.remove(&r.conn);
            }
        }
    }

    /// Steps overlapping `w`: their start, and whether `w` covers them whole.
    fn steps_in(&self, w: Window) -> impl DoubleEndedIterator<Item = (u64, &Step, bool)> {
        let first = self.first;
        let end = first + self.steps.len() as u64;
        let lo = (w.from / STEP_US).max(first);
        let hi = (w.to.saturating_sub(1) / STEP_US + 1).min(end).max(lo);
        let steps = &self.steps;
        (lo..hi).map(move |i| {
            let start = i * STEP_US;
            let step = &steps[(i - first) as usize];
            // A cut step whose records were evicted can only be counted whole.
            let whole = (w.from <= start && start.saturating_add(STEP_US) <= w.to) || step.evicted;
            (start, step, whole)
        })
    }

    /// The window as blocks and steps it covers whole (their rollups) and the steps it cuts.
    fn pieces(&self, w: Window) -> Vec<Piece<'_>> {
        let first = self.first;
        let end = first + self.steps.len() as u64;
        let lo = (w.from / STEP_US).max(first);
        let hi = (w.to.saturating_sub(1) / STEP_US + 1).min(end).max(lo);
        let covers = |a: u64, b: u64| w.from <= a * STEP_US && (b * STEP_US) <= w.to;
        let mut out = Vec::new();
        let mut i = lo;
        'steps: while i < hi {
            for (t, span) in TIERS.iter().enumerate() {
                if i.is_multiple_of(*span)
                    && i + span <= hi
                    && covers(i, i + span)
                    && let Some(block) = self.blocks[t].get(&(i / span))
                {
                    out.push(Piece::Rollup(block));
                    i += span;
                    continue 'steps;
                }
            }
            let step = &self.steps[(i - first) as usize];
            // A cut step whose records were evicted can only be counted whole.
            out.push(if covers(i, i + 1) || step.evicted { Piece::Rollup(&step.rollup) } else { Piece::Cut(step) });
            i += 1;
        }
        out
    }

    /// One record by id.
    pub fn record(&self, id: u64) -> Option<&Record> {
        let ts = *self.by_id.get(&id)?;
        self.find(ts, id)
    }

    fn find(&self, ts: u64, id: u64) -> Option<&Record> {
        let step = self.steps.get(usize::try_from((ts / STEP_US).checked_sub(self.first)?).ok()?)?;
        let i = step.records.binary_search_by_key(&(ts, id), |(r, _)| r.time_order()).ok()?;
        Some(&step.records[i].0)
    }

    /// A connection: its `tcp` record (once closed) and all its retained requests, as `sight`
    /// shows them; `None` when it sees none of them.
    pub fn connection(&self, conn: u64, sight: &Sight) -> Option<Connection> {
        let keys = self.by_conn.get(&conn)?;
        let mut out = Connection { conn, connection: None, requests: Vec::new() };
        let lens = Lens::new(&NO_FILTER, sight);
        for r in keys.iter().filter_map(|&(ts, id)| self.find(ts, id)).filter_map(|r| lens.show(r)) {
            match r.is_request() {
                true => out.requests.push(r.into_owned()),
                false => out.connection = Some(r.into_owned()),
            }
        }
        (out.connection.is_some() || !out.requests.is_empty()).then_some(out)
    }

    /// Oldest and newest retained times, counts and evictions.
    pub fn stats(&self) -> StoreStats {
        let oldest = self.steps.iter().find_map(|s| s.records.first().map(|(r, _)| r.ts));
        StoreStats {
            records: self.records,
            steps: self.steps.len(),
            oldest_us: oldest,
            newest_us: (self.records > 0).then_some(self.newest_us),
            ..self.stats
        }
    }

    /// Approximate heap bytes of the rollups (records not included), for the memory figure.
    pub fn rollup_bytes(&self) -> usize {
        let steps: usize = self.steps.iter().map(|s| s.rollup.heap_bytes()).sum();
        steps + self.blocks.iter().flat_map(|t| t.values()).map(Rollup::heap_bytes).sum::<usize>()
    }
}
