//! `GET /metrics`: OpenMetrics for the engines users already run. Per edge, the series Tempo's
//! service graphs write — `traces_service_graph_request_total`, `…_request_failed_total` and the
//! `…_request_server_seconds` histogram, labelled `client`, `server`, `connection_type` — so
//! Grafana's service-graph panels draw podtap's data; and podtap's own health: records, the
//! store, browsers that lagged, and every agent (connected, lag, offset, drops).
//!
//! Cardinality is bounded by design: a peer is named by its workload (`ns/name`), not its pod;
//! every outside address is `external`; probes are left out (they are not a service's traffic);
//! and past `MAX_EDGES` client–server pairs the rest are counted under `other`.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use podtap_shared::{AgentStatus, Endpoint, EndpointKind, Name, Record};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::store::StoreStats;

/// Client–server pairs with series of their own; more are summed under `other`.
pub const MAX_EDGES: usize = 5_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeLabels {
    client: String,
    server: String,
    connection_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: &'static str,
}

/// The audit log's counters (`access::audit`), one series per kind of event.
pub type AuditCounters = Family<EventLabels, Counter>;

/// The audit log counts here.
pub struct AuditCounting(pub AuditCounters);

impl crate::access::audit::Counting for AuditCounting {
    fn count(&self, event: &'static str) {
        self.0.get_or_create(&EventLabels { event }).inc();
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s, doubling.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type Latency = Family<EdgeLabels, Histogram, fn() -> Histogram>;

/// The registry and the series podtap keeps.
pub struct Metrics {
    registry: Registry,
    /// Shared with the audit log, which counts into it.
    pub audit: AuditCounters,
    requests: Family<EdgeLabels, Counter>,
    failed: Family<EdgeLabels, Counter>,
    seconds: Latency,
    edges: Mutex<FxHashSet<EdgeLabels>>,
    records: Counter,
    stored: Gauge,
    evicted: Gauge,
    lagged: Counter,
    agent_connected: Family<NodeLabels, Gauge>,
    agent_lag: Family<NodeLabels, Gauge<f64, AtomicU64>>,
    agent_offset: Family<NodeLabels, Gauge<f64, AtomicU64>>,
    agent_dropped: Family<NodeLabels, Gauge>,
    agent_kernel_drops: Family<NodeLabels, Gauge>,
    agent_buffered: Family<NodeLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<EdgeLabels, Counter>::default();
        let failed = Family::<EdgeLabels, Counter>::default();
        let seconds = Latency::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("traces_service_graph_request", "Requests between two services", requests.clone());
        registry.register(
            "traces_service_graph_request_failed",
            "Failed requests between two services",
            failed.clone(),
        );
        registry.register(
            "traces_service_graph_request_server_seconds",
            "Time from the request's first byte to the response's, in seconds",
            seconds.clone(),
        );
        let (records, stored, evicted, lagged) =
            (Counter::default(), Gauge::default(), Gauge::default(), Counter::default());
        registry.register("podtap_records", "Records published (one per request or connection)", records.clone());
        registry.register("podtap_store_records", "Records the store holds", stored.clone());
        registry.register("podtap_store_evicted_records", "Records the store let go (age or count)", evicted.clone());
        registry.register("podtap_browser_lagged_records", "Records a slow browser was not sent", lagged.clone());
        let audit = AuditCounters::default();
        registry.register(
            "podtap_audit_events",
            "Events of the audit log: sign-ins, refusals, exports…",
            audit.clone(),
        );
        let agent_connected = Family::<NodeLabels, Gauge>::default();
        let agent_lag = Family::<NodeLabels, Gauge<f64, AtomicU64>>::default();
        let agent_offset = Family::<NodeLabels, Gauge<f64, AtomicU64>>::default();
        let agent_dropped = Family::<NodeLabels, Gauge>::default();
        let agent_kernel_drops = Family::<NodeLabels, Gauge>::default();
        let agent_buffered = Family::<NodeLabels, Gauge>::default();
        registry.register("podtap_agent_connected", "1 while the node's agent is connected", agent_connected.clone());
        registry.register(
            "podtap_agent_lag_seconds",
            "How far the node's capture is behind the hub",
            agent_lag.clone(),
        );
        registry.register(
            "podtap_agent_clock_offset_seconds",
            "The node's clock minus the hub's",
            agent_offset.clone(),
        );
        registry.register(
            "podtap_agent_dropped_observations",
            "Observations the agent dropped while the hub was unreachable",
            agent_dropped.clone(),
        );
        registry.register(
            "podtap_agent_kernel_drops",
            "Packets the node's kernel rings dropped",
            agent_kernel_drops.clone(),
        );
        registry.register(
            "podtap_agent_buffered_bytes",
            "Bytes the agent holds that the hub has not acknowledged",
            agent_buffered.clone(),
        );
        Self {
            registry,
            audit,
            requests,
            failed,
            seconds,
            edges: Mutex::new(FxHashSet::default()),
            records,
            stored,
            evicted,
            lagged,
            agent_connected,
            agent_lag,
            agent_offset,
            agent_dropped,
            agent_kernel_drops,
            agent_buffered,
        }
    }
}

/// How a peer is named in a label: its workload, never a pod or an outside address.
fn peer(e: &Endpoint) -> String {
    let ns = e.namespace.as_deref().unwrap_or("");
    match (e.kind, &e.workload, &e.name) {
        (EndpointKind::Pod, Some(w), _) => format!("{ns}/{}", w.split_once('/').map_or(&**w, |(_, n)| n)),
        (EndpointKind::Pod | EndpointKind::Service, _, Some(n)) => format!("{ns}/{n}"),
        (EndpointKind::Node, _, Some(n)) => format!("node/{n}"),
        (EndpointKind::External, ..) => "external".into(),
        _ => "unknown".into(),
    }
}

impl Metrics {
    /// Counts a batch of published records (requests; probes left out).
    pub fn observe(&self, records: &[Record]) {
        self.records.inc_by(records.len() as u64);
        // One label set per distinct pair in the batch.
        type Key<'a> = (
            Option<&'a Name>,
            Option<&'a Name>,
            Option<&'a Name>,
            Option<&'a Name>,
            u8,
            u8,
            std::net::IpAddr,
            std::net::IpAddr,
        );
        let mut batch: FxHashMap<Key<'_>, (EdgeLabels, u64, u64, Vec<f64>)> = FxHashMap::default();
        for r in records.iter().filter(|r| r.is_request() && !r.probe) {
            let anonymous = |e: &Endpoint| if e.name.is_none() { e.ip } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
            let key = (
                r.src.namespace.as_ref(),
                r.src.workload.as_ref().or(r.src.name.as_ref()),
                r.dst.namespace.as_ref(),
                r.dst.workload.as_ref().or(r.dst.name.as_ref()),
                r.src.kind as u8,
                r.dst.kind as u8,
                anonymous(&r.src),
                anonymous(&r.dst),
            );
            let entry = batch.entry(key).or_insert_with(|| {
                let outside = |e: &Endpoint| matches!(e.kind, EndpointKind::External | EndpointKind::Unknown);
                let labels = EdgeLabels {
                    client: peer(&r.src),
                    server: peer(&r.dst),
                    connection_type: if outside(&r.src) || outside(&r.dst) { "virtual_node" } else { "" },
                };
                (labels, 0, 0, Vec::new())
            });
            entry.1 += 1;
            entry.2 += u64::from(r.is_error());
            entry.3.extend(r.latency_us.map(|l| l as f64 / 1e6));
        }
        let mut edges = self.edges.lock().unwrap_or_else(|p| p.into_inner());
        for (_, (mut labels, n, failed, latencies)) in batch {
            if !edges.contains(&labels) {
                if edges.len() >= MAX_EDGES {
                    labels = EdgeLabels { client: "other".into(), server: "other".into(), connection_type: "" };
                }
                edges.insert(labels.clone());
            }
            self.requests.get_or_create(&labels).inc_by(n);
            if failed > 0 {
                self.failed.get_or_create(&labels).inc_by(failed);
            }
            let h = self.seconds.get_or_create(&labels);
            for l in latencies {
                h.observe(l);
            }
        }
    }

