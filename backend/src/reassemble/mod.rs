//! Stage 3, reassemble: TCP segments → ordered byte streams per connection and direction, handed
//! to a per-connection `ConnHandler` (a dissector). Handles retransmissions and overlaps (trimmed),
//! out-of-order segments (held, bounded), missing data (a counted gap the handler is told of),
//! FIN/RST, port reuse, idle timeouts and connections already open when capture began.
//! Knows nothing of application protocols.
//!
//! A connection is its address pair, wherever it was seen: copies of one packet on several
//! interfaces (a bridge and its port, both pods' veths of an unrewritten pod-to-pod request, the
//! interfaces `tcpdump -i any` lists) are one connection whose bytes count once, whether or not
//! the capture says which interface each copy came from. Copies that arrive after their
//! connection closed (live rings are drained one after another) are recognised by the sequence
//! numbers the connection used and dropped, counted.

use std::collections::hash_map::Entry;
use std::net::SocketAddr;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::decode::Segment;
use podtap_shared::TcpClose;

/// Which way bytes flow, relative to the connection's canonical `a` → `b` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    AtoB = 0,
    BtoA = 1,
}

/// What a handler knows of its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// Unique for the lifetime of the reassembler; the `conn` of every record on this connection.
    pub id: u64,
    /// The capture interface that saw the connection first.
    pub interface: u32,
    /// How many capture interfaces have carried its packets so far (copies of one packet).
    pub points: u8,
    /// The tunnel its packets were seen in, when a copy was captured encapsulated.
    pub tunnel: Option<podtap_shared::Tunnel>,
    /// The lower of the two socket addresses.
    pub a: SocketAddr,
    pub b: SocketAddr,
    /// The side that sent the first SYN, when the handshake was seen.
    pub opener: Option<Dir>,
    /// What happened to it so far: times, bytes, losses; how it ended once it did.
    pub life: ConnLife,
    /// Per direction (`Dir` as index), the TCP sequence number of the first byte `on_data` is
    /// given: NAT rewrites addresses and ports, never these, so both sides of kube-proxy see the
    /// same number for one request.
    pub seq: [u32; 2],
    /// The opener's initial sequence number (its SYN's), when the handshake was seen: the same
    /// on both sides of NAT, so it ties the two observations of one connection together.
    pub isn: Option<u32>,
}

/// A connection's life as the capture saw it, for its `kind: "tcp"` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLife {
    /// Its SYN, or the first packet seen when the capture joined mid-stream.
    pub opened_us: u64,
    /// The SYN's time, while the handshake's final ACK is awaited.
    syn_us: Option<u64>,
    synack: bool,
    /// SYN to the handshake's final ACK.
    pub rtt_us: Option<u64>,
    /// The last packet.
    pub last_us: u64,
    /// Payload bytes delivered, per direction (`Dir` order).
    pub bytes: [u64; 2],
    /// Segments that only repeated bytes already delivered.
    pub retransmissions: u64,
    pub gaps: u64,
    pub close: TcpClose,
}

impl ConnLife {
    /// A connection first seen at `ts_us`, by its SYN when `syn`.
    pub fn new(ts_us: u64, syn: bool) -> Self {
        ConnLife {
            opened_us: ts_us,
            syn_us: syn.then_some(ts_us),
            synack: false,
            rtt_us: None,
            last_us: ts_us,
            bytes: [0; 2],
            retransmissions: 0,
            gaps: 0,
            close: TcpClose::Open,
        }
    }

    /// The handshake's round trip: SYN, SYN-ACK back, then the opener's first plain ACK.
    fn on_packet(&mut self, opener: Option<Dir>, dir: Dir, flags: crate::decode::TcpFlags, ts_us: u64) {
        self.last_us = self.last_us.max(ts_us);
        let Some(syn_us) = self.syn_us else { return };
        if flags.syn && flags.ack && opener != Some(dir) {
            self.synack = true;
        } else if self.synack && !flags.syn && opener == Some(dir) {
            self.rtt_us = Some(ts_us.saturating_sub(syn_us));
            self.syn_us = None;
        }
    }
}

