//! `Record`: one logical exchange (an HTTP request and its response, …) between two endpoints, and
//! the endpoint and path types it is made of. Field names are a contract (DESIGN.md, `jsonl`).

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::database::{RedisExchange, SqlExchange, WebSocketExchange};
use crate::headers::Headers;
use crate::kafka::KafkaExchange;

/// What an address turned out to be in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Pod,
    Service,
    Node,
    External,
    Unknown,
    /// A Kafka topic: a box on the map (`topic`), never one end of a record.
    Topic,
}

/// A name from the cluster state (pod, namespace, workload, node, Service). Shared, not copied:
/// every record of a busy pod names it, and cloning a `Name` is a reference count.
pub type Name = Arc<str>;

impl EndpointKind {
    /// The kind as JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Pod => "pod",
            EndpointKind::Service => "service",
            EndpointKind::Node => "node",
            EndpointKind::External => "external",
            EndpointKind::Unknown => "unknown",
            EndpointKind::Topic => "topic",
        }
    }
}

/// One side of an exchange: an address, and what the cluster state says it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub kind: EndpointKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Name>,
    /// The controlling workload, e.g. `Deployment/web`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Name>,
    /// Outside the viewer's namespaces: of this side only its kind, namespace and workload are
    /// shown (no name, address, port or node; the backend's `access::rule`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

impl Endpoint {
    /// An address nothing is known about yet.
    pub fn unknown(ip: IpAddr, port: u16) -> Self {
        Self {
            ip,
            port,
            kind: EndpointKind::Unknown,
            name: None,
            namespace: None,
            workload: None,
            node: None,
            hidden: false,
        }
    }

    /// `ns/name` when the endpoint is named.
    pub fn qualified_name(&self) -> Option<String> {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
            (None, Some(name)) => Some(name.to_string()),
            _ => None,
        }
    }

    /// The Service Map node this endpoint belongs to: `pod:ns/name`, `service:ns/name`,
    /// `node:name`, `external:IP`, or `ip:IP` while the address is unresolved; a hidden endpoint
    /// (outside the viewer's namespaces) is its workload's box, `workload:ns/Kind/name`, or
    /// `namespace:ns`, or `hidden:KIND` when it has no namespace either.
    pub fn map_id(&self) -> String {
        if self.hidden {
            return match (self.namespace.as_deref(), self.workload.as_deref()) {
                (Some(ns), Some(w)) => format!("workload:{ns}/{w}"),
                (Some(ns), None) => format!("namespace:{ns}"),
                (None, _) => format!("hidden:{}", self.kind.as_str()),
            };
        }
        match (self.kind, self.qualified_name()) {
            (EndpointKind::Pod, Some(n)) => format!("pod:{n}"),
            (EndpointKind::Service, Some(n)) => format!("service:{n}"),
            (EndpointKind::Node, Some(n)) => format!("node:{n}"),
            (EndpointKind::External, _) => format!("external:{}", self.ip),
            _ => format!("ip:{}", self.ip),
        }
    }

    /// A short human label: the name when known, else the address; a hidden endpoint's workload
    /// (without its kind) or namespace.
    pub fn label(&self) -> String {
        if self.hidden {
            let workload = self.workload.as_deref().map(|w| w.rsplit('/').next().unwrap_or(w));
            return workload.or(self.namespace.as_deref()).unwrap_or("outside your namespaces").to_string();
        }
        self.name.as_deref().map_or_else(|| self.ip.to_string(), str::to_string)
    }
}

/// How a request reached the pod that served it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ViaKind {
    #[serde(rename = "clusterIP")]
    ClusterIp,
    #[serde(rename = "nodePort")]
    NodePort,
    #[serde(rename = "loadBalancer")]
    LoadBalancer,
    /// Through the Service, translated before the wire: a socket-level load balancer (Cilium's or
    /// Calico's eBPF kube-proxy replacement) rewrote the ClusterIP at `connect()`, so the packets
    /// go straight to the pod; podtap knows from the client's DNS answer for the Service just
    /// before (see the backend's `correlate::socket_lb`).
    #[serde(rename = "socketLB")]
    SocketLb,
    #[serde(rename = "direct")]
    Direct,
    #[serde(rename = "unknown")]
    Unknown,
}