    /// Records a lagging browser was not sent.
    pub fn lagged(&self, n: u64) {
        self.lagged.inc_by(n);
    }

    /// The OpenMetrics text, with the store's and the agents' state as of now.
    pub fn render(&self, store: &StoreStats, agents: &[AgentStatus]) -> String {
        self.stored.set(store.records as i64);
        self.evicted.set((store.evicted_by_age + store.evicted_by_count) as i64);
        for a in agents {
            let l = NodeLabels { node: a.node.clone() };
            self.agent_connected.get_or_create(&l).set(i64::from(a.connected));
            self.agent_lag.get_or_create(&l).set(a.lag_ms.unwrap_or(0.0) / 1000.0);
            self.agent_offset.get_or_create(&l).set(a.clock_offset_ms.unwrap_or(0.0) / 1000.0);
            self.agent_dropped.get_or_create(&l).set(a.dropped_observations as i64);
            self.agent_kernel_drops.get_or_create(&l).set(a.kernel_drops as i64);
            self.agent_buffered.get_or_create(&l).set(a.buffered_bytes as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podtap_shared::Endpoint;

    fn pod(ns: &str, name: &str, workload: &str) -> Endpoint {
        Endpoint {
            kind: EndpointKind::Pod,
            name: Some(name.into()),
            namespace: Some(ns.into()),
            workload: Some(workload.into()),
            ..Endpoint::unknown([10, 0, 0, 1].into(), 80)
        }
    }

    #[test]
    fn edges_are_named_by_workload_in_tempo_s_series() {
        let m = Metrics::default();
        let mut a = Record::test();
        (a.src, a.dst) = (pod("default", "web-7d-x", "Deployment/web"), pod("shop", "api-6b-y", "Deployment/api"));
        let mut b = a.clone();
        b.dst.name = Some("api-6b-z".into());
        if let podtap_shared::Detail::Http(h) = &mut b.detail {
            h.status = Some(503);
        }
        let mut probe = a.clone();
        probe.probe = true;
        let mut outside = a.clone();
        outside.src = Endpoint { kind: EndpointKind::External, ..Endpoint::unknown([203, 0, 113, 9].into(), 5) };
        m.observe(&[a, b, probe, outside]);
        let text = m.render(&StoreStats::default(), &[]);
        let line = |prefix: &str| {
            text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}\n{text}")).to_string()
        };
        assert!(line("traces_service_graph_request_total{client=\"default/web\",server=\"shop/api\"").ends_with(" 2"));
        assert!(line("traces_service_graph_request_failed_total{client=\"default/web\"").ends_with(" 1"));
        assert!(line("traces_service_graph_request_total{client=\"external\"").contains("virtual_node"));
        assert!(line("traces_service_graph_request_server_seconds_count{client=\"default/web\"").ends_with(" 2"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn past_the_bound_pairs_are_summed_as_other() {
        let m = Metrics::default();
        let records: Vec<Record> = (0..MAX_EDGES + 10)
            .map(|i| {
                let mut r = Record::test();
                (r.src, r.dst) = (pod("ns", "p", &format!("Deployment/c{i}")), pod("ns", "q", "Deployment/s"));
                r
            })
            .collect();
        m.observe(&records);
        let text = m.render(&StoreStats::default(), &[]);
        let series = text.lines().filter(|l| l.starts_with("traces_service_graph_request_total{")).count();
        assert_eq!(series, MAX_EDGES + 1);
        assert!(
            text.contains(
                "traces_service_graph_request_total{client=\"other\",server=\"other\",connection_type=\"\"} 10"
            )
        );
    }
}