impl ConnInfo {
    /// A connection for dissector tests: `a` opened it to `b`, on capture interface `interface`.
    #[cfg(test)]
    pub fn test(id: u64, interface: u32, a: &str, b: &str) -> Self {
        ConnInfo {
            id,
            interface,
            points: 1,
            tunnel: None,
            a: a.parse().expect("socket address"),
            b: b.parse().expect("socket address"),
            opener: Some(Dir::AtoB),
            life: ConnLife::new(0, true),
            seq: [0; 2],
            isn: None,
        }
    }

    /// Source and destination of bytes flowing in `dir`.
    pub fn endpoints(&self, dir: Dir) -> (SocketAddr, SocketAddr) {
        match dir {
            Dir::AtoB => (self.a, self.b),
            Dir::BtoA => (self.b, self.a),
        }
    }
}

/// A per-connection consumer of ordered bytes: one instance per TCP connection.
pub trait ConnHandler {
    type Output;
    fn new(info: &ConnInfo) -> Self;
    /// In-order bytes of one direction; `ts_us` is the time of the segment that carried them.
    fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Self::Output>);
    /// `len` bytes of `dir` are missing (never captured); the next `on_data` follows the hole.
    fn on_gap(&mut self, info: &ConnInfo, dir: Dir, len: u64);
    /// The connection ended (FIN both ways, RST, idle, or end of input).
    fn on_close(&mut self, info: &ConnInfo, ts_us: u64, out: &mut Vec<Self::Output>);
}

/// Bounds and timeouts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Out-of-order bytes held per direction before giving up on the hole.
    pub pending_per_direction: usize,
    /// Connections tracked at once; new ones beyond this are counted and ignored.
    pub max_connections: usize,
    /// A connection with no packet for this long (capture time) is closed.
    pub idle_timeout_us: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { pending_per_direction: 256 * 1024, max_connections: 262_144, idle_timeout_us: 300_000_000 }
    }
}

/// Counters; nothing is lost silently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReassemblyStats {
    pub segments: u64,
    pub connections: u64,
    pub out_of_order_segments: u64,
    pub retransmitted_bytes: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub connections_over_limit: u64,
    pub idle_closed: u64,
    /// Segments that were copies of ones already seen on another interface.
    pub copies: u64,
    /// Connections closed because the only interface that carried them went away (a pod's veth
    /// at its deletion): nothing more of them can be seen, so what they hold is written now.
    #[serde(default)]
    pub interface_gone: u64,
}

#[derive(Default)]
struct Stream {
    /// The sequence number the stream started at (its SYN's, or the first seen when joined).
    start: Option<u32>,
    /// Whether `start` is a SYN's.
    syn: bool,
    next: Option<u32>,
    /// Out-of-order segments: (seq, bytes, ts).
    pending: Vec<(u32, Vec<u8>, u64)>,
    pending_bytes: usize,
    fin: bool,
    /// Per interface that carried it, how far in sequence it has carried the stream: bytes
    /// already delivered that arrive again are a retransmission only when their interface carried
    /// them before; the first time an interface carries them, they are its copy of what another
    /// interface delivered first (a request seen on the node's eth0, then on the pod's veth).
    reached: SmallVec<[(u32, u32); 2]>,
}

impl Stream {
    /// Notes that `interface` carried the stream up to `end`; returns whether it had already
    /// carried it that far.
    fn carried(&mut self, interface: u32, end: u32) -> bool {
        match self.reached.iter_mut().find(|(i, _)| *i == interface) {
            Some((_, reached)) => {
                let before = end.wrapping_sub(*reached) as i32 <= 0;
                if !before {
                    *reached = end;
                }
                before
            }
            None => {
                if self.reached.len() < 8 {
                    self.reached.push((interface, end));
                }
                false
            }
        }
    }
}

