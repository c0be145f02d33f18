//! Where lanes and bars sit on screen: rows stacked top to bottom, time mapped to x, and what a
//! point hits. Pure, so the canvas drawing and the DOM hooks agree and are tested natively.

use super::lanes::{Lane, LaneSet, Row};

/// The lane labels' column, left of the bars.
pub const LABEL_W: f64 = 250.0;
pub const GROUP_H: f64 = 22.0;
/// A lane with `rows` parallel rows of bars.
pub fn lane_h(rows: u8) -> f64 {
    8.0 + 10.0 * f64::from(rows)
}

/// A row and where it sits.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    pub row: Row,
    pub y: f64,
    pub h: f64,
}

/// Stacks `rows`; returns them with their offsets and the total height.
pub fn place(rows: Vec<Row>, set: &LaneSet) -> (Vec<Placed>, f64) {
    let mut y = 0.0;
    let placed = rows
        .into_iter()
        .map(|row| {
            let h = match &row {
                Row::Group { .. } => GROUP_H,
                Row::Lane(i) => lane_h(set.lane_rows[*i]),
            };
            let p = Placed { row, y, h };
            y += h;
            p
        })
        .collect();
    (placed, y)
}

/// The rows that show between `top` and `top + height`.
pub fn visible(placed: &[Placed], top: f64, height: f64) -> std::ops::Range<usize> {
    let first = placed.partition_point(|p| p.y + p.h <= top);
    let last = placed.partition_point(|p| p.y < top + height);
    first..last.max(first)
}

/// Time ↔ x over the bars' area (`width` pixels from x = 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub t0: u64,
    pub t1: u64,
    pub width: f64,
}

impl Scale {
    pub fn x(&self, t: u64) -> f64 {
        let span = self.t1.saturating_sub(self.t0).max(1) as f64;
        (t as f64 - self.t0 as f64) / span * self.width
    }

    pub fn t(&self, x: f64) -> u64 {
        let span = self.t1.saturating_sub(self.t0) as f64;
        (self.t0 as f64 + (x / self.width.max(1.0)) * span).max(0.0) as u64
    }

    /// A bar's left edge and width in pixels: at least 2 px wide, so a fast request still shows.
    pub fn bar(&self, start: u64, end: u64) -> (f64, f64) {
        let x0 = self.x(start);
        (x0, (self.x(end) - x0).max(2.0))
    }
}

/// What a point on the lanes is over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hit {
    Bar(u64),
    Lane(u64),
    Group((String, String)),
}

/// The bar row `row` of a lane at `y` occupies `[y + 4 + 10·row, … + 8]`.
pub fn bar_y(lane_top: f64, row: u8) -> f64 {
    lane_top + 4.0 + 10.0 * f64::from(row)
}

/// What `(x, y)` (x over the bars' area, y from the top of all rows) hits: the bar under it (or
/// within 3 px), else its lane or group header.
pub fn hit(set: &LaneSet, placed: &[Placed], scale: &Scale, x: f64, y: f64) -> Option<Hit> {
    let i = placed.partition_point(|p| p.y + p.h <= y);
    let p = placed.get(i).filter(|p| p.y <= y)?;
    match &p.row {
        Row::Group { group, .. } => Some(Hit::Group(set.groups[*group].key.clone())),
        Row::Lane(l) => {
            let lane: &Lane = &set.lanes[*l];
            let row = ((y - p.y - 4.0) / 10.0).floor().clamp(0.0, f64::from(lane.rows() - 1)) as u8;
            let (from, to) = (scale.t(x - 3.0), scale.t(x + 3.0));
            let best = lane.bars_in(from, to).filter(|b| b.row == row).min_by(|a, b| {
                // Inside a bar beats near one; among bars the point is inside, the nearest centre.
                let d = |bar: &super::lanes::Bar| {
                    let (x0, w) = scale.bar(bar.start, bar.end);
                    let centre = (x - x0 - w / 2.0).abs();
                    if x >= x0 && x <= x0 + w { centre / 1e6 } else { (x - x0).abs().min((x - x0 - w).abs()) }
                };
                d(a).total_cmp(&d(b))
            });
            Some(best.map_or(Hit::Lane(lane.conn), |b| Hit::Bar(b.id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podtap_shared::Record;

    fn set() -> LaneSet {
        let at = |id, conn, ts: u64, end: u64| Record { id, conn, ts, end_us: Some(end), ..Record::test() };
        LaneSet::from_records(&[at(1, 1, 1_000, 2_000), at(2, 1, 5_000, 6_000), at(3, 2, 1_500, 1_600)])
    }

    #[test]
    fn rows_stack_and_the_visible_ones_are_found() {
        let set = set();
        let (placed, total) = place(set.rows(&Default::default(), false), &set);
        assert_eq!(placed.len(), 3, "one group, two lanes");
        assert_eq!(total, GROUP_H + 2.0 * lane_h(1));
        assert_eq!(visible(&placed, 0.0, 10.0), 0..1);
        assert_eq!(visible(&placed, GROUP_H + 1.0, 5.0), 1..2);
        assert_eq!(visible(&placed, 0.0, 1000.0), 0..3);
    }

    #[test]
    fn a_click_finds_the_bar_under_it_or_near_it() {
        let set = set();
        let (placed, _) = place(set.rows(&Default::default(), false), &set);
        let scale = Scale { t0: 0, t1: 10_000, width: 1000.0 };
        let lane1_y = placed[1].y + 6.0;
        assert_eq!(hit(&set, &placed, &scale, 150.0, lane1_y), Some(Hit::Bar(1)));
        assert_eq!(hit(&set, &placed, &scale, 602.0, lane1_y), Some(Hit::Bar(2)), "within 3 px");
        assert_eq!(hit(&set, &placed, &scale, 400.0, lane1_y), Some(Hit::Lane(1)));
        assert!(matches!(hit(&set, &placed, &scale, 400.0, 5.0), Some(Hit::Group(_))));
        assert_eq!(scale.t(scale.x(4_321)), 4_321);
    }
}
