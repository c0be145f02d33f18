//! The Service Map: nodes (pods, services, nodes, external peers) and edges with request,
//! connection, error and byte counts and latency percentiles. `MapBuilder` folds records into it;
//! it is exact (connections are counted as distinct ids, not estimated).

use std::collections::BTreeMap;

use std::net::IpAddr;

use rustc_hash::{FxHashMap, FxHashSet};

use serde::{Deserialize, Serialize};

use crate::{EndpointKind, Record};

/// A box on the map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapNode {
    /// `pod:ns/name`, `service:ns/name`, `node:name`, `external:IP` or `ip:IP`.
    pub id: String,
    pub kind: EndpointKind,
    pub label: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub workload: Option<String>,
}

/// An arrow on the map: traffic from `source` to `target`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapEdge {
    pub source: String,
    pub target: String,
    pub requests: u64,
    pub connections: u64,
    pub errors: u64,
    pub probe_requests: u64,
    pub bytes: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The whole map, nodes and edges sorted by id for stable output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceMap {
    pub nodes: Vec<MapNode>,
    pub edges: Vec<MapEdge>,
}

#[derive(Default)]
struct EdgeAcc {
    source: String,
    target: String,
    requests: u64,
    errors: u64,
    probe_requests: u64,
    bytes: u64,
    conns: FxHashSet<u64>,
    latencies_us: Vec<u64>,
}

/// Who an endpoint is, as far as the map is concerned: compared on every cache hit, so an
/// address that changes hands (a new pod on an old IP) never inherits the old box.
#[derive(Clone, PartialEq, Eq)]
struct Identity {
    kind: EndpointKind,
    name: Option<crate::Name>,
    namespace: Option<crate::Name>,
}

impl Identity {
    fn of(e: &crate::Endpoint) -> Self {
        Self { kind: e.kind, name: e.name.clone(), namespace: e.namespace.clone() }
    }

    fn is(&self, e: &crate::Endpoint) -> bool {
        self.kind == e.kind && self.name == e.name && self.namespace == e.namespace
    }
}

/// Folds records into a map. Latencies are kept exactly (one `u64` per request) so percentiles
/// are exact; retention bounds how many records reach a builder. The edge of an address pair is
/// found once and then reused (formatting node ids per record was the costliest part).
#[derive(Default)]
pub struct MapBuilder {
    nodes: BTreeMap<String, MapNode>,
    edge_index: BTreeMap<(String, String), usize>,
    edges: Vec<EdgeAcc>,
    by_address: FxHashMap<AddressKey, (Identity, Identity, Path)>,
}

/// (source, destination, port, the Service it went through): what a record's edges depend on.
type AddressKey = (IpAddr, IpAddr, u16, Option<crate::Name>);

/// The edges one request is counted on: source → destination, or, through a Service, source →
/// Service and Service → the pod that served it.
#[derive(Clone, Copy)]
enum Path {
    Direct(usize),
    Through(usize, usize),
}

impl MapBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one record on the edge from its source to its destination — or, when it went
    /// through a Service to a pod, on the edges source → Service and Service → pod, so the map
    /// shows both who asked the Service and which pod really answered.
    pub fn add(&mut self, r: &Record) {
        let service = r.via.service.clone().filter(|_| r.dst.kind == EndpointKind::Pod);
        let key = (r.src.ip, r.dst.ip, r.dst.port, service);
        let path = match self.by_address.get(&key) {
            Some((s, d, p)) if s.is(&r.src) && d.is(&r.dst) => *p,
            _ => {
                let p = self.path_of(r, key.3.as_deref());
                self.by_address.insert(key, (Identity::of(&r.src), Identity::of(&r.dst), p));
                p
            }
        };
        match path {
            Path::Direct(e) => self.count(e, r),
            Path::Through(a, b) => {
                self.count(a, r);
                self.count(b, r);
            }
        }
    }

    fn count(&mut self, edge: usize, r: &Record) {
        let e = &mut self.edges[edge];
        e.requests += 1;
        e.errors += u64::from(r.is_error());
        e.probe_requests += u64::from(r.probe);
        e.bytes += r.request_size + r.response_size;
        e.conns.insert(r.conn);
        if let Some(l) = r.latency_us {
            e.latencies_us.push(l);
        }
    }

    fn path_of(&mut self, r: &Record, service: Option<&str>) -> Path {
        let source = self.node(&r.src);
        let target = self.node(&r.dst);
        match service {
            None => Path::Direct(self.edge(source, target)),
            Some(qualified) => {
                let (namespace, name) = qualified.split_once('/').unwrap_or(("", qualified));
                let id = format!("service:{qualified}");
                self.nodes.entry(id.clone()).or_insert_with(|| MapNode {
                    id: id.clone(),
                    kind: EndpointKind::Service,
                    label: name.to_string(),
                    namespace: Some(namespace.to_string()).filter(|n| !n.is_empty()),
                    workload: None,
                });
                Path::Through(self.edge(source, id.clone()), self.edge(id, target))
            }
        }
    }

    fn edge(&mut self, source: String, target: String) -> usize {
        let next = self.edges.len();
        let i = *self.edge_index.entry((source.clone(), target.clone())).or_insert(next);
        if i == next {
            self.edges.push(EdgeAcc { source, target, ..EdgeAcc::default() });
        }
        i
    }

    fn node(&mut self, ep: &crate::Endpoint) -> String {
        let id = ep.map_id();
        self.nodes.entry(id.clone()).or_insert_with(|| MapNode {
            id: id.clone(),
            kind: ep.kind,
            label: ep.label(),
            namespace: ep.namespace.as_deref().map(str::to_string),
            workload: ep.workload.as_deref().map(str::to_string),
        });
        id
    }

    /// The map as it stands, edges sorted by source and target.
    pub fn build(&self) -> ServiceMap {
        let edges = self
            .edge_index
            .values()
            .map(|&i| {
                let e = &self.edges[i];
                let mut lat = e.latencies_us.clone();
                lat.sort_unstable();
                MapEdge {
                    source: e.source.clone(),
                    target: e.target.clone(),
                    requests: e.requests,
                    connections: e.conns.len() as u64,
                    errors: e.errors,
                    probe_requests: e.probe_requests,
                    bytes: e.bytes,
                    p50_ms: percentile_ms(&lat, 50.0),
                    p95_ms: percentile_ms(&lat, 95.0),
                    p99_ms: percentile_ms(&lat, 99.0),
                }
            })
            .collect();
        ServiceMap { nodes: self.nodes.values().cloned().collect(), edges }
    }
}

