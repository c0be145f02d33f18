//! One record per request: the observations of one request before and after kube-proxy rewrote
//! it are merged, so `dst` is the pod that served it, `src` the real client and `via` the way it
//! went. (Copies of one packet on several interfaces, unrewritten, are already one connection:
//! see `reassemble`.)
//!
//! The matching rule, from the packets alone — no interface name or index is needed, so a
//! classic pcap, `tcpdump -i any` and a pcapng with names all give the same records. Two
//! observations are the same request when they were produced within `WINDOW_US` of each other
//! (capture time), were sent to different addresses (a rewrite happened between them: the one
//! thing two requests on one connection never differ in), ask the same thing (method and path;
//! gRPC path; DNS query and type; TLS SNI), and
//! 1. come from the same client socket (ip:port) and at most one was addressed to a pod: a
//!    ClusterIP request before and after kube-proxy's DNAT (only the destination changes), a DNS
//!    query to the kube-dns ClusterIP and at the CoreDNS pod (the kernel may reuse a client port
//!    towards two pods at once: two pods are never one rewritten destination); or
//! 2. one went to a NodePort (or LoadBalancer) Service from outside, and the other reached a
//!    backend pod of that Service from a node address (kube-proxy's SNAT) — preferring the one
//!    whose source port was kept, as MASQUERADE does when it can; or
//! 3. both went to the same pod socket from the same client address with different source
//!    ports and the same TCP sequence number: conntrack gave the connection another source port
//!    because its own would have clashed with a DNAT'd connection's reply (a Kafka client that
//!    bootstrapped through a Service and then connects to the broker's pod address from the
//!    same port). Here, and only here, the same destination is no obstacle; the sequence number
//!    is required; or
//! 4. one went to a ClusterIP and the other reached a pod that backs its Service, from the same
//!    client address with another source port and the same TCP sequence number: the DNAT'd
//!    connection's reply would have clashed with one conntrack still held (an earlier pod's, with
//!    the same address and port, in TIME_WAIT for up to two minutes), so conntrack gave it
//!    another source port too (a real cluster's second run of one scenario: CI of 4e26e12). The
//!    sequence number is required.
//!
//! Where both observations carry a TCP sequence number (`seq`: an HTTP/1 request's first byte; a
//! connection's initial one), it must be equal: NAT rewrites addresses and ports, never sequence
//! numbers, so a capture that joined a keep-alive connection mid-stream on one side cannot pair
//! its first request with an older one of the other side, and connections behind a NodePort's
//! `--random-fully` SNAT (every port changed) pair exactly.
//!
//! A request leaves as soon as it has every observation it will get (`is_complete`: the one
//! addressed to the Service and the one at the pod, or both pods' copies); the others leave when
//! their window has passed, so nothing waits longer than it must.
//!
//! Limits: identical requests (same path) from different outside clients through one NodePort
//! within the window may be paired crosswise when SNAT changed their ports; an observation whose
//! partner was not captured stays a record of its own (`observations: 1`). Probes never merge
//! with NodePort traffic.

use std::collections::VecDeque;

use super::due::Due;
use std::hash::{Hash, Hasher};

use podtap_shared::{Detail, EndpointKind, Record, Via, ViaKind};
use rustc_hash::{FxHashMap, FxHasher};
use smallvec::SmallVec;

use crate::resolve::ClusterState;

/// How long (capture time) an observation waits for the others of its request.
pub const WINDOW_US: u64 = 1_000_000;
/// How long an observation of a request to a pod on another node waits for that node's copy, and
/// how far apart the two may be when their TCP sequence numbers say they are the same bytes: a
/// request lost on the way is sent again (TCP's retransmission timer backs off 0.2, 0.4, 0.8,
/// 1.6 s…), and the server's node then sees it seconds after the client's saw it leave (a fresh
/// clone saw 1.73 s between two nodes of the lab cluster).
pub const RETRANSMIT_US: u64 = 5_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// Same client socket: (ip, port, what was asked).
    Socket(std::net::IpAddr, u16, u64),
    /// Through a NodePort from outside, or from a node address to a pod: what was asked.
    Snat(u64),
    /// From a client address, by the request's TCP sequence number, to a pod or a ClusterIP:
    /// (client ip, seq, what was asked).
    Moved(std::net::IpAddr, u32, u64),
}

