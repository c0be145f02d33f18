//! Data quality on the map: what podtap could not see, where it affects the picture. A box gets a
//! badge when its address is unresolved or when a node its pods run on lost packets or has no
//! agent; an edge when connections on it had holes; the view gets one bar with a line for each
//! problem. Counts that may be low are marked (`≥`), never shown as exact.

use std::collections::{BTreeMap, BTreeSet};

use podtap_shared::AgentStatus;
use serde::Deserialize;

use super::fold::Folded;

/// What `/healthz` says about the capture (the fields the map needs; the rest is ignored).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Health {
    #[serde(default)]
    pub capture: Option<CaptureHealth>,
    #[serde(default)]
    pub engine: Option<EngineHealth>,
    #[serde(default)]
    pub store: StoreHealth,
    /// A hub replica on a bus: every partition, merged or waiting.
    #[serde(default)]
    pub bus: Option<podtap_shared::BusStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct CaptureHealth {
    #[serde(default)]
    pub drops: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct EngineHealth {
    #[serde(default)]
    pub unmatched_responses: u64,
    #[serde(default)]
    pub one_way_responses: u64,
    /// Records that waited for the API server to name a new pod's address in vain.
    #[serde(default)]
    pub late_unnamed: u64,
    #[serde(default)]
    pub tcp: TcpHealth,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct TcpHealth {
    #[serde(default)]
    pub gaps: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct StoreHealth {
    #[serde(default)]
    pub oldest_us: Option<u64>,
    #[serde(default)]
    pub newest_us: Option<u64>,
}

/// Everything the page knows about how complete its data is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    pub health: Option<Health>,
    pub agents: Vec<AgentStatus>,
    /// Records this browser was not sent because it fell behind.
    pub skipped: u64,
    /// The last sampled second: shown of matched.
    pub sampled: Option<(u64, u64)>,
    /// Kubernetes kinds podtap could not list.
    pub missing: Vec<String>,
}

/// A mark on a box or an edge: its kind (a CSS class and `data-quality` value) and one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Badge {
    pub kind: &'static str,
    pub text: String,
}

/// One line of the quality bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub kind: &'static str,
    pub text: String,
    pub title: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quality {
    pub boxes: BTreeMap<String, Vec<Badge>>,
    pub links: BTreeMap<(String, String), Vec<Badge>>,
    /// Boxes whose counts may be low (their node lost packets or has no agent).
    pub unsure: BTreeSet<String>,
    pub bar: Vec<Note>,
}

impl Quality {
    /// Whether an edge's numbers may be low.
    pub fn edge_unsure(&self, source: &str, target: &str) -> bool {
        self.unsure.contains(source)
            || self.unsure.contains(target)
            || self.links.contains_key(&(source.to_string(), target.to_string()))
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn assess(f: &Folded, ctx: &Context) -> Quality {
    let mut q = Quality::default();
    // Per node: what its agent says.
    let mut node_trouble: BTreeMap<&str, Vec<Badge>> = BTreeMap::new();
    for a in &ctx.agents {
        let list = node_trouble.entry(a.node.as_str()).or_default();
        if !a.connected {
            list.push(Badge {
                kind: "agent-missing",
                text: format!("no agent connected on node {}: its traffic is not seen", a.node),
            });
        }
        if a.kernel_drops > 0 {
            list.push(Badge {
                kind: "drops",
                text: format!("node {}: {} dropped by the kernel", a.node, plural(a.kernel_drops, "packet", "packets")),
            });
        }
        if a.reassembly_gaps > 0 {
            list.push(Badge {
                kind: "gaps",
                text: format!("node {}: {} in TCP streams", a.node, plural(a.reassembly_gaps, "hole", "holes")),
            });
        }
    }
    let mut unresolved_requests = 0;
    let total: u64 = f.links.iter().filter(|l| !l.counted_elsewhere()).map(|l| l.requests).sum();
    for g in &f.groups {
        let mut badges = Vec::new();
        if g.level == "unresolved" {
            badges.push(Badge {
                kind: "unresolved",
                text: "an address the cluster state does not name (not a pod, Service or node podtap knows)".into(),
            });
        }
        for n in &g.nodes {
            if let Some(list) = node_trouble.get(n.as_str()) {
                badges.extend(list.iter().cloned());
            }
        }
        if badges.iter().any(|b| b.kind != "unresolved") {
            q.unsure.insert(g.id.clone());
        }
        if !badges.is_empty() {
            q.boxes.insert(g.id.clone(), badges);
        }
    }
    for l in &f.links {
        if l.gapped_connections > 0 {
            q.links.insert(
                (l.source.clone(), l.target.clone()),
                vec![Badge {
                    kind: "gaps",
                    text: format!(
                        "{} with holes the capture never saw: requests on them may be missing",
                        plural(l.gapped_connections, "connection", "connections")
                    ),
                }],
            );
        }
        let unresolved = |id: &str| id.starts_with("ip:");
        if (unresolved(&l.source) || unresolved(&l.target)) && !l.source.starts_with("service:") {
            unresolved_requests += l.requests;
        }
    }
    bar(&mut q, f, ctx, unresolved_requests, total);
    q
}

fn bar(q: &mut Quality, f: &Folded, ctx: &Context, unresolved: u64, total: u64) {
    let note = |kind, text: String, title: &str| Note { kind, text, title: title.to_string() };
    let health = ctx.health.clone().unwrap_or_default();
    let drops = health.capture.map_or(0, |c| c.drops) + ctx.agents.iter().map(|a| a.kernel_drops).sum::<u64>();
    if drops > 0 {
        q.bar.push(note(
            "drops",
            format!("{} dropped by the kernel", plural(drops, "packet", "packets")),
            "the capture's rings were full: requests in those packets are not on the map, counts may be low",
        ));
    }
    let engine = health.engine.unwrap_or_default();
    if engine.tcp.gaps > 0 {
        q.bar.push(note(
            "gaps",
            format!("{} in TCP streams", plural(engine.tcp.gaps, "hole", "holes")),
            "bytes the capture never saw: requests in them are missing; edges with such connections are marked",
        ));
    }
    let orphans = engine.unmatched_responses + engine.one_way_responses;
    if orphans > 0 {
        q.bar.push(note(
            "orphans",
            format!("{} without a request", plural(orphans, "response", "responses")),
            "responses whose request was not captured (it came before the capture, or on a path not watched)",
        ));
    }
    if engine.late_unnamed > 0 {
        q.bar.push(note(
            "late-names",
            format!("{} waited for a pod's name in vain", plural(engine.late_unnamed, "record", "records")),
            "records with an address in a pod network that the API server had not given to any pod 10 s later",
        ));
    }
    if unresolved > 0 && total > 0 {
        q.bar.push(note(
            "unresolved",
            format!("{:.1} % of requests to or from unresolved addresses", unresolved as f64 * 100.0 / total as f64),
            "addresses the cluster state does not name: pods that are gone, or names podtap could not list",
        ));
    }
    if let Some(bus) = health.bus.as_ref().filter(|b| b.unreachable_s.is_some()) {
        q.bar.push(note(
            "bus",
            "the bus does not answer: no records merged or read".to_string(),
            &format!(
                "this hub has had no answer from the bus for {:.0} s: the agents keep what they capture until it \
                 is back, and nothing is lost within the bus's retention",
                bus.unreachable_s.unwrap_or_default()
            ),
        ));
    } else if let Some(bus) = &health.bus {
        let stalled: Vec<&podtap_shared::BusPartition> =
            bus.partitions.iter().filter(|p| p.stalled_s.is_some()).collect();
        if !stalled.is_empty() {
            let mut replicas: Vec<String> = stalled.iter().map(|p| format!("{}/{}", p.replica, bus.replicas)).collect();
            replicas.dedup();
            let waiting: u64 = stalled.iter().map(|p| p.waiting).sum();
            let longest = stalled.iter().filter_map(|p| p.stalled_s).fold(0.0, f64::max);
            let which: Vec<String> = stalled.iter().map(|p| p.partition.to_string()).collect();
            q.bar.push(note(
                "bus",
                format!("hub replica {} not merging: its records are late", replicas.join(", ")),
                &format!(
                    "bus partitions {} unread for {longest:.0} s, {} waiting on the bus: nothing is lost, the \
                     records come when the replica is back",
                    which.join(", "),
                    plural(waiting, "batch part", "batch parts")
                ),
            ));
        }
        // A peer merging a share not its own: nothing is late, but one replica does two's work.
        let mut moved: Vec<(u32, u32)> = bus
            .partitions
            .iter()
            .filter(|p| p.stalled_s.is_none())
            .filter_map(|p| p.merged_by.filter(|m| *m != p.replica).map(|m| (p.replica, m)))
            .collect();
        moved.sort_unstable();
        moved.dedup();
        if !moved.is_empty() {
            let said: Vec<String> =
                moved.iter().map(|(away, by)| format!("replica {away}/{n}'s by {by}/{n}", n = bus.replicas)).collect();
            q.bar.push(note(
                "bus-takeover",
                format!("hub replica shares taken over: {}", said.join(", ")),
                "a hub replica is away and a peer merges its bus partitions: nothing is late or lost, and the \
                 share goes back when the replica returns",
            ));
        }
    }
    let away: Vec<&str> = ctx.agents.iter().filter(|a| !a.connected).map(|a| a.node.as_str()).collect();
    if !away.is_empty() {
        q.bar.push(note(
            "agent-missing",
            format!("agents missing: {} of {}", away.len(), ctx.agents.len()),
            &format!("no agent connected on {}: traffic on those nodes is not seen", away.join(", ")),
        ));
    }
    if ctx.skipped > 0 || ctx.sampled.is_some_and(|(shown, matched)| shown < matched) {
        q.bar.push(note(
            "lagged",
            "this browser is shown a sample of the records".into(),
            "the list and lanes show part of the records; the map's counts come from the server and are complete",
        ));
    }
    if !ctx.missing.is_empty() {
        q.bar.push(note(
            "names",
            format!("names incomplete: {}", ctx.missing.join(", ")),
            "podtap could not list these kinds: some boxes are not named or grouped",
        ));
    }
    let hidden = f.hidden;
    let left_out = [
        (hidden.probe_requests, "probe request", "probe requests"),
        (hidden.dns_requests, "DNS query", "DNS queries"),
        (hidden.system_requests, "kube-system request", "kube-system requests"),
        (hidden.idle_edges, "idle edge", "idle edges"),
    ];
    let parts: Vec<String> =
        left_out.iter().filter(|(n, ..)| *n > 0).map(|(n, one, many)| plural(*n, one, many)).collect();
    if !parts.is_empty() {
        q.bar.push(note("hidden", format!("left out: {}", parts.join(", ")), "the toggles above hide these"));
    }
}

#[cfg(test)]
mod tests;
