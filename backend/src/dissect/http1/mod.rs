//! HTTP/1.0 and HTTP/1.1 (RFC 9112): requests paired with responses in order on one connection,
//! keep-alive and pipelining included. Message framing per RFC 9112 §6.3: HEAD, 1xx, 204 and 304
//! responses have no body; `Transfer-Encoding: chunked` wins over `Content-Length`; a response
//! with neither runs until the connection closes. `101 Switching Protocols` ends HTTP parsing of
//! the connection; a 2xx to `CONNECT` hands the tunnel's bytes on (`take_tunnel`). Bodies are
//! counted, never buffered. Detection is by content: a direction is a request stream if it starts
//! with a request line (any method token, `head`), a response stream if it starts with `HTTP/1.`.
//!
//! After lost bytes each direction resynchronises at its next message start, and `pairing`
//! decides which request a response answers; a connection joined mid-stream (every live capture
//! has some) is read from its first whole message, and a 1-byte TCP keep-alive before it is
//! skipped. Heads httparse refuses are read leniently and flagged `malformed`.

use std::mem::MaybeUninit;

use podtap_shared::{Detail, HttpExchange};

use super::http2::Upgraded;
use super::{Dissected, Exchange, Timing, redact};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

mod head;
mod pairing;

use head::Start;
use pairing::{Answer, Pairing, PendingRequest};

/// Longest header section accepted before the stream is declared out of sync.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 96;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Requests,
    Responses,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    UntilClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// First bytes not seen yet: the role is decided by them.
    Unknown,
    Head,
    Body(Body),
    /// Lost sync (a gap or bytes that did not parse): skipping to the next message start.
    Resync,
    /// Not HTTP, or upgraded to another protocol: ignored from here on.
    Off,
}

struct Half {
    role: Option<Role>,
    state: State,
    buf: Vec<u8>,
    /// First-byte time and size so far of the message being read.
    msg_ts: u64,
    msg_size: u64,
}

impl Half {
    fn new() -> Self {
        Self { role: None, state: State::Unknown, buf: Vec::new(), msg_ts: 0, msg_size: 0 }
    }
}

struct PendingResponse {
    ts_us: u64,
    status: u16,
    /// The request it answers (decided at its head), and whether that is certain.
    request: Option<(PendingRequest, bool)>,
}

/// Per-connection HTTP/1.x state.
pub struct Http1 {
    halves: [Half; 2],
    requests: Pairing,
    response: Option<PendingResponse>,
    /// Set by a 2xx answer to `CONNECT`: the bytes after it in each direction belong to the
    /// tunnel (TLS, usually).
    tunnel: Option<[Vec<u8>; 2]>,
    /// The connection's start was not seen: garbage before the first message is expected.
    joined: bool,
    /// The direction carrying requests, once known.
    request_dir: Option<Dir>,
    /// Set by `101 Switching Protocols` to `websocket`: the upgrade, and the bytes after it per
    /// direction (`Dir` as index), which are already WebSocket frames.
    websocket: Option<(super::websocket::Upgrade, [Vec<u8>; 2])>,
    /// Set by `101 Switching Protocols` to h2c: the upgrade request (answered on HTTP/2 stream 1)
    /// and the server's bytes after the 101, which are already HTTP/2.
    h2c: Option<(Upgraded, Vec<u8>)>,
    /// The TCP sequence number of the first byte of what `consume` is parsing.
    input_seq: u32,
}

impl Http1 {
    /// The connection switched to HTTP/2 (`Upgrade: h2c`): what HTTP/2 takes over.
    pub fn take_h2c(&mut self) -> Option<(Upgraded, Vec<u8>)> {
        self.h2c.take()
    }

    /// The connection switched to WebSocket: the upgrade and the frames' first bytes.
    pub fn take_websocket(&mut self) -> Option<(super::websocket::Upgrade, [Vec<u8>; 2])> {
        self.websocket.take()
    }

    /// A `CONNECT` was answered: the tunnel's first bytes, per direction (`Dir` as index).
    pub fn take_tunnel(&mut self) -> Option<[Vec<u8>; 2]> {
        self.tunnel.take()
    }
}

impl ConnHandler for Http1 {
    type Output = Dissected;

    fn new(info: &ConnInfo) -> Self {
        let joined = info.opener.is_none();
        Self {
            halves: [Half::new(), Half::new()],
            requests: Pairing::new(joined),
            response: None,
            tunnel: None,
            websocket: None,
            joined,
            request_dir: None,
            h2c: None,
            input_seq: 0,
        }
    }

    fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        let i = dir as usize;
        if self.halves[i].state == State::Off {
            return;
        }
        if self.halves[i].buf.is_empty() {
            self.input_seq = info.seq[i];
            let used = self.consume(info, dir, ts_us, data, out);
            self.keep(dir, &data[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.halves[i].buf);
            // The held bytes come first: the input starts that many bytes before `data`.
            self.input_seq = info.seq[i].wrapping_sub(buf.len() as u32);
            buf.extend_from_slice(data);
            let used = self.consume(info, dir, ts_us, &buf, out);
            if self.halves[i].state != State::Off {
                buf.drain(..used); // the held bytes stay in their allocation
                self.halves[i].buf = buf;
            } else {
                self.keep(dir, &buf[used..]);
            }
        }
    }

    fn on_gap(&mut self, _: &ConnInfo, dir: Dir, _len: u64) {
        self.requests.disturb();
        let half = &mut self.halves[dir as usize];
        if half.state == State::Off {
            return;
        }
        // A response whose head was seen keeps its status (it is finished when the next one is
        // found, or at close); only its body was lost.
        half.buf.clear();
        half.state = State::Resync;
    }

    fn on_close(&mut self, info: &ConnInfo, _ts_us: u64, out: &mut Vec<Dissected>) {
        // A response delimited by the close is complete now.
        let resp_dir = self.request_dir.map(other);
        if let Some(d) = resp_dir
            && self.halves[d as usize].state == State::Body(Body::UntilClose)
        {
            self.finish_response(info, d, out);
        }
        if let Some(d) = resp_dir
            && self.response.is_some()
        {
            // Headers seen, body cut short: still an answer.
            self.finish_response(info, d, out);
        }
        let req_dir = self.request_dir.unwrap_or(Dir::AtoB);
        for req in self.requests.drain() {
            out.push(Dissected::Exchange(Box::new(exchange(info, other(req_dir), req, None, 0))));
        }
    }
}

/// A head httparse refused, read leniently: `Some(Some(_))`, or `Some(None)` while it may still
/// be incomplete, or `None` when it is not HTTP at all.
fn lenient_or_wait(input: &[u8], requests: bool) -> Option<Option<head::Lenient<'_>>> {
    match head::lenient(input, requests) {
        Some(l) => Some(Some(l)),
        None if input.len() < MAX_HEAD && !input.windows(4).any(|w| w == b"\r\n\r\n") => Some(None),
        None => None,
    }
}

/// Bytes of a leniently read head as text (what is not UTF-8 reads as empty).
fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

fn other(dir: Dir) -> Dir {
    match dir {
        Dir::AtoB => Dir::BtoA,
        Dir::BtoA => Dir::AtoB,
    }
}

/// Builds the exchange; `resp_dir` is the direction responses flow in.
fn exchange(
    info: &ConnInfo,
    resp_dir: Dir,
    req: PendingRequest,
    resp: Option<PendingResponse>,
    response_size: u64,
) -> Exchange {
    let (server, client) = info.endpoints(resp_dir);
    let mut http = req.http;
    http.status = resp.as_ref().map(|r| r.status);
    let timing =
        Timing { ts_us: req.ts_us, response_ts_us: resp.map(|r| r.ts_us), request_size: req.size, response_size };
    let mut ex = Exchange::on(info, (client, server), timing, Detail::Http(http));
    ex.seq = Some(req.seq);
    ex
}

impl Http1 {
    /// Parses as much of `input` as forms whole messages or body bytes; returns bytes used.
    /// Keeps what `consume` left of a direction: for more bytes to complete it, or, once parsing
    /// stopped, for whatever takes the connection over (HTTP/2 after h2c, a CONNECT tunnel).
    /// (`consume` runs with this direction's buffer empty: it was empty, or taken.)
    fn keep(&mut self, dir: Dir, rest: &[u8]) {
        let i = dir as usize;
        if self.halves[i].state != State::Off {
            self.halves[i].buf.extend_from_slice(rest);
        } else if let Some((_, after)) = &mut self.h2c {
            after.extend_from_slice(rest);
        } else if let Some(tunnel) = &mut self.tunnel {
            tunnel[i].extend_from_slice(rest);
        } else if let Some((_, frames)) = &mut self.websocket {
            frames[i].extend_from_slice(rest);
        }
    }

