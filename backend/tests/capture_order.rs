//! A capture of several interfaces as dumpcap writes it: each interface's frames in a run, as its
//! ring drained, so a short connection's frames on the client's veth all come before their copies
//! on the server's (end2end/lab/tier.sh's captures look like this, lagging up to 220 ms). Read in
//! time order, each request is one record seen on both interfaces; damage at the end still comes
//! after every frame before it.

mod common;

use std::sync::Arc;

use common::packets::{ethernet, http_conversation};
use podtap::capture::write::PcapngWriter;
use podtap::capture::{CaptureFile, LinkType};
use podtap::engine::Engine;
use podtap::resolve::ClusterState;
use podtap_shared::Record;

const T0_NS: u64 = 1_800_000_000_000_000_000;

/// Two interfaces, `vethc` and `veths0`, carrying the same connection (pod to pod across one
/// bridge): all of `vethc`'s frames first, then `veths0`'s copies, each 20 µs after its original.
fn drained_in_runs(conversations: usize) -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new()).unwrap();
    let c = w.add_interface("vethc", LinkType::Ethernet, 65535).unwrap();
    let s = w.add_interface("veths0", LinkType::Ethernet, 65535).unwrap();
    let mut frames = Vec::new();
    for n in 0..conversations {
        let packets = http_conversation(
            ([10, 251, 9, 1], 40_000 + n as u16),
            ([10, 251, 9, 2], 8080),
            b"GET /a HTTP/1.1\r\nHost: s\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        );
        for (i, p) in packets.into_iter().enumerate() {
            frames.push((T0_NS + (n as u64 * 10 + i as u64) * 1_000_000, ethernet(0x0800, &p)));
        }
    }
    for (iface, lag_ns) in [(c, 0), (s, 20_000)] {
        for (ts, frame) in &frames {
            w.write_packet(iface, ts + lag_ns, frame.len() as u32, frame).unwrap();
        }
    }
    w.into_inner()
}

fn records(bytes: Vec<u8>) -> Vec<Record> {
    let file = CaptureFile::from_bytes("runs.pcapng", bytes).unwrap();
    let mut engine = Engine::new(Arc::new(ClusterState::default()));
    let mut out = Vec::new();
    engine.run_file(&file, |batch| out.append(batch)).unwrap();
    out
}

#[test]
fn each_request_of_a_capture_drained_in_runs_is_one_record_seen_on_both_interfaces() {
    let all = records(drained_in_runs(3));
    let http: Vec<&Record> = all.iter().filter(|r| r.http().is_some()).collect();
    assert_eq!(http.len(), 3, "one record per request: {all:?}");
    for r in &http {
        assert_eq!(r.observations, 2, "the client's veth and the server's: {r:?}");
    }
}

#[test]
fn frames_come_out_in_time_order_and_damage_after_them() {
    let mut bytes = drained_in_runs(2);
    let whole = CaptureFile::from_bytes("runs.pcapng", bytes.clone()).unwrap();
    let ts: Vec<u64> = whole.frames().map(|f| f.unwrap().ts_us).collect();
    assert_eq!(ts.len(), 24);
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    // Cut in the last frame: the 23 before it, in order, then the damage.
    bytes.truncate(bytes.len() - 10);
    let cut = CaptureFile::from_bytes("cut.pcapng", bytes).unwrap();
    let got: Vec<_> = cut.frames().collect();
    assert_eq!(got.len(), 24);
    assert!(got[..23].iter().all(Result::is_ok));
    let read: Vec<u64> = got[..23].iter().map(|f| f.as_ref().unwrap().ts_us).collect();
    assert!(read.windows(2).all(|w| w[0] <= w[1]), "{read:?}");
    let err = got[23].as_ref().expect_err("the damage, last").to_string();
    assert!(err.starts_with("cut.pcapng: damaged at byte"), "{err}");
}
