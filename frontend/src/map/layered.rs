//! A layered ("Sugiyama") layout that reads along the traffic, computed in the browser.
//!
//! A fresh layout runs the four classic phases:
//! 1. cycle breaking — Eades, Lin and Smyth's greedy order (sinks to the back, sources to the
//!    front, else the node with the most outgoing minus incoming edges); edges that run against
//!    it are drawn as arcs back;
//! 2. layers — longest path from the sources, so clients, Services and the pods behind them read
//!    left to right;
//! 3. crossings — barycentre sweeps, down and up, on every edge between two layers (cluster maps
//!    are shallow: most edges join neighbouring layers, so no dummy nodes are inserted);
//! 4. coordinates — each layer's boxes as close to their neighbours' barycentre as the spacing
//!    allows: a least-squares fit under the spacing constraints (pool adjacent violators).
//!
//! A layout that follows an earlier one (`Memory`) is stable: a box that was there keeps its
//! place, whatever edges were added; a new box goes to the free place nearest its parent (a pod
//! where its workload was) or its neighbours. When most boxes are new (another level of folding)
//! the layout starts afresh. Everything is deterministic: the same boxes and edges, in the same
//! order, give the same picture.

use std::collections::HashMap;

pub const BOX_W: f64 = 210.0;
pub const BOX_H: f64 = 48.0;
pub const LAYER_GAP: f64 = 170.0;
pub const ROW_GAP: f64 = 22.0;
/// Distance between the tops of two boxes of a layer.
const PITCH: f64 = BOX_H + ROW_GAP;
/// Barycentre sweeps of a fresh layout.
const SWEEPS: usize = 8;
/// Memory entries kept (boxes that left may come back to their place).
const MEMORY_CAP: usize = 50_000;

/// A box to place: its id and the box it folds into (where it should appear when new).
#[derive(Clone, Debug)]
pub struct Item<'a> {
    pub id: &'a str,
    pub parent: Option<&'a str>,
}

/// Where boxes were: layer and top, by id, and each box's parent (a folded box appears where
/// its members were).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    spot: HashMap<String, (u32, f64)>,
    parent: HashMap<String, String>,
}

impl Memory {
    pub fn is_empty(&self) -> bool {
        self.spot.is_empty()
    }

    /// Where `id` was: its top-left corner.
    pub fn at(&self, id: &str) -> Option<(f64, f64)> {
        self.spot.get(id).map(|&(l, y)| (x_of(l), y))
    }
}

/// The placed boxes (top-left corners, in the order given) and the layers they are in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    pub pos: Vec<(f64, f64)>,
    pub layer: Vec<u32>,
}

fn x_of(layer: u32) -> f64 {
    f64::from(layer) * (BOX_W + LAYER_GAP)
}

/// Lays out `items` joined by `edges` (indexes into `items`, source → target), following
/// `memory` when it knows most of them; returns the placement and the memory for next time.
pub fn layout(items: &[Item<'_>], edges: &[(usize, usize)], memory: &Memory) -> (Placement, Memory) {
    let n = items.len();
    let graph = Graph::new(n, edges);
    // Boxes the memory can place: those that were there, and new ones whose parent or members were.
    let folded_from: std::collections::HashSet<&str> = memory.parent.values().map(String::as_str).collect();
    let placeable = items
        .iter()
        .filter(|i| {
            memory.spot.contains_key(i.id)
                || i.parent.is_some_and(|p| memory.spot.contains_key(p))
                || folded_from.contains(i.id)
        })
        .count();
    let placement =
        if placeable * 2 >= n && !memory.is_empty() { follow(items, &graph, memory) } else { fresh(&graph) };
    let mut next = if memory.spot.len() > MEMORY_CAP { Memory::default() } else { memory.clone() };
    for (i, item) in items.iter().enumerate() {
        next.spot.insert(item.id.to_string(), (placement.layer[i], placement.pos[i].1));
        if let Some(p) = item.parent {
            next.parent.insert(item.id.to_string(), p.to_string());
        }
    }
    (placement, next)
}

/// Adjacency without self-loops or repeated edges.
struct Graph {
    out: Vec<Vec<usize>>,
    inc: Vec<Vec<usize>>,
}

impl Graph {
    fn new(n: usize, edges: &[(usize, usize)]) -> Self {
        let mut out = vec![Vec::new(); n];
        let mut inc = vec![Vec::new(); n];
        for &(s, t) in edges {
            if s != t && s < n && t < n {
                out[s].push(t);
                inc[t].push(s);
            }
        }
        for l in out.iter_mut().chain(inc.iter_mut()) {
            l.sort_unstable();
            l.dedup();
        }
        Graph { out, inc }
    }

    fn len(&self) -> usize {
        self.out.len()
    }

    fn neighbours(&self, v: usize) -> impl Iterator<Item = usize> + '_ {
        self.out[v].iter().chain(&self.inc[v]).copied()
    }
}

