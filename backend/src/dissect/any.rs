//! The per-connection dissector the reassembler drives: it waits for a connection's first bytes
//! and hands the connection to the protocol they belong to — TLS if they open a handshake record,
//! HTTP/2 if they are the h2c preface (or HTTP/1.1 upgrades to h2c), DNS if the connection is on port 53 or its bytes are a length-prefixed DNS message, else HTTP/1
//! (which itself gives up on anything that is not HTTP); a plaintext protocol that may switch to
//! TLS (STARTTLS and its kin) is followed until it does; PostgreSQL by its first packet or, joined
//! mid-stream, by whole messages of its own; Redis by a client's command (or, on its port, a reply);
//! Kafka by a client's request frame (or, on its port, the server's bytes first). Content first, the port only for DNS,
//! whose first segment may be too short to tell. An HTTP `CONNECT` tunnel is decided again from
//! its own first bytes once the proxy answered. A PROXY protocol header (v1 or v2) before the
//! first bytes is taken off and the client it names becomes the exchanges' client.

use std::net::SocketAddr;

use super::dns_tcp::{DnsTcp, looks_like_dns_tcp};
use super::http1::Http1;
use super::http2::{Http2, PREFACE};
use super::kafka::{self, Kafka};
use super::mysql::{self, Mysql};
use super::postgres::{self, Postgres};
use super::redis::{self, Redis};
use super::starttls::{self, StartTls};
use super::tls::{Tls, looks_like_tls};
use super::websocket::WebSocket;
use super::{Dissected, Exchange, Timing, proxy};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};
use podtap_shared::{Detail, TcpClose, TcpConnection};

/// One connection's protocol, once known.
enum Proto {
    Undecided,
    Http1(Box<Http1>),
    Http2(Box<Http2>),
    Tls(Box<Tls>),
    Dns(Box<DnsTcp>),
    /// A plaintext protocol that may switch to TLS (SMTP, IMAP, POP3, FTP, LDAP, XMPP).
    StartTls(Box<StartTls>),
    Postgres(Box<Postgres>),
    Redis(Box<Redis>),
    Mysql(Box<Mysql>),
    /// After an HTTP/1.1 upgrade.
    WebSocket(Box<WebSocket>),
    Kafka(Box<Kafka>),
}

/// One connection: its protocol, and the real client a PROXY protocol header named.
pub struct AnyProtocol {
    proto: Proto,
    /// The client named by a PROXY header before the first bytes (the TCP peer is the proxy).
    proxied: Option<SocketAddr>,
    /// The start of a PROXY header split across segments.
    head: Vec<u8>,
    /// First bytes too few to tell the protocol by (a Kafka request's size alone in its segment,
    /// a DNS query's length): held, with their direction, first sequence number and time, until
    /// more come from the same side or the other side speaks.
    early: Option<Early>,
    /// Whether the first bytes were looked at for a PROXY header.
    looked: bool,
    /// Exchanges read on the connection so far, and whether any was a gRPC call.
    requests: u64,
    grpc: bool,
    /// Whether the protocol said the bytes were not its own.
    foreign: bool,
    /// The client of the first exchange: who opened it, when the handshake was not seen.
    client: Option<SocketAddr>,
}

/// An HTTP/2 SETTINGS frame (not an ACK) on stream 0 with whole 6-byte settings: what an HTTP/2
/// server sends first. Nine bytes this specific do not begin any text protocol.
fn looks_like_server_settings(data: &[u8]) -> bool {
    let [l0, l1, l2, kind, flags, s0, s1, s2, s3, ..] = *data else { return false };
    let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
    kind == 4 && flags == 0 && [s0, s1, s2, s3] == [0; 4] && len % 6 == 0 && len <= 6 * 16
}

fn other(dir: Dir) -> Dir {
    match dir {
        Dir::AtoB => Dir::BtoA,
        Dir::BtoA => Dir::AtoB,
    }
}

/// A plaintext protocol that may switch to TLS, told by its first bytes: a server's greeting,
/// or a client's XMPP stream or LDAP message (`starttls::opening`).
fn plaintext_opening(info: &ConnInfo, dir: Dir, data: &[u8]) -> Option<StartTls> {
    let sides: &[bool] = match info.opener {
        Some(opener) => &[opener != dir],
        // The handshake was not seen: what the bytes say decides who is the server.
        None => &[true, false],
    };
    sides
        .iter()
        .find_map(|&from_server| starttls::opening(data, from_server).map(|p| StartTls::new(p, dir, from_server)))
}