/// One observation: the record and where it was sent (`leg`). The record is boxed: a group waits
/// about a second among tens of thousands, and a ~450-byte record inline made every group ~1.2 KB
/// to copy in and out.
struct Seen {
    /// The destination socket, hashed: observations of one request differ in it.
    leg: u64,
    /// What was asked (`identity`), computed once.
    what: u64,
    record: Box<Record>,
}

/// Most requests are seen twice and listed under one or two keys: no heap allocation for those.
struct Group {
    seen: SmallVec<[Seen; 2]>,
    /// Where the index lists this group: (key, leg).
    listed: SmallVec<[(Key, u64); 4]>,
}

impl Group {
    fn on(&self, leg: u64) -> bool {
        self.seen.iter().any(|s| s.leg == leg)
    }
}

/// Open group ids of one key, oldest first, for each leg (destination) that saw them.
type Queues = SmallVec<[(u64, Queue); 2]>;

/// Group ids, ascending. Groups mostly leave oldest first, so the front is skipped over (`head`)
/// rather than shifted out: a keep-alive connection repeating one request (a benchmark's `GET
/// key`, a health check) holds a second's worth of ids under one key, and taking each from the
/// front of a vector cost the merge half its time.
#[derive(Default)]
struct Queue {
    head: usize,
    ids: SmallVec<[u64; 2]>,
}

impl Queue {
    fn iter(&self) -> impl Iterator<Item = &u64> {
        self.ids[self.head..].iter()
    }

    fn is_empty(&self) -> bool {
        self.head == self.ids.len()
    }

    /// Adds `id` in order (ids grow with time: almost always at the back).
    fn insert(&mut self, id: u64) {
        let live = &self.ids[self.head..];
        let at = live.iter().rposition(|g| *g < id).map_or(0, |p| p + 1);
        self.ids.insert(self.head + at, id);
    }

    fn remove(&mut self, id: u64) {
        if self.ids.get(self.head) == Some(&id) {
            self.head += 1;
        } else if let Ok(at) = self.ids[self.head..].binary_search(&id) {
            self.ids.remove(self.head + at);
        }
        // The skipped front goes once it is half the vector: each id is moved O(1) times.
        if self.head > 0 && self.head * 2 >= self.ids.len() {
            self.ids.drain(..self.head);
            self.head = 0;
        }
    }
}

/// How far down a queue a SNAT lookup looks for a partner that kept the source port.
const SNAT_SCAN: usize = 64;

/// Merges observations; a record comes out once its request is complete or its window has passed.
#[derive(Default)]
pub struct Merger {
    /// Every waiting group, oldest first: ids are handed out in arrival order, so group `id` is
    /// at `id - first` and groups leave from the front. (A hash map of groups spent a fifth of
    /// the merged analyze copying ~1 KB groups while it rehashed.)
    groups: VecDeque<Group>,
    /// Waiting groups by when they arrived, (arrival, id), soonest first: several nodes' agents
    /// deliver out of capture-time order, and a group that arrived late in id order must not
    /// hold back the ones behind it.
    due: Due,
    /// The id of the group at the front.
    first: u64,
    /// Open groups (still waiting for an observation) by key and by the leg that saw them,
    /// oldest first: a partner is found at the front of another leg's queue, so a busy socket
    /// never makes a lookup long.
    index: FxHashMap<Key, Queues>,
}

/// What was asked, as a hash: equal for every observation of one request.
fn identity(r: &Record) -> u64 {
    identity_of(&r.detail, r.request_size, r.response_size)
}