/// Eades–Lin–Smyth: a node order in which few edges run backwards.
fn greedy_order(g: &Graph) -> Vec<usize> {
    let n = g.len();
    let mut indeg: Vec<usize> = g.inc.iter().map(Vec::len).collect();
    let mut outdeg: Vec<usize> = g.out.iter().map(Vec::len).collect();
    let mut gone = vec![false; n];
    let (mut front, mut back) = (Vec::with_capacity(n), Vec::new());
    let mut left = n;
    let remove = |v: usize, gone: &mut Vec<bool>, indeg: &mut Vec<usize>, outdeg: &mut Vec<usize>| {
        gone[v] = true;
        for &t in &g.out[v] {
            indeg[t] -= 1;
        }
        for &s in &g.inc[v] {
            outdeg[s] -= 1;
        }
    };
    while left > 0 {
        let mut moved = false;
        for v in 0..n {
            if !gone[v] && outdeg[v] == 0 && indeg[v] > 0 {
                remove(v, &mut gone, &mut indeg, &mut outdeg);
                back.push(v);
                left -= 1;
                moved = true;
            }
        }
        for v in 0..n {
            if !gone[v] && indeg[v] == 0 {
                remove(v, &mut gone, &mut indeg, &mut outdeg);
                front.push(v);
                left -= 1;
                moved = true;
            }
        }
        if !moved && left > 0 {
            let v = (0..n)
                .filter(|&v| !gone[v])
                .max_by_key(|&v| (outdeg[v] as i64 - indeg[v] as i64, std::cmp::Reverse(v)))
                .expect("a node is left");
            remove(v, &mut gone, &mut indeg, &mut outdeg);
            front.push(v);
            left -= 1;
        }
    }
    back.reverse();
    front.extend(back);
    front
}

/// Longest path from the sources over the edges that run along `order` (a topological order of
/// them); the others are drawn as arcs back.
fn layers(g: &Graph, order: &[usize]) -> Vec<u32> {
    let n = g.len();
    let mut rank = vec![0; n];
    for (i, &v) in order.iter().enumerate() {
        rank[v] = i;
    }
    let mut layer = vec![0u32; n];
    for &v in order {
        for &t in &g.out[v] {
            if rank[t] > rank[v] {
                layer[t] = layer[t].max(layer[v] + 1);
            }
        }
    }
    layer
}

