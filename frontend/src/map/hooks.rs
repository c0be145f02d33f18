//! The map's DOM hooks (DESIGN.md): one transparent element per box and per edge *in view*, over
//! the canvas, carrying `data-testid="map-node"` (`data-id`, `data-level`, `data-members`,
//! `data-quality`) and `data-testid="map-edge"` (`data-source`, `data-target`, `data-requests`,
//! `data-connections`, `data-errors`, and `data-topic` on an edge into or out of a Kafka topic). They are what a click or a test finds. Kept by hand, not
//! by the framework: a pan changes which are in view, a count changes one attribute, and
//! thousands of elements must not be rebuilt for either. They are SVG `rect`s in one group moved
//! by a transform: HTML elements positioned absolutely would each be a layer of their own, and
//! thousands of those cost the browser's compositor seconds a frame. What changes is applied a
//! bounded number of elements per frame, so a zoom that brings thousands into view never stalls.

use rustc_hash::{FxHashMap, FxHashSet};
use wasm_bindgen::JsCast;
use web_sys::{Document, Element};

const SVG: &str = "http://www.w3.org/2000/svg";

use super::camera::Camera;
use super::layered::{BOX_H, BOX_W};
use super::scene::Scene;

/// An edge hook's size around its label point (world units).
const EDGE_W: f64 = 120.0;
const EDGE_H: f64 = 18.0;

/// One hook as it should be: a box's or an edge's, with the attributes that vary (those that do
/// not are on its template).
struct Spec {
    attrs: Attrs,
    node: bool,
}