/// PostgreSQL, told by its first bytes: a session's first packet from its client, or — joined
/// mid-stream, a pool's connection — whole protocol messages of either side (something only
/// PostgreSQL sends among them, unless a port is 5432).
fn postgres_opening(info: &ConnInfo, dir: Dir, data: &[u8]) -> Option<Postgres> {
    let from_client = |client: bool| info.opener.is_none_or(|o| (o == dir) == client);
    if from_client(true) && postgres::first_packet(data).is_some() {
        return Some(Postgres::new(dir, true));
    }
    let strong = ![info.a.port(), info.b.port()].contains(&5432);
    if from_client(true) && postgres::whole_messages(data, true, strong) {
        return Some(Postgres::new(dir, false));
    }
    if from_client(false) && postgres::whole_messages(data, false, strong) {
        return Some(Postgres::new(other(dir), false));
    }
    None
}

/// Redis, told by a client's command (an array of bulk strings, its name in letters), or on
/// Redis' port by a reply's first line.
fn redis_opening(info: &ConnInfo, dir: Dir, data: &[u8]) -> Option<Redis> {
    let from_client = |client: bool| info.opener.is_none_or(|o| (o == dir) == client);
    if from_client(true) && redis::looks_like_command(data) {
        return Some(Redis::new(dir));
    }
    // The server's bytes first, on Redis' port: joined mid-stream (its replies are read from the
    // client's next command on).
    let on_port = [info.a.port(), info.b.port()].contains(&6379);
    let server = match info.opener {
        Some(o) => (o != dir).then_some(dir),
        None => (info.a.port() == 6379).then_some(Dir::AtoB).or((info.b.port() == 6379).then_some(Dir::BtoA)),
    };
    (on_port && server == Some(dir) && data.ends_with(b"\r\n")).then(|| Redis::joined(other(dir)))
}

/// Kafka, told by a client's request (a frame whose API key, version and client id fit), or on
/// Kafka's port by the server's bytes first (joined mid-stream: read from the next request on).
fn kafka_opening(info: &ConnInfo, dir: Dir, data: &[u8]) -> Option<Kafka> {
    let from_client = |client: bool| info.opener.is_none_or(|o| (o == dir) == client);
    if from_client(true) && kafka::looks_like_request(data) {
        return Some(Kafka::new(dir));
    }
    let server = match info.opener {
        Some(o) => (o != dir).then_some(dir),
        None => (info.a.port() == 9092).then_some(Dir::AtoB).or((info.b.port() == 9092).then_some(Dir::BtoA)),
    };
    let on_port = [info.a.port(), info.b.port()].contains(&9092);
    (on_port && server == Some(dir)).then(|| Kafka::joined(other(dir)))
}

/// MySQL or MariaDB, told by the server's greeting (protocol 10) or, joined mid-stream, by a
/// client's whole COM_QUERY packet (or on port 3306 any whole command packet).
fn mysql_opening(info: &ConnInfo, dir: Dir, data: &[u8]) -> Option<Mysql> {
    let from_client = |client: bool| info.opener.is_none_or(|o| (o == dir) == client);
    if from_client(false) && mysql::is_server_greeting(data) {
        return Some(Mysql::new(other(dir), true));
    }
    let [l0, l1, l2, 0, command, body @ ..] = data else { return None };
    let len = usize::from(*l0) | usize::from(*l1) << 8 | usize::from(*l2) << 16;
    let whole = len == data.len() - 4;
    let query = *command == 0x03
        && std::str::from_utf8(body)
            .is_ok_and(|t| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '(' || c == '/'));
    let on_port = [info.a.port(), info.b.port()].contains(&3306);
    (from_client(true) && whole && (query || on_port && matches!(command, 0x02..=0x1f))).then(|| Mysql::new(dir, false))
}

fn on_dns_port(info: &ConnInfo) -> bool {
    [info.a.port(), info.b.port()].contains(&53)
}

