//! The camera: world (layout) coordinates to screen pixels, `screen = world · k + (tx, ty)`.
//! Zoom keeps the point under the cursor (or the pinch's midpoint) where it is; fit shows the
//! whole map with a margin; nothing zooms past readable or tiny.

/// Smallest and largest zoom.
pub const MIN_K: f64 = 0.004;
pub const MAX_K: f64 = 3.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    pub k: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Default for Camera {
    fn default() -> Self {
        Camera { k: 1.0, tx: 0.0, ty: 0.0 }
    }
}

/// An axis-aligned rectangle: left, top, right, bottom.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub fn intersects(&self, o: &Rect) -> bool {
        self.x0 <= o.x1 && o.x0 <= self.x1 && self.y0 <= o.y1 && o.y0 <= self.y1
    }

    pub fn grow(&self, by: f64) -> Rect {
        Rect { x0: self.x0 - by, y0: self.y0 - by, x1: self.x1 + by, y1: self.y1 + by }
    }

    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }
}

impl Camera {
    pub fn to_screen(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (x * self.k + self.tx, y * self.k + self.ty)
    }

    pub fn to_world(&self, (x, y): (f64, f64)) -> (f64, f64) {
        ((x - self.tx) / self.k, (y - self.ty) / self.k)
    }

    /// The part of the world a `w × h` viewport shows.
    pub fn visible(&self, w: f64, h: f64) -> Rect {
        let (x0, y0) = self.to_world((0.0, 0.0));
        let (x1, y1) = self.to_world((w, h));
        Rect { x0, y0, x1, y1 }
    }

    /// Zooms by `factor` keeping the screen point `at` still.
    pub fn zoom_at(&self, factor: f64, at: (f64, f64)) -> Camera {
        let k = (self.k * factor).clamp(MIN_K, MAX_K);
        let (wx, wy) = self.to_world(at);
        Camera { k, tx: at.0 - wx * k, ty: at.1 - wy * k }
    }

    pub fn pan(&self, dx: f64, dy: f64) -> Camera {
        Camera { tx: self.tx + dx, ty: self.ty + dy, ..*self }
    }

    /// Shows `bounds` whole in a `w × h` viewport, centred, never zoomed in past 1.
    pub fn fit(bounds: Rect, w: f64, h: f64) -> Camera {
        let margin = 24.0;
        let (bw, bh) = (bounds.width().max(1.0), bounds.height().max(1.0));
        let k = ((w - 2.0 * margin) / bw).min((h - 2.0 * margin) / bh).clamp(MIN_K, 1.0);
        let (cx, cy) = ((bounds.x0 + bounds.x1) / 2.0, (bounds.y0 + bounds.y1) / 2.0);
        Camera { k, tx: w / 2.0 - cx * k, ty: h / 2.0 - cy * k }
    }

    /// Centres the world point `at` in a `w × h` viewport at zoom at least `k`.
    pub fn centre_on(&self, at: (f64, f64), w: f64, h: f64, k: f64) -> Camera {
        let k = self.k.max(k).clamp(MIN_K, MAX_K);
        Camera { k, tx: w / 2.0 - at.0 * k, ty: h / 2.0 - at.1 * k }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_keeps_the_point_under_the_cursor() {
        let c = Camera { k: 0.5, tx: 10.0, ty: -20.0 };
        let at = (300.0, 200.0);
        let before = c.to_world(at);
        let z = c.zoom_at(1.7, at);
        let after = z.to_world(at);
        assert!((before.0 - after.0).abs() < 1e-9 && (before.1 - after.1).abs() < 1e-9);
        assert_eq!(c.zoom_at(1e9, at).k, MAX_K);
        assert_eq!(c.zoom_at(1e-9, at).k, MIN_K);
    }

    #[test]
    fn fit_shows_all_of_the_bounds() {
        let b = Rect { x0: -100.0, y0: 50.0, x1: 4000.0, y1: 9000.0 };
        let c = Camera::fit(b, 1200.0, 600.0);
        let v = c.visible(1200.0, 600.0);
        assert!(v.x0 <= b.x0 && v.y0 <= b.y0 && v.x1 >= b.x1 && v.y1 >= b.y1, "{v:?}");
        // A small map is not blown up.
        assert_eq!(Camera::fit(Rect { x0: 0.0, y0: 0.0, x1: 100.0, y1: 50.0 }, 1200.0, 600.0).k, 1.0);
    }
}
