//! podtap's own parts failing on the real cluster (`cargo xtask cluster up --nodes 2`, run by the
//! test command in both kube-proxy modes), as the fast tier's `nodes.sh` does it on imitation
//! nodes: the seed's web Deployment, and a client Job per phase on lab-node-2 opening a connection
//! per request to web's ClusterIP, so its calls are served by pods on both nodes.
//!
//! 1. healthy: every call exact;
//! 2. lab-node-2's agent killed (SIGKILL): the hub has exactly what lab-node-1 saw — the calls web's
//!    pods there served, no other — and shows the agent's outage over the phase;
//! 3. the agent started again: every call exact;
//! 4. the hub killed (SIGKILL) while both agents buffer, then started again: every call of the
//!    phase it was down for, and of the one after, exact at the new hub; no batch dropped.
//!
//! With `PODTAP_LAB_BUS=1` (a second run in iptables mode), the agents publish to a bus and two
//! hub replicas merge it; in phase 4 both replicas are killed while the bus keeps what the
//! agents publish.
//!
//! Exact means: the client's calls as its log says (one local port each) and the web pod that
//! logged each are the records' source ports and server pods, one for one.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::lab_cluster::*;
use podtap_shared::record::Record;
use serde_json::Value;

const CLIENT_NODE: &str = "lab-node-2";
const JOBS: [&str; 5] =
    ["outage-healthy", "outage-agent-down", "outage-agent-back", "outage-hub-down", "outage-hub-back"];

/// (client's port, the web pod that served it), sorted: one per call.
type Calls = Vec<(u64, String)>;

/// A phase: a client Job on CLIENT_NODE, one connection per request; its pod's name and
/// (first, last) call time in microseconds.
fn phase(c: &Cluster, name: &str) -> (String, u64, u64) {
    let pod = c.run_job("seed-client", name, CLIENT_NODE, &[("\"keepalive\"", "\"per-request\"")]);
    let lines = &log_lines(&c.logs(), "")[name];
    let ts: Vec<u64> = lines.iter().map(|l| (l["ts"].as_f64().unwrap() * 1e6) as u64).collect();
    (pod, *ts.iter().min().unwrap(), *ts.iter().max().unwrap())
}

/// How long before its client logged its first call (after reading the answer) the web pod may
/// have logged it (before answering): a call slowed by a retransmission takes more than a second.
const CALL_S: f64 = 5.0;

/// Which port a call is known by: the client's own (what its node saw, and a merged record keeps),
/// or the one the serving pod saw (its node's view alone; conntrack may have moved it).
#[derive(Clone, Copy)]
enum Port {
    Client,
    AtServer,
}