impl AnyProtocol {
    /// Takes a PROXY protocol header off the connection's first bytes (the opener's, or the
    /// first seen): what is left for the protocol, or `None` while the header is incomplete.
    fn strip_proxy<'d>(
        &mut self,
        info: &ConnInfo,
        dir: Dir,
        data: &'d [u8],
        joined: &'d mut Vec<u8>,
    ) -> Option<&'d [u8]> {
        if self.looked || info.opener.is_some_and(|o| o != dir) {
            return Some(data);
        }
        let bytes: &[u8] = if self.head.is_empty() {
            data
        } else {
            *joined = std::mem::take(&mut self.head);
            joined.extend_from_slice(data);
            joined
        };
        match proxy::parse(bytes) {
            proxy::Header::More if bytes.len() < 4096 => {
                self.head = bytes.to_vec();
                None
            }
            proxy::Header::Proxy { len, source } => {
                self.looked = true;
                self.proxied = source;
                Some(&bytes[len..])
            }
            _ => {
                self.looked = true;
                Some(bytes)
            }
        }
    }
}

/// Bytes held before the protocol is decided (`AnyProtocol::early`).
struct Early {
    dir: Dir,
    seq: u32,
    ts_us: u64,
    bytes: Vec<u8>,
}

/// Fewer first bytes than this decide nothing: every protocol told by content needs more (a
/// Kafka request's header is 14 bytes; RESP's shortest command, `*1\r\n$4\r\nPING\r\n`, 14).
const DECIDE_MIN: usize = 14;

impl AnyProtocol {
    /// Dispatches what was held, as it came.
    fn release_early(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        if let Some(e) = self.early.take() {
            let mut info = *info;
            info.seq[e.dir as usize] = e.seq;
            let first = out.len();
            self.dispatch(&info, e.dir, e.ts_us, &e.bytes, out);
            self.took(&mut out[first..], e.ts_us);
        }
    }
}

impl ConnHandler for AnyProtocol {
    type Output = Dissected;

    fn new(_: &ConnInfo) -> Self {
        AnyProtocol {
            proto: Proto::Undecided,
            proxied: None,
            head: Vec::new(),
            early: None,
            looked: false,
            requests: 0,
            grpc: false,
            foreign: false,
            client: None,
        }
    }

    fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        let mut joined = Vec::new();
        let given = data.len();
        let Some(data) = self.strip_proxy(info, dir, data, &mut joined) else { return };
        if data.is_empty() {
            return;
        }
        // What is left ends where the given bytes end: its first byte's sequence number.
        let mut info = *info;
        let i = dir as usize;
        info.seq[i] = info.seq[i].wrapping_add(given as u32).wrapping_sub(data.len() as u32);
        if let Proto::Undecided = self.proto {
            match &mut self.early {
                // More from the same side: the held bytes and these, as one.
                Some(e) if e.dir == dir => {
                    e.bytes.extend_from_slice(data);
                    if e.bytes.len() < DECIDE_MIN {
                        return;
                    }
                    let e = self.early.take().expect("held");
                    info.seq[i] = e.seq;
                    let first = out.len();
                    self.dispatch(&info, dir, e.ts_us, &e.bytes, out);
                    self.took(&mut out[first..], e.ts_us);
                    return;
                }
                // The other side spoke: what was held goes first, as it came.
                Some(_) => self.release_early(&info, out),
                None if data.len() < DECIDE_MIN => {
                    self.early = Some(Early { dir, seq: info.seq[i], ts_us, bytes: data.to_vec() });
                    return;
                }
                None => {}
            }
        }
        let first = out.len();
        self.dispatch(&info, dir, ts_us, data, out);
        self.took(&mut out[first..], ts_us);
    }

    fn on_gap(&mut self, info: &ConnInfo, dir: Dir, len: u64) {
        // Held first bytes cannot be joined to what comes after a gap.
        self.early = None;
        match &mut self.proto {
            Proto::Http1(h) => h.on_gap(info, dir, len),
            Proto::Tls(t) => t.on_gap(info, dir, len),
            Proto::Http2(h) => h.on_gap(info, dir, len),
            Proto::Dns(d) => d.on_gap(info, dir, len),
            Proto::Postgres(p) => p.on_gap(dir, len),
            Proto::Redis(r) => r.on_gap(),
            Proto::Mysql(m) => m.on_gap(dir, len),
            Proto::WebSocket(w) => w.on_gap(),
            Proto::Kafka(k) => k.on_gap(),
            Proto::StartTls(_) | Proto::Undecided => {}
        }
    }

    fn on_close(&mut self, info: &ConnInfo, ts_us: u64, out: &mut Vec<Dissected>) {
        self.release_early(info, out);
        let first = out.len();
        match &mut self.proto {
            Proto::Http1(h) => h.on_close(info, ts_us, out),
            Proto::Tls(t) => t.on_close(info, ts_us, out),
            Proto::Http2(h) => h.on_close(info, ts_us, out),
            Proto::Dns(d) => d.on_close(info, ts_us, out),
            Proto::Postgres(p) => p.on_close(info, out),
            Proto::Redis(r) => r.on_close(info, out),
            Proto::Mysql(m) => m.on_close(info, out),
            Proto::WebSocket(w) => w.on_close(info, out),
            Proto::Kafka(k) => k.on_close(info, out),
            Proto::StartTls(_) | Proto::Undecided => {}
        }
        self.took(&mut out[first..], info.life.last_us.min(ts_us));
        out.push(Dissected::Exchange(Box::new(self.connection(info))));
    }
}

