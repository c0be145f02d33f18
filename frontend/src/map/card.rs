//! What the map says in words: the hover card (numbers of a box or an edge, exact percentiles and
//! requests per step from the server, protocols, badges), the focus panel (callers and callees,
//! with actions), the legend and the quality bar.

use leptos::prelude::*;

use super::fold::Link;
use super::layered::BOX_W;
use super::paint::level_colour;
use super::style::{ERROR_BANDS, IDLE, rate};
use super::view::{Hover, MapCtx};
use crate::api::{EdgeDetail, fetch_edge};

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| if v >= 100.0 { format!("{v:.0} ms") } else { format!("{v:.1} ms") })
}

/// Requests per step as a small line, with its peak.
fn sparkline(d: &EdgeDetail) -> impl IntoView + use<> {
    let b = &d.timeline.buckets;
    let max = b.iter().map(|b| b.requests).max().unwrap_or(0).max(1) as f64;
    let n = b.len().max(2) as f64 - 1.0;
    let points: String = b
        .iter()
        .enumerate()
        .map(|(i, b)| format!("{:.1},{:.1}", i as f64 / n * 200.0, 30.0 - b.requests as f64 / max * 28.0))
        .collect::<Vec<_>>()
        .join(" ");
    let peak = max / (d.timeline.step_us.max(1) as f64 / 1e6);
    view! {
        <svg class="spark" data-testid="map-sparkline" viewBox="0 0 200 32" preserveAspectRatio="none">
            <polyline points=points></polyline>
        </svg>
        <div class="spark-axis">{format!("requests/s over the window · peak {peak:.1}/s")}</div>
    }
}

/// Into a database or a broker: each operation's requests (and rate, over a chosen window),
/// errors and percentiles, the busiest first.
fn operations(d: &EdgeDetail, span_s: Option<f64>) -> Option<impl IntoView + use<>> {
    if d.operations.is_empty() {
        return None;
    }
    let rows: Vec<_> = d
        .operations
        .iter()
        .map(|o| {
            let per_s = rate(o.requests, span_s).map(|r| format!(" · {r:.1}/s")).unwrap_or_default();
            view! {
                <tr data-op=o.operation.clone() data-requests=o.requests data-errors=o.errors>
                    <td>{o.operation.clone()}</td>
                    <td>{format!("{}{per_s}", o.requests)}</td>
                    <td>{o.errors.to_string()}</td>
                    <td>{format!("{} · {} · {}", ms(o.p50_ms), ms(o.p95_ms), ms(o.p99_ms))}</td>
                </tr>
            }
        })
        .collect();
    let more = (d.more_operations > 0).then(|| format!("and {} more operations", d.more_operations));
    Some(view! {
        <table class="ops" data-testid="map-card-operations">
            <thead><tr><th>"operation"</th><th>"requests"</th><th>"errors"</th><th>"p50 · p95 · p99"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
        {more.map(|m| view! { <p class="muted">{m}</p> })}
    })
}

/// The card's exact part: asked for once the pointer rests on something for 150 ms.
fn settled(ctx: MapCtx) -> Signal<Option<Hover>> {
    let settled = RwSignal::new(None::<Hover>);
    Effect::new(move |_| {
        let now = ctx.hover.with(|h| h.as_ref().map(|h| h.0.clone()));
        if now.is_none() {
            settled.set(None);
            return;
        }
        set_timeout(
            move || {
                if ctx.hover.with_untracked(|h| h.as_ref().map(|h| h.0.clone())) == now
                    && settled.get_untracked() != now
                {
                    settled.set(now);
                }
            },
            std::time::Duration::from_millis(150),
        );
    });
    settled.into()
}

