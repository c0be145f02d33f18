//! Stage 4, dissect: ordered byte streams → application exchanges. One file per protocol, each a
//! `ConnHandler` chosen by content. Secrets are redacted here, on the node, before anything leaves.

use std::net::SocketAddr;

use crate::reassemble::ConnInfo;

use podtap_shared::{Detail, DnsExchange, HttpExchange, Tunnel};

pub mod any;
#[cfg(test)]
pub mod conversation;
pub mod dns;
pub mod dns_tcp;
pub mod http1;
pub mod http2;
pub mod kafka;
pub mod mysql;
pub mod postgres;
pub mod proxy;
pub mod redact;
pub mod redis;
pub mod sql;
pub mod starttls;
pub mod tls;
pub mod websocket;

/// A request and its response (when seen), of any protocol. It is what a node's agent sends the
/// hub (`ingest::wire`): the addresses as captured, no names.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exchange {
    /// The connection (TCP) or flow (UDP) id.
    pub conn: u64,
    /// Index of the capture interface that saw it first.
    pub interface: u32,
    /// How many capture interfaces carried copies of it (unrewritten: same addresses).
    pub points: u8,
    /// The tunnel a copy of it was captured in. Boxed, as `proxied`: both are rare, and every
    /// exchange crosses from a shard's thread to the joiner's, where its size is read cold.
    pub tunnel: Option<Box<Tunnel>>,
    /// The real client, when a PROXY protocol header before the request named one (`client` is
    /// then the load balancer that sent it).
    pub proxied: Option<Box<SocketAddr>>,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The request's first byte.
    pub ts_us: u64,
    /// The response's first byte, when there was a response.
    pub response_ts_us: Option<u64>,
    /// The exchange's last byte (the segment that completed it), once known.
    pub end_us: Option<u64>,
    pub request_size: u64,
    pub response_size: u64,
    pub detail: Detail,
    /// The TCP sequence number of the request's first byte, where the dissector knows it: the
    /// same on both sides of kube-proxy's rewrite, so observations of one request pair exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// When its connection was opened (its SYN, or its first packet seen): the pods at its ends
    /// are the ones that held their addresses then, since no address changes hands while a
    /// connection lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_us: Option<u64>,
}

/// When a request and its response began, and how many bytes each took.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub ts_us: u64,
    pub response_ts_us: Option<u64>,
    pub request_size: u64,
    pub response_size: u64,
}

impl Exchange {
    /// An exchange between `client` and `server` on the TCP connection `info`: its id, where it
    /// was seen and how (interfaces, tunnel) come from the connection.
    pub fn on(info: &ConnInfo, (client, server): (SocketAddr, SocketAddr), t: Timing, detail: Detail) -> Self {
        Exchange {
            conn: info.id,
            opened_us: Some(info.life.opened_us),
            interface: info.interface,
            points: info.points,
            tunnel: info.tunnel.map(Box::new),
            proxied: None,
            client,
            server,
            ts_us: t.ts_us,
            response_ts_us: t.response_ts_us,
            end_us: None,
            request_size: t.request_size,
            response_size: t.response_size,
            detail,
            seq: None,
        }
    }

    /// An exchange of `detail` between two made-up sockets, for tests.
    #[cfg(test)]
    pub fn test(detail: Detail) -> Self {
        Exchange {
            conn: 1,
            opened_us: None,
            interface: 0,
            points: 1,
            tunnel: None,
            proxied: None,
            client: "10.0.0.1:40000".parse().expect("an address"),
            server: "10.0.0.2:80".parse().expect("an address"),
            ts_us: 1_800_000_000_000_000,
            response_ts_us: None,
            end_us: None,
            request_size: 0,
            response_size: 0,
            detail,
            seq: None,
        }
    }

    /// The DNS part, when this is a DNS exchange.
    pub fn dns(&self) -> Option<&DnsExchange> {
        match &self.detail {
            Detail::Dns(d) => Some(d),
            _ => None,
        }
    }

    /// The HTTP part, when this is an HTTP exchange.
    pub fn http(&self) -> Option<&HttpExchange> {
        match &self.detail {
            Detail::Http(h) => Some(h),
            _ => None,
        }
    }
}

/// What dissectors hand downstream: exchanges, and notes of what could not be understood (counted
/// by the engine so a user sees how sure the numbers are).
#[derive(Clone, Debug, PartialEq)]
pub enum Dissected {
    Exchange(Box<Exchange>),
    /// A response with no request waiting for it.
    UnmatchedResponse,
    /// A response on a connection whose request direction was never seen at all: the capture
    /// joined after the request, or saw a half-rewritten copy (a bridge between kube-proxy's
    /// SNAT and DNAT reversal) that only ever carries answers.
    OneWay,
    /// Bytes that did not parse; the parser skipped to the next message start.
    Resync,
    /// A direction whose first bytes are not this protocol.
    NotThisProtocol,
    /// An exchange another hub merges (it went to another bus partition): only what it teaches
    /// about names (a DNS answer, a TLS server name) is taken here. Dissectors never make one.
    Learn(Box<Exchange>),
}
