//! podtap against a real Apache Kafka broker (end2end/lab/kafka.sh, run by the test command):
//! every request the broker's request log shows from the clients since the run's mark is one
//! record — same connection, API, version and correlation id, in the same order — including the
//! producer's connection joined mid-stream, the fire-and-forget produces (`acks=0`, no answer by
//! design), and the error codes the broker answered; and no key or value reaches a record. The
//! broker is a pod behind a Service (end2end/lab/tier.sh): the clients bootstrap through it and
//! then call the broker's pod at the address it advertises, and every record says which way it
//! went. On the map, each topic's producers and consumers are counted as the broker logged them.

mod common;

use common::kafka_log::{self, Logged};

use std::collections::BTreeMap;
use std::path::PathBuf;

use podtap_shared::{KafkaExchange, Record};

fn lab_dir() -> PathBuf {
    PathBuf::from(std::env::var("PODTAP_DB_DIR").expect("PODTAP_DB_DIR: run by `cargo xtask test` after the lab"))
}

const CLIENT: &str = "10.251.5.1";
/// The client pod, the broker's pod and its Service (end2end/lab/db_tier.py).
const CLIENT_POD: &str = "shop/events-9b8a7c6d5-w3e4r";
const BROKER_POD: &str = "data/kafka-0";
const SERVICE: &str = "data/kafka";

/// The broker's log as the capture of `records` holds it (from the mark, with the requests just
/// before it that the capture caught as it started: `kafka_log::with_early_seen`), the mark
/// (client port, correlation id), and the topic ids' names.
fn logged(records: &[Record]) -> (Vec<Logged>, (u16, i32), BTreeMap<String, String>) {
    let (truth, early, names) = kafka_log::logged_around_mark(&lab_dir().join("logs/kafka-requests.log"), CLIENT);
    let mut sorted: Vec<&Record> = records.iter().filter(|r| r.kafka().is_some()).collect();
    sorted.sort_by_key(|r| (r.ts, r.id));
    let mut seen: BTreeMap<u16, Vec<i32>> = BTreeMap::new();
    for r in sorted {
        seen.entry(r.src.port).or_default().push(r.kafka().map_or(0, |k| k.correlation_id));
    }
    let mark = (truth[0].port, truth[0].correlation);
    (kafka_log::with_early_seen(&truth, &early, &seen), mark, names)
}

