//! Kafka (the protocol guide, kafka.apache.org/protocol): one record per request, paired with its
//! response by correlation id, for every API key and version `kafka-protocol` knows (those it does
//! not are still records, named `ApiKey(N)`). A Produce with `acks=0` gets no response, by the
//! protocol, and is a record at once. Kept: the API and version, `client.id`, topics and
//! partitions (topic ids named from the Metadata responses of any connection), the group, `acks`, the
//! sizes of record batches and the first error code; never a record's key, value or headers.
//!
//! Recognised by content: a client's first frame whose size, API key, version and client id all
//! fit (`looks_like_request`); joined mid-stream, by the same on the next request (a connection's
//! first bytes seen from the server are skipped until then).

mod body;
mod frame;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;
use podtap_shared::{Detail, KafkaExchange};

use super::{Dissected, Exchange, Timing};
use crate::reassemble::{ConnInfo, Dir};
use frame::{Frame, Framer};

/// Requests waiting for responses beyond which the oldest goes unanswered.
const MAX_WAITING: usize = 4096;

/// A request's frame is its size, then API key, version and correlation id at least; a
/// response's, its correlation id.
const MIN_REQUEST: u32 = 8;
const MIN_RESPONSE: u32 = 4;

/// Versions past the newest this build knows that still count as Kafka (a newer client): their
/// header is read, their body is not.
const NEWER: i16 = 4;

/// Whether `data` opens a Kafka request: a size no larger than a broker takes, an API key this
/// build knows at a version it defines (or a few newer), and a client id whose length fits the
/// frame.
pub fn looks_like_request(data: &[u8]) -> bool {
    if data.len() < 14 {
        return false;
    }
    let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let key = i16::from_be_bytes([data[4], data[5]]);
    let version = i16::from_be_bytes([data[6], data[7]]);
    let client_id = i16::from_be_bytes([data[12], data[13]]);
    let Ok(api) = ApiKey::try_from(key) else { return false };
    let range = api.valid_versions();
    (MIN_REQUEST..=frame::MAX_FRAME).contains(&len)
        && (range.min..=range.max.saturating_add(NEWER)).contains(&version)
        && client_id >= -1
        && i64::from(client_id) <= i64::from(len) - 10
}

/// A request waiting for its response.
struct Waiting {
    exchange: KafkaExchange,
    api: Option<ApiKey>,
    ts_us: u64,
    seq: u32,
    size: u64,
}

pub struct Kafka {
    client: Dir,
    requests: Framer,
    responses: Framer,
    waiting: VecDeque<Waiting>,
    /// Out of step after a gap or bytes that were not Kafka: nothing more is read.
    lost: bool,
    /// Joined mid-stream: the server's bytes are skipped until the client's next request.
    awaiting_request: bool,
}

impl Kafka {
    pub fn new(client: Dir) -> Self {
        Kafka {
            client,
            requests: Framer::default(),
            responses: Framer::default(),
            waiting: VecDeque::new(),
            lost: false,
            awaiting_request: false,
        }
    }

    /// A connection whose first bytes seen were the server's, mid-stream.
    pub fn joined(client: Dir) -> Self {
        Kafka { awaiting_request: true, ..Kafka::new(client) }
    }

