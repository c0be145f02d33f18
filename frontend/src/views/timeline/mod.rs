//! The request timeline: the overview strip with its brush, then connection swimlanes — one lane
//! per TCP connection from open to close, grouped under client → serving pod, each request a bar
//! from its first byte to its end. A canvas paints the bars (every frame while live); the lanes in
//! view, and their bars while there are not too many, also exist as DOM elements for tests and
//! tooltips (`timeline-lane` with `data-conn`, `data-requests`, `data-src`, `data-dst`;
//! `timeline-bar` with `data-id`). Zoom: wheel, `+`/`-`, buttons; pan: drag, arrow keys; "live"
//! follows now, pause freezes the view while records keep arriving.

pub mod draw;
pub mod geometry;
pub mod lanes;
pub mod overview;

use std::collections::BTreeSet;
use std::time::Duration;

use leptos::prelude::*;
use podtap_shared::Record;
use wasm_bindgen::JsCast;

use crate::api::Span;
use crate::live::Live;
use geometry::{Hit, LABEL_W, Placed, Scale, place, visible};
use lanes::{LaneSet, Row};
use overview::{OverviewStrip, clock};

/// Height of the lanes' scrolling area.
const VIEW_H: f64 = 420.0;
/// Most bar elements in the DOM at once (the canvas paints them all regardless).
const DOM_BARS: usize = 400;
/// The live view's span until the user zooms.
const LIVE_SPAN_US: u64 = 60_000_000;
/// Lanes from which new ones are laid out once a second.
const MANY_LANES: usize = 10_000;

