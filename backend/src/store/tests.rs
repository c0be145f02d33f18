//! The store's rollups against a brute-force fold over the same records, on random records and
//! windows of any alignment, over two and a half minutes so 10- and 60-step blocks are built and
//! records arrive after their block was (in any order), for random viewers (the fold is then over
//! the records as `access::view` shows them); eviction by age and by count; paging, lookups.

use std::sync::Arc;

use podtap_shared::{Detail, EndpointKind, Filter, MapBuilder, Record, TcpClose, TcpConnection, Via, ViaKind};
use proptest::prelude::*;

use super::*;
use crate::aggregate::balance::{Balance, BalanceBuilder};
use crate::resolve::ClusterState;
use podtap_shared::ServiceMap;

const T0: u64 = 1_800_000_000_000_000;

/// The clients' namespaces (the replicas are all in `default`).
const NAMESPACES: [&str; 3] = ["default", "team-a", "team-b"];

fn pod(r: &mut podtap_shared::Endpoint, ns: &str, name: &str, last: u8) {
    r.kind = EndpointKind::Pod;
    r.name = Some(name.into());
    r.namespace = Some(ns.into());
    r.ip = [10, 244, 0, last].into();
}

/// A record from a few random choices: its connection (which joins a client and a replica),
/// through the Service or not,
/// when, on which connection, how it went; some are connections (`kind: "tcp"`).
fn record(id: u64, (_, _, through, offset_us, conn, status, latency, tcp): Gen) -> Record {
    // One connection joins one client to one replica.
    let (client, replica) = ((conn % 3) as u8, ((conn / 3) % 3) as u8);
    let mut r = Record::test();
    r.id = id;
    r.ts = T0 + offset_us;
    r.conn = conn;
    pod(&mut r.src, NAMESPACES[client as usize], &format!("client-{client}"), 10 + client);
    pod(&mut r.dst, "default", &format!("web-{replica}"), 20 + replica);
    r.latency_us = Some(latency);
    r.end_us = Some(r.ts + latency + 10);
    if through {
        r.via = Via { kind: ViaKind::ClusterIp, service: Some("default/web".into()) };
    }
    r.probe = status == 0;
    if tcp {
        r.detail = Detail::Tcp(TcpConnection {
            likely: None,
            handshake: true,
            close: TcpClose::Fin,
            rtt_us: Some(50),
            retransmissions: 0,
            gaps: 0,
            protocol: None,
            requests: 0,
        });
    } else if let Detail::Http(h) = &mut r.detail {
        h.status = [Some(200), Some(503), None, Some(404)].get(status as usize % 4).copied().flatten();
    }
    r
}

type Gen = ((), (), bool, u64, u64, u8, u64, bool);

fn gen_record() -> impl Strategy<Value = Gen> {
    (Just(()), Just(()), any::<bool>(), 0u64..150_000_000, 1u64..12, 0u8..6, 1u64..50_000, prop::bool::weighted(0.1))
}

fn cluster() -> ClusterState {
    ClusterState::default()
}

fn brute_map(records: &[Record], w: Window, filter: &Filter) -> ServiceMap {
    let mut b = MapBuilder::new();
    records.iter().filter(|r| w.contains(r.ts) && filter.matches(r)).for_each(|r| b.add(r));
    b.build()
}

/// Every Service's balance from `records` (as the viewer sees them), of the viewer's Services.
fn brute_balance(records: &[Record], w: Window, sight: &Sight) -> Vec<Balance> {
    let mut b = BalanceBuilder::default();
    records.iter().filter(|r| w.contains(r.ts)).for_each(|r| b.add(r));
    let mut all = b.build(&cluster());
    all.retain(|b| sight.owns(b.service.split_once('/').map(|(ns, _)| ns)));
    all
}

fn sight() -> impl Strategy<Value = Sight> {
    prop_oneof![
        1 => Just(Sight::All),
        3 => prop::collection::btree_set(0..NAMESPACES.len(), 0..3)
            .prop_map(|s| Sight::of(s.into_iter().map(|i| NAMESPACES[i]))),
    ]
}

