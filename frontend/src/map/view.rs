//! The Service Map view: a toolbar (level, what to show, search, fit, tidy, legend), the quality
//! bar, and the map itself — a canvas painted on animation frames when something changed, under
//! a layer of DOM hooks for what is in view, with the hover card, the focus panel and a minimap.
//! The map is folded and laid out again only when the server's map or the user's choices change;
//! a pan or a zoom repaints and moves one CSS transform.

use leptos::prelude::*;
use podtap_shared::ServiceMap;
use wasm_bindgen::JsCast;

use super::card::{FocusPanel, HoverCard, Legend, QualityBar};
use super::fold::{self, Level, Options};
use super::hooks::Hooks;
use super::input;
use super::minimap;
use super::paint::{self, Frame};
use super::quality::{Context, Health};
use super::state::{HOOKS_AFTER_MS, MapState};

/// DOM hooks added or removed in one frame, at most.
const HOOKS_PER_FRAME: usize = 100;
use crate::api::Span;
use crate::live::Live;
use crate::url_state;

/// What the map is hovering: a box, or an edge (by its ends), and where the pointer is.
#[derive(Clone, Debug, PartialEq)]
pub enum Hover {
    Box(String),
    Edge(String, String),
}

/// Everything the map's parts share: the state between frames, the user's choices, and what
/// the page around it gives.
#[derive(Clone, Copy)]
pub struct MapCtx {
    pub state: StoredValue<MapState, LocalStorage>,
    pub gesture: StoredValue<input::Gesture, LocalStorage>,
    pub opts: RwSignal<Options>,
    pub focus: RwSignal<Option<String>>,
    pub hover: RwSignal<Option<(Hover, f64, f64)>>,
    /// Bumped whenever the scene is rebuilt (cards read the scene through it).
    pub version: RwSignal<u64>,
    pub filter: Signal<String>,
    pub window: Signal<Option<Span>>,
    pub service: RwSignal<Option<String>>,
    pub map: MapSource,
}

/// The map the page shows — a chosen window's, else the stream's — read where it is: a derived
/// signal would clone thousands of edges on every read.
#[derive(Clone, Copy)]
pub struct MapSource {
    pub window: Signal<Option<Span>>,
    pub windowed: RwSignal<ServiceMap>,
    pub live: RwSignal<ServiceMap>,
}

impl MapSource {
    pub fn with<R>(&self, f: impl FnOnce(&ServiceMap) -> R) -> R {
        if self.window.with(Option::is_some) { self.windowed.with(f) } else { self.live.with(f) }
    }

    pub fn with_untracked<R>(&self, f: impl FnOnce(&ServiceMap) -> R) -> R {
        if self.window.with_untracked(Option::is_some) {
            self.windowed.with_untracked(f)
        } else {
            self.live.with_untracked(f)
        }
    }
}

impl MapCtx {
    /// Adds a term to the page's filter (the timeline and the list follow it).
    pub fn add_filter(&self, term: &str) {
        if let Some(f) = use_context::<crate::components::term::FilterText>() {
            f.0.update(|t| *t = crate::components::term::add_term(t, term));
        }
    }

    pub fn now() -> f64 {
        crate::canvas::now_ms()
    }
}

