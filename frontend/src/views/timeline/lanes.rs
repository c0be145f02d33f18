//! Connection swimlanes as data: one lane per TCP connection (or UDP flow), from its open to its
//! close, grouped under client → serving pod; each request a bar from its first byte to its end,
//! HTTP/2 streams that overlap in time on parallel rows of their lane. Built incrementally as
//! records arrive (`add`), so a live view never regroups everything for one record; pure, so it is
//! tested without a browser.

use std::collections::BTreeMap;

use podtap_shared::{Detail, Record};
use rustc_hash::FxHashMap;

/// Parallel rows a lane grows to for overlapping streams; more overlap stacks on the last.
pub const MAX_ROWS: u8 = 4;

/// How a request ended, for its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// 4xx, NXDOMAIN, a gRPC status other than OK that a server chose.
    Refused,
    /// 5xx, SERVFAIL, a failed handshake.
    Failed,
    /// Nothing came back.
    NoAnswer,
}

impl Outcome {
    pub fn of(r: &Record) -> Outcome {
        match &r.detail {
            Detail::Http(h) => match h.status {
                None => Outcome::NoAnswer,
                Some(s) if s >= 500 => Outcome::Failed,
                Some(s) if s >= 400 => Outcome::Refused,
                Some(_) => Outcome::Ok,
            },
            Detail::Grpc(g) => match g.grpc_status {
                None => Outcome::NoAnswer,
                Some(0) => Outcome::Ok,
                Some(_) => Outcome::Failed,
            },
            Detail::Dns(d) => match d.rcode.as_deref() {
                None => Outcome::NoAnswer,
                Some("NOERROR") => Outcome::Ok,
                Some("NXDOMAIN") => Outcome::Refused,
                Some(_) => Outcome::Failed,
            },
            Detail::Tls(t) if t.version.is_some() => Outcome::Ok,
            Detail::Tls(_) => Outcome::Failed,
            Detail::Tcp(_) => Outcome::Ok,
            Detail::Postgres(q) if r.latency_us.is_none() && q.operation != "CANCEL" => Outcome::NoAnswer,
            Detail::Postgres(q) if q.error.is_some() => Outcome::Failed,
            Detail::Postgres(_) => Outcome::Ok,
            Detail::Mysql(q) if q.error.is_some() => Outcome::Failed,
            Detail::Mysql(_) if r.is_error() => Outcome::NoAnswer,
            Detail::Mysql(_) => Outcome::Ok,
            Detail::Websocket(_) if r.is_error() => Outcome::Failed,
            Detail::Websocket(_) => Outcome::Ok,
            Detail::Redis(x) if x.error.is_some() => Outcome::Failed,
            Detail::Redis(x) if r.latency_us.is_none() && x.reply.as_deref() != Some("none") => Outcome::NoAnswer,
            Detail::Redis(_) => Outcome::Ok,
            Detail::Kafka(k) if k.error.is_some() => Outcome::Failed,
            Detail::Kafka(_) if r.is_error() => Outcome::NoAnswer,
            Detail::Kafka(_) => Outcome::Ok,
        }
    }

    pub fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::NoAnswer => "none",
        }
    }
}

/// One request on a lane.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub id: u64,
    pub start: u64,
    pub end: u64,
    pub outcome: Outcome,
    /// The parallel row it sits on (0 unless streams overlapped).
    pub row: u8,
}

/// One connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    pub conn: u64,
    /// Map ids of the client and of who served it.
    pub src: String,
    pub dst: String,
    pub src_label: String,
    pub dst_label: String,
    /// The client's socket, `ip:port`.
    pub client: String,
    /// Open and close: the connection record's when it came, else its requests' span.
    pub start: u64,
    pub end: u64,
    /// Whether `start`/`end` are the connection's own (its `tcp` record came).
    pub known: bool,
    /// How it ended (`fin`, `rst`, `idle`, `open`), once known.
    pub close: Option<String>,
    /// Every request on it was a kubelet probe (and there was at least one).
    pub probe: bool,
    pub protocol: Option<String>,
    /// In start order.
    pub bars: Vec<Bar>,
    /// Ends of the parallel rows so far, for placing the next bar.
    row_ends: Vec<u64>,
    /// The longest bar's duration.
    longest: u64,
    /// Its group's index in `LaneSet::groups`.
    group: usize,
}

impl Lane {
    pub fn rows(&self) -> u8 {
        self.row_ends.len().max(1) as u8
    }

    fn new(r: &Record) -> Self {
        Lane {
            conn: r.conn,
            src: r.src.map_id(),
            dst: r.dst.map_id(),
            src_label: r.src.label(),
            dst_label: r.dst.label(),
            client: format!("{}:{}", r.src.ip, r.src.port),
            start: r.ts,
            end: r.end(),
            known: false,
            close: None,
            probe: r.probe,
            protocol: None,
            bars: Vec::new(),
            row_ends: Vec::new(),
            longest: 0,
            group: 0,
        }
    }

