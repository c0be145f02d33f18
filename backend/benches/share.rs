//! Sharing's costs: keeping every frame in the packet ring (what it adds to a node's capture
//! path, against the engine's own cost per frame on the same capture), finding one connection's
//! packets, and saving and opening a session of 100,000 records. Run:
//! `cargo bench -p podtap --bench share`. Figures: BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use podtap::capture::Frame;
use podtap::engine::Engine;
use podtap::feed::synthetic::Cluster;
use podtap::packets::{FlowKey, PacketStore, Wanted, flow_of};
use podtap::share::db::{Bounds, Sessions};
use podtap::share::session::{Frozen, Payload, SessionMeta};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn demo_frames() -> Vec<(u64, u32, podtap::capture::LinkType, Vec<u8>)> {
    let file = podtap::demo::capture();
    let mut frames = file.frames();
    let mut out = Vec::new();
    while let Some(Ok(f)) = frames.next() {
        out.push((f.ts_us, f.interface, f.link, f.data.to_vec()));
    }
    out
}

fn bench_ring(c: &mut Criterion) {
    let frames = demo_frames();
    let bytes: u64 = frames.iter().map(|f| f.3.len() as u64).sum();
    let dir = std::env::temp_dir().join(format!("podtap-bench-ring-{}", std::process::id()));
    let mut g = c.benchmark_group("packets");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("ring_add_demo_capture", |b| {
        b.iter_batched(
            || PacketStore::open(&dir, 256 << 20, true).unwrap(),
            |store| {
                for (ts_us, interface, link, data) in &frames {
                    store.add(&Frame { ts_us: *ts_us, interface: *interface, link: *link, data });
                }
                store
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("engine_demo_capture", |b| {
        let cluster = Arc::new(podtap::demo::cluster());
        b.iter(|| {
            let mut engine = Engine::new(cluster.clone());
            let mut out = Vec::new();
            for (ts_us, interface, link, data) in &frames {
                engine.on_frame(&Frame { ts_us: *ts_us, interface: *interface, link: *link, data }, &mut out);
            }
            engine.finish(&mut out);
            black_box(out.len())
        })
    });
    let store = PacketStore::open(&dir, 256 << 20, true).unwrap();
    for (ts_us, interface, link, data) in &frames {
        store.add(&Frame { ts_us: *ts_us, interface: *interface, link: *link, data });
    }
    let (ts, _, link, data) = &frames[frames.len() / 2];
    let flow: FlowKey = flow_of(&Frame { ts_us: *ts, interface: 0, link: *link, data }).unwrap();
    let wanted = [Wanted { flow, from_us: 0, to_us: u64::MAX }];
    g.bench_function("ring_select_one_connection", |b| b.iter(|| black_box(store.select(&wanted).unwrap().0.len())));
    g.finish();
}

fn bench_sessions(c: &mut Criterion) {
    let cluster = Cluster::new();
    let t0 = 1_800_000_000_000_000u64;
    let records: Vec<_> = (0..100_000u64).map(|n| cluster.record(n, t0 + n * 100)).collect();
    let meta = SessionMeta {
        id: "bench".into(),
        title: String::new(),
        created_us: t0,
        from: t0,
        to: t0 + 10_000_001,
        filter: String::new(),
        view: Default::default(),
        records: records.len() as u64,
        requests: records.len() as u64,
        packets: 0,
        packets_aged_out: false,
        source: "bench".into(),
        clock: podtap_shared::Clock::Wall,
        bytes: 0,
        owner: None,
        seen_as: None,
    };
    let payload = Payload { records, ..Payload::default() };
    let dir = std::env::temp_dir().join(format!("podtap-bench-sessions-{}", std::process::id()));
    let db = Sessions::open(&dir, Bounds { max_sessions: 10, max_bytes: 1 << 30, evict_oldest: true }).unwrap();
    let mut g = c.benchmark_group("sessions");
    g.throughput(Throughput::Elements(100_000));
    g.sample_size(10);
    g.bench_function("save_100k_records", |b| b.iter(|| db.save(&meta, &payload).unwrap()));
    g.bench_function("open_100k_records", |b| {
        b.iter_batched(
            || (),
            |()| Frozen::open(db.meta("bench").unwrap().unwrap(), db.payload("bench").unwrap().unwrap()),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    println!("a 100,000-record session takes {} MiB", db.meta("bench").unwrap().unwrap().bytes >> 20);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_ring, bench_sessions);
criterion_main!(benches);