fn store_of(records: &[Record]) -> Store {
    let mut s = Store::new(Limits::default());
    records.iter().cloned().for_each(|r| s.insert(r));
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn rollups_equal_a_fold_over_the_window(
        gens in prop::collection::vec(gen_record(), 1..250),
        from in 0u64..160_000_000,
        len in 0u64..160_000_000,
        filtered in 0..3usize,
        sight in sight(),
    ) {
        let records: Vec<Record> = gens.into_iter().enumerate().map(|(i, g)| record(i as u64 + 1, g)).collect();
        let store = store_of(&records);
        let w = Window { from: T0 + from, to: T0 + from + len };
        // The second filter names a client pod, which some viewers see only as its namespace.
        let filter = ["", "pod:web-1", "pod:client-1"][filtered];
        let filter = Filter::parse(filter).unwrap();
        let lens = Lens::new(&filter, &sight);
        // What the viewer sees: the fold of every query is over these.
        let seen: Vec<Record> = records.iter().filter_map(|r| crate::access::view(r, &sight)).collect();
        prop_assert_eq!(store.map(w, lens), brute_map(&seen, w, &filter));
        prop_assert_eq!(store.balances(w, &cluster(), &sight), brute_balance(&seen, w, &sight));
        let one = store.balance(w, "default/web", &cluster(), &sight);
        prop_assert_eq!(one, brute_balance(&seen, w, &sight).into_iter().find(|b| b.service == "default/web"));
        let step = [STEP_US, 20 * STEP_US, 250_000][(from % 3) as usize];
        let buckets = store.timeline(w, step, lens);
        let in_window: Vec<&Record> = seen.iter().filter(|r| w.contains(r.ts) && filter.matches(r)).collect();
        prop_assert_eq!(buckets.iter().map(|b| b.requests).sum::<u64>(), in_window.iter().filter(|r| r.is_request()).count() as u64);
        prop_assert_eq!(buckets.iter().map(|b| b.errors).sum::<u64>(), in_window.iter().filter(|r| r.is_request() && r.is_error()).count() as u64);
        for b in &buckets {
            let here = in_window.iter().filter(|r| r.is_request() && r.ts >= b.ts && r.ts < b.ts + step).count() as u64;
            prop_assert_eq!(b.requests, here, "bucket at {}", b.ts);
        }
        // Paging through the window gives every matching record once, in time order, as seen.
        let mut paged = Vec::new();
        let mut after = Some(Cursor { ts: 0, id: 0 });
        loop {
            let (page, more) = store.records(w, lens, Kinds::All, after, 7);
            paged.extend(page.iter().cloned());
            after = page.last().map(|r| Cursor { ts: r.ts, id: r.id });
            if !more { break; }
        }
        let mut want: Vec<Record> = in_window.iter().map(|r| (*r).clone()).collect();
        want.sort_by_key(|r| r.time_order());
        prop_assert_eq!(paged, want);
        // A connection, as seen.
        for conn in 1..12 {
            let got = store.connection(conn, &sight);
            // (The generator may give a connection two `tcp` records; a capture never does.)
            let mine: Vec<&Record> = seen.iter().filter(|r| r.conn == conn).collect();
            prop_assert_eq!(got.is_some(), !mine.is_empty());
            let requests: Vec<&Record> = mine.iter().copied().filter(|r| r.is_request()).collect();
            prop_assert_eq!(got.as_ref().map_or(0, |c| c.requests.len()), requests.len());
            if let Some(c) = got {
                prop_assert!(c.requests.iter().all(|r| requests.contains(&r)));
            }
        }
    }
}

#[test]
fn the_newest_page_comes_without_a_cursor() {
    let records: Vec<Record> = (0..20).map(|i| record(i + 1, ((), (), true, i * 100_000, 1, 1, 10, false))).collect();
    let store = store_of(&records);
    let (page, more) = store.records(Window::ALL, Lens::all(&Filter::default()), Kinds::Requests, None, 5);
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [16, 17, 18, 19, 20]);
    assert!(more);
    assert_eq!(store.record(7).map(|r| r.id), Some(7));
    assert_eq!(store.record(99), None);
    let conn = store.connection(1, &Sight::All).unwrap();
    assert_eq!((conn.requests.len(), conn.connection.is_none()), (20, true));
}

