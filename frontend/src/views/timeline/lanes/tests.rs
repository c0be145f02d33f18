//! The lanes: keep-alive and new connections, parallel rows, probes, group tallies, pruning.

use super::*;
use podtap_shared::{EndpointKind, TcpConnection};

fn req(id: u64, conn: u64, ts: u64, end: u64, pod: &str) -> Record {
    let mut r = Record::test();
    (r.id, r.conn, r.ts, r.end_us) = (id, conn, ts, Some(end));
    r.src.kind = EndpointKind::Pod;
    r.src.name = Some("client".into());
    r.src.namespace = Some("default".into());
    r.dst.kind = EndpointKind::Pod;
    r.dst.name = Some(pod.into());
    r.dst.namespace = Some("default".into());
    r
}

fn tcp(conn: u64, open: u64, close: u64, pod: &str) -> Record {
    let mut r = req(1000 + conn, conn, open, close, pod);
    r.detail = Detail::Tcp(TcpConnection::test(2));
    r
}

#[test]
fn one_keep_alive_connection_is_one_lane_and_new_connections_are_many() {
    let mut records = vec![req(1, 7, 100, 200, "web-1"), req(2, 7, 300, 400, "web-1"), tcp(7, 50, 500, "web-1")];
    records.extend(
        (0..4).map(|i| req(10 + i, 20 + i, 1000 + i * 100, 1050 + i * 100, ["web-1", "web-2"][i as usize % 2])),
    );
    let set = LaneSet::from_records(&records);
    assert_eq!(set.lanes.len(), 5);
    let keep = set.lane(7).unwrap();
    assert_eq!((keep.bars.len(), keep.start, keep.end, keep.known), (2, 50, 500, true));
    assert_eq!(keep.close.as_deref(), Some("fin"));
    let rows = set.rows(&Default::default(), false);
    let groups: Vec<(String, usize)> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Group { group, lanes, .. } => Some((set.groups[*group].label.clone(), *lanes)),
            Row::Lane(_) => None,
        })
        .collect();
    assert_eq!(groups, [("client → web-1".to_string(), 3), ("client → web-2".to_string(), 2)]);
    let mut collapsed = std::collections::BTreeSet::new();
    collapsed.insert(("pod:default/client".to_string(), "pod:default/web-1".to_string()));
    assert_eq!(set.rows(&collapsed, false).len(), 2 + 2, "two headers, web-2's two lanes");
}

#[test]
fn overlapping_streams_sit_on_parallel_rows() {
    let set = LaneSet::from_records(&[
        req(1, 1, 100, 500, "a"),
        req(2, 1, 150, 300, "a"),
        req(3, 1, 350, 450, "a"),
        req(4, 1, 600, 700, "a"),
    ]);
    let lane = set.lane(1).unwrap();
    let rows: Vec<u8> = lane.bars.iter().map(|b| b.row).collect();
    assert_eq!(rows, [0, 1, 1, 0]);
    assert_eq!(lane.rows(), 2);
    assert_eq!(lane.bars_in(320, 360).map(|b| b.id).collect::<Vec<_>>(), [1, 3]);
}

#[test]
fn probe_lanes_go_last_or_away() {
    let mut probe = req(1, 1, 100, 200, "web-1");
    probe.probe = true;
    probe.src.kind = EndpointKind::Node;
    probe.src.name = Some("node-a".into());
    probe.src.namespace = None;
    let set = LaneSet::from_records(&[probe, req(2, 2, 100, 200, "web-1")]);
    let rows = set.rows(&Default::default(), false);
    let label = |row: &Row| match row {
        Row::Group { group, .. } => set.groups[*group].label.clone(),
        Row::Lane(_) => String::new(),
    };
    assert_eq!(label(&rows[0]), "client → web-1");
    assert_eq!(label(&rows[2]), "node-a → web-1");
    assert_eq!(set.rows(&Default::default(), true).len(), 2);
}

#[test]
fn lanes_that_ended_before_the_oldest_record_held_are_let_go_and_the_rest_stay_as_built() {
    let records = [
        req(1, 1, 100, 200, "web-1"),
        req(2, 2, 300, 900, "web-1"),
        req(3, 3, 150, 250, "web-2"),
        req(4, 4, 500, 600, "web-2"),
        req(5, 5, 120, 130, "web-3"),
        req(6, 1, 210, 220, "web-1"),
    ];
    let mut set = LaneSet::from_records(&records);
    set.retain_since(400);
    // What is left is what a set built from the records still held would be.
    let fresh = LaneSet::from_records(&[records[1].clone(), records[3].clone()]);
    let conns = |s: &LaneSet| s.lanes.iter().map(|l| l.conn).collect::<Vec<_>>();
    assert_eq!(conns(&set), conns(&fresh));
    let labels = |s: &LaneSet| {
        s.rows(&Default::default(), false)
            .iter()
            .map(|r| match r {
                Row::Group { group, lanes, requests, .. } => {
                    format!("{} {lanes} {requests}", s.groups[*group].label)
                }
                Row::Lane(l) => format!("lane {}", s.lanes[*l].conn),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(labels(&set), labels(&fresh));
    assert_eq!(set.lane(4).map(|l| l.conn), Some(4));
    assert!(set.lane(1).is_none() && set.lane(5).is_none());
    // It goes on as before: a new request on a kept lane and a new lane.
    set.add(&req(7, 2, 950, 960, "web-1"));
    set.add(&req(8, 9, 970, 980, "web-3"));
    assert_eq!(set.lane(2).map(|l| l.bars.len()), Some(2));
    assert_eq!(set.lane_rows.len(), set.lanes.len());
    assert_eq!(set.rows(&Default::default(), false).len(), 3 + 3);
}

#[test]
fn group_headers_count_what_their_lanes_hold_as_lanes_change() {
    let probe = |id: u64, conn: u64, ts: u64| {
        let mut r = req(id, conn, ts, ts + 10, "web-1");
        r.probe = true;
        r
    };
    // Lane 1 starts as a probe's and becomes an app's; lane 2 stays a probe's; lane 3 is an
    // app's with two overlapping requests (two rows), then its connection record.
    let records = [
        probe(1, 1, 100),
        probe(2, 2, 110),
        req(3, 3, 120, 300, "web-1"),
        req(4, 3, 130, 200, "web-1"),
        req(5, 1, 140, 150, "web-1"),
        probe(6, 2, 160),
        tcp(3, 90, 400, "web-1"),
    ];
    let set = LaneSet::from_records(&records);
    for hide in [false, true] {
        let rows = set.rows(&Default::default(), hide);
        let Row::Group { lanes, requests, .. } = rows[0] else { panic!("{rows:?}") };
        let shown: Vec<&Lane> = set.lanes.iter().filter(|l| !(hide && l.probe)).collect();
        assert_eq!((lanes, requests), (shown.len(), shown.iter().map(|l| l.bars.len()).sum()), "hide={hide}");
    }
    assert_eq!(set.lanes.iter().map(|l| l.probe).collect::<Vec<_>>(), [false, true, false]);
    assert_eq!(set.lane_rows, set.lanes.iter().map(Lane::rows).collect::<Vec<_>>());
    assert_eq!(set.lane_rows[2], 2);
}