/// The path a request took: through which kind of Service address, and which Service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Via {
    pub kind: ViaKind,
    /// `ns/name` of the Service, when the request went through one.
    #[serde(default)]
    pub service: Option<Name>,
}

impl Via {
    pub const UNKNOWN: Via = Via { kind: ViaKind::Unknown, service: None };
}

/// An HTTP method token. On the wire a string, as ever.
pub type Method = std::borrow::Cow<'static, str>;

/// The method `token` names: the standard ones shared, any other owned.
pub fn method_of(token: &str) -> Method {
    const KNOWN: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
    match KNOWN.iter().find(|k| **k == token) {
        Some(k) => Method::Borrowed(k),
        None => Method::Owned(token.to_string()),
    }
}

/// An HTTP/1.x request and, when it was seen, its response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpExchange {
    /// The request's method: static for the methods of RFC 9110 and PATCH (`method_of`), so the
    /// dissector allocates nothing for it.
    pub method: Method,
    /// Inline up to 24 bytes (most API paths): no allocation made on the dissector's thread to
    /// be freed on the joiner's.
    pub path: compact_str::CompactString,
    /// `None` when no response was seen (capture ended, connection reset, …).
    pub status: Option<u16>,
    /// Selected request headers, lower-cased names; secrets are replaced by `[redacted]` on the node.
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// `HTTP/2` for requests carried by HTTP/2 streams; absent for HTTP/1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why the request's head was not well-formed, when a server might still have taken it
    /// (an odd character in a header name, a doubled space, a NUL): reported, not dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
    /// `uncertain` when bytes were lost on the connection and nothing proves this response
    /// answers this request (a pipelining client); absent when the pairing is sure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<String>,
}

/// A gRPC call (HTTP/2 with `content-type: application/grpc…`): which RPC, and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrpcExchange {
    /// The HTTP/2 `:path`, `/package.Service/Method`.
    pub path: String,
    /// `package.Service`.
    pub grpc_service: String,
    pub grpc_method: String,
    /// The HTTP `:status` of the response (200 for every call a gRPC server handled).
    pub status: Option<u16>,
    /// `grpc-status` from the trailers (0 = OK); `None` when the call did not finish.
    pub grpc_status: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_message: Option<String>,
    /// Selected request headers, as for HTTP; secrets redacted on the node.
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
}

/// The canonical name of a gRPC status code (grpc/doc/statuscodes.md).
pub fn grpc_status_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN_CODE")
}

/// A DNS query and, when it was seen, its response (RFC 1035 §4.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsExchange {
    /// The queried name, without the trailing dot.
    pub query: String,
    /// `A`, `AAAA`, `SRV`, … (or `TYPE123`).
    pub qtype: String,
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, …; `None` when no response was seen.
    pub rcode: Option<String>,
    /// Addresses and names in the answer section.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<String>,
}

/// A TLS handshake as seen in the clear (ClientHello and ServerHello; nothing is decrypted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsExchange {
    /// Server Name Indication from the ClientHello.
    pub sni: Option<String>,
    /// ALPN protocols: the server's choice when it answered, else what the client offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// Negotiated version (`TLS1.3`, …); `None` when no ServerHello was seen.
    pub version: Option<String>,
    /// The fatal alert (`handshake_failure`, `protocol_version`, …) the server sent instead of its
    /// hello: the handshake failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The plaintext protocol the connection began in, when TLS started after its upgrade
    /// command (`smtp`, `imap`, `pop3`, `ftp`, `ldap`, `xmpp`: STARTTLS and its kin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgraded_from: Option<String>,
}

/// How a request was carried when it was seen inside a tunnel on a node's uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    /// VXLAN (RFC 7348): Flannel, Calico VXLAN.
    Vxlan,
    /// Geneve (RFC 8926): Cilium, OVN.
    Geneve,
    /// IP in IP, either version in either (RFC 2003, RFC 4213): Calico IPIP, 6in4.
    Ipip,
    /// GRE (RFC 2784, RFC 2890).
    Gre,
}

/// The tunnel a request was seen in: its kind, the outer (node) addresses, the VXLAN or Geneve
/// network identifier, or the GRE key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    pub kind: TunnelKind,
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
}