fn options_from_url() -> Options {
    let list = |name: &str| {
        url_state::param(name)
            .map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let hide: std::collections::BTreeSet<String> = list("hide");
    Options {
        level: url_state::param("level").as_deref().and_then(Level::parse),
        open: list("open"),
        hide_probes: url_state::param("probes").as_deref() == Some("hide"),
        hide_dns: hide.contains("dns"),
        hide_system: hide.contains("system"),
        hide_idle: hide.contains("idle"),
    }
}

fn options_to_url(o: &Options) {
    url_state::set_param("level", o.level.map(Level::name).unwrap_or_default());
    url_state::set_param("open", &o.open.iter().cloned().collect::<Vec<_>>().join(","));
    let hide: Vec<&str> = [(o.hide_dns, "dns"), (o.hide_system, "system"), (o.hide_idle, "idle")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    url_state::set_param("hide", &hide.join(","));
}

/// The map, folded and laid out along the traffic.
#[component]
pub fn MapView(
    /// The server's map (already filtered).
    map: MapSource,
    /// What to say when it is empty.
    empty: Signal<String>,
    /// The stream's state: agents, lag, names podtap could not list.
    live: Live,
    /// The page's filter (cards ask the server under it).
    filter: Signal<String>,
    /// The chosen window, if any (rates and cards use it).
    window: Signal<Option<Span>>,
    /// Probes hidden, shared with the timeline.
    hide_probes: RwSignal<bool>,
    /// The Service whose balance is shown.
    service: RwSignal<Option<String>>,
    /// A saved session: no server health to ask for.
    frozen: bool,
) -> impl IntoView {
    let opts = RwSignal::new(options_from_url());
    Effect::new(move |_| {
        let hide = hide_probes.get();
        if opts.with_untracked(|o| o.hide_probes != hide) {
            opts.update(|o| o.hide_probes = hide);
        }
    });
    Effect::new(move |_| {
        let o = opts.get();
        options_to_url(&o);
        if hide_probes.get_untracked() != o.hide_probes {
            hide_probes.set(o.hide_probes);
        }
    });
    let focus = RwSignal::new(url_state::param("focus"));
    Effect::new(move |_| url_state::set_param("focus", &focus.get().unwrap_or_default()));
    let ctx = MapCtx {
        state: StoredValue::new_local(MapState::default()),
        gesture: StoredValue::new_local(input::Gesture::default()),
        opts,
        focus,
        hover: RwSignal::new(None),
        version: RwSignal::new(0),
        filter,
        window,
        service,
        map,
    };

    // Health every 5 s: drops, gaps, responses without a request, the store's span.
    let health = RwSignal::new(None::<Health>);
    if !frozen {
        let poll = move || {
            leptos::task::spawn_local(async move {
                if let Ok(h) = crate::api::fetch_health().await {
                    health.set(Some(h));
                }
            })
        };
        poll();
        if let Ok(h) = set_interval_with_handle(poll, std::time::Duration::from_secs(5)) {
            on_cleanup(move || h.clear());
        }
    }
    let quality = Memo::new(move |_| Context {
        health: health.get(),
        agents: live.agents.get(),
        skipped: live.skipped.get(),
        sampled: live.sampled.get().map(|s| (s.shown, s.matched)),
        missing: live.missing.get().into_iter().map(|m| m.kind).collect(),
    });
    let span_s = Memo::new(move |_| match window.get() {
        Some(w) => Some((w.to.saturating_sub(w.from)) as f64 / 1e6),
        None => health.with(|h| {
            h.as_ref().and_then(|h| match (h.store.oldest_us, h.store.newest_us) {
                (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1e6),
                _ => None,
            })
        }),
    });
    let tidy = RwSignal::new(0u64);
    let folded = Memo::new(move |_| map.with(|m| fold::fold(m, &opts.get())));
    let stats = RwSignal::new((0usize, 0usize, 0.0f64, None::<Level>));
    let requests = RwSignal::new(0u64);
    Effect::new(move |_| {
        let f = folded.get();
        let (span, q) = (span_s.get(), quality.get());
        if tidy.get() > 0 {
            ctx.state.update_value(|s| s.memory = Default::default());
        }
        let level = f.level;
        requests.set(f.requests);
        let t0 = MapCtx::now();
        ctx.state.update_value(|s| {
            s.rebuild(f, span, &q, t0);
            s.layout_ms = MapCtx::now() - t0;
        });
        let (boxes, edges, ms) = ctx.state.with_value(|s| (s.scene.groups.len(), s.scene.links.len(), s.layout_ms));
        stats.set((boxes, edges, ms, level));
        ctx.version.update(|v| *v += 1);
    });

    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let mini = NodeRef::<leptos::html::Canvas>::new();
    let layer = NodeRef::<leptos::svg::G>::new();
    let frame_box = NodeRef::<leptos::html::Div>::new();
    let hooks = StoredValue::new_local(None::<Hooks>);
    let running = StoredValue::new_local(true);
    on_cleanup(move || running.set_value(false));
    // The frame's size as a ResizeObserver last saw it: reading `clientWidth` in every frame
    // forced a layout of the whole page whenever the list or the timeline had changed.
    let frame_size = StoredValue::new_local(None::<(f64, f64)>);
    Effect::new(move |_| {
        let Some(el) = frame_box.get() else { return };
        if let Some(observer) = crate::canvas::observe_size(&el, move |w, h| frame_size.set_value(Some((w, h)))) {
            on_cleanup(move || observer.disconnect());
        }
    });
    let dark = crate::page::dark();
    fn frame(
        ctx: MapCtx,
        canvas: NodeRef<leptos::html::Canvas>,
        mini: NodeRef<leptos::html::Canvas>,
        layer: NodeRef<leptos::svg::G>,
        hooks: StoredValue<Option<Hooks>, LocalStorage>,
        running: StoredValue<bool, LocalStorage>,
        frame_size: StoredValue<Option<(f64, f64)>, LocalStorage>,
        dark: bool,
    ) {
        if !running.get_value() {
            return;
        }
        let now = MapCtx::now();
        if let (Some(c), Some(size)) = (canvas.get_untracked(), frame_size.get_value()) {
            let focus = ctx.focus.get_untracked();
            ctx.state.update_value(|s| {
                if size != s.size && size.0 > 0.0 {
                    s.size = size;
                    if !s.moved {
                        s.fit();
                    }
                    s.dirty = true;
                }
                s.tick(now);
                let resting = now - s.last_move_ms >= HOOKS_AFTER_MS;
                s.dirty |= resting && s.edges_reused;
                if s.edges_building && !s.dirty {
                    // Only the raster being built goes on; the canvas is painted when it is whole.
                    let ratio = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
                    s.dirty = super::layer::advance(&unlit(s, dark), ratio);
                }
                if s.dirty {
                    s.dirty = false;
                    let composed = paint_main(&c, s, focus.as_deref(), !resting, dark);
                    (s.edges_reused, s.edges_building) = (composed.stale, composed.building);
                    if let Some(m) = mini.get_untracked() {
                        minimap::paint(&m, s, dark);
                    }
                    if hooks.with_value(Option::is_none)
                        && let Some(l) = layer.get_untracked()
                    {
                        hooks.set_value(Hooks::new(l.unchecked_into()));
                    }
                }
                hooks.update_value(|h| {
                    if let Some(h) = h {
                        h.rest(resting);
                        h.follow(s.camera);
                    }
                });
                if s.hooks_due && resting {
                    s.hooks_due = false;
                    // Half a view around it: a short pan adds or removes nothing.
                    let view = s.view();
                    let (boxes, edges) = s.scene.in_view(&view.grow(view.width().max(view.height()) / 2.0));
                    let version = ctx.version.get_untracked();
                    hooks.update_value(|h| {
                        if let Some(h) = h {
                            // What is left waits for the next frames.
                            s.hooks_due = !h.sync(&s.scene, version, &boxes, &edges, HOOKS_PER_FRAME);
                        }
                    });
                }
            });
        }
        request_animation_frame(move || frame(ctx, canvas, mini, layer, hooks, running, frame_size, dark));
    }
    request_animation_frame(move || frame(ctx, canvas, mini, layer, hooks, running, frame_size, dark));
    // A focus change repaints (the rest dims; the edges' raster stays good).
    Effect::new(move |_| {
        ctx.focus.track();
        ctx.state.update_value(|s| s.dirty = true);
    });

    let search = RwSignal::new(String::new());
    let level_value = move || opts.with(|o| o.level.map_or("auto", Level::name).to_string());
    let auto_label = move || {
        let shown = stats.with(|s| s.3).map_or("", Level::name);
        format!("auto ({shown})")
    };
    let toggle = move |which: &'static str| {
        move |ev: leptos::ev::Event| {
            let on = !event_target_checked(&ev);
            opts.update(|o| match which {
                "probes" => o.hide_probes = on,
                "dns" => o.hide_dns = on,
                "system" => o.hide_system = on,
                _ => o.hide_idle = on,
            });
        }
    };
    let shown = move |which: &'static str| {
        move || {
            opts.with(|o| match which {
                "probes" => !o.hide_probes,
                "dns" => !o.hide_dns,
                "system" => !o.hide_system,
                _ => !o.hide_idle,
            })
        }
    };
    let legend = RwSignal::new(false);
    let names = Memo::new(move |_| {
        ctx.version.track();
        ctx.state
            .with_value(|s| s.scene.groups.iter().map(|g| g.label.clone()).collect::<std::collections::BTreeSet<_>>())
    });
    view! {
        <div class="map-toolbar">
            <label>"Level "
                <select data-testid="map-level" prop:value=level_value on:change=move |ev| {
                    let v = event_target_value(&ev);
                    opts.update(|o| { o.level = Level::parse(&v); o.open.clear(); });
                }>
                    <option value="auto">{auto_label}</option>
                    <option value="namespace">"namespaces"</option>
                    <option value="workload">"workloads"</option>
                    <option value="pod">"pods"</option>
                </select>
            </label>
            <span class="map-show">"Show "
                <label><input type="checkbox" data-testid="map-show-probes" prop:checked=shown("probes") on:change=toggle("probes")/>" probes"</label>
                <label><input type="checkbox" data-testid="map-show-dns" prop:checked=shown("dns") on:change=toggle("dns")/>" DNS"</label>
                <label><input type="checkbox" data-testid="map-show-system" prop:checked=shown("system") on:change=toggle("system")/>" kube-system"</label>
                <label><input type="checkbox" data-testid="map-show-idle" prop:checked=shown("idle") on:change=toggle("idle")/>" idle edges"</label>
            </span>
            <input class="map-search" data-testid="map-search" list="map-names" placeholder="find a box…"
                prop:value=move || search.get()
                on:input=move |ev| search.set(event_target_value(&ev))
                on:keydown=move |ev: leptos::ev::KeyboardEvent| if ev.key() == "Enter" { input::find(ctx, &search.get_untracked()); }
                on:change=move |ev| input::find(ctx, &event_target_value(&ev))/>
            <datalist id="map-names">
                <For each=move || names.get() key=|n| n.clone() children=|n| view! { <option value=n></option> }/>
            </datalist>
            <button data-testid="map-fit" title="show the whole map (0)" on:click=move |_| { ctx.state.update_value(|s| { s.moved = false; s.fit(); }); }>"Fit"</button>
            <button data-testid="map-tidy" title="lay the map out afresh" on:click=move |_| tidy.update(|t| *t += 1)>"Tidy"</button>
            <button data-testid="map-fold-all" title="fold every group again" on:click=move |_| opts.update(|o| o.open.clear())
                disabled=move || opts.with(|o| o.open.is_empty())>"Fold all"</button>
            <button data-testid="map-legend-toggle" class:on=move || legend.get() on:click=move |_| legend.update(|l| *l = !*l)>"Legend"</button>
            <span class="map-counts" data-testid="map-counts">{move || stats.with(|(b, e, ms, _)| format!("{b} boxes · {e} edges · laid out in {ms:.0} ms"))}</span>
        </div>
        <QualityBar ctx=ctx/>
        <div class="map-frame" node_ref=frame_box tabindex="0" data-testid="map"
            data-level=move || stats.with(|s| s.3).map_or("", Level::name)
            data-boxes=move || stats.with(|s| s.0.to_string())
            data-edges=move || stats.with(|s| s.1.to_string())
            data-layout-ms=move || stats.with(|s| format!("{:.1}", s.2))
            data-requests=move || requests.get().to_string()
            data-version=move || ctx.version.get().to_string()
            on:wheel=input::wheel(ctx) on:pointerdown=input::down(ctx) on:pointermove=input::moved(ctx)
            on:pointerup=input::up(ctx) on:pointercancel=input::up(ctx) on:pointerleave=input::leave(ctx)
            on:click=input::click(ctx) on:keydown=input::key(ctx)>
            <canvas class="map-canvas" node_ref=canvas></canvas>
            <svg class="map-hooks"><g node_ref=layer></g></svg>
            <Show when=move || stats.with(|s| s.0 == 0)>
                <p class="empty map-empty" data-testid="map-empty">{move || empty.get()}</p>
            </Show>
            <HoverCard ctx=ctx/>
            <FocusPanel ctx=ctx/>
            <Show when=move || legend.get()><Legend/></Show>
            <canvas class="map-minimap" data-testid="map-minimap" node_ref=mini on:pointerdown=input::minimap(ctx) on:pointermove=input::minimap_drag(ctx)></canvas>
        </div>
    }
}