#[component]
pub fn HoverCard(ctx: MapCtx) -> impl IntoView {
    let settled = settled(ctx);
    let detail = LocalResource::new(move || {
        let (t, f, w) = (settled.get(), ctx.filter.get(), ctx.window.get());
        async move {
            let (s, t) = match t? {
                Hover::Edge(s, t) => (s, t),
                Hover::Box(id) => ("*".to_string(), id),
            };
            Some(fetch_edge(&s, &t, &f, w).await)
        }
    });
    let exact = move || detail.get().flatten().and_then(Result::ok);
    move || {
        let (what, x, y) = ctx.hover.get()?;
        ctx.version.track();
        let (w, _) = ctx.state.with_value(|s| s.size);
        let left = if x > w - 320.0 { x - 300.0 } else { x + 16.0 };
        let style = format!("left:{left:.0}px;top:{:.0}px", y + 14.0);
        let body = ctx.state.with_value(|s| match &what {
            Hover::Edge(src, dst) => {
                let e = s.scene.links.iter().position(|l| l.source == *src && l.target == *dst)?;
                Some(edge_card(&s.scene.links[e], s.scene.quality.links.get(&(src.clone(), dst.clone())), span(ctx)))
            }
            Hover::Box(id) => {
                let i = *s.scene.index.get(id)?;
                let g = &s.scene.groups[i];
                let (callers, callees) = s.scene.neighbours(i);
                let into: u64 = callers.iter().map(|c| c.1).sum();
                let out: u64 = callees.iter().map(|c| c.1).sum();
                let badges: Vec<String> =
                    s.scene.quality.boxes.get(id).map(|b| b.iter().map(|b| b.text.clone()).collect()).unwrap_or_default();
                let members = (g.members > 0).then(|| format!("{} pods folded in", g.members));
                let hint = if g.folded { "click: open it · shift-click: focus" } else { "click: focus" };
                let locked = (g.level == "locked").then(|| view! {
                    <p class="hint" data-testid="locked-reason">"Outside your namespaces: podtap shows only its namespace and workload here — no pod, address, port or node — and only the requests to and from your own."</p>
                });
                Some(view! {
                    <h4>{g.label.clone()}</h4>
                    <div class="muted">{format!("{} · {}", g.level, g.sub)}</div>
                    <dl class="facts">
                        <dt>"in"</dt><dd>{format!("{into} requests from {} callers", callers.len())}</dd>
                        <dt>"out"</dt><dd>{format!("{out} requests to {} callees", callees.len())}</dd>
                        {(g.internal > 0).then(|| view! { <dt>"inside"</dt><dd>{format!("{} requests", g.internal)}</dd> })}
                        {members.map(|m| view! { <dt>"pods"</dt><dd>{m}</dd> })}
                    </dl>
                    {locked}
                    {badges.into_iter().map(|b| view! { <p class="hint">{b}</p> }).collect::<Vec<_>>()}
                    <p class="muted">{hint}</p>
                }
                .into_any())
            }
        })?;
        let exact_part = move || {
            exact().map(|d| {
                let e = &d.edge;
                view! {
                    <dl class="facts">
                        <dt>"latency"</dt><dd>{format!("p50 {} · p95 {} · p99 {}", ms(e.p50_ms), ms(e.p95_ms), ms(e.p99_ms))}</dd>
                        <dt>"protocols"</dt><dd>{if e.protocols.is_empty() { "–".to_string() } else { e.protocols.join(", ") }}</dd>
                    </dl>
                    {(!d.complete).then(|| view! { <p class="hint">"from the first 500,000 records of the window only"</p> })}
                    {operations(&d, span(ctx))}
                    {sparkline(&d)}
                }
            })
        };
        Some(view! {
            <div class="map-card" data-testid="map-card" style=style>
                {body}
                {exact_part}
            </div>
        })
    }
}

/// The chosen window's length: the card's rates (live, the edge labels carry them).
fn span(ctx: MapCtx) -> Option<f64> {
    ctx.window.get_untracked().map(|w| w.to.saturating_sub(w.from) as f64 / 1e6)
}