    /// Parses as much of `input` as forms whole messages or body bytes; returns bytes used.
    fn consume(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, input: &[u8], out: &mut Vec<Dissected>) -> usize {
        let i = dir as usize;
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            match self.halves[i].state {
                // Where it stopped: after an upgrade the rest belongs to the next protocol.
                State::Off => return pos,
                State::Unknown => {
                    let role = match (head::request_start(rest), head::response_start(rest)) {
                        (Start::Yes, _) => Role::Requests,
                        (_, Start::Yes) => Role::Responses,
                        (Start::More, _) | (_, Start::More) if rest.len() > 1 || !self.joined => return pos,
                        // Joined mid-stream: a TCP keep-alive's byte, or the middle of a message.
                        _ if self.joined && rest.len() == 1 => return input.len(),
                        _ if self.joined => {
                            self.halves[i].state = State::Resync;
                            continue;
                        }
                        _ => {
                            self.halves[i].state = State::Off;
                            out.push(Dissected::NotThisProtocol);
                            return input.len();
                        }
                    };
                    self.set_role(dir, role);
                    self.halves[i].state = State::Head;
                }
                State::Resync => {
                    let requests = match self.halves[i].role {
                        Some(role) => Some(role == Role::Requests),
                        None => self.request_dir.map(|d| d == dir),
                    };
                    let found = match requests {
                        Some(r) => head::find_start(rest, r).map(|at| (at, r)),
                        None => {
                            let (q, p) = (head::find_start(rest, true), head::find_start(rest, false));
                            match (q, p) {
                                (Some(a), Some(b)) => Some(if a <= b { (a, true) } else { (b, false) }),
                                (Some(a), None) => Some((a, true)),
                                (None, Some(b)) => Some((b, false)),
                                (None, None) => None,
                            }
                        }
                    };
                    let Some((skip, requests)) = found else {
                        return input.len().saturating_sub(64).max(pos); // keep a tail that may hold a start
                    };
                    if self.halves[i].role.is_none() {
                        self.set_role(dir, if requests { Role::Requests } else { Role::Responses });
                    }
                    // A response whose body was lost ends where the next one begins.
                    if !requests && self.response.is_some() {
                        self.finish_response(info, dir, out);
                    }
                    pos += skip;
                    self.halves[i].state = State::Head;
                    out.push(Dissected::Resync);
                }
                State::Head => {
                    match self.parse_head(info, dir, (ts_us, self.input_seq.wrapping_add(pos as u32)), rest, out) {
                        Some(0) => return pos,
                        Some(n) => pos += n,
                        None => {
                            self.halves[i].state = State::Resync;
                            self.requests.disturb();
                            pos += 1;
                        }
                    }
                }
                // Every body state consumes at least one byte of non-empty input unless it needs
                // more (a chunk-size line or CRLF split across segments): then wait for them.
                State::Body(body) => match self.body(info, dir, body, rest, out) {
                    0 => return pos,
                    n => pos += n,
                },
            }
        }
        pos
    }

    fn set_role(&mut self, dir: Dir, role: Role) {
        self.halves[dir as usize].role = Some(role);
        if role == Role::Requests {
            self.request_dir = Some(dir);
        } else if self.request_dir.is_none() {
            self.request_dir = Some(other(dir));
        }
    }

    /// Parses one header section. `Some(0)`: need more bytes; `None`: not HTTP here.
    fn parse_head(
        &mut self,
        info: &ConnInfo,
        dir: Dir,
        (ts_us, seq): (u64, u32),
        input: &[u8],
        out: &mut Vec<Dissected>,
    ) -> Option<usize> {
        let i = dir as usize;
        // Left uninitialised: filling 96 empty headers before every parse was 3 KB of writes per
        // message head, a tenth of this dissector's time.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        match self.halves[i].role.expect("role set before head") {
            Role::Requests => {
                let mut req = httparse::Request::new(&mut []);
                let mut kept = podtap_shared::Headers::new();
                let mut framing = Framing::default();
                // Each header as it is parsed: no vector of them per message.
                let mut note = |name: &str, value: &[u8]| {
                    framing.note(name, value);
                    redact::keep(&mut kept, name, value);
                };
                let (n, method, path, malformed) = match req.parse_with_uninit_headers(input, &mut headers) {
                    Ok(httparse::Status::Complete(n)) => {
                        req.headers.iter().for_each(|h| note(h.name, h.value));
                        (n, req.method.unwrap_or(""), req.path.unwrap_or(""), None)
                    }
                    Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => return Some(0),
                    Ok(httparse::Status::Partial) => return None,
                    Err(e) => {
                        let Some(l) = lenient_or_wait(input, true)? else { return Some(0) };
                        l.headers.iter().for_each(|(k, v)| note(text(k), v));
                        (l.len, text(l.first), text(l.second), Some(e.to_string()))
                    }
                };
                let http = HttpExchange {
                    method: podtap_shared::method_of(method),
                    path: path.into(),
                    headers: kept,
                    malformed,
                    ..HttpExchange::default()
                };
                self.requests.push(PendingRequest { ts_us, seq, size: n as u64, http });
                let body = framing.request_body();
                self.start_body(info, dir, ts_us, n, body, out);
                Some(n)
            }
            Role::Responses => {
                let mut resp = httparse::Response::new(&mut []);
                let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                    &mut resp,
                    input,
                    &mut headers,
                );
                let mut framing = Framing::default();
                let mut to_h2c = false;
                let mut websocket = super::websocket::Upgrade::default();
                let mut note = |name: &str, value: &[u8]| {
                    framing.note(name, value);
                    to_h2c |= name.eq_ignore_ascii_case("upgrade") && value.eq_ignore_ascii_case(b"h2c");
                    websocket.note(name, value);
                };
                let (n, status) = match parsed {
                    Ok(httparse::Status::Complete(n)) => {
                        resp.headers.iter().for_each(|h| note(h.name, h.value));
                        (n, resp.code.unwrap_or(0))
                    }
                    Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => return Some(0),
                    Ok(httparse::Status::Partial) => return None,
                    Err(_) => {
                        let Some(l) = lenient_or_wait(input, false)? else { return Some(0) };
                        l.headers.iter().for_each(|(k, v)| note(text(k), v));
                        (l.len, std::str::from_utf8(l.second).ok().and_then(|c| c.parse().ok()).unwrap_or(0))
                    }
                };
                if (100..200).contains(&status) && status != 101 {
                    return Some(n); // interim response: the final one follows
                }
                if self.response.is_some() {
                    self.finish_response(info, dir, out); // one whose body was lost
                }
                let mut unanswered = Vec::new();
                let request = match self.requests.answer(ts_us, &mut unanswered) {
                    Answer::Request(r, sure) => Some((r, sure)),
                    Answer::Nothing => None,
                };
                for req in unanswered {
                    out.push(Dissected::Exchange(Box::new(exchange(info, dir, req, None, 0))));
                }
                // What the response's framing depends on in its request (no copy of the method).
                let method = request.as_ref().map_or("", |(r, _)| &*r.http.method);
                let (connect, head) = (method.eq_ignore_ascii_case("CONNECT"), method == "HEAD");
                self.response = Some(PendingResponse { ts_us, status, request });
                if status == 101 && to_h2c {
                    if let Some(PendingResponse { request: Some((req, _)), .. }) = self.response.take() {
                        // Answered on HTTP/2 stream 1 (RFC 7540 §3.2): HTTP/2 reports it.
                        let upgraded = Upgraded { ts_us: req.ts_us, size: req.size, http: req.http };
                        self.h2c = Some((upgraded, Vec::new()));
                    }
                    self.stop_parsing();
                    return Some(n);
                }
                let tunnel = connect && (200..300).contains(&status);
                if status == 101 || tunnel {
                    self.halves[i].msg_size = n as u64;
                    self.finish_response(info, dir, out);
                    // The client may have sent the tunnel's first bytes already, after CONNECT.
                    let req_side = std::mem::take(&mut self.halves[other(dir) as usize].buf);
                    self.stop_parsing();
                    if tunnel {
                        let mut t = [Vec::new(), Vec::new()];
                        t[other(dir) as usize] = req_side;
                        self.tunnel = Some(t);
                    } else if websocket.is_websocket() {
                        let mut frames = [Vec::new(), Vec::new()];
                        frames[other(dir) as usize] = req_side;
                        websocket.server = Some(dir);
                        websocket.ts_us = ts_us;
                        self.websocket = Some((websocket, frames));
                    }
                    return Some(n);
                }
                let body =
                    if head || status == 204 || status == 304 { Body::Fixed(0) } else { framing.response_body() };
                self.start_body(info, dir, ts_us, n, body, out);
                Some(n)
            }
        }
    }

    /// Upgraded or tunnelled: HTTP/1 is over on this connection.
    fn stop_parsing(&mut self) {
        self.halves = [Half { state: State::Off, ..Half::new() }, Half { state: State::Off, ..Half::new() }];
    }

    fn start_body(
        &mut self,
        info: &ConnInfo,
        dir: Dir,
        ts_us: u64,
        head_len: usize,
        body: Body,
        out: &mut Vec<Dissected>,
    ) {
        let half = &mut self.halves[dir as usize];
        half.msg_ts = ts_us;
        half.msg_size = head_len as u64;
        half.state = State::Body(body);
        if body == Body::Fixed(0) {
            self.finish_message(info, dir, out);
        }
    }

    /// Consumes body bytes; returns how many, 0 when more input is needed first.
    fn body(&mut self, info: &ConnInfo, dir: Dir, body: Body, input: &[u8], out: &mut Vec<Dissected>) -> usize {
        let i = dir as usize;
        let (used, next) = match body {
            Body::Fixed(left) | Body::ChunkData(left) => {
                let take = (input.len() as u64).min(left);
                let left = left - take;
                let next = match (body, left) {
                    (Body::Fixed(_), 0) => None,
                    (Body::Fixed(_), l) => Some(Body::Fixed(l)),
                    (_, 0) => Some(Body::ChunkEnd),
                    (_, l) => Some(Body::ChunkData(l)),
                };
                (take as usize, next)
            }
            Body::ChunkSize => match httparse::parse_chunk_size(input) {
                Ok(httparse::Status::Complete((n, 0))) => (n, Some(Body::Trailers)),
                Ok(httparse::Status::Complete((n, size))) => (n, Some(Body::ChunkData(size))),
                Ok(httparse::Status::Partial) if input.len() < 1024 => return 0,
                _ => {
                    self.halves[i].state = State::Resync;
                    return 1;
                }
            },
            Body::ChunkEnd => match input {
                [b'\r', b'\n', ..] => (2, Some(Body::ChunkSize)),
                [b'\r'] => return 0,
                _ => {
                    self.halves[i].state = State::Resync;
                    return 1;
                }
            },
            Body::Trailers => {
                if input.starts_with(b"\r\n") {
                    (2, None)
                } else if let Some(p) = input.windows(4).position(|w| w == b"\r\n\r\n") {
                    (p + 4, None)
                } else if input.len() < MAX_HEAD {
                    return 0;
                } else {
                    self.halves[i].state = State::Resync;
                    return input.len();
                }
            }
            Body::UntilClose => (input.len(), Some(Body::UntilClose)),
        };
        self.halves[i].msg_size += used as u64;
        match next {
            Some(b) => self.halves[i].state = State::Body(b),
            None => self.finish_message(info, dir, out),
        }
        used
    }

    fn finish_message(&mut self, info: &ConnInfo, dir: Dir, out: &mut Vec<Dissected>) {
        let half = &mut self.halves[dir as usize];
        half.state = State::Head;
        match half.role {
            Some(Role::Requests) => {
                let size = half.msg_size;
                if let Some(req) = self.requests.newest_mut() {
                    req.size = size;
                }
            }
            _ => self.finish_response(info, dir, out),
        }
    }

    fn finish_response(&mut self, info: &ConnInfo, dir: Dir, out: &mut Vec<Dissected>) {
        let size = self.halves[dir as usize].msg_size;
        if self.halves[dir as usize].state != State::Off && self.halves[dir as usize].state != State::Resync {
            self.halves[dir as usize].state = State::Head;
        }
        let Some(resp) = self.response.take() else { return };
        match resp.request {
            Some((mut req, sure)) => {
                if !sure {
                    req.http.paired = Some("uncertain".into());
                }
                let resp = PendingResponse { request: None, ..resp };
                out.push(Dissected::Exchange(Box::new(exchange(info, dir, req, Some(resp), size))));
            }
            None if self.halves[other(dir) as usize].role.is_none() => out.push(Dissected::OneWay),
            None => out.push(Dissected::UnmatchedResponse),
        }
        self.requests.response_done();
    }
}

/// Body framing headers of one message.
#[derive(Default)]
struct Framing {
    chunked: bool,
    length: Option<u64>,
}

impl Framing {
    fn note(&mut self, name: &str, value: &[u8]) {
        if name.eq_ignore_ascii_case("transfer-encoding") {
            self.chunked |= value.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            self.length = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok());
        }
    }

    fn request_body(&self) -> Body {
        if self.chunked { Body::ChunkSize } else { Body::Fixed(self.length.unwrap_or(0)) }
    }

    fn response_body(&self) -> Body {
        match (self.chunked, self.length) {
            (true, _) => Body::ChunkSize,
            (false, Some(n)) => Body::Fixed(n),
            (false, None) => Body::UntilClose,
        }
    }
}

#[cfg(test)]
mod tests;
