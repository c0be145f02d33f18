//! Reassembly tests: a recording handler shows exactly what a dissector would be given.

use super::*;
use crate::decode::TcpFlags;

#[derive(Debug, PartialEq)]
enum Ev {
    Data(Dir, Vec<u8>),
    Close(u64),
}

struct Recorder;

impl ConnHandler for Recorder {
    type Output = Ev;
    fn new(_: &ConnInfo) -> Self {
        Recorder
    }
    fn on_data(&mut self, _: &ConnInfo, dir: Dir, _: u64, data: &[u8], out: &mut Vec<Ev>) {
        out.push(Ev::Data(dir, data.to_vec()));
    }
    fn on_gap(&mut self, _: &ConnInfo, _: Dir, _: u64) {}
    fn on_close(&mut self, info: &ConnInfo, _: u64, out: &mut Vec<Ev>) {
        out.push(Ev::Close(info.id));
    }
}

const C: &str = "10.0.0.1:40000";
const S: &str = "10.0.0.2:80";

fn seg<'a>(from: &str, to: &str, seq: u32, flags: TcpFlags, payload: &'a [u8]) -> Segment<'a> {
    Segment {
        ts_us: 1,
        interface: 0,
        src: from.parse().unwrap(),
        dst: to.parse().unwrap(),
        seq,
        flags,
        payload,
        tunnel: None,
    }
}

const SYN: TcpFlags = TcpFlags { syn: true, ack: false, fin: false, rst: false };
const SYNACK: TcpFlags = TcpFlags { syn: true, ack: true, fin: false, rst: false };
const ACK: TcpFlags = TcpFlags { syn: false, ack: true, fin: false, rst: false };
const FIN: TcpFlags = TcpFlags { syn: false, ack: true, fin: true, rst: false };

/// Bytes handed over in direction AtoB (client → server), concatenated.
fn client_bytes(evs: &[Ev]) -> Vec<u8> {
    evs.iter().filter_map(|e| if let Ev::Data(Dir::AtoB, d) = e { Some(d.clone()) } else { None }).flatten().collect()
}

