//! Stage 7, aggregate: records → the numbers people read. `SummaryBuilder` folds records one at a
//! time (no record is kept) into per-Service, per-endpoint counts and the Service Map's edges;
//! its JSON is the `analyze --format summary` contract of DESIGN.md.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::net::IpAddr;

use podtap_shared::{MapBuilder, Record};
use serde::Serialize;

use crate::resolve::ClusterState;

/// `--format summary` output.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub services: Vec<ServiceSummary>,
    pub edges: Vec<EdgeSummary>,
    pub dns: DnsSummary,
}

#[derive(Debug, Serialize)]
pub struct ServiceSummary {
    /// `ns/name`.
    pub service: String,
    pub endpoints: Vec<EndpointSummary>,
}

/// What one backend of a Service served. Probes are counted apart, never in `requests`.
#[derive(Debug, Serialize)]
pub struct EndpointSummary {
    pub pod: Option<String>,
    pub ip: IpAddr,
    pub requests: u64,
    pub connections: u64,
    pub probe_requests: u64,
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

/// DNS exchanges (each interface that saw one counts it: merging observations comes later).
#[derive(Debug, Default, Serialize)]
pub struct DnsSummary {
    pub queries: u64,
    /// Queries that got no response.
    pub unanswered: u64,
    /// `NOERROR`, `NXDOMAIN`, … → count.
    pub by_rcode: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Served {
    requests: u64,
    probe_requests: u64,
    conns: FxHashSet<u64>,
}

/// Folds records into a `Summary`.
#[derive(Default)]
pub struct SummaryBuilder {
    map: MapBuilder,
    served: FxHashMap<IpAddr, Served>,
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
            return; // Service balance counts HTTP requests
        }
        let s = self.served.entry(r.dst.ip).or_default();
        if r.probe {
            s.probe_requests += 1;
        } else {
            s.requests += 1;
            s.conns.insert(r.conn);
        }
    }

    pub fn build(&self, cluster: &ClusterState) -> Summary {
        let services = cluster
            .service_backends()
            .map(|(service, backends)| ServiceSummary {
                service: service.to_string(),
                endpoints: backends
                    .iter()
                    .map(|b| {
                        let s = self.served.get(&b.ip);
                        EndpointSummary {
                            pod: b.pod.clone(),
                            ip: b.ip,
                            requests: s.map_or(0, |s| s.requests),
                            connections: s.map_or(0, |s| s.conns.len() as u64),
                            probe_requests: s.map_or(0, |s| s.probe_requests),
                        }
                    })
                    .collect(),
            })
            .collect();
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
