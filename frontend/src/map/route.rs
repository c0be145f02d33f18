//! Edge geometry: a cubic Bézier from the right side of the source box to the left side of the
//! target box. Each box spreads its departures and arrivals over its height, ordered by where the
//! other end sits, so curves neither cross at the box nor share a point; an edge that runs
//! against the layers (a cycle, or a call back) arcs below, so A → B and B → A are two curves.

use super::camera::Rect;
use super::layered::{BOX_H, BOX_W};

pub type Point = (f64, f64);

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Curve {
    pub p0: Point,
    pub c1: Point,
    pub c2: Point,
    pub p3: Point,
}

impl Curve {
    pub fn at(&self, t: f64) -> Point {
        let u = 1.0 - t;
        let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
        (
            a * self.p0.0 + b * self.c1.0 + c * self.c2.0 + d * self.p3.0,
            a * self.p0.1 + b * self.c1.1 + c * self.c2.1 + d * self.p3.1,
        )
    }

    /// A box that holds the whole curve (its control polygon's).
    pub fn bounds(&self) -> Rect {
        let xs = [self.p0.0, self.c1.0, self.c2.0, self.p3.0];
        let ys = [self.p0.1, self.c1.1, self.c2.1, self.p3.1];
        let min = |v: [f64; 4]| v.into_iter().fold(f64::INFINITY, f64::min);
        let max = |v: [f64; 4]| v.into_iter().fold(f64::NEG_INFINITY, f64::max);
        Rect { x0: min(xs), y0: min(ys), x1: max(xs), y1: max(ys) }
    }

    /// Squared distance from `p` to the curve, sampled.
    pub fn distance2(&self, p: Point) -> f64 {
        (0..=24)
            .map(|i| {
                let q = self.at(f64::from(i) / 24.0);
                (q.0 - p.0).powi(2) + (q.1 - p.1).powi(2)
            })
            .fold(f64::INFINITY, f64::min)
    }
}

/// The curves of `edges` (indexes into `pos`, the boxes' top-left corners); an edge to or from a
/// box in the band apart (`apart`, below the picture) runs up from the band's top to the other
/// box's bottom, or down into the band.
pub fn route(pos: &[Point], edges: &[(usize, usize)], apart: &[bool]) -> Vec<Curve> {
    let apart_at = |i: usize| apart.get(i).copied().unwrap_or(false);
    let mut out_of: Vec<Vec<usize>> = vec![Vec::new(); pos.len()];
    let mut into: Vec<Vec<usize>> = vec![Vec::new(); pos.len()];
    for (i, &(s, t)) in edges.iter().enumerate() {
        out_of[s].push(i);
        into[t].push(i);
    }
    let mut start = vec![0.0; edges.len()];
    let mut end = vec![0.0; edges.len()];
    for (v, list) in out_of.iter_mut().enumerate() {
        list.sort_by(|a, b| pos[edges[*a].1].1.total_cmp(&pos[edges[*b].1].1));
        spread(pos[v].1, list, &mut start);
    }
    for (v, list) in into.iter_mut().enumerate() {
        list.sort_by(|a, b| pos[edges[*a].0].1.total_cmp(&pos[edges[*b].0].1));
        spread(pos[v].1, list, &mut end);
    }
    edges
        .iter()
        .enumerate()
        .map(|(i, &(s, t))| {
            if apart_at(s) != apart_at(t) {
                return vertical(pos[s], pos[t], apart_at(s), start[i] - pos[s].1, end[i] - pos[t].1);
            }
            let p0 = (pos[s].0 + BOX_W, start[i]);
            let p3 = (pos[t].0, end[i]);
            if p3.0 > p0.0 {
                let bend = ((p3.0 - p0.0) / 2.0).max(40.0);
                Curve { p0, c1: (p0.0 + bend, p0.1), c2: (p3.0 - bend, p3.1), p3 }
            } else {
                let drop = 70.0 + (p0.0 - p3.0).abs() * 0.12;
                let low = p0.1.max(p3.1) + drop;
                Curve { p0, c1: (p0.0 + 90.0, low), c2: (p3.0 - 90.0, low), p3 }
            }
        })
        .collect()
}

/// Between a box in the band and one above it: from the top of the lower box to the bottom of the
/// upper (or back down), spread along the boxes' width by where they sat on its side.
fn vertical(from: Point, to: Point, from_band: bool, out_at: f64, in_at: f64) -> Curve {
    let along = |y_in_box: f64| 12.0 + (BOX_W - 24.0) * (y_in_box / BOX_H).clamp(0.0, 1.0);
    let (p0, p3) = if from_band {
        ((from.0 + along(out_at), from.1), (to.0 + along(in_at), to.1 + BOX_H))
    } else {
        ((from.0 + along(out_at), from.1 + BOX_H), (to.0 + along(in_at), to.1))
    };
    let bend = ((p3.1 - p0.1).abs() / 2.0).max(40.0);
    let dir = if p3.1 < p0.1 { -1.0 } else { 1.0 };
    Curve { p0, c1: (p0.0, p0.1 + dir * bend), c2: (p3.0, p3.1 - dir * bend), p3 }
}

fn spread(top: f64, list: &[usize], ys: &mut [f64]) {
    let step = (BOX_H - 12.0) / list.len() as f64;
    for (k, &i) in list.iter().enumerate() {
        ys[i] = top + 6.0 + step * (k as f64 + 0.5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_join_the_boxes_sides_and_two_directions_differ() {
        let pos = [(0.0, 0.0), (400.0, 0.0)];
        let c = route(&pos, &[(0, 1), (1, 0)], &[]);
        assert_eq!(c[0].p0.0, BOX_W);
        assert_eq!(c[0].p3.0, 400.0);
        assert_eq!(c[0].at(0.0), c[0].p0);
        assert_eq!(c[0].at(1.0), c[0].p3);
        // The way back arcs below the boxes.
        assert!(c[1].at(0.5).1 > BOX_H);
        assert!(c[0].distance2(c[0].at(0.25)) < 1e-9 && c[0].distance2((200.0, 500.0)) > 1e4);
        let b = c[1].bounds();
        assert!(b.y1 > BOX_H && b.x0 <= BOX_W);
    }

    #[test]
    fn an_edge_from_the_band_apart_runs_up_into_the_box_above() {
        let pos = [(300.0, 500.0), (280.0, 0.0)];
        let c = route(&pos, &[(0, 1), (1, 0)], &[true, false]);
        // Up: from the band box's top to the pod's bottom, ending upwards (its arrowhead).
        assert_eq!(c[0].p0.1, 500.0);
        assert_eq!(c[0].p3.1, BOX_H);
        assert!(c[0].c2.1 > c[0].p3.1);
        // Down: from the pod's bottom into the band box's top.
        assert_eq!((c[1].p0.1, c[1].p3.1), (BOX_H, 500.0));
        assert!(c[1].c2.1 < c[1].p3.1);
        for k in [0, 1] {
            assert!(c[k].p0.0 >= 280.0 && c[k].p0.0 <= 300.0 + BOX_W);
        }
    }
}
