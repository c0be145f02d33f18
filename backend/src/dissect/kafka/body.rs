//! What a Kafka request or response body says that a record keeps, decoded by `kafka-protocol`
//! (generated from Kafka's own message schemas, every version): the topics and partitions named,
//! the consumer group, `acks`, the sizes of record batches, and the first error code. Record
//! batches are never opened.

use base64::Engine;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use podtap_shared::kafka::{KafkaExchange, KafkaTopic, MAX_PARTITIONS, MAX_TOPICS};

/// A topic id as Kafka writes it (`Uuid.toString()`: URL-safe base64, no padding).
fn kafka_id(id: &uuid::Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Adds a topic to the exchange (bounded), by name, else by id (`id:…`: the joiner names it
/// from the Metadata responses it has seen, `resolve::TopicNames`).
fn topic(k: &mut KafkaExchange, name: &str, id: &uuid::Uuid, partitions: impl Iterator<Item = i32>) {
    let name = topic_name(name, id);
    if k.topics.len() >= MAX_TOPICS {
        k.more_topics += 1;
        return;
    }
    k.topics.push(KafkaTopic { name: bounded(&name), partitions: partitions.take(MAX_PARTITIONS).collect() });
}

/// A topic's name, or `id:` and its id.
fn topic_name(name: &str, id: &uuid::Uuid) -> String {
    if name.is_empty() && !id.is_nil() { format!("id:{}", kafka_id(id)) } else { name.to_string() }
}

fn bounded(s: &str) -> String {
    s.chars().take(249).collect()
}

fn group(k: &mut KafkaExchange, g: &StrBytes) {
    k.group = Some(bounded(g.as_str()));
}

/// What a request says.
pub fn request(k: &mut KafkaExchange, body: &RequestKind) {
    match body {
        RequestKind::Produce(r) => {
            k.acks = Some(r.acks);
            k.no_response = r.acks == 0;
            k.transactional_id = r.transactional_id.as_ref().map(|t| bounded(t.0.as_str()));
            let mut bytes = 0u64;
            for t in &r.topic_data {
                bytes += t.partition_data.iter().map(|p| p.records.as_ref().map_or(0, |b| b.len() as u64)).sum::<u64>();
                topic(k, t.name.as_str(), &t.topic_id, t.partition_data.iter().map(|p| p.index));
            }
            k.records_bytes = Some(bytes);
        }
        RequestKind::Fetch(r) => {
            for t in &r.topics {
                topic(k, t.topic.as_str(), &t.topic_id, t.partitions.iter().map(|p| p.partition));
            }
        }
        RequestKind::Metadata(r) => {
            for t in r.topics.iter().flatten() {
                let name = t.name.as_ref().map_or("", |n| n.as_str());
                topic(k, name, &t.topic_id, std::iter::empty());
            }
        }
        RequestKind::ListOffsets(r) => {
            for t in &r.topics {
                topic(k, t.name.as_str(), &uuid::Uuid::nil(), t.partitions.iter().map(|p| p.partition_index));
            }
        }
        RequestKind::OffsetCommit(r) => {
            group(k, &r.group_id.0);
            for t in &r.topics {
                topic(k, t.name.as_str(), &t.topic_id, t.partitions.iter().map(|p| p.partition_index));
            }
        }
        RequestKind::OffsetFetch(r) => {
            if !r.group_id.0.as_str().is_empty() {
                group(k, &r.group_id.0);
            } else if let Some(g) = r.groups.first() {
                group(k, &g.group_id.0);
            }
            for t in r.topics.iter().flatten() {
                topic(k, t.name.as_str(), &uuid::Uuid::nil(), t.partition_indexes.iter().copied());
            }
        }
        RequestKind::FindCoordinator(r) => match r.coordinator_keys.first() {
            Some(key) if r.key.as_str().is_empty() => group(k, key),
            _ => group(k, &r.key),
        },
        RequestKind::JoinGroup(r) => group(k, &r.group_id.0),
        RequestKind::SyncGroup(r) => group(k, &r.group_id.0),
        RequestKind::Heartbeat(r) => group(k, &r.group_id.0),
        RequestKind::LeaveGroup(r) => group(k, &r.group_id.0),
        RequestKind::CreateTopics(r) => {
            for t in &r.topics {
                topic(k, t.name.as_str(), &uuid::Uuid::nil(), std::iter::empty());
            }
        }
        RequestKind::DeleteTopics(r) => {
            for t in &r.topic_names {
                topic(k, t.as_str(), &uuid::Uuid::nil(), std::iter::empty());
            }
            for t in &r.topics {
                let name = t.name.as_ref().map_or("", |n| n.as_str());
                topic(k, name, &t.topic_id, std::iter::empty());
            }
        }
        _ => {}
    }
}

/// Counts an error code: the first non-zero one is the exchange's error.
fn code(k: &mut KafkaExchange, code: i16, partition: bool) {
    if let Some(e) = ResponseError::try_from_code(code) {
        if k.error.is_none() {
            k.error = Some(match e {
                ResponseError::Unknown(c) => format!("Unknown({c})"),
                e => format!("{e:?}"),
            });
            k.error_code = Some(code);
        }
        k.failed_partitions += u32::from(partition);
    }
}

/// What a response says; the topic ids a Metadata response names are remembered.
pub fn response(k: &mut KafkaExchange, body: &ResponseKind) {
    match body {
        ResponseKind::Produce(r) => {
            for p in r.responses.iter().flat_map(|t| &t.partition_responses) {
                code(k, p.error_code, true);
            }
        }
        ResponseKind::Fetch(r) => {
            code(k, r.error_code, false);
            let mut bytes = 0u64;
            for t in &r.responses {
                let mut carried = Vec::new();
                for p in &t.partitions {
                    code(k, p.error_code, true);
                    let n = p.records.as_ref().map_or(0, |b| b.len() as u64);
                    bytes += n;
                    if n > 0 {
                        carried.push(p.partition_index);
                    }
                }
                // In a fetch session (KIP-227) a request names only the partitions that changed:
                // a topic whose records came back is one this Fetch read, named or not.
                let name = topic_name(t.topic.as_str(), &t.topic_id);
                if !carried.is_empty() && !k.topics.iter().any(|o| o.name == bounded(&name)) {
                    topic(k, &name, &uuid::Uuid::nil(), carried.into_iter());
                }
            }
            k.records_bytes = Some(bytes);
        }
        ResponseKind::Metadata(r) => {
            code(k, r.error_code, false);
            for t in &r.topics {
                code(k, t.error_code, false);
                if let Some(name) = &t.name
                    && !t.topic_id.is_nil()
                    && k.topic_ids.len() < MAX_TOPICS
                {
                    k.topic_ids.insert(format!("id:{}", kafka_id(&t.topic_id)), bounded(name.as_str()));
                }
            }
        }
        ResponseKind::ListOffsets(r) => {
            for p in r.topics.iter().flat_map(|t| &t.partitions) {
                code(k, p.error_code, true);
            }
        }
        ResponseKind::OffsetCommit(r) => {
            for p in r.topics.iter().flat_map(|t| &t.partitions) {
                code(k, p.error_code, true);
            }
        }
        ResponseKind::OffsetFetch(r) => {
            code(k, r.error_code, false);
            for g in &r.groups {
                code(k, g.error_code, false);
            }
        }
        ResponseKind::FindCoordinator(r) => {
            code(k, r.error_code, false);
            for c in &r.coordinators {
                code(k, c.error_code, false);
            }
        }
        ResponseKind::JoinGroup(r) => code(k, r.error_code, false),
        ResponseKind::SyncGroup(r) => code(k, r.error_code, false),
        ResponseKind::Heartbeat(r) => code(k, r.error_code, false),
        ResponseKind::LeaveGroup(r) => code(k, r.error_code, false),
        ResponseKind::ApiVersions(r) => code(k, r.error_code, false),
        ResponseKind::InitProducerId(r) => code(k, r.error_code, false),
        ResponseKind::CreateTopics(r) => {
            for t in &r.topics {
                code(k, t.error_code, false);
            }
        }
        ResponseKind::DeleteTopics(r) => {
            for t in &r.responses {
                code(k, t.error_code, false);
            }
        }
        _ => {}
    }
}