struct Conn<H> {
    info: ConnInfo,
    streams: [Stream; 2],
    last_ts: u64,
    rst: bool,
    /// The interfaces that carried it (up to a few; `info.points` counts them).
    seen_on: SmallVec<[u32; 2]>,
    handler: H,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    a: SocketAddr,
    b: SocketAddr,
}

impl<H> Conn<H> {
    /// Whether `seq` is the SYN this direction already started with.
    fn is_syn(&self, dir: Dir, seq: u32) -> bool {
        let s = &self.streams[dir as usize];
        s.syn && s.start == Some(seq)
    }
}

/// What is remembered of a connection after it closed, to know its late copies: per direction,
/// the sequence range it used.
#[derive(Clone, Copy)]
struct Closed {
    ranges: [Option<(u32, u32)>; 2],
    at_us: u64,
}

impl Closed {
    /// How long (capture time) a closed connection's late copies are recognised.
    const KEEP_US: u64 = 10_000_000;

    /// Whether this segment only repeats bytes (or the SYN) the closed connection had.
    fn covers(&self, dir: Dir, seq: u32, len: usize) -> bool {
        let Some((start, end)) = self.ranges[dir as usize] else { return false };
        let from = seq.wrapping_sub(start) as i32;
        let to = end.wrapping_sub(seq.wrapping_add(len as u32)) as i32;
        from >= 0 && to >= 0
    }
}

/// All connections of one capture, keyed by address pair.
pub struct Reassembler<H: ConnHandler> {
    conns: FxHashMap<Key, Conn<H>>,
    /// Recently closed connections, for their late copies.
    closed: FxHashMap<Key, Closed>,
    limits: Limits,
    next_id: u64,
    /// Interfaces whose capture ended (`end_interface`).
    ended: FxHashSet<u32>,
    pub stats: ReassemblyStats,
}

impl<H: ConnHandler> Reassembler<H> {
    pub fn new(limits: Limits) -> Self {
        Self {
            conns: FxHashMap::default(),
            closed: FxHashMap::default(),
            limits,
            next_id: 1,
            ended: FxHashSet::default(),
            stats: ReassemblyStats::default(),
        }
    }

    /// A fresh connection id from the same sequence, for flows of other transports (UDP).
    pub fn allocate_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Numbers the connection the next segment opens (and the next flow `allocate_id` hands out)
    /// `id`. A file's runs number connections by the frame that opened them: the same numbers
    /// however the file's connections are shared among threads.
    pub fn number_next(&mut self, id: u64) {
        self.next_id = id;
    }

