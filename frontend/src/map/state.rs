//! What the map view holds between frames, without the browser: the scene and the layout memory,
//! the camera, the move from the last picture to this one, and whether the DOM hooks are due.
//! The view's event handlers and its frame loop only call these methods.

use std::collections::HashSet;

use super::camera::{Camera, Rect};
use super::fold::Folded;
use super::layered::Memory;
use super::quality::Context;
use super::route::{self, Curve, Point};
use super::scene::Scene;

/// How long boxes take to move to a new layout (ms).
pub const MOVE_MS: f64 = 350.0;
/// The DOM hooks follow the camera once it has been still this long (ms).
pub const HOOKS_AFTER_MS: f64 = 120.0;

#[derive(Default)]
pub struct MapState {
    pub scene: Scene,
    pub memory: Memory,
    pub camera: Camera,
    /// The user moved the camera: a new picture keeps it instead of fitting.
    pub moved: bool,
    /// Where boxes were when the picture changed, and when.
    from: Option<(Vec<Point>, f64)>,
    /// Where boxes are drawn this frame, and their curves.
    pub pos: Vec<Point>,
    pub curves: Vec<Curve>,
    pub size: (f64, f64),
    /// Something changed since the last paint.
    pub dirty: bool,
    pub hooks_due: bool,
    pub last_move_ms: f64,
    pub hover_edge: Option<usize>,
    /// A box to centre on once it is in the scene (a search hit inside a folded group).
    pub centre_on: Option<String>,
    pub layout_ms: f64,
    /// Bumped whenever the edges change other than by the camera (a new picture, boxes moving;
    /// not a hover or a focus, drawn over them): a raster of the edges is good while it stays.
    pub picture: u64,
    /// What the edges' raster shows of the picture (`drawn`): a new picture that draws the same
    /// keeps `picture`, so a live update that changed only counts draws no raster again.
    drawn: u64,
    /// Bumped whenever boxes move (a new layout, each frame of a move to it): a raster of the
    /// edges made for other positions is of another map.
    pub layout: u64,
    /// The last paint moved the edges' raster instead of drawing them: draw them once at rest.
    pub edges_reused: bool,
    /// A raster of the edges is being built, a part a frame: paint the next frame too.
    pub edges_building: bool,
}

impl MapState {
    /// Builds the picture of `folded`, moving boxes from where they were.
    pub fn rebuild(&mut self, folded: Folded, span_s: Option<f64>, ctx: &Context, now_ms: f64) {
        let (scene, memory) = Scene::build(folded, &self.memory, span_s, ctx, &self.scene);
        let old = &self.scene;
        let from: Vec<Point> = scene
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let was = |id: &str| old.index.get(id).and_then(|&j| self.pos.get(j)).copied();
                was(&g.id).or_else(|| g.parent.as_deref().and_then(was)).unwrap_or(scene.pos[i])
            })
            .collect();
        let moving = !old.groups.is_empty() && from != scene.pos;
        self.from = moving.then(|| (from.clone(), now_ms));
        let pos = if moving { from } else { scene.pos.clone() };
        let drawn = drawn(&scene);
        let same = !moving && pos == self.pos && drawn == self.drawn && !old.groups.is_empty();
        if pos != self.pos {
            self.layout += 1;
        }
        self.pos = pos;
        self.drawn = drawn;
        self.curves = if moving { route::route(&self.pos, &scene.ends, &scene.apart) } else { scene.curves.clone() };
        self.scene = scene;
        self.memory = memory;
        self.hover_edge = None;
        if !self.moved {
            self.fit();
        }
        if let Some(id) = self.centre_on.take()
            && !self.centre(&id)
        {
            self.centre_on = Some(id);
        }
        self.dirty = true;
        self.hooks_due = true;
        if !same {
            self.picture += 1;
        }
    }

    /// Advances the move to the new layout; whether it is still moving.
    pub fn tick(&mut self, now_ms: f64) -> bool {
        let Some((from, start)) = &self.from else { return false };
        let t = ((now_ms - start) / MOVE_MS).clamp(0.0, 1.0);
        let ease = 1.0 - (1.0 - t).powi(3);
        self.pos = from
            .iter()
            .zip(&self.scene.pos)
            .map(|(a, b)| (a.0 + (b.0 - a.0) * ease, a.1 + (b.1 - a.1) * ease))
            .collect();
        self.curves = route::route(&self.pos, &self.scene.ends, &self.scene.apart);
        self.dirty = true;
        self.picture += 1;
        self.layout += 1;
        if t >= 1.0 {
            self.from = None;
            self.pos = self.scene.pos.clone();
            self.curves = self.scene.curves.clone();
            return false;
        }
        true
    }

    /// Boxes are on their way to a new layout.
    pub fn boxes_moving(&self) -> bool {
        self.from.is_some()
    }

    pub fn fit(&mut self) {
        let (w, h) = self.size;
        if w > 0.0 && h > 0.0 {
            self.camera = Camera::fit(self.scene.bounds, w, h);
            self.moved_camera(false);
        }
    }

    /// The user moved the camera to `c`.
    pub fn set_camera(&mut self, c: Camera, now_ms: f64) {
        self.camera = c;
        self.last_move_ms = now_ms;
        self.moved_camera(true);
    }

    fn moved_camera(&mut self, by_user: bool) {
        self.moved |= by_user;
        self.dirty = true;
        self.hooks_due = true;
    }

    /// Centres on box `id`, zoomed in enough to read it; false when it is not in the scene.
    pub fn centre(&mut self, id: &str) -> bool {
        let Some(&i) = self.scene.index.get(id) else { return false };
        let (x, y) = self.scene.pos[i];
        let (w, h) = self.size;
        self.camera = self.camera.centre_on((x + 105.0, y + 24.0), w, h, 0.8);
        self.moved_camera(true);
        true
    }

    /// The world rectangle in view.
    pub fn view(&self) -> Rect {
        self.camera.visible(self.size.0, self.size.1)
    }

    /// A box and its neighbours, lit while it is focused.
    pub fn lit(&self, focus: Option<&str>) -> Option<HashSet<usize>> {
        let i = *self.scene.index.get(focus?)?;
        let mut lit: HashSet<usize> = HashSet::from([i]);
        for &(s, t) in &self.scene.ends {
            if s == i {
                lit.insert(t);
            }
            if t == i {
                lit.insert(s);
            }
        }
        Some(lit)
    }
}

/// What a raster of `scene`'s edges depends on besides the boxes' places: which boxes each joins,
/// how far apart parallel ones run, and how each is drawn (its width as strokes quantise it).
fn drawn(scene: &Scene) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    scene.ends.hash(&mut h);
    scene.apart.hash(&mut h);
    for look in &scene.looks {
        (look.colour, look.dash as u8, (look.width * 4.0) as u32).hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests;
