//! Apache Kafka's own request log as the ground truth (kafka.request.logger at TRACE: every
//! request the broker completed, its header, body and response as JSON), for the lab's client
//! (end2end/lab/apps/KafkaLab.java) in both lab tiers.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// One request as the broker logged it (kafka.request.logger at TRACE): its client port, API
/// key, version, correlation id, `acks` for a Produce, and the error codes of its response.
#[derive(Clone, Debug)]
pub struct Logged {
    pub port: u16,
    pub key: i16,
    pub version: i16,
    pub correlation: i32,
    pub acks: Option<i64>,
    pub errors: Vec<i64>,
    /// The topics a Produce wrote to.
    pub topics: Vec<String>,
    /// The topics a Fetch read: those it named and those whose records came back.
    pub read: Vec<String>,
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

/// The requests of the clients at address `client`, from the run's mark (the producer's first
/// record to `audit` after its early ones — the log names topics by id, so: the fifth Produce of
/// `orders-producer`) to the end, in the order the broker completed them; the requests it
/// completed between the producer's last record before the capture (its fourth Produce) and the
/// mark; and every topic id a Metadata response named. The capture (the agents) starts in that
/// gap, so it may hold the last few of them (a producer's background Metadata refresh), and no
/// request before it: `with_early_seen`.
pub fn logged_around_mark(log: &Path, client: &str) -> (Vec<Logged>, Vec<Logged>, BTreeMap<String, String>) {
    let text = std::fs::read_to_string(log).expect("the broker's request log");
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
        let Some(peer) = connection.split('-').nth(1) else { continue };
        let Some(port) = peer.strip_prefix(&format!("{client}:")) else { continue };
        let h = &v["requestHeader"];
        let mut errors = Vec::new();
        error_codes(&v["response"], &mut errors);
        // A topic by its name, else by its id (as podtap writes one it has no name for).
        let name = |t: &Value, key: &str| {
            t[key]
                .as_str()
                .filter(|n| !n.is_empty())
                .map_or_else(|| format!("id:{}", t["topicId"].as_str().unwrap_or("")), str::to_string)
        };
        let produced = v["request"]["topicData"].as_array().into_iter().flatten().map(|t| name(t, "name")).collect();
        // What a Fetch read: the topics it named, and those whose records came back.
        let mut read: Vec<String> =
            v["request"]["topics"].as_array().into_iter().flatten().map(|t| name(t, "topic")).collect();
        for t in v["response"]["responses"].as_array().into_iter().flatten() {
            let carried =
                t["partitions"].as_array().into_iter().flatten().any(|p| p["recordsSizeInBytes"].as_i64() > Some(0));
            let n = name(t, "topic");
            if carried && !read.contains(&n) {
                read.push(n);
            }
        }
        all.push((
            h["clientId"].as_str().unwrap_or("").to_string(),
            Logged {
                port: port.parse().unwrap(),
                key: h["requestApiKey"].as_i64().unwrap() as i16,
                version: h["requestApiVersion"].as_i64().unwrap() as i16,
                correlation: h["correlationId"].as_i64().unwrap() as i32,
                acks: v["request"]["acks"].as_i64(),
                errors,
                topics: produced,
                read: if h["requestApiKey"] == 1 { read } else { Vec::new() },
            },
        ));
    }
    // The producer sent three records to orders and one to audit before the capture; its next
    // Produce is the mark.
    let mut produces = all.iter().enumerate().filter(|(_, (client, l))| client == "orders-producer" && l.key == 0);
    let (fourth, _) = produces.nth(3).expect("the producer's fourth Produce");
    let (mark, _) = produces.next().expect("the mark: the producer's fifth Produce");
    let mut all: Vec<Logged> = all.into_iter().map(|(_, l)| l).collect();
    let truth = all.split_off(mark);
    (truth, all.split_off(fourth + 1), names)
}

/// The truth a capture holds: of `early` (before the mark), the last ones on each connection
/// that podtap's records (`seen`: per client port, correlation ids in order) begin with, before
/// that connection's first request of `truth`; then `truth`. What podtap saw before the mark that
/// is not the end of what the broker completed there is left out, so comparing still fails.
pub fn with_early_seen(truth: &[Logged], early: &[Logged], seen: &BTreeMap<u16, Vec<i32>>) -> Vec<Logged> {
    let mut out: Vec<Logged> = Vec::new();
    for (port, ids) in seen {
        let first = truth.iter().find(|l| l.port == *port).map(|l| l.correlation);
        let n = first.and_then(|c| ids.iter().position(|i| *i == c)).unwrap_or(0);
        let before: Vec<&Logged> = early.iter().filter(|l| l.port == *port).collect();
        let tail = &before[before.len().saturating_sub(n)..];
        if tail.len() == n && tail.iter().map(|l| l.correlation).eq(ids[..n].iter().copied()) {
            out.extend(tail.iter().map(|l| (*l).clone()));
        }
    }
    out.extend(truth.iter().cloned());
    out
}

/// The map's topic edges as the broker logged them: per (source, target), how many Produces of
/// `client` (a map id) wrote to each topic of the box home `home` (`topic:HOME/`) and how many
/// Fetches read one, each topic once per request, by name (an id a Metadata response in `names`
/// named is that name).
pub fn topic_edges(
    truth: &[Logged],
    names: &BTreeMap<String, String>,
    client: &str,
    home: &str,
) -> BTreeMap<(String, String), u64> {
    let mut edges = BTreeMap::new();
    for l in truth {
        let logged = if l.key == 0 { &l.topics } else { &l.read };
        let mut topics: Vec<&str> = logged.iter().map(|t| names.get(t).map_or(t.as_str(), String::as_str)).collect();
        topics.sort();
        topics.dedup();
        for t in topics {
            let (client, topic) = (client.to_string(), format!("{home}{t}"));
            *edges.entry(if l.key == 0 { (client, topic) } else { (topic, client) }).or_default() += 1;
        }
    }
    edges
}