/// How a TCP connection ended (as far as the capture saw).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcpClose {
    /// FIN both ways.
    Fin,
    /// A reset from either side.
    Rst,
    /// No packet for the idle timeout.
    Idle,
    /// A new connection took its address pair (a fresh SYN) before it was seen to close.
    Reused,
    /// Still open when the capture ended, or when the record was written.
    Open,
}

impl TcpClose {
    pub fn as_str(self) -> &'static str {
        match self {
            TcpClose::Fin => "fin",
            TcpClose::Rst => "rst",
            TcpClose::Idle => "idle",
            TcpClose::Reused => "reused",
            TcpClose::Open => "open",
        }
    }
}

/// A TCP connection (`kind: "tcp"`): one record per connection, whatever it carried. `ts` is when
/// it opened (its SYN, or the first packet seen when the capture joined mid-stream), `end_us`
/// when it closed, `request_size`/`response_size` the payload bytes each way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpConnection {
    /// Whether the opening handshake (SYN) was seen; `false` when the capture joined mid-stream.
    pub handshake: bool,
    pub close: TcpClose,
    /// SYN to the handshake's final ACK, as seen where it was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
    /// Segments that only repeated bytes already seen (retransmissions).
    pub retransmissions: u64,
    /// Holes in the byte stream the capture never saw.
    pub gaps: u64,
    /// What it carried (`http`, `http2`, `tls`, `dns`); `None` for an opaque stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Requests podtap read on it.
    pub requests: u64,
    /// For an opaque stream, what its server port usually carries (`postgres (5432)`): a guess,
    /// said to be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likely: Option<String>,
}

impl TcpConnection {
    /// A plain connection for tests: opened with a handshake, closed by FIN, carrying HTTP,
    /// `requests` requests.
    pub fn test(requests: u64) -> Self {
        TcpConnection {
            handshake: true,
            close: TcpClose::Fin,
            rtt_us: None,
            retransmissions: 0,
            gaps: 0,
            protocol: Some("http".into()),
            requests,
            likely: None,
        }
    }
}

/// What a well-known server port usually carries, for an opaque stream on it: `postgres (5432)`.
pub fn port_hint(port: u16) -> Option<String> {
    let name = match port {
        5432 => "postgres",
        6379 => "redis",
        3306 => "mysql",
        9092 => "kafka",
        11211 => "memcached",
        27017 => "mongodb",
        5672 => "amqp",
        4222 => "nats",
        2379 => "etcd",
        9042 => "cassandra",
        1433 => "mssql",
        _ => return None,
    };
    Some(format!("{name} ({port})"))
}

/// The protocol part of a record; `kind` in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Detail {
    Http(HttpExchange),
    Grpc(GrpcExchange),
    Dns(DnsExchange),
    Tls(TlsExchange),
    Tcp(TcpConnection),
    /// PostgreSQL's frontend/backend protocol v3.
    Postgres(SqlExchange),
    /// Redis' RESP2 and RESP3.
    Redis(RedisExchange),
    /// MySQL's and MariaDB's client/server protocol.
    Mysql(SqlExchange),
    /// A WebSocket connection after its upgrade: one record per connection.
    Websocket(WebSocketExchange),
    /// Kafka's protocol: any API key and version. Boxed: it is the largest detail by a third,
    /// and every record of every protocol would carry its size.
    Kafka(Box<KafkaExchange>),
}

impl Detail {
    /// What was asked, in one line: `GET /users`, `DNS A web.default.svc.cluster.local`,
    /// `TLS web.example (h2, http/1.1)`.
    pub fn request_line(&self) -> String {
        match self {
            Detail::Http(h) => format!("{} {}", h.method, h.path),
            Detail::Grpc(g) => format!("gRPC {}/{}", g.grpc_service, g.grpc_method),
            Detail::Dns(d) => format!("DNS {} {}", d.qtype, d.query),
            Detail::Tls(t) => {
                let offer = if t.alpn.is_empty() { String::new() } else { format!(" ({})", t.alpn.join(", ")) };
                let after = t.upgraded_from.as_deref().map_or(String::new(), |p| format!(" after {p} STARTTLS"));
                format!("TLS {}{offer}{after}", t.sni.as_deref().unwrap_or("(no SNI)"))
            }
            Detail::Tcp(t) => match (&t.protocol, &t.likely) {
                (Some(p), _) => format!("TCP {p}"),
                (None, Some(guess)) => format!("TCP stream (likely: {guess})"),
                (None, None) => "TCP stream".to_string(),
            },
            Detail::Postgres(q) | Detail::Mysql(q) => q.request_line(),
            Detail::Redis(r) => r.request_line(),
            Detail::Websocket(w) => w.request_line(),
            Detail::Kafka(k) => k.request_line(),
        }
    }

