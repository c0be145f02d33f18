//! Folding: from the server's map (pods, Services, nodes, peers) to the boxes the user asked for.
//! Pods fold into their workload, workloads and Services into their namespace, external peers
//! into their address block; an edge between two boxes is the sum of the edges between their
//! members. Requests, connections, errors and bytes sum exactly (each request and each connection
//! is counted on one edge per leg); percentiles do not, so a folded edge carries none and the
//! hover card asks the server (`/api/v1/edge`) for the exact ones.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use podtap_shared::group::{external_group, namespace_id, workload_id};
use podtap_shared::{EndpointKind, MapEdge, MapNode, ServiceMap};
use rustc_hash::FxHashMap;

/// How far the map is folded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Namespace,
    Workload,
    Pod,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "namespace" => Some(Level::Namespace),
            "workload" => Some(Level::Workload),
            "pod" => Some(Level::Pod),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Namespace => "namespace",
            Level::Workload => "workload",
            Level::Pod => "pod",
        }
    }
}

/// Maps up to this many boxes are shown pod by pod when no level is asked for.
pub const AUTO_PODS: usize = 40;
/// …and up to this many workload by workload; bigger maps open folded by namespace.
pub const AUTO_WORKLOADS: usize = 150;

/// What the user chose: a level (`None`: the most detailed that stays readable), the groups
/// opened one level further, and what to leave out. All of it lives in the page URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub level: Option<Level>,
    pub open: BTreeSet<String>,
    pub hide_probes: bool,
    pub hide_dns: bool,
    pub hide_system: bool,
    pub hide_idle: bool,
}

/// A box: `level` is the DOM hook's `data-level`.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub id: String,
    pub level: &'static str,
    pub label: String,
    /// The line under the label: the workload, `12 pods`, the namespace.
    pub sub: String,
    pub namespace: Option<String>,
    /// Pods folded in (0 for a box that is not a group of pods).
    pub members: u32,
    /// Whether a click opens it one level further.
    pub folded: bool,
    /// The box it folds into one level up (new boxes appear where their parent was).
    pub parent: Option<String>,
    /// Requests into each member pod, by pod id: the replica balance bar.
    pub replicas: Vec<(String, u64)>,
    /// Kubernetes nodes its pods run on.
    pub nodes: BTreeSet<String>,
    /// Requests between its own members (a folded namespace's inner traffic), not drawn.
    pub internal: u64,
}

/// A drawn edge: the sum of its member edges.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub source: String,
    pub target: String,
    pub requests: u64,
    pub connections: u64,
    pub errors: u64,
    pub probe_requests: u64,
    pub dns_requests: u64,
    pub bytes: u64,
    pub gapped_connections: u64,
    pub protocols: BTreeSet<String>,
    /// How many of the server's edges it sums.
    pub members: u32,
    /// Into or out of a Kafka topic's box: the topic (its requests are counted on the edges to
    /// the broker too, so no total adds them).
    pub topic: Option<String>,
    /// Percentiles when it is one server edge (exact); `None` for a sum (ask the server).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Link {
    /// Only kubelet probes: drawn dashed.
    pub fn probe_only(&self) -> bool {
        self.requests > 0 && self.probe_requests == self.requests
    }

    /// Only DNS queries: drawn dotted.
    pub fn dns_only(&self) -> bool {
        self.requests > 0 && self.dns_requests == self.requests
    }

    /// Whether its requests are counted on other links already (`MapEdge::counted_elsewhere`).
    pub fn counted_elsewhere(&self) -> bool {
        self.source.starts_with("service:") || self.topic.is_some()
    }
}

/// The folded map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Folded {
    pub level: Option<Level>,
    pub groups: Vec<Group>,
    pub links: Vec<Link>,
    /// What the toggles left out, for the toolbar: probe requests, DNS queries, kube-system
    /// requests, idle edges.
    pub hidden: Hidden,
    /// Requests shown, each once (on its first leg), drawn or inside a folded box.
    pub requests: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hidden {
    pub probe_requests: u64,
    pub dns_requests: u64,
    pub system_requests: u64,
    pub idle_edges: u64,
}

