//! HTTP/1.0 and HTTP/1.1 (RFC 9112): requests paired with responses in order on one connection,
//! keep-alive and pipelining included. Message framing per RFC 9112 §6.3: HEAD, 1xx, 204 and 304
//! responses have no body; `Transfer-Encoding: chunked` wins over `Content-Length`; a response
//! with neither runs until the connection closes. `101 Switching Protocols` ends HTTP parsing of
//! the connection. Bodies are counted, never buffered. Detection is by content: a direction is a
//! request stream if it starts with a method token, a response stream if it starts with `HTTP/`.

use std::collections::{BTreeMap, VecDeque};
use std::mem::MaybeUninit;

use podtap_shared::{Detail, HttpExchange};

use super::http2::Upgraded;
use super::{Dissected, Exchange, redact};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

/// Longest header section accepted before the stream is declared out of sync.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 96;
const METHODS: &[&[u8]] =
    &[b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE "];

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

struct PendingRequest {
    ts_us: u64,
    size: u64,
    http: HttpExchange,
}

struct PendingResponse {
    ts_us: u64,
    status: u16,
}

/// Per-connection HTTP/1.x state.
pub struct Http1 {
    halves: [Half; 2],
    requests: VecDeque<PendingRequest>,
    response: Option<PendingResponse>,
    /// The direction carrying requests, once known.
    request_dir: Option<Dir>,
    /// Set by `101 Switching Protocols` to h2c: the upgrade request (answered on HTTP/2 stream 1)
    /// and the server's bytes after the 101, which are already HTTP/2.
    h2c: Option<(Upgraded, Vec<u8>)>,
}

impl Http1 {
    /// The connection switched to HTTP/2 (`Upgrade: h2c`): what HTTP/2 takes over.
    pub fn take_h2c(&mut self) -> Option<(Upgraded, Vec<u8>)> {
        self.h2c.take()
    }
}

impl ConnHandler for Http1 {
    type Output = Dissected;

    fn new(_: &ConnInfo) -> Self {
        Self {
            halves: [Half::new(), Half::new()],
            requests: VecDeque::new(),
            response: None,
            request_dir: None,
            h2c: None,
        }
    }

    fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        let i = dir as usize;
        if self.halves[i].state == State::Off {
            return;
        }
        if self.halves[i].buf.is_empty() {
            let used = self.consume(info, dir, ts_us, data, out);
            if self.halves[i].state != State::Off {
                self.halves[i].buf.extend_from_slice(&data[used..]);
            } else if let Some((_, rest)) = &mut self.h2c {
                rest.extend_from_slice(&data[used..]);
            }
        } else {
            let mut buf = std::mem::take(&mut self.halves[i].buf);
            buf.extend_from_slice(data);
            let used = self.consume(info, dir, ts_us, &buf, out);
            buf.drain(..used);
            if self.halves[i].state != State::Off {
                self.halves[i].buf = buf;
            } else if let Some((_, rest)) = &mut self.h2c {
                rest.extend_from_slice(&buf);
            }
        }
    }

    fn on_gap(&mut self, _: &ConnInfo, dir: Dir, _len: u64) {
        let half = &mut self.halves[dir as usize];
        if half.state != State::Off && half.state != State::Unknown {
            half.buf.clear();
            half.state = State::Resync;
        }
    }

    fn on_close(&mut self, info: &ConnInfo, _ts_us: u64, out: &mut Vec<Dissected>) {
        // A response delimited by the close is complete now.
        let resp_dir = self.request_dir.map(other);
        if let Some(d) = resp_dir
            && self.halves[d as usize].state == State::Body(Body::UntilClose)
        {
            self.finish_response(info, d, out);
        }
        if let Some(resp) = self.response.take() {
            // Headers seen, body cut short: still an answer.
            if let (Some(d), Some(req)) = (resp_dir, self.requests.pop_front()) {
                let size = self.halves[d as usize].msg_size;
                out.push(Dissected::Exchange(Box::new(exchange(info, d, req, Some(resp), size))));
            }
        }
        let req_dir = self.request_dir.unwrap_or(Dir::AtoB);
        for req in self.requests.drain(..) {
            out.push(Dissected::Exchange(Box::new(exchange(info, other(req_dir), req, None, 0))));
        }
    }
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
    Exchange {
        conn: info.id,
        interface: info.interface,
        points: info.points,
        client,
        server,
        ts_us: req.ts_us,
        response_ts_us: resp.map(|r| r.ts_us),
        request_size: req.size,
        response_size,
        detail: Detail::Http(http),
    }
}

