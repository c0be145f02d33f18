//! The edge layer: every edge in view rasterised on a canvas of its own, drawn under the boxes.
//! While the camera moves it is moved and scaled instead of drawn again (thousands of curves cost
//! the browser more to rasterise than a frame has). A new raster — a new picture, a camera at
//! rest, a zoom out of the layer's range — is built a part at a time, a few milliseconds a frame,
//! beside the one on screen, which stays (moved and scaled) until the new one is whole. So no
//! frame waits for thousands of curves: a 5,000-pod map's 16,000 edges once took one frame of
//! 467 ms, and a 1,000-pod map's live update 40 ms every 2 s.

use std::cell::RefCell;

use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use super::camera::Camera;
use super::paint::{self, Frame, Look};
use super::state::MapState;

/// A camera this far in or out from the raster on screen redraws it even while moving.
const ZOOM_RANGE: (f64, f64) = (0.6, 1.7);
/// What a frame spends on a raster being built, about (one chunk at least).
const BUDGET_MS: f64 = 4.0;
/// What one chunk of curves should cost: chunks are sized by what the last ones cost (a curve
/// costs from microseconds to a millisecond, by its length and width on screen and the
/// machine).
const CHUNK_MS: f64 = 1.5;
/// Curves in a chunk: at first, and bounds.
const CHUNK: (usize, usize, usize) = (100, 10, 5000);

/// A raster of the edges, and for which camera, picture, box positions and size.
struct Raster {
    canvas: HtmlCanvasElement,
    camera: Camera,
    picture: u64,
    layout: u64,
    size: (f64, f64),
}

/// A raster being built: the edges still to draw, by look.
struct Build {
    raster: Raster,
    ctx: CanvasRenderingContext2d,
    batches: Vec<(Look, Vec<usize>)>,
    /// The next batch, and the next edge in it.
    batch: usize,
    at: usize,
}

struct Layer {
    shown: Option<Raster>,
    build: Option<Build>,
    /// The canvas of a raster replaced, for the next build.
    spare: Option<HtmlCanvasElement>,
    /// Curves in the next chunk.
    chunk: usize,
}

thread_local! {
    static LAYER: RefCell<Layer> = const { RefCell::new(Layer { shown: None, build: None, spare: None, chunk: CHUNK.0 }) };
}

/// What drawing the edges from the layer left to do.
pub struct Composed {
    /// A raster made for another camera was drawn: draw afresh once the camera rests.
    pub stale: bool,
    /// A raster is being built: paint again next frame.
    pub building: bool,
}

/// Clears `c2d` (the map's canvas) and draws the edges of `base` (every edge undimmed,
/// unhovered) on it from the layer, building a raster as needed; dimmed as a whole while
/// `dimmed`. `None` when no canvas could be made (the caller paints directly).
pub fn compose(
    c2d: &CanvasRenderingContext2d,
    s: &MapState,
    base: &Frame<'_>,
    dimmed: bool,
    moving: bool,
    ratio: f64,
) -> Option<Composed> {
    LAYER.with(|layer| layer.borrow_mut().compose(c2d, s, base, dimmed, moving, ratio))
}

/// Goes on with the raster being built (nothing else changed since the last paint: the map's
/// canvas stays as it is until the raster is whole); whether it is whole now (paint again).
pub fn advance(base: &Frame<'_>, ratio: f64) -> bool {
    LAYER.with(|layer| {
        let mut layer = layer.borrow_mut();
        if !layer.step(base, ratio, BUDGET_MS) {
            return false;
        }
        if let Some(done) = layer.build.take() {
            layer.spare = layer.shown.replace(done.raster).map(|r| r.canvas);
        }
        true
    })
}

