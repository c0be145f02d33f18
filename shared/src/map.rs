//! The Service Map: nodes (pods, services, nodes, external peers) and edges with request,
//! connection, error and byte counts and latency percentiles. `MapBuilder` folds records into it;
//! counts are exact (connections are distinct ids, not estimated) and percentiles come from a
//! mergeable histogram with 1 % relative accuracy.

use std::collections::BTreeMap;

use std::net::IpAddr;

use rustc_hash::{FxHashMap, FxHashSet};

use serde::{Deserialize, Serialize};

use crate::{EndpointKind, Histogram, Record};

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
    /// The Kubernetes node a pod runs on (the map marks pods whose node's capture is incomplete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Outside the viewer's namespaces: drawn locked, as its namespace and workload only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
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
    /// DNS queries among `requests` (the map can leave them out and say by how many).
    #[serde(default)]
    pub dns_requests: u64,
    /// What was spoken on the edge: `http`, `grpc`, `dns`, `tls`, `tcp` (nothing understood).
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Connections with holes the capture never saw (requests on them may be missing).
    #[serde(default)]
    pub gapped_connections: u64,
    /// On an edge into or out of a Kafka topic's box (`topic:…`): the topic. Such an edge counts
    /// again requests the edges to the broker count (`crate::topic`); totals leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

impl MapEdge {
    /// Whether the edge's requests are counted on other edges already: the second leg of a
    /// request through a Service, or an edge into or out of a topic. A map's totals are the sum
    /// of the other edges' numbers.
    pub fn counted_elsewhere(&self) -> bool {
        self.source.starts_with("service:") || self.topic.is_some()
    }
}

/// One operation's share of an edge into a database or a broker (`GET /api/v1/edge`): the SQL
/// command tag, the Redis command or the Kafka API, with its requests, errors and percentiles.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationStats {
    pub operation: String,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Names of the protocols in `EdgeStats::protocols`' bits, in bit order.
pub const PROTOCOLS: [&str; 10] =
    ["http", "grpc", "dns", "tls", "tcp", "postgres", "redis", "mysql", "websocket", "kafka"];

/// The whole map, nodes and edges sorted by id for stable output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceMap {
    pub nodes: Vec<MapNode>,
    pub edges: Vec<MapEdge>,
}

/// The numbers of one edge, mergeable: the stats of a window are the merge of its steps' stats.
/// Connections are kept as distinct ids, so they are exact however the window is cut.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EdgeStats {
    pub requests: u64,
    pub errors: u64,
    pub probe_requests: u64,
    pub bytes: u64,
    pub conns: FxHashSet<u64>,
    pub latency: Histogram,
    pub dns_requests: u64,
    /// Bits of `PROTOCOLS` seen.
    pub protocols: u16,
    pub gapped_connections: u64,
}

impl EdgeStats {
    /// Counts one record: a request, or a connection (`kind: "tcp"`), which counts as a
    /// connection (and, when nothing on it was understood, with its bytes) but not as a request.
    pub fn add(&mut self, r: &Record) {
        self.conns.insert(r.conn);
        if let Some(t) = r.tcp() {
            self.gapped_connections += u64::from(t.gaps > 0);
            if t.protocol.is_none() {
                self.bytes += r.request_size + r.response_size;
                self.protocols |= 1 << 4;
            }
            return;
        }
        let bit = match &r.detail {
            crate::Detail::Http(_) => 0,
            crate::Detail::Grpc(_) => 1,
            crate::Detail::Dns(_) => 2,
            crate::Detail::Tls(_) => 3,
            crate::Detail::Tcp(_) => 4,
            crate::Detail::Postgres(_) => 5,
            crate::Detail::Redis(_) => 6,
            crate::Detail::Mysql(_) => 7,
            crate::Detail::Websocket(_) => 8,
            crate::Detail::Kafka(_) => 9,
        };
        self.protocols |= 1 << bit;
        self.dns_requests += u64::from(bit == 2);
        self.requests += 1;
        self.errors += u64::from(r.is_error());
        self.probe_requests += u64::from(r.probe);
        self.bytes += r.request_size + r.response_size;
        if let Some(l) = r.latency_us {
            self.latency.add(l);
        }
    }