/// The timeline panel.
#[component]
pub fn Timeline(
    live: Live,
    /// The window's records when one is chosen (`None`: live).
    windowed: Signal<Option<Vec<Record>>>,
    /// The chosen window (the brush writes it).
    window: RwSignal<Option<Span>>,
    filter: Signal<String>,
    /// The selected record (a click on a bar sets it).
    selected: RwSignal<Option<u64>>,
    hide_probes: RwSignal<bool>,
) -> impl IntoView {
    let set = StoredValue::new_local(LaneSet::new());
    // `set`'s version and shape as the page sees them: brought up to date at most 4 times a
    // second, so a busy stream never re-lays the rows, rebuilds the DOM hooks or repaints the
    // canvas for every batch.
    let version = RwSignal::new(0u64);
    let shape = RwSignal::new(0u64);
    // Whether records kept arriving since the last sync: bars then live on the canvas only (the
    // DOM would be rebuilt 4 times a second for nothing), and come back as DOM hooks once it is
    // quiet or the view is paused.
    let busy = RwSignal::new(false);
    // When the rows were last laid out: tens of thousands of lanes are laid out once a second,
    // not four times (a new connection's lane waits a second; bars on the lanes do not).
    let shaped_at = StoredValue::new(f64::NEG_INFINITY);
    let sync = move |force: bool| {
        let (v, s, lanes) = set.with_value(|s| (s.version, s.shape, s.lanes.len()));
        let changed = version.get_untracked() != v;
        if busy.get_untracked() != changed {
            busy.set(changed);
        }
        if changed {
            version.set(v);
        }
        let now = crate::canvas::now_ms();
        let due = force || lanes < MANY_LANES || now - shaped_at.get_value() >= 1000.0;
        if shape.get_untracked() != s && due {
            shaped_at.set_value(now);
            shape.set(s);
        }
    };
    // Live: rebuilt from a snapshot, then followed record by record.
    Effect::new(move |_| {
        live.generation.track();
        if windowed.with(Option::is_none) {
            let _ = live.take_arrived();
            let fresh = live.records.with_untracked(|all| LaneSet::from_records(all.iter()));
            set.update_value(|s| s.replace_with(fresh));
            sync(true);
        }
    });
    Effect::new(move |_| {
        live.arrivals.track();
        if windowed.with_untracked(Option::is_none) {
            let arrived = live.take_arrived();
            if !arrived.is_empty() {
                set.update_value(|s| arrived.iter().for_each(|r| s.add(r)));
            }
        }
    });
    // A window: its records, all at once.
    Effect::new(move |_| {
        windowed.with(|w| {
            if let Some(records) = w {
                let fresh = LaneSet::from_records(records.iter());
                set.update_value(|s| s.replace_with(fresh));
                sync(true);
            }
        });
    });

    // The visible time range; `following` keeps its right edge at now.
    let view = RwSignal::new((0u64, 1u64));
    let following = RwSignal::new(true);
    let fit = move || {
        let span = match window.get_untracked() {
            Some(s) => Some((s.from, s.to)),
            None => set.with_value(LaneSet::span).map(|(a, b)| (a, b.max(a + 1))),
        };
        if let Some((a, b)) = span {
            let pad = (b - a) / 50;
            view.set((a.saturating_sub(pad), b + pad));
        }
    };
    Effect::new(move |_| {
        // A new window (or back to live): show all of it.
        match window.get() {
            Some(_) => {
                following.set(false);
                fit();
            }
            None => following.set(true),
        }
    });

    // Collapsed groups are part of the view a link restores (`collapsed=client~pod,…`).
    let collapsed = RwSignal::new(crate::url_state::param("collapsed").map(|t| parse_groups(&t)).unwrap_or_default());
    Effect::new(move |_| crate::url_state::set_param("collapsed", &collapsed.with(format_groups)));
    let placed = Memo::new(move |_| {
        shape.track();
        let hide = hide_probes.get();
        collapsed.with(|c| set.with_value(|s| place(s.rows(c, hide), s)))
    });

    let scroll_top = RwSignal::new(0.0f64);
    let width = RwSignal::new(800.0f64);
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    let scroller = NodeRef::<leptos::html::Div>::new();
    let dark = crate::page::dark();
    // A saved session has nothing to follow.
    let frozen = crate::page::Page::get().frozen();

    // The DOM hooks follow the view at most 4 times a second while it moves.
    let dom_view = RwSignal::new((0u64, 1u64));
    // Live, lanes of records the page no longer holds are let go every 30 s (the page holds a
    // bounded number), so they never grow without end.
    let ticks = StoredValue::new(0u32);
    let dom_timer = set_interval_with_handle(
        move || {
            ticks.update_value(|t| *t += 1);
            let pruned = ticks.get_value().is_multiple_of(120) && windowed.with_untracked(Option::is_none);
            if pruned && let Some(oldest) = live.records.with_untracked(|all| all.front().map(|r| r.ts)) {
                set.update_value(|s| s.retain_since(oldest));
            }
            sync(pruned);
            if dom_view.get_untracked() != view.get_untracked() {
                dom_view.set(view.get_untracked());
            }
        },
        Duration::from_millis(250),
    )
    .ok();

    // The canvas: painted on every animation frame while anything changed.
    let painted = StoredValue::new_local((u64::MAX, (0u64, 0u64), -1.0f64, None::<u64>, 0.0f64, 0usize));
    let running = StoredValue::new_local(true);
    on_cleanup(move || {
        running.set_value(false);
        if let Some(h) = dom_timer {
            h.clear();
        }
    });
    fn frame(
        live: Live,
        set: StoredValue<LaneSet, LocalStorage>,
        canvas_ref: NodeRef<leptos::html::Canvas>,
        state: FrameState,
    ) {
        let FrameState { view, following, placed, scroll_top, width, selected, painted, running, dark, version } =
            state;
        if !running.get_value() {
            return;
        }
        if following.get_untracked() {
            let (t0, t1) = view.get_untracked();
            let span = if t1 > t0 + 1 { t1 - t0 } else { LIVE_SPAN_US };
            let now = live.now_us().max(1);
            // A whole pixel at a time: at a minute across the lanes that is 20 repaints a second,
            // not 60, and the overview's frame moves as often.
            let pixel = (span as f64 / width.get_untracked().max(1.0)) as u64;
            if now < t1 || now >= t1.saturating_add(pixel.max(1)) {
                view.set((now.saturating_sub(span), now));
            }
        }
        if let Some(canvas) = canvas_ref.get_untracked() {
            let key = (
                version.get_untracked(),
                view.get_untracked(),
                scroll_top.get_untracked(),
                selected.get_untracked(),
                width.get_untracked(),
                placed.with_untracked(|p| p.0.len()),
            );
            if painted.get_value() != key {
                painted.set_value(key);
                paint_canvas(&canvas, set, &state, dark);
            }
        }
        request_animation_frame(move || frame(live, set, canvas_ref, state));
    }
    let state = FrameState { view, following, placed, scroll_top, width, selected, painted, running, dark, version };
    request_animation_frame(move || frame(live, set, canvas_ref, state));

    // Keep the canvas as wide as its column.
    Effect::new(move |_| {
        let Some(el) = scroller.get() else { return };
        let observer = crate::canvas::observe_size(&el, move |w, _| {
            let w = (w - LABEL_W).max(100.0);
            if (w - width.get_untracked()).abs() > 0.5 {
                width.set(w);
            }
        });
        if let Some(observer) = observer {
            on_cleanup(move || observer.disconnect());
        }
    });

    // Interaction.
    let zoom = move |factor: f64, at_x: Option<f64>| {
        let (t0, t1) = view.get_untracked();
        let span = (t1 - t0).max(1) as f64;
        let new_span = (span * factor).clamp(1_000.0, 86_400e6);
        let scale = Scale { t0, t1, width: width.get_untracked() };
        let anchor = match (following.get_untracked(), at_x) {
            (true, _) | (false, None) => None,
            (false, Some(x)) => Some(scale.t(x)),
        };
        let (a, b) = match anchor {
            None if following.get_untracked() => (t1.saturating_sub(new_span as u64), t1),
            None => {
                let mid = t0 + (t1 - t0) / 2;
                (mid.saturating_sub((new_span / 2.0) as u64), mid + (new_span / 2.0) as u64)
            }
            Some(t) => {
                let left = (t - t0) as f64 / span;
                let a = t.saturating_sub((new_span * left) as u64);
                (a, a + new_span as u64)
            }
        };
        view.set((a, b.max(a + 1)));
    };
    let pan = move |fraction: f64| {
        following.set(false);
        let (t0, t1) = view.get_untracked();
        let shift = ((t1 - t0) as f64 * fraction) as i64;
        let a = (t0 as i64 + shift).max(0) as u64;
        view.set((a, a + (t1 - t0)));
    };
    let on_wheel = move |ev: web_sys::WheelEvent| {
        ev.prevent_default();
        let x = f64::from(ev.offset_x()) - LABEL_W;
        zoom(1.2f64.powf(ev.delta_y() / 100.0), (x >= 0.0).then_some(x));
    };
    let drag = StoredValue::new_local(None::<(i32, (u64, u64), bool)>);
    let on_down = move |ev: web_sys::PointerEvent| {
        drag.set_value(Some((ev.client_x(), view.get_untracked(), false)));
    };
    let on_move = move |ev: web_sys::PointerEvent| {
        let Some((x0, (t0, t1), _)) = drag.get_value() else { return };
        let dx = ev.client_x() - x0;
        if dx.abs() < 4 {
            return;
        }
        following.set(false);
        drag.set_value(Some((x0, (t0, t1), true)));
        let per_px = (t1 - t0) as f64 / width.get_untracked().max(1.0);
        let a = (t0 as f64 - f64::from(dx) * per_px).max(0.0) as u64;
        view.set((a, a + (t1 - t0)));
    };
    // A pick happens on the pointer's release, not on `click`: the rows are redrawn whenever a
    // record arrives, and a browser sends no `click` when the element pressed is gone by the
    // release, so a live stream would swallow clicks. The released-on bar names its record;
    // elsewhere the geometry decides.
    let on_up = move |ev: web_sys::PointerEvent| {
        let pressed = drag.get_value();
        drag.set_value(None);
        if ev.button() != 0 || pressed.is_none_or(|d| d.2) {
            return;
        }
        let bar = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|el| el.closest("[data-testid=\"timeline-bar\"]").ok().flatten())
            .and_then(|el| el.get_attribute("data-id"))
            .and_then(|id| id.parse::<u64>().ok());
        if let Some(id) = bar {
            selected.set(Some(id));
            return;
        }
        let Some(el) = scroller.get_untracked() else { return };
        let r = el.get_bounding_client_rect();
        let x = f64::from(ev.client_x()) - r.left() - LABEL_W;
        let y = f64::from(ev.client_y()) - r.top() + scroll_top.get_untracked();
        let (t0, t1) = view.get_untracked();
        let scale = Scale { t0, t1, width: width.get_untracked() };
        let hit = placed.with_untracked(|(p, _)| set.with_value(|s| geometry::hit(s, p, &scale, x.max(0.0), y)));
        match hit {
            Some(Hit::Bar(id)) if x >= 0.0 => selected.set(Some(id)),
            Some(Hit::Group(key)) => collapsed.update(|c| {
                if !c.remove(&key) {
                    c.insert(key);
                }
            }),
            _ => {}
        }
    };
    let on_key = move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
        "+" | "=" => zoom(0.5, None),
        "-" | "_" => zoom(2.0, None),
        "ArrowLeft" => pan(-0.1),
        "ArrowRight" => pan(0.1),
        "f" => {
            following.set(false);
            fit();
        }
        " " => following.update(|f| *f = !*f),
        _ => {}
    };
    let on_scroll = move |ev: web_sys::Event| {
        if let Some(el) = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) {
            scroll_top.set(f64::from(el.scroll_top()));
        }
    };

    // The DOM hooks for the rows in view.
    let rows_in_view = Memo::new(move |_| {
        let top = scroll_top.get();
        placed.with(|(p, _)| visible(p, (top - 100.0).max(0.0), VIEW_H + 200.0))
    });
    let dom_rows = move || {
        version.track();
        let (t0, t1) = dom_view.get();
        let scale = Scale { t0, t1, width: width.get() };
        let range = rows_in_view.get();
        let budget = std::cell::Cell::new(if busy.get() && following.get() { 0 } else { DOM_BARS });
        placed.with(|(p, _)| {
            set.with_value(|s| p[range].iter().map(|placed| row_view(s, placed, &scale, &budget)).collect::<Vec<_>>())
        })
    };
    let axis = move || {
        let (t0, t1) = dom_view.get();
        let w = width.get();
        (0..=4)
            .map(|i| {
                let x = w * f64::from(i) / 4.0;
                let t = Scale { t0, t1, width: w }.t(x);
                let style = format!("left: {:.0}px", LABEL_W + x);
                view! { <span class="tick" style=style>{clock_ms(t)}</span> }
            })
            .collect::<Vec<_>>()
    };
    let total_h = move || placed.with(|(_, h)| format!("height: {:.0}px", h.max(VIEW_H - 2.0)));
    let empty = move || placed.with(|(p, _)| p.is_empty());

    view! {
        <div class="timeline-panel" data-testid="timeline">
            <OverviewStrip filter=filter window=window visible=Signal::derive(move || view.get())/>
            <div class="lanes-toolbar">
                <button data-testid="timeline-zoom-in" on:click=move |_| zoom(0.5, None) title="zoom in (+)">"+"</button>
                <button data-testid="timeline-zoom-out" on:click=move |_| zoom(2.0, None) title="zoom out (−)">"−"</button>
                <button on:click=move |_| { following.set(false); fit(); } title="show everything (f)">"Fit"</button>
                <Show when=move || !frozen>
                    <button data-testid="timeline-follow" class:on=move || following.get()
                        on:click=move |_| following.update(|f| *f = !*f)
                        title="follow now, or freeze the view while records keep arriving (space)">
                        {move || if following.get() { "Pause" } else { "Follow live" }}
                    </button>
                </Show>
                <label class="toggle">
                    <input type="checkbox" data-testid="timeline-hide-probes" prop:checked=move || hide_probes.get()
                        on:change=move |ev| hide_probes.set(event_target_checked(&ev))/>
                    " hide probes"
                </label>
                <span class="lanes-count">
                    {move || set.with_value(|s| { version.track(); format!("{} connections", s.lanes.len()) })}
                </span>
            </div>
            <div class="lanes-axis">{axis}</div>
            <div class="lanes" node_ref=scroller tabindex="0" on:scroll=on_scroll on:wheel=on_wheel
                on:pointerdown=on_down on:pointermove=on_move on:pointerup=on_up on:keydown=on_key>
                <Show when=empty>
                    <p class="empty lanes-empty">"No connections in this view."</p>
                </Show>
                <div class="lanes-inner" style=total_h>
                    <canvas node_ref=canvas_ref class="lanes-canvas"></canvas>
                    {dom_rows}
                </div>
            </div>
        </div>
    }
}

