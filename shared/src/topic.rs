//! Kafka topics on the map. A Produce request counts on producer → topic and a Fetch on topic →
//! the reader, besides the edges to the broker that carried it, so a topic's producers and
//! consumers are one box apart. The topic's box is named after the broker's workload: one topic of
//! one Kafka cluster is one box, whichever broker pod led its partitions.
//!
//! Topic edges count requests again (a Produce is on the edge to its broker and on the edge into
//! its topic; one naming two topics is on both topics' edges): they carry the topic's name
//! (`MapEdge::topic`), and every total of the map leaves them out.

use crate::{Endpoint, EndpointKind, MapNode, Record};

/// Which way a request moves a topic's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// A Produce: from the client into the topic.
    Into,
    /// A Fetch: from the topic to the client (a consumer, or a follower broker replicating it).
    OutOf,
}

/// Which way `r` moves records, and the topics it names (each once, in the record's order; the
/// ones past `KafkaExchange::topics`' bound are not counted).
pub fn flows(r: &Record) -> Option<(Flow, Vec<&str>)> {
    let k = r.kafka()?;
    let flow = match k.api_key {
        0 => Flow::Into,
        1 => Flow::OutOf,
        _ => return None,
    };
    let mut names: Vec<&str> = Vec::with_capacity(k.topics.len());
    for t in &k.topics {
        if !names.contains(&t.name.as_str()) {
            names.push(&t.name);
        }
    }
    (!names.is_empty()).then_some((flow, names))
}

/// Where a broker's topics live: `NS/WORKLOAD` for a broker pod of a workload (the workload's
/// name, without its kind), `NS/POD` for a bare pod, the address for a broker outside the cluster.
fn home(broker: &Endpoint) -> String {
    let workload = broker.workload.as_deref().map(|w| w.rsplit('/').next().unwrap_or(w));
    match (broker.namespace.as_deref(), workload.or(broker.name.as_deref())) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        _ => broker.ip.to_string(),
    }
}

/// The id of topic `name`'s box on the broker `broker`: `topic:HOME/NAME` (`home`). Kafka's topic
/// names have no `/`, so the name is the id's last segment.
pub fn topic_id(broker: &Endpoint, name: &str) -> String {
    format!("topic:{}/{name}", home(broker))
}

/// The topic's name in a `topic:` box id.
pub fn topic_of(id: &str) -> Option<&str> {
    id.strip_prefix("topic:").and_then(|rest| rest.rsplit('/').next())
}

/// Topic `name`'s box on `broker`.
pub fn topic_node(broker: &Endpoint, name: &str) -> MapNode {
    MapNode {
        id: topic_id(broker, name),
        kind: EndpointKind::Topic,
        label: name.to_string(),
        namespace: broker.namespace.as_deref().map(str::to_string),
        workload: None,
        node: None,
        locked: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Detail, KafkaExchange, KafkaTopic};

    fn kafka(api_key: i16, topics: &[&str]) -> Record {
        let mut r = Record::test();
        r.detail = Detail::Kafka(Box::new(KafkaExchange {
            operation: if api_key == 0 { "Produce" } else { "Fetch" }.into(),
            api_key,
            topics: topics.iter().map(|t| KafkaTopic { name: t.to_string(), partitions: vec![0] }).collect(),
            ..KafkaExchange::default()
        }));
        r
    }

    #[test]
    fn produces_flow_into_topics_fetches_out_each_topic_once() {
        assert_eq!(flows(&kafka(0, &["orders", "audit", "orders"])), Some((Flow::Into, vec!["orders", "audit"])));
        assert_eq!(flows(&kafka(1, &["orders"])), Some((Flow::OutOf, vec!["orders"])));
        assert_eq!(flows(&kafka(3, &["orders"])), None, "Metadata moves no records");
        assert_eq!(flows(&kafka(1, &[])), None);
        assert_eq!(flows(&Record::test()), None);
    }

    #[test]
    fn a_topic_box_is_named_after_its_brokers_workload() {
        let mut broker = Endpoint::unknown([10, 0, 0, 9].into(), 9092);
        assert_eq!(topic_id(&broker, "orders"), "topic:10.0.0.9/orders");
        broker.kind = EndpointKind::Pod;
        broker.namespace = Some("data".into());
        broker.name = Some("kafka-0".into());
        assert_eq!(topic_id(&broker, "orders"), "topic:data/kafka-0/orders");
        broker.workload = Some("StatefulSet/kafka".into());
        assert_eq!(topic_id(&broker, "orders"), "topic:data/kafka/orders");
        assert_eq!(topic_of("topic:data/kafka/orders"), Some("orders"));
        assert_eq!(topic_of("pod:data/kafka-0"), None);
        let n = topic_node(&broker, "orders");
        assert_eq!((n.kind, n.label.as_str(), n.namespace.as_deref()), (EndpointKind::Topic, "orders", Some("data")));
    }
}
