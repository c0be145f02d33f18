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

use common::kafka_log;
use common::lab_cluster::*;
use common::server_logs::{Feed, Logged, general_log, logged, mysql, mysql_sessions, recorded, redis_monitor, sql};
use podtap_shared::{Record, ViaKind};
use serde_json::Value;

/// One replica's commands from `client`'s address by the client's port, from each connection's
/// mark on: the capture began before the marks were sent.
fn monitored(feed: &Path, client: &str) -> Feed {
    redis_monitor(feed, client)
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

/// A client pod of end2end/k8s/scenarios/NAME.yaml on `node`, `var` in it replaced by `value`.
fn start_client(c: &Cluster, name: &str, var: &str, value: &str, node: &str) {
    start_client_with(c, name, &[(var, value)], node);
}

/// The same, with every `(from, to)` of `vars` replaced.
fn start_client_with(c: &Cluster, name: &str, vars: &[(&str, &str)], node: &str) {
    let mut yaml = std::fs::read_to_string(repo().join(format!("end2end/k8s/scenarios/{name}.yaml"))).unwrap();
    for (from, to) in vars {
        yaml = yaml.replace(from, to);
    }
    c.apply(&yaml.replace("hostname: NODE", &format!("hostname: {node}")));
}

/// Where end2end/lab/kafka.sh put Apache Kafka's jars (the test command runs it before the
/// cluster): `$KAFKA_LIB`, or the cache it defaults to.
fn kafka_lib() -> String {
    let pom = std::fs::read_to_string(repo().join("end2end/lab/kafka/pom.xml")).unwrap();
    let version = pom.split("<kafka.version>").nth(1).and_then(|v| v.split('<').next()).expect("kafka.version");
    let lib = std::env::var("KAFKA_LIB").unwrap_or_else(|_| {
        let cache =
            std::env::var("XDG_CACHE_HOME").unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap()));
        format!("{cache}/podtap/kafka-{version}/lib")
    });
    assert!(Path::new(&lib).join(".complete").exists(), "no Kafka jars in {lib}: run end2end/lab/kafka.sh once");
    lib
}

/// Waits for a client pod to succeed (failing the test if it fails).
fn client_done(c: &Cluster, pod: &str) {
    until(&format!("{pod} done"), || {
        let phase = c.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"]);
        assert_ne!(phase, "Failed", "{pod} failed: its output is in the lab node's state directory");
        phase == "Succeeded"
    });
}