/// What was asked, hashed, from a record's or an exchange's parts: two observations of one
/// request always agree on it (the bus's join key is made of it where no sequence number is).
pub fn identity_of(detail: &Detail, request_size: u64, response_size: u64) -> u64 {
    let mut h = FxHasher::default();
    std::mem::discriminant(detail).hash(&mut h);
    match detail {
        Detail::Http(x) => (&x.method, &x.path).hash(&mut h),
        Detail::Grpc(x) => x.path.hash(&mut h),
        Detail::Dns(x) => (&x.query, &x.qtype).hash(&mut h),
        Detail::Tls(x) => x.sni.hash(&mut h),
        Detail::Postgres(x) | Detail::Mysql(x) => (&x.operation, &x.statement, &x.prepared).hash(&mut h),
        Detail::Redis(x) => (&x.command, &x.key).hash(&mut h),
        Detail::Websocket(x) => (&x.subprotocol, &x.client, &x.server).hash(&mut h),
        Detail::Kafka(x) => (x.api_key, x.version, x.correlation_id).hash(&mut h),
        // A connection before and after kube-proxy's rewrite carries the same bytes each way
        // (behind a NodePort's SNAT that is all that ties the two sides: a probe's connection from
        // the node to the same pod must not stand in for it).
        Detail::Tcp(_) => (request_size, response_size).hash(&mut h),
    }
    h.finish()
}

/// Addressed to a Service from inside (its ClusterIP): kube-proxy's DNAT is all that happens.
fn to_cluster_ip(r: &Record) -> bool {
    r.dst.kind == EndpointKind::Service && !through_node_port(r)
}

fn through_node_port(r: &Record) -> bool {
    matches!(r.via.kind, ViaKind::NodePort | ViaKind::LoadBalancer)
}

/// A request that reached a pod from a node address: kube-proxy's SNAT side (probes excepted).
fn from_node_to_pod(r: &Record) -> bool {
    !r.probe && r.src.kind == EndpointKind::Node && r.dst.kind == EndpointKind::Pod
}

/// Where an observation was sent, from which source port, and on which node it was seen, hashed:
/// one node's copies of a connection on several interfaces are already one observation, two
/// nodes' copies are two. The source port tells apart one node's copies before and after
/// conntrack moved it: a `tcpdump -i any` sees a DNAT'd request on the bridge with the client's
/// port and on the uplink with the one conntrack gave it (rules 3 and 4).
fn leg_of(r: &Record) -> u64 {
    let mut h = FxHasher::default();
    (r.src.port, r.dst.ip, r.dst.port, r.nodes.first()).hash(&mut h);
    h.finish()
}

/// The keys under which an observation is found by its partners.
fn keys_of(r: &Record, what: u64) -> impl Iterator<Item = Key> {
    let snat = (through_node_port(r) || from_node_to_pod(r)).then_some(Key::Snat(what));
    let moved = r
        .seq
        .filter(|_| r.dst.kind == EndpointKind::Pod || to_cluster_ip(r))
        .map(|seq| Key::Moved(r.src.ip, seq, what));
    std::iter::once(Key::Socket(r.src.ip, r.src.port, what)).chain(snat).chain(moved)
}

impl Merger {
    /// Takes one observation that became a record at `now_us` (capture time). A request that has
    /// all the observations it will get leaves at once, into `out`; the others wait for their
    /// window to pass (`flush_due`).
    pub fn push(&mut self, record: Box<Record>, now_us: u64, cluster: &ClusterState, out: &mut Vec<Record>) {
        let (what, leg) = (identity(&record), leg_of(&record));
        self.push_seen(Seen { leg, what, record }, now_us, cluster, out);
        // Complete groups left their place empty: drop the empty places at the front.
        while self.groups.front().is_some_and(|g| g.seen.is_empty()) {
            self.groups.pop_front();
            self.first += 1;
        }
    }

