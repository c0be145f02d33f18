//! One picture of the map: the folded boxes at their places, the edges' curves, looks and labels,
//! the quality marks and the bounds — everything painting, hit testing and the DOM hooks need,
//! built once per change of the map (never per frame).

use std::collections::HashMap;

use super::camera::Rect;
use super::fold::{Folded, Group, Link};
use super::layered::{self, BOX_H, BOX_W, Item, Memory, Placement};
use super::quality::{self, Context, Quality};
use super::route::{self, Curve, Point};
use super::style::{self, Look};

/// Boxes next to one, with the requests on the edge between: (box, requests).
pub type Neighbours = Vec<(usize, u64)>;

#[derive(Clone, Debug, Default)]
pub struct Scene {
    pub groups: Vec<Group>,
    pub pos: Vec<Point>,
    pub index: HashMap<String, usize>,
    pub links: Vec<Link>,
    /// Each link's ends, as indexes of `groups`.
    pub ends: Vec<(usize, usize)>,
    pub curves: Vec<Curve>,
    pub looks: Vec<Look>,
    pub labels: Vec<String>,
    pub quality: Quality,
    pub bounds: Rect,
    /// Boxes in the band apart, below the picture: the cluster's nodes (kubelet probes, host
    /// networking) are not part of the traffic's layers.
    pub apart: Vec<bool>,
}

/// How far below the picture the nodes' band starts (world units).
pub const BAND_GAP: f64 = 110.0;

impl Scene {
    /// Lays out `folded` following `memory`; the memory for the next picture comes back too.
    /// When `before` has the same boxes and edges (an update that only changed counts), its
    /// places and curves are kept: no layout at all.
    pub fn build(
        folded: Folded,
        memory: &Memory,
        span_s: Option<f64>,
        ctx: &Context,
        before: &Scene,
    ) -> (Scene, Memory) {
        let quality = quality::assess(&folded, ctx);
        let Folded { groups, links, .. } = folded;
        let same = groups.len() == before.groups.len()
            && links.len() == before.links.len()
            && groups.iter().zip(&before.groups).all(|(a, b)| a.id == b.id)
            && links.iter().zip(&before.links).all(|(a, b)| a.source == b.source && a.target == b.target);
        let apart: Vec<bool> = groups.iter().map(|g| g.level == "node").collect();
        let (index, ends, pos, curves, memory) = if same {
            (before.index.clone(), before.ends.clone(), before.pos.clone(), before.curves.clone(), memory.clone())
        } else {
            let index: HashMap<String, usize> = groups.iter().enumerate().map(|(i, g)| (g.id.clone(), i)).collect();
            let ends: Vec<(usize, usize)> = links.iter().map(|l| (index[&l.source], index[&l.target])).collect();
            let (pos, memory) = place(&groups, &ends, &apart, memory);
            let curves = route::route(&pos, &ends, &apart);
            (index, ends, pos, curves, memory)
        };
        let looks = links.iter().map(|l| style::look(l, span_s)).collect();
        let labels = links.iter().map(|l| style::label(l, span_s, quality.edge_unsure(&l.source, &l.target))).collect();
        let bounds = bounds(&pos, &curves);
        (Scene { groups, pos, index, links, ends, curves, looks, labels, quality, bounds, apart }, memory)
    }

    pub fn box_rect(&self, i: usize) -> Rect {
        let (x, y) = self.pos[i];
        Rect { x0: x, y0: y, x1: x + BOX_W, y1: y + BOX_H }
    }

    /// The box under the world point `p`.
    pub fn box_at(&self, p: Point) -> Option<usize> {
        (0..self.pos.len()).find(|&i| {
            let r = self.box_rect(i);
            p.0 >= r.x0 && p.0 <= r.x1 && p.1 >= r.y0 && p.1 <= r.y1
        })
    }

