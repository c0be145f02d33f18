//! A 2D canvas sized for the screen: its pixels at the device's pixel ratio, its CSS size in
//! layout pixels, drawing in layout pixels. The timeline's lanes, the map and its minimap all
//! start a paint here, and learn their column's size from `observe_size`.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{CanvasRenderingContext2d, Element, HtmlCanvasElement, HtmlElement, ResizeObserver};

/// The context of `canvas` at `w × h` layout pixels (resized only when that changed), and the
/// pixel ratio it is drawn at.
pub fn context_2d(canvas: &HtmlCanvasElement, w: f64, h: f64) -> Option<(CanvasRenderingContext2d, f64)> {
    let ratio = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
    let (pw, ph) = ((w * ratio) as u32, (h * ratio) as u32);
    if canvas.width() != pw || canvas.height() != ph {
        canvas.set_width(pw);
        canvas.set_height(ph);
        let style = canvas.unchecked_ref::<HtmlElement>().style();
        let _ = style.set_property("width", &format!("{w}px"));
        let _ = style.set_property("height", &format!("{h}px"));
    }
    let ctx = canvas.get_context("2d").ok().flatten()?.dyn_into::<CanvasRenderingContext2d>().ok()?;
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    Some((ctx, ratio))
}

/// The page's clock in ms (`performance.now()`), for frame budgets and animations.
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// Calls `seen(width, height)` (`clientWidth`, `clientHeight`) now-ish and whenever `el` changes
/// size, until the observer is disconnected. A ResizeObserver is told after
/// layout, so reading the size there costs nothing, where reading it in a frame or an effect
/// forced a layout of the whole page.
pub fn observe_size(el: &Element, mut seen: impl FnMut(f64, f64) + 'static) -> Option<ResizeObserver> {
    let target = el.clone();
    let on_resize = Closure::<dyn FnMut()>::new(move || {
        seen(f64::from(target.client_width()), f64::from(target.client_height()));
    });
    let observer = ResizeObserver::new(on_resize.as_ref().unchecked_ref()).ok()?;
    observer.observe(el);
    on_resize.forget();
    Some(observer)
}
