//! DNS over UDP (RFC 1035 §4.1, §4.2.1): queries paired with responses by transaction id,
//! question and address pair. The header and question are parsed here, answers by simple-dns;
//! this file decides what is a DNS message (port 53 or 5353 *and* a sane header), pairs, folds
//! copies and retries, and times out queries nobody answered. A retried query keeps its first
//! timestamp, so latency counts the client's real wait.

use rustc_hash::FxHashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use podtap_shared::{Detail, DnsExchange};
use simple_dns::Packet;
use simple_dns::rdata::RData;

use super::Exchange;
use crate::decode::Datagram;

/// A query unanswered for this long (capture time) is reported without a response.
pub const QUERY_TIMEOUT_US: u64 = 5_000_000;
/// Queries waiting for a response at once; beyond it new queries are counted and dropped.
const MAX_PENDING: usize = 65_536;

/// One parsed DNS message: what pairing and records need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    pub response: bool,
    pub rcode: &'static str,
    /// The first question: name (no trailing dot) and type.
    pub question: Option<(String, String)>,
    pub answers: Vec<String>,
}

/// Why a datagram on a DNS port is not a DNS message.
#[derive(Debug, thiserror::Error)]
#[error("not a DNS message: {0}")]
pub struct DnsError(String);

/// Parses one DNS message. The header and the first question are read here, by hand, so a
/// message whose records simple-dns cannot parse (unknown types, TSIG, a damaged answer) still
/// gives its id, question, flags and rcode; simple-dns then reads the answers it can.
pub fn parse(payload: &[u8]) -> Result<Message, DnsError> {
    let (id, flags, questions) = header(payload).ok_or_else(|| DnsError("shorter than its 12-byte header".into()))?;
    if questions > 4 || (flags >> 11) & 0xf > 6 {
        return Err(DnsError(format!("{questions} questions, opcode {}", (flags >> 11) & 0xf)));
    }
    let question = match questions {
        0 => None,
        _ => Some(first_question(payload).ok_or_else(|| DnsError("its question is cut short or loops".into()))?),
    };
    let answers = match Packet::parse(payload) {
        Ok(packet) => packet.answers.iter().filter_map(|rr| answer(&rr.rdata)).collect(),
        Err(_) => Vec::new(),
    };
    Ok(Message { id, response: flags & 0x8000 != 0, rcode: rcode_name(flags & 0x000f), question, answers })
}

/// RFC 1035 §4.1.1: id, flags, question count.
fn header(m: &[u8]) -> Option<(u16, u16, u16)> {
    let be = |at: usize| m.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    Some((be(0)?, be(2)?, be(4).filter(|_| m.len() >= 12)?))
}

/// RFC 1035 §4.1.2 and §4.1.4: the first question's name (compression pointers followed, at most
/// 64 jumps) and type.
fn first_question(m: &[u8]) -> Option<(String, String)> {
    let mut name = String::new();
    let (mut at, mut end, mut jumps) = (12usize, None, 0);
    loop {
        let len = *m.get(at)? as usize;
        match len {
            0 => break,
            l if l & 0xc0 == 0xc0 => {
                jumps += 1;
                if jumps > 64 {
                    return None;
                }
                end.get_or_insert(at + 2);
                at = ((l & 0x3f) << 8) | *m.get(at + 1)? as usize;
            }
            l if l < 64 => {
                let label = m.get(at + 1..at + 1 + l)?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }));
                at += 1 + l;
            }
            _ => return None,
        }
    }
    let after = end.unwrap_or(at + 1);
    let qtype = m.get(after..after + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))?;
    Some((name, qtype_name(qtype)))
}

fn answer(rdata: &RData) -> Option<String> {
    match rdata {
        RData::A(a) => Some(IpAddr::V4(Ipv4Addr::from(a.address)).to_string()),
        RData::AAAA(a) => Some(IpAddr::V6(Ipv6Addr::from(a.address)).to_string()),
        RData::CNAME(c) => Some(c.0.to_string().trim_end_matches('.').to_string()),
        _ => None,
    }
}

fn qtype_name(n: u16) -> String {
    match n {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => format!("TYPE{n}"),
    }
}