fn is_system(n: &MapNode) -> bool {
    n.namespace.as_deref() == Some("kube-system")
}

/// The level `Options::level: None` stands for on this map.
pub fn auto_level(map: &ServiceMap) -> Level {
    if map.nodes.len() <= AUTO_PODS {
        return Level::Pod;
    }
    let workloads: BTreeSet<String> =
        map.nodes.iter().map(|n| box_of(n, Level::Workload, &BTreeSet::new(), &BTreeMap::new()).0).collect();
    if workloads.len() <= AUTO_WORKLOADS { Level::Workload } else { Level::Namespace }
}

/// The box `n` is drawn in, and the one that box folds into.
fn box_of(
    n: &MapNode,
    level: Level,
    open: &BTreeSet<String>,
    blocks: &BTreeMap<String, u32>,
) -> (String, Option<String>) {
    let ns = n.namespace.as_deref();
    let ns_box = ns.map(namespace_id);
    let ns_folded = level == Level::Namespace && ns_box.as_ref().is_some_and(|b| !open.contains(b));
    match n.kind {
        EndpointKind::Pod | EndpointKind::Service if ns_folded => {
            (ns_box.expect("folded namespaces have a name"), None)
        }
        EndpointKind::Pod => {
            let wl = match (ns, &n.workload) {
                (Some(ns), Some(w)) => Some(workload_id(ns, w)),
                _ => None,
            };
            match wl {
                Some(w) if level <= Level::Workload && !open.contains(&w) => (w, ns_box),
                Some(w) => (n.id.clone(), Some(w)),
                None => (n.id.clone(), ns_box),
            }
        }
        EndpointKind::Service => (n.id.clone(), ns_box),
        EndpointKind::External if level < Level::Pod => match external_group_of(n) {
            Some(b) if blocks.get(&b).copied().unwrap_or(0) > 1 && !open.contains(&b) => (b, None),
            Some(b) => (n.id.clone(), Some(b)),
            None => (n.id.clone(), None),
        },
        _ => (n.id.clone(), None),
    }
}

/// The box an external peer folds into: its DNS name's (its label, when that is not its
/// address), else its address block's.
fn external_group_of(n: &MapNode) -> Option<String> {
    let ip: std::net::IpAddr = n.id.strip_prefix("external:")?.parse().ok()?;
    let name = Some(n.label.as_str()).filter(|l| *l != ip.to_string());
    Some(external_group(ip, name))
}