    fn push_seen(&mut self, seen: Seen, now_us: u64, cluster: &ClusterState, out: &mut Vec<Record>) {
        let (id, evicted) = match self.partner(&seen, cluster) {
            Some((id, evict)) => {
                // A back that took this front's place with another source port: this one kept
                // the port, so it is the front's own; the other starts over.
                // Its copies seen by other nodes (the same addresses) go with it.
                let mut evicted = SmallVec::<[Seen; 2]>::new();
                if let Some(i) = evict {
                    let seen = &mut self.group_mut(id).seen;
                    let (src, dst) = (seen[i].record.src.clone(), seen[i].record.dst.clone());
                    let same = |s: &Seen| {
                        (s.record.src.ip, s.record.src.port, s.record.dst.ip, s.record.dst.port)
                            == (src.ip, src.port, dst.ip, dst.port)
                    };
                    let mut j = 0;
                    while j < seen.len() {
                        if same(&seen[j]) {
                            evicted.push(seen.remove(j));
                        } else {
                            j += 1;
                        }
                    }
                }
                (id, evicted)
            }
            None => {
                let id = self.first + self.groups.len() as u64;
                self.groups.push_back(Group { seen: SmallVec::new(), listed: SmallVec::new() });
                // Bound for another node's pod: that node's copy may come late (retransmitted).
                // (At the end of a file `now_us` is u64::MAX: everything leaves then anyway.)
                let wait = if crosses_nodes(&seen.record) { RETRANSMIT_US - WINDOW_US } else { 0 };
                self.due.push((now_us.saturating_add(wait), id));
                (id, SmallVec::new())
            }
        };
        self.group_mut(id).seen.push(seen);
        if self.reindex(id) {
            let seen = std::mem::take(&mut self.group_mut(id).seen);
            out.push(combine(seen.into_iter().map(|s| s.record).collect()));
        }
        for other in evicted {
            self.push_seen(other, now_us, cluster, out);
        }
    }

    fn unlist(&mut self, id: u64, listed: &[(Key, u64)]) {
        for (key, leg) in listed {
            let Some(queues) = self.index.get_mut(key) else { continue };
            if let Some((_, q)) = queues.iter_mut().find(|(i, _)| i == leg) {
                q.remove(id);
            }
            queues.retain(|(_, q)| !q.is_empty());
            if queues.is_empty() {
                self.index.remove(key);
            }
        }
    }

    /// Lists group `id` under the keys and legs of its observations — or nowhere once it is
    /// complete, which it returns.
    fn reindex(&mut self, id: u64) -> bool {
        let group = self.group_mut(id);
        let old = std::mem::take(&mut group.listed);
        let complete = is_complete(&group.seen);
        let mut listed: SmallVec<[(Key, u64); 4]> = SmallVec::new();
        if !complete {
            // Each (key, leg) once: two observations on one leg (rule 3) share their `Moved` key.
            for kl in group.seen.iter().flat_map(|s| keys_of(&s.record, s.what).map(move |k| (k, s.leg))) {
                if !listed.contains(&kl) {
                    listed.push(kl);
                }
            }
        }
        self.unlist(id, &old);
        for (key, leg) in &listed {
            let queues = self.index.entry(*key).or_default();
            match queues.iter_mut().find(|(i, _)| i == leg) {
                Some((_, q)) => q.insert(id),
                None => {
                    let mut q = Queue::default();
                    q.insert(id);
                    queues.push((*leg, q));
                }
            }
        }
        self.group_mut(id).listed = listed;
        complete
    }