    /// What came back: the HTTP status, the DNS rcode, the negotiated TLS version; `None` when
    /// nothing came back.
    pub fn outcome(&self) -> Option<String> {
        match self {
            Detail::Http(h) => h.status.map(|s| s.to_string()),
            Detail::Grpc(g) => match (g.grpc_status, g.status) {
                (Some(code), _) => Some(grpc_status_name(code).to_string()),
                (None, Some(status)) => Some(status.to_string()),
                (None, None) => None,
            },
            Detail::Dns(d) => d.rcode.clone(),
            Detail::Tls(t) => t.version.clone().or_else(|| t.alert.clone()),
            Detail::Tcp(t) => Some(t.close.as_str().to_string()),
            Detail::Postgres(q) | Detail::Mysql(q) => Some(q.outcome()),
            Detail::Redis(r) => r.outcome(),
            Detail::Websocket(w) => w.outcome(),
            Detail::Kafka(k) => k.outcome(),
        }
    }
}

/// One logical exchange between two endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    /// Microseconds since the Unix epoch at the request's first byte.
    pub ts: u64,
    /// Identifies the TCP connection: equal for every request carried by one connection.
    pub conn: u64,
    pub src: Endpoint,
    /// The endpoint that answered (after #4: the pod that served it).
    pub dst: Endpoint,
    pub via: Via,
    /// A kubelet health probe (kept apart from real traffic everywhere).
    pub probe: bool,
    /// How many capture interfaces saw this exchange.
    pub observations: u32,
    /// The capture interface, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<Name>,
    /// The nodes whose agents saw it (`podtap hub`, `analyze FILE@NODE`); empty when the capture
    /// named no node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Name>,
    /// The tunnel it was seen in, when a copy was captured encapsulated (a node's uplink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Box<Tunnel>>,
    /// The load balancer or ingress that carried it, when a PROXY protocol header named the real
    /// client (who is then `src`). (Both boxed: rare, and a record is moved several times.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Box<Endpoint>>,
    /// The address the client sent it to, when kube-proxy rewrote it on the way to `dst`: the
    /// Service's ClusterIP:port, or a node's address and NodePort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addressed: Option<Box<Endpoint>>,
    /// The source the pod saw, when a source NAT (a NodePort's, masquerading) rewrote `src` on
    /// the way: the back leg's client socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat: Option<Box<Endpoint>>,
    /// Request's first byte to response's first byte; `None` without a response.
    pub latency_us: Option<u64>,
    /// Microseconds since the Unix epoch at the exchange's last byte (the response's, or the
    /// request's when nothing came back): a request is the interval `ts..=end_us`. For a `tcp`
    /// record, when the connection closed; `None` while it is open.
    #[serde(default)]
    pub end_us: Option<u64>,
    pub request_size: u64,
    pub response_size: u64,
    /// The TCP sequence number of the request's first byte (client to server), when the
    /// dissector knows it; for a `tcp` record, the opener's initial sequence number when the
    /// handshake was seen. NAT rewrites addresses and ports but never these, so they tie the
    /// observations of one request (or connection) on both sides of kube-proxy together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    #[serde(flatten)]
    pub detail: Detail,
}

impl Record {
    /// The HTTP part, when this is an HTTP exchange.
    pub fn http(&self) -> Option<&HttpExchange> {
        match &self.detail {
            Detail::Http(h) => Some(h),
            _ => None,
        }
    }

    /// The DNS part, when this is a DNS exchange.
    pub fn dns(&self) -> Option<&DnsExchange> {
        match &self.detail {
            Detail::Dns(d) => Some(d),
            _ => None,
        }
    }

    /// The gRPC part, when this is a gRPC call.
    pub fn grpc(&self) -> Option<&GrpcExchange> {
        match &self.detail {
            Detail::Grpc(g) => Some(g),
            _ => None,
        }
    }

