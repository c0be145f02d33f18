//! HTTP/2 (RFC 9113) in the clear — h2c with prior knowledge, or after an HTTP/1.1 `Upgrade: h2c` —
//! and gRPC on top of it. Frames are read per direction; header blocks (HEADERS + CONTINUATION,
//! and PUSH_PROMISE, which must be decoded to keep the table in step) go through one HPACK
//! decoder per direction (loona-hpack); each stream becomes one exchange when the server ends it
//! or either side resets it. DATA payloads are counted and skipped, never buffered.
//!
//! HPACK is stateful: a connection joined mid-way, a gap, or a header block that does not decode
//! leaves the dynamic table unknown, so that direction is given up (counted), not guessed.

use loona_hpack::Decoder;
use rustc_hash::FxHashMap;

use podtap_shared::{Detail, GrpcExchange, Headers, HttpExchange};

use super::redact;
use super::{Dissected, Exchange, Timing};
use crate::reassemble::{ConnInfo, Dir};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

const SETTINGS_HEADER_TABLE_SIZE: u16 = 1;
/// SETTINGS_HEADER_TABLE_SIZE until a peer announces otherwise (RFC 9113 §6.5.2).
const DEFAULT_TABLE_SIZE: usize = 4096;

/// Largest non-DATA frame (or header block) buffered; the default SETTINGS_MAX_FRAME_SIZE is 16 KiB.
const MAX_BUFFERED: usize = 1 << 20;
/// Streams open at once per connection beyond which new ones are not tracked.
const MAX_STREAMS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The client's half before its 24-byte preface.
    Preface,
    Frames,
    /// Skipping the rest of a DATA frame.
    Skip(usize),
    /// Not HTTP/2, or the HPACK table is lost: ignored from here on.
    Off,
}

struct Half {
    state: State,
    buf: Vec<u8>,
    hpack: Decoder<'static>,
    /// A header block waiting for CONTINUATION frames: (stream, flags of the HEADERS frame, bytes,
    /// the HEADERS frame's TCP sequence number).
    block: Option<(u32, u8, Vec<u8>, u32)>,
    /// Time of the segment that carried the frame header now being read.
    frame_ts: u64,
}

impl Half {
    fn new(state: State) -> Self {
        let mut hpack = Decoder::new();
        hpack.set_max_allowed_table_size(DEFAULT_TABLE_SIZE);
        Self { state, buf: Vec::new(), hpack, block: None, frame_ts: 0 }
    }
}

#[derive(Default)]
struct Stream {
    req_ts: u64,
    req_size: u64,
    method: podtap_shared::Method,
    path: String,
    grpc: bool,
    headers: Headers,
    resp_ts: Option<u64>,
    resp_size: u64,
    /// The TCP sequence number of its HEADERS frame's first byte: the same on both sides of
    /// kube-proxy's rewrite (the bus's join key).
    seq: Option<u32>,
    status: Option<u16>,
    grpc_status: Option<u32>,
    grpc_message: Option<String>,
    has_request: bool,
}

/// A frame's header as the handlers need it, with when and where (TCP sequence number) it began.
#[derive(Clone, Copy)]
struct Frame {
    kind: u8,
    flags: u8,
    id: u32,
    ts_us: u64,
    seq: u32,
}

/// One HTTP/2 connection.
pub struct Http2 {
    halves: [Half; 2],
    client: Dir,
    streams: FxHashMap<u32, Stream>,
}

/// The request of an HTTP/1.1 `Upgrade: h2c` that HTTP/2 answers on stream 1 (RFC 7540 §3.2).
pub struct Upgraded {
    pub ts_us: u64,
    pub size: u64,
    pub http: HttpExchange,
}

impl Http2 {
    /// A connection whose client (the side that sent the preface) is `client`.
    pub fn new(client: Dir) -> Self {
        let mut halves = [Half::new(State::Frames), Half::new(State::Frames)];
        halves[client as usize].state = State::Preface;
        Self { halves, client, streams: FxHashMap::default() }
    }