/// Nearest-rank percentile of sorted microsecond values, in milliseconds.
fn percentile_ms(sorted_us: &[u64], p: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil().max(1.0) as usize;
    Some(sorted_us[rank - 1] as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Detail, EndpointKind, Record};

    fn rec(conn: u64, status: Option<u16>, latency_us: u64) -> Record {
        let mut r = Record::test();
        r.conn = conn;
        r.latency_us = Some(latency_us);
        let Detail::Http(h) = &mut r.detail else { unreachable!("Record::test is HTTP") };
        h.status = status;
        r
    }

    #[test]
    fn counts_requests_distinct_connections_and_errors() {
        let mut b = MapBuilder::new();
        b.add(&rec(1, Some(200), 1000));
        b.add(&rec(1, Some(503), 2000));
        b.add(&rec(2, None, 3000));
        let map = b.build();
        assert_eq!(map.nodes.len(), 2);
        let e = &map.edges[0];
        assert_eq!((e.source.as_str(), e.target.as_str()), ("ip:10.0.0.1", "ip:10.0.0.2"));
        assert_eq!((e.requests, e.connections, e.errors), (3, 2, 2));
        assert_eq!(e.p50_ms, Some(2.0));
        assert_eq!(e.p99_ms, Some(3.0));
    }

    #[test]
    fn an_address_that_changes_hands_gets_its_own_box() {
        let mut b = MapBuilder::new();
        let mut old = rec(1, Some(200), 1);
        old.dst.kind = EndpointKind::Pod;
        old.dst.name = Some("old".into());
        let mut new = old.clone();
        new.dst.name = Some("new".into());
        b.add(&old);
        b.add(&new);
        b.add(&old);
        let map = b.build();
        let counts: Vec<_> = map.edges.iter().map(|e| (e.target.as_str(), e.requests)).collect();
        assert_eq!(counts, vec![("pod:new", 1), ("pod:old", 2)]);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), Some(50.0));
        assert_eq!(percentile_ms(&v, 95.0), Some(95.0));
        assert_eq!(percentile_ms(&v, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
    }

    #[test]
    fn a_request_through_a_service_counts_on_the_way_in_and_on_the_way_to_its_pod() {
        let mut b = MapBuilder::new();
        for (conn, pod) in [(1, "web-1"), (1, "web-1"), (2, "web-2")] {
            let mut r = rec(conn, Some(200), 1000);
            r.src.kind = EndpointKind::Pod;
            r.src.name = Some("client".into());
            r.src.namespace = Some("default".into());
            r.dst.kind = EndpointKind::Pod;
            r.dst.name = Some(pod.into());
            r.dst.namespace = Some("default".into());
            r.dst.ip = if pod == "web-1" { [10, 0, 0, 11].into() } else { [10, 0, 0, 12].into() };
            r.via = crate::Via { kind: crate::ViaKind::ClusterIp, service: Some("default/web".into()) };
            b.add(&r);
        }
        let map = b.build();
        let edge = |s: &str, t: &str| {
            map.edges.iter().find(|e| e.source == s && e.target == t).map(|e| (e.requests, e.connections))
        };
        assert_eq!(edge("pod:default/client", "service:default/web"), Some((3, 2)));
        assert_eq!(edge("service:default/web", "pod:default/web-1"), Some((2, 1)));
        assert_eq!(edge("service:default/web", "pod:default/web-2"), Some((1, 1)));
        assert_eq!(map.edges.len(), 3);
        let svc = map.nodes.iter().find(|n| n.id == "service:default/web").unwrap();
        assert_eq!(
            (svc.kind, svc.label.as_str(), svc.namespace.as_deref()),
            (EndpointKind::Service, "web", Some("default"))
        );
    }
}
