//! Kafka exchanges (`kind: "kafka"`): one request and its response, paired by correlation id
//! (the Kafka protocol guide, kafka.apache.org/protocol, "Requests and Responses"). What a record
//! carries — its key, value and headers — never appears here: only the API, the topics and
//! partitions named, the sizes, and the error codes.

use serde::{Deserialize, Serialize};

/// At most this many topics, and partitions per topic, are kept of one request.
pub const MAX_TOPICS: usize = 32;
pub const MAX_PARTITIONS: usize = 64;

/// One Kafka request (any API key and version) and what came back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaExchange {
    /// The API's name (`Produce`, `Fetch`, `Metadata`, …), or `ApiKey(N)` for one this build
    /// does not know.
    pub operation: String,
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
    /// The client's `client.id` (at most 128 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The topics the request named, with their partitions (bounded: `MAX_TOPICS`,
    /// `MAX_PARTITIONS`); a topic named only by its id whose name no Metadata response gave
    /// is `id:` and the id as Kafka writes it (`id:d0_LX2zARL-npC-bXjI0qw`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<KafkaTopic>,
    /// The first topic named and its first partition (as `topics` has them): the fields every
    /// broker record has (DESIGN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// More topics than were kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_topics: u32,
    /// A Produce request's `acks` (0: no response comes; 1: the leader's; -1: every in-sync
    /// replica's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acks: Option<i16>,
    /// A Produce request's transactional id, when it was part of a transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactional_id: Option<String>,
    /// A consumer group the request named (`JoinGroup`, `OffsetCommit`, `FindCoordinator`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The topic ids a Metadata response named, with their names (`id:…` as `topics` writes an
    /// id → name; bounded by `MAX_TOPICS`): a topic a client names only by its id is one box on
    /// the map with its name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub topic_ids: std::collections::BTreeMap<String, String>,
    /// Bytes of record batches: sent by a Produce request, returned by a Fetch response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_bytes: Option<u64>,
    /// The first error the response gave (top level, else the first topic's or partition's), by
    /// its name in Kafka's error table (`NotLeaderOrFollower`), and its code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i16>,
    /// Partitions whose answer was an error, of those the response named.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_partitions: u32,
    /// No response comes, by the protocol (a Produce with `acks=0`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_response: bool,
    /// Why the body was not read, when it was not: too large to hold (`large`), a version newer
    /// than this build knows (`newer`), or not what its API key and version say (`malformed`).
    /// The header's fields are still right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<String>,
}

/// A topic a request named, and its partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaTopic {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<i32>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl KafkaExchange {
    /// What was asked, in one line: `Produce orders[0,1] acks=1`, `Fetch orders[2]`, `Metadata`.
    pub fn request_line(&self) -> String {
        let mut line = self.operation.clone();
        for t in &self.topics {
            let parts: Vec<String> = t.partitions.iter().map(i32::to_string).collect();
            if parts.is_empty() {
                line.push_str(&format!(" {}", t.name));
            } else {
                line.push_str(&format!(" {}[{}]", t.name, parts.join(",")));
            }
        }
        if self.more_topics > 0 {
            line.push_str(&format!(" (+{} topics)", self.more_topics));
        }
        if let Some(g) = &self.group {
            line.push_str(&format!(" group={g}"));
        }
        if let Some(a) = self.acks {
            line.push_str(&format!(" acks={a}"));
        }
        line
    }

    /// What came back: the error's name, `no response` for `acks=0`, else `OK`.
    pub fn outcome(&self) -> Option<String> {
        match (&self.error, self.no_response) {
            (Some(e), _) => Some(e.clone()),
            (None, true) => Some("no response (acks=0)".into()),
            (None, false) => Some("OK".into()),
        }
    }

    /// Whether any topic it named is `topic`.
    pub fn names_topic(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t.name == topic)
    }
}
