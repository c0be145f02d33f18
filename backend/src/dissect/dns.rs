//! DNS over UDP (RFC 1035 §4.1, §4.2.1): queries paired with responses by transaction id and
//! address pair, per interface. Parsing is simple-dns's; this file decides what is a DNS message
//! (port 53 or 5353 *and* it parses as one), pairs, and times out queries nobody answered.
//! A retransmitted query keeps its first timestamp, so latency counts the client's real wait.

use rustc_hash::FxHashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use podtap_shared::{Detail, DnsExchange};
use simple_dns::rdata::RData;
use simple_dns::{Packet, PacketFlag, QTYPE, RCODE};

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

/// Parses one DNS message.
pub fn parse(payload: &[u8]) -> Result<Message, DnsError> {
    let packet = Packet::parse(payload).map_err(|e| DnsError(e.to_string()))?;
    let question = packet.questions.first().map(|q| {
        let name = q.qname.to_string();
        (name.trim_end_matches('.').to_string(), qtype_name(q.qtype))
    });
    let answers = packet
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::A(a) => Some(IpAddr::V4(Ipv4Addr::from(a.address)).to_string()),
            RData::AAAA(a) => Some(IpAddr::V6(Ipv6Addr::from(a.address)).to_string()),
            RData::CNAME(c) => Some(c.0.to_string().trim_end_matches('.').to_string()),
            _ => None,
        })
        .collect();
    Ok(Message {
        id: packet.id(),
        response: packet.has_flags(PacketFlag::RESPONSE),
        rcode: rcode_name(packet.rcode()),
        question,
        answers,
    })
}

fn qtype_name(q: QTYPE) -> String {
    let n = u16::from(q);
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

fn rcode_name(r: RCODE) -> &'static str {
    match r {
        RCODE::NoError => "NOERROR",
        RCODE::FormatError => "FORMERR",
        RCODE::ServerFailure => "SERVFAIL",
        RCODE::NameError => "NXDOMAIN",
        RCODE::NotImplemented => "NOTIMP",
        RCODE::Refused => "REFUSED",
        _ => "OTHER",
    }
}

/// Counters for what could not be paired or parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DnsStats {
    pub queries: u64,
    pub responses: u64,
    pub malformed: u64,
    pub unmatched_responses: u64,
    pub retransmitted_queries: u64,
    pub timed_out: u64,
    pub over_limit: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    interface: u32,
    client: SocketAddr,
    server: SocketAddr,
    id: u16,
}

struct Pending {
    ts_us: u64,
    size: u64,
    flow: u64,
    query: String,
    qtype: String,
}

/// Pairs DNS queries and responses seen on every interface.
#[derive(Default)]
pub struct DnsTracker {
    pending: FxHashMap<Key, Pending>,
    /// (interface, client, server) → flow id and last use: the `conn` of DNS records.
    flows: FxHashMap<(u32, SocketAddr, SocketAddr), (u64, u64)>,
    pub stats: DnsStats,
}

/// Port 53 (DNS) or 5353 (mDNS) on either side.
pub fn on_dns_port(d: &Datagram<'_>) -> bool {
    [d.src.port(), d.dst.port()].iter().any(|p| *p == 53 || *p == 5353)
}

impl DnsTracker {
    /// Takes one datagram on a DNS port; `new_flow` hands out connection ids.
    pub fn on_datagram(&mut self, d: &Datagram<'_>, new_flow: &mut dyn FnMut() -> u64, out: &mut Vec<Exchange>) {
        let Ok(msg) = parse(d.payload) else {
            self.stats.malformed += 1;
            return;
        };
        if !msg.response {
            self.stats.queries += 1;
            let key = Key { interface: d.interface, client: d.src, server: d.dst, id: msg.id };
            if self.pending.contains_key(&key) {
                self.stats.retransmitted_queries += 1;
                return;
            }
            if self.pending.len() >= MAX_PENDING {
                self.stats.over_limit += 1;
                return;
            }
            let flow = self.flows.entry((d.interface, d.src, d.dst)).or_insert_with(|| (new_flow(), d.ts_us));
            flow.1 = d.ts_us;
            let (query, qtype) = msg.question.unwrap_or_default();
            self.pending
                .insert(key, Pending { ts_us: d.ts_us, size: d.payload.len() as u64, flow: flow.0, query, qtype });
            return;
        }
        self.stats.responses += 1;
        let key = Key { interface: d.interface, client: d.dst, server: d.src, id: msg.id };
        let Some(p) = self.pending.remove(&key) else {
            self.stats.unmatched_responses += 1;
            return;
        };
        let dns =
            DnsExchange { query: p.query, qtype: p.qtype, rcode: Some(msg.rcode.to_string()), answers: msg.answers };
        out.push(exchange(key, p.flow, p.ts_us, Some(d.ts_us), p.size, d.payload.len() as u64, dns));
    }

    /// Reports queries older than the timeout as unanswered, and forgets idle flows.
    pub fn sweep(&mut self, now_us: u64, out: &mut Vec<Exchange>) {
        let expired: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| now_us.saturating_sub(p.ts_us) > QUERY_TIMEOUT_US)
            .map(|(k, _)| *k)
            .collect();
        self.expire(expired, out);
        self.flows.retain(|_, (_, last)| now_us.saturating_sub(*last) <= QUERY_TIMEOUT_US);
    }

    /// End of input: every query still waiting is reported without a response.
    pub fn finish(&mut self, out: &mut Vec<Exchange>) {
        let all: Vec<Key> = self.pending.keys().copied().collect();
        self.expire(all, out);
    }

    fn expire(&mut self, mut keys: Vec<Key>, out: &mut Vec<Exchange>) {
        keys.sort_by_key(|k| self.pending[k].ts_us);
        for key in keys {
            let p = self.pending.remove(&key).expect("listed");
            self.stats.timed_out += 1;
            let dns = DnsExchange { query: p.query, qtype: p.qtype, rcode: None, answers: Vec::new() };
            out.push(exchange(key, p.flow, p.ts_us, None, p.size, 0, dns));
        }
    }
}

fn exchange(key: Key, flow: u64, ts: u64, resp_ts: Option<u64>, req: u64, resp: u64, dns: DnsExchange) -> Exchange {
    Exchange {
        conn: flow,
        interface: key.interface,
        client: key.client,
        server: key.server,
        ts_us: ts,
        response_ts_us: resp_ts,
        request_size: req,
        response_size: resp,
        detail: Detail::Dns(dns),
    }
}

#[cfg(test)]
pub(crate) mod tests;
