//! The map's input: drag to pan, wheel or pinch to zoom (around the pointer), keys (`+ − ← → ↑ ↓`,
//! `0` to fit, `Esc` to unfocus), hover for the card, click to open a folded box, focus any other
//! (a Service also shows its balance) or list an edge's requests; the search box; the minimap.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{KeyboardEvent, MouseEvent, PointerEvent, WheelEvent};

use super::camera::Camera;
use super::hooks::hook_of;
use super::minimap;
use super::view::{Hover, MapCtx};

/// Pointers down, for drag and pinch.
#[derive(Default)]
pub struct Gesture {
    pointers: Vec<(i32, (f64, f64))>,
    travelled: f64,
    /// The last click ended a drag: do not act on it.
    dragged: bool,
}

/// The event's position relative to the map frame (`currentTarget`).
fn local(ev: &MouseEvent) -> (f64, f64) {
    let rect =
        ev.current_target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).map(|e| e.get_bounding_client_rect());
    match rect {
        Some(r) => (f64::from(ev.client_x()) - r.left(), f64::from(ev.client_y()) - r.top()),
        None => (f64::from(ev.offset_x()), f64::from(ev.offset_y())),
    }
}

/// What is under the pointer: a hook, else a box or an edge of the canvas.
fn target(ctx: MapCtx, ev: &MouseEvent) -> Option<Hover> {
    if let Some((kind, el)) = hook_of(ev.target()) {
        return match kind.as_str() {
            "map-node" => el.get_attribute("data-id").map(Hover::Box),
            _ => Some(Hover::Edge(el.get_attribute("data-source")?, el.get_attribute("data-target")?)),
        };
    }
    let at = local(ev);
    ctx.state.with_value(|s| {
        let world = s.camera.to_world(at);
        if let Some(i) = s.scene.box_at(world) {
            return Some(Hover::Box(s.scene.groups[i].id.clone()));
        }
        let e = s.scene.edge_at(world, 7.0 / s.camera.k)?;
        let l = &s.scene.links[e];
        Some(Hover::Edge(l.source.clone(), l.target.clone()))
    })
}

pub fn wheel(ctx: MapCtx) -> impl Fn(WheelEvent) + Copy + 'static {
    move |ev: WheelEvent| {
        ev.prevent_default();
        let per_line = if ev.delta_mode() == 1 { 16.0 } else { 1.0 };
        // A trackpad pinch arrives as a wheel with Ctrl held: faster.
        let speed = if ev.ctrl_key() { 0.01 } else { 0.0015 };
        let factor = (-ev.delta_y() * per_line * speed).exp();
        let at = local(&ev);
        let now = MapCtx::now();
        ctx.state.update_value(|s| {
            let c = s.camera.zoom_at(factor, at);
            s.set_camera(c, now);
        });
    }
}

pub fn down(ctx: MapCtx) -> impl Fn(PointerEvent) + Copy + 'static {
    move |ev: PointerEvent| {
        let at = local(&ev);
        ctx.gesture.update_value(|g| {
            g.pointers.retain(|(id, _)| *id != ev.pointer_id());
            g.pointers.push((ev.pointer_id(), at));
            g.travelled = 0.0;
        });
    }
}

pub fn moved(ctx: MapCtx) -> impl Fn(PointerEvent) + Copy + 'static {
    move |ev: PointerEvent| {
        let at = local(&ev);
        let now = MapCtx::now();
        let before = ctx.gesture.with_value(|g| g.pointers.clone());
        match before.len() {
            0 => hover(ctx, &ev, at),
            1 => {
                let (_, last) = before[0];
                let (dx, dy) = (at.0 - last.0, at.1 - last.1);
                ctx.gesture.update_value(|g| {
                    g.pointers[0].1 = at;
                    g.travelled += dx.abs() + dy.abs();
                });
                if ctx.gesture.with_value(|g| g.travelled > 4.0) {
                    ctx.hover.set(None);
                    ctx.state.update_value(|s| {
                        let c = s.camera.pan(dx, dy);
                        s.set_camera(c, now);
                    });
                }
            }
            _ => {
                // Pinch: the distance between the first two pointers scales, around their middle.
                let Some(k) = before.iter().position(|(id, _)| *id == ev.pointer_id()) else { return };
                let other = before[if k == 0 { 1 } else { 0 }].1;
                let dist = |a: (f64, f64), b: (f64, f64)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt().max(1.0);
                let factor = dist(at, other) / dist(before[k].1, other);
                let mid = ((at.0 + other.0) / 2.0, (at.1 + other.1) / 2.0);
                ctx.gesture.update_value(|g| {
                    g.pointers[k].1 = at;
                    g.travelled += 10.0;
                });
                ctx.state.update_value(|s| {
                    let c = s.camera.zoom_at(factor, mid);
                    s.set_camera(c, now);
                });
            }
        }
    }
}

fn hover(ctx: MapCtx, ev: &PointerEvent, at: (f64, f64)) {
    let found = target(ctx, ev);
    let edge = match &found {
        Some(Hover::Edge(s, t)) => {
            ctx.state.with_value(|st| st.scene.links.iter().position(|l| l.source == *s && l.target == *t))
        }
        _ => None,
    };
    ctx.state.update_value(|s| {
        if s.hover_edge != edge {
            s.hover_edge = edge;
            s.dirty = true;
        }
    });
    // The card follows the pointer; nothing to hover and nothing hovered: no update.
    let next = found.map(|h| (h, at.0, at.1));
    if next.is_some() || ctx.hover.with_untracked(Option::is_some) {
        ctx.hover.set(next);
    }
}