    fn add(&mut self, r: &Record) {
        if let Some(t) = r.tcp() {
            (self.start, self.known) = (r.ts, true);
            self.end = r.end_us.unwrap_or(self.end.max(r.ts));
            self.close = Some(t.close.as_str().to_string());
            self.protocol = t.protocol.clone();
            return;
        }
        if !self.known {
            self.start = self.start.min(r.ts);
        }
        self.end = self.end.max(r.end());
        self.probe = if self.bars.is_empty() { r.probe } else { self.probe && r.probe };
        let (start, end) = (r.ts, r.end());
        let row = match self.row_ends.iter().position(|&e| e <= start) {
            Some(i) => i,
            None if self.row_ends.len() < MAX_ROWS as usize => {
                self.row_ends.push(0);
                self.row_ends.len() - 1
            }
            None => MAX_ROWS as usize - 1,
        };
        self.row_ends[row] = self.row_ends[row].max(end);
        self.longest = self.longest.max(end - start);
        let bar = Bar { id: r.id, start, end, outcome: Outcome::of(r), row: row as u8 };
        let at = self.bars.partition_point(|b| (b.start, b.id) <= (start, r.id));
        self.bars.insert(at, bar);
    }

    /// The bars that overlap `[from, to]`, in start order.
    pub fn bars_in(&self, from: u64, to: u64) -> impl Iterator<Item = &Bar> {
        // Bars are in start order; one that began before `from` may still run into it, so look
        // back by the longest bar on the lane.
        let lo = self.bars.partition_point(|b| b.start < from.saturating_sub(self.longest));
        let hi = self.bars.partition_point(|b| b.start <= to);
        self.bars[lo.min(hi)..hi].iter().filter(move |b| b.end >= from)
    }
}

/// A row of the swimlane view: a group header (`group`: its index in `LaneSet::groups`, with what
/// it shows) or a lane.
#[derive(Clone, Debug, PartialEq)]
pub enum Row {
    Group { group: usize, lanes: usize, requests: usize, collapsed: bool },
    Lane(usize),
}

/// The lanes of one client → server pair.
#[derive(Clone, Debug)]
pub struct Group {
    /// (client map id, server map id).
    pub key: (String, String),
    /// "client → server", as its first lane names them.
    pub label: String,
    /// Its lanes, in start order.
    members: Vec<usize>,
    /// Its lanes and their requests, and how many of each are probes' (kept as lanes change:
    /// the rows are made without visiting every lane).
    tally: Tally,
}

/// Lanes and requests of a group, all and probe-only.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Tally {
    lanes: usize,
    requests: usize,
    probe_lanes: usize,
    probe_requests: usize,
}

impl Tally {
    fn add(&mut self, lane: &Lane) {
        self.lanes += 1;
        self.requests += lane.bars.len();
        if lane.probe {
            self.probe_lanes += 1;
            self.probe_requests += lane.bars.len();
        }
    }

    fn remove(&mut self, lane: &Lane) {
        self.lanes -= 1;
        self.requests -= lane.bars.len();
        if lane.probe {
            self.probe_lanes -= 1;
            self.probe_requests -= lane.bars.len();
        }
    }

    /// (lanes, requests, all of them probes') shown.
    fn shown(&self, hide_probes: bool) -> (usize, usize, bool) {
        if hide_probes {
            (self.lanes - self.probe_lanes, self.requests - self.probe_requests, false)
        } else {
            (self.lanes, self.requests, self.probe_lanes == self.lanes)
        }
    }
}

/// Every lane, grouped by (client, server).
#[derive(Clone, Debug, Default)]
pub struct LaneSet {
    pub lanes: Vec<Lane>,
    /// Each lane's parallel rows (`Lane::rows`), side by side: placing the rows reads only these.
    pub lane_rows: Vec<u8>,
    by_conn: FxHashMap<u64, usize>,
    /// In the order they were made (a lane's `group` and a row's point into it).
    pub groups: Vec<Group>,
    /// The groups in the order the rows show them: pods' own clients first, then unresolved and
    /// outside ones, the nodes' (probes) last; by key within each. Kept sorted as groups come, so
    /// the rows are never sorted again (a capture's 40,000 pairs are 40,000 groups, and sorting
    /// and labelling them four times a second was the page's costliest work).
    order: BTreeMap<(u8, String, String), usize>,
    /// Bumped when lanes or groups are added (the row list must be rebuilt).
    pub shape: u64,
    /// Bumped on every change (a redraw is due).
    pub version: u64,
}

/// Where a client's groups go among the rows.
fn rank(id: &str) -> u8 {
    match id.split(':').next() {
        Some("pod") => 0,
        Some("ip") => 1,
        Some("external") => 2,
        Some("service") => 3,
        _ => 4,
    }
}