    /// The pending group this observation belongs to, if any, and which of its observations to
    /// send back out (a SNAT back that a better-matching one replaces).
    fn partner(&self, seen: &Seen, cluster: &ClusterState) -> Option<(u64, Option<usize>)> {
        let (r, leg, what) = (&*seen.record, seen.leg, seen.what);
        // The oldest open group of `key` sent elsewhere and not to where this one was.
        let queues =
            |key: Key| self.index.get(&key).into_iter().flatten().filter(move |(i, _)| *i != leg).map(|(_, q)| q);
        // Asked within the window of each other: repeats of one request on a keep-alive
        // connection never pair across the gap left by an observation that was not captured. The
        // same bytes (TCP sequence numbers) may be further apart: a retransmission.
        let near = |g: &Group| {
            let o = &g.seen[0].record;
            let gap = o.ts.abs_diff(r.ts);
            gap <= WINDOW_US || (gap <= RETRANSMIT_US && o.seq.is_some() && o.seq == r.seq)
        };
        // Two pods are never one destination rewritten into the other: a client port the kernel
        // reused towards two pods (kubelet probing them one after another) is two requests. One
        // pod seen from two nodes (the client's and its own) is one request.
        let rewrite = |g: &Group| {
            let o = &g.seen[0].record;
            !(o.dst.kind == EndpointKind::Pod && r.dst.kind == EndpointKind::Pod)
                || ((o.dst.ip, o.dst.port) == (r.dst.ip, r.dst.port) && o.nodes != r.nodes)
        };
        // The same TCP sequence number, where both sides know it: NAT never rewrites it, so an
        // observation that joined its connection mid-stream (a capture that began on a pooled
        // connection) pairs with its own request, not with the oldest one still open.
        let same_bytes = |g: &Group| match (g.seen[0].record.seq, r.seq) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let socket = queues(Key::Socket(r.src.ip, r.src.port, what))
            .filter_map(|q| {
                q.iter().copied().find(|id| {
                    let g = self.group(*id);
                    !g.on(leg) && near(g) && rewrite(g) && same_bytes(g)
                })
            })
            .min();
        if socket.is_some() {
            return socket.map(|id| (id, None));
        }
        // Rules 3 and 4: the same client address and bytes, another source port, to the same pod
        // socket, or to a ClusterIP and a pod that backs its Service.
        if let Some(seq) = r.seq.filter(|_| r.dst.kind == EndpointKind::Pod || to_cluster_ip(r)) {
            let backs = |front: &Record, back: &Record| {
                to_cluster_ip(front)
                    && back.dst.kind == EndpointKind::Pod
                    && front.via.service.as_deref().is_some_and(|s| cluster.was_backend(s, back.dst.ip, back.ts))
            };
            let pair = |o: &Record| {
                o.seq == Some(seq)
                    && o.src.port != r.src.port
                    && ((o.dst.kind == EndpointKind::Pod
                        && r.dst.kind == EndpointKind::Pod
                        && (o.dst.ip, o.dst.port) == (r.dst.ip, r.dst.port))
                        || backs(o, r)
                        || backs(r, o))
            };
            let moved = |g: &Group| {
                near(g) && g.seen.iter().all(|s| s.record.src.ip == r.src.ip) && g.seen.iter().any(|s| pair(&s.record))
            };
            let key = Key::Moved(r.src.ip, seq, what);
            let found = self.index.get(&key).into_iter().flatten().flat_map(|(_, q)| q.iter().copied());
            if let Some(id) = found.filter(|id| moved(self.group(*id))).min() {
                return Some((id, None));
            }
        }
        // The other side of kube-proxy's SNAT: a front whose Service this pod backs, or a back
        // served by a pod of this front's Service. MASQUERADE keeps the source port when it can,
        // so a partner with the same port wins, even over one that arrived first.
        let (is_front, is_back) = (through_node_port(r), from_node_to_pod(r));
        if !(is_front || is_back) {
            return None;
        }
        let counterpart = |o: &Record| {
            let (front, back) = if is_front { (r, o) } else { (o, r) };
            through_node_port(front)
                && from_node_to_pod(back)
                && front.via.service.as_deref().is_some_and(|s| cluster.was_backend(s, back.dst.ip, back.ts))
        };
        let mine = |o: &Record| if is_front { through_node_port(o) } else { from_node_to_pod(o) };
        let mut candidates: Vec<u64> =
            queues(Key::Snat(what)).flat_map(|q| q.iter().take(SNAT_SCAN).copied()).collect();
        candidates.sort_unstable();
        candidates.dedup();
        let mut fallback = None;
        for id in candidates {
            let g = self.group(id);
            if g.on(leg) || !near(g) || !same_bytes(g) || !g.seen.iter().any(|s| counterpart(&s.record)) {
                continue;
            }
            let taken = g.seen.iter().position(|s| mine(&s.record));
            let same_port = g.seen.iter().any(|s| counterpart(&s.record) && s.record.src.port == r.src.port);
            match taken {
                None if same_port => return Some((id, None)),
                Some(i) if same_port && g.seen[i].record.src.port != r.src.port => return Some((id, Some(i))),
                None if fallback.is_none() => fallback = Some((id, None)),
                _ => {}
            }
        }
        fallback
    }

    /// Emits, in the order they arrived, every request whose window has passed by `now_us`.
    pub fn flush_due(&mut self, now_us: u64, out: &mut Vec<Record>) {
        while let Some((arrival, id)) = self.due.peek() {
            if now_us.saturating_sub(arrival) <= WINDOW_US {
                break;
            }
            self.due.pop();
            if id >= self.first {
                self.emit(id, out);
            }
        }
        while self.groups.front().is_some_and(|g| g.seen.is_empty()) {
            self.groups.pop_front();
            self.first += 1;
        }
    }