/// Edges beyond which a move to a new layout draws only the boxes.
const EDGES_HELD_WHILE_MOVING: usize = 600;

/// What paints the map as `s` holds it: nothing lit, focused or hovered.
fn unlit(s: &MapState, dark: bool) -> Frame<'_> {
    Frame {
        scene: &s.scene,
        pos: &s.pos,
        curves: &s.curves,
        camera: s.camera,
        width: s.size.0,
        height: s.size.1,
        lit: None,
        focus: None,
        hover_edge: None,
        dark,
    }
}

/// Paints the map: the edges from their raster (`layer`: moved and scaled while the camera
/// moves, built a part a frame when it must be drawn afresh) or directly while boxes move to a
/// new layout, then the boxes over them. Whether to paint again: at rest (a raster made for
/// another camera was shown), and next frame (a raster is being built).
fn paint_main(
    canvas: &web_sys::HtmlCanvasElement,
    s: &MapState,
    focus: Option<&str>,
    moving: bool,
    dark: bool,
) -> super::layer::Composed {
    let nothing = super::layer::Composed { stale: false, building: false };
    let (w, h) = s.size;
    let Some((c2d, ratio)) = crate::canvas::context_2d(canvas, w, h) else { return nothing };
    let lit = s.lit(focus);
    // The layer holds every edge undimmed and unhovered (`base`): a focus dims it as a whole and
    // draws its few lit edges over it; a hover only outlines one.
    let base = Frame { focus: focus.and_then(|f| s.scene.index.get(f).copied()), ..unlit(s, dark) };
    let frame = Frame { lit: lit.as_ref(), hover_edge: s.hover_edge, ..base };
    if s.boxes_moving() {
        if s.curves.len() > EDGES_HELD_WHILE_MOVING {
            // A big picture's boxes on their way to a new layout (opening a namespace): thousands
            // of curves redrawn each frame of the move would stall it; they come when the boxes
            // arrive.
            paint::start(&c2d, &frame, ratio);
            paint::boxes(&c2d, &frame, ratio);
        } else {
            // The edges change with every frame of the move: a raster of them would be drawn
            // once and copied once, for nothing.
            paint::paint(&c2d, &frame, ratio);
        }
        return nothing;
    }
    let Some(composed) = super::layer::compose(&c2d, s, &base, frame.lit.is_some(), moving, ratio) else {
        paint::paint(&c2d, &frame, ratio);
        return nothing;
    };
    paint::lit_edges(&c2d, &frame, ratio);
    paint::boxes(&c2d, &frame, ratio);
    composed
}
