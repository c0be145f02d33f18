//! The layout's promises: no two boxes overlap, an acyclic graph reads left to right, the same
//! input gives the same picture, and a picture that follows an earlier one keeps its boxes.

use proptest::prelude::*;

use super::*;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("pod:ns/p{i:04}")).collect()
}

fn items(ids: &[String]) -> Vec<Item<'_>> {
    ids.iter().map(|id| Item { id, parent: None }).collect()
}

fn no_overlap(p: &Placement) -> Result<(), String> {
    for i in 0..p.pos.len() {
        for j in i + 1..p.pos.len() {
            let (a, b) = (p.pos[i], p.pos[j]);
            if (a.0 - b.0).abs() < BOX_W && (a.1 - b.1).abs() < BOX_H {
                return Err(format!("boxes {i} {a:?} and {j} {b:?} overlap"));
            }
        }
    }
    Ok(())
}

/// A random graph of `n` nodes; `dag` keeps only edges from a lower to a higher index.
fn graph(max_nodes: usize, dag: bool) -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (2..max_nodes).prop_flat_map(move |n| {
        let edge = (0..n, 0..n).prop_map(move |(a, b)| if dag && a > b { (b, a) } else { (a, b) });
        (Just(n), proptest::collection::vec(edge, 0..n * 3))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn boxes_never_overlap((n, edges) in graph(60, false)) {
        let ids = ids(n);
        let (p, _) = layout(&items(&ids), &edges, &Memory::default());
        prop_assert_eq!(p.pos.len(), n);
        no_overlap(&p).map_err(TestCaseError::fail)?;
        prop_assert!(p.pos.iter().all(|(x, y)| x.is_finite() && y.is_finite()));
    }

    #[test]
    fn an_acyclic_graph_reads_left_to_right((n, edges) in graph(60, true)) {
        let ids = ids(n);
        let (p, _) = layout(&items(&ids), &edges, &Memory::default());
        for &(s, t) in edges.iter().filter(|(s, t)| s != t) {
            prop_assert!(p.pos[s].0 < p.pos[t].0, "{} -> {}: {:?} {:?}", s, t, p.pos[s], p.pos[t]);
        }
    }

    #[test]
    fn the_same_input_gives_the_same_picture((n, edges) in graph(60, false)) {
        let ids = ids(n);
        let a = layout(&items(&ids), &edges, &Memory::default());
        let b = layout(&items(&ids), &edges, &Memory::default());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn one_more_edge_moves_at_most_the_box_it_reaches((n, edges) in graph(60, false), extra in (0usize..1000, 0usize..1000)) {
        let ids = ids(n);
        let (before, memory) = layout(&items(&ids), &edges, &Memory::default());
        let mut more = edges.clone();
        let (s, t) = (extra.0 % n, extra.1 % n);
        more.push((s, t));
        let (after, _) = layout(&items(&ids), &more, &memory);
        for v in 0..n {
            prop_assert!(before.pos[v] == after.pos[v] || v == t, "box {} moved", v);
        }
        // …and only a box that calls nothing, to go right of its new caller.
        if before.pos[t] != after.pos[t] {
            prop_assert!(more.iter().all(|&(a, b)| a != t || a == b));
            prop_assert!(after.pos[t].0 > after.pos[s].0);
        }
        no_overlap(&after).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn a_new_box_moves_only_what_it_must_and_overlaps_none((n, edges) in graph(60, false), callee in 0usize..1000) {
        let mut ids = ids(n);
        let (before, memory) = layout(&items(&ids), &edges, &Memory::default());
        ids.push("pod:ns/new".into());
        let mut more = edges.clone();
        more.push((n, callee % n));
        let (after, _) = layout(&items(&ids), &more, &memory);
        // A box moves only when the new one must come before it: it is downstream of the new box.
        let mut downstream = vec![false; n + 1];
        let mut stack = vec![n];
        while let Some(v) = stack.pop() {
            for &(s, t) in &more {
                if s == v && !downstream[t] {
                    downstream[t] = true;
                    stack.push(t);
                }
            }
        }
        for (v, moved) in downstream.iter().enumerate().take(n) {
            prop_assert!(before.pos[v] == after.pos[v] || *moved, "box {} moved: {:?} → {:?}", v, before.pos[v], after.pos[v]);
        }
        no_overlap(&after).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn a_callee_that_appears_after_its_caller_s_service_moves_right_of_it((n, edges) in graph(30, true)) {
        // Boxes laid out, then a new box calls the first one: the picture still reads left to
        // right along every edge of an acyclic graph.
        let mut ids = ids(n);
        let (_, memory) = layout(&items(&ids), &edges, &Memory::default());
        ids.push("pod:ns/new".into());
        let mut more = edges.clone();
        more.push((n, 0));
        let (after, _) = layout(&items(&ids), &more, &memory);
        for &(s, t) in more.iter().filter(|(s, t)| s != t) {
            prop_assert!(after.pos[s].0 < after.pos[t].0, "{} -> {}", s, t);
        }
    }
}

#[test]
fn a_chain_with_a_cycle_is_laid_out_along_the_chain() {
    let ids = ids(4);
    // 0 → 1 → 2 → 3, and 3 → 1 closes a cycle: the chain reads left to right, 3 → 1 runs back.
    let (p, _) = layout(&items(&ids), &[(0, 1), (1, 2), (2, 3), (3, 1)], &Memory::default());
    assert!(p.pos[0].0 < p.pos[1].0 && p.pos[1].0 < p.pos[2].0 && p.pos[2].0 < p.pos[3].0, "{p:?}");
}

#[test]
fn crossings_are_removed_where_they_can_be() {
    // a0 → b1, a1 → b0: the barycentre order puts b1 beside a0 so the edges do not cross.
    let ids = ids(4);
    let (p, _) = layout(&items(&ids), &[(0, 3), (1, 2)], &Memory::default());
    let above = |i: usize, j: usize| p.pos[i].1 < p.pos[j].1;
    assert_eq!(above(0, 1), above(3, 2), "{p:?}");
}

#[test]
fn an_expanded_workload_s_pods_appear_where_it_was() {
    let before = ["pod:ns/client".to_string(), "workload:ns/Deployment/web".to_string()];
    let (p, memory) = layout(&items(&before), &[(0, 1)], &Memory::default());
    let pods = ["pod:ns/client".to_string(), "pod:ns/web-1".to_string(), "pod:ns/web-2".to_string()];
    let parent = Some("workload:ns/Deployment/web");
    let items = vec![Item { id: &pods[0], parent: None }, Item { id: &pods[1], parent }, Item { id: &pods[2], parent }];
    let (q, _) = layout(&items, &[(0, 1), (0, 2)], &memory);
    assert_eq!(q.pos[0], p.pos[0]);
    assert_eq!(q.pos[1].0, p.pos[1].0);
    assert!((q.pos[1].1 - p.pos[1].1).abs() < PITCH * 1.5 && (q.pos[2].1 - p.pos[1].1).abs() < PITCH * 1.5, "{q:?}");
    no_overlap(&q).unwrap();
}

#[test]
fn pack_keeps_order_and_spacing_and_is_exact_when_it_can_be() {
    assert_eq!(pack(&[0.0, 200.0]), vec![0.0, 200.0]);
    let got = pack(&[10.0, 10.0, 10.0]);
    assert!((got[1] - 10.0).abs() < 1e-9 && (got[2] - got[1] - PITCH).abs() < 1e-9, "{got:?}");
}
