//! The rule against a brute-force reading of its sentence, on random records (either side in one
//! of a few namespaces, or in none) and random viewers: which records are seen, that an
//! endpoint of the viewer's is whole, and that nothing naming the outside side — its pod, its
//! address, its node — is anywhere in what the viewer gets.

use std::collections::BTreeSet;
use std::net::IpAddr;

use podtap_shared::{EndpointKind, Record, Tunnel, TunnelKind};
use proptest::prelude::*;

use super::*;

const NAMESPACES: [&str; 4] = ["team-a", "team-b", "team-c", "kube-system"];

/// One side: a namespace (or none), and marks unique to the side so a leak is found by searching.
fn side(e: &mut Endpoint, tag: &str, ns: Option<usize>, last: u8) {
    e.ip = IpAddr::from([10, 244, 7, last]);
    e.port = 40_000 + u16::from(last);
    e.node = Some(format!("node-of-{tag}").into());
    match ns {
        Some(i) => {
            e.kind = EndpointKind::Pod;
            e.namespace = Some(NAMESPACES[i].into());
            e.name = Some(format!("pod-of-{tag}").into());
            e.workload = Some(format!("Deployment/app-{i}").into());
        }
        None => {
            e.kind = EndpointKind::External;
            (e.namespace, e.name, e.workload) = (None, None, None);
        }
    }
}

fn record(src_ns: Option<usize>, dst_ns: Option<usize>) -> Record {
    let mut r = Record::test();
    side(&mut r.src, "src", src_ns, 11);
    side(&mut r.dst, "dst", dst_ns, 22);
    r.nodes = vec!["node-of-src".into(), "node-of-dst".into()];
    r.interface = Some("veth-of-both".into());
    let mut snat = r.src.clone();
    snat.ip = IpAddr::from([192, 168, 9, 33]);
    r.snat = Some(Box::new(snat));
    let mut addressed = r.dst.clone();
    addressed.ip = IpAddr::from([10, 96, 0, 44]);
    r.addressed = Some(Box::new(addressed));
    r.tunnel = Some(Box::new(Tunnel {
        kind: TunnelKind::Vxlan,
        outer_src: IpAddr::from([192, 168, 9, 55]),
        outer_dst: IpAddr::from([192, 168, 9, 66]),
        vni: Some(1),
    }));
    r
}

/// The sentence, read literally.
fn brute_visible(r: &Record, sight: &Sight) -> bool {
    match sight {
        Sight::All => true,
        Sight::Namespaces { names, unnamespaced } => {
            let mine = |e: &Endpoint| e.namespace.as_deref().is_some_and(|ns| names.contains(ns));
            if r.src.namespace.is_none() && r.dst.namespace.is_none() {
                *unnamespaced
            } else {
                mine(&r.src) || mine(&r.dst)
            }
        }
    }
}

fn ns_choice() -> impl Strategy<Value = Option<usize>> {
    prop::option::weighted(0.8, 0..NAMESPACES.len())
}

fn sight() -> impl Strategy<Value = Sight> {
    prop_oneof![
        1 => Just(Sight::All),
        6 => (prop::collection::btree_set(0..NAMESPACES.len(), 0..3), any::<bool>()).prop_map(|(s, u)| {
            Sight::Namespaces { names: s.into_iter().map(|i| NAMESPACES[i].to_string()).collect(), unnamespaced: u }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_viewer_sees_what_the_rule_says_and_nothing_of_the_outside_side(
        sides in prop::collection::vec((ns_choice(), ns_choice()), 1..20),
        sight in sight(),
    ) {
        for (s, d) in sides {
            let r = record(s, d);
            let seen = view(&r, &sight);
            prop_assert_eq!(seen.is_some(), brute_visible(&r, &sight), "{:?} by {:?}", (s, d), sight);
            let Some(v) = seen else { continue };
            let owns = |e: &Endpoint| sight.owns(e.namespace.as_deref());
            let whole = matches!(sight, Sight::All) || (owns(&r.src) && owns(&r.dst))
                || (r.src.namespace.is_none() && r.dst.namespace.is_none());
            if whole {
                prop_assert_eq!(&v, &r);
                continue;
            }
            // One side is the viewer's, whole; the other is its kind, namespace and workload.
            let (mine, theirs, tag) = if owns(&r.src) { (&v.src, &v.dst, "dst") } else { (&v.dst, &v.src, "src") };
            let original = if owns(&r.src) { (&r.src, &r.dst) } else { (&r.dst, &r.src) };
            prop_assert_eq!(mine, original.0);
            prop_assert_eq!(
                (theirs.kind, &theirs.namespace, &theirs.workload),
                (original.1.kind, &original.1.namespace, &original.1.workload)
            );
            // And says so: the map draws it locked, by its workload.
            prop_assert!(theirs.hidden && !mine.hidden);
            let hidden_pod = format!("pod-of-{tag}");
            prop_assert!(!theirs.map_id().contains(&hidden_pod));
            let text = serde_json::to_string(&v).unwrap();
            let o = original.1;
            for leak in [format!("pod-of-{tag}"), format!("node-of-{tag}"), o.ip.to_string(), format!("\"port\":{}", o.port)] {
                prop_assert!(!text.contains(&leak), "{} leaked: {}", leak, text);
            }
            for outer in ["192.168.9.55", "192.168.9.66", "veth-of-both"] {
                prop_assert!(!text.contains(outer), "{} leaked: {}", outer, text);
            }
            // What the viewer's own side used is kept: the address the client dialled, its SNAT.
            if owns(&r.src) {
                prop_assert!(!text.contains("10.96.0.44"), "the address of the outside Service: {}", text);
                prop_assert_eq!(&v.snat, &r.snat);
            } else {
                prop_assert!(!text.contains("192.168.9.33"), "the outside client's translated address: {}", text);
            }
        }
    }
}

#[test]
fn a_request_between_two_teams_is_each_teams_with_the_other_reduced() {
    let r = record(Some(0), Some(1));
    let a = view(&r, &Sight::of(["team-a"])).unwrap();
    assert_eq!(a.src, r.src);
    assert_eq!((a.dst.name.as_deref(), a.dst.namespace.as_deref()), (None, Some("team-b")));
    assert_eq!(a.nodes.iter().map(|n| &**n).collect::<Vec<_>>(), ["node-of-src"]);
    let b = view(&r, &Sight::of(["team-b"])).unwrap();
    assert_eq!(b.dst, r.dst);
    assert_eq!(b.src.workload.as_deref(), Some("Deployment/app-0"));
    assert!(view(&r, &Sight::of(["team-c"])).is_none());
    assert!(view(&r, &Sight::of(Vec::<String>::new())).is_none(), "no namespace, nothing");
    assert_eq!(view(&r, &Sight::All).as_ref(), Some(&r));
}

#[test]
fn records_in_no_namespace_are_the_admins_unless_allowed() {
    let r = record(None, None);
    assert!(view(&r, &Sight::of(NAMESPACES)).is_none());
    let allowed = Sight::Namespaces { names: BTreeSet::new(), unnamespaced: true };
    assert_eq!(view(&r, &allowed).as_ref(), Some(&r));
    // A pod calling the outside: the pod's team sees it, the outside reduced to its kind.
    let out = view(&record(Some(2), None), &Sight::of(["team-c"])).unwrap();
    assert_eq!((out.dst.kind, out.dst.ip.is_unspecified(), out.dst.port), (EndpointKind::External, true, 0));
}