impl AnyProtocol {
    /// Exchanges the protocol just produced, completed by the segment at `ts_us`: they end there
    /// (a response's last byte), carry the real client a PROXY header named, and are counted.
    fn took(&mut self, new: &mut [Dissected], ts_us: u64) {
        for d in new {
            self.foreign |= matches!(d, Dissected::NotThisProtocol);
            if let Dissected::Exchange(ex) = d {
                ex.proxied = self.proxied.map(Box::new).or(ex.proxied.take());
                // The segment that completed it; `correlate::record` keeps the end no earlier than
                // the request's and the response's first bytes.
                let answered_until = if ex.response_ts_us.is_some() { ts_us } else { ex.ts_us };
                ex.end_us.get_or_insert(answered_until);
                self.requests += 1;
                self.grpc |= matches!(ex.detail, Detail::Grpc(_));
                self.client.get_or_insert(ex.client);
            }
        }
    }

    /// The connection itself, as an exchange of kind `tcp`: opened by the side that sent the SYN
    /// (else the client of its first request, else the side on the higher port).
    fn connection(&self, info: &ConnInfo) -> Exchange {
        let life = &info.life;
        let (client, server) = match (info.opener, self.client) {
            (Some(dir), _) => info.endpoints(dir),
            (None, Some(c)) if c == info.b => (info.b, info.a),
            (None, Some(_)) => (info.a, info.b),
            (None, None) if info.a.port() > info.b.port() => (info.a, info.b),
            (None, None) => (info.b, info.a),
        };
        let up = if client == info.a { Dir::AtoB } else { Dir::BtoA };
        let protocol = match &self.proto {
            Proto::Undecided => None,
            _ if self.foreign && self.requests == 0 => None,
            Proto::Http1(_) => Some("http"),
            Proto::Http2(_) if self.grpc => Some("grpc"),
            Proto::Http2(_) => Some("http2"),
            Proto::Tls(_) => Some("tls"),
            Proto::Dns(_) => Some("dns"),
            Proto::StartTls(s) => s.plain().name(),
            Proto::Postgres(p) if p.opaque() => Some("postgres (encrypted)"),
            Proto::Postgres(_) => Some("postgres"),
            Proto::Redis(_) => Some("redis"),
            Proto::Mysql(m) if m.compressed() => Some("mysql (compressed)"),
            Proto::Mysql(_) => Some("mysql"),
            Proto::WebSocket(_) => Some("websocket"),
            Proto::Kafka(_) => Some("kafka"),
        };
        let tcp = TcpConnection {
            handshake: info.opener.is_some(),
            close: life.close,
            rtt_us: life.rtt_us,
            retransmissions: life.retransmissions,
            gaps: life.gaps,
            protocol: protocol.map(str::to_string),
            requests: self.requests,
            likely: protocol.is_none().then(|| podtap_shared::port_hint(server.port())).flatten(),
        };
        let timing = Timing {
            ts_us: life.opened_us,
            response_ts_us: None,
            request_size: life.bytes[up as usize],
            response_size: life.bytes[other(up) as usize],
        };
        let mut ex = Exchange::on(info, (client, server), timing, Detail::Tcp(tcp));
        ex.proxied = self.proxied.map(Box::new);
        ex.seq = info.isn;
        ex.end_us = (life.close != TcpClose::Open).then_some(life.last_us);
        ex
    }