impl LaneSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut set = Self::new();
        records.into_iter().for_each(|r| set.add(r));
        set
    }

    pub fn add(&mut self, r: &Record) {
        self.version += 1;
        match self.by_conn.get(&r.conn) {
            Some(&i) => {
                let before = self.lanes[i].start;
                let g = self.lanes[i].group;
                self.groups[g].tally.remove(&self.lanes[i]);
                self.lanes[i].add(r);
                self.groups[g].tally.add(&self.lanes[i]);
                self.lane_rows[i] = self.lanes[i].rows();
                if self.lanes[i].start != before {
                    self.shape += 1;
                    let lanes = &self.lanes;
                    self.groups[lanes[i].group].members.sort_by_key(|&l| (lanes[l].start, lanes[l].conn));
                }
            }
            None => {
                let mut lane = Lane::new(r);
                lane.add(r);
                let i = self.lanes.len();
                let key = (rank(&lane.src), lane.src.clone(), lane.dst.clone());
                let g = match self.order.get(&key) {
                    Some(&g) => g,
                    None => {
                        let g = self.groups.len();
                        let label = format!("{} → {}", lane.src_label, lane.dst_label);
                        let pair = (key.1.clone(), key.2.clone());
                        self.groups.push(Group { key: pair, label, members: Vec::new(), tally: Tally::default() });
                        self.order.insert(key, g);
                        g
                    }
                };
                lane.group = g;
                let lanes = &self.lanes;
                let members = &mut self.groups[g].members;
                let at = members.partition_point(|&l| (lanes[l].start, lanes[l].conn) <= (lane.start, lane.conn));
                members.insert(at, i);
                self.groups[g].tally.add(&lane);
                self.lane_rows.push(lane.rows());
                self.lanes.push(lane);
                self.by_conn.insert(r.conn, i);
                self.shape += 1;
            }
        }
    }

    /// Takes `fresh`'s lanes, with versions that keep counting up (so every view redraws).
    pub fn replace_with(&mut self, fresh: LaneSet) {
        let (version, shape) = (self.version + fresh.version + 1, self.shape + fresh.shape + 1);
        *self = LaneSet { version, shape, ..fresh };
    }

    /// Lets go of the lanes that ended before `t` (the oldest record the page still holds), and
    /// of groups left empty; the rest keep their order. Live, every 30 s: rebuilding the set
    /// from the page's 50,000 records instead was a task of 200–400 ms.
    pub fn retain_since(&mut self, t: u64) {
        let old = std::mem::take(&mut self.lanes);
        let mut moved = vec![usize::MAX; old.len()];
        for (i, lane) in old.into_iter().enumerate() {
            if lane.end >= t {
                moved[i] = self.lanes.len();
                self.lanes.push(lane);
            }
        }
        let mut regrouped = vec![usize::MAX; self.groups.len()];
        let mut groups = Vec::new();
        for (g, mut group) in std::mem::take(&mut self.groups).into_iter().enumerate() {
            group.members = group.members.iter().map(|&l| moved[l]).filter(|&l| l != usize::MAX).collect();
            if group.members.is_empty() {
                continue;
            }
            group.tally = Tally::default();
            for &l in &group.members {
                group.tally.add(&self.lanes[l]);
                self.lanes[l].group = groups.len();
            }
            regrouped[g] = groups.len();
            groups.push(group);
        }
        self.groups = groups;
        self.order.retain(|_, g| {
            *g = regrouped[*g];
            *g != usize::MAX
        });
        self.lane_rows = self.lanes.iter().map(Lane::rows).collect();
        self.by_conn = self.lanes.iter().enumerate().map(|(i, l)| (l.conn, i)).collect();
        self.version += 1;
        self.shape += 1;
    }

    pub fn lane(&self, conn: u64) -> Option<&Lane> {
        self.by_conn.get(&conn).map(|&i| &self.lanes[i])
    }

    /// The rows to draw, top to bottom: each group's header, then (unless collapsed) its lanes;
    /// probe-only lanes left out when `hide_probes`, and put in groups of their own after the
    /// others otherwise (they are dimmed). Nothing is sorted, cloned or formatted: a row points
    /// into the set, and a lane is visited only to leave a probe's out.
    pub fn rows(&self, collapsed: &std::collections::BTreeSet<(String, String)>, hide_probes: bool) -> Vec<Row> {
        let mut rows = Vec::with_capacity(self.lanes.len() + self.groups.len());
        let mut probe_rows = Vec::new();
        for &g in self.order.values() {
            let group = &self.groups[g];
            let (lanes, requests, all_probes) = group.tally.shown(hide_probes);
            if lanes == 0 {
                continue;
            }
            let is_collapsed = !collapsed.is_empty() && collapsed.contains(&group.key);
            let target = if all_probes { &mut probe_rows } else { &mut rows };
            target.push(Row::Group { group: g, lanes, requests, collapsed: is_collapsed });
            if is_collapsed {
                continue;
            }
            if hide_probes && group.tally.probe_lanes > 0 {
                target.extend(group.members.iter().copied().filter(|&l| !self.lanes[l].probe).map(Row::Lane));
            } else {
                target.extend(group.members.iter().copied().map(Row::Lane));
            }
        }
        rows.extend(probe_rows);
        rows
    }

    /// The earliest start and latest end of all lanes.
    pub fn span(&self) -> Option<(u64, u64)> {
        let start = self.lanes.iter().map(|l| l.start).min()?;
        let end = self.lanes.iter().map(|l| l.end).max()?;
        Some((start, end))
    }
}

#[cfg(test)]
mod tests;
