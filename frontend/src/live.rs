//! The live connection: one WebSocket to `/api/v1/stream` (protocol 2; `socket` holds it, in a
//! worker), reconnecting with backoff, feeding reactive state. It subscribes with the page's
//! filter and Service (and again whenever they change), so the server sends only what this page
//! shows. Only this module talks to the socket; views read `Live`'s signals.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use podtap_shared::{
    AgentStatus, Balance, ClientMessage, Clock, MapEdge, MapNode, MissingKind, Record, ServerMessage, ServiceMap,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::socket::{self, Events};

/// Records (requests and connections) kept in the browser for the live timeline and list.
pub const KEEP_RECORDS: usize = 50_000;

/// Connection state, for the status pill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Live,
    /// Closed; retrying in the given seconds.
    Retrying(u32),
}

/// What this page asked the server for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub filter: String,
    pub service: Option<String>,
}

/// A second in which the server sent a sample: `shown` of `matched` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampled {
    pub second: u64,
    pub shown: u64,
    pub matched: u64,
}

/// Reactive state fed by the stream. `Copy`: signals are handles.
#[derive(Clone, Copy)]
pub struct Live {
    pub status: RwSignal<Status>,
    pub source: RwSignal<String>,
    pub clock: RwSignal<Clock>,
    /// In `Record::time_order`, oldest first, at most `KEEP_RECORDS`; requests and connections.
    pub records: RwSignal<VecDeque<Record>>,
    /// How many of `records` are requests (the list says so 4 times a second: counting 50,000
    /// records each time was a frame's work).
    pub requests: StoredValue<usize>,
    /// Bumped when a snapshot replaced every record.
    pub generation: RwSignal<u64>,
    /// Bumped when records arrived (`take_arrived` hands them out once).
    pub arrivals: RwSignal<u64>,
    pub map: RwSignal<ServiceMap>,
    /// The subscribed Service's balance over the retained window.
    pub balance: RwSignal<Option<Balance>>,
    /// Records the server could not send this browser because it fell behind.
    pub skipped: RwSignal<u64>,
    /// The last sampled second.
    pub sampled: RwSignal<Option<Sampled>>,
    /// Messages that could not be read (a newer server, a broken frame).
    pub bad_messages: RwSignal<u64>,
    /// Why the server refused the last subscription.
    pub refused: RwSignal<Option<String>>,
    /// Kubernetes kinds the server could not list, and what each costs.
    pub missing: RwSignal<Vec<MissingKind>>,
    /// The server is still waiting for the API server's first lists (`--api-wait`).
    pub cluster_waiting: RwSignal<bool>,
    /// `podtap hub`: every node's agent; empty for `serve`.
    pub agents: RwSignal<Vec<AgentStatus>>,
    /// The newest record time seen (the capture's "now" when it is replayed on its own axis).
    pub newest_us: RwSignal<u64>,
    /// Whether the first snapshot's records are in (the views that show records mount then).
    pub settled: RwSignal<bool>,
    wanted: RwSignal<Wanted>,
}

/// Edges from which map updates are held back and applied together.
const BIG_MAP: usize = 300;
/// How often held-back map updates are applied (an update of a 4,000-edge map costs the view
/// 3–10 ms: BENCHMARKS.md).
const BIG_MAP_EVERY: Duration = Duration::from_secs(2);
/// How long a snapshot's records wait for a frame that a hidden page never draws.
const HIDDEN_WAIT: Duration = Duration::from_millis(500);