fn run(segments: &[Segment<'_>]) -> (Vec<Ev>, ReassemblyStats) {
    let mut r = Reassembler::<Recorder>::new(Limits::default());
    let mut out = Vec::new();
    for s in segments {
        r.on_segment(s, &mut out);
    }
    r.finish(&mut out);
    (out, r.stats)
}

#[test]
fn in_order_handshake_data_and_close() {
    let (evs, stats) = run(&[
        seg(C, S, 100, SYN, b""),
        seg(S, C, 500, SYNACK, b""),
        seg(C, S, 101, ACK, b"hello "),
        seg(C, S, 107, ACK, b"world"),
        seg(S, C, 501, ACK, b"ok"),
        seg(C, S, 112, FIN, b""),
        seg(S, C, 503, FIN, b""),
    ]);
    assert_eq!(client_bytes(&evs), b"hello world");
    assert_eq!(evs.last(), Some(&Ev::Close(1)));
    assert_eq!(evs.iter().filter(|e| matches!(e, Ev::Close(_))).count(), 1);
    assert_eq!(stats.connections, 1);
}

#[test]
fn retransmissions_overlaps_and_reordering_give_the_stream_once() {
    let (evs, stats) = run(&[
        seg(C, S, 100, SYN, b""),
        seg(C, S, 107, ACK, b"world"), // early
        seg(C, S, 101, ACK, b"hello "),
        seg(C, S, 101, ACK, b"hello "), // retransmitted
        seg(C, S, 104, ACK, b"lo wor"), // overlaps both
        seg(C, S, 112, ACK, b"!"),
    ]);
    assert_eq!(client_bytes(&evs), b"hello world!");
    assert_eq!(stats.out_of_order_segments, 1);
    assert_eq!(stats.retransmitted_bytes, 6 + 6);
}

#[test]
fn a_hole_that_never_fills_becomes_a_gap_at_close() {
    let (evs, stats) = run(&[seg(C, S, 100, SYN, b""), seg(C, S, 101, ACK, b"abc"), seg(C, S, 110, ACK, b"xyz")]);
    assert_eq!(client_bytes(&evs), b"abcxyz");
    assert_eq!((stats.gaps, stats.gap_bytes), (1, 6));
}

#[test]
fn joining_mid_stream_and_sequence_wraparound() {
    let (evs, _) = run(&[seg(C, S, u32::MAX - 1, ACK, b"ab"), seg(C, S, 0, ACK, b"cd")]);
    assert_eq!(client_bytes(&evs), b"abcd");
}

#[test]
fn a_segment_half_the_sequence_space_away_is_an_old_copy() {
    // 2^31 from the next byte: the one distance that is neither ahead nor behind.
    let (evs, stats) = run(&[
        seg(C, S, 100, SYN, b""),
        seg(C, S, 101, ACK, b"ab"),
        seg(C, S, 103u32.wrapping_add(1 << 31), ACK, b"zz"),
        seg(C, S, 103, ACK, b"cd"),
    ]);
    assert_eq!(client_bytes(&evs), b"abcd");
    assert_eq!(stats.retransmitted_bytes, 2);
}

#[test]
fn a_new_syn_after_close_is_a_new_connection() {
    let (evs, stats) = run(&[
        seg(C, S, 100, SYN, b""),
        seg(C, S, 101, ACK, b"one"),
        seg(C, S, 104, FIN, b""),
        seg(S, C, 9, FIN, b""),
        seg(C, S, 7000, SYN, b""),
        seg(C, S, 7001, ACK, b"two"),
    ]);
    assert_eq!(stats.connections, 2);
    assert_eq!(evs.iter().filter(|e| matches!(e, Ev::Close(_))).count(), 2);
    assert_eq!(client_bytes(&evs), b"onetwo");
}

#[test]
fn the_connection_bound_is_counted_not_exceeded() {
    let mut r = Reassembler::<Recorder>::new(Limits { max_connections: 1, ..Limits::default() });
    let mut out = Vec::new();
    r.on_segment(&seg(C, S, 1, SYN, b""), &mut out);
    r.on_segment(&seg("10.0.0.3:1", S, 1, SYN, b""), &mut out);
    assert_eq!(r.open_connections(), 1);
    assert_eq!(r.stats.connections_over_limit, 1);
}

#[test]
fn idle_connections_are_swept() {
    let mut r = Reassembler::<Recorder>::new(Limits { idle_timeout_us: 10, ..Limits::default() });
    let mut out = Vec::new();
    r.on_segment(&seg(C, S, 1, SYN, b""), &mut out);
    r.sweep(100, &mut out);
    assert_eq!(out, vec![Ev::Close(1)]);
    assert_eq!(r.stats.idle_closed, 1);
}

mod properties {
    //! A known stream, cut at random points, shuffled, with random segments sent twice and random
    //! overlapping retransmissions, always reassembles to itself, whatever the initial sequence
    //! number (wrap-around included). Both directions at once.
    use super::*;
    use proptest::prelude::*;

    /// A segment to send: client-to-server?, sequence number, bytes.
    type Send = (bool, u32, Vec<u8>);

    /// (start, end) cuts of `len` bytes at the given cut points.
    fn pieces(len: usize, mut cuts: Vec<usize>) -> Vec<(usize, usize)> {
        cuts.retain(|c| *c > 0 && *c < len);
        cuts.sort_unstable();
        cuts.dedup();
        let mut bounds = vec![0];
        bounds.extend(cuts);
        bounds.push(len);
        bounds.windows(2).map(|w| (w[0], w[1])).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn any_cut_reorder_and_duplication_gives_the_stream_back(
            up in proptest::collection::vec(any::<u8>(), 1..3000),
            down in proptest::collection::vec(any::<u8>(), 1..3000),
            up_cuts in proptest::collection::vec(0usize..3000, 0..40),
            down_cuts in proptest::collection::vec(0usize..3000, 0..40),
            isn_up in any::<u32>(),
            isn_down in any::<u32>(),
            order in proptest::collection::vec(any::<u32>(), 200),
            dupes in proptest::collection::vec(any::<bool>(), 200),
        ) {
            let mut segs: Vec<Send> = Vec::new();
            for (is_up, data, cuts, isn) in [(true, &up, up_cuts, isn_up), (false, &down, down_cuts, isn_down)] {
                for (i, (a, b)) in pieces(data.len(), cuts).into_iter().enumerate() {
                    let seq = isn.wrapping_add(1).wrapping_add(a as u32);
                    segs.push((is_up, seq, data[a..b].to_vec()));
                    if dupes[i % dupes.len()] {
                        segs.push((is_up, seq, data[a..b].to_vec())); // exact retransmission
                        let back = a.saturating_sub(7); // overlapping retransmission
                        segs.push((is_up, isn.wrapping_add(1).wrapping_add(back as u32), data[back..b].to_vec()));
                    }
                }
            }
            // Shuffle deterministically from the generated order keys.
            let mut keyed: Vec<(u32, Send)> =
                segs.into_iter().enumerate().map(|(i, s)| (order[i % order.len()].wrapping_mul(i as u32 + 1), s)).collect();
            keyed.sort_by_key(|(k, _)| *k);

            let mut r = Reassembler::<Recorder>::new(Limits::default());
            let mut out = Vec::new();
            r.on_segment(&seg(C, S, isn_up, SYN, b""), &mut out);
            r.on_segment(&seg(S, C, isn_down, SYNACK, b""), &mut out);
            for (_, (is_up, seq, data)) in &keyed {
                let (from, to) = if *is_up { (C, S) } else { (S, C) };
                r.on_segment(&seg(from, to, *seq, ACK, data), &mut out);
            }
            r.finish(&mut out);
            let got = |dir| -> Vec<u8> {
                out.iter().filter_map(|e| if let Ev::Data(d, b) = e { (*d == dir).then(|| b.clone()) } else { None }).flatten().collect()
            };
            prop_assert_eq!(got(Dir::AtoB), up);
            prop_assert_eq!(got(Dir::BtoA), down);
            prop_assert_eq!(r.stats.gaps, 0);
        }
    }
}

/// The segments of one whole connection, as one interface saw them.
fn whole_connection(interface: u32) -> Vec<Segment<'static>> {
    let on = |s: Segment<'static>| Segment { interface, ..s };
    vec![
        on(seg(C, S, 100, SYN, b"")),
        on(seg(S, C, 500, SYNACK, b"")),
        on(seg(C, S, 101, ACK, b"GET / HTTP/1.1\r\n\r\n")),
        on(seg(S, C, 501, FIN, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")),
        on(seg(C, S, 119, FIN, b"")),
    ]
}

#[test]
fn copies_on_another_interface_are_one_connection_interleaved_or_late() {
    // A pod-to-pod connection on both pods' veths (or a veth and its bridge): interleaved, as a
    // file has them, and each interface's copies in turn, as live rings are drained.
    let (a, b) = (whole_connection(1), whole_connection(2));
    let interleaved: Vec<Segment> = a.iter().zip(&b).flat_map(|(x, y)| [*x, *y]).collect();
    let in_turn: Vec<Segment> = a.iter().chain(&b).copied().collect();
    // The connection first seen on interface 1, but the client's segments reach interface 2
    // first (a request from another node: the node's eth0, then the server pod's veth): the
    // first interface's late copies are not retransmissions (the cluster's hub counted 24–36 on
    // connections that had none).
    let crossed: Vec<Segment> = a
        .iter()
        .zip(&b)
        .enumerate()
        .flat_map(|(i, (x, y))| if i >= 2 && x.src == C.parse().unwrap() { [*y, *x] } else { [*x, *y] })
        .collect();
    for segments in [interleaved, in_turn, crossed] {
        let (evs, stats) = run(&segments);
        assert_eq!(client_bytes(&evs), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(evs.iter().filter(|e| matches!(e, Ev::Close(_))).count(), 1, "{evs:?}");
        assert_eq!((stats.connections, stats.retransmitted_bytes), (1, 0));
        assert!(stats.copies >= 2, "{stats:?}");
    }
}

#[test]
fn a_retransmission_seen_on_two_interfaces_counts_once() {
    let on = |interface, s: Segment<'static>| Segment { interface, ..s };
    let mut segments = Vec::new();
    for s in [seg(C, S, 100, SYN, b""), seg(C, S, 101, ACK, b"hello"), seg(C, S, 101, ACK, b"hello")] {
        segments.extend([on(1, s), on(2, s)]);
    }
    let (evs, stats) = run(&segments);
    assert_eq!(client_bytes(&evs), b"hello");
    assert_eq!(stats.retransmitted_bytes, 5, "{stats:?}");
}

#[test]
fn a_new_connection_on_the_same_ports_after_close_is_not_a_copy() {
    let mut segments = whole_connection(1);
    // The port reused: another SYN, another initial sequence number.
    segments.push(seg(C, S, 90_000, SYN, b""));
    segments.push(seg(C, S, 90_001, ACK, b"again"));
    let (evs, stats) = run(&segments);
    assert_eq!(stats.connections, 2);
    assert_eq!(client_bytes(&evs), b"GET / HTTP/1.1\r\n\r\nagain");
}

#[test]
fn the_interfaces_that_carried_a_connection_are_counted() {
    struct Points;
    impl ConnHandler for Points {
        type Output = u8;
        fn new(_: &ConnInfo) -> Self {
            Points
        }
        fn on_data(&mut self, info: &ConnInfo, _: Dir, _: u64, _: &[u8], out: &mut Vec<u8>) {
            out.push(info.points);
        }
        fn on_gap(&mut self, _: &ConnInfo, _: Dir, _: u64) {}
        fn on_close(&mut self, _: &ConnInfo, _: u64, _: &mut Vec<u8>) {}
    }
    let mut r = Reassembler::<Points>::new(Limits::default());
    let mut out = Vec::new();
    let (a, b) = (whole_connection(1), whole_connection(2));
    for s in a.iter().zip(&b).flat_map(|(x, y)| [*x, *y]) {
        r.on_segment(&s, &mut out);
    }
    assert_eq!(out, [2, 2]);
}

#[test]
fn a_connection_closes_when_every_interface_that_carried_it_has_ended() {
    const D: &str = "10.0.0.3:40001";
    let mut r = Reassembler::<Recorder>::new(Limits::default());
    let mut out = Vec::new();
    // Connection 1: a request, no answer, seen on interface 0 only (a probe to a pod being
    // deleted). Connection 2: seen on interfaces 0 and 1 (a pod's veth and the node's eth0).
    r.on_segment(&seg(C, S, 100, SYN, b""), &mut out);
    r.on_segment(&seg(S, C, 500, SYNACK, b""), &mut out);
    r.on_segment(&seg(C, S, 101, ACK, b"GET / HTTP/1.1\r\n\r\n"), &mut out);
    let on = |iface, s: Segment<'static>| Segment { interface: iface, ..s };
    r.on_segment(&on(0, seg(D, S, 700, SYN, b"")), &mut out);
    r.on_segment(&on(1, seg(D, S, 700, SYN, b"")), &mut out);
    out.clear();
    r.end_interface(0, 2, &mut out);
    assert_eq!(out, [Ev::Close(1)], "only what interface 0 alone carried");
    assert_eq!(r.stats.interface_gone, 1);
    // Nothing of it is held any more: `finish` closes only the other one.
    out.clear();
    r.end_interface(1, 3, &mut out);
    assert_eq!(out, [Ev::Close(2)]);
    out.clear();
    r.finish(&mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(r.stats.interface_gone, 2);
}

#[test]
fn a_copy_of_one_direction_only_ends_at_its_senders_fin() {
    // A bridge's copy of a DNAT'd request whose source port conntrack then moved: the request
    // and the client's FIN pass it, the replies come back by another address pair.
    let mut r = Reassembler::<Recorder>::new(Limits::default());
    let mut out = Vec::new();
    r.on_segment(&seg(C, S, 100, SYN, b""), &mut out);
    r.on_segment(&seg(C, S, 101, ACK, b"GET / HTTP/1.1\r\n\r\n"), &mut out);
    r.on_segment(&seg(C, S, 119, FIN, b""), &mut out);
    assert_eq!(out.last(), Some(&Ev::Close(1)), "closed at the FIN, not at the end: {out:?}");
    // A two-way connection whose client half-closes first waits for the server's FIN.
    const D: &str = "10.0.0.3:40001";
    out.clear();
    r.on_segment(&seg(D, S, 700, SYN, b""), &mut out);
    r.on_segment(&seg(S, D, 900, SYNACK, b""), &mut out);
    r.on_segment(&seg(D, S, 701, ACK, b"GET / HTTP/1.1\r\n\r\n"), &mut out);
    r.on_segment(&seg(D, S, 719, FIN, b""), &mut out);
    assert!(!out.iter().any(|e| matches!(e, Ev::Close(_))), "{out:?}");
    r.on_segment(&seg(S, D, 901, ACK, b"HTTP/1.1 200 OK\r\n\r\n"), &mut out);
    r.on_segment(&seg(S, D, 920, FIN, b""), &mut out);
    assert_eq!(out.last(), Some(&Ev::Close(2)));
    // Joined mid-stream (no SYN seen): the client's FIN may come before any of the server's
    // packets (an agent that started following the pod just then), so it waits for the other.
    const E: &str = "10.0.0.4:40002";
    out.clear();
    r.on_segment(&seg(E, S, 300, FIN, b"bye"), &mut out);
    assert!(!out.iter().any(|e| matches!(e, Ev::Close(_))), "{out:?}");
    r.on_segment(&seg(S, E, 600, FIN, b""), &mut out);
    assert_eq!(out.last(), Some(&Ev::Close(3)));
}
