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
            })
            .collect();
        let dns = DnsSummary {
            queries: self.dns.queries,
            unanswered: self.dns.unanswered,
            by_rcode: self.dns.by_rcode.clone(),
        };
        Summary { services, edges, dns }
    }
}
