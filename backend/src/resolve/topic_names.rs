//! Kafka topic names for topic ids, from the Metadata responses seen so far on any connection:
//! an id is a cluster's name for one topic for good (a topic made again gets another), so one
//! table serves every connection — a producer joined mid-stream sends ids whose Metadata came
//! before the capture, and a consumer's Metadata names them. Kept by the joiner, so a record is
//! named by what came before it in capture order, however many threads dissected the capture
//! (and, on a hub, whichever node's agent saw the Metadata). Bounded: past it, it starts again.

use podtap_shared::{Detail, Record};
use rustc_hash::FxHashMap;

/// Topic ids remembered at once.
const MAX_TOPIC_IDS: usize = 100_000;

#[derive(Debug, Default)]
pub struct TopicNames {
    /// `id:…` (as a record writes an unnamed id) → the topic's name.
    names: FxHashMap<String, String>,
}

impl TopicNames {
    /// Learns the ids a Metadata response named.
    pub fn learn(&mut self, r: &Record) {
        let Detail::Kafka(k) = &r.detail else { return };
        for (id, name) in &k.topic_ids {
            if self.names.len() >= MAX_TOPIC_IDS {
                self.names.clear();
            }
            self.names.insert(id.clone(), name.clone());
        }
    }

    /// Names the topics a record names only by an id learned before.
    pub fn name(&self, r: &mut Record) {
        let Detail::Kafka(k) = &mut r.detail else { return };
        if self.names.is_empty() {
            return;
        }
        for t in &mut k.topics {
            if let Some(name) = self.names.get(&t.name) {
                t.name = name.clone();
            }
        }
        if let Some(topic) = &mut k.topic
            && let Some(name) = self.names.get(topic.as_str())
        {
            *topic = name.clone();
        }
    }
}
