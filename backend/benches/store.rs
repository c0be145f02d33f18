//! The hub's store: ingest with rollups (records/s on one core) and windowed queries over a
//! cluster of 1,000 pods in 50 namespaces with 3,000 caller → callee pairs, 15 minutes of traffic.
//! Run: `cargo bench -p podtap --bench store`. Figures: BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use podtap::access::Sight;
use podtap::feed::synthetic::Cluster;
use podtap::store::{Lens, Limits, STEP_US, Store, Window};
use podtap_shared::{Filter, Record};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: u64 = 1_800_000_000_000_000;

/// Request `n` of the synthetic cluster at `rate` requests a second from `T0`.
fn record(cluster: &Cluster, n: u64, rate: u64) -> Record {
    cluster.record(n, T0 + n * 1_000_000 / rate)
}

fn bench_ingest(c: &mut Criterion) {
    let cluster = Cluster::new();
    let batch: Vec<Record> = (0..100_000).map(|n| record(&cluster, n, 20_000)).collect();
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
    let cluster = Cluster::new();
    // 15 minutes at 1,000 requests a second: 900,000 records, every step rolled up.
    let rate = 1_000;
    let mut store = Store::new(Limits::default());
    for n in 0..(15 * 60 * rate) {
        store.insert(record(&cluster, n, rate));
    }
    let all = Window { from: T0, to: T0 + 15 * 60 * STEP_US };
    let cut = Window { from: T0 + 123_456, to: T0 + 14 * 60 * STEP_US + 654_321 };
    let none = Filter::default();
    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    g.bench_function("map_15_minutes_1000_pods", |b| {
        b.iter(|| black_box(store.map(all, Lens::all(&none))).edges.len())
    });
    g.bench_function("map_15_minutes_cut_window", |b| {
        b.iter(|| black_box(store.map(cut, Lens::all(&none))).edges.len())
    });
    g.bench_function("balance_15_minutes_one_service", |b| {
        let cluster_state = podtap::resolve::ClusterState::default();
        b.iter(|| black_box(store.balance(all, "ns-1/app-1", &cluster_state, &Sight::All)).map(|b| b.requests))
    });
    g.bench_function("timeline_15_minutes_180_steps", |b| {
        b.iter(|| black_box(store.timeline(all, 5 * STEP_US, Lens::all(&none))).len())
    });
    g.bench_function("timeline_15_minutes_unaligned_steps", |b| {
        b.iter(|| black_box(store.timeline(all, 4_500_000, Lens::all(&none))).len())
    });
    g.bench_function("map_15_minutes_filtered_ns", |b| {
        let f = Filter::parse("ns:ns-7").unwrap();
        b.iter(|| black_box(store.map(all, Lens::all(&f))).edges.len())
    });
    // A person who sees one namespace: the map is folded from the records as they see them.
    g.bench_function("map_15_minutes_one_namespace_viewer", |b| {
        let sight = Sight::of(["ns-7"]);
        b.iter(|| black_box(store.map(all, Lens::new(&none, &sight))).edges.len())
    });
    g.finish();
}

criterion_group!(benches, bench_ingest, bench_queries);
criterion_main!(benches);