#[test]
#[ignore = "needs the Kafka lab: cargo xtask test runs it after end2end/lab/kafka.sh"]
fn every_request_the_broker_completed_is_one_record_on_its_connection() {
    let dir = lab_dir();
    let records = common::analyze_in_step(&dir.join("kafka.pcapng"), &dir.join("db-cluster.json"));
    let (truth, mark, names) = logged(&records);
    // Per client port, in order: (API key, version, correlation id).
    let mut want: BTreeMap<u16, Vec<(i16, i16, i32)>> = BTreeMap::new();
    for l in &truth {
        want.entry(l.port).or_default().push((l.key, l.version, l.correlation));
    }
    let mut got: BTreeMap<u16, Vec<(i16, i16, i32)>> = BTreeMap::new();
    let mut sorted: Vec<&Record> = records.iter().filter(|r| r.kafka().is_some()).collect();
    sorted.sort_by_key(|r| (r.ts, r.id));
    let mut ways: BTreeMap<String, usize> = BTreeMap::new();
    for r in &sorted {
        let k = r.kafka().unwrap();
        got.entry(r.src.port).or_default().push((k.api_key, k.version, k.correlation_id));
        assert_eq!(r.src.qualified_name().as_deref(), Some(CLIENT_POD), "{r:?}");
        assert_eq!(r.dst.qualified_name().as_deref(), Some(BROKER_POD), "{r:?}");
        assert_eq!(r.observations, 2, "the client's veth and the broker's: {r:?}");
        *ways.entry(format!("{:?} {}", r.via.kind, r.via.service.as_deref().unwrap_or("-"))).or_default() += 1;
    }
    assert_eq!(got, want, "podtap's Kafka records against the broker's request log");
    // The bootstrap through the Service; everything after it straight to the advertised pod.
    let ways: Vec<String> = ways.into_keys().collect();
    assert_eq!(ways, [format!("ClusterIp {SERVICE}"), "Direct -".to_string()]);
    assert!(want.len() >= 5, "the producers', the admin's and the consumer's connections: {:?}", want.keys());

    // Each record says what the broker says of it.
    let by_key: BTreeMap<(u16, i32), &Logged> = truth.iter().map(|l| ((l.port, l.correlation), l)).collect();
    let mut named = 0;
    for r in &sorted {
        let k = r.kafka().unwrap();
        let l = by_key[&(r.src.port, k.correlation_id)];
        assert_eq!(k.unread, None, "every body read: {k:?}");
        match l.errors.first() {
            Some(code) => {
                assert!(k.error_code.is_some_and(|c| l.errors.contains(&i64::from(c))), "{k:?} vs {l:?} ({code})")
            }
            None => assert_eq!(k.error, None, "{k:?} vs {l:?}"),
        }
        if l.key == 0 {
            assert_eq!(k.acks.map(i64::from), l.acks, "{k:?}");
            assert_eq!(k.no_response, l.acks == Some(0), "{k:?}");
            assert_eq!(r.latency_us.is_none(), k.no_response, "an answer exactly when acks is not 0: {k:?}");
            // A topic is the id the broker logged, or the name a Metadata response gave it.
            assert_eq!(k.topics.len(), l.topics.len(), "{k:?} vs {l:?}");
            for (t, logged) in k.topics.iter().zip(&l.topics) {
                if t.name != *logged {
                    assert_eq!(Some(&t.name), names.get(logged), "{t:?} vs {logged}");
                    named += 1;
                }
            }
        }
    }
    let count = |f: &dyn Fn(&KafkaExchange) -> bool| sorted.iter().filter(|r| f(r.kafka().unwrap())).count();
    assert_eq!(count(&|k| k.no_response), 10, "the ten fire-and-forget produces");
    assert!(count(&|k| k.error.as_deref() == Some("UnknownTopicOrPartition")) >= 1, "the missing topic");
    assert!(count(&|k| k.group.as_deref() == Some("billing")) >= 4, "the consumer group's requests");
    assert!(count(&|k| k.operation == "Fetch" && k.records_bytes.is_some_and(|b| b > 0)) >= 1, "records fetched");
    eprintln!("kafka: {} requests exact; {named} topic ids named from Metadata responses", sorted.len());

    // The mid-stream connection: the mark is on it, after at most the few requests its client
    // sent while the capture was starting.
    let at = got[&mark.0].iter().position(|r| r.2 == mark.1).expect("the mark");
    assert!(at <= 2, "{:?}", got[&mark.0]);
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains("secret"), "a record's key or value left the node");
    // DESIGN's fields, at the top level of a record's JSON.
    let produce =
        records.iter().find(|r| r.kafka().is_some_and(|k| k.operation == "Produce" && k.acks == Some(-1))).unwrap();
    let json = serde_json::to_value(produce).unwrap();
    assert_eq!((json["kind"].as_str(), json["operation"].as_str()), (Some("kafka"), Some("Produce")));
    assert!(json["topic"].is_string() && json["partition"].is_i64(), "{json}");
}

#[test]
#[ignore = "needs the Kafka lab: cargo xtask test runs it after end2end/lab/kafka.sh"]
fn each_topics_writers_and_readers_are_counted_on_the_map_as_the_broker_logged_them() {
    let dir = lab_dir();
    let records = common::analyze_in_step(&dir.join("kafka.pcapng"), &dir.join("db-cluster.json"));
    let (truth, _, names) = logged(&records);
    // The broker's topics live under its workload, the StatefulSet `kafka`.
    let want = kafka_log::topic_edges(&truth, &names, &format!("pod:{CLIENT_POD}"), "topic:data/kafka/");
    // The map as `analyze --format summary` gives it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_podtap"))
        .args(["analyze", &dir.join("kafka.pcapng").display().to_string(), "--format", "summary", "--cluster"])
        .arg(dir.join("db-cluster.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut broker_requests = 0;
    for e in summary["edges"].as_array().unwrap() {
        let (s, t) = (e["source"].as_str().unwrap(), e["target"].as_str().unwrap());
        let requests = e["requests"].as_u64().unwrap();
        match e["topic"].as_str() {
            Some(topic) => {
                // Named by podtap itself: a topic the producer named only by its id is drawn
                // under the name a later Metadata response gave it.
                assert!(s.ends_with(&format!("/{topic}")) || t.ends_with(&format!("/{topic}")), "{e}");
                assert!(!topic.starts_with("id:"), "{e}");
                *got.entry((s.to_string(), t.to_string())).or_default() += requests;
            }
            None if t == format!("pod:{BROKER_POD}") => broker_requests += requests,
            None => {}
        }
    }
    eprintln!("kafka: topic edges as the broker logged them: {want:?}");
    assert_eq!(got, want, "writers and readers of each topic, against the broker's request log");
    assert!(want.keys().any(|(s, _)| s.starts_with("topic:")), "a consumer read a topic: {want:?}");
    assert!(want.len() >= 3, "two topics written, one read: {want:?}");
    // The edges into the broker's pod (from the Service and straight from the client) still count
    // every request once.
    assert_eq!(broker_requests, truth.len() as u64);
}
