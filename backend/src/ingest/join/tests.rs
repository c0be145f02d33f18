//! The join thread's state on its own: reconnects, acknowledgements, names that come late, clocks.

use super::*;
use crate::ingest::wire::{Notes, Observed};
use podtap_shared::{Detail, HttpExchange};

const T0: u64 = 1_800_000_000_000_000;

fn observed(n: u64) -> Observed {
    let http =
        HttpExchange { method: "GET".into(), path: format!("/{n}").into(), status: Some(200), ..Default::default() };
    let exchange = crate::dissect::Exchange {
        conn: n,
        opened_us: None,
        interface: 0,
        points: 1,
        tunnel: None,
        proxied: None,
        client: format!("10.0.0.1:{}", 40000 + n).parse().unwrap(),
        server: "10.0.0.2:80".parse().unwrap(),
        ts_us: T0 + n * 1000,
        response_ts_us: Some(T0 + n * 1000 + 500),
        end_us: None,
        request_size: 10,
        response_size: 20,
        seq: None,
        detail: Detail::Http(http),
    };
    Observed { at_us: T0 + n * 1000 + 500, exchange, learn: false, place: 0 }
}

fn batch(seq: u64, items: std::ops::Range<u64>, watermark_us: u64) -> Batch {
    Batch { seq, interfaces: None, items: items.map(observed).collect(), notes: Notes::default(), watermark_us }
}

fn join(hub: &Hub) -> Join {
    Join {
        joiner: Joiner::new(Arc::new(crate::resolve::ClusterState::default())),
        hub: hub.clone(),
        outlet: Outlet::Hub,
        parts: 1,
        agents: Vec::new(),
        slots: HashMap::new(),
        refused: Vec::new(),
        fronts: HashMap::new(),
        out: Vec::new(),
        capture_clock: true,
        started_us: 0,
    }
}

fn connect(j: &mut Join, slot: u64, instance: u64) -> (u64, mpsc::UnboundedReceiver<HubMessage>) {
    let (reply, replies) = mpsc::unbounded_channel();
    let (have, got) = oneshot::channel();
    let hello = Hello { protocol: 1, version: "t".into(), node: "n1".into(), instance, wall_clock: false };
    j.on(Event::Connected { slot, hello, reply: Reply::Agent(reply), have, partition: 0 });
    (got.blocking_recv().unwrap(), replies)
}

#[test]
fn batches_sent_again_after_a_reconnect_are_not_counted_twice() {
    let hub = Hub::new("test", 1000);
    let mut j = join(&hub);
    let (have, _r) = connect(&mut j, 1, 7);
    assert_eq!(have, 0);
    j.on(Event::Batch { slot: 1, batch: batch(1, 0..5, T0) });
    j.on(Event::Batch { slot: 1, batch: batch(2, 5..10, T0 + 20_000) });
    j.on(Event::Disconnected { slot: 1 });
    // The same instance comes back: the hub says what it has, and what is sent again is
    // skipped.
    let (have, _r) = connect(&mut j, 2, 7);
    assert_eq!(have, 2);
    j.on(Event::Batch { slot: 2, batch: batch(2, 5..10, T0 + 20_000) });
    j.on(Event::Batch { slot: 2, batch: batch(3, 10..12, u64::MAX) });
    j.flush();
    assert_eq!(hub.total(), 12);
    // A new instance of the node starts over at batch 1.
    let (have, _r) = connect(&mut j, 3, 8);
    assert_eq!(have, 0);
}

#[test]
fn a_batch_is_acknowledged_once_the_merge_has_passed_it() {
    let hub = Hub::new("test", 1000);
    let mut j = join(&hub);
    let (_, mut replies) = connect(&mut j, 1, 7);
    j.on(Event::Batch { slot: 1, batch: batch(1, 0..3, T0 + 10_000) });
    j.flush();
    assert!(replies.try_recv().is_err(), "not merged yet: no acknowledgement");
    j.on(Event::Batch { slot: 1, batch: batch(2, 3..4, T0 + 10_000 + SETTLED_US) });
    j.flush();
    assert!(matches!(replies.try_recv(), Ok(HubMessage::Ack { seq: 1 })));
}

