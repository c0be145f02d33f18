//! Past one hub on the real cluster (`cargo xtask cluster up --nodes 2`): the seed scenario
//! (`common::lab_cluster::seed`) with one `podtap agent --bus` per node publishing to a real NATS
//! JetStream on lab-node-1, and two `podtap hub --bus --replica I/2` merging half the partitions
//! each. Replica 1 is killed (SIGKILL) mid-run while the probes go on; replica 0 takes its share
//! of the partitions over (its `/healthz` says so), then hands it back when replica 1 is started
//! again. Replica 0 must then count every request the web pods logged, every probe, every
//! connection, every path and every name exactly (`finish_and_check`), and replica 1 must answer
//! the same records: any hub answers for the whole cluster, and a share moved twice lost nothing
//! that was on the bus and published nothing twice.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::Running;
use common::lab_cluster::*;
use podtap_shared::Record;

/// The partitions replica 0's `/healthz` says `replica` merges.
fn merged_by(replica: u64) -> Vec<u64> {
    let parts = health().map(|h| h["bus"]["partitions"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
    parts.iter().filter(|p| p["merged_by"].as_u64() == Some(replica)).filter_map(|p| p["partition"].as_u64()).collect()
}

/// The web pods' HTTP records of a hub, by id: what both replicas must agree on.
fn web_requests(api: &str) -> BTreeMap<u64, String> {
    let page = hub_at(api, "/api/v1/records?limit=10000&kind=requests", true).expect("the replica answers");
    let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap();
    records
        .iter()
        .filter(|r| r.dst.name.as_deref().is_some_and(|n| n.starts_with("web-")))
        .map(|r| (r.id, format!("{} {:?} {:?} {} {}", r.ts, r.src.name, r.dst.name, r.probe, r.conn)))
        .collect()
}

#[test]
#[ignore = "needs the real cluster: cargo xtask test runs it after `cluster up --nodes 2`"]
fn two_hub_replicas_on_a_bus_count_the_seed_exactly_through_a_replica_killed() {
    let c = Cluster::from_env("bus");
    let nodes = node_names(&c);
    let addresses = Arc::new(Mutex::new(Addresses::default()));
    let _watch = watch_pods(&c, addresses.clone());
    let kubeconfig = c.dir.join("kubeconfig");
    let _bus = start_bus(&c);
    let _replica_0 = start_replica(&c, &kubeconfig, 0, "hub-0.err");
    let mut replica_1 = Some(start_replica(&c, &kubeconfig, 1, "hub-1.err"));
    let _agents: Vec<Running> = nodes.iter().map(|n| start_bus_agent(&c, n, &format!("agent-{n}.err"))).collect();
    until("every agent publishing", || agents_connected() == nodes.len());
    until("the hub's names listed", names_listed);

    let clients = seed(&c, &nodes, || {
        drop(replica_1.take()); // SIGKILL, while the web pods are probed
        // Replica 0 takes replica 1's share over once its lease is not renewed (10 s).
        until("replica 0 merging replica 1's partitions too", || merged_by(0) == [0, 1, 2, 3, 4, 5, 6, 7]);
        replica_1 = Some(start_replica(&c, &kubeconfig, 1, "hub-1-again.err"));
        // And hands it back.
        until("replica 1 merging its share again", || merged_by(1) == [1, 3, 5, 7]);
    });
    finish_and_check(&c, &addresses, &jobs(&clients), 2, None);

    // The other replica, the one killed, answers the same records, ids and all.
    let want = web_requests(HUB_API);
    until("replica 1 holding every web request", || web_requests(REPLICA_API).len() >= want.len());
    assert_eq!(web_requests(REPLICA_API), want, "{}: the two replicas' records of web", c.mode);
    let hub_0 = std::fs::read_to_string(c.out.join("hub-0.err")).unwrap();
    for said in ["takes its share of the partitions over", "handed back"] {
        assert!(hub_0.contains(said), "{}: replica 0 did not say it {said}: {hub_0}", c.mode);
    }
    let again = std::fs::read_to_string(c.out.join("hub-1-again.err")).unwrap();
    assert!(again.contains("resuming from"), "{}: replica 1 did not resume: {again}", c.mode);
    let dns_objects = repo().join("end2end/k8s/scenarios/dns.yaml").display().to_string();
    c.kubectl(&["delete", "-f", &dns_objects, "--wait=true"]);
    drop(replica_1);
}