thread_local! {
    static PENDING_MAP: RefCell<(Vec<MapNode>, Vec<MapEdge>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// Records that arrived since the follower last took them.
    static ARRIVED: RefCell<Vec<Record>> = const { RefCell::new(Vec::new()) };
    /// A snapshot's records waiting for its map's first frame, with those that came since.
    static SNAPSHOT_RECORDS: RefCell<Option<Held>> = const { RefCell::new(None) };
    /// Whether the views are on the page: the stream opens before them (with the access check),
    /// and a snapshot that comes first keeps its records until the map has been drawn.
    static MOUNTED: Cell<bool> = const { Cell::new(false) };
    /// Set when the page may not have a stream after all (access refused): no more retries.
    static STOPPED: Cell<bool> = const { Cell::new(false) };
}

/// A snapshot's records not yet taken: still as text (`text`, read once the map is on screen),
/// and those that arrived since.
struct Held {
    text: Option<Box<RawValue>>,
    records: Vec<Record>,
}

/// A snapshot with its records left as text: the map is read (and drawn) first.
#[derive(Deserialize)]
struct LazySnapshot {
    records: Box<RawValue>,
    map: ServiceMap,
    #[serde(default)]
    filter: String,
}

impl Live {
    pub fn new() -> Self {
        Self {
            status: RwSignal::new(Status::Connecting),
            source: RwSignal::new(String::new()),
            clock: RwSignal::new(Clock::Wall),
            records: RwSignal::new(VecDeque::new()),
            requests: StoredValue::new(0),
            generation: RwSignal::new(0),
            arrivals: RwSignal::new(0),
            map: RwSignal::new(ServiceMap::default()),
            balance: RwSignal::new(None),
            skipped: RwSignal::new(0),
            sampled: RwSignal::new(None),
            bad_messages: RwSignal::new(0),
            refused: RwSignal::new(None),
            missing: RwSignal::new(Vec::new()),
            cluster_waiting: RwSignal::new(false),
            agents: RwSignal::new(Vec::new()),
            newest_us: RwSignal::new(0),
            settled: RwSignal::new(false),
            wanted: RwSignal::new(Wanted::default()),
        }
    }

    /// Asks the server for `wanted` (now, and again after every reconnect).
    pub fn subscribe(&self, wanted: Wanted) {
        if self.wanted.get_untracked() == wanted && self.status.get_untracked() == Status::Live {
            return;
        }
        self.wanted.set(wanted);
        self.send_subscription();
    }

    fn send_subscription(&self) {
        let w = self.wanted.get_untracked();
        let msg = ClientMessage::Subscribe { filter: w.filter, service: w.service, max_rate: None };
        let text = serde_json::to_string(&msg).expect("wire types serialise");
        socket::send(&text);
    }

    /// Applies one server message.
    pub fn apply(&self, msg: ServerMessage) {
        match msg {
            ServerMessage::Hello { source, clock, .. } => {
                self.source.set(source);
                self.clock.set(clock);
            }
            ServerMessage::Snapshot { records, map, filter } => {
                self.note_newest(&records);
                self.snapshot(map, &filter, Held { text: None, records });
            }
            ServerMessage::Records { records } => {
                self.note_newest(&records);
                // While a snapshot's records wait, these join them.
                let Some(records) = SNAPSHOT_RECORDS.with(|p| match p.borrow_mut().as_mut() {
                    Some(held) => {
                        held.records.extend(records);
                        None
                    }
                    None => Some(records),
                }) else {
                    return;
                };
                ARRIVED.with(|a| a.borrow_mut().extend(records.iter().cloned()));
                let mut requests = self.requests.get_value();
                self.records.update(|all| *all = in_time_order(std::mem::take(all), records, &mut requests));
                self.requests.set_value(requests);
                self.arrivals.update(|n| *n += 1);
            }
            ServerMessage::Map { map } => self.map.set(map),
            ServerMessage::MapDelta { nodes, edges } => {
                // A big map is updated every two seconds (folding thousands of edges is the
                // page's costliest work after the lanes); a small one at once.
                if self.map.with_untracked(|m| m.edges.len()) < BIG_MAP {
                    self.map.update(|m| apply_delta(m, nodes, edges));
                } else {
                    PENDING_MAP.with(|p| {
                        let mut p = p.borrow_mut();
                        p.0.extend(nodes);
                        p.1.extend(edges);
                    });
                }
            }
            ServerMessage::Balance { balance } => self.balance.set(Some(balance)),
            ServerMessage::Sampled { second, shown, matched } => {
                self.sampled.set(Some(Sampled { second, shown, matched }))
            }
            ServerMessage::Lagged { skipped } => self.skipped.update(|s| *s += skipped),
            ServerMessage::Cluster { missing, ready, .. } => {
                self.missing.set(missing);
                self.cluster_waiting.set(!ready);
            }
            ServerMessage::Agents { agents } => self.agents.set(agents),
            ServerMessage::Error { message } => self.refused.set(Some(message)),
        }
    }

    /// A snapshot's records (and any that came after it), now that its map is on screen.
    fn take_snapshot_records(&self) {
        let Some(held) = SNAPSHOT_RECORDS.with(|p| p.borrow_mut().take()) else { return };
        let mut records = match held.text.map(|t| serde_json::from_str::<Vec<Record>>(t.get())) {
            Some(Ok(first)) => first,
            Some(Err(_)) => {
                self.bad_messages.update(|n| *n += 1);
                Vec::new()
            }
            None => Vec::new(),
        };
        self.note_newest(&records);
        records.extend(held.records);
        let mut requests = 0;
        self.records.set(in_time_order(VecDeque::new(), records, &mut requests));
        self.requests.set_value(requests);
        self.generation.update(|g| *g += 1);
        if !self.settled.get_untracked() {
            self.settled.set(true);
        }
    }

    /// A snapshot: the map at once, its records (`held`) once the map's frame is painted — a
    /// task after the next frame, so the lanes and the list never delay the first map; records
    /// arriving meanwhile join them.
    fn snapshot(&self, map: ServiceMap, filter: &str, held: Held) {
        // One answering an older subscription is on its way out: the next one follows.
        if self.wanted.with_untracked(|w| w.filter != filter) {
            return;
        }
        ARRIVED.with(|a| a.borrow_mut().clear());
        self.map.set(map);
        self.refused.set(None);
        let first = SNAPSHOT_RECORDS.with(|p| p.borrow_mut().replace(held).is_none());
        if first && MOUNTED.get() {
            self.take_records_after_next_frame();
        }
    }

    /// A hidden page draws no frames: the records are taken after `HIDDEN_WAIT` all the same, so
    /// they neither wait for the tab to be shown nor pile up while it is hidden.
    fn take_records_after_next_frame(&self) {
        let live = *self;
        request_animation_frame(move || {
            set_timeout(move || live.take_snapshot_records(), Duration::ZERO);
        });
        set_timeout(move || live.take_snapshot_records(), HIDDEN_WAIT);
    }

    /// The views are mounted: a snapshot that came before them hands over its records after
    /// their first frame (which draws its map).
    pub fn mounted(&self) {
        MOUNTED.set(true);
        if SNAPSHOT_RECORDS.with(|p| p.borrow().is_some()) {
            self.take_records_after_next_frame();
        }
    }

    /// Closes the stream for good (the page may not see the live view).
    pub fn stop(&self) {
        STOPPED.set(true);
        socket::close();
    }

    /// The records that arrived since the last call (for a view that follows incrementally).
    pub fn take_arrived(&self) -> Vec<Record> {
        ARRIVED.with(|a| std::mem::take(&mut *a.borrow_mut()))
    }

    fn note_newest(&self, records: &[Record]) {
        if let Some(max) = records.iter().map(|r| r.ts).max()
            && max > self.newest_us.get_untracked()
        {
            self.newest_us.set(max);
        }
    }

    /// "Now" on this page's time axis: the wall clock, or the newest record of a replayed capture.
    pub fn now_us(&self) -> u64 {
        match self.clock.get_untracked() {
            Clock::Wall => (js_sys::Date::now() * 1000.0) as u64,
            Clock::Capture => self.newest_us.get_untracked(),
        }
    }
}

/// Replaces the edges (and adds the nodes) `mapDelta`s carry, keeping the map sorted: the
/// changes sorted once and merged into the map in one pass, the later of two for one edge winning.
/// (Inserting each into the sorted map moved the map's tail once per change: a 40,000-edge map's
/// two seconds of changes took the page 130 ms — 6% of its time under the capture bench.)
pub fn apply_delta(map: &mut ServiceMap, nodes: Vec<MapNode>, edges: Vec<MapEdge>) {
    merge_sorted(&mut map.nodes, nodes, |a, b| a.id.cmp(&b.id), false);
    merge_sorted(&mut map.edges, edges, |a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)), true);
}