pub fn up(ctx: MapCtx) -> impl Fn(PointerEvent) + Copy + 'static {
    move |ev: PointerEvent| {
        ctx.gesture.update_value(|g| {
            g.pointers.retain(|(id, _)| *id != ev.pointer_id());
            g.dragged = g.travelled > 4.0;
        });
    }
}

pub fn leave(ctx: MapCtx) -> impl Fn(PointerEvent) + Copy + 'static {
    move |_: PointerEvent| {
        ctx.gesture.update_value(|g| g.pointers.clear());
        ctx.hover.set(None);
        ctx.state.update_value(|s| {
            if s.hover_edge.take().is_some() {
                s.dirty = true;
            }
        });
    }
}

pub fn click(ctx: MapCtx) -> impl Fn(MouseEvent) + Copy + 'static {
    move |ev: MouseEvent| {
        if ctx.gesture.with_value(|g| g.dragged) {
            ctx.gesture.update_value(|g| g.dragged = false);
            return;
        }
        match target(ctx, &ev) {
            Some(Hover::Box(id)) => {
                let folded = ctx.state.with_value(|s| s.scene.index.get(&id).map(|&i| s.scene.groups[i].folded));
                if folded == Some(true) && !ev.shift_key() {
                    ctx.opts.update(|o| {
                        o.open.insert(id);
                    });
                    ctx.hover.set(None);
                    return;
                }
                if ctx.focus.get_untracked().as_deref() == Some(id.as_str()) {
                    ctx.focus.set(None);
                    return;
                }
                if let Some(svc) = id.strip_prefix("service:") {
                    ctx.service.set(Some(svc.to_string()));
                }
                ctx.focus.set(Some(id));
            }
            Some(Hover::Edge(s, t)) => ctx.add_filter(&format!("edge:{s}>{t}")),
            None => ctx.focus.set(None),
        }
    }
}

pub fn key(ctx: MapCtx) -> impl Fn(KeyboardEvent) + Copy + 'static {
    move |ev: KeyboardEvent| {
        let now = MapCtx::now();
        let handled = ctx.state.try_update_value(|s| {
            let mid = (s.size.0 / 2.0, s.size.1 / 2.0);
            let c: Option<Camera> = match ev.key().as_str() {
                "+" | "=" => Some(s.camera.zoom_at(1.25, mid)),
                "-" | "_" => Some(s.camera.zoom_at(0.8, mid)),
                "ArrowLeft" => Some(s.camera.pan(80.0, 0.0)),
                "ArrowRight" => Some(s.camera.pan(-80.0, 0.0)),
                "ArrowUp" => Some(s.camera.pan(0.0, 80.0)),
                "ArrowDown" => Some(s.camera.pan(0.0, -80.0)),
                "0" | "f" => {
                    s.moved = false;
                    s.fit();
                    return true;
                }
                _ => None,
            };
            match c {
                Some(c) => {
                    s.set_camera(c, now);
                    true
                }
                None => false,
            }
        });
        if handled == Some(true) {
            ev.prevent_default();
        } else if ev.key() == "Escape" {
            ctx.focus.set(None);
        }
    }
}

/// The search box: a box on the map by its name, else a pod folded inside one (its groups are
/// opened for it); it is centred and focused.
pub fn find(ctx: MapCtx, text: &str) {
    let needle = text.trim().to_ascii_lowercase();
    if needle.is_empty() {
        return;
    }
    let matches = |label: &str, id: &str| label.to_ascii_lowercase() == needle || id.to_ascii_lowercase() == needle;
    let near = |label: &str, id: &str| {
        label.to_ascii_lowercase().contains(&needle) || id.to_ascii_lowercase().contains(&needle)
    };
    let on_map = ctx.state.with_value(|s| {
        let groups = &s.scene.groups;
        groups
            .iter()
            .find(|g| matches(&g.label, &g.id))
            .or_else(|| groups.iter().find(|g| near(&g.label, &g.id)))
            .map(|g| g.id.clone())
    });
    if let Some(id) = on_map {
        ctx.state.update_value(|s| {
            s.centre(&id);
        });
        ctx.focus.set(Some(id));
        return;
    }
    let inside = ctx.map.with_untracked(|m| {
        m.nodes
            .iter()
            .find(|n| matches(&n.label, &n.id))
            .or_else(|| m.nodes.iter().find(|n| near(&n.label, &n.id)))
            .cloned()
    });
    if let Some(n) = inside {
        ctx.opts.update(|o| {
            if let Some(ns) = &n.namespace {
                o.open.insert(podtap_shared::group::namespace_id(ns));
                if let Some(w) = &n.workload {
                    o.open.insert(podtap_shared::group::workload_id(ns, w));
                }
            }
        });
        ctx.state.update_value(|s| s.centre_on = Some(n.id.clone()));
        ctx.focus.set(Some(n.id));
    }
}

pub fn minimap(ctx: MapCtx) -> impl Fn(PointerEvent) + Copy + 'static {
    move |ev: PointerEvent| {
        ev.stop_propagation();
        jump(ctx, &ev);
    }
}

pub fn minimap_drag(ctx: MapCtx) -> impl Fn(PointerEvent) + Copy + 'static {
    move |ev: PointerEvent| {
        ev.stop_propagation();
        if ev.buttons() & 1 == 1 {
            jump(ctx, &ev);
        }
    }
}

fn jump(ctx: MapCtx, ev: &PointerEvent) {
    let at = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
    let now = MapCtx::now();
    ctx.state.update_value(|s| {
        if let Some(world) = minimap::world_at(s, at) {
            let (w, h) = s.size;
            let c = s.camera.centre_on(world, w, h, s.camera.k);
            s.set_camera(c, now);
        }
    });
}
