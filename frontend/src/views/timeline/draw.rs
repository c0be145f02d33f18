//! Paints the visible lanes on a canvas: a line from each connection's open to its close (dashed
//! while its open or close is not known), its requests as bars coloured by outcome, probe lanes
//! dimmed, the selected request outlined. Bars that would land on the pixel the previous one
//! already covers are skipped, so a lane with 50,000 requests costs as much as its width.

use wasm_bindgen::JsValue;
use web_sys::CanvasRenderingContext2d;

use super::geometry::{Placed, Scale, bar_y};
use super::lanes::{LaneSet, Outcome, Row};

fn colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "#2e90fa",
        Outcome::Refused => "#f79009",
        Outcome::Failed => "#e31b54",
        Outcome::NoAnswer => "#98a2b3",
    }
}

/// What to paint.
pub struct Frame<'a> {
    pub set: &'a LaneSet,
    pub placed: &'a [Placed],
    pub rows: std::ops::Range<usize>,
    /// The scroll offset: row `y` is painted at `y - top`.
    pub top: f64,
    pub scale: Scale,
    pub height: f64,
    pub selected: Option<u64>,
    pub dark: bool,
}

pub fn paint(ctx: &CanvasRenderingContext2d, f: &Frame<'_>) {
    let w = f.scale.width;
    ctx.clear_rect(0.0, 0.0, w, f.height);
    let (line, band) = if f.dark { ("#5d6679", "rgba(255,255,255,0.04)") } else { ("#b8c0cc", "rgba(0,0,0,0.035)") };
    let mut selected_box = None;
    for p in &f.placed[f.rows.clone()] {
        let y = p.y - f.top;
        match &p.row {
            Row::Group { .. } => {
                ctx.set_fill_style_str(band);
                ctx.fill_rect(0.0, y, w, p.h);
            }
            Row::Lane(i) => {
                let lane = &f.set.lanes[*i];
                ctx.set_global_alpha(if lane.probe { 0.45 } else { 1.0 });
                let (x0, x1) = (f.scale.x(lane.start).max(-1.0), f.scale.x(lane.end).min(w + 1.0));
                ctx.set_stroke_style_str(line);
                ctx.set_line_width(1.0);
                let dash = js_sys::Array::new();
                if !lane.known || lane.close.as_deref() == Some("open") {
                    dash.push(&JsValue::from_f64(3.0));
                    dash.push(&JsValue::from_f64(3.0));
                }
                let _ = ctx.set_line_dash(&dash);
                ctx.begin_path();
                let mid = y + p.h / 2.0;
                ctx.move_to(x0, mid);
                ctx.line_to(x1.max(x0 + 1.0), mid);
                ctx.stroke();
                let mut last_end = [f64::NEG_INFINITY; super::lanes::MAX_ROWS as usize];
                let mut current = "";
                for b in lane.bars_in(f.scale.t0, f.scale.t1) {
                    let (bx, bw) = f.scale.bar(b.start, b.end);
                    let slot = &mut last_end[b.row as usize];
                    if bx + bw <= *slot + 0.5 && f.selected != Some(b.id) {
                        continue; // this pixel is painted already
                    }
                    *slot = bx + bw;
                    let c = colour(b.outcome);
                    if c != current {
                        ctx.set_fill_style_str(c);
                        current = c;
                    }
                    let by = bar_y(y, b.row);
                    ctx.fill_rect(bx, by, bw, 8.0);
                    if f.selected == Some(b.id) {
                        selected_box = Some((bx, by, bw));
                    }
                }
                ctx.set_global_alpha(1.0);
            }
        }
    }
    if let Some((x, y, bw)) = selected_box {
        let _ = ctx.set_line_dash(&js_sys::Array::new());
        ctx.set_stroke_style_str(if f.dark { "#ffffff" } else { "#101828" });
        ctx.set_line_width(2.0);
        ctx.stroke_rect(x - 1.5, y - 1.5, bw + 3.0, 11.0);
    }
}