    /// End of input: emits everything still waiting.
    pub fn flush_all(&mut self, out: &mut Vec<Record>) {
        while !self.groups.is_empty() {
            let id = self.first;
            self.emit(id, out);
            self.groups.pop_front();
            self.first += 1;
        }
        self.due.clear();
    }

    /// Emits group `id` (unless it left already, complete), leaving its place empty.
    fn emit(&mut self, id: u64, out: &mut Vec<Record>) {
        let group = self.group_mut(id);
        let seen = std::mem::take(&mut group.seen);
        let listed = std::mem::take(&mut group.listed);
        if !seen.is_empty() {
            self.unlist(id, &listed);
            out.push(combine(seen.into_iter().map(|s| s.record).collect()));
        }
    }

    fn group(&self, id: u64) -> &Group {
        &self.groups[(id - self.first) as usize]
    }

    fn group_mut(&mut self, id: u64) -> &mut Group {
        &mut self.groups[(id - self.first) as usize]
    }

    /// Requests waiting for their window to pass (and places of complete ones not yet dropped).
    pub fn pending(&self) -> usize {
        self.groups.len()
    }
}

/// Whether `r` went between a pod on another node and the node that saw it (its agent will see
/// it too): only where nodes are known (a hub, `analyze FILE@NODE`) and the bytes can be told
/// apart. Either node's copy may come seconds after the other's: a request lost on the way is
/// sent again, and an observation leaves the dissector with its response, which may be the one
/// lost on the way back (CI of fresh clone 25b: a Kafka Produce answered in 8 ms at the broker's
/// node and 1.7 s later at the client's).
fn crosses_nodes(r: &Record) -> bool {
    let elsewhere = |e: &podtap_shared::Endpoint| {
        e.kind == EndpointKind::Pod && e.node.as_ref().is_some_and(|n| !r.nodes.contains(n))
    };
    r.seq.is_some() && !r.nodes.is_empty() && (elsewhere(&r.dst) || elsewhere(&r.src))
}

/// Whether a request has all the observations it will get: the one addressed to the Service and
/// the one at the pod (through a NodePort, with the source port kept — else a back that kept it
/// may still come). Seen by nodes' agents, only a request that stayed on one node is ever
/// complete before its window has passed.
fn is_complete(seen: &[Seen]) -> bool {
    if seen.len() < 2 {
        return false;
    }
    let records = || seen.iter().map(|s| &*s.record);
    if seen.iter().any(|s| !s.record.nodes.is_empty()) {
        // Seen by nodes' agents: a request that touched two nodes may still have copies on its
        // way from either (the client's node's uplink, the server's veth), so it waits for its
        // window; one that stayed on one node has all it will get.
        let mut involved: SmallVec<[&podtap_shared::Name; 4]> = SmallVec::new();
        for r in records() {
            involved.extend(r.nodes.iter());
            for e in [&r.src, &r.dst] {
                involved.extend(e.node.as_ref().filter(|_| e.kind == EndpointKind::Pod));
            }
        }
        involved.sort_unstable();
        involved.dedup();
        if involved.len() > 1 {
            return false;
        }
    }
    let front = records().find(|r| r.dst.kind == EndpointKind::Service);
    let mut backs = records().filter(|r| r.dst.kind == EndpointKind::Pod);
    match front {
        Some(f) if through_node_port(f) => backs.any(|b| b.src.port == f.src.port),
        Some(_) => backs.next().is_some(),
        None => false,
    }
}