/// What the logs say of `job`'s calls (its pod at address `ip`): each call's port and the web pod
/// that logged it, keeping those `keep` allows (by the serving pod). The client calls one at a
/// time, so each call's line at a web pod is the one from its address logged after the client's
/// previous call ended and before this one did (the first: within `CALL_S`, after the phase
/// before), whatever port it came from: conntrack gives a connection another source port when
/// its DNAT'd reply would clash with a connection it still holds (an earlier pod with this
/// address and that port, in the second run on one cluster: CI of 4e26e12). No line twice; more
/// than one is ambiguous unless one has the client's port.
fn truth(c: &Cluster, job: &str, ip: &str, port_of: Port, keep: impl Fn(&str) -> bool) -> Calls {
    let logs = log_lines(&c.logs(), "");
    let mut lines = logs[job].clone();
    let ts = |l: &Value| l["ts"].as_f64().unwrap();
    lines.sort_by(|a, b| ts(a).total_cmp(&ts(b)));
    // The phase before ended before this one began: its client (often at this address) logged its
    // last call after its web line, so nothing from before that is this phase's.
    let first = lines.first().map_or(0.0, ts);
    let earlier = logs
        .iter()
        .filter(|(name, _)| name.as_str() != job && JOBS.contains(&name.as_str()))
        .flat_map(|(_, lines)| lines.iter().map(ts))
        .filter(|t| *t < first)
        .fold(0.0, f64::max);
    let web = web_truth(c);
    let is_probe = |w: &Value| w["user_agent"].as_str().unwrap_or("").starts_with("kube-probe/");
    let mut used: std::collections::HashSet<(String, u64)> = std::collections::HashSet::new();
    let mut calls: Calls = Vec::new();
    let mut after = (first - CALL_S).max(earlier);
    for l in &lines {
        let (port, at) = (l["local_port"].as_u64().unwrap(), ts(l));
        let candidates: Vec<(&String, &Value)> = web
            .iter()
            .flat_map(|(stem, lines)| lines.iter().map(move |w| (stem, w)))
            .filter(|(stem, w)| {
                w["peer_ip"] == ip && !is_probe(w) && !used.contains(&((*stem).clone(), ts(w).to_bits()))
            })
            .filter(|(_, w)| after < ts(w) && ts(w) <= at + 0.01)
            .collect();
        let same_port: Vec<_> =
            candidates.iter().filter(|(_, w)| w["peer_port"].as_u64() == Some(port)).copied().collect();
        let (stem, w) = match (candidates.as_slice(), same_port.as_slice()) {
            ([one], _) | (_, [one]) => *one,
            _ => {
                let pods = c.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"]);
                panic!(
                    "{job}'s call from {ip} port {port} at {at}: {} web lines from {ip} since {after}: {candidates:?}; \
                     web pods now: {:?}, web logs: {:?}",
                    candidates.len(),
                    pods.split_whitespace().collect::<Vec<_>>(),
                    web.keys().collect::<Vec<_>>()
                )
            }
        };
        let served_port = w["peer_port"].as_u64().unwrap();
        if served_port != port {
            eprintln!(
                "{job}: the call from port {port} reached web-{stem} from port {served_port} (conntrack moved it)"
            );
        }
        used.insert((stem.to_string(), ts(w).to_bits()));
        after = at;
        let pod = format!("default/web-{stem}");
        if keep(&pod) {
            calls.push((if matches!(port_of, Port::Client) { port } else { served_port }, pod));
        }
    }
    calls.sort();
    calls
}

/// What `records` say of the calls from pod `client`: source port and server pod.
fn seen(records: &[Record], client: &str) -> Calls {
    let from = format!("default/{client}");
    let mut calls: Calls = records
        .iter()
        .filter(|r| r.http().is_some() && !r.probe && r.src.qualified_name().as_deref() == Some(from.as_str()))
        .map(|r| (u64::from(r.src.port), r.dst.qualified_name().unwrap_or_else(|| r.dst.ip.to_string())))
        .collect();
    calls.sort();
    calls
}

/// The hub's records once it holds `want` HTTP records from `client` and its total is still.
fn hub_records_for(c: &Cluster, client: &str, want: usize) -> Vec<Record> {
    let records = |p: &Value| -> Vec<Record> { serde_json::from_value(p["records"].clone()).unwrap() };
    let what = format!("of {client}'s calls");
    records(&hub_page_when(c, &what, want, |p| seen(&records(p), client).len()))
}

fn address(addresses: &Mutex<Addresses>, pod: &str) -> String {
    let a = addresses.lock().unwrap();
    a.held.iter().rev().find(|h| h.1 == format!("default/{pod}")).expect("the client's address").0.clone()
}