#[test]
fn age_drops_old_steps_and_count_drops_records_but_keeps_rollups() {
    let limits = Limits { retention_us: 10 * STEP_US, max_records: 50 };
    let mut store = Store::new(limits);
    for i in 0..100u64 {
        store.insert(record(i + 1, ((), (), false, i * 100_000, 3, 1, 10, false)));
    }
    // 10 s of traffic, 10 records a second; only the newest 50 records are kept.
    assert_eq!(store.len(), 50);
    assert_eq!(store.stats().evicted_by_count, 50);
    let all = store.map(Window::ALL, Lens::all(&Filter::default()));
    assert_eq!(all.edges[0].requests, 100, "rollups still count what was evicted by count");
    assert_eq!(store.record(1), None);
    // 30 s later, everything older than 10 s is gone, rollups too.
    store.insert(record(101, ((), (), false, 40_000_000, 1, 1, 10, false)));
    assert_eq!(store.len(), 1);
    assert_eq!(store.map(Window::ALL, Lens::all(&Filter::default())).edges[0].requests, 1);
    assert_eq!(store.stats().evicted_by_age, 50);
    // A record older than the retention is refused and counted.
    store.insert(record(102, ((), (), false, 0, 1, 1, 10, false)));
    assert_eq!((store.len(), store.stats().too_old), (1, 1));
}

#[test]
fn a_window_cut_inside_an_evicted_step_counts_the_step_whole() {
    let mut store = Store::new(Limits { retention_us: 60 * STEP_US, max_records: 5 });
    for i in 0..10u64 {
        store.insert(record(i + 1, ((), (), false, i * 100_000, 1, 1, 10, false)));
    }
    let half = Window { from: T0, to: T0 + 500_000 };
    assert_eq!(store.map(half, Lens::all(&Filter::default())).edges[0].requests, 10);
    let _ = Arc::new(());
}

#[test]
fn blocks_are_built_once_settled_and_take_late_records() {
    let mut store = Store::new(Limits::default());
    for i in 0..130u64 {
        store.insert(record(i + 1, ((), (), true, i * STEP_US, 3, 1, 10, false)));
    }
    // Two minutes have settled (the third is still open), and their 10-second blocks.
    assert_eq!(store.blocks[1].len(), 2);
    assert_eq!(store.blocks[2].len(), 12);
    // A connection's record comes late, stamped with its opening a minute and a half ago.
    store.insert(record(500, ((), (), true, 30 * STEP_US + 5, 3, 1, 10, true)));
    let whole = Window { from: T0, to: T0 + 120 * STEP_US };
    assert_eq!(store.pieces(whole).len(), 2, "two minutes, two blocks");
    let map = store.map(whole, Lens::all(&Filter::default()));
    let edge = map.edges.iter().find(|e| e.source == "pod:default/client-0").unwrap();
    assert_eq!((edge.requests, edge.connections), (120, 1));
    let b = store.balance(whole, "default/web", &cluster(), &Sight::All).unwrap();
    assert_eq!(b.requests, 120);
    let records: Vec<Record> =
        store.records(Window::ALL, Lens::all(&Filter::default()), Kinds::All, Some(Cursor { ts: 0, id: 0 }), 1000).0;
    assert_eq!(store.map(whole, Lens::all(&Filter::default())), brute_map(&records, whole, &Filter::default()));
}

#[test]
fn a_clock_that_jumps_years_ahead_costs_no_gap_of_steps() {
    let mut store = Store::new(Limits::default());
    store.insert(record(1, ((), (), false, 0, 3, 1, 10, false)));
    let mut far = record(2, ((), (), false, 0, 3, 1, 10, false));
    far.ts += 10 * 365 * 86_400 * STEP_US;
    store.insert(far);
    assert_eq!((store.len(), store.stats().steps, store.stats().evicted_by_age), (1, 1, 1));
}
