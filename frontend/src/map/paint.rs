//! Paints one frame of the map on a canvas: only what is in view, edges batched by look (one
//! stroke per colour, dash and width, not one per edge), boxes batched by kind, and text only when
//! it is big enough to read. A 1,000-box map costs a few hundred canvas calls a frame. Edges and
//! boxes paint apart: while the camera moves, the view reuses a raster of the edges.

use std::collections::{BTreeMap, HashSet};

use wasm_bindgen::JsValue;
use web_sys::CanvasRenderingContext2d;

use super::camera::Camera;
use super::layered::{BOX_H, BOX_W};
use super::route::{Curve, Point};
use super::scene::Scene;
use super::style::Dash;

/// What to paint: the scene, where its boxes are this frame (they move while a layout changes),
/// the camera and what is focused or hovered.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    pub scene: &'a Scene,
    pub pos: &'a [Point],
    pub curves: &'a [Curve],
    pub camera: Camera,
    pub width: f64,
    pub height: f64,
    /// Boxes lit while one is focused (it and its neighbours); `None`: all.
    pub lit: Option<&'a HashSet<usize>>,
    pub focus: Option<usize>,
    pub hover_edge: Option<usize>,
    pub dark: bool,
}

struct Palette {
    panel: &'static str,
    ink: &'static str,
    muted: &'static str,
}

const LIGHT: Palette = Palette { panel: "#ffffff", ink: "#1d2330", muted: "#667085" };
const DARK: Palette = Palette { panel: "#171c25", ink: "#e6e9ef", muted: "#98a2b3" };

/// The outline colour of a box by its `data-level`.
pub fn level_colour(level: &str) -> &'static str {
    match level {
        "namespace" => "#475467",
        "workload" | "pod" => "#2f7de1",
        "service" => "#7a4cd9",
        "node" => "#0f8f6f",
        "external" => "#c2410c",
        "topic" => "#b7791f",
        _ => "#98a2b3",
    }
}

fn dash(ctx: &CanvasRenderingContext2d, d: Dash, k: f64) {
    let a = js_sys::Array::new();
    let (on, off): (f64, f64) = match d {
        Dash::Solid => (0.0, 0.0),
        Dash::Probe => (7.0, 5.0),
        Dash::Dns => (1.5, 4.0),
    };
    if on > 0.0 {
        let min = 1.0 / k; // at least a pixel or so on screen
        a.push(&JsValue::from_f64(on.max(min * 3.0)));
        a.push(&JsValue::from_f64(off.max(min * 3.0)));
    }
    let _ = ctx.set_line_dash(&a);
}

/// Clears the canvas and puts the camera's transform on it; what is in view (world units, with a
/// margin).
pub fn start(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, ratio: f64) -> super::camera::Rect {
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    ctx.clear_rect(0.0, 0.0, f.width, f.height);
    world(ctx, f, ratio)
}

pub fn world(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, ratio: f64) -> super::camera::Rect {
    let c = f.camera;
    let _ = ctx.set_transform(ratio * c.k, 0.0, 0.0, ratio * c.k, ratio * c.tx, ratio * c.ty);
    c.visible(f.width, f.height).grow(40.0)
}

/// The whole frame on one canvas (`edges` clears it first).
pub fn paint(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, ratio: f64) {
    edges(ctx, f, ratio);
    boxes(ctx, f, ratio);
}

/// An edge dimmed by a focus is drawn at this opacity; a lit one at `EDGE_ALPHA`.
pub const DIMMED_ALPHA: f64 = 0.12;
pub const EDGE_ALPHA: f64 = 0.85;

/// The edges alone, on a cleared canvas (the edge layer `view` keeps while the camera moves).
pub fn edges(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, ratio: f64) {
    let view = start(ctx, f, ratio);
    strokes(ctx, f, &view, false);
    hovered(ctx, f);
}