/// The names of the pods labelled `app=APP`.
fn pods_of(c: &Cluster, app: &str) -> Vec<String> {
    let pods = c.kubectl_json(&["get", "pods", "-l", &format!("app={app}")]);
    pods["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

/// A Service's ClusterIP.
fn cluster_ip(c: &Cluster, service: &str) -> String {
    c.kubectl(&["get", "service", service, "-o", "jsonpath={.spec.clusterIP}"])
}

#[test]
#[ignore = "needs the real cluster: cargo xtask test runs it after `cluster up --nodes 2`"]
fn the_database_tier_is_exact_per_pod_and_a_pinned_pool_is_named_as_the_skew() {
    let c = Cluster::from_env("databases");
    let nodes = node_names(&c);
    let _tier = Tier(&c);
    let lib = kafka_lib();
    let tier = std::fs::read_to_string(repo().join("end2end/k8s/scenarios/databases.yaml")).unwrap();
    // The broker on the node without the hub, its client on the hub's: every request crosses.
    let other = nodes.iter().find(|n| n.as_str() != HUB_NODE).unwrap();
    c.apply(&tier.replace("KAFKA_LIB", &lib).replace("KAFKA_NODE", other));
    for deployment in ["redis", "postgres", "mariadb", "kafka"] {
        rollout(&c, "default", deployment);
    }
    // The clients' connections open before podtap runs: Redis's pool and MariaDB's client on the
    // node without the hub, PostgreSQL's and Kafka's on the hub's.
    start_client(&c, "redis-pool", "REDIS_HOST", &cluster_ip(&c, "redis"), other);
    start_client(&c, "pg-client", "PG_HOST", &cluster_ip(&c, "postgres"), HUB_NODE);
    start_client(&c, "mysql-client", "MYSQL_HOST", &cluster_ip(&c, "mariadb"), other);
    let kafka = cluster_ip(&c, "kafka");
    start_client_with(&c, "kafka-client", &[("KAFKA_LIB", &lib), ("KAFKA_HOST", &kafka)], HUB_NODE);
    let logs = c.logs();
    let clients = ["redis-pool", "pg-client", "mysql-client", "kafka-client"];
    until("the clients' pools open", || clients.iter().all(|n| logs.join(format!("{n}.ready")).exists()));

    let podtap = start_podtap(&c, &nodes, &c.dir.join("kubeconfig"));
    until("the hub's names listed", names_listed);
    // Capture files beside the agents: what was on the wire, when a check fails.
    let captures = start_captures(&c, &nodes);
    for client in clients {
        std::fs::write(logs.join(format!("{client}.go")), "").unwrap();
    }
    for client in clients {
        client_done(&c, client);
    }
    captures.stop();
    check_redis(&c);
    check_postgres(&c);
    check_mariadb(&c);
    check_kafka(&c);
    drop(podtap);
}

/// The Redis pool against each replica's MONITOR feed, the balance, the map, a filter, an export.
fn check_redis(c: &Cluster) {
    let logs = c.logs();
    let client_ip = c.kubectl(&["get", "pod", "redis-pool", "-o", "jsonpath={.status.podIP}"]);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(logs.join("redis-pool.log")).unwrap()).unwrap();

    // The truth: each replica's feed, once it holds every command the client sent from its marks
    // on (the feed is written as the server runs them, a moment after the client's answers).
    let replicas = pods_of(c, "redis");
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
    let page = hub_page_when(c, &format!("Redis records of the {logged} commands the replicas ran"), logged, redis);
    std::fs::write(c.out.join("hub-records-redis.json"), page.to_string()).unwrap();
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
    // The edge into the busy replica, per operation: each command's count and errors.
    let detail = hub(&format!("/api/v1/edge?source=service:default/redis&target={to_busy}")).expect("the edge");
    let ops: BTreeMap<String, (u64, u64)> = detail["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["operation"].as_str().unwrap().to_string(),
                (o["requests"].as_u64().unwrap(), o["errors"].as_u64().unwrap()),
            )
        })
        .collect();
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (command, _) in truth_busy.values().flat_map(|f| f.values()).flatten() {
        want.entry(command.clone()).or_default().0 += 1;
    }
    want.get_mut("LPUSH").expect("the LPUSHes").1 = errors.len() as u64;
    assert_eq!(ops, want, "the edge's operations: every command's requests and errors");
    assert!(detail["operations"].as_array().unwrap().iter().all(|o| o["p99_ms"].as_f64().is_some()));
    let sets: usize = truth_busy.values().flat_map(|f| f.values()).flatten().filter(|(c, _)| c == "SET").count();
    let filtered = hub("/api/v1/records?limit=10000&filter=kind%3Aredis%20op%3ASET").unwrap();
    let filtered: Vec<Record> = serde_json::from_value(filtered["records"].clone()).unwrap();
    assert!(filtered.iter().all(|r| r.redis().is_some_and(|x| x.command == "SET")), "kind:redis op:SET");
    assert_eq!(filtered.len(), sets, "kind:redis op:SET");
    let export = hub_text("/api/v1/export?format=jsonl&filter=kind%3Aredis");
    let exported: Vec<Record> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), logged, "the JSON-lines export of kind:redis");
    for secret in ["secret-value", "secret-item"] {
        assert!(!page.to_string().contains(secret) && !export.contains(secret), "`{secret}` left the node");
    }
}

/// The PostgreSQL sessions against the server's log: every statement it logged from each
/// session's mark on is one record of its connection, with its operation and SQLSTATE.
fn check_postgres(c: &Cluster) {
    let server = pods_of(c, "postgres").remove(0);
    let truth = logged(&c.logs().join(format!("{server}-postgres.log")));
    assert_eq!(truth.keys().collect::<Vec<_>>(), ["a", "b", "c"], "each session's mark in the log");
    let want: usize = truth.values().map(Vec::len).sum();
    let postgres = |p: &Value| p["records"].as_array().unwrap().iter().filter(|r| r["kind"] == "postgres").count();
    let page = hub_page_when(c, &format!("PostgreSQL records of the {want} statements logged"), want, postgres);
    std::fs::write(c.out.join("hub-records-postgres.json"), page.to_string()).unwrap();
    let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap();
    let seen = recorded(&records);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["a", "b", "c"], "each session's mark at the hub");
    for (mark, logged) in &truth {
        let got: Vec<Logged> =
            seen[mark].iter().filter_map(|r| sql(r)).map(|q| (q.operation.clone(), q.error.clone())).collect();
        assert_eq!(&got, logged, "{}: session {mark}: every logged request, in order, with its SQLSTATE", c.mode);
        for r in &seen[mark] {
            assert!(r.latency_us.is_some(), "answered: {r:?}");
            assert_eq!(r.dst.name.as_deref(), Some(server.as_str()), "{r:?}");
            assert_eq!(r.src.qualified_name().as_deref(), Some("default/pg-client"), "{r:?}");
            assert_eq!((r.via.kind, r.via.service.as_deref()), (ViaKind::ClusterIp, Some("default/postgres")), "{r:?}");
        }
    }
    // Joined mid-stream: `a`'s statement was prepared before podtap ran.
    let unknown = seen["a"].iter().filter(|r| sql(r).is_some_and(|q| q.statement.is_none())).count();
    assert_eq!(unknown, 20, "a's executions of a statement whose Parse came before podtap");
    let errors = truth.values().flatten().filter(|(_, e)| e.is_some()).count();
    let map = hub("/api/v1/map").unwrap();
    let into = format!("pod:default/{server}");
    let edge = map["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == "service:default/postgres" && e["target"] == into.as_str())
        .expect("the edge into PostgreSQL");
    assert_eq!((edge["requests"].as_u64(), edge["errors"].as_u64()), (Some(want as u64), Some(errors as u64)));
    let text = page.to_string();
    for secret in ["secret-name", "copied-secret", "renamed", "inline-secret"] {
        assert!(!text.contains(secret), "`{secret}` left the node");
    }
}

