//! podtap against a real Apache Kafka broker (end2end/lab/kafka.sh, run by the test command):
//! every request the broker's request log shows from the clients since the run's mark is one
//! record — same connection, API, version and correlation id, in the same order — including the
//! producer's connection joined mid-stream, the fire-and-forget produces (`acks=0`, no answer by
//! design), and the error codes the broker answered; and no key or value reaches a record.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use podtap_shared::{KafkaExchange, Record};
use serde_json::Value;

fn lab_dir() -> PathBuf {
    PathBuf::from(std::env::var("PODTAP_DB_DIR").expect("PODTAP_DB_DIR: run by `cargo xtask test` after the lab"))
}

const CLIENT: &str = "10.251.5.1";

/// One request as the broker logged it (kafka.request.logger at TRACE): its client port, API
/// key, version, correlation id, `acks` for a Produce, and the error codes of its response.
#[derive(Debug)]
struct Logged {
    port: u16,
    key: i16,
    version: i16,
    correlation: i32,
    acks: Option<i64>,
    errors: Vec<i64>,
    topics: Vec<String>,
}

/// Every error code in a response, in document order (none when it was all 0).
fn error_codes(v: &Value, out: &mut Vec<i64>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "errorCode" {
                    out.extend(v.as_i64().filter(|c| *c != 0));
                } else {
                    error_codes(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| error_codes(v, out)),
        _ => {}
    }
}

/// The clients' requests, from the run's mark (the producer's first record to `audit` after its
/// early ones — the log names topics by id, so: the fifth Produce of `orders-producer`) to the
/// end, in the order the broker completed them; and every topic id a Metadata response named.
fn logged() -> (Vec<Logged>, BTreeMap<String, String>) {
    let text = std::fs::read_to_string(lab_dir().join("logs/kafka-requests.log")).expect("the broker's request log");
    let (mut all, mut names) = (Vec::new(), BTreeMap::new());
    for line in text.lines() {
        let Some(json) = line.strip_prefix("Completed request:") else { continue };
        let v: Value = serde_json::from_str(json).expect("a request as JSON");
        for t in v["response"]["topics"].as_array().into_iter().flatten() {
            if let (Some(id), Some(name)) = (t["topicId"].as_str(), t["name"].as_str()) {
                names.insert(format!("id:{id}"), name.to_string());
            }
        }
        let connection = v["connection"].as_str().unwrap_or("");
        // "10.251.5.2:9092-10.251.5.1:48800-0-1": the listener, then the client.
        let Some(client) = connection.split('-').nth(1) else { continue };
        let Some(port) = client.strip_prefix(&format!("{CLIENT}:")) else { continue };
        let h = &v["requestHeader"];
        let mut errors = Vec::new();
        error_codes(&v["response"], &mut errors);
        let topics = v["request"]["topicData"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                t["name"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .map_or_else(|| format!("id:{}", t["topicId"].as_str().unwrap()), str::to_string)
            })
            .collect();
        all.push((
            h["clientId"].as_str().unwrap_or("").to_string(),
            Logged {
                port: port.parse().unwrap(),
                key: h["requestApiKey"].as_i64().unwrap() as i16,
                version: h["requestApiVersion"].as_i64().unwrap() as i16,
                correlation: h["correlationId"].as_i64().unwrap() as i32,
                acks: v["request"]["acks"].as_i64(),
                errors,
                topics,
            },
        ));
    }
    // The producer sent three records to orders and one to audit before the capture; its next
    // Produce is the mark.
    let mut produces = all.iter().enumerate().filter(|(_, (client, l))| client == "orders-producer" && l.key == 0);
    let (mark, _) = produces.nth(4).expect("the mark: the producer's fifth Produce");
    (all.into_iter().skip(mark).map(|(_, l)| l).collect(), names)
}

#[test]
#[ignore = "needs the Kafka lab: cargo xtask test runs it after end2end/lab/kafka.sh"]
fn every_request_the_broker_completed_is_one_record_on_its_connection() {
    let (truth, names) = logged();
    let records = common::analyze_in_step(&lab_dir().join("kafka.pcap"));
    // Per client port, in order: (API key, version, correlation id).
    let mut want: BTreeMap<u16, Vec<(i16, i16, i32)>> = BTreeMap::new();
    for l in &truth {
        want.entry(l.port).or_default().push((l.key, l.version, l.correlation));
    }
    let mut got: BTreeMap<u16, Vec<(i16, i16, i32)>> = BTreeMap::new();
    let mut sorted: Vec<&Record> = records.iter().filter(|r| r.kafka().is_some()).collect();
    sorted.sort_by_key(|r| (r.ts, r.id));
    for r in &sorted {
        let k = r.kafka().unwrap();
        got.entry(r.src.port).or_default().push((k.api_key, k.version, k.correlation_id));
    }
    assert_eq!(got, want, "podtap's Kafka records against the broker's request log");
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

    // The mid-stream connection: its first request seen is the mark.
    let mark = &truth[0];
    assert_eq!(got[&mark.port][0].2, mark.correlation);
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains("secret"), "a record's key or value left the node");
    // DESIGN's fields, at the top level of a record's JSON.
    let produce =
        records.iter().find(|r| r.kafka().is_some_and(|k| k.operation == "Produce" && k.acks == Some(-1))).unwrap();
    let json = serde_json::to_value(produce).unwrap();
    assert_eq!((json["kind"].as_str(), json["operation"].as_str()), (Some("kafka"), Some("Produce")));
    assert!(json["topic"].is_string() && json["partition"].is_i64(), "{json}");
}
