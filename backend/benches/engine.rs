//! Micro-benchmarks of the hot path, stage by stage: decode one frame, reassemble and dissect an
//! HTTP/1.1 keep-alive conversation, and the whole engine over the built-in demo capture.
//! Run: `cargo bench -p podtap --bench engine`. The file-level comparison with tcpdump and tshark
//! is `cargo xtask bench` (BENCHMARKS.md).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use podtap::capture::{Frame, LinkType};
use podtap::decode::{Decoded, Segment, TcpFlags, decode};
use podtap::demo;
use podtap::dissect::http1::Http1;
use podtap::engine::Engine;
use podtap::reassemble::{Limits, Reassembler};

/// The allocator the `podtap` binary uses, so these figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUEST: &[u8] = b"GET /users HTTP/1.1\r\nHost: web\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n\r\nhello from web-7d4b9c8f6-x2k9p\n\n";

fn frame_bytes() -> Vec<u8> {
    let b =
        PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([10, 244, 0, 20], [10, 96, 12, 34], 64).tcp(40000, 80, 1, 64000);
    let mut out = Vec::new();
    b.ack(1).psh().write(&mut out, REQUEST).expect("builds");
    out
}

fn bench_decode(c: &mut Criterion) {
    let bytes = frame_bytes();
    let frame = Frame { ts_us: 1, interface: 0, link: LinkType::Ethernet, data: &bytes };
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ethernet_ipv4_tcp_frame", |b| {
        b.iter(|| match decode(black_box(&frame)) {
            Ok(Decoded::Tcp(s)) => s.payload.len(),
            _ => 0,
        })
    });
    g.finish();
}

/// `n` request/response pairs on one connection as segments, with the handshake.
fn conversation(n: u32) -> Vec<(bool, u32, Vec<u8>, TcpFlags)> {
    let syn = TcpFlags { syn: true, ..TcpFlags::default() };
    let synack = TcpFlags { syn: true, ack: true, ..TcpFlags::default() };
    let ack = TcpFlags { ack: true, ..TcpFlags::default() };
    let mut segs = vec![(true, 0, Vec::new(), syn), (false, 0, Vec::new(), synack)];
    let (mut up, mut down) = (1u32, 1u32);
    for _ in 0..n {
        segs.push((true, up, REQUEST.to_vec(), ack));
        up += REQUEST.len() as u32;
        segs.push((false, down, RESPONSE.to_vec(), ack));
        down += RESPONSE.len() as u32;
    }
    segs
}

fn bench_reassembly_and_http(c: &mut Criterion) {
    let segs = conversation(1000);
    let (client, server) = ("10.244.0.20:40000".parse().unwrap(), "10.244.0.11:3000".parse().unwrap());
    let mut g = c.benchmark_group("reassemble+http1");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("keep_alive_1000_exchanges", |b| {
        b.iter(|| {
            let mut r = Reassembler::<Http1>::new(Limits::default());
            let mut out = Vec::new();
            for (up, seq, data, flags) in &segs {
                let (src, dst) = if *up { (client, server) } else { (server, client) };
                r.on_segment(
                    &Segment {
                        ts_us: 1,
                        interface: 0,
                        src,
                        dst,
                        seq: *seq,
                        flags: *flags,
                        payload: data,
                        tunnel: None,
                    },
                    &mut out,
                );
            }
            r.finish(&mut out);
            out.len()
        })
    });
    g.finish();
}

fn bench_engine(c: &mut Criterion) {
    let file = demo::capture();
    let cluster = Arc::new(demo::cluster());
    let frames = file.frames().count() as u64;
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(frames));
    g.bench_function("demo_capture", |b| {
        b.iter(|| {
            let mut engine = Engine::new(cluster.clone());
            let mut n = 0;
            engine.run_file(&file, |records| n += records.len()).expect("whole");
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_reassembly_and_http, bench_engine);
criterion_main!(benches);
