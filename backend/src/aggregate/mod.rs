//! Stage 7, aggregate: records → the numbers people read. `SummaryBuilder` folds records one at a
//! time (no record is kept) into per-Service, per-endpoint counts and the Service Map's edges;
//! its JSON is the `analyze --format summary` contract of DESIGN.md.

use std::collections::BTreeMap;

use podtap_shared::{MapBuilder, Record};
use serde::Serialize;

use crate::resolve::ClusterState;

pub mod balance;

use balance::{Balance, BalanceBuilder};

/// `--format summary` output.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Replica balance of every Service.
    pub services: Vec<Balance>,
    pub edges: Vec<EdgeSummary>,
    pub dns: DnsSummary,
    /// TCP connections (`kind: "tcp"` records), each once.
    pub tcp: TcpSummary,
}

/// TCP connections: how many, how they ended, what they carried, what was lost.
#[derive(Debug, Default, Serialize)]
pub struct TcpSummary {
    pub connections: u64,
    /// `fin`, `rst`, `idle`, `reused`, `open` → count.
    pub by_close: BTreeMap<String, u64>,
    /// `http`, `http2`, `grpc`, `tls`, `dns`, or `opaque` → count.
    pub by_protocol: BTreeMap<String, u64>,
    /// Connections whose opening handshake was not captured (joined mid-stream).
    pub without_handshake: u64,
    pub retransmissions: u64,
    pub gaps: u64,
}

#[derive(Debug, Serialize)]
pub struct EdgeSummary {
    pub source: String,
    pub target: String,
    pub requests: u64,
    pub connections: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// On an edge into or out of a Kafka topic: the topic (its requests are on the edges to the
    /// broker too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// DNS exchanges, each query once.
#[derive(Debug, Default, Serialize)]
pub struct DnsSummary {
    pub queries: u64,
    /// Queries that got no response.
    pub unanswered: u64,
    /// `NOERROR`, `NXDOMAIN`, … → count.
    pub by_rcode: BTreeMap<String, u64>,
}

/// Folds records into a `Summary`.
#[derive(Default)]
pub struct SummaryBuilder {
    map: MapBuilder,
    balance: BalanceBuilder,
    dns: DnsSummary,
    tcp: TcpSummary,
}

impl SummaryBuilder {
    pub fn add(&mut self, r: &Record) {
        self.map.add(r);
        if let Some(d) = r.dns() {
            self.dns.queries += 1;
            match &d.rcode {
                Some(code) => *self.dns.by_rcode.entry(code.clone()).or_default() += 1,
                None => self.dns.unanswered += 1,
            }
        }
        if let Some(t) = r.tcp() {
            self.tcp.connections += 1;
            *self.tcp.by_close.entry(t.close.as_str().to_string()).or_default() += 1;
            *self.tcp.by_protocol.entry(t.protocol.clone().unwrap_or_else(|| "opaque".into())).or_default() += 1;
            self.tcp.without_handshake += u64::from(!t.handshake);
            self.tcp.retransmissions += t.retransmissions;
            self.tcp.gaps += t.gaps;
        }
        self.balance.add(r);
    }

    pub fn build(&self, cluster: &ClusterState) -> Summary {
        let services = self.balance.build(cluster);
        let edges = self
            .map
            .build()
            .edges
            .into_iter()
            .map(|e| EdgeSummary {
                source: e.source,
                target: e.target,
                requests: e.requests,
                connections: e.connections,
                errors: e.errors,
                p50_ms: e.p50_ms,
                p95_ms: e.p95_ms,
                p99_ms: e.p99_ms,
                topic: e.topic,
            })
            .collect();
        let dns = DnsSummary {
            queries: self.dns.queries,
            unanswered: self.dns.unanswered,
            by_rcode: self.dns.by_rcode.clone(),
        };
        let tcp =
            TcpSummary { by_close: self.tcp.by_close.clone(), by_protocol: self.tcp.by_protocol.clone(), ..self.tcp };
        Summary { services, edges, dns, tcp }
    }
}