    /// Connections currently tracked.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Feeds one segment.
    pub fn on_segment(&mut self, seg: &Segment<'_>, out: &mut Vec<H::Output>) {
        self.stats.segments += 1;
        let (key, dir) = if (seg.src.ip(), seg.src.port()) <= (seg.dst.ip(), seg.dst.port()) {
            (Key { a: seg.src, b: seg.dst }, Dir::AtoB)
        } else {
            (Key { a: seg.dst, b: seg.src }, Dir::BtoA)
        };
        let opening = seg.flags.syn && !seg.flags.ack;
        // A fresh SYN on a finished address pair is a new connection (port reuse); the same SYN
        // again is a retransmission or a copy from another interface.
        if opening
            && let Some(old) = self.conns.get(&key)
            && !old.is_syn(dir, seg.seq)
            && (old.rst
                || (old.streams[0].fin && old.streams[1].fin)
                || old.streams[dir as usize].next.is_some_and(|n| n != seg.seq.wrapping_add(1)))
        {
            let mut old = self.conns.remove(&key).expect("present");
            old.info.life.close = match (old.rst, old.streams[0].fin && old.streams[1].fin) {
                (true, _) => TcpClose::Rst,
                (false, true) => TcpClose::Fin,
                (false, false) => TcpClose::Reused,
            };
            self.close(key, old, seg.ts_us, out);
        }
        let full = self.conns.len() >= self.limits.max_connections;
        let conn = match self.conns.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(slot) => {
                if seg.flags.rst || (seg.payload.is_empty() && !seg.flags.syn) {
                    return; // the tail of a connection we never saw: nothing to reassemble
                }
                if let Some(closed) = self.closed.get(&key) {
                    let len = seg.payload.len() + usize::from(seg.flags.syn);
                    if seg.ts_us.saturating_sub(closed.at_us) <= Closed::KEEP_US && closed.covers(dir, seg.seq, len) {
                        self.stats.copies += 1;
                        return; // a late copy of a connection that has closed
                    }
                    self.closed.remove(&key);
                }
                if full {
                    self.stats.connections_over_limit += 1;
                    return;
                }
                let info = ConnInfo {
                    id: self.next_id,
                    interface: seg.interface,
                    points: 1,
                    tunnel: seg.tunnel,
                    a: key.a,
                    b: key.b,
                    opener: opening.then_some(dir),
                    life: ConnLife::new(seg.ts_us, opening),
                    seq: [0; 2],
                    isn: opening.then_some(seg.seq),
                };
                self.next_id += 1;
                self.stats.connections += 1;
                let handler = H::new(&info);
                let seen_on = SmallVec::from_slice(&[seg.interface]);
                slot.insert(Conn {
                    info,
                    streams: Default::default(),
                    last_ts: seg.ts_us,
                    rst: false,
                    seen_on,
                    handler,
                })
            }
        };
        conn.last_ts = seg.ts_us;
        if !conn.seen_on.contains(&seg.interface) && conn.seen_on.len() < 8 {
            conn.seen_on.push(seg.interface);
            conn.info.points = conn.seen_on.len() as u8;
        }
        if conn.info.tunnel.is_none() {
            conn.info.tunnel = seg.tunnel;
        }
        let copy = seg.interface != conn.info.interface;
        if !copy {
            conn.info.life.on_packet(conn.info.opener, dir, seg.flags, seg.ts_us);
        }
        let stream = &mut conn.streams[dir as usize];
        if seg.flags.syn {
            if !(stream.syn && stream.start == Some(seg.seq)) {
                (stream.start, stream.syn, stream.next) = (Some(seg.seq), true, Some(seg.seq.wrapping_add(1)));
            }
        } else if stream.next.is_none() {
            (stream.start, stream.next) = (Some(seg.seq), Some(seg.seq)); // joined mid-stream
        }
        if !seg.payload.is_empty() {
            let seq = if seg.flags.syn { seg.seq.wrapping_add(1) } else { seg.seq };
            let from = (seg.interface, copy);
            accept(conn, dir, seq, seg.payload, seg.ts_us, from, self.limits, &mut self.stats, out);
        }
        if seg.flags.fin {
            conn.streams[dir as usize].fin = true;
        }
        if seg.flags.rst {
            conn.rst = true;
        }
        // A copy of one direction only, seen from its SYN (the other never showed, not even its
        // SYN-ACK: conntrack gave its replies another address pair — a bridge's copy of a DNAT'd
        // request whose port conntrack then moved — or the capture sees one way): its sender's FIN
        // ends it, so its requests leave with their partners' rather than at the end of the
        // capture. One joined mid-stream waits as before: the other side's FIN may be on its way.
        let other = &conn.streams[1 - dir as usize];
        let one_sided = seg.flags.fin && conn.streams[dir as usize].syn && other.start.is_none() && !other.syn;
        if conn.rst || (conn.streams[0].fin && conn.streams[1].fin) || one_sided {
            let mut conn = self.conns.remove(&key).expect("present");
            conn.info.life.close = if conn.rst { TcpClose::Rst } else { TcpClose::Fin };
            flush(&mut conn, &mut self.stats, out);
            self.close(key, conn, seg.ts_us, out);
        }
    }

    /// Tells the handler its connection ended and remembers the sequence ranges it used, so its
    /// copies still on their way from another interface are known for what they are.
    fn close(&mut self, key: Key, mut conn: Conn<H>, ts_us: u64, out: &mut Vec<H::Output>) {
        conn.handler.on_close(&conn.info, ts_us, out);
        let range = |s: &Stream| s.start.zip(s.next).map(|(a, b)| (a, b.wrapping_add(u32::from(s.fin))));
        let ranges = [range(&conn.streams[0]), range(&conn.streams[1])];
        self.closed.insert(key, Closed { ranges, at_us: ts_us });
    }

    /// Closes connections idle for longer than the timeout, measured in capture time, oldest
    /// first.
    pub fn sweep(&mut self, now_us: u64, out: &mut Vec<H::Output>) {
        self.sweep_marked(now_us, out, &mut Vec::new());
    }

    /// `sweep`, telling `marks` each closed connection's id and where its outputs end in `out`.
    pub fn sweep_marked(&mut self, now_us: u64, out: &mut Vec<H::Output>, marks: &mut Vec<(u64, usize)>) {
        let timeout = self.limits.idle_timeout_us;
        let mut idle: Vec<(u64, Key)> = self
            .conns
            .iter()
            .filter(|(_, c)| now_us.saturating_sub(c.last_ts) > timeout)
            .map(|(k, c)| (c.info.id, *k))
            .collect();
        idle.sort_unstable_by_key(|(id, _)| *id);
        for (id, key) in idle {
            let mut conn = self.conns.remove(&key).expect("listed");
            conn.info.life.close = TcpClose::Idle;
            self.stats.idle_closed += 1;
            flush(&mut conn, &mut self.stats, out);
            self.close(key, conn, now_us, out);
            marks.push((id, out.len()));
        }
        self.closed.retain(|_, c| now_us.saturating_sub(c.at_us) <= Closed::KEEP_US);
    }

    /// The capture of `interface` ended (it went away, and its ring was drained; interface
    /// numbers are never reused): connections every interface of which has ended are closed as
    /// still open when the capture ended — an unanswered request is written now, not after the
    /// idle timeout — oldest first. Those still carried by another interface go on.
    pub fn end_interface(&mut self, interface: u32, now_us: u64, out: &mut Vec<H::Output>) {
        self.ended.insert(interface);
        let ended = &self.ended;
        let mut gone: Vec<Key> = self
            .conns
            .iter()
            .filter(|(_, c)| c.seen_on.contains(&interface) && c.seen_on.iter().all(|i| ended.contains(i)))
            .map(|(k, _)| *k)
            .collect();
        gone.sort_by_key(|k| self.conns[k].info.id);
        for key in gone {
            let mut conn = self.conns.remove(&key).expect("listed");
            conn.info.life.close = TcpClose::Open;
            self.stats.interface_gone += 1;
            flush(&mut conn, &mut self.stats, out);
            self.close(key, conn, now_us, out);
        }
    }

    /// End of input: flushes and closes every connection, oldest first.
    pub fn finish(&mut self, out: &mut Vec<H::Output>) {
        self.finish_marked(out, &mut Vec::new());
    }

    /// `finish`, telling `marks` each connection's id and where its outputs end in `out`.
    pub fn finish_marked(&mut self, out: &mut Vec<H::Output>, marks: &mut Vec<(u64, usize)>) {
        let mut conns: Vec<Conn<H>> = self.conns.drain().map(|(_, c)| c).collect();
        conns.sort_by_key(|c| c.info.id);
        self.closed.clear();
        for mut conn in conns {
            flush(&mut conn, &mut self.stats, out);
            let ts = conn.last_ts;
            conn.handler.on_close(&conn.info, ts, out);
            marks.push((conn.info.id, out.len()));
        }
    }
}