/// Merges `new` into `all` (sorted by `cmp`, no two equal). When `replace`, a change replaces what
/// equals it and the last of several wins (an edge's counts); else only a new one is added, the
/// first of several (a node).
fn merge_sorted<T>(all: &mut Vec<T>, mut new: Vec<T>, cmp: impl Fn(&T, &T) -> Ordering, replace: bool) {
    if new.is_empty() {
        return;
    }
    // Stable: equal ones keep the order they came in; `dedup_by` keeps the first of a run.
    if replace {
        new.reverse();
    }
    new.sort_by(&cmp);
    new.dedup_by(|later, first| cmp(later, first) == Ordering::Equal);
    let old = std::mem::take(all);
    all.reserve(old.len() + new.len());
    let mut old = old.into_iter().peekable();
    for t in new {
        while let Some(o) = old.next_if(|o| cmp(o, &t) == Ordering::Less) {
            all.push(o);
        }
        match old.next_if(|o| cmp(o, &t) == Ordering::Equal) {
            Some(o) => all.push(if replace { t } else { o }),
            None => all.push(t),
        }
    }
    all.extend(old);
}

/// Adds `new` to `all` (already in `Record::time_order`) by request time, keeping the newest
/// `KEEP_RECORDS`: in arrival order a probe would stand a second below newer requests.
fn in_time_order(mut all: VecDeque<Record>, new: Vec<Record>, requests: &mut usize) -> VecDeque<Record> {
    for r in new {
        *requests += usize::from(r.is_request());
        // Almost always at or near the end: the search is short and so is the shift.
        let at = all.partition_point(|o| o.time_order() <= r.time_order());
        all.insert(at, r);
    }
    while all.len() > KEEP_RECORDS {
        if all.pop_front().is_some_and(|r| r.is_request()) {
            *requests -= 1;
        }
    }
    all
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

/// `ws(s)://host/{base}api/v1/stream`, with the page's link (a live link's stream is narrowed by
/// its filter on the server).
fn stream_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    let host = location.host().ok()?;
    Some(format!("{scheme}://{host}{}", crate::page::Page::get().api_url("stream")))
}