    pub fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        let from_client = dir == self.client;
        if self.lost || !from_client && self.awaiting_request {
            return;
        }
        let (framer, min) =
            if from_client { (&mut self.requests, MIN_REQUEST) } else { (&mut self.responses, MIN_RESPONSE) };
        let start = framer.offset();
        let mut frames = Vec::new();
        if framer.feed(data, ts_us, min, &mut frames).is_err() {
            out.push(Dissected::Resync);
            self.give_up(info, out);
            return;
        }
        let seq0 = info.seq[dir as usize];
        for f in frames {
            if from_client {
                self.awaiting_request = false;
                let seq = seq0.wrapping_add(f.offset.wrapping_sub(start) as u32);
                self.on_request(info, f, seq, out);
            } else {
                self.on_response(info, f, out);
            }
        }
        while self.waiting.len() > MAX_WAITING {
            let w = self.waiting.pop_front().expect("a waiting request");
            out.push(Dissected::Exchange(Box::new(self.exchange(info, w, None))));
        }
    }

    /// A gap: the stream cannot be cut into frames any more; what waits goes out at the close.
    pub fn on_gap(&mut self) {
        self.lost = true;
    }

    pub fn on_close(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        while let Some(w) = self.waiting.pop_front() {
            out.push(Dissected::Exchange(Box::new(self.exchange(info, w, None))));
        }
    }

    fn give_up(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        self.on_close(info, out);
        self.lost = true;
    }

    fn on_request(&mut self, info: &ConnInfo, f: Frame, seq: u32, out: &mut Vec<Dissected>) {
        let key = i16::from_be_bytes([f.head[0], f.head[1]]);
        let version = i16::from_be_bytes([f.head[2], f.head[3]]);
        let correlation_id = i32::from_be_bytes([f.head[4], f.head[5], f.head[6], f.head[7]]);
        let api = ApiKey::try_from(key).ok();
        let mut exchange = KafkaExchange {
            operation: api.map_or_else(|| format!("ApiKey({key})"), |a| format!("{a:?}")),
            api_key: key,
            version,
            correlation_id,
            ..Default::default()
        };
        let mut bytes = Bytes::from(f.head);
        // Header v1 (a client id) for an API this build does not know: the oldest any still has.
        let header_version = api.map_or(1, |a| a.request_header_version(version));
        match RequestHeader::decode(&mut bytes, header_version) {
            Ok(h) => exchange.client_id = h.client_id.map(|c| c.as_str().chars().take(128).collect()),
            Err(_) => exchange.unread = Some("malformed".into()),
        }
        if let Some(api) = api.filter(|_| exchange.unread.is_none()) {
            if version > api.valid_versions().max {
                exchange.unread = Some("newer".into());
            } else if !f.whole {
                exchange.unread = Some("large".into());
            } else {
                match RequestKind::decode(api, &mut bytes, version) {
                    Ok(body) => body::request(&mut exchange, &body),
                    Err(_) => exchange.unread = Some("malformed".into()),
                }
            }
        }
        first_topic(&mut exchange);
        let w = Waiting { exchange, api, ts_us: f.ts_us, seq, size: u64::from(f.len) + 4 };
        if w.exchange.no_response {
            out.push(Dissected::Exchange(Box::new(self.exchange(info, w, None))));
        } else {
            self.waiting.push_back(w);
        }
    }

    fn on_response(&mut self, info: &ConnInfo, f: Frame, out: &mut Vec<Dissected>) {
        let correlation_id = i32::from_be_bytes([f.head[0], f.head[1], f.head[2], f.head[3]]);
        // Responses come in the order of their requests; a request before the matching one that
        // was not answered never will be.
        let Some(at) = self.waiting.iter().position(|w| w.exchange.correlation_id == correlation_id) else {
            out.push(Dissected::UnmatchedResponse);
            return;
        };
        for _ in 0..at {
            let w = self.waiting.pop_front().expect("an earlier request");
            out.push(Dissected::Exchange(Box::new(self.exchange(info, w, None))));
        }
        let mut w = self.waiting.pop_front().expect("the request answered");
        // A response is read even when its request's body was not (a large Produce's answer is
        // small), unless its version is one this build does not know.
        let version = w.exchange.version;
        if let Some(api) = w.api.filter(|a| version <= a.valid_versions().max) {
            let mut bytes = Bytes::from(f.head);
            let decoded = ResponseHeader::decode(&mut bytes, api.response_header_version(version)).and_then(|_| {
                if f.whole { ResponseKind::decode(api, &mut bytes, version).map(Some) } else { Ok(None) }
            });
            let unread = match decoded {
                Ok(Some(body)) => {
                    body::response(&mut w.exchange, &body);
                    first_topic(&mut w.exchange);
                    None
                }
                Ok(None) => Some("large"),
                Err(_) => Some("malformed"),
            };
            if let Some(why) = unread {
                w.exchange.unread.get_or_insert_with(|| why.into());
            }
        }
        let answer = (f.ts_us, u64::from(f.len) + 4);
        out.push(Dissected::Exchange(Box::new(self.exchange(info, w, Some(answer)))));
    }

    fn exchange(&self, info: &ConnInfo, w: Waiting, answer: Option<(u64, u64)>) -> Exchange {
        let timing = Timing {
            ts_us: w.ts_us,
            response_ts_us: answer.map(|a| a.0),
            request_size: w.size,
            response_size: answer.map_or(0, |a| a.1),
        };
        let mut ex = Exchange::on(info, info.endpoints(self.client), timing, Detail::Kafka(Box::new(w.exchange)));
        ex.seq = Some(w.seq);
        ex
    }
}

/// The first topic named and its first partition, the fields every broker record has (DESIGN);
/// a Fetch that named none has the first whose records came back.
fn first_topic(k: &mut KafkaExchange) {
    if let (None, Some(first)) = (&k.topic, k.topics.first()) {
        k.topic = Some(first.name.clone());
        k.partition = first.partitions.first().copied();
    }
}
