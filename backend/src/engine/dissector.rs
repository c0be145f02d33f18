//! The dissecting part of the front half: TCP segments and DNS datagrams → dissected exchanges
//! (reassemble, dissect). One per front; a file's sharded run has one per shard, each holding the
//! connections whose address pairs fall to it.

use std::net::SocketAddr;

use crate::capture::{Frame, LinkType};
use crate::decode::defrag::Whole;
use crate::decode::{Datagram, Decoded, Segment, transport};
use crate::dissect::any::AnyProtocol;
use crate::dissect::dns::{DnsTracker, QueryOrder};
use crate::dissect::{Dissected, Exchange};
use crate::reassemble::{Limits, Reassembler};

use super::EngineStats;

/// What a frame gives the dissector.
pub(crate) enum Work<'a> {
    Tcp(Segment<'a>),
    /// A datagram on a DNS port.
    Dns(Datagram<'a>),
    /// A packet put back together from fragments (a TCP segment or DNS datagram), decoded again
    /// where it is dissected; `pair` is its address pair.
    Whole {
        ts_us: u64,
        interface: u32,
        whole: Whole,
        pair: (SocketAddr, SocketAddr),
    },
}

impl Work<'_> {
    /// Its source and destination.
    pub fn pair(&self) -> (SocketAddr, SocketAddr) {
        match self {
            Work::Tcp(s) => (s.src, s.dst),
            Work::Dns(d) => (d.src, d.dst),
            Work::Whole { pair, .. } => *pair,
        }
    }

    /// Which of `shards` holds its connection: by its address pair, whichever way it flows, so
    /// both directions and every interface's copy land together. (A sum of the two ends, mixed by
    /// one multiplication: hashing the sorted pair as `SocketAddr`s cost the reader a tenth of
    /// its time.)
    pub fn shard(&self, shards: usize) -> usize {
        let (a, b) = self.pair();
        let mixed = end_bits(a).wrapping_add(end_bits(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The high bits: the multiplication carries every lower bit up into them.
        ((mixed >> 32) % shards as u64) as usize
    }
}

/// One end of a connection folded into 64 bits, its port in the lowest: a multiplication carries
/// low bits up into the high ones it is read from, never down.
fn end_bits(a: SocketAddr) -> u64 {
    let ip = match a.ip() {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => {
            let x = u128::from(v6);
            (x as u64) ^ ((x >> 64) as u64).rotate_left(29)
        }
    };
    ip.rotate_left(16) ^ u64::from(a.port())
}

/// Where a group of one frame's exchanges goes among those other dissectors made of the same
/// frame, as one dissector orders them: the TCP exchanges of the frame's own segment, those of
/// the connections a sweep (or the end) closed by id, the DNS exchange of its own datagram, then
/// the queries a sweep gave up by their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Place {
    Segment,
    Closed(u64),
    Datagram,
    GivenUp(QueryOrder),
}

/// Segments and datagrams → dissected exchanges.
pub(crate) struct Dissector {
    tcp: Reassembler<AnyProtocol>,
    dns: DnsTracker,
    dns_out: Vec<Exchange>,
    scratch: Vec<Dissected>,
    stats: EngineStats,
}

impl Default for Dissector {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Dissector {
    pub fn new(limits: Limits) -> Self {
        Self {
            tcp: Reassembler::new(limits),
            dns: DnsTracker::default(),
            dns_out: Vec::new(),
            scratch: Vec::new(),
            stats: EngineStats::default(),
        }
    }

    /// One frame's work; `number` (a file's frame number) numbers the connection or flow it
    /// opens. Gives back a packet put back together, whose buffer can serve again.
    pub fn on_work(&mut self, work: Work<'_>, number: Option<u64>) -> Option<Whole> {
        if let Some(n) = number {
            self.tcp.number_next(n);
        }
        match work {
            Work::Tcp(seg) => self.tcp.on_segment(&seg, &mut self.scratch),
            Work::Dns(d) => self.on_dns(&d),
            Work::Whole { ts_us, interface, whole, .. } => {
                // The decoder classified it already: decoded again, it is the same.
                let frame = Frame { ts_us, interface, link: LinkType::Ethernet, data: &[] };
                let p = &whole.packet;
                match transport(&frame, whole.src, whole.dst, p.ip_number, &p.payload) {
                    Ok(Decoded::Tcp(seg)) => self.tcp.on_segment(&seg, &mut self.scratch),
                    Ok(Decoded::Udp(d)) => self.on_dns(&d),
                    _ => {}
                }
                return Some(whole);
            }
        }
        None
    }

    fn on_dns(&mut self, d: &Datagram<'_>) {
        let tcp = &mut self.tcp;
        self.dns.on_datagram(d, &mut || tcp.allocate_id(), &mut self.dns_out);
    }

    /// Closes idle connections and gives up on unanswered queries, as of `now_us`.
    pub fn sweep(&mut self, now_us: u64) {
        self.tcp.sweep(now_us, &mut self.scratch);
        self.dns.sweep(now_us, &mut self.dns_out);
    }

    /// `on_work` for a sharded run: its exchanges onto `to`, and where each kind ends to `marks`.
    pub fn work_into(&mut self, work: Work<'_>, number: u64, to: &mut Vec<Dissected>, marks: &mut Vec<(Place, usize)>) {
        self.on_work(work, Some(number));
        let base = to.len();
        let tcp = self.move_items(to);
        if tcp > 0 {
            marks.push((Place::Segment, base + tcp));
        }
        if to.len() > base + tcp {
            marks.push((Place::Datagram, to.len()));
        }
    }

    /// `sweep` onto `to`, telling `marks` where each connection's and query's exchanges end.
    pub fn sweep_into(&mut self, now_us: u64, to: &mut Vec<Dissected>, marks: &mut Vec<(Place, usize)>) {
        let (mut conns, mut queries) = (Vec::new(), Vec::new());
        self.tcp.sweep_marked(now_us, &mut self.scratch, &mut conns);
        self.dns.sweep_marked(now_us, &mut self.dns_out, &mut queries);
        self.move_marked(to, conns, queries, marks);
    }

    /// End of input: every connection closed, every query given up, onto `to` with `marks` as
    /// `sweep_into`.
    pub fn finish_into(&mut self, to: &mut Vec<Dissected>, marks: &mut Vec<(Place, usize)>) {
        let (mut conns, mut queries) = (Vec::new(), Vec::new());
        self.tcp.finish_marked(&mut self.scratch, &mut conns);
        self.dns.finish_marked(&mut self.dns_out, &mut queries);
        self.move_marked(to, conns, queries, marks);
    }

    fn move_marked(
        &mut self,
        to: &mut Vec<Dissected>,
        conns: Vec<(u64, usize)>,
        queries: Vec<QueryOrder>,
        marks: &mut Vec<(Place, usize)>,
    ) {
        // The frame's own exchanges were moved before: the scratch holds only what closed.
        let base = to.len();
        let tcp = self.scratch.len();
        marks.extend(conns.into_iter().map(|(id, end)| (Place::Closed(id), base + end)));
        marks.extend(queries.into_iter().enumerate().map(|(i, q)| (Place::GivenUp(q), base + tcp + i + 1)));
        self.move_items(to);
    }

    /// The last frames' exchanges onto the end of `to`: TCP's, then DNS's. Returns how many were
    /// TCP's.
    pub fn move_items(&mut self, to: &mut Vec<Dissected>) -> usize {
        for d in &self.scratch {
            self.stats.dns_over_tcp += u64::from(matches!(d, Dissected::Exchange(ex) if ex.dns().is_some()));
        }
        let tcp = self.scratch.len();
        to.append(&mut self.scratch);
        // Called for every frame, and most frames finish no DNS query.
        if !self.dns_out.is_empty() {
            to.extend(self.dns_out.drain(..).map(|ex| Dissected::Exchange(Box::new(ex))));
        }
        tcp
    }

    /// The capture of `interface` ended (`Reassembler::end_interface`).
    pub fn end_interface(&mut self, interface: u32, now_us: u64) {
        self.tcp.end_interface(interface, now_us, &mut self.scratch);
    }

    /// End of input: every connection closed, every query given up (into the items).
    pub fn finish(&mut self) {
        self.tcp.finish(&mut self.scratch);
        self.dns.finish(&mut self.dns_out);
    }

    /// What this part counted.
    pub fn stats(&self) -> EngineStats {
        EngineStats { tcp: self.tcp.stats, dns: self.dns.stats, ..self.stats }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(src: &str, dst: &str) -> Work<'static> {
        Work::Tcp(Segment {
            ts_us: 0,
            interface: 0,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq: 0,
            flags: Default::default(),
            payload: &[],
            tunnel: None,
        })
    }

    /// Both directions of a connection go to one shard, and many clients of one server spread
    /// over every shard (the bench's capture: one client pod, two server pods).
    #[test]
    fn a_connection_has_one_shard_and_connections_spread() {
        for (a, b) in [("10.244.0.9:40000", "10.96.0.10:80"), ("[fd00::9]:40000", "[fd00:10::a]:80")] {
            for shards in 1..=8 {
                assert_eq!(segment(a, b).shard(shards), segment(b, a).shard(shards), "{a} {b} on {shards}");
            }
        }
        for shards in [2, 3, 4] {
            let mut counts = vec![0; shards];
            for port in 30_000..32_000 {
                for server in ["10.244.0.11:80", "10.244.0.12:80"] {
                    counts[segment(&format!("10.244.0.9:{port}"), server).shard(shards)] += 1;
                }
            }
            let fair = 4_000 / shards;
            assert!(counts.iter().all(|&c| c > fair * 8 / 10 && c < fair * 12 / 10), "{shards} shards: {counts:?}");
        }
    }
}