    /// The HTTP path and status of HTTP and gRPC exchanges.
    pub fn http_path_status(&self) -> Option<(&str, Option<u16>)> {
        match &self.detail {
            Detail::Http(h) => Some((&h.path, h.status)),
            Detail::Grpc(g) => Some((&g.path, g.status)),
            _ => None,
        }
    }

    /// A failed exchange: HTTP 5xx, a gRPC call that ended with a status other than OK, a DNS
    /// server failure or refusal, a TLS handshake without a ServerHello, a SQL error, or no answer
    /// at all. (A DNS NXDOMAIN is an answer: search-list expansion produces them by design.)
    pub fn is_error(&self) -> bool {
        match &self.detail {
            Detail::Http(h) => h.status.is_none_or(|s| s >= 500),
            Detail::Grpc(g) => g.grpc_status.is_none_or(|c| c != 0),
            Detail::Dns(d) => d.rcode.as_deref().is_none_or(|r| r == "SERVFAIL" || r == "REFUSED"),
            Detail::Tls(t) => t.version.is_none(),
            Detail::Tcp(_) => false,
            // A CancelRequest is never answered: the server closes its connection.
            Detail::Postgres(q) => q.error.is_some() || (self.latency_us.is_none() && q.operation != "CANCEL"),
            // COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA get no answer by design.
            Detail::Mysql(q) => {
                q.error.is_some()
                    || (self.latency_us.is_none() && !matches!(q.operation.as_str(), "CLOSE STMT" | "SEND LONG DATA"))
            }
            // A command the client asked no reply for is not an error for having none.
            Detail::Redis(r) => r.error.is_some() || (self.latency_us.is_none() && r.reply.as_deref() != Some("none")),
            // Closed abnormally (1006 is never sent: it means no close frame came) or by an error.
            Detail::Websocket(w) => w.close_code.is_some_and(|c| c >= 1002 && c != 1005),
            // A Produce with acks=0 is never answered, by design.
            Detail::Kafka(k) => k.error.is_some() || (self.latency_us.is_none() && !k.no_response),
        }
    }

    /// A request of any protocol; `false` for a connection (`kind: "tcp"`).
    pub fn is_request(&self) -> bool {
        !matches!(self.detail, Detail::Tcp(_))
    }

    /// The TCP part, when this record is a connection.
    pub fn tcp(&self) -> Option<&TcpConnection> {
        match &self.detail {
            Detail::Tcp(t) => Some(t),
            _ => None,
        }
    }

    /// A database's or broker's operation: the SQL command tag, the Redis command, the Kafka API.
    pub fn operation(&self) -> Option<&str> {
        match &self.detail {
            Detail::Postgres(q) | Detail::Mysql(q) => Some(&q.operation),
            Detail::Redis(x) => Some(&x.command),
            Detail::Kafka(k) => Some(&k.operation),
            _ => None,
        }
    }

    /// The SQL part of a PostgreSQL or MySQL record.
    pub fn sql(&self) -> Option<&SqlExchange> {
        match &self.detail {
            Detail::Postgres(q) | Detail::Mysql(q) => Some(q),
            _ => None,
        }
    }

    pub fn redis(&self) -> Option<&RedisExchange> {
        match &self.detail {
            Detail::Redis(x) => Some(x),
            _ => None,
        }
    }

    pub fn kafka(&self) -> Option<&KafkaExchange> {
        match &self.detail {
            Detail::Kafka(k) => Some(k),
            _ => None,
        }
    }

    /// The end of the interval the record covers: `end_us`, else the response's first byte, else
    /// the start.
    pub fn end(&self) -> u64 {
        self.end_us.unwrap_or(self.ts + self.latency_us.unwrap_or(0)).max(self.ts)
    }

    /// Where a record stands in a list of requests: by request time, then id. Records come out in
    /// the order their requests finished (a merged request as soon as both sides are in, a lone
    /// observation a merge window later), so lists sort by this instead.
    pub fn time_order(&self) -> (u64, u64) {
        (self.ts, self.id)
    }