/// Takes one data segment: delivers it when it is next, trims what was already delivered, holds
/// it when it is early. A hole that holds more than the bound is given up as a gap.
#[allow(clippy::too_many_arguments)]
fn accept<H: ConnHandler>(
    conn: &mut Conn<H>,
    dir: Dir,
    seq: u32,
    payload: &[u8],
    ts: u64,
    (interface, copy): (u32, bool),
    limits: Limits,
    stats: &mut ReassemblyStats,
    out: &mut Vec<H::Output>,
) {
    let stream = &mut conn.streams[dir as usize];
    let next = stream.next.expect("set before data");
    let carried_before = stream.carried(interface, seq.wrapping_add(payload.len() as u32));
    let ahead = seq.wrapping_sub(next) as i32;
    if ahead > 0 {
        stats.out_of_order_segments += 1;
        stream.pending_bytes += payload.len();
        stream.pending.push((seq, payload.to_vec(), ts));
        if stream.pending_bytes > limits.pending_per_direction {
            skip_to_earliest(conn, dir, stats);
            drain(conn, dir, stats, out);
        }
        return;
    }
    // Exactly half the sequence space away is neither ahead nor behind: an old copy, like any
    // segment that far behind (`-i32::MIN` overflowed: found by the reassembly fuzz target).
    let already = ahead.unsigned_abs() as usize;
    if already >= payload.len() {
        // Counted once, on the interface the connection was first seen on, and only when that
        // interface carried these bytes before.
        match copy || !carried_before {
            true => stats.copies += 1,
            false => {
                stats.retransmitted_bytes += payload.len() as u64;
                conn.info.life.retransmissions += 1;
            }
        }
        return;
    }
    stats.retransmitted_bytes += already as u64;
    let fresh = &payload[already..];
    stream.next = Some(next.wrapping_add(fresh.len() as u32));
    conn.info.life.bytes[dir as usize] += fresh.len() as u64;
    conn.info.seq[dir as usize] = next;
    conn.handler.on_data(&conn.info, dir, ts, fresh, out);
    drain(conn, dir, stats, out);
}

