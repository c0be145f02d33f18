//! Socket-level load balancing: Cilium's and Calico's eBPF kube-proxy replacements translate a
//! ClusterIP at `connect()`, so no packet ever carries it — on the wire a call through a Service
//! looks like a direct call to a pod. What still tells them apart is what the client did just
//! before: it asked DNS for the Service's name and got its ClusterIP. A call from a pod to a
//! backend of a Service whose ClusterIP that pod was given by DNS within `REMEMBER_US` is counted
//! for that Service, `via: socketLB`; a call to a pod's address nobody resolved stays `direct`.
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

#[derive(Default)]
pub struct SocketLb {
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
    /// had just resolved: through that Service, translated before the wire.
    pub fn apply(&self, r: &mut Record, cluster: &ClusterState) {
        if r.probe
            || r.src.kind != EndpointKind::Pod
            || r.dst.kind != EndpointKind::Pod
            || !matches!(r.via.kind, ViaKind::Direct | ViaKind::Unknown)
        {
            return;
        }
        let Some(answers) = self.resolved.get(&r.src.ip) else { return };
        let service = answers.iter().rev().find(|(service, first, last)| {
            r.ts + CLOCK_SLACK_US >= *first && r.ts <= last + REMEMBER_US && cluster.is_backend(service, r.dst.ip)
        });
        if let Some((service, _, _)) = service {
            r.via = Via { kind: ViaKind::SocketLb, service: Some(service.clone()) };
        }
    }
}

#[cfg(test)]
mod tests;
