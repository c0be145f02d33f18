//! Socket-level load balancing: Cilium's and Calico's eBPF kube-proxy replacements translate a
//! ClusterIP at `connect()`, so no packet ever carries it — on the wire a call through a Service
//! looks like a direct call to a pod. What still tells them apart is what the client asked for:
//!
//! 1. an HTTP `Host` or gRPC `:authority` that names the Service (`web`, `web.default`,
//!    `web.default.svc…`) or its ClusterIP: through the Service; one that is an address that is
//!    no Service's (the pod's own): direct;
//! 2. otherwise (no such header: TLS, other TCP, or a name that is neither), the DNS answer the
//!    client was given just before: a call from a pod to a backend of a Service whose ClusterIP
//!    that pod was given within `REMEMBER_US` goes through that Service.
//!
//! Through the Service is `via: socketLB` with the Service; a connection's record follows what its
//! requests said. A pod that resolved a Service and then calls one of its pods by address with
//! neither header is counted through the Service: the wire cannot tell.
//!
//! Bounded: at most `PER_CLIENT` answers per client address, and answers older than the window are
//! dropped whenever the table outgrows `MAX_CLIENTS`.

use std::net::IpAddr;

use podtap_shared::{Detail, EndpointKind, Name, Record, Via, ViaKind};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::resolve::ClusterState;

/// How long after a DNS answer a connection to one of the Service's pods counts as made through
/// it (a client connects right after resolving; a pool keeps the connection, and its later
/// requests ride on it).
pub const REMEMBER_US: u64 = 30_000_000;
/// A call may seem to come a little before the answer that preceded it: two nodes' clocks, as the
/// hub estimates them, differ by up to a few milliseconds, and a client connects within a
/// millisecond of its answer.
const CLOCK_SLACK_US: u64 = 100_000;
const PER_CLIENT: usize = 8;
const MAX_CLIENTS: usize = 65_536;
/// Connections whose requests' verdict is kept for their `tcp` record (dropped all at once past it).
const MAX_CONNECTIONS: usize = 65_536;

/// What a request's own header says it was addressed to.
enum Addressed {
    Service(Name),
    /// An address that is no Service's.
    Address,
    Unsaid,
}

/// The `Host` (HTTP) or `:authority` (gRPC) of a request, as a Service or an address.
fn addressed(r: &Record, cluster: &ClusterState) -> Addressed {
    let headers = match &r.detail {
        Detail::Http(h) => &h.headers,
        Detail::Grpc(g) => &g.headers,
        _ => return Addressed::Unsaid,
    };
    let Some(host) = headers.get("host").or_else(|| headers.get(":authority")) else { return Addressed::Unsaid };
    let host = host.trim();
    // Without the port: `name:80`, `10.0.0.1:80`, `[fd00::1]:80`.
    let bare = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        },
    };
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return match cluster.service_of_cluster_ip(ip) {
            Some(service) => Addressed::Service(service.clone()),
            None => Addressed::Address,
        };
    }
    let labels: Vec<&str> = bare.trim_end_matches('.').split('.').collect();
    let namespace = match labels.as_slice() {
        [_] => r.src.namespace.as_deref(),
        [_, ns] => Some(*ns),
        [_, ns, "svc", ..] => Some(*ns),
        _ => None,
    };
    match namespace {
        Some(ns) => Addressed::Service(format!("{ns}/{}", labels[0].to_ascii_lowercase()).into()),
        None => Addressed::Unsaid,
    }
}

#[derive(Default)]
pub struct SocketLb {
    /// What the requests of a connection said (`Some`: through that Service; `None`: direct),
    /// for its `tcp` record when it closes.
    connections: FxHashMap<u64, Option<Name>>,
    /// A client pod's address → (Service `ns/name`, the first and the last answer of a run of DNS
    /// answers that gave it its ClusterIP, each within `REMEMBER_US` of the one before), newest
    /// last. A run, not the last answer: records leave the merge a second after their request,
    /// when the client may have resolved the name again for its next call.
    resolved: FxHashMap<IpAddr, SmallVec<[Run; 2]>>,
}

/// A Service, and the first and last answer (µs) of a run of DNS answers that named its ClusterIP.
type Run = (Name, u64, u64);

impl SocketLb {
    /// Learns from a DNS answer a pod was given: which Services' ClusterIPs it now knows.
    pub fn learn(&mut self, r: &Record, cluster: &ClusterState) {
        let Detail::Dns(d) = &r.detail else { return };
        if r.src.kind != EndpointKind::Pod || d.rcode.as_deref() != Some("NOERROR") {
            return;
        }
        for ip in d.answers.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
            let Some(service) = cluster.service_of_cluster_ip(ip) else { continue };
            if self.resolved.len() >= MAX_CLIENTS && !self.resolved.contains_key(&r.src.ip) {
                let now = r.ts;
                self.resolved.retain(|_, v| v.last().is_some_and(|(_, _, at)| now.saturating_sub(*at) <= REMEMBER_US));
            }
            let answers = self.resolved.entry(r.src.ip).or_default();
            let mut first = r.ts;
            if let Some(i) = answers.iter().position(|(s, _, _)| s == service) {
                let (_, from, last) = answers.remove(i);
                if r.ts.saturating_sub(last) <= REMEMBER_US {
                    first = from.min(r.ts);
                }
            }
            if answers.len() == PER_CLIENT {
                answers.remove(0);
            }
            answers.push((service.clone(), first, r.ts.max(first)));
        }
    }

    /// A pod-to-pod call that no Service address carried, to a backend of a Service the client
    /// asked for by name or had just resolved: through that Service, translated before the wire.
    pub fn apply(&mut self, r: &mut Record, cluster: &ClusterState) {
        if r.probe
            || r.src.kind != EndpointKind::Pod
            || r.dst.kind != EndpointKind::Pod
            || !matches!(r.via.kind, ViaKind::Direct | ViaKind::Unknown)
        {
            return;
        }
        let through = match (&r.detail, addressed(r, cluster)) {
            (Detail::Tcp(_), _) => match self.connections.remove(&r.conn) {
                Some(said) => said,
                None => self.resolved_for(r, cluster),
            },
            (_, Addressed::Service(s)) => cluster.was_backend(&s, r.dst.ip, r.ts).then_some(s),
            (_, Addressed::Address) => None,
            (_, Addressed::Unsaid) => self.resolved_for(r, cluster),
        };
        if r.is_request() {
            if self.connections.len() >= MAX_CONNECTIONS {
                self.connections.clear();
            }
            self.connections.insert(r.conn, through.clone());
        }
        if let Some(service) = through {
            r.via = Via { kind: ViaKind::SocketLb, service: Some(service) };
        }
    }

    /// The Service whose ClusterIP the client was given by DNS just before, if `r` reached one
    /// of its backends.
    fn resolved_for(&self, r: &Record, cluster: &ClusterState) -> Option<Name> {
        let answers = self.resolved.get(&r.src.ip)?;
        let service = answers.iter().rev().find(|(service, first, last)| {
            r.ts + CLOCK_SLACK_US >= *first
                && r.ts <= last + REMEMBER_US
                && cluster.was_backend(service, r.dst.ip, r.ts)
        });
        service.map(|(service, _, _)| service.clone())
    }
}

#[cfg(test)]
mod tests;