    /// The edge nearest the world point `p`, within `within` world units.
    pub fn edge_at(&self, p: Point, within: f64) -> Option<usize> {
        let near = Rect { x0: p.0, y0: p.1, x1: p.0, y1: p.1 }.grow(within);
        self.curves
            .iter()
            .enumerate()
            .filter(|(_, c)| c.bounds().intersects(&near))
            .map(|(i, c)| (i, c.distance2(p)))
            .filter(|(_, d)| *d <= within * within)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Boxes and edges that touch `view` (world units).
    pub fn in_view(&self, view: &Rect) -> (Vec<usize>, Vec<usize>) {
        let boxes = (0..self.pos.len()).filter(|&i| self.box_rect(i).intersects(view)).collect();
        let edges = (0..self.curves.len()).filter(|&i| self.curves[i].bounds().intersects(view)).collect();
        (boxes, edges)
    }

    /// Where an edge's label (and its DOM hook) sits.
    pub fn label_at(&self, edge: usize) -> Point {
        self.curves[edge].at(0.5)
    }

    /// The boxes `id` calls and is called by, with the requests each way.
    pub fn neighbours(&self, i: usize) -> (Neighbours, Neighbours) {
        let mut callers = Vec::new();
        let mut callees = Vec::new();
        for (e, &(s, t)) in self.ends.iter().enumerate() {
            if t == i {
                callers.push((s, self.links[e].requests));
            }
            if s == i {
                callees.push((t, self.links[e].requests));
            }
        }
        (callers, callees)
    }
}

/// Places the boxes: the layered layout for the traffic's boxes, then the band apart below it,
/// each box under the boxes it talks to (by their mean x), in that order, never overlapping.
fn place(groups: &[Group], ends: &[(usize, usize)], apart: &[bool], memory: &Memory) -> (Vec<Point>, Memory) {
    let main: Vec<usize> = (0..groups.len()).filter(|&i| !apart[i]).collect();
    let mut local = vec![usize::MAX; groups.len()];
    for (k, &i) in main.iter().enumerate() {
        local[i] = k;
    }
    let items: Vec<Item<'_>> =
        main.iter().map(|&i| Item { id: &groups[i].id, parent: groups[i].parent.as_deref() }).collect();
    let inner: Vec<(usize, usize)> =
        ends.iter().filter(|(s, t)| !apart[*s] && !apart[*t]).map(|&(s, t)| (local[s], local[t])).collect();
    let (Placement { pos: laid, .. }, memory) = layered::layout(&items, &inner, memory);
    let mut pos = vec![(0.0, 0.0); groups.len()];
    for (k, &i) in main.iter().enumerate() {
        pos[i] = laid[k];
    }
    let band_y = laid.iter().map(|p| p.1 + BOX_H + BAND_GAP).fold(0.0, f64::max);
    let mut band: Vec<(f64, &str, usize)> = (0..groups.len())
        .filter(|&i| apart[i])
        .map(|i| {
            let xs: Vec<f64> = ends
                .iter()
                .filter_map(|&(s, t)| match (s == i, t == i) {
                    (true, false) if !apart[t] => Some(pos[t].0),
                    (false, true) if !apart[s] => Some(pos[s].0),
                    _ => None,
                })
                .collect();
            let x = if xs.is_empty() { f64::MAX } else { xs.iter().sum::<f64>() / xs.len() as f64 };
            (x, groups[i].id.as_str(), i)
        })
        .collect();
    band.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    let mut next = laid.iter().map(|p| p.0).fold(0.0, f64::min);
    for (x, _, i) in band {
        let at = if x == f64::MAX { next } else { x.max(next) };
        pos[i] = (at, band_y);
        next = at + BOX_W + layered::ROW_GAP;
    }
    (pos, memory)
}

fn bounds(pos: &[Point], curves: &[Curve]) -> Rect {
    let mut r = Rect { x0: 0.0, y0: 0.0, x1: BOX_W, y1: BOX_H };
    if let Some(&(x, y)) = pos.first() {
        r = Rect { x0: x, y0: y, x1: x + BOX_W, y1: y + BOX_H };
    }
    for &(x, y) in pos {
        r = Rect { x0: r.x0.min(x), y0: r.y0.min(y), x1: r.x1.max(x + BOX_W), y1: r.y1.max(y + BOX_H) };
    }
    for c in curves {
        let b = c.bounds();
        r = Rect { x0: r.x0.min(b.x0), y0: r.y0.min(b.y0), x1: r.x1.max(b.x1), y1: r.y1.max(b.y1) };
    }
    r
}
