//! The map's DOM hooks (DESIGN.md): one transparent element per box and per edge *in view*, over
//! the canvas, carrying `data-testid="map-node"` (`data-id`, `data-level`, `data-members`,
//! `data-quality`) and `data-testid="map-edge"` (`data-source`, `data-target`, `data-requests`,
//! `data-connections`, `data-errors`). They are what a click or a test finds. Kept by hand, not
//! by the framework: a pan changes which are in view, a count changes one attribute, and
//! thousands of elements must not be rebuilt for either. They sit in one layer moved by a CSS
//! transform, so panning moves no element.

use std::collections::HashMap;

use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement};

use super::camera::Camera;
use super::layered::{BOX_H, BOX_W};
use super::scene::Scene;

/// An edge hook's size around its label point (world units).
const EDGE_W: f64 = 120.0;
const EDGE_H: f64 = 18.0;

/// A hook's attributes, and its class.
type Wanted = (Vec<(&'static str, String)>, &'static str);

pub struct Hooks {
    layer: HtmlElement,
    document: Document,
    /// By key: the element and the attributes it was last given.
    shown: HashMap<String, (Element, String)>,
}

impl Hooks {
    pub fn new(layer: HtmlElement) -> Option<Self> {
        let document = web_sys::window()?.document()?;
        Some(Hooks { layer, document, shown: HashMap::new() })
    }

    /// Moves the layer with the camera.
    pub fn follow(&self, c: Camera) {
        let _ =
            self.layer.style().set_property("transform", &format!("translate({}px,{}px) scale({})", c.tx, c.ty, c.k));
    }

    /// Makes the hooks those of `boxes` and `edges` (indexes into `scene`), touching only what
    /// changed.
    pub fn sync(&mut self, scene: &Scene, boxes: &[usize], edges: &[usize]) {
        let mut wanted: HashMap<String, Wanted> = HashMap::new();
        for &i in boxes {
            let g = &scene.groups[i];
            let (x, y) = scene.pos[i];
            let mut attrs = vec![
                ("data-testid", "map-node".to_string()),
                ("data-id", g.id.clone()),
                ("data-level", g.level.to_string()),
                ("aria-label", format!("{} ({})", g.label, g.level)),
                ("style", format!("left:{x:.1}px;top:{y:.1}px;width:{BOX_W}px;height:{BOX_H}px")),
            ];
            if g.members > 0 {
                attrs.push(("data-members", g.members.to_string()));
            }
            if let Some(badges) = scene.quality.boxes.get(&g.id) {
                let kinds: Vec<&str> = badges.iter().map(|b| b.kind).collect();
                attrs.push(("data-quality", kinds.join(" ")));
            }
            if g.folded {
                attrs.push(("data-folded", "true".into()));
            }
            wanted.insert(format!("n {}", g.id), (attrs, "hook node"));
        }
        for &e in edges {
            let l = &scene.links[e];
            let (x, y) = scene.label_at(e);
            let mut attrs = vec![
                ("data-testid", "map-edge".to_string()),
                ("data-source", l.source.clone()),
                ("data-target", l.target.clone()),
                ("data-requests", l.requests.to_string()),
                ("data-connections", l.connections.to_string()),
                ("data-errors", l.errors.to_string()),
                ("aria-label", format!("{} → {}: {}", l.source, l.target, scene.labels[e])),
                (
                    "style",
                    format!("left:{:.1}px;top:{:.1}px;width:{EDGE_W}px;height:{EDGE_H}px", x - EDGE_W / 2.0, y - 13.0),
                ),
            ];
            if l.probe_only() {
                attrs.push(("data-style", "probe".into()));
            } else if l.dns_only() {
                attrs.push(("data-style", "dns".into()));
            }
            if let Some(badges) = scene.quality.links.get(&(l.source.clone(), l.target.clone())) {
                attrs.push(("data-quality", badges.iter().map(|b| b.kind).collect::<Vec<_>>().join(" ")));
            }
            wanted.insert(format!("e {}>{}", l.source, l.target), (attrs, "hook edge"));
        }
        self.shown.retain(|key, (el, _)| {
            let keep = wanted.contains_key(key);
            if !keep {
                el.remove();
            }
            keep
        });
        for (key, (attrs, class)) in wanted {
            let signature: String = attrs.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join("\u{1}");
            match self.shown.get_mut(&key) {
                Some((_, old)) if *old == signature => {}
                Some((el, old)) => {
                    set_all(el, &attrs, class);
                    *old = signature;
                }
                None => {
                    let Ok(el) = self.document.create_element("div") else { continue };
                    set_all(&el, &attrs, class);
                    let _ = self.layer.append_child(&el);
                    self.shown.insert(key, (el, signature));
                }
            }
        }
    }
}

fn set_all(el: &Element, attrs: &[(&'static str, String)], class: &str) {
    // Attributes an element had and no longer has (a badge that cleared) go.
    for name in ["data-members", "data-quality", "data-folded", "data-style"] {
        if !attrs.iter().any(|(n, _)| *n == name) {
            let _ = el.remove_attribute(name);
        }
    }
    let _ = el.set_attribute("class", class);
    for (name, value) in attrs {
        let _ = el.set_attribute(name, value);
    }
}

/// The hook an event happened on: (`map-node` or `map-edge`, the element).
pub fn hook_of(target: Option<web_sys::EventTarget>) -> Option<(String, Element)> {
    let el: Element = target?.dyn_into().ok()?;
    let hook = el.closest("[data-testid=map-node],[data-testid=map-edge]").ok()??;
    Some((hook.get_attribute("data-testid")?, hook))
}
