//! Redis (RESP2 and RESP3): one record per command, paired with its reply in order, as a Redis
//! server answers (redis.io protocol spec, "Pipelining", "Pub/Sub", "RESP3 push"; the command
//! pages of `CLIENT REPLY`, `MULTI`, `SUBSCRIBE`, `MONITOR`, `HELLO`). Kept: the command (with
//! the subcommand of a container command), its first key (bounded) and what kind of reply came
//! back; never a value, a password or a message's payload.
//!
//! Not every command gets a reply in order: RESP3 pushes (`>`) and, once subscribed over RESP2,
//! `message`/`pmessage`/`smessage` arrays are the server's own, not answers; `CLIENT REPLY OFF`
//! silences the replies until `CLIENT REPLY ON`, `SKIP` the next command's; `SUBSCRIBE` and its
//! kin answer once per channel; `MONITOR` turns the connection into a feed.

mod resp;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use podtap_shared::{Detail, RedisExchange};

use super::{Dissected, Exchange, Timing};
use crate::reassemble::{ConnInfo, Dir};
pub use resp::looks_like_command;
use resp::{Cut, Reader, Value};

/// Commands waiting for replies beyond which the oldest goes unanswered.
const MAX_WAITING: usize = 4096;

/// Commands whose first argument is a subcommand: `CLIENT SETNAME`, `CONFIG GET`.
const CONTAINERS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY", "MODULE", "OBJECT",
    "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];

/// Commands with no key as their first argument (or one that is secret, or a value).
const KEYLESS: &[&str] = &[
    "AUTH",
    "HELLO",
    "ECHO",
    "PING",
    "SELECT",
    "INFO",
    "DBSIZE",
    "FLUSHDB",
    "FLUSHALL",
    "MULTI",
    "EXEC",
    "DISCARD",
    "QUIT",
    "RESET",
    "TIME",
    "SCAN",
    "WAIT",
    "MONITOR",
    "SWAPDB",
    "LASTSAVE",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "SHUTDOWN",
    "ROLE",
    "REPLICAOF",
    "SLAVEOF",
    "SYNC",
    "PSYNC",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
    "XREAD",
    "XREADGROUP",
    "UNWATCH",
    "READONLY",
    "READWRITE",
    "ASKING",
    "LOLWUT",
    "FAILOVER",
];

/// Commands answered once per channel (or pattern) they name.
const SUBSCRIBES: &[&str] = &["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"];

/// A command waiting for its reply.
#[derive(Debug)]
struct Waiting {
    exchange: RedisExchange,
    ts_us: u64,
    seq: u32,
    size: u64,
    response_ts_us: Option<u64>,
    response_size: u64,
    /// Replies still to come (a SUBSCRIBE's one per channel).
    replies: u64,
}

pub struct Redis {
    client: Dir,
    requests: Reader,
    replies: Reader,
    waiting: VecDeque<Waiting>,
    /// `CLIENT REPLY OFF` is in force: commands get no reply until `CLIENT REPLY ON`.
    silenced: bool,
    /// `CLIENT REPLY SKIP` was sent: the next command gets no reply.
    skip_next: bool,
    /// Inside `MULTI`: replies are `QUEUED` until `EXEC`.
    in_multi: bool,
    /// Subscribed over RESP2: `message` arrays are the server's own.
    subscribed: bool,
    /// `MONITOR`: everything after its `OK` is a feed.
    monitoring: bool,
    /// Out of step after a gap or bytes that were not RESP: nothing more is paired.
    lost: bool,
    /// Joined mid-stream on the server's side: its bytes are read from the first segment after
    /// the client's first command (a reply begins there), not from inside a reply.
    awaiting_command: bool,
}

impl Redis {
    pub fn new(client: Dir) -> Self {
        Redis {
            client,
            requests: Reader::new(3),
            // A reply array's first string tells a subscriber's message (`message`) from a reply;
            // it is read, never kept past this.
            replies: Reader::new(1),
            waiting: VecDeque::new(),
            silenced: false,
            skip_next: false,
            in_multi: false,
            subscribed: false,
            monitoring: false,
            lost: false,
            awaiting_command: false,
        }
    }

    /// A connection whose first bytes seen were the server's, mid-stream.
    pub fn joined(client: Dir) -> Self {
        Redis { awaiting_command: true, ..Redis::new(client) }
    }