/// The page's live stream: opened (and kept open), its held-back map updates applied every few
/// seconds.
pub fn start(live: Live) {
    connect(live, 0);
    apply_held_map(live);
}

/// Applies held-back map updates every few seconds.
fn apply_held_map(live: Live) {
    let _ = set_interval_with_handle(
        move || {
            let (nodes, edges) = PENDING_MAP.with(|p| std::mem::take(&mut *p.borrow_mut()));
            if !nodes.is_empty() || !edges.is_empty() {
                live.map.update(|m| apply_delta(m, nodes, edges));
            }
        },
        BIG_MAP_EVERY,
    );
}

/// Opens the stream and keeps it open: after a close it retries after 1, 2, 4 … 10 seconds.
fn connect(live: Live, attempt: u32) {
    if STOPPED.get() {
        return;
    }
    let Some(url) = stream_url() else { return };
    live.status.set(Status::Connecting);
    let events = Events {
        open: Box::new(move || {
            live.status.set(Status::Live);
            live.send_subscription();
        }),
        message: Box::new(move |text: &str| {
            // The snapshot's map first, its records later (podtap writes the tag first).
            if text.starts_with(r#"{"type":"snapshot","#)
                && let Ok(s) = serde_json::from_str::<LazySnapshot>(text)
            {
                live.snapshot(s.map, &s.filter, Held { text: Some(s.records), records: Vec::new() });
                return;
            }
            match ServerMessage::from_json(text) {
                Ok(msg) => live.apply(msg),
                Err(_) => live.bad_messages.update(|n| *n += 1),
            }
        }),
        close: Box::new(move || {
            let was_live = live.status.get_untracked() == Status::Live;
            retry(live, if was_live { 0 } else { attempt + 1 });
            // A stream the server ended because the page may no longer see (a sign-in ended, a
            // link revoked): the page starts again, and shows why (the sign-in, the refusal).
            leptos::task::spawn_local(async {
                if let Err(r) = crate::api::fetch_access().await
                    && matches!(r.status, 401 | 403 | 410)
                    && let Some(w) = web_sys::window()
                {
                    let _ = w.location().reload();
                }
            });
        }),
    };
    if socket::open(&url, Rc::new(events)).is_err() {
        retry(live, attempt);
    }
}

fn retry(live: Live, attempt: u32) {
    let secs = (1u32 << attempt.min(4)).min(10);
    live.status.set(Status::Retrying(secs));
    set_timeout(move || connect(live, attempt), Duration::from_secs(u64::from(secs)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: u64, ts: u64) -> Record {
        Record { id, ts, ..Record::test() }
    }

    #[test]
    fn deltas_replace_edges_and_add_nodes_in_order_the_last_change_winning() {
        let edge = |s: &str, t: &str, n: u64| -> MapEdge {
            serde_json::from_value(serde_json::json!({"source": s, "target": t, "requests": n, "connections": 1,
                "errors": 0, "probe_requests": 0, "bytes": 0, "p50_ms": null, "p95_ms": null, "p99_ms": null}))
            .unwrap()
        };
        let node = |id: &str, label: &str| -> MapNode {
            serde_json::from_value(serde_json::json!({"id": id, "kind": "pod", "label": label})).unwrap()
        };
        let mut map = ServiceMap {
            nodes: vec![node("a", "a"), node("c", "c")],
            edges: vec![edge("a", "b", 1), edge("a", "c", 1), edge("c", "a", 1)],
        };
        let edges = vec![edge("a", "c", 2), edge("b", "a", 1), edge("a", "c", 3), edge("z", "a", 1), edge("a", "a", 1)];
        apply_delta(&mut map, vec![node("b", "b"), node("a", "new label"), node("b", "b2")], edges);
        let ids: Vec<(&str, &str)> = map.nodes.iter().map(|n| (n.id.as_str(), n.label.as_str())).collect();
        assert_eq!(ids, [("a", "a"), ("b", "b"), ("c", "c")], "a node is added (the first), never replaced");
        let got: Vec<(&str, &str, u64)> =
            map.edges.iter().map(|e| (e.source.as_str(), e.target.as_str(), e.requests)).collect();
        assert_eq!(got, [("a", "a", 1), ("a", "b", 1), ("a", "c", 3), ("b", "a", 1), ("c", "a", 1), ("z", "a", 1)]);
    }

    #[test]
    fn records_are_kept_in_request_time_order_whatever_order_they_arrive_in() {
        // A merged request (id 2) arrives before a probe from a second earlier (id 1).
        let mut requests = 0;
        let all = in_time_order(VecDeque::new(), vec![at(2, 2_000_000), at(3, 2_500_000)], &mut requests);
        let all = in_time_order(all, vec![at(1, 1_000_000), at(4, 2_400_000)], &mut requests);
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 4, 3]);
        // The oldest by time leave first when the list is full.
        let mut many: Vec<Record> = (0..KEEP_RECORDS as u64 + 5).map(|i| at(10 + i, 3_000_000 + i)).collect();
        many[7].detail = podtap_shared::Detail::Tcp(podtap_shared::TcpConnection::test(0));
        let all = in_time_order(all, many, &mut requests);
        assert_eq!(all.len(), KEEP_RECORDS);
        assert_eq!(
            requests,
            all.iter().filter(|r| r.is_request()).count(),
            "the requests held, counted as they come and go"
        );
        assert_eq!(all[0].id, 15);
        let all: Vec<Record> = all.into();
        assert!(all.windows(2).all(|w| w[0].time_order() <= w[1].time_order()));
    }
}
