//! DNS dissector tests on byte literals (RFC 1035 §4.1 layouts written out by hand).

use super::*;

/// Header (id, flags, 1 question, `an` answers, 0, 0) + question `web.default.svc.cluster.local`
/// of type `qtype`, class IN.
pub(crate) fn message(id: u16, flags: u16, qtype: u16, answers: &[&[u8]]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(id.to_be_bytes());
    m.extend(flags.to_be_bytes());
    m.extend([0, 1]);
    m.extend((answers.len() as u16).to_be_bytes());
    m.extend([0, 0, 0, 0]);
    for label in ["web", "default", "svc", "cluster", "local"] {
        m.push(label.len() as u8);
        m.extend(label.as_bytes());
    }
    m.push(0);
    m.extend(qtype.to_be_bytes());
    m.extend([0, 1]);
    for a in answers {
        m.extend(*a);
    }
    m
}

/// An A record for the question's name (compression pointer to offset 12), TTL 5, 10.96.12.34.
pub(crate) const A_ANSWER: &[u8] = &[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 96, 12, 34];
pub(crate) const QUERY: u16 = 0x0100; // RD
pub(crate) const RESPONSE: u16 = 0x8580; // QR AA RD RA, NOERROR
const NXDOMAIN: u16 = 0x8583;

#[test]
fn parses_a_query_and_its_answer() {
    let q = parse(&message(0x1234, QUERY, 1, &[])).unwrap();
    assert_eq!((q.id, q.response, q.rcode), (0x1234, false, "NOERROR"));
    assert_eq!(q.question, Some(("web.default.svc.cluster.local".into(), "A".into())));
    let r = parse(&message(0x1234, RESPONSE, 1, &[A_ANSWER])).unwrap();
    assert!(r.response);
    assert_eq!(r.answers, vec!["10.96.12.34".to_string()]);
    let nx = parse(&message(7, NXDOMAIN, 28, &[])).unwrap();
    assert_eq!((nx.rcode, nx.question.unwrap().1.as_str()), ("NXDOMAIN", "AAAA"));
}

#[test]
fn garbage_and_truncated_messages_are_errors() {
    assert!(parse(b"GET / HTTP/1.1\r\n\r\n").is_err());
    let whole = message(1, RESPONSE, 1, &[A_ANSWER]);
    assert!(parse(&whole[..whole.len() - 3]).is_err());
    assert!(parse(&[]).is_err());
}

fn dgram<'a>(ts: u64, from: &str, to: &str, payload: &'a [u8]) -> Datagram<'a> {
    Datagram { ts_us: ts, interface: 2, src: from.parse().unwrap(), dst: to.parse().unwrap(), payload }
}

const CLIENT: &str = "10.244.0.20:47664";
const SERVER: &str = "10.96.0.10:53";

#[test]
fn pairs_by_id_and_address_with_latency_and_keeps_a_retransmission_once() {
    let mut t = DnsTracker::default();
    let mut next = 100;
    let mut ids = || {
        next += 1;
        next
    };
    let mut out = Vec::new();
    let q_a = message(1, QUERY, 1, &[]);
    let q_aaaa = message(2, QUERY, 28, &[]);
    t.on_datagram(&dgram(1_000, CLIENT, SERVER, &q_a), &mut ids, &mut out);
    t.on_datagram(&dgram(1_010, CLIENT, SERVER, &q_aaaa), &mut ids, &mut out);
    t.on_datagram(&dgram(900_000, CLIENT, SERVER, &q_a), &mut ids, &mut out); // retransmitted
    t.on_datagram(&dgram(1_900, SERVER, CLIENT, &message(2, RESPONSE, 28, &[])), &mut ids, &mut out);
    t.on_datagram(&dgram(900_500, SERVER, CLIENT, &message(1, RESPONSE, 1, &[A_ANSWER])), &mut ids, &mut out);
    t.on_datagram(&dgram(900_600, SERVER, CLIENT, &message(9, RESPONSE, 1, &[])), &mut ids, &mut out);
    assert_eq!(out.len(), 2);
    let (aaaa, a) = (&out[0], &out[1]);
    let Detail::Dns(d) = &a.detail else { panic!("dns") };
    assert_eq!((d.qtype.as_str(), d.rcode.as_deref(), d.answers.len()), ("A", Some("NOERROR"), 1));
    assert_eq!((a.ts_us, a.response_ts_us), (1_000, Some(900_500)), "latency from the first try");
    assert_eq!(aaaa.response_ts_us, Some(1_900));
    assert_eq!(a.conn, aaaa.conn, "one socket, one flow");
    assert_eq!((a.client, a.server), (CLIENT.parse().unwrap(), SERVER.parse().unwrap()));
    assert_eq!((t.stats.queries, t.stats.retransmitted_queries, t.stats.unmatched_responses), (3, 1, 1));
}

#[test]
fn unanswered_queries_time_out_and_garbage_is_counted() {
    let mut t = DnsTracker::default();
    let mut ids = || 1;
    let mut out = Vec::new();
    t.on_datagram(&dgram(0, CLIENT, SERVER, &message(5, QUERY, 1, &[])), &mut ids, &mut out);
    t.on_datagram(&dgram(1, CLIENT, SERVER, b"\x00\x01garbage"), &mut ids, &mut out);
    t.sweep(QUERY_TIMEOUT_US - 1, &mut out);
    assert!(out.is_empty());
    t.sweep(QUERY_TIMEOUT_US + 1, &mut out);
    assert_eq!(out.len(), 1);
    let Detail::Dns(d) = &out[0].detail else { panic!("dns") };
    assert_eq!((d.rcode.as_deref(), out[0].response_ts_us), (None, None));
    assert_eq!((t.stats.timed_out, t.stats.malformed), (1, 1));
}

#[test]
fn only_dns_ports_are_candidates() {
    assert!(on_dns_port(&dgram(0, CLIENT, SERVER, b"")));
    assert!(on_dns_port(&dgram(0, "10.0.0.1:5353", "224.0.0.251:5353", b"")));
    assert!(!on_dns_port(&dgram(0, "10.0.0.1:4000", "10.0.0.2:123", b"")));
}
