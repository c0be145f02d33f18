//! The database tier on the real cluster (`cargo xtask cluster up --nodes 2`, run by the test
//! command): Redis 7 as a Deployment of two replicas behind a ClusterIP Service with
//! `sessionAffinity: ClientIP` (end2end/k8s/scenarios/databases.yaml), and a client pod whose
//! redis-py pool of four connections, shared by four threads, goes through the Service
//! (redis-pool.yaml): the real kube-proxy sends the whole pool to one replica. The pool is open
//! before podtap starts, so every connection is joined mid-stream.
//!
//! The truth is each replica's own MONITOR feed (every command it ran, with the client's address
//! and port): per pod, per connection, per command, the hub's records equal it from each
//! connection's mark on; the balance names the pool and the affinity as the skew's cause; the
//! map's edge, the filter and the JSON-lines export count the same requests.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::lab_cluster::*;
use podtap_shared::{Record, ViaKind};
use serde_json::Value;

/// One replica's commands from the client's address, by the client's port: (command, first key).
type Feed = BTreeMap<u16, Vec<(String, Option<String>)>>;

/// `1733440412.123456 [0 10.244.1.5:47746] "GET" "mark:0"`: the commands from `client`'s address.
fn monitored(feed: &Path, client: &str) -> Feed {
    let text = std::fs::read_to_string(feed).expect("a replica's MONITOR feed");
    let mut by_port = Feed::new();
    for line in text.lines() {
        let Some((from, args)) = line.split_once("] ") else { continue };
        let Some(port) = from.rsplit_once(&format!(" {client}:")).and_then(|(_, p)| p.parse().ok()) else {
            continue;
        };
        let words: Vec<&str> = args.split('"').skip(1).step_by(2).collect();
        let command = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
        let key = match command.as_str() {
            "PING" | "MULTI" | "EXEC" => None,
            _ => words.get(1).map(|k| k.to_string()),
        };
        by_port.entry(port).or_default().push((command, key));
    }
    // From each connection's mark on: the capture began before the marks were sent.
    by_port
        .into_iter()
        .map(|(port, commands)| {
            let at =
                commands.iter().position(|(c, k)| c == "GET" && k.as_deref().is_some_and(|k| k.starts_with("mark:")));
            (port, at.map_or_else(Vec::new, |at| commands[at..].to_vec()))
        })
        .filter(|(_, commands)| !commands.is_empty())
        .collect()
}