/// Folds `map` as `opts` asks.
pub fn fold(map: &ServiceMap, opts: &Options) -> Folded {
    let level = opts.level.unwrap_or_else(|| auto_level(map));
    let mut blocks: BTreeMap<String, u32> = BTreeMap::new();
    for n in map.nodes.iter().filter(|n| n.kind == EndpointKind::External) {
        if let Some(g) = external_group_of(n) {
            *blocks.entry(g).or_default() += 1;
        }
    }
    // Boxes by index, nodes by index: the edges are summed through integer keys (the click
    // that opens a namespace folds 4,000 edges in its own task).
    let index: FxHashMap<&str, usize> = map.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut groups: Vec<Group> = Vec::new();
    let mut group_at: FxHashMap<String, usize> = FxHashMap::default();
    // Each node's box (`None`: left out).
    let mut home: Vec<Option<usize>> = vec![None; map.nodes.len()];
    let mut hidden = Hidden::default();
    for (i, n) in map.nodes.iter().enumerate() {
        if opts.hide_system && is_system(n) {
            continue;
        }
        // A locked box stays itself, except inside its folded namespace.
        let (id, parent) = match (n.locked, level, &n.namespace) {
            (true, Level::Namespace, Some(ns)) if !opts.open.contains(&namespace_id(ns)) => (namespace_id(ns), None),
            (true, _, _) => (n.id.clone(), None),
            (false, _, _) => box_of(n, level, &opts.open, &blocks),
        };
        let at = match group_at.get(&id) {
            Some(&at) => at,
            None => {
                groups.push(new_group(&id, n, parent));
                group_at.insert(id, groups.len() - 1);
                groups.len() - 1
            }
        };
        let g = &mut groups[at];
        // A locked box's pods are not the viewer's to count.
        if n.kind == EndpointKind::Pod && !n.locked {
            if g.level != "pod" {
                g.members += 1;
                g.replicas.push((n.id.clone(), 0));
            }
            g.nodes.extend(n.node.iter().cloned());
        }
        home[i] = Some(at);
    }
    let node_of = |id: &str| index.get(id).copied();
    let mut links: FxHashMap<(usize, usize), Link> = FxHashMap::default();
    let mut requests = 0;
    let mut linked = vec![false; groups.len()];
    let mut had_edges = vec![false; groups.len()];
    for e in &map.edges {
        let (sn, tn) = (node_of(&e.source), node_of(&e.target));
        let (s, t) = (sn.and_then(|i| home[i]), tn.and_then(|i| home[i]));
        for g in [s, t].into_iter().flatten() {
            had_edges[g] = true;
        }
        let system = [sn, tn].into_iter().flatten().any(|i| is_system(&map.nodes[i]));
        if opts.hide_system && system {
            if !e.counted_elsewhere() {
                hidden.system_requests += e.requests;
            }
            continue;
        }
        let (Some(s), Some(t)) = (s, t) else { continue };
        // A request through a Service is on two edges, a Produce or Fetch also on its topics'
        // edges; what was left out is counted on its first.
        let first_leg = !e.counted_elsewhere();
        let Some(e) = shown(e, opts, &mut hidden, first_leg) else { continue };
        requests += e.requests * u64::from(first_leg);
        if let Some(r) = groups[t].replicas.iter_mut().find(|(pod, _)| *pod == e.target && e.topic.is_none()) {
            r.1 += e.requests;
        }
        linked[s] = true;
        linked[t] = true;
        if s == t {
            groups[s].internal += e.requests;
            continue;
        }
        links.entry((s, t)).or_insert_with(|| Link::new(&groups[s].id, &groups[t].id)).add(&e);
    }
    // A box whose every edge was left out goes too (the node that only sent probes); a box that
    // never had an edge stays.
    let mut kept: Vec<Group> = groups
        .into_iter()
        .enumerate()
        .filter(|(i, _)| linked[*i] || !had_edges[*i])
        .map(|(_, mut g)| {
            if g.members > 0 {
                g.sub = format!("{} · {} pod{}", g.sub, g.members, if g.members == 1 { "" } else { "s" });
            }
            g
        })
        .collect();
    kept.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let mut links: Vec<Link> = links.into_values().collect();
    links.sort_unstable_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    Folded { level: Some(level), groups: kept, links, hidden, requests }
}

/// `e` as the toggles leave it, or `None` when they leave nothing of it. `count`: whether what
/// it loses is counted as left out (on a request's first leg only).
/// (Borrowed unless a toggle changes it: most edges pass as they are.)
fn shown<'a>(e: &'a MapEdge, opts: &Options, hidden: &mut Hidden, count: bool) -> Option<Cow<'a, MapEdge>> {
    let mut e = Cow::Borrowed(e);
    let n = u64::from(count);
    let probes = e.probe_requests;
    if opts.hide_probes && probes > 0 {
        hidden.probe_requests += probes * n;
        let e = e.to_mut();
        e.probe_requests = 0;
        take(e, probes)?;
    }
    let dns = e.dns_requests;
    if opts.hide_dns && dns > 0 {
        hidden.dns_requests += dns * n;
        let e = e.to_mut();
        e.dns_requests = 0;
        take(e, dns)?;
    }
    if opts.hide_idle && e.requests == 0 {
        hidden.idle_edges += n;
        return None;
    }
    Some(e)
}