/// Delivers held segments that have become next.
fn drain<H: ConnHandler>(conn: &mut Conn<H>, dir: Dir, stats: &mut ReassemblyStats, out: &mut Vec<H::Output>) {
    loop {
        let stream = &mut conn.streams[dir as usize];
        let next = stream.next.expect("set before data");
        let Some(i) = stream.pending.iter().position(|(seq, _, _)| seq.wrapping_sub(next) as i32 <= 0) else {
            return;
        };
        let (seq, bytes, ts) = stream.pending.swap_remove(i);
        stream.pending_bytes -= bytes.len();
        let already = next.wrapping_sub(seq) as usize;
        if already >= bytes.len() {
            stats.retransmitted_bytes += bytes.len() as u64;
            continue;
        }
        stats.retransmitted_bytes += already as u64;
        stream.next = Some(next.wrapping_add((bytes.len() - already) as u32));
        conn.info.life.bytes[dir as usize] += (bytes.len() - already) as u64;
        conn.info.seq[dir as usize] = next;
        conn.handler.on_data(&conn.info, dir, ts, &bytes[already..], out);
    }
}

/// Gives up on the hole before the earliest held segment: tells the handler, moves past it.
fn skip_to_earliest<H: ConnHandler>(conn: &mut Conn<H>, dir: Dir, stats: &mut ReassemblyStats) {
    let stream = &mut conn.streams[dir as usize];
    let next = stream.next.expect("set before data");
    let Some(earliest) = stream.pending.iter().map(|(s, _, _)| *s).min_by_key(|s| s.wrapping_sub(next)) else {
        return;
    };
    let hole = u64::from(earliest.wrapping_sub(next));
    stream.next = Some(earliest);
    stats.gaps += 1;
    stats.gap_bytes += hole;
    conn.info.life.gaps += 1;
    conn.handler.on_gap(&conn.info, dir, hole);
}

/// At close: whatever is still held is delivered after its gaps.
fn flush<H: ConnHandler>(conn: &mut Conn<H>, stats: &mut ReassemblyStats, out: &mut Vec<H::Output>) {
    for dir in [Dir::AtoB, Dir::BtoA] {
        while !conn.streams[dir as usize].pending.is_empty() {
            skip_to_earliest(conn, dir, stats);
            drain(conn, dir, stats, out);
        }
    }
}

#[cfg(test)]
mod tests;
