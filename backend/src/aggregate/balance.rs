//! Replica balance per Service: how the requests that went through a Service spread over the pods
//! that served them, next to how the *connections* spread — kube-proxy picks a backend per
//! connection, so the two differ whenever clients keep connections open — with probes apart, a
//! skew score and the cause in one sentence.

use std::collections::BTreeMap;
use std::net::IpAddr;

pub use podtap_shared::{Balance, EndpointBalance};
use podtap_shared::{EndpointKind, Name, Record};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::resolve::ClusterState;

/// Below this skew a Service counts as balanced and no cause is given.
const BALANCED: f64 = 0.2;
/// A single connection carrying at least this share of a Service's requests is the cause.
const DOMINANT_CONNECTION: f64 = 0.25;

/// One endpoint: an address and the pod that held it. A pod's address may go to another pod once
/// it is gone, and each keeps its own row.
type EndpointKey = (IpAddr, Option<Name>);

#[derive(Clone, Default)]
struct EndpointAcc {
    /// `ns/name`.
    pod: Option<String>,
    requests: u64,
}

#[derive(Clone)]
struct ConnAcc {
    requests: u64,
    client: String,
    endpoint: EndpointKey,
}

/// One Service's tallies. A connection is counted for the endpoint its first request went to
/// (`ConnAcc::endpoint`): no set of connections per endpoint is kept beside the map of them.
#[derive(Clone, Default)]
struct ServiceAcc {
    endpoints: FxHashMap<EndpointKey, EndpointAcc>,
    conns: FxHashMap<u64, ConnAcc>,
}

impl ServiceAcc {
    /// Connections per endpoint.
    fn conns_by_endpoint(&self) -> FxHashMap<&EndpointKey, u64> {
        let mut by: FxHashMap<&EndpointKey, u64> = FxHashMap::default();
        for c in self.conns.values() {
            *by.entry(&c.endpoint).or_default() += 1;
        }
        by
    }
}

/// Folds records into per-Service balance; mergeable, so the balance of a window is the merge of
/// its time steps'.
#[derive(Clone, Default)]
pub struct BalanceBuilder {
    services: BTreeMap<Name, ServiceAcc>,
    probes: FxHashMap<EndpointKey, u64>,
}

impl BalanceBuilder {
    /// Counts a request, or a connection (`kind: "tcp"`: a connection, not a request).
    pub fn add(&mut self, r: &Record) {
        let key = (r.dst.ip, r.dst.name.clone());
        if r.probe {
            *self.probes.entry(key).or_default() += 1;
            return;
        }
        let (Some(service), EndpointKind::Pod) = (&r.via.service, r.dst.kind) else { return };
        let request = u64::from(r.is_request());
        // Found by reference: one Service and a few endpoints take almost every record.
        let acc = match self.services.get_mut(&**service) {
            Some(acc) => acc,
            None => self.services.entry(service.clone()).or_default(),
        };
        let e = match acc.endpoints.get_mut(&key) {
            Some(e) => e,
            None => acc.endpoints.entry(key.clone()).or_default(),
        };
        if e.pod.is_none() {
            e.pod = r.dst.qualified_name();
        }
        e.requests += request;
        let c = acc.conns.entry(r.conn).or_insert_with(|| ConnAcc {
            requests: 0,
            client: r.src.qualified_name().unwrap_or_else(|| r.src.ip.to_string()),
            endpoint: key,
        });
        c.requests += request;
    }

    /// Adds everything `other` counted.
    pub fn merge(&mut self, other: &BalanceBuilder) {
        self.merge_probes(other);
        for (service, o) in &other.services {
            self.merge_service(service, o);
        }
    }

    /// Adds what `other` counted for one Service only.
    pub fn merge_one(&mut self, other: &BalanceBuilder, service: &str) {
        self.merge_probes(other);
        if let Some((name, o)) = other.services.get_key_value(service) {
            self.merge_service(name, o);
        }
    }

    /// Probes are counted per pod, whatever Service they would belong to.
    fn merge_probes(&mut self, other: &BalanceBuilder) {
        for (key, n) in &other.probes {
            *self.probes.entry(key.clone()).or_default() += n;
        }
    }