    /// A plain record for tests: `GET /` from 10.0.0.1:40000 to 10.0.0.2:80, answered 200.
    pub fn test() -> Self {
        Record {
            id: 1,
            ts: 1_700_000_000_000_000,
            conn: 1,
            src: Endpoint::unknown([10, 0, 0, 1].into(), 40000),
            dst: Endpoint::unknown([10, 0, 0, 2].into(), 80),
            via: Via::UNKNOWN,
            probe: false,
            observations: 1,
            interface: None,
            nodes: Vec::new(),
            tunnel: None,
            proxy: None,
            addressed: None,
            snat: None,
            latency_us: Some(1500),
            end_us: Some(1_700_000_000_001_600),
            request_size: 78,
            response_size: 120,
            seq: None,
            detail: Detail::Http(HttpExchange {
                method: "GET".into(),
                path: "/".into(),
                status: Some(200),
                headers: Headers::new(),
                ..HttpExchange::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_fields_sit_at_the_top_level_of_the_json() {
        let json = serde_json::to_value(Record::test()).unwrap();
        assert_eq!(json["kind"], "http");
        assert_eq!(json["method"], "GET");
        assert_eq!(json["status"], 200);
        assert_eq!(json["via"]["kind"], "unknown");
        assert_eq!(json["src"]["ip"], "10.0.0.1");
        assert_eq!(json["src"]["kind"], "unknown");
    }

    #[test]
    fn standard_methods_are_shared_and_any_other_token_is_kept_as_sent() {
        assert!(matches!(method_of("GET"), Method::Borrowed("GET")));
        assert!(matches!(method_of("PROPFIND"), Method::Owned(m) if m == "PROPFIND"));
        // Case matters in a method token (RFC 9110 9.1): `get` is not `GET`, and stays as sent.
        assert!(matches!(method_of("get"), Method::Owned(m) if m == "get"));
        let http = HttpExchange { method: method_of("PROPFIND"), ..HttpExchange::default() };
        let back: HttpExchange = serde_json::from_str(&serde_json::to_string(&http).unwrap()).unwrap();
        assert_eq!(back.method, "PROPFIND");
    }

    #[test]
    fn dns_fields_sit_at_the_top_level_too() {
        let mut r = Record::test();
        r.detail = Detail::Dns(DnsExchange {
            query: "web.default.svc.cluster.local".into(),
            qtype: "A".into(),
            rcode: Some("NOERROR".into()),
            answers: vec!["10.96.12.34".into()],
        });
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (json["kind"].as_str(), json["query"].as_str(), json["qtype"].as_str()),
            (Some("dns"), Some("web.default.svc.cluster.local"), Some("A"))
        );
        assert_eq!(json["rcode"], "NOERROR");
        assert!(!r.is_error());
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn request_lines_and_outcomes_per_protocol() {
        let r = Record::test();
        assert_eq!((r.detail.request_line(), r.detail.outcome()), ("GET /".into(), Some("200".into())));
        let dns = Detail::Dns(DnsExchange { query: "web".into(), qtype: "AAAA".into(), rcode: None, answers: vec![] });
        assert_eq!((dns.request_line(), dns.outcome()), ("DNS AAAA web".into(), None));
        let tls = Detail::Tls(TlsExchange {
            sni: Some("api".into()),
            alpn: vec!["h2".into()],
            version: Some("TLS1.3".into()),
            alert: None,
            upgraded_from: None,
        });
        assert_eq!((tls.request_line(), tls.outcome()), ("TLS api (h2)".into(), Some("TLS1.3".into())));
        let upgraded = Detail::Tls(TlsExchange {
            sni: Some("mail.example".into()),
            upgraded_from: Some("smtp".into()),
            ..TlsExchange::default()
        });
        assert_eq!(upgraded.request_line(), "TLS mail.example after smtp STARTTLS");
    }

    #[test]
    fn a_record_survives_a_round_trip() {
        let mut r = Record::test();
        r.via = Via { kind: ViaKind::ClusterIp, service: Some("default/web".into()) };
        let back: Record = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn map_ids_follow_the_ui_contract() {
        let mut e = Endpoint::unknown([10, 1, 2, 3].into(), 80);
        assert_eq!(e.map_id(), "ip:10.1.2.3");
        e.kind = EndpointKind::External;
        assert_eq!(e.map_id(), "external:10.1.2.3");
        e.kind = EndpointKind::Pod;
        e.name = Some("web-1".into());
        e.namespace = Some("default".into());
        assert_eq!(e.map_id(), "pod:default/web-1");
    }
}