/// RFC 1035 §4.1.1 and RFC 2136 §2.2: the header's 4-bit RCODE.
fn rcode_name(r: u16) -> &'static str {
    const NAMES: [&str; 16] = [
        "NOERROR",
        "FORMERR",
        "SERVFAIL",
        "NXDOMAIN",
        "NOTIMP",
        "REFUSED",
        "YXDOMAIN",
        "YXRRSET",
        "NXRRSET",
        "NOTAUTH",
        "NOTZONE",
        "DSOTYPENI",
        "RCODE12",
        "RCODE13",
        "RCODE14",
        "RCODE15",
    ];
    NAMES[usize::from(r & 0xf)]
}

/// Counters for what could not be paired or parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DnsStats {
    pub queries: u64,
    pub responses: u64,
    pub malformed: u64,
    pub unmatched_responses: u64,
    pub retransmitted_queries: u64,
    pub timed_out: u64,
    pub over_limit: u64,
    /// Copies of a query or answer already seen on another interface.
    pub copies: u64,
}

/// One query: the client socket, the server it was sent to, the id and what was asked (a retry
/// asks the same with the same id; another query may reuse an id with another question).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    client: SocketAddr,
    server: SocketAddr,
    id: u16,
    question: u64,
}

struct Pending {
    ts_us: u64,
    /// When it was last sent: a retry restarts the timeout.
    last_us: u64,
    interface: u32,
    points: u8,
    tunnel: Option<podtap_shared::Tunnel>,
    size: u64,
    flow: u64,
    query: String,
    qtype: String,
}

/// Where a query reported unanswered goes among others reported at once: (time, flow, id, question).
pub type QueryOrder = (u64, u64, u64, u64);

/// Pairs DNS queries and responses. A query is its client socket, server, id and question,
/// wherever it was seen: copies on several interfaces are one query, and its retries (the same
/// again, later, on the same interface) are folded into it and restart its timeout.
#[derive(Default)]
pub struct DnsTracker {
    pending: FxHashMap<Key, Pending>,
    /// Queries answered lately, for the copies of query and answer still on their way.
    answered: FxHashMap<Key, u64>,
    /// (client, server) → flow id and last use: the `conn` of DNS records.
    flows: FxHashMap<(SocketAddr, SocketAddr), (u64, u64)>,
    pub stats: DnsStats,
}

/// Port 53 (DNS) or 5353 (mDNS) on either side.
pub fn on_dns_port(d: &Datagram<'_>) -> bool {
    [d.src.port(), d.dst.port()].iter().any(|p| *p == 53 || *p == 5353)
}

/// A copy of one datagram on another interface reaches the capture within this (capture time);
/// a client's retry comes a second or more later.
const COPY_US: u64 = 2_000;

fn question_hash(q: &Option<(String, String)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    q.hash(&mut h);
    h.finish()
}

impl DnsTracker {
    /// Takes one datagram on a DNS port; `new_flow` hands out connection ids.
    pub fn on_datagram(&mut self, d: &Datagram<'_>, new_flow: &mut dyn FnMut() -> u64, out: &mut Vec<Exchange>) {
        let Ok(msg) = parse(d.payload) else {
            self.stats.malformed += 1;
            return;
        };
        let question = question_hash(&msg.question);
        if !msg.response {
            let key = Key { client: d.src, server: d.dst, id: msg.id, question };
            if let Some(p) = self.pending.get_mut(&key) {
                if d.interface != p.interface || d.ts_us.saturating_sub(p.last_us) < COPY_US {
                    self.stats.copies += 1;
                    p.points = p.points.saturating_add(u8::from(d.interface != p.interface));
                } else {
                    self.stats.queries += 1;
                    self.stats.retransmitted_queries += 1;
                    p.last_us = d.ts_us;
                }
                return;
            }
            if self.answered.get(&key).is_some_and(|at| d.ts_us.saturating_sub(*at) <= QUERY_TIMEOUT_US) {
                self.stats.copies += 1;
                return;
            }
            self.stats.queries += 1;
            if self.pending.len() >= MAX_PENDING {
                self.stats.over_limit += 1;
                return;
            }
            let flow = self.flows.entry((d.src, d.dst)).or_insert_with(|| (new_flow(), d.ts_us));
            flow.1 = d.ts_us;
            let (query, qtype) = msg.question.unwrap_or_default();
            let p = Pending {
                ts_us: d.ts_us,
                last_us: d.ts_us,
                interface: d.interface,
                points: 1,
                tunnel: d.tunnel,
                size: d.payload.len() as u64,
                flow: flow.0,
                query,
                qtype,
            };
            self.pending.insert(key, p);
            return;
        }
        let key = Key { client: d.dst, server: d.src, id: msg.id, question };
        // An answer without its question (some servers' errors) pairs by id alone.
        let key = match msg.question.is_none() && !self.pending.contains_key(&key) {
            true => self
                .pending
                .keys()
                .find(|k| (k.client, k.server, k.id) == (key.client, key.server, key.id))
                .copied()
                .unwrap_or(key),
            false => key,
        };
        let Some(p) = self.pending.remove(&key) else {
            match self.answered.contains_key(&key) {
                true => self.stats.copies += 1,
                false => {
                    self.stats.responses += 1;
                    self.stats.unmatched_responses += 1;
                }
            }
            return;
        };
        self.stats.responses += 1;
        self.answered.insert(key, d.ts_us);
        let (query, qtype) = (p.query.clone(), p.qtype.clone());
        let dns = DnsExchange { query, qtype, rcode: Some(msg.rcode.to_string()), answers: msg.answers };
        let sizes = (p.size, d.payload.len() as u64);
        out.push(exchange(key, &p, Some(d.ts_us), sizes, dns));
    }