/// The four phases from nothing.
fn fresh(g: &Graph) -> Placement {
    let n = g.len();
    let order = greedy_order(g);
    let layer = layers(g, &order);
    let layers = layer.iter().max().map_or(0, |m| *m as usize + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for &v in &order {
        rows[layer[v] as usize].push(v);
    }
    // Crossings: each box to the mean position of its neighbours, sweeping down then up.
    let mut place = vec![0.0; n];
    let set = |rows: &Vec<Vec<usize>>, place: &mut Vec<f64>| {
        for row in rows {
            let mid = (row.len() as f64 - 1.0) / 2.0;
            for (i, &v) in row.iter().enumerate() {
                place[v] = i as f64 - mid;
            }
        }
    };
    set(&rows, &mut place);
    for sweep in 0..SWEEPS {
        let indexes: Vec<usize> = if sweep % 2 == 0 { (0..layers).collect() } else { (0..layers).rev().collect() };
        for l in indexes {
            let bary: Vec<(f64, usize)> = rows[l]
                .iter()
                .map(|&v| {
                    let (sum, k) = g.neighbours(v).fold((0.0, 0), |(s, k), u| (s + place[u], k + 1));
                    (if k == 0 { place[v] } else { sum / f64::from(k) }, v)
                })
                .collect();
            let mut sorted = bary;
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(place[a.1].total_cmp(&place[b.1])));
            rows[l] = sorted.into_iter().map(|(_, v)| v).collect();
            let mid = (rows[l].len() as f64 - 1.0) / 2.0;
            for (i, &v) in rows[l].iter().enumerate() {
                place[v] = i as f64 - mid;
            }
        }
    }
    // Coordinates: start packed and centred, then pull each box towards its neighbours.
    let mut y: Vec<f64> = place.iter().map(|p| p * PITCH).collect();
    for pass in 0..4 {
        let indexes: Vec<usize> = if pass % 2 == 0 { (0..layers).collect() } else { (0..layers).rev().collect() };
        for l in indexes {
            let want: Vec<f64> = rows[l]
                .iter()
                .map(|&v| {
                    let (sum, k) = g.neighbours(v).fold((0.0, 0), |(s, k), u| (s + y[u], k + 1));
                    if k == 0 { y[v] } else { (y[v] + sum / f64::from(k)) / 2.0 }
                })
                .collect();
            for (&v, got) in rows[l].iter().zip(pack(&want)) {
                y[v] = got;
            }
        }
    }
    let top = y.iter().copied().fold(f64::INFINITY, f64::min);
    let top = if top.is_finite() { top } else { 0.0 };
    Placement { pos: (0..n).map(|v| (x_of(layer[v]), y[v] - top)).collect(), layer }
}

/// The tops closest (least squares) to `want`, in order, at least `PITCH` apart: pool adjacent
/// violators on `want[i] − i·PITCH`.
fn pack(want: &[f64]) -> Vec<f64> {
    let mut blocks: Vec<(f64, usize)> = Vec::new(); // (mean, count)
    for (i, w) in want.iter().enumerate() {
        blocks.push((w - i as f64 * PITCH, 1));
        while blocks.len() > 1 {
            let (m2, c2) = blocks[blocks.len() - 1];
            let (m1, c1) = blocks[blocks.len() - 2];
            if m1 <= m2 {
                break;
            }
            blocks.pop();
            let c = c1 + c2;
            *blocks.last_mut().expect("two blocks") = ((m1 * c1 as f64 + m2 * c2 as f64) / c as f64, c);
        }
    }
    let mut out = Vec::with_capacity(want.len());
    for (m, c) in blocks {
        for _ in 0..c {
            out.push(m + out.len() as f64 * PITCH);
        }
    }
    out
}