/// A node whose pod network holds the test's addresses (10.0.0.0/24; 10.0.0.1, the client,
/// is its bridge), and, with `pods`, the server pod at 10.0.0.2.
fn cluster(pods: bool) -> Arc<crate::resolve::ClusterState> {
    let pod = |name: &str, ip: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default",
            "creationTimestamp":"2020-01-01T00:00:00Z"}},"spec":{{"nodeName":"n1","containers":[]}},
            "status":{{"podIP":"{ip}","phase":"Running"}}}}"#
        )
    };
    let mut items = vec![
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},
        "spec":{"podCIDR":"10.0.0.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.10"}]}}"#
            .to_string(),
    ];
    if pods {
        items.push(pod("server", "10.0.0.2"));
    }
    let list = format!(r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#, items.join(","));
    let mut state = crate::resolve::ClusterState::default();
    crate::resolve::parse_list("test", list.as_bytes(), &mut state).unwrap();
    Arc::new(state)
}

#[test]
fn a_record_waits_for_its_pods_name_and_its_batch_is_not_acknowledged_meanwhile() {
    let hub = Hub::new("test", 1000);
    let mut j = join(&hub);
    j.joiner = Joiner::new(cluster(false));
    j.joiner.await_names(crate::correlate::late::LIVE_WAIT_US);
    let (_, mut replies) = connect(&mut j, 1, 7);
    j.on(Event::Batch { slot: 1, batch: batch(1, 0..2, T0 + 10_000) });
    j.on(Event::Batch { slot: 1, batch: batch(2, 2..3, T0 + 10_000 + SETTLED_US) });
    j.flush();
    assert_eq!(hub.total(), 0, "the server's address is in the pod network and nobody's yet");
    assert!(replies.try_recv().is_err(), "what waits is not settled");
    assert_eq!(j.joiner.stats().waiting_names, 3, "the gauge `/healthz` shows");
    // The API server reports the pod: the records go, named as of their time.
    j.joiner.set_cluster(cluster(true));
    j.flush();
    assert_eq!(hub.total(), 3);
    assert!(matches!(replies.try_recv(), Ok(HubMessage::Ack { seq: 1 })));
    let stats = j.joiner.stats();
    assert_eq!((stats.late_named, stats.late_unnamed, stats.waiting_names), (3, 0, 0));
    let names = hub.recent(10, &Default::default()).iter().map(|r| r.dst.qualified_name()).collect::<Vec<_>>();
    assert_eq!(names, vec![Some("default/server".to_string()); 3]);
}

#[test]
fn the_clock_offset_comes_from_the_shortest_round_trip() {
    let hub = Hub::new("test", 1000);
    let mut j = join(&hub);
    let (_r1, _r2) = connect(&mut j, 1, 7);
    j.agents[0].wall_clock = true;
    // Agent 50 ms ahead; one slow round trip (20 ms, asymmetric) and one quick one.
    j.on(Event::Pong { slot: 1, hub_us: 1_000_000, agent_us: 1_065_000, back_us: 1_020_000 });
    j.on(Event::Pong { slot: 1, hub_us: 2_000_000, agent_us: 2_050_100, back_us: 2_000_200 });
    assert_eq!(j.agents[0].offset_us(), 50_000);
    assert_eq!(j.agents[0].status.rtt_ms, Some(0.2));
}

fn bus_join(hub: &Hub, parts: usize) -> (Join, mpsc::UnboundedReceiver<BusOut>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut j = join(hub);
    (j.outlet, j.parts) = (Outlet::Bus { tx, parts, agents: true }, parts);
    (j, rx)
}

fn bus_part(j: &mut Join, slot: u64, partition: u32) {
    bus_part_of(j, slot, partition, 9);
}

fn bus_part_of(j: &mut Join, slot: u64, partition: u32, instance: u64) {
    let (have, _) = oneshot::channel();
    let hello = Hello { protocol: 2, version: "t".into(), node: "n1".into(), instance, wall_clock: false };
    j.on(Event::Connected { slot, hello, reply: Reply::Bus, have, partition });
}

