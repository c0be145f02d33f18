//! Badges go where the problem is, and the bar names each problem once.

use std::collections::BTreeSet;

use podtap_shared::AgentStatus;

use super::*;
use crate::map::fold::{Group, Hidden, Link};

fn group(id: &str, level: &'static str, node: Option<&str>) -> Group {
    Group {
        id: id.into(),
        level,
        label: id.into(),
        sub: String::new(),
        namespace: None,
        members: 0,
        folded: false,
        parent: None,
        replicas: vec![],
        nodes: node.map(|n| BTreeSet::from([n.to_string()])).unwrap_or_default(),
        internal: 0,
    }
}

fn link(s: &str, t: &str, requests: u64, gapped: u64) -> Link {
    Link { requests, connections: 1, gapped_connections: gapped, members: 1, ..Link::new(s, t) }
}

#[test]
fn badges_sit_on_what_is_affected_and_the_bar_says_each_problem() {
    let f = Folded {
        level: None,
        groups: vec![
            group("pod:a/client", "pod", Some("n1")),
            group("pod:a/web", "pod", Some("n2")),
            group("ip:10.9.9.9", "unresolved", None),
        ],
        links: vec![link("pod:a/client", "pod:a/web", 90, 1), link("pod:a/client", "ip:10.9.9.9", 10, 0)],
        hidden: Hidden { probe_requests: 4, ..Hidden::default() },
        requests: 100,
    };
    let agents = vec![
        AgentStatus { node: "n1".into(), connected: true, ..AgentStatus::default() },
        AgentStatus { node: "n2".into(), connected: false, kernel_drops: 7, ..AgentStatus::default() },
    ];
    let q = assess(&f, &Context { agents, ..Context::default() });
    let kinds = |id: &str| q.boxes.get(id).map(|b| b.iter().map(|b| b.kind).collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(kinds("pod:a/web"), ["agent-missing", "drops"]);
    assert_eq!(kinds("pod:a/client"), Vec::<&str>::new());
    assert_eq!(kinds("ip:10.9.9.9"), ["unresolved"]);
    // web's node lost packets: every count touching it may be low; the gapped edge too.
    assert!(q.edge_unsure("pod:a/client", "pod:a/web"));
    assert!(!q.edge_unsure("pod:a/client", "ip:10.9.9.9"));
    let bar: Vec<&str> = q.bar.iter().map(|n| n.kind).collect();
    assert_eq!(bar, ["drops", "unresolved", "agent-missing", "hidden"]);
    assert_eq!(q.bar[1].text, "10.0 % of requests to or from unresolved addresses");
    assert_eq!(q.bar[2].text, "agents missing: 1 of 2");
    assert_eq!(q.bar[3].text, "left out: 4 probe requests");
}

#[test]
fn a_clean_capture_has_an_empty_bar() {
    let f = Folded { links: vec![link("pod:a/x", "pod:a/y", 5, 0)], ..Folded::default() };
    let q = assess(&f, &Context::default());
    assert!(q.bar.is_empty() && q.boxes.is_empty() && q.links.is_empty());
}

#[test]
fn health_is_read_from_what_healthz_answers() {
    let h: Health = serde_json::from_str(
        r#"{"status":"ok","capture":{"packets":9,"drops":3,"interfaces":[]},
            "engine":{"unmatched_responses":2,"one_way_responses":1,"late_unnamed":1,"tcp":{"gaps":5,"segments":1}},
            "store":{"records":1,"oldest_us":10,"newest_us":20}}"#,
    )
    .unwrap();
    let q = assess(&Folded::default(), &Context { health: Some(h), ..Context::default() });
    let texts: Vec<&str> = q.bar.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "3 packets dropped by the kernel",
            "5 holes in TCP streams",
            "3 responses without a request",
            "1 record waited for a pod's name in vain"
        ]
    );
}

#[test]
fn a_hub_replica_away_is_named_with_what_waits_for_it() {
    let h: Health = serde_json::from_str(
        r#"{"status":"ok","store":{},"bus":{"replica":0,"replicas":2,"partitions":[
            {"partition":0,"replica":0,"waiting":0},
            {"partition":1,"replica":1,"waiting":12,"stalled_s":40.0},
            {"partition":2,"replica":0,"waiting":1},
            {"partition":3,"replica":1,"waiting":9,"stalled_s":38.0}]}}"#,
    )
    .unwrap();
    let q = assess(&Folded::default(), &Context { health: Some(h.clone()), ..Context::default() });
    let note = q.bar.iter().find(|n| n.kind == "bus").expect("a bus note");
    assert_eq!(note.text, "hub replica 1/2 not merging: its records are late");
    assert!(note.title.starts_with("bus partitions 1, 3 unread for 40 s, 21 batch parts waiting"), "{}", note.title);
    // Every partition read again: nothing to say.
    let mut back = h.clone();
    for p in &mut back.bus.as_mut().unwrap().partitions {
        p.stalled_s = None;
    }
    assert!(assess(&Folded::default(), &Context { health: Some(back.clone()), ..Context::default() }).bar.is_empty());
    // Replica 0 took replica 1's share over: said, as a takeover, not as lateness.
    for p in &mut back.bus.as_mut().unwrap().partitions {
        p.merged_by = Some(0);
    }
    let q = assess(&Folded::default(), &Context { health: Some(back), ..Context::default() });
    let texts: Vec<(&str, &str)> = q.bar.iter().map(|n| (n.kind, n.text.as_str())).collect();
    assert_eq!(texts, [("bus-takeover", "hub replica shares taken over: replica 1/2's by 0/2")]);
    // The bus itself silent: that alone is said (what the partitions were is stale).
    let mut silent = h;
    silent.bus.as_mut().unwrap().unreachable_s = Some(12.0);
    let q = assess(&Folded::default(), &Context { health: Some(silent), ..Context::default() });
    let texts: Vec<(&str, &str)> = q.bar.iter().map(|n| (n.kind, n.text.as_str())).collect();
    assert_eq!(texts, [("bus", "the bus does not answer: no records merged or read")]);
    assert!(q.bar[0].title.contains("for 12 s"), "{}", q.bar[0].title);
}
