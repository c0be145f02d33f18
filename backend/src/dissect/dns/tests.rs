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
    let q = message(1, QUERY, 1, &[]);
    assert!(parse(&q[..q.len() - 3]).is_err(), "the question cut short");
    assert!(parse(&[]).is_err());
    // An answer cut short still tells what was asked and how it went.
    let cut = parse(&whole[..whole.len() - 3]).unwrap();
    assert_eq!((cut.id, cut.rcode, cut.question.unwrap().1.as_str(), cut.answers.len()), (1, "NOERROR", "A", 0));
}

#[test]
fn types_and_records_the_crate_does_not_know_keep_their_question_and_rcode() {
    // QTYPEs 30 (NXT), 44 (SSHFP), 99 (SPF), 249 (TKEY), 256 (URI), 65534 (private): numeric.
    for (qtype, name) in
        [(30, "TYPE30"), (44, "TYPE44"), (99, "TYPE99"), (249, "TYPE249"), (256, "TYPE256"), (65534, "TYPE65534")]
    {
        let q = parse(&message(3, QUERY, qtype, &[])).unwrap();
        assert_eq!(q.question.unwrap().1, name);
        let r = parse(&message(3, RESPONSE, qtype, &[])).unwrap();
        assert_eq!((r.response, r.rcode), (true, "NOERROR"));
    }
    // A NOERROR answer with an RRSIG (type 46) whose RDATA is garbage, and a TSIG (250) record.
    let rrsig: &[u8] = &[0xc0, 0x0c, 0, 46, 0, 1, 0, 0, 0, 5, 0, 3, 1, 2, 3];
    let tsig: &[u8] = &[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 2, 0xff, 0xff];
    let r = parse(&message(4, RESPONSE, 1, &[A_ANSWER, rrsig, tsig])).unwrap();
    assert_eq!((r.rcode, r.question.unwrap().0.as_str()), ("NOERROR", "web.default.svc.cluster.local"));
    // RCODEs past the classic six are named, not OTHER.
    assert_eq!(parse(&message(5, 0x8589, 1, &[])).unwrap().rcode, "NOTAUTH");
}

#[test]
fn a_retry_at_the_timeout_is_paired_with_the_answer_that_came() {
    let mut t = DnsTracker::default();
    let mut ids = || 1;
    let mut out = Vec::new();
    let q = message(6, QUERY, 1, &[]);
    t.on_datagram(&dgram(0, CLIENT, SERVER, &q), &mut ids, &mut out);
    t.on_datagram(&dgram(QUERY_TIMEOUT_US, CLIENT, SERVER, &q), &mut ids, &mut out); // the resolver's retry
    t.sweep(QUERY_TIMEOUT_US + 1_000, &mut out);
    let answer = message(6, RESPONSE, 1, &[A_ANSWER]);
    t.on_datagram(&dgram(QUERY_TIMEOUT_US + 2_000, SERVER, CLIENT, &answer), &mut ids, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].ts_us, out[0].response_ts_us), (0, Some(QUERY_TIMEOUT_US + 2_000)));
    assert_eq!((t.stats.retransmitted_queries, t.stats.timed_out, t.stats.unmatched_responses), (1, 0, 0));
}

#[test]
fn copies_on_other_interfaces_are_one_query_and_one_answer() {
    // `tcpdump -i any`: the veth and the bridge each carry the query and the answer; a live
    // capture may read one interface's copies a second after the other's.
    let mut t = DnsTracker::default();
    let mut ids = || 1;
    let mut out = Vec::new();
    let (q, a) = (message(8, QUERY, 1, &[]), message(8, RESPONSE, 1, &[A_ANSWER]));
    let on = |iface, ts, from, to, p| Datagram { interface: iface, ..dgram(ts, from, to, p) };
    t.on_datagram(&on(1, 100, CLIENT, SERVER, &q), &mut ids, &mut out);
    t.on_datagram(&on(4, 110, CLIENT, SERVER, &q), &mut ids, &mut out);
    t.on_datagram(&on(1, 900, SERVER, CLIENT, &a), &mut ids, &mut out);
    t.on_datagram(&on(4, 1_000_900, SERVER, CLIENT, &a), &mut ids, &mut out);
    t.on_datagram(&on(4, 1_000_950, CLIENT, SERVER, &q), &mut ids, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].points, out[0].interface), (2, 1));
    assert_eq!((t.stats.queries, t.stats.copies, t.stats.unmatched_responses), (1, 3, 0));
}

fn dgram<'a>(ts: u64, from: &str, to: &str, payload: &'a [u8]) -> Datagram<'a> {
    Datagram { ts_us: ts, interface: 2, src: from.parse().unwrap(), dst: to.parse().unwrap(), payload, tunnel: None }
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
