//! The minimap: the whole map in 180 × 110 pixels, boxes as dots in their level's colour and the
//! part in view as a frame; shown only when the map does not fit. Click or drag to go there.

use wasm_bindgen::JsCast;

use super::camera::Rect;
use super::layered::{BOX_H, BOX_W};
use super::paint::level_colour;
use super::state::MapState;

pub const MINI_W: f64 = 180.0;
pub const MINI_H: f64 = 110.0;

/// World → minimap: (scale, offset x, offset y) for the scene's bounds.
fn scale(b: &Rect) -> (f64, f64, f64) {
    let k = (MINI_W / b.width().max(1.0)).min(MINI_H / b.height().max(1.0));
    let (ox, oy) = ((MINI_W - b.width() * k) / 2.0, (MINI_H - b.height() * k) / 2.0);
    (k, ox - b.x0 * k, oy - b.y0 * k)
}

/// The world point under the minimap point `at`.
pub fn world_at(s: &MapState, at: (f64, f64)) -> Option<(f64, f64)> {
    if s.scene.groups.is_empty() {
        return None;
    }
    let (k, ox, oy) = scale(&s.scene.bounds);
    Some(((at.0 - ox) / k, (at.1 - oy) / k))
}

pub fn paint(canvas: &web_sys::HtmlCanvasElement, s: &MapState, dark: bool) {
    let view = s.view();
    let b = s.scene.bounds;
    let whole = view.x0 <= b.x0 && view.y0 <= b.y0 && view.x1 >= b.x1 && view.y1 >= b.y1;
    let el: &web_sys::HtmlElement = canvas.unchecked_ref();
    let _ = el.style().set_property("display", if whole || s.scene.groups.is_empty() { "none" } else { "block" });
    if whole {
        return;
    }
    let Some((ctx, _)) = crate::canvas::context_2d(canvas, MINI_W, MINI_H) else { return };
    ctx.set_fill_style_str(if dark { "#0f131a" } else { "#f6f7f9" });
    ctx.fill_rect(0.0, 0.0, MINI_W, MINI_H);
    let (k, ox, oy) = scale(&b);
    for (i, g) in s.scene.groups.iter().enumerate() {
        let (x, y) = s.pos[i.min(s.pos.len().saturating_sub(1))];
        ctx.set_fill_style_str(level_colour(g.level));
        ctx.fill_rect(x * k + ox, y * k + oy, (BOX_W * k).max(1.5), (BOX_H * k).max(1.0));
    }
    ctx.set_stroke_style_str(if dark { "#e6e9ef" } else { "#1d2330" });
    ctx.set_line_width(1.0);
    let (x0, y0) = (view.x0.max(b.x0) * k + ox, view.y0.max(b.y0) * k + oy);
    let (x1, y1) = (view.x1.min(b.x1) * k + ox, view.y1.min(b.y1) * k + oy);
    ctx.stroke_rect(x0, y0, (x1 - x0).max(2.0), (y1 - y0).max(2.0));
}