    /// After `101 Switching Protocols` to h2c: stream 1 is the upgrade request, already sent.
    pub fn upgraded(client: Dir, request: Upgraded) -> Self {
        let mut h2 = Self::new(client);
        let grpc = request.http.headers.get("content-type").is_some_and(|c| c.starts_with("application/grpc"));
        let stream = Stream {
            req_ts: request.ts_us,
            req_size: request.size,
            method: request.http.method,
            path: request.http.path.into(),
            grpc,
            headers: request.http.headers,
            has_request: true,
            ..Stream::default()
        };
        h2.streams.insert(1, stream);
        h2
    }

    pub fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        let d = dir as usize;
        if self.halves[d].state == State::Off {
            return;
        }
        let mut input = std::mem::take(&mut self.halves[d].buf);
        if input.is_empty() {
            self.halves[d].frame_ts = ts_us;
        }
        // What is buffered came just before `data`.
        let seq = info.seq[d].wrapping_sub(input.len() as u32);
        input.extend_from_slice(data);
        let used = self.consume(info, dir, (ts_us, seq), &input, out);
        if self.halves[d].state != State::Off {
            input.drain(..used);
            self.halves[d].buf = input;
        }
    }

    /// Reads whole frames from `input` (its first byte's TCP sequence number `seq`); returns the
    /// bytes used.
    fn consume(
        &mut self,
        info: &ConnInfo,
        dir: Dir,
        (ts_us, seq): (u64, u32),
        input: &[u8],
        out: &mut Vec<Dissected>,
    ) -> usize {
        let d = dir as usize;
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match self.halves[d].state {
                State::Off => return at,
                State::Preface => {
                    if rest.len() < PREFACE.len() {
                        if !PREFACE.starts_with(rest) {
                            self.give_up(dir, Dissected::NotThisProtocol, out);
                        }
                        return at;
                    }
                    if &rest[..PREFACE.len()] != PREFACE {
                        self.give_up(dir, Dissected::NotThisProtocol, out);
                        return at;
                    }
                    at += PREFACE.len();
                    self.halves[d].state = State::Frames;
                }
                State::Skip(n) => {
                    let k = n.min(rest.len());
                    at += k;
                    if k < n {
                        self.halves[d].state = State::Skip(n - k);
                        return at;
                    }
                    self.halves[d].state = State::Frames;
                    self.halves[d].frame_ts = ts_us;
                }
                State::Frames => {
                    if rest.len() < 9 {
                        return at;
                    }
                    let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
                    let (kind, flags) = (rest[3], rest[4]);
                    let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
                    let frame_ts = self.halves[d].frame_ts;
                    if kind == DATA {
                        at += 9;
                        self.on_data_frame(info, dir, stream, flags, len, frame_ts, out);
                        self.halves[d].state = State::Skip(len);
                        continue;
                    }
                    if len > MAX_BUFFERED {
                        self.give_up(dir, Dissected::Resync, out);
                        return at;
                    }
                    if rest.len() < 9 + len {
                        return at;
                    }
                    let frame_seq = seq.wrapping_add(at as u32);
                    at += 9 + len;
                    let frame = Frame { kind, flags, id: stream, ts_us: frame_ts, seq: frame_seq };
                    self.on_frame(info, dir, frame, &rest[9..9 + len], out);
                    self.halves[d].frame_ts = ts_us;
                }
            }
        }
    }

    fn give_up(&mut self, dir: Dir, why: Dissected, out: &mut Vec<Dissected>) {
        let half = &mut self.halves[dir as usize];
        half.state = State::Off;
        half.buf = Vec::new();
        half.block = None;
        out.push(why);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_data_frame(
        &mut self,
        info: &ConnInfo,
        dir: Dir,
        id: u32,
        flags: u8,
        len: usize,
        ts_us: u64,
        out: &mut Vec<Dissected>,
    ) {
        let from_client = dir == self.client;
        let Some(stream) = self.streams.get_mut(&id) else { return };
        if from_client {
            stream.req_size += len as u64;
        } else {
            stream.resp_size += len as u64;
            stream.resp_ts.get_or_insert(ts_us);
            if flags & END_STREAM != 0 {
                self.finish(info, id, out);
            }
        }
    }

    fn on_frame(&mut self, info: &ConnInfo, dir: Dir, frame: Frame, payload: &[u8], out: &mut Vec<Dissected>) {
        let Frame { kind, flags, id, ts_us, seq } = frame;
        let d = dir as usize;
        match kind {
            HEADERS | PUSH_PROMISE => {
                let Some(mut fragment) = strip_padding(payload, flags) else {
                    return self.give_up(dir, Dissected::Resync, out);
                };
                if kind == HEADERS && flags & PRIORITY != 0 {
                    fragment = fragment.get(5..).unwrap_or_default();
                }
                // PUSH_PROMISE: the promised stream id, then its request's header block.
                let (id, kind_flags) = if kind == PUSH_PROMISE {
                    fragment = fragment.get(4..).unwrap_or_default();
                    (0, flags & END_HEADERS) // stream 0: decoded for the table only
                } else {
                    (id, flags)
                };
                let block = Frame { kind, flags: kind_flags, id, ts_us, seq };
                if flags & END_HEADERS != 0 {
                    self.on_header_block(info, dir, block, fragment, payload.len(), out);
                } else {
                    self.halves[d].block = Some((id, kind_flags, fragment.to_vec(), seq));
                }
            }
            CONTINUATION => {
                let Some((sid, first_flags, mut block, first_seq)) = self.halves[d].block.take() else {
                    return self.give_up(dir, Dissected::Resync, out);
                };
                block.extend_from_slice(payload);
                if block.len() > MAX_BUFFERED {
                    return self.give_up(dir, Dissected::Resync, out);
                }
                if flags & END_HEADERS != 0 {
                    let first = Frame { kind: HEADERS, flags: first_flags, id: sid, ts_us, seq: first_seq };
                    self.on_header_block(info, dir, first, &block, block.len(), out);
                } else {
                    self.halves[d].block = Some((sid, first_flags, block, first_seq));
                }
            }
            RST_STREAM if self.streams.contains_key(&id) => self.finish(info, id, out),
            SETTINGS if flags & ACK == 0 => {
                // A table size announced by this side bounds what the other side's encoder uses.
                for setting in payload.chunks_exact(6) {
                    if u16::from_be_bytes([setting[0], setting[1]]) == SETTINGS_HEADER_TABLE_SIZE {
                        let size = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                        self.halves[1 - d].hpack.set_max_allowed_table_size(size as usize);
                    }
                }
            }
            _ => {}
        }
    }

    /// A whole header block of the frame `frame` (a HEADERS frame's flags, id and sequence number).
    fn on_header_block(
        &mut self,
        info: &ConnInfo,
        dir: Dir,
        frame: Frame,
        block: &[u8],
        size: usize,
        out: &mut Vec<Dissected>,
    ) {
        let Frame { flags, id, ts_us, seq, .. } = frame;
        let mut fields = Fields::default();
        let decoded = self.halves[dir as usize].hpack.decode_with_cb(block, |name, value| fields.add(&name, &value));
        if decoded.is_err() {
            return self.give_up(dir, Dissected::Resync, out);
        }
        if id == 0 {
            return; // a pushed request: decoded to keep the table in step, not reported
        }
        let from_client = dir == self.client;
        if from_client {
            if self.streams.get(&id).is_some_and(|s| s.has_request) {
                return; // request trailers
            }
            if self.streams.len() >= MAX_STREAMS {
                return;
            }
            let grpc = fields.content_type.as_deref().is_some_and(|c| c.starts_with("application/grpc"));
            let stream = Stream {
                req_ts: ts_us,
                req_size: size as u64,
                method: fields.method.unwrap_or_default().into(),
                path: fields.path.unwrap_or_default(),
                grpc,
                headers: fields.kept,
                has_request: true,
                seq: Some(seq),
                ..Stream::default()
            };
            self.streams.insert(id, stream);
            return;
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            out.push(Dissected::UnmatchedResponse);
            return;
        };
        match fields.status {
            Some(s) if (100..200).contains(&s) => return, // interim response
            Some(s) if stream.status.is_none() => {
                stream.status = Some(s);
                stream.resp_ts.get_or_insert(ts_us);
            }
            _ => {}
        }
        stream.resp_size += size as u64;
        if fields.grpc_status.is_some() {
            stream.grpc_status = fields.grpc_status;
            stream.grpc_message = fields.grpc_message;
        }
        if flags & END_STREAM != 0 {
            self.finish(info, id, out);
        }
    }

    /// The stream is over (ended by the server, or reset): its exchange.
    fn finish(&mut self, info: &ConnInfo, id: u32, out: &mut Vec<Dissected>) {
        let Some(s) = self.streams.remove(&id) else { return };
        if !s.has_request {
            out.push(Dissected::UnmatchedResponse);
            return;
        }
        let (client, server) = info.endpoints(self.client);
        let detail = if s.grpc {
            let (service, method) = s.path.trim_start_matches('/').split_once('/').unwrap_or((&s.path, ""));
            Detail::Grpc(GrpcExchange {
                grpc_service: service.to_string(),
                grpc_method: method.to_string(),
                status: s.status,
                grpc_status: s.grpc_status,
                grpc_message: s.grpc_message,
                headers: s.headers,
                path: s.path,
            })
        } else {
            Detail::Http(HttpExchange {
                method: s.method,
                path: s.path.into(),
                status: s.status,
                headers: s.headers,
                version: Some("HTTP/2".into()),
                ..HttpExchange::default()
            })
        };
        let timing =
            Timing { ts_us: s.req_ts, response_ts_us: s.resp_ts, request_size: s.req_size, response_size: s.resp_size };
        let mut ex = Exchange::on(info, (client, server), timing, detail);
        ex.seq = s.seq;
        out.push(Dissected::Exchange(Box::new(ex)));
    }

    pub fn on_gap(&mut self, _info: &ConnInfo, dir: Dir, _len: u64) {
        let half = &mut self.halves[dir as usize];
        match half.state {
            // A hole inside a DATA payload we were skipping anyway.
            State::Skip(_) => {}
            _ => {
                half.state = State::Off;
                half.buf = Vec::new();
                half.block = None;
            }
        }
    }

    /// Streams still open when the connection ends are reported as they stand, oldest first.
    pub fn on_close(&mut self, info: &ConnInfo, _ts_us: u64, out: &mut Vec<Dissected>) {
        let mut open: Vec<(u32, u64)> = self.streams.iter().map(|(id, s)| (*id, s.req_ts)).collect();
        open.sort_by_key(|&(id, ts)| (ts, id));
        for (id, _) in open {
            self.finish(info, id, out);
        }
    }
}