    fn dispatch(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        if let Proto::Undecided = self.proto {
            self.proto = if looks_like_tls(data) {
                Proto::Tls(Box::new(Tls::new(info)))
            } else if data.len() >= 3 && PREFACE.starts_with(&data[..data.len().min(PREFACE.len())]) {
                Proto::Http2(Box::new(Http2::new(dir)))
            } else if looks_like_server_settings(data) {
                // h2c servers (grpc-core among them) may send SETTINGS before the client's preface.
                Proto::Http2(Box::new(Http2::new(info.opener.unwrap_or(other(dir)))))
            } else if on_dns_port(info) {
                Proto::Dns(Box::default())
            } else if let Some(s) = plaintext_opening(info, dir, data) {
                Proto::StartTls(Box::new(s))
            } else if looks_like_dns_tcp(data) {
                Proto::Dns(Box::default())
            } else if let Some(p) = postgres_opening(info, dir, data) {
                Proto::Postgres(Box::new(p))
            } else if let Some(r) = redis_opening(info, dir, data) {
                Proto::Redis(Box::new(r))
            } else if let Some(m) = mysql_opening(info, dir, data) {
                Proto::Mysql(Box::new(m))
            } else if let Some(k) = kafka_opening(info, dir, data) {
                Proto::Kafka(Box::new(k))
            } else {
                Proto::Http1(Box::new(Http1::new(info)))
            };
        }
        match &mut self.proto {
            Proto::Http1(h) => {
                h.on_data(info, dir, ts_us, data, out);
                if let Some((request, rest)) = h.take_h2c() {
                    // The server's side switched; the client sends its preface next.
                    let mut h2 = Http2::upgraded(other(dir), request);
                    h2.on_data(info, dir, ts_us, &rest, out);
                    self.proto = Proto::Http2(Box::new(h2));
                } else if let Some((upgrade, frames)) = h.take_websocket() {
                    // Upgraded: WebSocket frames from here on, both ways.
                    let mut ws = WebSocket::new(upgrade);
                    for (d, bytes) in [Dir::AtoB, Dir::BtoA].into_iter().zip(frames) {
                        if !bytes.is_empty() {
                            ws.on_data(d, ts_us, &bytes);
                        }
                    }
                    self.proto = Proto::WebSocket(Box::new(ws));
                } else if let Some(mut tunnel) = h.take_tunnel() {
                    // CONNECT answered: what follows is another protocol (TLS, usually), decided
                    // afresh from its first bytes — the client's, which may have come already.
                    self.proto = Proto::Undecided;
                    for d in [other(dir), dir] {
                        let bytes = std::mem::take(&mut tunnel[d as usize]);
                        if !bytes.is_empty() {
                            self.dispatch(info, d, ts_us, &bytes, out);
                        }
                    }
                }
            }
            Proto::Http2(h) => h.on_data(info, dir, ts_us, data, out),
            Proto::WebSocket(w) => w.on_data(dir, ts_us, data),
            Proto::Tls(t) => t.on_data(info, dir, ts_us, data, out),
            Proto::Dns(d) => d.on_data(info, dir, ts_us, data, out),
            Proto::Postgres(p) => {
                p.on_data(info, dir, ts_us, data, out);
                if let Some(at) = p.take_tls() {
                    // The server said yes to SSLRequest: TLS from here on, both ways.
                    self.proto = Proto::Tls(Box::new(Tls::after("postgres")));
                    if at < data.len() {
                        self.dispatch(info, dir, ts_us, &data[at..], out);
                    }
                }
            }
            Proto::Redis(r) => r.on_data(info, dir, ts_us, data, out),
            Proto::Kafka(k) => k.on_data(info, dir, ts_us, data, out),
            Proto::Mysql(m) => {
                m.on_data(info, dir, ts_us, data, out);
                if m.take_tls() {
                    // The client's SSLRequest: TLS from its next bytes, both ways.
                    self.proto = Proto::Tls(Box::new(Tls::after("mysql")));
                }
            }
            Proto::StartTls(s) => {
                if let Some(at) = s.on_data(dir, data) {
                    // The server said yes: TLS from here on, both ways.
                    let from = s.plain().name().unwrap_or("plaintext");
                    self.proto = Proto::Tls(Box::new(Tls::after(from)));
                    if at < data.len() {
                        self.dispatch(info, dir, ts_us, &data[at..], out);
                    }
                }
            }
            Proto::Undecided => unreachable!("decided above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_inside_an_http_connect_tunnel_is_seen_as_tls() {
        let info = ConnInfo::test(1, 0, "10.0.0.1:40000", "10.0.0.2:3128");
        let mut p = AnyProtocol::new(&info);
        let mut out = Vec::new();
        let hello = crate::dissect::tls::tests::client_hello("api.example");
        let connect =
            [&b"CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n"[..], &hello[..20]].concat();
        p.on_data(&info, Dir::AtoB, 1, &connect, &mut out);
        p.on_data(&info, Dir::BtoA, 2, b"HTTP/1.1 200 Connection Established\r\n\r\n", &mut out);
        p.on_data(&info, Dir::AtoB, 3, &hello[20..], &mut out);
        p.on_data(&info, Dir::BtoA, 4, &crate::dissect::tls::tests::server_hello(), &mut out);
        p.on_close(&info, 5, &mut out);
        let details: Vec<&Detail> =
            out.iter().filter_map(|d| if let Dissected::Exchange(e) = d { Some(&e.detail) } else { None }).collect();
        assert!(matches!(details[0], Detail::Http(h) if h.method == "CONNECT" && h.status == Some(200)));
        assert!(matches!(details[1], Detail::Tls(t) if t.sni.as_deref() == Some("api.example") && t.version.is_some()));
        assert!(matches!(details[2], Detail::Tcp(t) if t.protocol.as_deref() == Some("tls") && t.requests == 2));
        assert_eq!(details.len(), 3);
    }
}

#[cfg(test)]
mod connection_tests {
    use super::*;

    #[test]
    fn every_connection_ends_in_a_tcp_exchange_even_an_opaque_one() {
        let mut info = ConnInfo::test(7, 0, "10.0.0.1:40000", "10.0.0.2:9999");
        let mut p = AnyProtocol::new(&info);
        let mut out = Vec::new();
        p.on_data(&info, Dir::AtoB, 10, b"\x00\x00\x00\x08\x07\xd2\x16\x2f", &mut out);
        p.on_data(&info, Dir::BtoA, 20, b"N", &mut out);
        (info.life.opened_us, info.life.last_us, info.life.bytes) = (5, 30, [8, 1]);
        info.life.close = TcpClose::Fin;
        p.on_close(&info, 30, &mut out);
        let [Dissected::NotThisProtocol, Dissected::Exchange(ex)] = &out[..] else { panic!("one exchange: {out:?}") };
        let Detail::Tcp(t) = &ex.detail else { panic!("a connection") };
        assert_eq!((t.protocol.as_deref(), t.requests, t.close, t.handshake), (None, 0, TcpClose::Fin, true));
        assert_eq!(t.likely, None, "no well-known port, no guess");
        assert_eq!((ex.ts_us, ex.end_us, ex.request_size, ex.response_size), (5, Some(30), 8, 1));
        assert_eq!((ex.client, ex.server), (info.a, info.b));
    }

    #[test]
    fn requests_end_at_the_segment_that_completed_them() {
        let info = ConnInfo::test(1, 0, "10.0.0.1:40000", "10.0.0.2:80");
        let mut p = AnyProtocol::new(&info);
        let mut out = Vec::new();
        p.on_data(&info, Dir::AtoB, 100, b"GET / HTTP/1.1\r\n\r\n", &mut out);
        p.on_data(&info, Dir::BtoA, 200, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", &mut out);
        p.on_data(&info, Dir::BtoA, 350, b"cd", &mut out);
        let Some(Dissected::Exchange(ex)) = out.first() else { panic!("a request: {out:?}") };
        assert_eq!((ex.ts_us, ex.response_ts_us, ex.end_us), (100, Some(200), Some(350)));
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::*;

    fn exchanges(out: &[Dissected]) -> Vec<&crate::dissect::Exchange> {
        out.iter().filter_map(|d| if let Dissected::Exchange(e) = d { Some(e.as_ref()) } else { None }).collect()
    }

    fn run(chunks: &[(Dir, &[u8])]) -> Vec<Dissected> {
        let info = ConnInfo::test(1, 0, "10.0.0.5:40000", "10.0.0.2:80");
        let mut p = AnyProtocol::new(&info);
        let mut out = Vec::new();
        for (i, (dir, bytes)) in chunks.iter().enumerate() {
            p.on_data(&info, *dir, i as u64, bytes, &mut out);
        }
        p.on_close(&info, 99, &mut out);
        out
    }

    #[test]
    fn a_proxy_v1_header_before_http_names_the_real_client() {
        // Split inside the header: it is put together first.
        let out = run(&[
            (Dir::AtoB, b"PROXY TCP4 203.0.113.7 10.0."),
            (Dir::AtoB, b"0.2 56324 80\r\nGET /real HTTP/1.1\r\n\r\n"),
            (Dir::BtoA, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]);
        let ex = exchanges(&out);
        assert_eq!(ex.len(), 2, "the request and its connection");
        assert_eq!(ex[0].proxied.as_deref().copied(), Some("203.0.113.7:56324".parse().unwrap()));
        assert_eq!(ex[1].proxied, ex[0].proxied, "the connection names the real client too");
        assert_eq!(ex[0].client, "10.0.0.5:40000".parse().unwrap(), "the TCP peer: the load balancer");
        assert!(matches!(&ex[0].detail, Detail::Http(h) if h.path == "/real" && h.status == Some(200)));
    }

    #[test]
    fn a_proxy_v2_header_before_tls_and_before_http2() {
        let header = proxy::tests::v2_header("198.51.100.9:41000".parse().unwrap(), "10.0.0.2:443".parse().unwrap());
        let hello = crate::dissect::tls::tests::client_hello("shop.example");
        let out = run(&[
            (Dir::AtoB, &[header.clone(), hello].concat()),
            (Dir::BtoA, &crate::dissect::tls::tests::server_hello()),
        ]);
        let ex = exchanges(&out);
        assert!(matches!(&ex[0].detail, Detail::Tls(t) if t.sni.as_deref() == Some("shop.example")));
        assert_eq!(ex[0].proxied.as_deref().copied(), Some("198.51.100.9:41000".parse().unwrap()));

        let h2 = crate::dissect::http2::tests::get_request_conversation();
        let mut chunks: Vec<(Dir, Vec<u8>)> = vec![(Dir::AtoB, [header.clone(), h2[0].1.clone()].concat())];
        chunks.extend(h2.into_iter().skip(1));
        let borrowed: Vec<(Dir, &[u8])> = chunks.iter().map(|(d, b)| (*d, b.as_slice())).collect();
        let out = run(&borrowed);
        let ex = exchanges(&out);
        assert!(!ex.is_empty(), "{out:?}");
        assert!(ex.iter().all(|e| e.proxied.as_deref().copied() == Some("198.51.100.9:41000".parse().unwrap())));
    }

    #[test]
    fn an_opaque_stream_on_a_well_known_port_says_what_it_likely_is() {
        let info = ConnInfo::test(8, 0, "10.0.0.1:40000", "10.0.0.2:6379");
        let mut p = AnyProtocol::new(&info);
        let mut out = Vec::new();
        p.on_data(&info, Dir::AtoB, 10, b"\x00\x01\x02\x03", &mut out);
        p.on_close(&info, 30, &mut out);
        let Some(Dissected::Exchange(ex)) = out.last() else { panic!("a connection") };
        let Detail::Tcp(t) = &ex.detail else { panic!("a connection") };
        assert_eq!((t.protocol.as_deref(), t.likely.as_deref()), (None, Some("redis (6379)")));
        assert_eq!(ex.detail.request_line(), "TCP stream (likely: redis (6379))");
    }
}
