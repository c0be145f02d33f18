//! A synthetic cluster for load: 1,000 pods in 50 namespaces (4 replicas per Deployment, each
//! behind its Service) and 3,000 caller → callee pairs, with keep-alive and one-shot connections,
//! errors, probes and latencies spread over two decades. `podtap serve --synthetic RATE` feeds it
//! to the hub at RATE records a second, stamped now: the browser benchmark's load, and a way to see
//! the map and the timeline at cluster scale without a cluster. The store's benchmark uses it too.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use podtap_shared::{Endpoint, EndpointKind, Name, Record, Via, ViaKind};

use super::Batch;
use crate::publish::Hub;

pub const PODS: u32 = 1_000;
pub const NAMESPACES: u32 = 50;
pub const PAIRS: u32 = 3_000;

/// The pods (names shared, as the resolver shares them) and who calls whom.
pub struct Cluster {
    pods: Vec<(Name, Name, Name)>,
    services: Vec<Name>,
    pairs: Vec<(u32, u32)>,
    node: Name,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    pub fn new() -> Self {
        let pods = (0..PODS)
            .map(|i| {
                let ns: Name = format!("ns-{}", (i / 4) % NAMESPACES).into();
                let app = i / 4;
                (
                    format!("app-{app}-{:05x}", i.wrapping_mul(40_503) & 0xfffff).into(),
                    ns,
                    format!("Deployment/app-{app}").into(),
                )
            })
            .collect();
        let services = (0..PODS / 4).map(|app| format!("ns-{}/app-{app}", app % NAMESPACES).into()).collect();
        // A fixed pseudo-random spread: every pod calls about three others.
        let pairs = (0..PAIRS).map(|i| (i % PODS, (i.wrapping_mul(2_654_435_761) >> 7) % PODS)).collect();
        Cluster { pods, services, pairs, node: "node-1".into() }
    }

    fn pod(&self, pod: u32, port: u16) -> Endpoint {
        let (name, ns, workload) = &self.pods[pod as usize];
        Endpoint {
            ip: Ipv4Addr::from(0x0af4_0000 + pod).into(),
            port,
            kind: EndpointKind::Pod,
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            workload: Some(workload.clone()),
            node: Some(self.node.clone()),
            hidden: false,
        }
    }

    /// Request `n` at `ts`: on pair `n % PAIRS`, through the callee's Service, over one of four
    /// keep-alive connections of the pair — or, one request in eight, a connection of its own;
    /// one in a hundred fails, one in fifty is a probe from the node.
    pub fn record(&self, n: u64, ts: u64) -> Record {
        let pair = (n % u64::from(PAIRS)) as u32;
        let (from, to) = self.pairs[pair as usize];
        let mut r = Record::test();
        r.id = n + 1;
        r.ts = ts;
        let latency = 200 + (n.wrapping_mul(7_919) % 20_000) * (1 + n % 3);
        r.latency_us = Some(latency);
        r.end_us = Some(ts + latency + 150);
        let fresh = n % 8 == 7;
        r.conn = if fresh { 1_000_000 + n } else { u64::from(pair) * 4 + (n / u64::from(PAIRS)) % 4 };
        r.src = self.pod(from, 30_000 + (r.conn % 30_000) as u16);
        r.dst = self.pod(to, 8080);
        r.via = Via { kind: ViaKind::ClusterIp, service: Some(self.services[(to / 4) as usize].clone()) };
        if n.is_multiple_of(50) {
            r.src = Endpoint {
                kind: EndpointKind::Node,
                name: Some(self.node.clone()),
                ..Endpoint::unknown([10, 0, 0, 1].into(), 40_000)
            };
            r.via = Via { kind: ViaKind::Direct, service: None };
            r.probe = true;
        }
        if let podtap_shared::Detail::Http(h) = &mut r.detail {
            h.path = compact_str::format_compact!("/api/v1/items/{}", n % 97);
            h.status = Some(if n % 100 == 42 { 503 } else { 200 });
        }
        r
    }
}

/// Publishes `rate` records a second into `hub`, forever, in 10 ms slices.
pub fn run(hub: &Hub, rate: u64) {
    let cluster = Cluster::new();
    let mut batch = Batch::new(hub);
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        let now = super::replay::now_us();
        while n < due {
            batch.records.push(cluster.record(n, now));
            n += 1;
            batch.maybe_flush();
        }
        batch.flush();
        std::thread::sleep(Duration::from_millis(10));
    }
}