    pub fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        let from_client = dir == self.client;
        if self.lost || !from_client && (self.monitoring || self.awaiting_command) {
            return;
        }
        let reader = if from_client { &mut self.requests } else { &mut self.replies };
        let data_start = reader.offset();
        let mut cuts = Vec::new();
        reader.feed(data, ts_us, &mut cuts);
        let seq0 = info.seq[dir as usize];
        for cut in cuts {
            match cut {
                Cut::Value(v) if from_client => {
                    self.awaiting_command = false;
                    let seq = seq0.wrapping_add(v.start.wrapping_sub(data_start) as u32);
                    self.on_command(info, v, seq, out);
                }
                Cut::Value(v) => self.on_reply(info, v, out),
                Cut::Broken => {
                    out.push(Dissected::Resync);
                    self.give_up(info, out);
                    return;
                }
            }
        }
        while self.waiting.len() > MAX_WAITING {
            let w = self.waiting.pop_front().expect("a waiting command");
            out.push(Dissected::Exchange(Box::new(self.exchange(info, w))));
        }
    }

    /// A gap: the connection is not read further (a reply cannot be told from the next one's
    /// middle); what waits goes out at its close, as far as it was answered.
    pub fn on_gap(&mut self) {
        self.lost = true;
    }

    pub fn on_close(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        while let Some(w) = self.waiting.pop_front() {
            out.push(Dissected::Exchange(Box::new(self.exchange(info, w))));
        }
    }

    /// A gap or bytes that are not RESP: what waits goes out as far as it was answered, and the
    /// connection is not read further (a reply cannot be told from the next one's middle).
    fn give_up(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        self.on_close(info, out);
        self.lost = true;
    }

    fn on_command(&mut self, info: &ConnInfo, v: Value, seq: u32, out: &mut Vec<Dissected>) {
        let words: Vec<String> = v.parts.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
        let name = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
        let (command, key_at) = match words.get(1) {
            Some(sub) if CONTAINERS.contains(&name.as_str()) => (format!("{name} {}", sub.to_ascii_uppercase()), None),
            _ if KEYLESS.contains(&name.as_str()) => (name.clone(), None),
            _ => (name.clone(), Some(1)),
        };
        let key = key_at.and_then(|i| words.get(i).cloned());
        let mut exchange = RedisExchange { command: command.clone(), key, ..Default::default() };
        // How many replies it gets.
        let channels = (v.len.unwrap_or(1) - 1).max(1) as u64;
        let mut replies = if SUBSCRIBES.contains(&name.as_str()) { channels } else { 1 };
        if command == "CLIENT REPLY" {
            match words.get(2).map(|w| w.to_ascii_uppercase()).as_deref() {
                Some("OFF") => {
                    self.silenced = true;
                    replies = 0;
                }
                Some("SKIP") => {
                    self.skip_next = true;
                    replies = 0;
                }
                Some("ON") => self.silenced = false,
                _ => {}
            }
        } else if self.silenced || std::mem::take(&mut self.skip_next) {
            replies = 0;
        }
        if replies == 0 {
            exchange.reply = Some("none".into());
        }
        match name.as_str() {
            "MULTI" => self.in_multi = true,
            "EXEC" | "DISCARD" => self.in_multi = false,
            _ if self.in_multi && replies > 0 => exchange.queued = true,
            _ => {}
        }
        let w = Waiting {
            exchange,
            ts_us: v.ts_us,
            seq,
            size: v.wire_len,
            response_ts_us: None,
            response_size: 0,
            replies,
        };
        if replies == 0 && self.waiting.is_empty() {
            out.push(Dissected::Exchange(Box::new(self.exchange(info, w))));
        } else {
            self.waiting.push_back(w);
        }
    }

    fn on_reply(&mut self, info: &ConnInfo, v: Value, out: &mut Vec<Dissected>) {
        // The server's own: a RESP3 push, or over RESP2 a message to a subscriber.
        if v.kind == b'>' || self.subscribed && v.kind == b'*' && is_message(&v) {
            return;
        }
        // Commands that get no reply are done as soon as the ones before them are.
        self.release_silent(info, out);
        let Some(w) = self.waiting.front_mut() else {
            out.push(Dissected::UnmatchedResponse);
            return;
        };
        w.response_ts_us.get_or_insert(v.ts_us);
        w.response_size += v.wire_len;
        if w.exchange.reply.is_none() {
            w.exchange.reply = Some(reply_kind(&v).into());
            if v.kind == b'-' || v.kind == b'!' {
                let text = v.parts.first().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
                w.exchange.error = Some(text.split(' ').next().unwrap_or("ERR").chars().take(32).collect());
                w.exchange.queued = false;
            }
        }
        w.replies = w.replies.saturating_sub(1);
        if w.replies > 0 {
            return;
        }
        let w = self.waiting.pop_front().expect("the command answered");
        let name = w.exchange.command.as_str();
        if SUBSCRIBES[..3].contains(&name) && w.exchange.error.is_none() {
            self.subscribed = true;
        }
        if name == "MONITOR" && w.exchange.error.is_none() {
            self.monitoring = true;
        }
        out.push(Dissected::Exchange(Box::new(self.exchange(info, w))));
        self.release_silent(info, out);
    }

    fn release_silent(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        while self.waiting.front().is_some_and(|w| w.replies == 0) {
            let w = self.waiting.pop_front().expect("a silent command");
            out.push(Dissected::Exchange(Box::new(self.exchange(info, w))));
        }
    }

    fn exchange(&self, info: &ConnInfo, w: Waiting) -> Exchange {
        let timing = Timing {
            ts_us: w.ts_us,
            response_ts_us: w.response_ts_us,
            request_size: w.size,
            response_size: w.response_size,
        };
        let mut ex = Exchange::on(info, info.endpoints(self.client), timing, Detail::Redis(w.exchange));
        ex.seq = Some(w.seq);
        ex
    }
}

/// A RESP2 array that is a message to a subscriber, not a reply: `message`, `pmessage`,
/// `smessage` first.
fn is_message(v: &Value) -> bool {
    v.parts.first().is_some_and(|p| matches!(p.to_ascii_lowercase().as_slice(), b"message" | b"pmessage" | b"smessage"))
}

/// A reply's kind, as records say it.
fn reply_kind(v: &Value) -> &'static str {
    match v.kind {
        b'+' => "simple",
        b'-' | b'!' => "error",
        b':' => "integer",
        b'$' | b'=' if v.len.is_none() && v.wire_len == 5 => "nil",
        b'$' | b'=' => "bulk",
        b'*' if v.len.is_none() => "nil",
        b'*' => "array",
        b'_' => "nil",
        b'#' => "boolean",
        b',' => "double",
        b'(' => "big number",
        b'%' => "map",
        b'~' => "set",
        b'|' => "attribute",
        _ => "other",
    }
}