    fn merge_service(&mut self, service: &Name, o: &ServiceAcc) {
        let acc = self.services.entry(service.clone()).or_default();
        for (key, e) in &o.endpoints {
            let mine = acc.endpoints.entry(key.clone()).or_default();
            mine.pod = mine.pod.take().or_else(|| e.pod.clone());
            mine.requests += e.requests;
        }
        for (id, c) in &o.conns {
            acc.conns.entry(*id).and_modify(|m| m.requests += c.requests).or_insert_with(|| c.clone());
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let service = |a: &ServiceAcc| a.endpoints.len() * 48 + a.conns.capacity() * 56;
        self.services.values().map(service).sum::<usize>() + self.probes.capacity() * 32
    }

    /// The Services traffic went through.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(|k| &**k)
    }

    /// Every Service the cluster lists with endpoints, and every Service traffic went through.
    pub fn build(&self, cluster: &ClusterState) -> Vec<Balance> {
        let mut names: Vec<&str> = cluster.service_backends().map(|(s, _)| s).collect();
        names.extend(self.services.keys().map(|k| &**k));
        names.sort_unstable();
        names.dedup();
        names.into_iter().filter_map(|s| self.balance(s, cluster)).collect()
    }

    /// One Service; `None` when the cluster does not list it and no traffic went through it.
    pub fn balance(&self, service: &str, cluster: &ClusterState) -> Option<Balance> {
        let backends = cluster.service_backends().find(|(s, _)| *s == service).map(|(_, b)| b);
        let acc = self.services.get(service);
        if backends.is_none() && acc.is_none() {
            return None;
        }
        // Endpoints: the Service's backends (even idle ones), then any other pod that served it
        // (a pod gone from the EndpointSlice since, whose address another pod may hold now).
        let mut rows: Vec<(IpAddr, Option<String>)> =
            backends.into_iter().flatten().map(|b| (b.ip, b.pod.clone())).collect();
        // A row's key in the tallies: its address and the pod's name (without its namespace).
        let key = |(ip, pod): &(IpAddr, Option<String>)| -> EndpointKey { (*ip, name(pod).map(Name::from)) };
        if let Some(acc) = acc {
            let listed: FxHashSet<EndpointKey> = rows.iter().map(key).collect();
            let mut extra: Vec<_> = acc.endpoints.iter().filter(|(k, _)| !listed.contains(*k)).collect();
            extra.sort_by(|(a, _), (b, _)| (a.0, &a.1).cmp(&(b.0, &b.1)));
            rows.extend(extra.into_iter().map(|(k, e)| (k.0, e.pod.clone())));
        }
        let requests: u64 = acc.map_or(0, |a| a.endpoints.values().map(|e| e.requests).sum());
        let connections = acc.map_or(0, |a| a.conns.len() as u64);
        let conns_of = acc.map(ServiceAcc::conns_by_endpoint).unwrap_or_default();
        let share = |n: u64, of: u64| if of == 0 { 0.0 } else { round3(n as f64 / of as f64) };
        let endpoints: Vec<EndpointBalance> = rows
            .into_iter()
            .map(|row| {
                let e = acc.and_then(|a| a.endpoints.get(&key(&row)));
                let (r, c) = e.map_or((0, 0), |e| (e.requests, conns_of.get(&key(&row)).copied().unwrap_or(0)));
                let (ip, pod) = row;
                let probes = self.probes.get(&(ip, name(&pod).map(Name::from))).copied().unwrap_or(0);
                EndpointBalance {
                    pod: pod.or_else(|| e.and_then(|e| e.pod.clone())),
                    ip,
                    requests: r,
                    connections: c,
                    requests_per_connection: (c > 0).then(|| round3(r as f64 / c as f64)),
                    share_of_requests: share(r, requests),
                    share_of_connections: share(c, connections),
                    probe_requests: probes,
                }
            })
            .collect();
        let skew = skew(&endpoints);
        let sticky = cluster.client_ip_affinity(service);
        let cause =
            if skew < BALANCED { None } else { acc.and_then(|a| cause(a, &endpoints, requests, connections, sticky)) };
        Some(Balance {
            service: service.to_string(),
            requests,
            connections,
            probe_requests: endpoints.iter().map(|e| e.probe_requests).sum(),
            skew,
            cause,
            endpoints,
        })
    }
}