/// The payload of a HEADERS or PUSH_PROMISE frame without its padding (RFC 9113 §6.2).
fn strip_padding(payload: &[u8], flags: u8) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(payload);
    }
    let pad = usize::from(*payload.first()?);
    payload.get(1..payload.len().checked_sub(pad)?)
}

/// What one header block says that podtap keeps.
#[derive(Default)]
struct Fields {
    method: Option<String>,
    path: Option<String>,
    status: Option<u16>,
    content_type: Option<String>,
    grpc_status: Option<u32>,
    grpc_message: Option<String>,
    kept: Headers,
}

impl Fields {
    fn add(&mut self, name: &[u8], value: &[u8]) {
        let text = || String::from_utf8_lossy(value).into_owned();
        match name {
            b":method" => self.method = Some(text()),
            b":path" => self.path = Some(text()),
            b":status" => self.status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
            // HTTP/2's Host; kept under the name HTTP/1 users know.
            b":authority" => {
                self.kept.insert("host", text());
            }
            b"grpc-status" => self.grpc_status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
            b"grpc-message" => self.grpc_message = Some(text()),
            _ => {
                if name == b"content-type" {
                    self.content_type = Some(text());
                }
                if let Ok(name) = std::str::from_utf8(name)
                    && !name.starts_with(':')
                {
                    redact::keep(&mut self.kept, name, value);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