/// The MariaDB sessions against the server's general log: every command it ran from each
/// connection's mark on is one record, prepared statements by their ids, errors with their codes.
fn check_mariadb(c: &Cluster) {
    let server = pods_of(c, "mariadb").remove(0);
    let truth = general_log(&c.logs().join(format!("{server}-mariadb.log")));
    assert_eq!(truth.keys().collect::<Vec<_>>(), ["a", "b"], "each session's mark in the log");
    // The log has what ran: every record but the failed ones.
    let want: usize = truth.values().map(Vec::len).sum();
    let ran = |p: &Value| {
        p["records"].as_array().unwrap().iter().filter(|r| r["kind"] == "mysql" && r["error"].is_null()).count()
    };
    let page = hub_page_when(c, &format!("MariaDB records of the {want} commands logged"), want, ran);
    std::fs::write(c.out.join("hub-records-mariadb.json"), page.to_string()).unwrap();
    let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap();
    let seen = mysql_sessions(&records);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["a", "b"], "each session's mark at the hub");
    for (mark, logged) in &truth {
        assert_eq!(&seen[mark].0, logged, "{}: session {mark}: every logged command, in order", c.mode);
        for r in &seen[mark].1 {
            assert_eq!(r.dst.name.as_deref(), Some(server.as_str()), "{r:?}");
            assert_eq!(r.src.qualified_name().as_deref(), Some("default/mysql-client"), "{r:?}");
            assert_eq!((r.via.kind, r.via.service.as_deref()), (ViaKind::ClusterIp, Some("default/mariadb")), "{r:?}");
            let closing = mysql(r).is_some_and(|q| q.operation == "CLOSE STMT");
            assert_eq!(r.latency_us.is_some(), !closing, "answered unless a COM_STMT_CLOSE: {r:?}");
        }
    }
    let unknown = seen["a"].1.iter().filter_map(|r| mysql(r)).filter(|q| q.prepared.is_some() && q.statement.is_none());
    assert_eq!(unknown.filter(|q| q.operation == "EXECUTE").count(), 10, "a's statement prepared before podtap ran");
    let errors: Vec<(&str, Option<u16>)> =
        records.iter().filter_map(mysql).filter_map(|q| Some((q.error.as_deref()?, q.error_code))).collect();
    assert_eq!(errors, [("42S02", Some(1146)), ("42000", Some(1064))], "a missing table, a syntax error");
    let text = page.to_string();
    for secret in ["secret-name", "secret-renamed"] {
        assert!(!text.contains(secret), "`{secret}` left the node");
    }
}