fn edge_card(l: &Link, badges: Option<&Vec<super::quality::Badge>>, span_s: Option<f64>) -> AnyView {
    let errors = if l.requests > 0 {
        format!("{} ({:.1} %)", l.errors, l.errors as f64 * 100.0 / l.requests as f64)
    } else {
        "0".into()
    };
    let per_s = rate(l.requests, span_s).map(|r| format!(" · {r:.1}/s")).unwrap_or_default();
    let single =
        (l.members == 1).then(|| format!("p50 {} · p95 {} · p99 {}", ms(l.p50_ms), ms(l.p95_ms), ms(l.p99_ms)));
    let badges: Vec<String> = badges.map(|b| b.iter().map(|b| b.text.clone()).collect()).unwrap_or_default();
    view! {
        <h4>{format!("{} → {}", l.source, l.target)}</h4>
        <dl class="facts">
            <dt>"requests"</dt><dd>{format!("{}{per_s}", l.requests)}</dd>
            <dt>"connections"</dt><dd>{l.connections.to_string()}</dd>
            <dt>"errors"</dt><dd>{errors}</dd>
            {(l.probe_requests > 0).then(|| view! { <dt>"probes"</dt><dd>{l.probe_requests.to_string()}</dd> })}
            {(l.members > 1).then(|| view! { <dt>"sums"</dt><dd>{format!("{} edges between their pods", l.members)}</dd> })}
            {single.map(|s| view! { <dt>"latency"</dt><dd>{s}</dd> })}
        </dl>
        {badges.into_iter().map(|b| view! { <p class="hint">{b}</p> }).collect::<Vec<_>>()}
        <p class="muted">"click: list its requests"</p>
    }
    .into_any()
}

/// The filter term that shows one box's requests.
fn term_of(id: &str, label: &str) -> String {
    let (kind, rest) = id.split_once(':').unwrap_or(("", id));
    match kind {
        "pod" => format!("pod:{label}"),
        "service" => format!("svc:{rest}"),
        "namespace" => format!("ns:{rest}"),
        "workload" => format!("workload:{}", rest.split_once('/').map_or(rest, |(_, w)| w)),
        "topic" => format!("topic:{label}"),
        "external" if rest.contains('/') => rest.rsplit_once(".0/").map_or(rest.to_string(), |(p, _)| format!("{p}.")),
        _ => rest.to_string(),
    }
}

#[component]
pub fn FocusPanel(ctx: MapCtx) -> impl IntoView {
    move || {
        let id = ctx.focus.get()?;
        ctx.version.track();
        let (label, level, parent, callers, callees) = ctx.state.with_value(|s| {
            let i = *s.scene.index.get(&id)?;
            let g = &s.scene.groups[i];
            let name = |j: usize| s.scene.groups[j].label.clone();
            let (mut a, mut b) = s.scene.neighbours(i);
            a.sort_by_key(|x| std::cmp::Reverse(x.1));
            b.sort_by_key(|x| std::cmp::Reverse(x.1));
            let a: Vec<(String, u64)> = a.into_iter().map(|(j, n)| (name(j), n)).collect();
            let b: Vec<(String, u64)> = b.into_iter().map(|(j, n)| (name(j), n)).collect();
            Some((g.label.clone(), g.level, g.parent.clone(), a, b))
        })?;
        let open_parent = parent.filter(|p| ctx.opts.with(|o| o.open.contains(p)));
        let term = term_of(&id, &label);
        let list = |title: &'static str, items: Vec<(String, u64)>| {
            let total: u64 = items.iter().map(|i| i.1).sum();
            let count = items.len();
            view! {
                <h4>{format!("{title}: {count} · {total} requests")}</h4>
                <ul>{items.into_iter().take(6).map(|(n, r)| view! { <li>{format!("{n} — {r}")}</li> }).collect::<Vec<_>>()}</ul>
            }
        };
        let service = id.strip_prefix("service:").map(str::to_string);
        let into: u64 = callers.iter().map(|c| c.1).sum();
        let out: u64 = callees.iter().map(|c| c.1).sum();
        Some(view! {
            <div class="map-focus" data-testid="map-focus" data-id=id.clone() data-in=into.to_string() data-out=out.to_string()>
                <button class="close" title="unfocus (Esc)" on:click=move |_| ctx.focus.set(None)>"×"</button>
                <strong>{label}</strong>" "<span class="muted">{level}</span>
                {list(if level == "topic" { "producers" } else { "callers" }, callers)}
                {list(if level == "topic" { "consumers" } else { "callees" }, callees)}
                <div class="actions">
                    <button data-testid="map-focus-filter" on:click=move |_| ctx.add_filter(&term)>"Filter to this"</button>
                    {service.map(|s| view! { <button on:click=move |_| ctx.service.set(Some(s.clone()))>"Balance"</button> })}
                    {open_parent.map(|p| view! {
                        <button data-testid="map-fold-parent" on:click=move |_| { let p = p.clone(); ctx.opts.update(|o| { o.open.remove(&p); }); ctx.focus.set(None); }>"Fold back"</button>
                    })}
                </div>
            </div>
        })
    }
}