type Attrs = Vec<(&'static str, String)>;

pub struct Hooks {
    layer: Element,
    /// Edge hooks, then box hooks (later in the document: on top).
    edges: Element,
    nodes: Element,
    document: Document,
    /// A box's and an edge's element with what every one carries (test id, class, size): a
    /// new hook is a clone, given only what varies.
    node_template: Element,
    edge_template: Element,
    /// The scene the specs were made for.
    version: u64,
    /// By key (`n ID`, `e SOURCE>TARGET`): boxes first, then edges, in scene order.
    specs: Vec<(String, Spec)>,
    /// Shown now, by key: the element and the attributes it was given (a rewrite sets only
    /// those that changed: a new picture moves thousands of hooks, and changes little else).
    shown: FxHashMap<String, (Element, Attrs)>,
    /// Specs (indexes) of shown hooks still to be rewritten for the current picture.
    stale: Vec<usize>,
    /// The camera the layer was last moved to.
    followed: Option<Camera>,
    /// The hooks take part in rendering (the camera is still).
    resting: bool,
}

impl Hooks {
    pub fn new(layer: Element) -> Option<Self> {
        let document = web_sys::window()?.document()?;
        let edges = document.create_element_ns(Some(SVG), "g").ok()?;
        let nodes = document.create_element_ns(Some(SVG), "g").ok()?;
        layer.append_child(&edges).ok()?;
        layer.append_child(&nodes).ok()?;
        let template = |testid: &str, class: &str, w: f64, h: f64| -> Option<Element> {
            let el = document.create_element_ns(Some(SVG), "rect").ok()?;
            for (name, value) in
                [("data-testid", testid), ("class", class), ("width", &w.to_string()), ("height", &h.to_string())]
            {
                el.set_attribute(name, value).ok()?;
            }
            Some(el)
        };
        let node_template = template("map-node", "hook node", BOX_W, BOX_H)?;
        let edge_template = template("map-edge", "hook edge", EDGE_W, EDGE_H)?;
        Some(Hooks {
            layer,
            edges,
            nodes,
            document,
            node_template,
            edge_template,
            version: u64::MAX,
            specs: Vec::new(),
            shown: FxHashMap::default(),
            stale: Vec::new(),
            followed: None,
            resting: true,
        })
    }

    /// Moves the layer with the camera.
    pub fn follow(&mut self, c: Camera) {
        if self.followed == Some(c) {
            return;
        }
        self.followed = Some(c);
        let _ = self.layer.set_attribute("transform", &format!("translate({} {}) scale({})", c.tx, c.ty, c.k));
    }

    /// Takes the hooks out of hit testing while the camera moves (a drag over thousands of
    /// hooks would hit-test them on every pointer event) and puts them back when it rests.
    pub fn rest(&mut self, resting: bool) {
        if resting != self.resting {
            self.resting = resting;
            let _ = self.layer.set_attribute("visibility", if resting { "visible" } else { "hidden" });
        }
    }

    /// Makes the hooks those of `boxes` and `edges` (indexes into `scene`, picture `version`):
    /// the specs are made once per picture; a pan only adds and removes what came into or left
    /// the view, an update only rewrites the attributes that changed.
    /// At most `budget` elements are added or removed; returns whether all of it was done.
    pub fn sync(&mut self, scene: &Scene, version: u64, boxes: &[usize], edges: &[usize], budget: usize) -> bool {
        let mut left = budget;
        if version != self.version {
            self.version = version;
            self.specs = specs(scene);
            self.stale = (0..self.specs.len())
                .filter(|&i| self.shown.get(&self.specs[i].0).is_some_and(|(_, old)| *old != self.specs[i].1.attrs))
                .collect();
        }
        // Hooks whose attributes changed (a new picture moves thousands): within the budget too.
        while left > 0
            && let Some(i) = self.stale.pop()
        {
            let (key, spec) = &self.specs[i];
            if let Some((el, old)) = self.shown.get_mut(key) {
                set_changed(el, old, &spec.attrs);
                old.clone_from(&spec.attrs);
                left -= 1;
            }
        }
        if left == 0 {
            // The rest next frame: which hooks are in view is worked out once the rewrites are
            // done, not again on every frame they take.
            return false;
        }
        let n = scene.groups.len();
        let wanted: FxHashSet<usize> = boxes.iter().copied().chain(edges.iter().map(|e| n + e)).collect();
        let keys: FxHashSet<&str> = wanted.iter().map(|&i| self.specs[i].0.as_str()).collect();
        self.shown.retain(|key, (el, _)| {
            let keep = keys.contains(key.as_str()) || left == 0;
            if !keep {
                el.remove();
                left -= 1;
            }
            keep
        });
        let (new_nodes, new_edges) =
            (self.document.create_document_fragment(), self.document.create_document_fragment());
        let mut wanted: Vec<usize> = wanted.into_iter().collect();
        wanted.sort_unstable();
        let mut all_done = true;
        for i in wanted {
            let (key, spec) = &self.specs[i];
            if self.shown.contains_key(key) {
                continue;
            }
            if left == 0 {
                all_done = false;
                break;
            }
            let template = if spec.node { &self.node_template } else { &self.edge_template };
            let Some(el) = template.clone_node().ok().and_then(|el| el.dyn_into::<Element>().ok()) else { continue };
            set_changed(&el, &[], &spec.attrs);
            let _ = if i < n { new_nodes.append_child(&el) } else { new_edges.append_child(&el) };
            self.shown.insert(key.clone(), (el, spec.attrs.clone()));
            left -= 1;
        }
        let _ = self.nodes.append_child(&new_nodes);
        let _ = self.edges.append_child(&new_edges);
        all_done && self.stale.is_empty()
    }
}

/// Every hook of `scene`: its boxes, then its edges.
fn specs(scene: &Scene) -> Vec<(String, Spec)> {
    let mut out = Vec::with_capacity(scene.groups.len() + scene.links.len());
    for (i, g) in scene.groups.iter().enumerate() {
        let (x, y) = scene.pos[i];
        let mut attrs = vec![
            ("data-id", g.id.clone()),
            ("data-level", g.level.to_string()),
            ("aria-label", format!("{} ({})", g.label, g.level)),
            ("x", format!("{x:.1}")),
            ("y", format!("{y:.1}")),
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
        out.push((format!("n {}", g.id), Spec { attrs, node: true }));
    }
    for (e, l) in scene.links.iter().enumerate() {
        let (x, y) = scene.label_at(e);
        let mut attrs = vec![
            ("data-source", l.source.clone()),
            ("data-target", l.target.clone()),
            ("data-requests", l.requests.to_string()),
            ("data-connections", l.connections.to_string()),
            ("data-errors", l.errors.to_string()),
            ("aria-label", format!("{} → {}: {}", l.source, l.target, scene.labels[e])),
            ("x", format!("{:.1}", x - EDGE_W / 2.0)),
            ("y", format!("{:.1}", y - 13.0)),
        ];
        if let Some(topic) = &l.topic {
            attrs.push(("data-topic", topic.clone()));
        }
        if l.probe_only() {
            attrs.push(("data-style", "probe".into()));
        } else if l.dns_only() {
            attrs.push(("data-style", "dns".into()));
        }
        if let Some(badges) = scene.quality.links.get(&(l.source.clone(), l.target.clone())) {
            attrs.push(("data-quality", badges.iter().map(|b| b.kind).collect::<Vec<_>>().join(" ")));
        }
        out.push((format!("e {}>{}", l.source, l.target), Spec { attrs, node: false }));
    }
    out
}

/// Gives `el` (which has `old`) the attributes `new`: writes those that changed, removes those
/// that went (a badge that cleared).
fn set_changed(el: &Element, old: &[(&'static str, String)], new: &[(&'static str, String)]) {
    for (name, _) in old {
        if !new.iter().any(|(n, _)| n == name) {
            let _ = el.remove_attribute(name);
        }
    }
    for (name, value) in new {
        if !old.iter().any(|(n, v)| n == name && v == value) {
            let _ = el.set_attribute(name, value);
        }
    }
}

/// The hook an event happened on: (`map-node` or `map-edge`, the element).
pub fn hook_of(target: Option<web_sys::EventTarget>) -> Option<(String, Element)> {
    let el: Element = target?.dyn_into().ok()?;
    let hook = el.closest("[data-testid=map-node],[data-testid=map-edge]").ok()??;
    Some((hook.get_attribute("data-testid")?, hook))
}
