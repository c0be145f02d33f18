//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message carries a two-byte length. Queries and
//! responses are paired by id within the connection (RFC 7766 allows several in flight, answered
//! in any order). The side that sends queries is the client. A gap loses the framing, so the
//! direction is given up and counted rather than guessed at.

use rustc_hash::FxHashMap;

use podtap_shared::{Detail, DnsExchange};

use super::dns::{Message, parse};
use super::{Dissected, Exchange, Timing};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

/// Queries in flight per connection beyond which new ones are not tracked.
const MAX_IN_FLIGHT: usize = 1024;

struct Query {
    ts_us: u64,
    size: u64,
    dir: Dir,
    query: String,
    qtype: String,
}

#[derive(Default)]
pub struct DnsTcp {
    buf: [Vec<u8>; 2],
    lost: [bool; 2],
    pending: FxHashMap<u16, Query>,
    /// Timestamp of the segment that began the message being buffered, per direction.
    started: [u64; 2],
}

/// True when `data` begins with one whole length-prefixed DNS message (content detection for
/// DNS over TCP off port 53).
pub fn looks_like_dns_tcp(data: &[u8]) -> bool {
    let Some(len) = data.get(..2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) else { return false };
    len >= 12 && data.len() >= 2 + len && parse(&data[2..2 + len]).is_ok_and(|m| m.question.is_some())
}

impl ConnHandler for DnsTcp {
    type Output = Dissected;

    fn new(_: &ConnInfo) -> Self {
        Self::default()
    }

    fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        let d = dir as usize;
        if self.lost[d] {
            return;
        }
        if self.buf[d].is_empty() {
            self.started[d] = ts_us;
        }
        self.buf[d].extend_from_slice(data);
        let mut at = 0;
        while let Some(len) = self.buf[d].get(at..at + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) {
            let Some(body) = self.buf[d].get(at + 2..at + 2 + len) else { break };
            match parse(body) {
                Ok(msg) => self.on_message(info, dir, self.started[d], (len + 2) as u64, msg, out),
                Err(_) => {
                    out.push(Dissected::NotThisProtocol);
                    self.lost[d] = true;
                    self.buf[d] = Vec::new();
                    return;
                }
            }
            at += 2 + len;
            self.started[d] = ts_us;
        }
        self.buf[d].drain(..at);
    }

    fn on_gap(&mut self, _info: &ConnInfo, dir: Dir, _len: u64) {
        self.lost[dir as usize] = true;
        self.buf[dir as usize] = Vec::new();
    }

    /// Queries still unanswered when the connection ends are reported without a response.
    fn on_close(&mut self, info: &ConnInfo, _ts_us: u64, out: &mut Vec<Dissected>) {
        let mut left: Vec<Query> = self.pending.drain().map(|(_, q)| q).collect();
        left.sort_by_key(|q| q.ts_us);
        for mut q in left {
            let (query, qtype) = (std::mem::take(&mut q.query), std::mem::take(&mut q.qtype));
            let dns = DnsExchange { query, qtype, rcode: None, answers: Vec::new() };
            out.push(exchange(info, q, None, dns));
        }
    }
}

impl DnsTcp {
    fn on_message(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, size: u64, msg: Message, out: &mut Vec<Dissected>) {
        if !msg.response {
            if self.pending.len() < MAX_IN_FLIGHT {
                let (query, qtype) = msg.question.unwrap_or_default();
                self.pending.insert(msg.id, Query { ts_us, size, dir, query, qtype });
            }
            return;
        }
        match self.pending.remove(&msg.id) {
            Some(mut q) => {
                let (query, qtype) = (std::mem::take(&mut q.query), std::mem::take(&mut q.qtype));
                let dns = DnsExchange { query, qtype, rcode: Some(msg.rcode.into()), answers: msg.answers };
                out.push(exchange(info, q, Some((ts_us, size)), dns));
            }
            None => out.push(Dissected::UnmatchedResponse),
        }
    }
}

fn exchange(info: &ConnInfo, q: Query, response: Option<(u64, u64)>, dns: DnsExchange) -> Dissected {
    let (client, server) = info.endpoints(q.dir);
    let timing = Timing {
        ts_us: q.ts_us,
        response_ts_us: response.map(|r| r.0),
        request_size: q.size,
        response_size: response.map_or(0, |r| r.1),
    };
    Dissected::Exchange(Box::new(Exchange::on(info, (client, server), timing, Detail::Dns(dns))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::dns::tests::{A_ANSWER, QUERY, RESPONSE, message};
    fn info() -> ConnInfo {
        ConnInfo::test(9, 2, "10.0.0.5:41000", "10.96.0.10:53")
    }

    /// A length-prefixed query (`answer` false) or response with one A record, of type `qtype`.
    fn framed(id: u16, qtype: u16, answer: bool) -> Vec<u8> {
        let body = if answer { message(id, RESPONSE, qtype, &[A_ANSWER]) } else { message(id, QUERY, qtype, &[]) };
        let mut out = (body.len() as u16).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    fn exchanges(out: &[Dissected]) -> Vec<&Exchange> {
        out.iter().filter_map(|d| if let Dissected::Exchange(e) = d { Some(&**e) } else { None }).collect()
    }

    #[test]
    fn two_queries_in_flight_answered_out_of_order_across_segment_cuts() {
        let mut d = DnsTcp::default();
        let mut out = Vec::new();
        let mut queries = framed(1, 1, false);
        queries.extend(framed(2, 28, false));
        assert!(looks_like_dns_tcp(&queries));
        // The client's bytes cut mid-length and mid-message.
        d.on_data(&info(), Dir::AtoB, 100, &queries[..1], &mut out);
        d.on_data(&info(), Dir::AtoB, 101, &queries[1..20], &mut out);
        d.on_data(&info(), Dir::AtoB, 102, &queries[20..], &mut out);
        let mut answers = framed(2, 28, true);
        answers.extend(framed(1, 1, true));
        d.on_data(&info(), Dir::BtoA, 200, &answers, &mut out);
        let ex = exchanges(&out);
        assert_eq!(ex.len(), 2);
        let Detail::Dns(aaaa) = &ex[0].detail else { panic!("not DNS") };
        assert_eq!((aaaa.qtype.as_str(), aaaa.answers.as_slice()), ("AAAA", &["10.96.12.34".to_string()][..]));
        assert_eq!((ex[0].ts_us, ex[0].response_ts_us), (102, Some(200)));
        assert_eq!((ex[1].ts_us, ex[1].conn, ex[1].interface), (100, 9, 2));
        assert_eq!(ex[1].client, "10.0.0.5:41000".parse().unwrap());
        assert_eq!(ex[1].server, "10.96.0.10:53".parse().unwrap());
    }

    #[test]
    fn garbage_gives_up_the_direction_and_unanswered_queries_close_without_rcode() {
        let mut d = DnsTcp::default();
        let mut out = Vec::new();
        d.on_data(&info(), Dir::AtoB, 1, &framed(7, 1, false), &mut out);
        d.on_data(&info(), Dir::BtoA, 2, b"\x00\x0cHTTP/1.1 200", &mut out);
        assert!(matches!(out[..], [Dissected::NotThisProtocol]));
        d.on_data(&info(), Dir::BtoA, 3, &framed(7, 1, true), &mut out);
        d.on_close(&info(), 4, &mut out);
        let ex = exchanges(&out);
        assert_eq!(ex.len(), 1);
        assert!(matches!(&ex[0].detail, Detail::Dns(dns) if dns.rcode.is_none()));
        assert!(!looks_like_dns_tcp(b"GET / HTTP/1.1\r\n"));
    }
}