#[component]
pub fn Legend() -> impl IntoView {
    let line = |stroke: &'static str, dash: &'static str, width: f64| {
        view! { <svg width="40" height="10"><line x1="0" y1="5" x2="40" y2="5" stroke=stroke stroke-width=width stroke-dasharray=dash></line></svg> }
    };
    let boxes = [
        ("namespace", "namespace"),
        ("workload", "workload or pod"),
        ("service", "Service"),
        ("node", "node (kubelet, hostNetwork)"),
        ("external", "external peers"),
        ("topic", "Kafka topic: producers → topic → consumers"),
        ("unresolved", "unresolved address"),
    ];
    view! {
        <div class="map-legend" data-testid="map-legend">
            <div>{line(ERROR_BANDS[0].1, "", 1.5)}" thin … "{line(ERROR_BANDS[0].1, "", 7.0)}" thick: requests per second"</div>
            {ERROR_BANDS.iter().map(|(_, c, t)| view! { <div>{line(c, "", 3.0)}" "{*t}</div> }).collect::<Vec<_>>()}
            <div>{line(IDLE, "", 1.5)}" connections only (no request understood)"</div>
            <div>{line(ERROR_BANDS[0].1, "7 5", 2.0)}" probes only"</div>
            <div>{line(ERROR_BANDS[0].1, "1.5 4", 2.0)}" DNS only"</div>
            {boxes.iter().map(|(level, text)| view! {
                <div><span class="swatch" style=format!("border-color:{}", level_colour(level))></span>" "{*text}</div>
            }).collect::<Vec<_>>()}
            <div>"+ and a stacked outline: folded — click to open"</div>
            <div><span class="badge">"!"</span>" something podtap could not see touches it (hover)"</div>
            <div>"≥ 12 req/s: a count that may be low"</div>
            <div class="muted">{format!("boxes {BOX_W:.0} wide; drag to pan, wheel or pinch to zoom, 0 to fit")}</div>
        </div>
    }
}

#[component]
pub fn QualityBar(ctx: MapCtx) -> impl IntoView {
    view! {
        <div class="map-quality" data-testid="map-quality">
            {move || {
                ctx.version.track();
                let notes = ctx.state.with_value(|s| s.scene.quality.bar.clone());
                if notes.iter().all(|n| n.kind == "hidden") {
                    let mut out = vec![view! { <span class="qchip ok" data-testid="quality-item" data-kind="ok"
                        title="the capture reports no drops, gaps, responses without a request or unresolved addresses">"capture complete"</span> }.into_any()];
                    out.extend(notes.into_iter().map(chip));
                    return out;
                }
                notes.into_iter().map(chip).collect::<Vec<_>>()
            }}
        </div>
    }
}

fn chip(n: super::quality::Note) -> AnyView {
    view! { <span class="qchip" class:muted=n.kind == "hidden" data-testid="quality-item" data-kind=n.kind title=n.title>{n.text}</span> }.into_any()
}