    pub fn merge(&mut self, o: &EdgeStats) {
        self.conns.reserve(o.conns.len());
        self.requests += o.requests;
        self.errors += o.errors;
        self.probe_requests += o.probe_requests;
        self.bytes += o.bytes;
        self.dns_requests += o.dns_requests;
        self.protocols |= o.protocols;
        self.gapped_connections += o.gapped_connections;
        self.conns.extend(o.conns.iter().copied());
        self.latency.merge(&o.latency);
    }

    /// The wire form, between `source` and `target`.
    pub fn edge(&self, source: &str, target: &str) -> MapEdge {
        MapEdge {
            source: source.to_string(),
            target: target.to_string(),
            requests: self.requests,
            connections: self.conns.len() as u64,
            errors: self.errors,
            probe_requests: self.probe_requests,
            bytes: self.bytes,
            p50_ms: self.latency.percentile_ms(50.0),
            p95_ms: self.latency.percentile_ms(95.0),
            p99_ms: self.latency.percentile_ms(99.0),
            dns_requests: self.dns_requests,
            protocols: PROTOCOLS
                .iter()
                .enumerate()
                .filter(|(i, _)| self.protocols & (1 << i) != 0)
                .map(|(_, p)| p.to_string())
                .collect(),
            gapped_connections: self.gapped_connections,
            topic: crate::topic::topic_of(source).or(crate::topic::topic_of(target)).map(str::to_string),
        }
    }

    /// Heap bytes held (approximate), for the store's memory figure.
    pub fn heap_bytes(&self) -> usize {
        self.conns.capacity() * 9 + self.latency.heap_bytes()
    }
}

/// A map's numbers by edge name: mergeable (a live view adds the new records' stats to the stats of
/// its window) and turned into the wire form at the end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MapStats {
    pub nodes: BTreeMap<String, MapNode>,
    pub edges: BTreeMap<(String, String), EdgeStats>,
}

impl MapStats {
    /// Adds `other`'s numbers; returns the names of the edges it touched.
    pub fn merge(&mut self, other: &MapStats) -> Vec<(String, String)> {
        for (id, n) in &other.nodes {
            self.nodes.entry(id.clone()).or_insert_with(|| n.clone());
        }
        let mut touched = Vec::with_capacity(other.edges.len());
        for (key, s) in &other.edges {
            self.edges.entry(key.clone()).or_default().merge(s);
            touched.push(key.clone());
        }
        touched
    }

    /// The wire form of one edge.
    pub fn edge(&self, key: &(String, String)) -> Option<MapEdge> {
        self.edges.get(key).map(|s| s.edge(&key.0, &key.1))
    }

    pub fn build(&self) -> ServiceMap {
        ServiceMap {
            nodes: self.nodes.values().cloned().collect(),
            edges: self.edges.iter().map(|((s, t), e)| e.edge(s, t)).collect(),
        }
    }
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

/// Folds records into a map. The edge of an address pair is found once and then reused
/// (formatting node ids per record was the costliest part). The store uses the same resolution
/// (`path`) with stats of its own per time step.
#[derive(Default)]
pub struct MapBuilder {
    nodes: BTreeMap<String, MapNode>,
    edge_index: BTreeMap<(String, String), usize>,
    ends: Vec<(String, String)>,
    stats: Vec<EdgeStats>,
    by_address: FxHashMap<AddressKey, (Identity, Identity, EdgePath)>,
    /// Each distinct set of topic edges once: a producer sends the same topics again and again.
    topic_sets: FxHashMap<Vec<u32>, std::sync::Arc<[u32]>>,
    /// Topic names by id (`id:…`), as Metadata responses gave them: a topic first seen by its id
    /// (a client joined mid-stream) is drawn under its name once one is known, also what it
    /// counted before.
    topic_names: FxHashMap<String, String>,
}

/// Most topic ids remembered; past it the table starts again (the dissector's bound).
const MAX_TOPIC_NAMES: usize = 100_000;

/// (source, destination, port, the Service it went through): what a record's edges depend on.
type AddressKey = (IpAddr, IpAddr, u16, Option<crate::Name>);

/// The edges one record is counted on: source → destination, or, through a Service, source →
/// Service and Service → the pod that served it; and for a Kafka Produce or Fetch, the edges into
/// or out of its topics (`crate::topic`). Edge numbers index `MapBuilder::ends`. As small as two
/// numbers and a pointer: every record the store keeps has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgePath {
    first: u32,
    /// `u32::MAX`: none.
    second: u32,
    topics: Option<std::sync::Arc<[u32]>>,
}