/// Batch `seq` cut as an agent cuts it for the bus: the observations at `places`.
fn part(seq: u64, places: &[u64], watermark_us: u64) -> Batch {
    let mut b = batch(seq, 0..0, watermark_us);
    b.items = places.iter().map(|&n| Observed { place: n as u32, ..observed(n) }).collect();
    b
}

#[test]
fn over_the_bus_a_batch_is_merged_once_all_its_parts_are_here_in_the_agents_order() {
    let hub = Hub::new("test", 1000);
    let (mut j, mut out) = bus_join(&hub, 2);
    bus_part(&mut j, 10, 0);
    bus_part(&mut j, 11, 1);
    // Partition 1 runs ahead: its batches 1 and 2 wait for partition 0's.
    j.on(Event::Batch { slot: 11, batch: part(1, &[1, 3], T0 + 10_000) });
    j.on(Event::Batch { slot: 11, batch: part(2, &[5], T0 + 20_000) });
    assert_eq!(j.agents[0].watermark(), 0, "nothing applied while a part is missing");
    j.on(Event::Batch { slot: 10, batch: part(1, &[0, 2], T0 + 10_000) });
    assert_eq!(j.agents[0].status.observations, 4);
    assert_eq!(j.agents[0].parts[1].1.queue.len(), 1, "batch 2 waits for its other part");
    j.on(Event::Batch { slot: 10, batch: part(2, &[4], T0 + 20_000) });
    j.on(Event::Batch { slot: 10, batch: part(3, &[], u64::MAX) });
    j.on(Event::Batch { slot: 11, batch: part(3, &[], u64::MAX) });
    j.flush();
    let mut records = Vec::new();
    let mut acked = Vec::new();
    while let Ok(o) = out.try_recv() {
        match o {
            BusOut::Records { records: r, .. } => records.extend(r),
            BusOut::Ack { slot, seq } => acked.push((slot, seq)),
        }
    }
    // Records to the bus, not the hub's store; in the order the agent observed them.
    assert_eq!(hub.total(), 0);
    let paths: Vec<String> = records
        .iter()
        .map(|r| if let Detail::Http(h) = &r.detail { h.path.to_string() } else { Default::default() })
        .collect();
    assert_eq!(paths, ["/0", "/1", "/2", "/3", "/4", "/5"]);
    acked.sort_unstable();
    assert_eq!(acked, [(10, 3), (11, 3)], "each part acknowledged once merged");
}

#[test]
fn a_silent_agents_parts_go_as_they_are() {
    let hub = Hub::new("test", 1000);
    let (mut j, _out) = bus_join(&hub, 2);
    bus_part(&mut j, 10, 0);
    bus_part(&mut j, 11, 1);
    j.on(Event::Batch { slot: 10, batch: part(1, &[0], T0 + 10_000) });
    j.flush();
    assert_eq!(j.agents[0].status.observations, 0);
    // Its other part never comes (the agent stopped between publishing them).
    j.agents[0].parts[0].1.last_batch_us = now_us() - GRACE_US;
    j.agents[0].parts[1].1.last_batch_us = now_us() - GRACE_US;
    j.flush();
    assert_eq!(j.agents[0].status.observations, 1);
}

#[test]
fn over_the_bus_a_restarted_agent_is_one_row_though_its_old_instance_still_drains() {
    let hub = Hub::new("test", 1000);
    let (mut j, _out) = bus_join(&hub, 1);
    bus_part_of(&mut j, 10, 0, 9);
    j.on(Event::Batch { slot: 10, batch: part(1, &[0], T0 + 10_000) });
    // The agent restarted: a new instance of n1, while the old one's batches are still read
    // (a resumed replica reads both).
    bus_part_of(&mut j, 11, 0, 10);
    j.on(Event::Batch { slot: 11, batch: part(1, &[1], T0 + 20_000) });
    j.on(Event::Batch { slot: 10, batch: part(2, &[2], T0 + 15_000) });
    assert_eq!(j.agents.len(), 2, "the old instance stays while it drains");
    j.publish_status(now_us());
    let (shown, _) = hub.agents().expect("statuses published");
    let nodes: Vec<(&str, bool)> = shown.iter().map(|a| (a.node.as_str(), a.connected)).collect();
    assert_eq!(nodes, [("n1", true)], "one row for n1, its newest instance");
}
