//! The ring on real files: frames come back by flow and time, the oldest segment goes first and
//! is reported as aged out, frames without TCP or UDP are not kept.

use etherparse::PacketBuilder;

use super::*;

fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64).tcp(sport, dport, 1, 1000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn frame(ts_us: u64, data: &[u8]) -> Frame<'_> {
    Frame { ts_us, interface: 0, link: LinkType::Ethernet, data }
}

fn sock(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn frames_come_back_by_flow_either_direction_within_the_span() {
    let dir = tempdir("flows");
    let store = PacketStore::open(&dir, 1 << 20, true).unwrap();
    let a = tcp([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80, b"GET / HTTP/1.1\r\n\r\n");
    let b = tcp([10, 0, 0, 2], 80, [10, 0, 0, 1], 40000, b"HTTP/1.1 200 OK\r\n\r\n");
    let other = tcp([10, 0, 0, 3], 40001, [10, 0, 0, 2], 80, b"x");
    store.add(&frame(100, &a));
    store.add(&frame(200, &other));
    store.add(&frame(300, &b));
    store.add(&frame(5_000, &a));
    store.add(&frame(400, b"not a packet"));
    let flow = FlowKey::new(sock([10, 0, 0, 2], 80), sock([10, 0, 0, 1], 40000));
    let (got, aged) = store.select(&[Wanted { flow, from_us: 0, to_us: 1_000 }]).unwrap();
    assert!(!aged);
    assert_eq!(got.iter().map(|f| f.ts_us).collect::<Vec<_>>(), [100, 300]);
    assert_eq!(got[0].data, a);
    assert_eq!(got[1].data, b);
    assert_eq!(store.stats().frames, 4, "the frame with no TCP is not kept");
    drop(store);
    assert!(!dir.exists(), "a temporary ring is removed");
}

#[test]
fn a_full_ring_forgets_its_oldest_segment_and_says_so() {
    let dir = tempdir("ring");
    let store = PacketStore::open(&dir, 8 * 64 * 1024, true).unwrap();
    let payload = vec![b'x'; 1000];
    let data = tcp([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80, &payload);
    for ts in 0..2_000u64 {
        store.add(&frame(ts, &data));
    }
    let stats = store.stats();
    assert!(stats.bytes <= stats.budget_bytes, "{stats:?}");
    let aged_until = stats.aged_out_us.expect("something aged out");
    assert!(aged_until > 0 && aged_until < 2_000);
    let flow = FlowKey::new(sock([10, 0, 0, 1], 40000), sock([10, 0, 0, 2], 80));
    let (got, aged) = store.select(&[Wanted { flow, from_us: 0, to_us: u64::MAX }]).unwrap();
    assert!(aged, "the span began before what is kept");
    assert_eq!(got.first().unwrap().ts_us, aged_until, "kept from where it forgot");
    assert_eq!(got.len() as u64, 2_000 - aged_until);
    let (_, recent_aged) = store.select(&[Wanted { flow, from_us: 1_990, to_us: 1_999 }]).unwrap();
    assert!(!recent_aged);
}

#[test]
fn selecting_from_stored_frames_uses_the_same_rule() {
    let flow = FlowKey::new(sock([10, 0, 0, 1], 1), sock([10, 0, 0, 2], 2));
    let other = FlowKey::new(sock([10, 0, 0, 1], 1), sock([10, 0, 0, 3], 2));
    let at = |ts_us, flow| StoredFrame { ts_us, interface: 0, link: 1, flow, data: vec![] };
    let frames = [at(1, flow), at(2, other), at(3, flow), at(9, flow)];
    let got = select(frames.iter(), &[Wanted { flow, from_us: 1, to_us: 3 }]);
    assert_eq!(got.iter().map(|f| f.ts_us).collect::<Vec<_>>(), [1, 3]);
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podtap-packets-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