/// What the canvas last painted: (lanes version, view, scroll, selection, width, rows).
type Painted = (u64, (u64, u64), f64, Option<u64>, f64, usize);

/// What one animation frame needs.
#[derive(Clone, Copy)]
struct FrameState {
    view: RwSignal<(u64, u64)>,
    following: RwSignal<bool>,
    placed: Memo<(Vec<Placed>, f64)>,
    scroll_top: RwSignal<f64>,
    width: RwSignal<f64>,
    selected: RwSignal<Option<u64>>,
    painted: StoredValue<Painted, LocalStorage>,
    running: StoredValue<bool, LocalStorage>,
    dark: bool,
    /// The lanes' version as last brought up to date.
    version: RwSignal<u64>,
}

fn paint_canvas(
    canvas: &web_sys::HtmlCanvasElement,
    set: StoredValue<LaneSet, LocalStorage>,
    s: &FrameState,
    dark: bool,
) {
    let (w, h) = (s.width.get_untracked(), VIEW_H);
    let Some((ctx, _)) = crate::canvas::context_2d(canvas, w, h) else { return };
    let (t0, t1) = s.view.get_untracked();
    let top = s.scroll_top.get_untracked();
    s.placed.with_untracked(|(placed, _)| {
        set.with_value(|lanes| {
            let frame = draw::Frame {
                set: lanes,
                placed,
                rows: visible(placed, top, h),
                top,
                scale: Scale { t0, t1, width: w },
                height: h,
                selected: s.selected.get_untracked(),
                dark,
            };
            draw::paint(&ctx, &frame);
        })
    });
}