/// Over a raster of every edge drawn dimmed: the lit edges of a focus at full strength, and the
/// hovered one — a focus or a hover redraws a few curves, not thousands.
pub fn lit_edges(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, ratio: f64) {
    let view = world(ctx, f, ratio);
    if f.lit.is_some() {
        strokes(ctx, f, &view, true);
    }
    hovered(ctx, f);
}

/// Edges of one look: (dimmed, colour, dash, width in quarter units).
pub type Look = (bool, &'static str, u8, u32);

/// The curves in `view`: all (dimmed where a focus leaves them out), or only the lit ones.
fn strokes(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, view: &super::camera::Rect, lit_only: bool) {
    let arrows = f.camera.k > 0.25;
    for (look, edges) in &batches(f, view, lit_only) {
        stroke(ctx, f, *look, edges, arrows);
    }
    let _ = ctx.set_line_dash(&js_sys::Array::new());
    ctx.set_global_alpha(1.0);
}

/// The edges in `view` batched by look (one stroke per colour, dash and width, not one per edge):
/// all, or only the lit ones.
pub fn batches(f: &Frame<'_>, view: &super::camera::Rect, lit_only: bool) -> Vec<(Look, Vec<usize>)> {
    let lit = |i: usize| f.lit.is_none_or(|l| l.contains(&i));
    let s = f.scene;
    let mut batches: BTreeMap<Look, Vec<usize>> = BTreeMap::new();
    for (e, curve) in f.curves.iter().enumerate() {
        let (a, b) = s.ends[e];
        let dimmed = !(lit(a) && lit(b));
        if (lit_only && dimmed) || !curve.bounds().intersects(view) {
            continue;
        }
        let look = s.looks[e];
        let d = match look.dash {
            Dash::Solid => 0,
            Dash::Probe => 1,
            Dash::Dns => 2,
        };
        batches.entry((dimmed, look.colour, d, (look.width * 4.0) as u32)).or_default().push(e);
    }
    batches.into_iter().collect()
}

/// `edges` of one look in one stroke, with their arrowheads in one fill.
pub fn stroke(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, look: Look, edges: &[usize], arrows: bool) {
    let (dimmed, colour, d, w4) = look;
    let k = f.camera.k;
    ctx.set_global_alpha(if dimmed { DIMMED_ALPHA } else { EDGE_ALPHA });
    ctx.set_stroke_style_str(colour);
    ctx.set_line_width((f64::from(w4) / 4.0).max(0.7 / k));
    dash(ctx, [Dash::Solid, Dash::Probe, Dash::Dns][usize::from(d)], k);
    ctx.begin_path();
    for &e in edges {
        let cv = &f.curves[e];
        ctx.move_to(cv.p0.0, cv.p0.1);
        ctx.bezier_curve_to(cv.c1.0, cv.c1.1, cv.c2.0, cv.c2.1, cv.p3.0, cv.p3.1);
    }
    ctx.stroke();
    if arrows {
        ctx.set_fill_style_str(colour);
        ctx.begin_path();
        for &e in edges {
            arrowhead(ctx, &f.curves[e], 9.0);
        }
        ctx.fill();
    }
}

/// The hovered edge, outlined over the rest.
fn hovered(ctx: &CanvasRenderingContext2d, f: &Frame<'_>) {
    let p = if f.dark { &DARK } else { &LIGHT };
    if let Some(e) = f.hover_edge.filter(|&e| e < f.curves.len()) {
        let cv = &f.curves[e];
        ctx.set_global_alpha(1.0);
        ctx.set_stroke_style_str(p.ink);
        ctx.set_line_width((f.scene.looks[e].width + 2.0).max(2.0 / f.camera.k));
        ctx.begin_path();
        ctx.move_to(cv.p0.0, cv.p0.1);
        ctx.bezier_curve_to(cv.c1.0, cv.c1.1, cv.c2.0, cv.c2.1, cv.p3.0, cv.p3.1);
        ctx.stroke();
    }
}

/// The boxes, their details and the edge labels, over what is already on the canvas.
pub fn boxes(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, ratio: f64) {
    let p = if f.dark { &DARK } else { &LIGHT };
    let view = world(ctx, f, ratio);
    let c = f.camera;
    let lit = |i: usize| f.lit.is_none_or(|l| l.contains(&i));
    let s = f.scene;

    // Boxes: fill, then outline by level.
    let shown: Vec<usize> = (0..f.pos.len())
        .filter(|&i| {
            let (x, y) = f.pos[i];
            x <= view.x1 && x + BOX_W >= view.x0 && y <= view.y1 && y + BOX_H >= view.y0
        })
        .collect();
    for dimmed in [true, false] {
        let mine: Vec<usize> = shown.iter().copied().filter(|&i| lit(i) != dimmed).collect();
        if mine.is_empty() {
            continue;
        }
        ctx.set_global_alpha(if dimmed { 0.25 } else { 1.0 });
        ctx.set_fill_style_str(p.panel);
        ctx.begin_path();
        for &i in &mine {
            ctx.rect(f.pos[i].0, f.pos[i].1, BOX_W, BOX_H);
        }
        ctx.fill();
        let mut by_level: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in &mine {
            by_level.entry(s.groups[i].level).or_default().push(i);
        }
        ctx.set_line_width((1.5_f64).max(0.8 / c.k));
        for (level, boxes) in by_level {
            ctx.set_stroke_style_str(level_colour(level));
            // A Service is a dashed box; so is a peer outside the viewer's namespaces (grey).
            if level == "service" || level == "locked" {
                dash(ctx, Dash::Probe, c.k);
            }
            ctx.begin_path();
            for &i in &boxes {
                ctx.rect(f.pos[i].0, f.pos[i].1, BOX_W, BOX_H);
            }
            ctx.stroke();
            let _ = ctx.set_line_dash(&js_sys::Array::new());
            // A folded group: a second outline, like a stack of boxes.
            let stacked: Vec<usize> = boxes.iter().copied().filter(|&i| s.groups[i].folded).collect();
            if !stacked.is_empty() {
                ctx.begin_path();
                for &i in &stacked {
                    let (x, y) = f.pos[i];
                    ctx.move_to(x + 4.0, y + BOX_H + 3.0);
                    ctx.line_to(x + BOX_W + 3.0, y + BOX_H + 3.0);
                    ctx.line_to(x + BOX_W + 3.0, y + 4.0);
                }
                ctx.stroke();
            }
        }
        if let Some(fi) = f.focus.filter(|fi| mine.contains(fi)) {
            ctx.set_stroke_style_str(p.ink);
            ctx.set_line_width(3.0_f64.max(2.0 / c.k));
            ctx.stroke_rect(f.pos[fi].0 - 2.0, f.pos[fi].1 - 2.0, BOX_W + 4.0, BOX_H + 4.0);
        }
        details(ctx, f, p, &mine);
    }
    ctx.set_global_alpha(1.0);
    edge_labels(ctx, f, p, &view);
}

/// Labels, replica bars and badges, when the boxes are big enough on screen to read them.
fn details(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, p: &Palette, boxes: &[usize]) {
    let k = f.camera.k;
    let s = f.scene;
    if BOX_H * k < 14.0 {
        return;
    }
    ctx.set_text_baseline("alphabetic");
    ctx.set_font("600 14px system-ui, sans-serif");
    ctx.set_fill_style_str(p.ink);
    for &i in boxes {
        let (x, y) = f.pos[i];
        ctx.fill_text_with_max_width(&s.groups[i].label, x + 10.0, y + 20.0, BOX_W - 34.0).ok();
    }
    if BOX_H * k >= 26.0 {
        ctx.set_font("12px system-ui, sans-serif");
        ctx.set_fill_style_str(p.muted);
        for &i in boxes {
            let (x, y) = f.pos[i];
            let room = if s.groups[i].replicas.len() > 1 { BOX_W - 66.0 } else { BOX_W - 20.0 };
            ctx.fill_text_with_max_width(&s.groups[i].sub, x + 10.0, y + 37.0, room).ok();
        }
    }
    // Replicas: one small bar per pod, its height its share of the busiest.
    ctx.set_fill_style_str(level_colour("pod"));
    for &i in boxes {
        let g = &s.groups[i];
        if g.replicas.len() < 2 {
            continue;
        }
        let max = g.replicas.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
        let n = g.replicas.len().min(24);
        let (x, y) = f.pos[i];
        let w = 40.0 / n as f64;
        for (j, (_, req)) in g.replicas.iter().take(n).enumerate() {
            let h = 10.0 * (*req as f64 / max);
            ctx.fill_rect(x + BOX_W - 48.0 + j as f64 * w, y + BOX_H - 4.0 - h, (w - 1.0).max(0.5), h.max(0.5));
        }
    }
    // Badges: a warning dot at the top right; a `+` on folded groups.
    for &i in boxes {
        let (x, y) = f.pos[i];
        if s.quality.boxes.contains_key(&s.groups[i].id) {
            ctx.set_fill_style_str("#d97706");
            ctx.begin_path();
            let _ = ctx.arc(x + BOX_W - 10.0, y + 10.0, 6.0, 0.0, std::f64::consts::TAU);
            ctx.fill();
            ctx.set_fill_style_str("#ffffff");
            ctx.set_font("700 10px system-ui, sans-serif");
            ctx.fill_text("!", x + BOX_W - 11.6, y + 13.8).ok();
        }
        if s.groups[i].folded {
            ctx.set_fill_style_str(p.muted);
            ctx.set_font("700 15px system-ui, sans-serif");
            ctx.fill_text("+", x + BOX_W - 28.0, y + 17.0).ok();
        }
    }
}

/// Edge labels when zoomed in enough, at most a few hundred, on a background so they read over
/// the curves.
fn edge_labels(ctx: &CanvasRenderingContext2d, f: &Frame<'_>, p: &Palette, view: &super::camera::Rect) {
    let k = f.camera.k;
    if k < 0.55 {
        return;
    }
    let s = f.scene;
    ctx.set_font("11px system-ui, sans-serif");
    ctx.set_text_align("center");
    let mut drawn = 0;
    for (e, cv) in f.curves.iter().enumerate() {
        let (x, y) = cv.at(0.5);
        if x < view.x0 || x > view.x1 || y < view.y0 || y > view.y1 {
            continue;
        }
        let (a, b) = s.ends[e];
        if f.lit.is_some_and(|l| !(l.contains(&a) && l.contains(&b))) {
            continue;
        }
        drawn += 1;
        if drawn > 400 {
            break;
        }
        let text = &s.labels[e];
        let w = text.chars().count() as f64 * 5.6 + 8.0;
        ctx.set_fill_style_str(p.panel);
        ctx.set_global_alpha(0.85);
        ctx.fill_rect(x - w / 2.0, y - 12.0, w, 15.0);
        ctx.set_global_alpha(1.0);
        ctx.set_fill_style_str(
            if s.quality.links.contains_key(&(s.links[e].source.clone(), s.links[e].target.clone())) {
                "#b54708"
            } else {
                p.ink
            },
        );
        ctx.fill_text(text, x, y).ok();
    }
    ctx.set_text_align("start");
}

/// A filled arrowhead at the curve's end, along its last tangent (path only; the caller fills).
fn arrowhead(ctx: &CanvasRenderingContext2d, c: &Curve, size: f64) {
    let (dx, dy) = (c.p3.0 - c.c2.0, c.p3.1 - c.c2.1);
    let len = (dx * dx + dy * dy).sqrt().max(1e-6);
    let (ux, uy) = (dx / len, dy / len);
    let (bx, by) = (c.p3.0 - ux * size, c.p3.1 - uy * size);
    ctx.move_to(c.p3.0, c.p3.1);
    ctx.line_to(bx - uy * size * 0.45, by + ux * size * 0.45);
    ctx.line_to(bx + uy * size * 0.45, by - ux * size * 0.45);
    ctx.close_path();
}