impl EdgePath {
    fn direct(a: usize) -> Self {
        EdgePath { first: a as u32, second: u32::MAX, topics: None }
    }

    fn through(a: usize, b: usize) -> Self {
        EdgePath { first: a as u32, second: b as u32, topics: None }
    }

    pub fn edges(&self) -> impl Iterator<Item = usize> + '_ {
        let second = Some(self.second).filter(|&b| b != u32::MAX);
        let topics = self.topics.as_deref().unwrap_or_default();
        std::iter::once(self.first).chain(second).chain(topics.iter().copied()).map(|e| e as usize)
    }
}

impl MapBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one record on the edge from its source to its destination — or, when it went
    /// through a Service to a pod, on the edges source → Service and Service → pod, so the map
    /// shows both who asked the Service and which pod really answered.
    pub fn add(&mut self, r: &Record) {
        for e in self.path(r).edges() {
            self.stats[e].add(r);
        }
    }

    /// The edges `r` counts on, creating them (and their nodes) when new.
    pub fn path(&mut self, r: &Record) -> EdgePath {
        let service = r.via.service.clone().filter(|_| r.dst.kind == EndpointKind::Pod);
        let key = (r.src.ip, r.dst.ip, r.dst.port, service);
        let mut path = match self.by_address.get(&key) {
            Some((s, d, p)) if s.is(&r.src) && d.is(&r.dst) => p.clone(),
            _ => {
                let p = self.path_of(r, key.3.as_deref());
                self.by_address.insert(key, (Identity::of(&r.src), Identity::of(&r.dst), p.clone()));
                p
            }
        };
        if let Some(k) = r.kafka().filter(|k| !k.topic_ids.is_empty()) {
            if self.topic_names.len() + k.topic_ids.len() > MAX_TOPIC_NAMES {
                self.topic_names.clear();
            }
            self.topic_names.extend(k.topic_ids.iter().map(|(id, name)| (id.clone(), name.clone())));
        }
        if let Some((flow, names)) = crate::topic::flows(r) {
            path.topics = Some(self.topic_edges(r, flow, &names));
        }
        path
    }

    /// The id a `topic:…/id:…` box is drawn under once its name is known.
    fn renamed(&self, id: &str) -> Option<String> {
        let (home, last) = id.strip_prefix("topic:")?.rsplit_once('/')?;
        self.topic_names.get(last).map(|name| format!("topic:{home}/{name}"))
    }

    /// The node `id` is drawn as (a renamed topic's under its name).
    fn node_for(&self, id: &str) -> Option<MapNode> {
        if let Some(n) = self.nodes.get(id) {
            return Some(n.clone());
        }
        let (_, name) = id.rsplit_once('/')?;
        let named = self.nodes.iter().find(|(known, _)| self.renamed(known).as_deref() == Some(id))?.1;
        Some(MapNode { id: id.to_string(), label: name.to_string(), ..named.clone() })
    }

    /// An edge's ends as drawn: through `renamed` for topics.
    fn drawn(&self, source: &str, target: &str) -> (String, String) {
        let end = |id: &str| self.renamed(id).unwrap_or_else(|| id.to_string());
        (end(source), end(target))
    }

    /// Whether edges may be drawn under other ids than their own (some topic's name is known).
    fn renames(&self) -> bool {
        !self.topic_names.is_empty()
    }

    /// The edges between `r`'s client and the topics it names, as one shared set.
    fn topic_edges(&mut self, r: &Record, flow: crate::topic::Flow, names: &[&str]) -> std::sync::Arc<[u32]> {
        let client = self.node(&r.src);
        let mut set = Vec::with_capacity(names.len());
        for name in names {
            let name = self.topic_names.get(*name).map_or(*name, String::as_str);
            let topic = crate::topic::topic_node(&r.dst, name);
            let id = topic.id.clone();
            self.nodes.entry(id.clone()).or_insert(topic);
            let e = match flow {
                crate::topic::Flow::Into => self.edge(client.clone(), id),
                crate::topic::Flow::OutOf => self.edge(id, client.clone()),
            };
            set.push(e as u32);
        }
        if let Some(shared) = self.topic_sets.get(&set) {
            return shared.clone();
        }
        let shared: std::sync::Arc<[u32]> = set.clone().into();
        self.topic_sets.insert(set, shared.clone());
        shared
    }

    fn path_of(&mut self, r: &Record, service: Option<&str>) -> EdgePath {
        let source = self.node(&r.src);
        let target = self.node(&r.dst);
        match service {
            None => EdgePath::direct(self.edge(source, target)),
            Some(qualified) => {
                let (namespace, name) = qualified.split_once('/').unwrap_or(("", qualified));
                let id = format!("service:{qualified}");
                self.nodes.entry(id.clone()).or_insert_with(|| MapNode {
                    id: id.clone(),
                    kind: EndpointKind::Service,
                    label: name.to_string(),
                    namespace: Some(namespace.to_string()).filter(|n| !n.is_empty()),
                    workload: None,
                    node: None,
                    locked: false,
                });
                EdgePath::through(self.edge(source, id.clone()), self.edge(id, target))
            }
        }
    }

    fn edge(&mut self, source: String, target: String) -> usize {
        let next = self.ends.len();
        let i = *self.edge_index.entry((source.clone(), target.clone())).or_insert(next);
        if i == next {
            self.ends.push((source, target));
            self.stats.push(EdgeStats::default());
        }
        i
    }

    fn node(&mut self, ep: &crate::Endpoint) -> String {
        let id = ep.map_id();
        // An external address named after its first request (its DNS answer came later).
        if let (EndpointKind::External, Some(name)) = (ep.kind, ep.name.as_deref())
            && let Some(n) = self.nodes.get_mut(&id)
            && n.label != name
        {
            n.label = name.to_string();
        }
        self.nodes.entry(id.clone()).or_insert_with(|| MapNode {
            id: id.clone(),
            kind: ep.kind,
            label: ep.label(),
            namespace: ep.namespace.as_deref().map(str::to_string),
            workload: ep.workload.as_deref().map(str::to_string),
            node: ep.node.as_deref().filter(|_| ep.kind == EndpointKind::Pod).map(str::to_string),
            locked: ep.hidden,
        });
        id
    }

    /// Edges known so far (indexes of `path`).
    pub fn edge_count(&self) -> usize {
        self.ends.len()
    }

    /// The map as it stands, edges sorted by source and target.
    pub fn build(&self) -> ServiceMap {
        self.build_with(|i| Some(&self.stats[i]))
    }

    /// The numbers so far by edge name, mergeable with others'; the builder starts counting
    /// afresh (the nodes and edges it knows stay known).
    pub fn take_stats(&mut self) -> MapStats {
        let mut taken = std::mem::take(&mut self.stats);
        let out = self.stats_with(|i| Some(std::mem::take(&mut taken[i])).filter(|s| *s != EdgeStats::default()));
        self.stats = taken;
        out
    }

    /// Like `build_with`, but mergeable numbers instead of the wire form.
    pub fn stats_with(&self, mut stats: impl FnMut(usize) -> Option<EdgeStats>) -> MapStats {
        let mut out = MapStats::default();
        for ((source, target), &i) in &self.edge_index {
            if let Some(s) = stats(i) {
                let key = if self.renames() { self.drawn(source, target) } else { (source.clone(), target.clone()) };
                for id in [&key.0, &key.1] {
                    if !out.nodes.contains_key(id)
                        && let Some(n) = self.node_for(id)
                    {
                        out.nodes.insert(id.clone(), n);
                    }
                }
                out.edges.entry(key).or_default().merge(&s);
            }
        }
        out
    }

    /// A map of the edges `stats` has numbers for (by edge index, as `path` gave them), with the
    /// nodes those edges join; edges sorted by source and target.
    pub fn build_with<'a>(&self, stats: impl Fn(usize) -> Option<&'a EdgeStats>) -> ServiceMap {
        let mut used = std::collections::BTreeSet::new();
        // A topic drawn under its name sums its edges from before its name was known.
        let mut topics: BTreeMap<(String, String), EdgeStats> = BTreeMap::new();
        let mut edges: Vec<MapEdge> = Vec::new();
        for ((source, target), &i) in &self.edge_index {
            let Some(s) = stats(i) else { continue };
            if self.renames() && (source.starts_with("topic:") || target.starts_with("topic:")) {
                topics.entry(self.drawn(source, target)).or_default().merge(s);
                continue;
            }
            used.insert(source.clone());
            used.insert(target.clone());
            edges.push(s.edge(source, target));
        }
        if !topics.is_empty() {
            for ((source, target), s) in &topics {
                edges.push(s.edge(source, target));
                used.insert(source.clone());
                used.insert(target.clone());
            }
            edges.sort_unstable_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
        }
        let nodes = used.iter().filter_map(|id| self.node_for(id)).collect();
        ServiceMap { nodes, edges }
    }
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
        let near = |got: Option<f64>, want: f64| (got.unwrap() - want).abs() <= want * 0.01;
        assert!(near(e.p50_ms, 2.0) && near(e.p99_ms, 3.0), "{:?} {:?}", e.p50_ms, e.p99_ms);
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

    fn kafka(api_key: i16, client: &str, topics: &[&str]) -> Record {
        let mut r = rec(1, None, 1000);
        r.src.kind = EndpointKind::Pod;
        r.src.name = Some(client.into());
        r.src.namespace = Some("shop".into());
        r.dst.kind = EndpointKind::Pod;
        r.dst.name = Some("kafka-0".into());
        r.dst.namespace = Some("data".into());
        r.dst.workload = Some("StatefulSet/kafka".into());
        r.detail = Detail::Kafka(Box::new(crate::KafkaExchange {
            operation: if api_key == 0 { "Produce" } else { "Fetch" }.into(),
            api_key,
            topics: topics.iter().map(|t| crate::KafkaTopic { name: t.to_string(), partitions: vec![0] }).collect(),
            ..Default::default()
        }));
        r
    }

    #[test]
    fn producers_and_consumers_meet_at_their_topics_box() {
        let mut b = MapBuilder::new();
        let records = [
            kafka(0, "orders-1", &["orders"]),
            kafka(0, "orders-1", &["orders", "audit"]),
            kafka(0, "orders-1", &["orders"]),
            kafka(1, "billing-1", &["orders"]),
            kafka(3, "billing-1", &["orders"]),
        ];
        let paths: Vec<EdgePath> = records.iter().map(|r| b.path(r)).collect();
        for (r, p) in records.iter().zip(&paths) {
            for e in p.edges() {
                b.stats[e].add(r);
            }
        }
        // The same topics again: the same shared set.
        assert!(std::sync::Arc::ptr_eq(paths[0].topics.as_ref().unwrap(), paths[2].topics.as_ref().unwrap()));
        assert_eq!(paths[4].edges().count(), 1, "a Metadata request moves no records");
        let map = b.build();
        let edge = |s: &str, t: &str| {
            map.edges.iter().find(|e| e.source == s && e.target == t).map(|e| (e.requests, e.topic.clone()))
        };
        let orders = Some("orders".to_string());
        assert_eq!(edge("pod:shop/orders-1", "pod:data/kafka-0"), Some((3, None)));
        assert_eq!(edge("pod:shop/orders-1", "topic:data/kafka/orders"), Some((3, orders.clone())));
        assert_eq!(edge("pod:shop/orders-1", "topic:data/kafka/audit"), Some((1, Some("audit".into()))));
        assert_eq!(edge("topic:data/kafka/orders", "pod:shop/billing-1"), Some((1, orders)));
        assert_eq!(edge("pod:shop/billing-1", "pod:data/kafka-0"), Some((2, None)));
        // Totals leave the topics' edges out: five requests.
        let total: u64 = map.edges.iter().filter(|e| !e.counted_elsewhere()).map(|e| e.requests).sum();
        assert_eq!(total, 5);
        let topic = map.nodes.iter().find(|n| n.id == "topic:data/kafka/orders").unwrap();
        assert_eq!((topic.kind, topic.label.as_str()), (EndpointKind::Topic, "orders"));
        // The filter's `edge:` finds the same requests the topic's edges count.
        let on = |s: &str, t: &str| records.iter().filter(|r| crate::group::on_edge(r, s, t)).count();
        assert_eq!(on("pod:shop/orders-1", "topic:data/kafka/orders"), 3);
        assert_eq!(on("topic:data/kafka/orders", "*"), 1);
        assert_eq!(on("*", "topic:data/kafka/audit"), 1);
        assert_eq!(on("pod:shop/orders-1", "topic:data/other/orders"), 0);
    }

    #[test]
    fn a_topic_first_named_by_its_id_is_one_box_once_a_metadata_response_names_it() {
        let mut b = MapBuilder::new();
        b.add(&kafka(0, "orders-1", &["id:Yjg5sR2f"]));
        b.add(&kafka(1, "billing-1", &["id:Yjg5sR2f"]));
        let mut metadata = kafka(3, "billing-1", &[]);
        if let Detail::Kafka(k) = &mut metadata.detail {
            k.operation = "Metadata".into();
            k.topic_ids.insert("id:Yjg5sR2f".into(), "orders".into());
        }
        b.add(&metadata);
        b.add(&kafka(0, "orders-1", &["id:Yjg5sR2f"]));
        let map = b.build();
        let topics: Vec<(&str, &str, u64)> = map
            .edges
            .iter()
            .filter(|e| e.topic.is_some())
            .map(|e| (e.source.as_str(), e.target.as_str(), e.requests))
            .collect();
        assert_eq!(
            topics,
            vec![
                ("pod:shop/orders-1", "topic:data/kafka/orders", 2),
                ("topic:data/kafka/orders", "pod:shop/billing-1", 1)
            ]
        );
        assert!(map.edges.iter().all(|e| e.topic.as_deref() != Some("id:Yjg5sR2f")));
        let boxes: Vec<&str> =
            map.nodes.iter().filter(|n| n.kind == EndpointKind::Topic).map(|n| n.label.as_str()).collect();
        assert_eq!(boxes, vec!["orders"]);
        // The same for the mergeable numbers a live view is sent.
        let stats = b.take_stats();
        assert_eq!(stats.edges[&("pod:shop/orders-1".to_string(), "topic:data/kafka/orders".to_string())].requests, 2);
        assert!(
            stats.nodes.contains_key("topic:data/kafka/orders") && !stats.nodes.keys().any(|id| id.contains("id:"))
        );
    }
}