    /// Reports queries unanswered for longer than the timeout (since they were last sent), and
    /// forgets idle flows and old answers.
    pub fn sweep(&mut self, now_us: u64, out: &mut Vec<Exchange>) {
        self.sweep_marked(now_us, out, &mut Vec::new());
    }

    /// `sweep`, telling `marks` the order of each query reported (`DnsTracker::order`).
    pub fn sweep_marked(&mut self, now_us: u64, out: &mut Vec<Exchange>, marks: &mut Vec<QueryOrder>) {
        let expired: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| now_us.saturating_sub(p.last_us) > QUERY_TIMEOUT_US)
            .map(|(k, _)| *k)
            .collect();
        self.expire(expired, out, marks);
        self.flows.retain(|_, (_, last)| now_us.saturating_sub(*last) <= QUERY_TIMEOUT_US);
        self.answered.retain(|_, at| now_us.saturating_sub(*at) <= QUERY_TIMEOUT_US);
    }

    /// End of input: every query still waiting is reported without a response.
    pub fn finish(&mut self, out: &mut Vec<Exchange>) {
        self.finish_marked(out, &mut Vec::new());
    }

    /// `finish`, telling `marks` the order of each query reported.
    pub fn finish_marked(&mut self, out: &mut Vec<Exchange>, marks: &mut Vec<QueryOrder>) {
        let all: Vec<Key> = self.pending.keys().copied().collect();
        self.expire(all, out, marks);
        self.answered.clear();
        self.flows.clear();
    }

    /// Where a waiting query goes among others reported at once: by its time, then its flow, id
    /// and question, so trackers that each hold some of a capture's flows agree with one that
    /// holds them all.
    fn order(&self, key: &Key) -> QueryOrder {
        let p = &self.pending[key];
        (p.ts_us, p.flow, u64::from(key.id), key.question)
    }

    fn expire(&mut self, mut keys: Vec<Key>, out: &mut Vec<Exchange>, marks: &mut Vec<QueryOrder>) {
        keys.sort_by_cached_key(|k| self.order(k));
        for key in keys {
            marks.push(self.order(&key));
            let p = self.pending.remove(&key).expect("listed");
            self.stats.timed_out += 1;
            let dns = DnsExchange { query: p.query.clone(), qtype: p.qtype.clone(), rcode: None, answers: Vec::new() };
            out.push(exchange(key, &p, None, (p.size, 0), dns));
        }
    }
}

fn exchange(key: Key, p: &Pending, resp_ts: Option<u64>, (req, resp): (u64, u64), dns: DnsExchange) -> Exchange {
    Exchange {
        conn: p.flow,
        opened_us: None,
        interface: p.interface,
        points: p.points,
        tunnel: p.tunnel.map(Box::new),
        proxied: None,
        client: key.client,
        server: key.server,
        ts_us: p.ts_us,
        response_ts_us: resp_ts,
        end_us: None,
        request_size: req,
        response_size: resp,
        seq: None,
        detail: Detail::Dns(dns),
    }
}

#[cfg(test)]
pub(crate) mod tests;