/// GET on the hub's API, the body as text (an export is not JSON).
fn hub_text(path: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", "ptk-lab-node-1", "curl", "-sf", "--max-time", "10", "-H"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .arg(format!("http://{HUB_API}{path}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {path}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[ignore = "needs the real cluster: cargo xtask test runs it after `cluster up --nodes 2`"]
fn a_redis_pool_pinned_to_one_replica_is_exact_per_pod_and_named_as_the_skew() {
    let c = Cluster::from_env("databases");
    let nodes = node_names(&c);
    let scenario = |name: &str| std::fs::read_to_string(repo().join("end2end/k8s/scenarios").join(name)).unwrap();
    let _tier = Tier(&c);
    c.apply(&scenario("databases.yaml"));
    rollout(&c, "default", "redis");
    let service_ip = c.kubectl(&["get", "service", "redis", "-o", "jsonpath={.spec.clusterIP}"]);
    // The client on the node without the hub, its pool opened before podtap runs.
    let other = nodes.iter().find(|n| n.as_str() != HUB_NODE).unwrap();
    c.apply(
        &scenario("redis-pool.yaml")
            .replace("REDIS_HOST", &service_ip)
            .replace("hostname: NODE", &format!("hostname: {other}")),
    );
    let logs = c.logs();
    until("the client's pool open", || logs.join("redis-pool.ready").exists());
    let client_ip = c.kubectl(&["get", "pod", "redis-pool", "-o", "jsonpath={.status.podIP}"]);

    let podtap = start_podtap(&c, &nodes, &c.dir.join("kubeconfig"));
    until("the hub's names listed", names_listed);
    std::fs::write(logs.join("redis-pool.go"), "").unwrap();
    until("the client done", || {
        let phase = c.kubectl(&["get", "pod", "redis-pool", "-o", "jsonpath={.status.phase}"]);
        assert_ne!(phase, "Failed", "the client failed: see its log in the lab node's state");
        phase == "Succeeded"
    });
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(logs.join("redis-pool.log")).unwrap()).unwrap();

    // The truth: each replica's feed, once it holds every command the client sent from its marks
    // on (the feed is written as the server runs them, a moment after the client's answers).
    let replicas = c.kubectl_json(&["get", "pods", "-l", "app=redis"]);
    let replicas: Vec<String> =
        replicas["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap().into()).collect();
    let feeds = |replicas: &[String]| -> BTreeMap<String, Feed> {
        replicas.iter().map(|p| (p.clone(), monitored(&logs.join(format!("{p}-monitor.log")), &client_ip))).collect()
    };
    let count = |f: &BTreeMap<String, Feed>| f.values().flat_map(|f| f.values()).map(Vec::len).sum::<usize>();
    let sent = summary["commands"].as_u64().unwrap() as usize;
    until("every command the client sent in a replica's feed", || count(&feeds(&replicas)) == sent);
    let truth = feeds(&replicas);
    let logged = count(&truth);
    // kube-proxy's affinity: the whole pool went to one replica.
    let busy: Vec<&String> = truth.iter().filter(|(_, f)| !f.is_empty()).map(|(p, _)| p).collect();
    assert_eq!(busy.len(), 1, "sessionAffinity: ClientIP sends the pool to one replica: {truth:?}");
    let (busy, idle) = (busy[0].clone(), replicas.iter().find(|p| **p != *busy[0]).unwrap().clone());

    let redis = |p: &Value| p["records"].as_array().unwrap().iter().filter(|r| r["kind"] == "redis").count();
    let page = hub_page_when(&c, &format!("Redis records of the {logged} commands the replicas ran"), logged, redis);
    std::fs::write(c.out.join("hub-records.json"), page.to_string()).unwrap();
    let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap();
    let records: Vec<&Record> = records.iter().filter(|r| r.redis().is_some()).collect();

    // Per pod, per connection, per command, in order.
    let mut seen: BTreeMap<String, Feed> = BTreeMap::new();
    for r in &records {
        let x = r.redis().unwrap();
        let pod = r.dst.name.as_deref().expect("the server pod named").to_string();
        seen.entry(pod).or_default().entry(r.src.port).or_default().push((x.command.clone(), x.key.clone()));
        assert_eq!(r.src.qualified_name().as_deref(), Some("default/redis-pool"), "{r:?}");
        assert_eq!((r.via.kind, r.via.service.as_deref()), (ViaKind::ClusterIp, Some("default/redis")), "{r:?}");
        assert!(r.latency_us.is_some(), "every command answered: {r:?}");
    }
    let truth_busy: BTreeMap<String, Feed> =
        truth.iter().filter(|(_, f)| !f.is_empty()).map(|(p, f)| (p.clone(), f.clone())).collect();
    assert_eq!(
        seen, truth_busy,
        "{}: the hub's Redis records per pod and connection against the MONITOR feeds",
        c.mode
    );
    let errors: Vec<(&str, &str)> = records
        .iter()
        .filter_map(|r| r.redis())
        .filter_map(|x| Some((x.command.as_str(), x.error.as_deref()?)))
        .collect();
    assert_eq!(errors.len() as u64, summary["errors"].as_u64().unwrap(), "the errors the client got");
    assert!(errors.iter().all(|e| *e == ("LPUSH", "WRONGTYPE")), "{errors:?}");

    // The balance: every request on one replica, the other idle, the pool and the affinity named.
    let balance = hub("/api/v1/services/default/redis/balance").expect("redis's balance");
    std::fs::write(c.out.join("hub-balance.json"), balance.to_string()).unwrap();
    let row = |pod: &str| {
        balance["endpoints"].as_array().unwrap().iter().find(|e| e["pod"] == format!("default/{pod}")).cloned().unwrap()
    };
    assert_eq!((row(&busy)["requests"].as_u64(), row(&busy)["connections"].as_u64()), (Some(logged as u64), Some(4)));
    assert_eq!((row(&idle)["requests"].as_u64(), row(&idle)["connections"].as_u64()), (Some(0), Some(0)));
    assert_eq!(balance["skew"], 1.0);
    let cause = format!(
        "the 4 pooled connections from default/redis-pool all went to {busy} and carried {logged} of {logged} requests: \
         the Service's sessionAffinity: ClientIP sends every connection from one client address to the same pod"
    );
    assert_eq!(balance["cause"].as_str(), Some(cause.as_str()));

    // The map's edges through the Service into the busy replica, a filter, and the export count
    // the same requests.
    let map = hub("/api/v1/map").unwrap();
    let edges: Vec<(&str, &str, Option<u64>, Option<u64>)> = map["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["protocols"].as_array().unwrap().contains(&"redis".into()))
        .map(|e| {
            (e["source"].as_str().unwrap(), e["target"].as_str().unwrap(), e["requests"].as_u64(), e["errors"].as_u64())
        })
        .collect();
    let (n, e) = (Some(logged as u64), Some(errors.len() as u64));
    let to_busy = format!("pod:default/{busy}");
    assert_eq!(
        edges,
        [("pod:default/redis-pool", "service:default/redis", n, e), ("service:default/redis", to_busy.as_str(), n, e)],
        "the map's edges that speak Redis"
    );
    let sets: usize = truth_busy.values().flat_map(|f| f.values()).flatten().filter(|(c, _)| c == "SET").count();
    let filtered = hub("/api/v1/records?limit=10000&filter=op%3ASET").unwrap();
    let filtered: Vec<Record> = serde_json::from_value(filtered["records"].clone()).unwrap();
    assert!(filtered.iter().all(|r| r.redis().is_some_and(|x| x.command == "SET")), "op:SET: {filtered:?}");
    assert_eq!(filtered.len(), sets, "op:SET");
    let export = hub_text("/api/v1/export?format=jsonl&filter=kind%3Aredis");
    let exported: Vec<Record> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), logged, "the JSON-lines export of kind:redis");
    for secret in ["secret-value", "secret-item"] {
        assert!(!page.to_string().contains(secret) && !export.contains(secret), "`{secret}` left the node");
    }

    drop(podtap);
}

/// The tier's objects, deleted when the test ends, whatever happened: the cluster's next tests
/// run on it.
struct Tier<'a>(&'a Cluster);

impl Drop for Tier<'_> {
    fn drop(&mut self) {
        let _ = self.0.command(&["delete", "pod", "redis-pool", "--ignore-not-found", "--wait=true"]).status();
        let _ = self
            .0
            .command(&[
                "delete",
                "deployment,service",
                "redis",
                "--ignore-not-found",
                "--cascade=foreground",
                "--wait=true",
            ])
            .status();
    }
}
