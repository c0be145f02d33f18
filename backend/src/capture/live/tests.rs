//! Live capture on the loopback interface with real sockets: the kernel's own packets go through
//! the ring, the engine and come out as records. Needs CAP_NET_RAW (CI runs as root); without it
//! the tests say so and return, since nothing can be captured.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podtap_shared::Detail;

use super::*;
use crate::engine::Engine;
use crate::resolve::ClusterState;

fn loopback() -> Option<LiveCapture> {
    let selection = Selection { include: vec!["lo".into()], exclude: vec![] };
    match LiveCapture::open(selection, RingSize { block_size: 1 << 16, blocks: 4, retire_ms: 10 }) {
        Ok(live) => Some(live),
        Err(LiveError::NotPermitted) => {
            eprintln!("skipped: live capture needs CAP_NET_RAW");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Polls until `done(state)` holds or five seconds pass.
fn poll_until<S>(
    live: &mut LiveCapture,
    state: &mut S,
    mut each: impl FnMut(&mut S, LiveFrame<'_>),
    done: impl Fn(&S) -> bool,
) {
    let start = Instant::now();
    while !done(state) && start.elapsed() < Duration::from_secs(5) {
        live.poll(Duration::from_millis(20), |f| each(state, f)).unwrap();
    }
}

fn is_ours(r: &podtap_shared::Record) -> bool {
    matches!(&r.detail, Detail::Http(h) if h.path == "/live-capture-test")
}

#[test]
fn an_http_exchange_on_loopback_becomes_one_record_named_after_the_interface() {
    let Some(mut live) = loopback() else { return };
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let serving = std::thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).unwrap();
        assert!(buf[..n].ends_with(b"\r\n\r\n"));
        conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"GET /live-capture-test HTTP/1.1\r\nHost: podtap\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).ok();
    drop(client);
    serving.join().unwrap();

    let mut engine = Engine::new(Arc::new(ClusterState::default())).per_interface();
    live.follow_changes().unwrap();
    engine.name_interface(0, Some("lo".into()));
    let mut records = Vec::new();
    poll_until(&mut live, &mut records, |out, f| engine.on_frame(&f.frame, out), |out| out.iter().any(is_ours));
    engine.finish(&mut records);
    let ours: Vec<_> = records.iter().filter(|r| is_ours(r)).collect();
    assert_eq!(ours.len(), 1, "exactly one record for the exchange");
    let r = ours[0];
    assert_eq!(r.interface.as_deref(), Some("lo"));
    assert_eq!(r.dst.port, port);
    assert!(matches!(&r.detail, Detail::Http(h) if h.status == Some(204)));
    let stats = live.stats();
    assert_eq!(stats.drops, 0);
    assert!(stats.packets >= 6, "handshake, request, response and close: {stats:?}");
    assert_eq!(stats.interfaces.len(), 1);
    assert!(stats.interfaces[0].open);
}

#[test]
fn frames_carry_kernel_timestamps_and_full_lengths() {
    let Some(mut live) = loopback() else { return };
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let marker = b"podtap-live-marker-0123456789";
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    tx.send_to(marker, rx.local_addr().unwrap()).unwrap();
    let mut found = None;
    poll_until(
        &mut live,
        &mut found,
        |found, f| {
            if f.frame.data.windows(marker.len()).any(|w| w == marker) {
                *found = Some((f.ts_ns, f.wire_len, f.frame.data.len(), f.frame.link));
            }
        },
        Option::is_some,
    );
    let (ts, wire, captured, link) = found.expect("the datagram was captured");
    assert!(ts >= before && ts < before + 5_000_000_000, "{ts} vs {before}");
    // Ethernet 14 + IPv4 20 + UDP 8 + payload.
    assert_eq!(wire as usize, 14 + 20 + 8 + marker.len());
    assert_eq!(captured, wire as usize);
    assert_eq!(link, LinkType::Ethernet);
}

#[test]
fn an_exact_name_that_does_not_exist_is_one_clear_error() {
    let selection = Selection { include: vec!["podtap-no-such0".into()], exclude: vec![] };
    let err = LiveCapture::open(selection, RingSize::default()).err().expect("refused");
    assert_eq!(err.to_string(), "no interface named podtap-no-such0 on this node (see `ip link`)");
}