/// Boxes that were there keep their place, whatever was added, unless the traffic now runs
/// into them from a box that comes after them: a new box before them, or — for a box that calls
/// nothing, which can move without moving others — a new edge. Those move right, only they.
/// New boxes take the free place nearest to where they belong.
fn follow(items: &[Item<'_>], g: &Graph, memory: &Memory) -> Placement {
    let n = items.len();
    let mut y = vec![f64::NAN; n];
    let mut known = vec![false; n];
    for (i, item) in items.iter().enumerate() {
        if let Some(&(_, top)) = memory.spot.get(item.id) {
            (y[i], known[i]) = (top, true);
        }
    }
    // Members of a box that is new (a workload just folded): where they were.
    let mut members: HashMap<&str, Vec<(u32, f64)>> = HashMap::new();
    for (child, parent) in &memory.parent {
        if let Some(&spot) = memory.spot.get(child) {
            members.entry(parent.as_str()).or_default().push(spot);
        }
    }
    let order = greedy_order(g);
    let mut rank = vec![0; n];
    for (i, &v) in order.iter().enumerate() {
        rank[v] = i;
    }
    // Where each box was, or stands in for: its own layer, its parent's (a pod of a workload
    // just opened), its members' (a workload just folded).
    let anchor: Vec<Option<u32>> = (0..n)
        .map(|v| {
            let id = items[v].id;
            let own = memory.spot.get(id).map(|s| s.0);
            let parent = || items[v].parent.and_then(|p| memory.spot.get(p)).map(|s| s.0);
            let folded = || members.get(id).and_then(|m| m.iter().map(|s| s.0).min());
            own.or_else(parent).or_else(folded)
        })
        .collect();
    // Boxes from nowhere start one left of the callees that were there.
    let mut layer: Vec<u32> = (0..n)
        .map(|v| {
            anchor[v].unwrap_or_else(|| {
                g.out[v].iter().filter_map(|&u| anchor[u]).map(|l| l.saturating_sub(1)).min().unwrap_or(0)
            })
        })
        .collect();
    // An edge between two anchored boxes keeps the direction the picture gave it, except into a
    // box that calls nothing; an edge to or from a box from nowhere follows the greedy order.
    // Bounded passes: the rules together may close a cycle.
    let forward = |u: usize, v: usize| match (anchor[u], anchor[v]) {
        (Some(a), Some(b)) => a < b || (g.out[v].is_empty() && rank[u] < rank[v]),
        _ => rank[u] < rank[v],
    };
    for _ in 0..4 {
        let mut changed = false;
        for &u in &order {
            for &v in &g.out[u] {
                if forward(u, v) && layer[v] < layer[u] + 1 {
                    layer[v] = layer[u] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let stays: Vec<bool> =
        (0..n).map(|v| known[v] && memory.spot.get(items[v].id).is_some_and(|s| s.0 == layer[v])).collect();
    // Places: boxes that stay keep theirs (a remembered place that clashes with another from an
    // older picture takes the nearest free one); the others take the free slot nearest where
    // they were, their parent, their members or their neighbours.
    let mut taken: HashMap<u32, Vec<f64>> = HashMap::new();
    for v in (0..n).filter(|&v| stays[v]) {
        let row = taken.entry(layer[v]).or_default();
        y[v] = free_slot(row, y[v]);
        row.push(y[v]);
    }
    for &v in &order {
        if stays[v] {
            continue;
        }
        let was = known[v].then(|| y[v]);
        let from_parent = items[v].parent.and_then(|p| memory.spot.get(p)).map(|s| s.1);
        let from_members = members.get(items[v].id).map(|m| m.iter().map(|s| s.1).sum::<f64>() / m.len() as f64);
        let placed: Vec<f64> = g.neighbours(v).map(|u| y[u]).filter(|t| !t.is_nan()).collect();
        let near = (!placed.is_empty()).then(|| placed.iter().sum::<f64>() / placed.len() as f64);
        let row = taken.entry(layer[v]).or_default();
        let want = was
            .or(from_parent)
            .or(from_members)
            .or(near)
            .unwrap_or_else(|| row.iter().copied().fold(0.0, f64::max) + PITCH);
        y[v] = free_slot(row, want);
        row.push(y[v]);
    }
    Placement { pos: (0..n).map(|v| (x_of(layer[v]), y[v])).collect(), layer }
}

/// The top nearest `want` at least `PITCH` from every top in `row`.
fn free_slot(row: &[f64], want: f64) -> f64 {
    let fits = |t: f64| row.iter().all(|r| (r - t).abs() >= PITCH - 1e-6);
    if fits(want) {
        return want;
    }
    // Candidates: just above or below each taken top; the nearest that fits.
    let mut best: Option<f64> = None;
    for r in row {
        for t in [r - PITCH, r + PITCH] {
            if fits(t) && best.is_none_or(|b| (t - want).abs() < (b - want).abs()) {
                best = Some(t);
            }
        }
    }
    best.unwrap_or(want)
}

#[cfg(test)]
mod tests;