/// The Kafka clients against the broker's request log: every request it completed from the run's
/// mark on is one record on its connection (API, version, correlation id, in order), with the
/// broker's pod; the bootstrap connection goes through the Service, the rest to the address the
/// broker advertises (its pod's).
fn check_kafka(c: &Cluster) {
    let client = c.kubectl(&["get", "pod", "kafka-client", "-o", "jsonpath={.status.podIP}"]);
    let server = c.kubectl_json(&["get", "pods", "-l", "app=kafka"]);
    let server = server["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
    let log = c.logs().join(format!("{server}-kafka/kafka-requests.log"));
    let (truth, early, names) = kafka_log::logged_around_mark(&log, &client);
    // The broker logs the port it saw: conntrack's, where it moved one (see `snat`).
    let port = |r: &Record| r.snat.as_ref().map_or(r.src.port, |s| s.port);
    let logged: std::collections::HashSet<(u16, i32)> = truth.iter().map(|l| (l.port, l.correlation)).collect();
    let kafka = |p: &Value| -> Vec<Record> {
        let records: Vec<Record> = serde_json::from_value(p["records"].clone()).unwrap();
        records.into_iter().filter(|r| r.kafka().is_some()).collect()
    };
    // Those of the logged requests from the mark on: podtap may also hold a few from just before it
    // (a producer's background Metadata refresh after the agents started: `with_early_seen`).
    let count = |p: &Value| {
        kafka(p).iter().filter(|r| logged.contains(&(port(r), r.kafka().map_or(0, |k| k.correlation_id)))).count()
    };
    let page = hub_page_when(c, &format!("Kafka records of the {} requests logged", truth.len()), truth.len(), count);
    std::fs::write(c.out.join("hub-records-kafka.json"), page.to_string()).unwrap();
    let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap();
    let mut sorted: Vec<&Record> = records.iter().filter(|r| r.kafka().is_some()).collect();
    sorted.sort_by_key(|r| (r.ts, r.id));
    let mut seen: BTreeMap<u16, Vec<i32>> = BTreeMap::new();
    for r in &sorted {
        seen.entry(port(r)).or_default().push(r.kafka().map_or(0, |k| k.correlation_id));
    }
    let truth = kafka_log::with_early_seen(&truth, &early, &seen);
    let mut want: BTreeMap<u16, Vec<(i16, i16, i32)>> = BTreeMap::new();
    for l in &truth {
        want.entry(l.port).or_default().push((l.key, l.version, l.correlation));
    }
    let mut got: BTreeMap<u16, Vec<(i16, i16, i32)>> = BTreeMap::new();
    let mut ways = BTreeMap::new();
    for r in &sorted {
        let k = r.kafka().unwrap();
        got.entry(port(r)).or_default().push((k.api_key, k.version, k.correlation_id));
        assert_eq!(r.dst.name.as_deref(), Some(server.as_str()), "{r:?}");
        if r.nodes.len() != 2 {
            // What else the hub made of this request, and what the agents say they lost: enough to
            // tell a copy merged elsewhere from one never captured (fresh clone 28d, once).
            let k = r.kafka().unwrap();
            let kin: Vec<&&Record> = sorted
                .iter()
                .filter(|o| o.id != r.id && o.kafka().is_some_and(|x| x.correlation_id == k.correlation_id))
                .filter(|o| o.seq == r.seq || port(o) == port(r))
                .collect();
            panic!(
                "seen leaving the client's node and reaching the broker's: {r:?}\nits kin: {kin:?}\nthe agents: {}",
                health().map_or_else(|| "no answer".into(), |h| h["agents"].to_string())
            );
        }
        assert_eq!(r.src.qualified_name().as_deref(), Some("default/kafka-client"), "{r:?}");
        *ways.entry(format!("{:?} {}", r.via.kind, r.via.service.as_deref().unwrap_or("-"))).or_insert(0) += 1;
    }
    assert_eq!(got, want, "{}: the hub's Kafka records against the broker's request log", c.mode);
    // A call to a pod on the client's own node may be `unknown` rather than `direct` (see
    // `lab_cluster::same_way`).
    assert!(ways.contains_key("ClusterIp default/kafka") && ways.len() >= 2, "{ways:?}");
    assert!(
        ways.keys().all(|k| ["ClusterIp default/kafka", "Direct -", "Unknown -"].contains(&k.as_str())),
        "{ways:?}"
    );
    assert_eq!(sorted.iter().filter(|r| r.kafka().unwrap().no_response).count(), 10, "the fire-and-forget produces");
    assert!(!page.to_string().contains("secret"), "a record's key or value left the node");

    // The map: the client writes to and reads from the broker Deployment's topics, by name, as
    // often as the broker logged (a topic logged by id is the one its Metadata response named).
    let home = "topic:default/kafka/";
    let want = kafka_log::topic_edges(&truth, &names, "pod:default/kafka-client", home);
    let map = hub("/api/v1/map").unwrap();
    let got: BTreeMap<(String, String), u64> = map["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["topic"].is_string())
        .map(|e| {
            (
                (e["source"].as_str().unwrap().into(), e["target"].as_str().unwrap().into()),
                e["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want, "{}: the topics' writers and readers on the hub's map", c.mode);
    assert!(want.keys().any(|(s, _)| s.starts_with(home)), "a consumer read: {want:?}");
    let boxes: Vec<&str> = map["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "topic")
        .filter_map(|n| n["label"].as_str())
        .collect();
    assert_eq!(boxes, ["audit", "orders"], "one box per topic, by name");
}

/// The tier's objects, deleted when the test ends, whatever happened: the cluster's next tests
/// run on it.
struct Tier<'a>(&'a Cluster);

impl Drop for Tier<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .command(&[
                "delete",
                "pod",
                "redis-pool",
                "pg-client",
                "mysql-client",
                "kafka-client",
                "--ignore-not-found",
                "--wait=true",
            ])
            .status();
        let _ = self
            .0
            .command(&[
                "delete",
                "deployment,service",
                "redis",
                "postgres",
                "mariadb",
                "kafka",
                "--ignore-not-found",
                "--cascade=foreground",
                "--wait=true",
            ])
            .status();
    }
}