impl Http1 {
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
                    let role = if rest.starts_with(b"HTTP/") {
                        Role::Responses
                    } else if METHODS.iter().any(|m| rest.starts_with(m)) {
                        Role::Requests
                    } else if rest.len() < 8
                        && (b"HTTP/".starts_with(rest) || METHODS.iter().any(|m| m.starts_with(rest)))
                    {
                        return pos; // too few bytes to tell yet
                    } else {
                        self.halves[i].state = State::Off;
                        out.push(Dissected::NotThisProtocol);
                        return input.len();
                    };
                    self.halves[i].role = Some(role);
                    if role == Role::Requests {
                        self.request_dir = Some(dir);
                    } else if self.request_dir.is_none() {
                        self.request_dir = Some(other(dir));
                    }
                    self.halves[i].state = State::Head;
                }
                State::Resync => match find_message_start(rest, self.halves[i].role) {
                    Some(skip) => {
                        pos += skip;
                        self.halves[i].state = State::Head;
                        out.push(Dissected::Resync);
                    }
                    None => return input.len().saturating_sub(8).max(pos), // keep a tail that may hold a start
                },
                State::Head => match self.parse_head(info, dir, ts_us, rest, out) {
                    Some(0) => return pos,
                    Some(n) => pos += n,
                    None => {
                        self.halves[i].state = State::Resync;
                        pos += 1;
                    }
                },
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

    /// Parses one header section. `Some(0)`: need more bytes; `None`: not HTTP here.
    fn parse_head(
        &mut self,
        info: &ConnInfo,
        dir: Dir,
        ts_us: u64,
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
                let n = match req.parse_with_uninit_headers(input, &mut headers) {
                    Ok(httparse::Status::Complete(n)) => n,
                    Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => return Some(0),
                    _ => return None,
                };
                let mut kept = BTreeMap::new();
                let mut framing = Framing::default();
                for h in req.headers.iter() {
                    framing.note(h.name, h.value);
                    redact::keep(&mut kept, h.name, h.value);
                }
                let http = HttpExchange {
                    method: req.method.unwrap_or("").to_string(),
                    path: req.path.unwrap_or("").to_string(),
                    status: None,
                    headers: kept,
                    version: None,
                };
                self.requests.push_back(PendingRequest { ts_us, size: n as u64, http });
                let body = framing.request_body();
                self.start_body(info, dir, ts_us, n, body, out);
                Some(n)
            }
            Role::Responses => {
                let mut resp = httparse::Response::new(&mut []);
                let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                    &mut resp,
                    input,
                    &mut headers,
                ) {
                    Ok(httparse::Status::Complete(n)) => n,
                    Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => return Some(0),
                    _ => return None,
                };
                let status = resp.code.unwrap_or(0);
                let mut framing = Framing::default();
                let mut to_h2c = false;
                for h in resp.headers.iter() {
                    framing.note(h.name, h.value);
                    to_h2c |= h.name.eq_ignore_ascii_case("upgrade") && h.value.eq_ignore_ascii_case(b"h2c");
                }
                if (100..200).contains(&status) && status != 101 {
                    return Some(n); // interim response: the final one follows
                }
                let head_request = self.requests.front().is_some_and(|r| r.http.method == "HEAD");
                self.response = Some(PendingResponse { ts_us, status });
                if status == 101
                    && to_h2c
                    && let Some(req) = self.requests.pop_front()
                {
                    // Answered on HTTP/2 stream 1 (RFC 7540 §3.2): HTTP/2 reports it.
                    self.response = None;
                    let upgraded = Upgraded { ts_us: req.ts_us, size: req.size, http: req.http };
                    self.h2c = Some((upgraded, Vec::new()));
                    self.halves =
                        [Half { state: State::Off, ..Half::new() }, Half { state: State::Off, ..Half::new() }];
                    return Some(n);
                }
                if status == 101 {
                    self.halves[i].msg_size = n as u64;
                    self.finish_response(info, dir, out);
                    self.halves =
                        [Half { state: State::Off, ..Half::new() }, Half { state: State::Off, ..Half::new() }];
                    return Some(n);
                }
                let body = if head_request || status == 204 || status == 304 {
                    Body::Fixed(0)
                } else {
                    framing.response_body()
                };
                self.start_body(info, dir, ts_us, n, body, out);
                Some(n)
            }
        }
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
                if let Some(req) = self.requests.back_mut() {
                    req.size = half.msg_size;
                }
            }
            _ => self.finish_response(info, dir, out),
        }
    }

    fn finish_response(&mut self, info: &ConnInfo, dir: Dir, out: &mut Vec<Dissected>) {
        let size = self.halves[dir as usize].msg_size;
        self.halves[dir as usize].state = State::Head;
        let resp = self.response.take();
        match self.requests.pop_front() {
            Some(req) => out.push(Dissected::Exchange(Box::new(exchange(info, dir, req, resp, size)))),
            None if self.halves[other(dir) as usize].role.is_none() => out.push(Dissected::OneWay),
            None => out.push(Dissected::UnmatchedResponse),
        }
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

/// Where the next message starts after lost bytes: a line that begins like a request (or a
/// response), at the start of `input` or after a newline.
fn find_message_start(input: &[u8], role: Option<Role>) -> Option<usize> {
    let starts_here = |at: &[u8]| match role {
        Some(Role::Responses) => at.starts_with(b"HTTP/1."),
        _ => METHODS.iter().any(|m| at.starts_with(m)),
    };
    if starts_here(input) {
        return Some(0);
    }
    input.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).find(|&i| starts_here(&input[i..]))
}

#[cfg(test)]
mod tests;
