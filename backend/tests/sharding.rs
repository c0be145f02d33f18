//! The front half sharded by connection over threads gives what one thread gives, also where
//! shards must agree on order without seeing each other: connections closed by the same idle
//! sweep (by id) and DNS queries given up at the same moment (by time, flow, id).

mod common;

use common::packets::{ethernet, http_conversation, pcap_bytes};
use etherparse::PacketBuilder;
use podtap::capture::CaptureFile;
use podtap::engine::Engine;
use podtap::resolve::ClusterState;
use std::sync::Arc;

/// A DNS query for `name` (type A), id `id`.
fn dns_query(client: ([u8; 4], u16), id: u16, name: &str) -> Vec<u8> {
    let mut msg = [&id.to_be_bytes()[..], &[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]].concat();
    for label in name.split('.') {
        msg.push(label.len() as u8);
        msg.extend(label.as_bytes());
    }
    msg.extend([0, 0, 1, 0, 1]);
    let mut out = Vec::new();
    PacketBuilder::ipv4(client.0, [10, 96, 0, 10], 64).udp(client.1, 53).write(&mut out, &msg).unwrap();
    out
}

/// A classic pcap of Ethernet frames at the given capture times (µs after the first).
fn capture(frames: Vec<(u64, Vec<u8>)>) -> CaptureFile {
    let mut bytes = pcap_bytes(1, &[]);
    for (at, l3) in frames {
        let f = ethernet(0x0800, &l3);
        let ts = 1_800_000_000_000_000 + at;
        bytes.extend(((ts / 1_000_000) as u32).to_le_bytes());
        bytes.extend(((ts % 1_000_000) as u32).to_le_bytes());
        bytes.extend((f.len() as u32).to_le_bytes());
        bytes.extend((f.len() as u32).to_le_bytes());
        bytes.extend(f);
    }
    CaptureFile::from_bytes("built", bytes).unwrap()
}

#[test]
fn what_one_sweep_closes_comes_out_in_one_threads_order() {
    let server = ([10, 244, 1, 9], 8080);
    let mut frames = Vec::new();
    // Forty connections whose requests are never answered and that never close, then go quiet,
    // and twenty DNS queries never answered; all at the same microsecond where they can be.
    for i in 0..40u16 {
        let client = ([10, 244, 0, 2 + (i % 7) as u8], 40_000 + i);
        let packets = http_conversation(client, server, format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes(), b"");
        frames.extend(packets.into_iter().take(3).map(|p| (u64::from(i % 4), p)));
    }
    for i in 0..20u16 {
        frames.push((7, dns_query(([10, 244, 0, 2 + (i % 3) as u8], 50_000 + i % 5), 100 + i, "web.example")));
    }
    // Six minutes later one more whole exchange: the idle sweep at its frame closes the forty.
    let late = http_conversation(
        ([10, 244, 0, 99], 41_000),
        server,
        b"GET /late HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    );
    frames.extend(late.into_iter().map(|p| (360_000_000, p)));
    let file = capture(frames);
    let (records, stats) = common::sharded_alike(&file, || Engine::new(Arc::new(ClusterState::default())));
    assert_eq!(stats.tcp.idle_closed, 40, "{stats:?}");
    assert_eq!(stats.dns.timed_out, 20, "{stats:?}");
    let unanswered = records.iter().filter(|r| r.http().is_some_and(|h| h.status.is_none())).count();
    assert_eq!(unanswered, 40);
    assert_eq!(records.iter().filter(|r| r.dns().is_some()).count(), 20);
}