impl Layer {
    fn compose(
        &mut self,
        c2d: &CanvasRenderingContext2d,
        s: &MapState,
        base: &Frame<'_>,
        dimmed: bool,
        moving: bool,
        ratio: f64,
    ) -> Option<Composed> {
        let c = s.camera;
        let good = self.shown.as_ref().is_some_and(|r| {
            let k = c.k / r.camera.k;
            let near = moving && k > ZOOM_RANGE.0 && k < ZOOM_RANGE.1;
            r.picture == s.picture && r.size == s.size && (r.camera == c || near)
        });
        let mut building = false;
        if !good {
            let first = self.shown.is_none();
            self.start(s, base, moving, ratio)?;
            // The page's first map is drawn whole: there is nothing to show meanwhile.
            let budget = if first { f64::INFINITY } else { BUDGET_MS };
            if self.step(base, ratio, budget) {
                let done = self.build.take()?.raster;
                self.spare = self.shown.replace(done).map(|r| r.canvas);
            } else {
                building = true;
            }
        }
        let (w, h) = s.size;
        let _ = c2d.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
        c2d.clear_rect(0.0, 0.0, w * ratio, h * ratio);
        // A raster of other box positions is of another map: none until the new one is whole.
        let Some(r) = self.shown.as_ref().filter(|r| r.size == s.size && r.layout == s.layout) else {
            return Some(Composed { stale: false, building });
        };
        // Raster pixels p0 = ratio·(k0·x + t0); now p = ratio·(k·x + t) = r·p0 + ratio·(t − r·t0).
        let k = c.k / r.camera.k;
        let _ = c2d.set_transform(k, 0.0, 0.0, k, ratio * (c.tx - k * r.camera.tx), ratio * (c.ty - k * r.camera.ty));
        if dimmed {
            c2d.set_global_alpha(paint::DIMMED_ALPHA / paint::EDGE_ALPHA);
        }
        let drawn = c2d.draw_image_with_html_canvas_element(&r.canvas, 0.0, 0.0);
        c2d.set_global_alpha(1.0);
        drawn.ok()?;
        // While a raster is built the frame loop goes on with it (`advance`), and paints once it
        // is whole: no repaint at rest meanwhile.
        Some(Composed { stale: !building && r.camera != c, building })
    }

    /// Starts a raster of `base` for the camera, picture and size of `s`, unless one is under way
    /// (while the camera moves, one for another camera goes on: it is shown moved and scaled).
    fn start(&mut self, s: &MapState, base: &Frame<'_>, moving: bool, ratio: f64) -> Option<()> {
        let same = |r: &Raster| {
            r.picture == s.picture && r.size == s.size && r.layout == s.layout && (moving || r.camera == s.camera)
        };
        if self.build.as_ref().is_some_and(|b| same(&b.raster)) {
            return Some(());
        }
        let canvas = match self.build.take() {
            Some(abandoned) => abandoned.raster.canvas,
            None => match self.spare.take() {
                Some(canvas) => canvas,
                None => web_sys::window()?.document()?.create_element("canvas").ok()?.dyn_into().ok()?,
            },
        };
        let (w, h) = s.size;
        let (ctx, _) = crate::canvas::context_2d(&canvas, w, h)?;
        let view = paint::start(&ctx, base, ratio);
        let raster = Raster { canvas, camera: s.camera, picture: s.picture, layout: s.layout, size: s.size };
        self.build = Some(Build { raster, ctx, batches: paint::batches(base, &view, false), batch: 0, at: 0 });
        Some(())
    }

    /// Draws the build on for `budget_ms` (whole chunks); whether it is done.
    fn step(&mut self, base: &Frame<'_>, ratio: f64, budget_ms: f64) -> bool {
        let Some(b) = self.build.as_mut() else { return true };
        let now = crate::canvas::now_ms;
        let began = now();
        let chunk = &mut self.chunk;
        // For the camera it was started for (the camera may have moved on since).
        let f = Frame { camera: b.raster.camera, ..*base };
        paint::world(&b.ctx, &f, ratio);
        let arrows = f.camera.k > 0.25;
        loop {
            let chunk_began = now();
            let mut left = *chunk;
            let drawn = *chunk;
            while left > 0 && b.batch < b.batches.len() {
                let (look, edges) = &b.batches[b.batch];
                let end = (b.at + left).min(edges.len());
                paint::stroke(&b.ctx, &f, *look, &edges[b.at..end], arrows);
                left -= end - b.at;
                b.at = end;
                if b.at == edges.len() {
                    (b.batch, b.at) = (b.batch + 1, 0);
                }
            }
            // The browser rasterises a canvas's drawing when it is next read: read a pixel, so
            // that this chunk's cost falls in this frame, not all of them in the frame that
            // shows the raster.
            let _ = b.ctx.get_image_data(0.0, 0.0, 1.0, 1.0);
            let took = now() - chunk_began;
            if left == 0 && took > 0.0 {
                // A whole chunk: the next one sized to cost about `CHUNK_MS`.
                let next = (drawn as f64 * CHUNK_MS / took) as usize;
                *chunk = next.clamp(drawn / 2, drawn * 2).clamp(CHUNK.1, CHUNK.2);
            }
            if b.batch >= b.batches.len() {
                let _ = b.ctx.set_line_dash(&js_sys::Array::new());
                b.ctx.set_global_alpha(1.0);
                return true;
            }
            if now() - began >= budget_ms {
                return false;
            }
        }
    }
}
