//! The overview strip: requests and errors per step over everything the server retains, from
//! `GET /api/v1/timeline`, with a brush. Dragging across it chooses a window (`from`/`to` in the
//! URL), which re-scopes the map, the balance, the lanes and the list; the lanes' visible range is
//! drawn on it. DOM hooks: `timeline-overview`, `timeline-brush` (the chosen window, with
//! `data-from`/`data-to`).

use leptos::prelude::*;
use std::time::Duration;

use crate::api::{Overview, Span, fetch_overview};

/// The strip's drawing width in SVG units (it is scaled to the panel).
const W: f64 = 1000.0;
const H: f64 = 46.0;

/// The strip and its brush.
#[component]
pub fn OverviewStrip(
    /// The page's filter text (the strip counts what matches).
    filter: Signal<String>,
    /// The chosen window; `None` is live.
    window: RwSignal<Option<Span>>,
    /// The lanes' visible range, drawn as a band.
    visible: Signal<(u64, u64)>,
) -> impl IntoView {
    let refresh = crate::components::ticker::ticker(Duration::from_secs(2));
    let fetched = LocalResource::new(move || {
        let f = filter.get();
        refresh.track();
        async move { fetch_overview(&f).await }
    });
    let overview = RwSignal::new(None::<Overview>);
    Effect::new(move |_| {
        if let Some(Ok(o)) = fetched.get() {
            overview.set(Some(o));
        }
    });
    let svg_ref = NodeRef::<leptos::svg::Svg>::new();
    // The brush being dragged: (start x, current x) in SVG units.
    let drag = RwSignal::new(None::<(f64, f64)>);
    let to_x = move |client_x: i32| -> f64 {
        svg_ref.get().map_or(0.0, |el| {
            let r = el.get_bounding_client_rect();
            ((f64::from(client_x) - r.left()) / r.width().max(1.0) * W).clamp(0.0, W)
        })
    };
    let time_at = move |x: f64| -> u64 {
        overview.with_untracked(|o| o.as_ref().map_or(0, |o| o.from + ((x / W) * (o.to - o.from) as f64) as u64))
    };
    let x_of = move |o: &Overview, t: u64| -> f64 {
        let span = (o.to - o.from).max(1) as f64;
        ((t.saturating_sub(o.from)) as f64 / span * W).clamp(0.0, W)
    };
    let down = move |ev: web_sys::PointerEvent| {
        let x = to_x(ev.client_x());
        drag.set(Some((x, x)));
    };
    let moved = move |ev: web_sys::PointerEvent| {
        if let Some((a, _)) = drag.get_untracked() {
            drag.set(Some((a, to_x(ev.client_x()))));
        }
    };
    let up = move |_: web_sys::PointerEvent| {
        if let Some((a, b)) = drag.get_untracked() {
            drag.set(None);
            if (a - b).abs() >= 3.0 {
                let (from, to) = (time_at(a.min(b)), time_at(a.max(b)));
                window.set(Some(Span { from, to }));
            }
        }
    };
    let bars = move || {
        overview.with(|o| {
            let Some(o) = o else { return Vec::new() };
            let max = o.buckets.iter().map(|b| b.requests).max().unwrap_or(0).max(1) as f64;
            let w = (W / o.buckets.len().max(1) as f64).max(1.0);
            o.buckets
                .iter()
                .enumerate()
                .flat_map(|(i, b)| {
                    let x = i as f64 * w;
                    let h = b.requests as f64 / max * (H - 4.0);
                    let e = b.errors as f64 / max * (H - 4.0);
                    let req = view! { <rect class="req" x=x y=H - h width=(w - 0.5).max(0.5) height=h></rect> };
                    let err = (b.errors > 0)
                        .then(|| view! { <rect class="err" x=x y=H - e width=(w - 0.5).max(0.5) height=e></rect> });
                    [Some(req.into_any()), err.map(IntoAny::into_any)]
                })
                .flatten()
                .collect::<Vec<_>>()
        })
    };
    let band = move || {
        overview.with(|o| {
            o.as_ref().map(|o| {
                let (a, b) = visible.get();
                let (x0, x1) = (x_of(o, a), x_of(o, b));
                view! { <rect class="visible" x=x0 y="0" width=(x1 - x0).max(1.0) height=H></rect> }
            })
        })
    };
    let brush = move || {
        let dragging = drag.get().map(|(a, b)| (a.min(b), a.max(b)));
        let chosen = overview.with(|o| {
            let o = o.as_ref()?;
            window.get().map(|s| (x_of(o, s.from), x_of(o, s.to), s))
        });
        match (dragging, chosen) {
            (Some((a, b)), _) => Some(view! { <rect class="brush" x=a y="0" width=b - a height=H></rect> }.into_any()),
            (None, Some((a, b, s))) => Some(
                view! {
                    <rect class="brush" data-testid="timeline-brush" data-from=s.from.to_string() data-to=s.to.to_string()
                        x=a y="0" width=(b - a).max(1.0) height=H></rect>
                }
                .into_any(),
            ),
            (None, None) => None,
        }
    };
    let axis = move || {
        overview.with(|o| {
            o.as_ref().map(|o| {
                let per_s = 1e6 / o.step_us.max(1) as f64;
                let peak = o.buckets.iter().map(|b| b.requests).max().unwrap_or(0) as f64 * per_s;
                format!("{} — {} · peak {:.0} requests/s", clock(o.from), clock(o.to), peak)
            })
        })
    };
    view! {
        <div class="overview">
            <svg node_ref=svg_ref data-testid="timeline-overview" viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none"
                on:pointerdown=down on:pointermove=moved on:pointerup=up on:pointerleave=up>
                {bars}
                {band}
                {brush}
            </svg>
            <div class="overview-axis">{axis}</div>
        </div>
    }
}

/// `HH:MM:SS` of a time in µs, in the browser's time zone.
pub fn clock(ts_us: u64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64((ts_us / 1000) as f64));
    format!("{:02}:{:02}:{:02}", d.get_hours(), d.get_minutes(), d.get_seconds())
}