#[test]
#[ignore = "needs the real cluster: cargo xtask test runs it after `cluster up --nodes 2`"]
fn agents_and_the_hub_killed_and_started_again_on_a_real_cluster() {
    let c = Cluster::from_env("outages");
    // An earlier run's Jobs and web pods on this cluster (their logs are gone) are not this one's.
    c.kubectl(&[&["delete", "job", "--ignore-not-found", "--wait=true"], &JOBS[..]].concat());
    // And their logs: a Job's client appends to `NAME.log`, and an earlier run's calls (the test
    // command runs this scenario twice on one cluster, the second time on a bus) would be taken
    // for this run's, with web pods long gone to answer for them.
    for job in JOBS {
        let _ = std::fs::remove_file(c.logs().join(format!("{job}.log")));
    }
    c.kubectl(&["delete", "deployment", "web", "--ignore-not-found", "--cascade=foreground", "--wait=true"]);
    let nodes = node_names(&c);
    assert!(nodes.iter().any(|n| n == CLIENT_NODE), "{nodes:?}");
    let addresses = Arc::new(Mutex::new(Addresses::default()));
    let _watch = watch_pods(&c, addresses.clone());
    let kubeconfig = c.dir.join("kubeconfig");
    let mut podtap = start_podtap(&c, &nodes, &kubeconfig);
    until("the hub's names listed", names_listed);
    c.kubectl(&["apply", "-f", &repo().join("end2end/k8s/scenarios/seed.yaml").display().to_string()]);
    rollout(&c, "default", "web");
    let web_nodes: BTreeMap<String, String> = c.kubectl_json(&["get", "pods", "-l", "app=web"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = format!("default/{}", p["metadata"]["name"].as_str().unwrap());
            (name, p["spec"]["nodeName"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(web_nodes.values().any(|n| n == CLIENT_NODE) && web_nodes.values().any(|n| n == HUB_NODE));
    let all = |_: &str| true;
    let mode = c.mode.clone();

    // 1. Healthy.
    let (healthy, _, _) = phase(&c, "outage-healthy");
    let want = truth(&c, "outage-healthy", &address(&addresses, &healthy), Port::Client, all);
    assert_eq!(seen(&hub_records_for(&c, &healthy, want.len()), &healthy), want, "{mode}: healthy");

    // 2. The client's node's agent killed: what lab-node-1 saw (the calls served there) is all.
    let i = nodes.iter().position(|n| n == CLIENT_NODE).unwrap();
    podtap.agents[i].0.kill().unwrap();
    podtap.agents[i].0.wait().unwrap();
    until("the hub to see the agent gone", || agents_connected() == nodes.len() - 1);
    let (down, from, to) = phase(&c, "outage-agent-down");
    let on_hub_node = |pod: &str| web_nodes.get(pod).is_some_and(|n| n == HUB_NODE);
    // Only lab-node-1 saw these calls: by the port its pod saw them from.
    let want = truth(&c, "outage-agent-down", &address(&addresses, &down), Port::AtServer, on_hub_node);
    assert!(!want.is_empty(), "{mode}: no call served on {HUB_NODE} while the agent was away");
    let served_all = truth(&c, "outage-agent-down", &address(&addresses, &down), Port::AtServer, all).len();
    assert!(served_all > want.len(), "{mode}: no call served on {CLIENT_NODE} while its agent was away");
    let records = hub_records_for(&c, &down, want.len());
    assert_eq!(seen(&records, &down), want, "{mode}: with {CLIENT_NODE}'s agent away, what {HUB_NODE} saw");

    // 3. The agent back.
    let log = format!("agent-{CLIENT_NODE}-2.err");
    podtap.agents[i] =
        if on_bus() { start_bus_agent(&c, CLIENT_NODE, &log) } else { start_agent(&c, CLIENT_NODE, &log) };
    until("the agent back", || agents_connected() == nodes.len());
    let (back, _, _) = phase(&c, "outage-agent-back");
    let want = truth(&c, "outage-agent-back", &address(&addresses, &back), Port::Client, all);
    assert_eq!(seen(&hub_records_for(&c, &back, want.len()), &back), want, "{mode}: the agent back");
    // The outage is on the record, over the whole phase.
    let now = health().expect("the hub answers");
    let agent = now["agents"].as_array().unwrap().iter().find(|a| a["node"] == CLIENT_NODE).cloned();
    let agent = agent.expect("the agent in /healthz");
    let outage: &Value = &agent["outages"][0];
    let span = (outage["from_us"].as_u64(), outage["to_us"].as_u64());
    assert!(
        span.0.is_some_and(|f| f <= from) && span.1.is_some_and(|t| t >= to),
        "{mode}: the outage {outage} covers the phase {from}..{to}: {agent}"
    );

    // 4. The hub killed while both agents buffer (on the bus: every replica, while the bus keeps
    //    what the agents publish), started again.
    podtap.hub.0.kill().unwrap();
    podtap.hub.0.wait().unwrap();
    let second = podtap.rest.get_mut(1).map(|r| r.0.kill().and_then(|()| r.0.wait()));
    assert_eq!(second.is_some(), on_bus(), "{mode}: the second replica");
    let (hub_down, _, _) = phase(&c, "outage-hub-down");
    if on_bus() {
        podtap.hub = start_replica(&c, &kubeconfig, 0, "hub-2.err");
        podtap.rest[1] = start_replica(&c, &kubeconfig, 1, "hub-1-2.err");
    } else {
        podtap.hub = start_hub(&c, &kubeconfig, "hub-2.err");
    }
    until("the agents back at the new hub", || agents_connected() == nodes.len());
    until("the new hub's names listed", names_listed);
    let want = truth(&c, "outage-hub-down", &address(&addresses, &hub_down), Port::Client, all);
    assert_eq!(seen(&hub_records_for(&c, &hub_down, want.len()), &hub_down), want, "{mode}: while the hub was down");
    let (hub_back, _, _) = phase(&c, "outage-hub-back");
    let want = truth(&c, "outage-hub-back", &address(&addresses, &hub_back), Port::Client, all);
    let records = hub_records_for(&c, &hub_back, want.len());
    assert_eq!(seen(&records, &hub_back), want, "{mode}: the hub back");
    std::fs::write(c.out.join("hub-records.json"), serde_json::to_string(&records).unwrap()).unwrap();
    for a in health().expect("the hub answers")["agents"].as_array().unwrap() {
        assert_eq!((a["connected"].as_bool(), a["dropped_batches"].as_u64()), (Some(true), Some(0)), "{mode}: {a}");
    }
    c.kubectl(&[&["delete", "job", "--wait=true"], &JOBS[..]].concat());
    // In the foreground: the web pods are gone when the test ends, not left to the garbage
    // collector while the next scenario starts.
    let seed = repo().join("end2end/k8s/scenarios/seed.yaml").display().to_string();
    c.kubectl(&["delete", "-f", &seed, "--cascade=foreground", "--wait=true", "--timeout=90s"]);
}

/// The web truth's probes: a probe the app logged is the prober's by its socket, or — when
/// conntrack gave it another source port — by pod, address and time, one app line per prober
/// line; anything else is reported.
#[test]
fn a_probe_whose_port_conntrack_changed_is_still_the_probers() {
    let probe = |ts: f64, port: u64| serde_json::json!({"ts": ts, "pod": "default/web-a", "local_ip": "10.244.0.1", "local_port": port});
    let app = |ts: f64, port: u64| serde_json::json!({"ts": ts, "peer_ip": "10.244.0.1", "peer_port": port, "user_agent": "kube-probe/1.37"});
    let probes = [probe(10.0, 40000), probe(11.0, 40002), probe(13.0, 40004)];
    // By socket, and one whose port changed (40002 → 1306) a few ms after the prober began it.
    let lines = [app(10.001, 40000), app(11.004, 1306), app(13.001, 40004)];
    assert_eq!(unsent_probe("a", &lines, &probes), None);
    // The prober's line that the moved probe stands for accounts for one probe only.
    let twice = [app(10.001, 40000), app(11.004, 1306), app(11.006, 1307)];
    assert_eq!(unsent_probe("a", &twice, &probes), Some(&twice[2]));
    // Too far from any prober's line, or another pod's probe: not the prober's.
    let late = [app(10.001, 40000), app(14.5, 1306)];
    assert_eq!(unsent_probe("a", &late, &probes), Some(&late[1]));
    assert_eq!(unsent_probe("b", &lines[..1], &probes), Some(&lines[0]));
}
