//! The hub's store: ingest with rollups (records/s on one core) and windowed queries over a
//! cluster of 1,000 pods in 50 namespaces with 3,000 caller → callee pairs, 15 minutes of traffic.
//! Run: `cargo bench -p podtap --bench store`. Figures: BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use podtap::store::{Limits, STEP_US, Store, Window};
use podtap_shared::{EndpointKind, Filter, Name, Record, Via, ViaKind};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PODS: u32 = 1_000;
const NAMESPACES: u32 = 50;
const PAIRS: u32 = 3_000;
const T0: u64 = 1_800_000_000_000_000;

/// 1,000 pods with their names shared (as the resolver shares them), and 3,000 pairs, each
/// caller → a Service → one of the callee's replicas.
struct Cluster {
    pods: Vec<(Name, Name, Name)>,
    pairs: Vec<(u32, u32)>,
}

impl Cluster {
    fn new() -> Self {
        let pods = (0..PODS)
            .map(|i| {
                let ns: Name = format!("ns-{}", i % NAMESPACES).into();
                let workload = i / 4;
                (format!("app-{workload}-{}", i % 4).into(), ns, format!("Deployment/app-{workload}").into())
            })
            .collect();
        // A fixed pseudo-random spread: every pod calls about three others.
        let pairs = (0..PAIRS).map(|i| (i % PODS, (i.wrapping_mul(2_654_435_761) >> 7) % PODS)).collect();
        Cluster { pods, pairs }
    }

    fn endpoint(&self, pod: u32, port: u16) -> podtap_shared::Endpoint {
        let (name, ns, workload) = &self.pods[pod as usize];
        podtap_shared::Endpoint {
            ip: std::net::Ipv4Addr::from(0x0af4_0000 + pod).into(),
            port,
            kind: EndpointKind::Pod,
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            workload: Some(workload.clone()),
            node: None,
        }
    }

    /// Request `n`: on pair `n % PAIRS`, over one of 4 keep-alive connections per pair, at
    /// `rate` requests a second.
    fn record(&self, n: u64, rate: u64) -> Record {
        let (from, to) = self.pairs[(n % u64::from(PAIRS)) as usize];
        let ts = T0 + n * 1_000_000 / rate;
        let mut r = Record::test();
        r.id = n + 1;
        r.ts = ts;
        r.end_us = Some(ts + 900);
        r.latency_us = Some(300 + (n * 7919) % 5_000);
        r.conn = (n % u64::from(PAIRS)) * 4 + (n / u64::from(PAIRS)) % 4;
        r.src = self.endpoint(from, 40_000 + (r.conn % 20_000) as u16);
        r.dst = self.endpoint(to, 8080);
        let (_, ns, workload) = &self.pods[to as usize];
        let service = workload.trim_start_matches("Deployment/");
        r.via = Via { kind: ViaKind::ClusterIp, service: Some(format!("{ns}/{service}").into()) };
        r
    }
}

fn bench_ingest(c: &mut Criterion) {
    let cluster = Cluster::new();
    let batch: Vec<Record> = (0..100_000).map(|n| cluster.record(n, 20_000)).collect();
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.sample_size(10);
    g.bench_function("ingest_with_rollups_1000_pods", |b| {
        b.iter_batched(
            || (Store::new(Limits::default()), batch.clone()),
            |(mut store, records)| {
                for r in records {
                    store.insert(r);
                }
                store
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn bench_queries(c: &mut Criterion) {
    let cluster = Arc::new(Cluster::new());
    // 15 minutes at 1,000 requests a second: 900,000 records, every step rolled up.
    let rate = 1_000;
    let mut store = Store::new(Limits::default());
    for n in 0..(15 * 60 * rate) {
        store.insert(cluster.record(n, rate));
    }
    let all = Window { from: T0, to: T0 + 15 * 60 * STEP_US };
    let cut = Window { from: T0 + 123_456, to: T0 + 14 * 60 * STEP_US + 654_321 };
    let none = Filter::default();
    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    g.bench_function("map_15_minutes_1000_pods", |b| b.iter(|| black_box(store.map(all, &none)).edges.len()));
    g.bench_function("map_15_minutes_cut_window", |b| b.iter(|| black_box(store.map(cut, &none)).edges.len()));
    g.bench_function("balance_15_minutes_one_service", |b| {
        let cluster_state = podtap::resolve::ClusterState::default();
        b.iter(|| black_box(store.balance(all, "ns-1/app-1", &cluster_state)).map(|b| b.requests))
    });
    g.bench_function("timeline_15_minutes_180_steps", |b| {
        b.iter(|| black_box(store.timeline(all, 5 * STEP_US, &none)).len())
    });
    g.bench_function("timeline_15_minutes_unaligned_steps", |b| {
        b.iter(|| black_box(store.timeline(all, 4_500_000, &none)).len())
    });
    g.bench_function("map_15_minutes_filtered_ns", |b| {
        let f = Filter::parse("ns:ns-7").unwrap();
        b.iter(|| black_box(store.map(all, &f)).edges.len())
    });
    g.finish();
}

criterion_group!(benches, bench_ingest, bench_queries);
criterion_main!(benches);