/// A group header or a lane, as DOM: its label, and its bars in view while the budget lasts.
/// They take no events of their own: the lanes' pointer release picks (`on_up`).
fn row_view(set: &LaneSet, p: &Placed, scale: &Scale, budget: &std::cell::Cell<usize>) -> AnyView {
    let style = format!("top: {:.0}px; height: {:.0}px", p.y, p.h);
    match &p.row {
        Row::Group { group, lanes, requests, collapsed: is_collapsed } => {
            let mark = if *is_collapsed { "▸" } else { "▾" };
            let lanes::Group { key, label, .. } = &set.groups[*group];
            view! {
                <div class="lane-group" data-testid="timeline-group" data-src=key.0.clone() data-dst=key.1.clone() style=style>
                    <span class="lane-label">{format!("{mark} {label}")}</span>
                    <span class="lane-meta">{format!("{lanes} connections · {requests} requests")}</span>
                </div>
            }
            .into_any()
        }
        Row::Lane(i) => {
            let lane = &set.lanes[*i];
            let bars = lane
                .bars_in(scale.t0, scale.t1)
                .take(budget.get())
                .map(|b| {
                    budget.set(budget.get() - 1);
                    let (x, w) = scale.bar(b.start, b.end);
                    let style = format!(
                        "left: {:.1}px; width: {:.1}px; top: {:.0}px",
                        LABEL_W + x,
                        w,
                        geometry::bar_y(0.0, b.row)
                    );
                    let id = b.id;
                    view! { <span class=format!("bar-hit {}", b.outcome.class()) data-testid="timeline-bar" data-id=id.to_string() style=style></span> }
                })
                .collect::<Vec<_>>();
            let class = if lane.probe { "lane probe" } else { "lane" };
            let meta = format!(
                "conn {} · {} · {}{}",
                lane.conn,
                lane.client,
                lane.protocol.as_deref().unwrap_or(if lane.known { "tcp" } else { "…" }),
                lane.close.as_deref().map(|c| format!(" · {c}")).unwrap_or_default()
            );
            view! {
                <div class=class data-testid="timeline-lane" data-conn=lane.conn.to_string()
                    data-requests=lane.bars.len().to_string() data-src=lane.src.clone() data-dst=lane.dst.clone() style=style>
                    <span class="lane-label" title=format!("{} → {}", lane.src, lane.dst)>{meta}</span>
                    {bars}
                </div>
            }
            .into_any()
        }
    }
}

/// `HH:MM:SS.mmm`.
fn clock_ms(ts_us: u64) -> String {
    format!("{}.{:03}", clock(ts_us), (ts_us / 1000) % 1000)
}

/// `client~pod,client~pod` → the collapsed groups.
fn parse_groups(text: &str) -> BTreeSet<(String, String)> {
    text.split(',').filter_map(|pair| pair.split_once('~')).map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn format_groups(groups: &BTreeSet<(String, String)>) -> String {
    groups.iter().map(|(a, b)| format!("{a}~{b}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod group_tests {
    #[test]
    fn collapsed_groups_round_trip_through_the_url() {
        let mut g = super::BTreeSet::new();
        g.insert(("pod:default/client".to_string(), "pod:shop/api-1".to_string()));
        g.insert(("ip:10.0.0.9".to_string(), "pod:shop/api-2".to_string()));
        assert_eq!(super::parse_groups(&super::format_groups(&g)), g);
        assert!(super::parse_groups("").is_empty());
    }
}