/// One record from the observations of one request (moved, not copied: no string is cloned).
fn combine(mut records: SmallVec<[Box<Record>; 2]>) -> Record {
    if records.len() == 1 {
        return *records.pop().expect("one record");
    }
    // Every observation addressed to one pod from one address, with two source ports (rule 3):
    // the client's socket is the one the client's own node saw first (conntrack changed the
    // port after the client's interface).
    let moved = records.iter().all(|r| r.dst.kind == EndpointKind::Pod)
        && records.iter().any(|r| r.src.port != records[0].src.port)
        && records.iter().all(|r| {
            r.src.ip == records[0].src.ip && (r.dst.ip, r.dst.port) == (records[0].dst.ip, records[0].dst.port)
        });
    let client_side = moved
        .then(|| {
            let on_client_node =
                |r: &&Record| r.src.node.as_ref().is_none_or(|n| r.nodes.is_empty() || r.nodes.contains(n));
            let client = records.iter().map(|r| &**r).filter(on_client_node).min_by_key(|r| (r.ts, r.id))?.src.clone();
            let moved = records.iter().find(|r| r.src.port != client.port)?.src.clone();
            Some((client, moved))
        })
        .flatten();
    let observations = records.iter().map(|r| r.observations).sum();
    let mut nodes: Vec<podtap_shared::Name> = records.iter_mut().flat_map(|r| std::mem::take(&mut r.nodes)).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let id = records.iter().map(|r| r.id).min().expect("records");
    let probe = records.iter().any(|r| r.probe);
    // The observation addressed to a Service (before DNAT) knows the client and the path taken;
    // the one addressed to a pod knows who served it.
    let front = records.iter().position(|r| r.dst.kind == EndpointKind::Service);
    // Of several copies at the pod, one from another socket than the front's, if any: the port
    // NAT gave it on the way is the one the pod saw (`snat`).
    let front_src = front.map(|f| (records[f].src.ip, records[f].src.port));
    let at_pod = |r: &Record| r.dst.kind == EndpointKind::Pod;
    let back = records
        .iter()
        .position(|r| at_pod(r) && front_src.is_some_and(|s| s != (r.src.ip, r.src.port)))
        .or_else(|| records.iter().position(|r| at_pod(r)));
    let ts = records.iter().map(|r| r.ts).min().expect("records");
    let first_conn = records.iter().map(|r| r.conn).min().expect("records");
    // The client's side waits longest: its latency is the one users feel.
    let longest = records.iter().filter_map(|r| r.latency_us).max();
    // The client's copy of the last byte is the last one seen.
    let end_us = records.iter().filter_map(|r| r.end_us).max();
    let from_front = front.map(|f| {
        let r = &mut records[f];
        let blank = podtap_shared::Endpoint::unknown(r.src.ip, r.src.port);
        let src = std::mem::replace(&mut r.src, blank);
        // Where the client sent it, when another observation shows where it arrived.
        let addressed = back.map(|_| Box::new(r.dst.clone()));
        (src, std::mem::replace(&mut r.via, Via::UNKNOWN), r.conn, r.ts, r.latency_us, addressed)
    });
    let tunnel = records.iter_mut().find_map(|r| r.tunnel.take());
    let mut merged = *records.swap_remove(back.or(front).unwrap_or(0));
    merged.tunnel = merged.tunnel.take().or(tunnel);
    merged.observations = observations;
    merged.nodes = nodes;
    merged.end_us = end_us;
    merged.id = id;
    merged.probe = probe;
    match from_front {
        Some((src, via, conn, ts, latency, addressed)) => {
            // The pod's copy came from another socket: a source NAT on the way.
            let seen = (merged.src.ip, merged.src.port);
            if back.is_some() && seen != (src.ip, src.port) {
                merged.snat = Some(Box::new(merged.src.clone()));
            }
            (merged.src, merged.via, merged.conn, merged.ts, merged.latency_us) = (src, via, conn, ts, latency);
            merged.addressed = addressed;
        }
        None => {
            (merged.conn, merged.ts, merged.latency_us) = (first_conn, ts, longest);
            if let Some((client, moved)) = client_side {
                // Rule 3: the client's own socket, and the port conntrack gave it on the way.
                merged.src.port = client.port;
                merged.snat = Some(Box::new(moved));
            }
            // Copies from several nodes, every one addressed to the pod itself: it was called
            // directly (one node's copies on two interfaces already say so in `correlate`).
            if merged.via.kind == ViaKind::Unknown && merged.dst.kind == EndpointKind::Pod {
                merged.via = Via { kind: ViaKind::Direct, service: None };
            }
        }
    }
    merged
}

#[cfg(test)]
mod nodes_tests;
#[cfg(test)]
mod tests;