/// `name` of `ns/name`.
fn name(pod: &Option<String>) -> Option<&str> {
    pod.as_deref().map(|p| p.rsplit('/').next().unwrap_or(p))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// How far the busiest endpoint is from a fair share: (max share − 1/n) / (1 − 1/n).
fn skew(endpoints: &[EndpointBalance]) -> f64 {
    let n = endpoints.len() as f64;
    let total: u64 = endpoints.iter().map(|e| e.requests).sum();
    if n < 2.0 || total == 0 {
        return 0.0;
    }
    let max = endpoints.iter().map(|e| e.requests).max().unwrap_or(0) as f64 / total as f64;
    round3(((max - 1.0 / n) / (1.0 - 1.0 / n)).max(0.0))
}

/// `web-7d4b9c8f6-x2k9p` of `default/web-7d4b9c8f6-x2k9p`.
fn short(pod: &Option<String>, ip: IpAddr) -> String {
    pod.as_deref().map_or_else(|| ip.to_string(), |p| p.rsplit('/').next().unwrap_or(p).to_string())
}

/// The skew's cause in one sentence: a client's pool that went to one pod (kube-proxy's
/// `sessionAffinity: ClientIP`, or its dice), one keep-alive connection, a few connections spread
/// unevenly, or connections that carry more requests than others.
fn cause(
    acc: &ServiceAcc,
    endpoints: &[EndpointBalance],
    requests: u64,
    connections: u64,
    sticky: bool,
) -> Option<String> {
    let busiest = endpoints.iter().max_by_key(|e| (e.requests, std::cmp::Reverse(e.ip)))?;
    let name = |(ip, pod): &EndpointKey| {
        endpoints.iter().find(|e| e.ip == *ip && name(&e.pod) == pod.as_deref()).map(|e| short(&e.pod, e.ip))
    };
    if let Some(pool) = pool_cause(acc, busiest, requests, sticky) {
        return Some(pool);
    }
    // Ties go to the lower address, then the older connection: the same sentence whatever order
    // the records were counted in.
    let (_, top) =
        acc.conns.iter().max_by_key(|(id, c)| (c.requests, std::cmp::Reverse(&c.endpoint), std::cmp::Reverse(**id)))?;
    if top.requests > 1 && top.requests as f64 >= DOMINANT_CONNECTION * requests as f64 {
        return Some(format!(
            "1 keep-alive connection from {} carried {} of {} requests to {}",
            top.client,
            top.requests,
            requests,
            name(&top.endpoint)?
        ));
    }
    let pod = short(&busiest.pod, busiest.ip);
    if (busiest.share_of_connections - busiest.share_of_requests).abs() < 0.15 {
        Some(format!(
            "{pod} got {} of {connections} connections: kube-proxy picks a backend per connection, at random, \
             so a few connections spread unevenly",
            busiest.connections
        ))
    } else {
        let average = requests as f64 / connections.max(1) as f64;
        Some(format!(
            "{pod} answered {} of {requests} requests over {} of {connections} connections: its connections \
             carry {:.1} requests each, against {average:.1} on average",
            busiest.requests,
            busiest.connections,
            busiest.requests_per_connection.unwrap_or(0.0)
        ))
    }
}

/// The pool sentence: one client whose connections (two or more, typically a connection pool)
/// all went to the busiest pod and carried at least half the Service's requests.
fn pool_cause(acc: &ServiceAcc, busiest: &EndpointBalance, requests: u64, sticky: bool) -> Option<String> {
    // Per client: its connections, its requests, and whether every connection went to `busiest`.
    let mut clients: BTreeMap<&str, (u64, u64, bool)> = BTreeMap::new();
    for c in acc.conns.values() {
        let to_busiest = c.endpoint.0 == busiest.ip && c.endpoint.1.as_deref() == name(&busiest.pod);
        let e = clients.entry(c.client.as_str()).or_insert((0, 0, true));
        e.0 += 1;
        e.1 += c.requests;
        e.2 &= to_busiest;
    }
    // The client with the most requests; ties go to the first name.
    let (client, (conns, carried, all_there)) =
        clients.into_iter().max_by_key(|(client, (_, r, _))| (*r, std::cmp::Reverse(*client)))?;
    if conns < 2 || !all_there || (carried as f64) < 0.5 * requests as f64 {
        return None;
    }
    let pod = short(&busiest.pod, busiest.ip);
    let why = if sticky {
        "the Service's sessionAffinity: ClientIP sends every connection from one client address to the same pod"
    } else {
        "kube-proxy picks a backend per connection, and a pool opened once keeps the backends it got"
    };
    Some(format!(
        "the {conns} pooled connections from {client} all went to {pod} and carried {carried} of {requests} requests: {why}"
    ))
}

#[cfg(test)]
mod tests;