/// Takes `part` of `e`'s requests away; `None` when they were all of them.
fn take(e: &mut MapEdge, part: u64) -> Option<()> {
    let all = part == e.requests;
    e.requests -= part;
    e.errors = e.errors.min(e.requests);
    (!all).then_some(())
}

fn new_group(id: &str, n: &MapNode, parent: Option<String>) -> Group {
    let (kind, rest) = id.split_once(':').unwrap_or(("ip", id));
    let (level, label, sub, folded) = match kind {
        // A peer outside the viewer's namespaces: its workload only, never opened (folded into
        // its namespace's box, that box is the namespace's, whatever came first).
        _ if n.locked && kind != "namespace" => {
            let sub = match (&n.workload, &n.namespace) {
                (Some(w), Some(ns)) => {
                    format!("{} · {ns} · outside your namespaces", w.split('/').next().unwrap_or(""))
                }
                (None, Some(ns)) => format!("namespace {ns} · outside your namespaces"),
                _ => "outside your namespaces".to_string(),
            };
            ("locked", n.label.clone(), sub, false)
        }
        "namespace" => ("namespace", rest.to_string(), "namespace".to_string(), true),
        "workload" => {
            let (kind, name) = rest.split_once('/').map_or(("", rest), |(_, w)| w.split_once('/').unwrap_or(("", w)));
            ("workload", name.to_string(), format!("{} · {}", kind, n.namespace.as_deref().unwrap_or("")), true)
        }
        "external" if rest.contains('/') => ("external", rest.to_string(), "external peers".to_string(), true),
        // Every address one DNS name answered with.
        "external" if rest.parse::<std::net::IpAddr>().is_err() => {
            ("external", rest.to_string(), "external · by DNS name".to_string(), true)
        }
        _ => {
            let level = match n.kind {
                EndpointKind::Pod => "pod",
                EndpointKind::Service => "service",
                EndpointKind::Node => "node",
                EndpointKind::External => "external",
                EndpointKind::Unknown => "unresolved",
                EndpointKind::Topic => "topic",
            };
            let sub = match (&n.workload, &n.namespace) {
                (Some(w), _) => w.clone(),
                (None, Some(ns)) => format!("{level} · {ns}"),
                (None, None) => level.to_string(),
            };
            (level, n.label.clone(), sub, false)
        }
    };
    Group {
        id: id.to_string(),
        level,
        label,
        sub,
        namespace: n.namespace.clone(),
        members: 0,
        folded,
        parent,
        replicas: Vec::new(),
        nodes: BTreeSet::new(),
        internal: 0,
    }
}

impl Link {
    /// An edge with nothing on it yet.
    pub fn new(s: &str, t: &str) -> Link {
        Link {
            source: s.to_string(),
            target: t.to_string(),
            requests: 0,
            connections: 0,
            errors: 0,
            probe_requests: 0,
            dns_requests: 0,
            bytes: 0,
            gapped_connections: 0,
            protocols: BTreeSet::new(),
            topic: None,
            members: 0,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
        }
    }

    fn add(&mut self, e: &MapEdge) {
        self.requests += e.requests;
        self.connections += e.connections;
        self.errors += e.errors;
        self.probe_requests += e.probe_requests;
        self.dns_requests += e.dns_requests;
        self.bytes += e.bytes;
        self.gapped_connections += e.gapped_connections;
        for p in &e.protocols {
            if !self.protocols.contains(p) {
                self.protocols.insert(p.clone());
            }
        }
        if self.topic.is_none() {
            self.topic.clone_from(&e.topic);
        }
        self.members += 1;
        (self.p50_ms, self.p95_ms, self.p99_ms) =
            if self.members == 1 { (e.p50_ms, e.p95_ms, e.p99_ms) } else { (None, None, None) };
    }
}

#[cfg(test)]
mod tests;
