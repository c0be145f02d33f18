//! The request list: a second view of the same window as the lanes — every request in it, not a
//! few hundred — virtualised (only the rows in view are in the DOM), sortable by time or latency,
//! with its header always in view, pausable so a row does not run away while it is read, and
//! click-to-filter on names, paths and statuses. A click on a row selects it. DOM hook:
//! `timeline-row` with `data-id`.

use leptos::prelude::*;
use podtap_shared::{Detail, Endpoint, EndpointKind, Record, ViaKind};
use wasm_bindgen::JsCast;

use crate::components::term::{FilterText, add_term};
use crate::live::Live;
use crate::views::lanes_outcome_class;

const ROW_H: f64 = 26.0;
const VIEW_ROWS: usize = 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Newest,
    Slowest,
}

fn via(r: &Record) -> String {
    let kind = match r.via.kind {
        ViaKind::ClusterIp => "ClusterIP",
        ViaKind::NodePort => "NodePort",
        ViaKind::LoadBalancer => "LoadBalancer",
        ViaKind::SocketLb => "socket LB",
        ViaKind::Direct => "direct",
        ViaKind::Unknown => "?",
    };
    match &r.via.service {
        Some(s) => format!("{kind} {s}"),
        None => kind.to_string(),
    }
}

/// `HH:MM:SS.mmm` in the browser's time zone.
pub fn clock(ts_us: u64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64((ts_us / 1000) as f64));
    format!("{:02}:{:02}:{:02}.{:03}", d.get_hours(), d.get_minutes(), d.get_seconds(), d.get_milliseconds())
}

/// The rows of the list from `first`, `n` of them, and how many there are (`known`, or counted):
/// newest first (a walk back from the end, nothing sorted or copied), or slowest first.
fn page<'a>(
    records: impl DoubleEndedIterator<Item = &'a Record> + Clone,
    known: Option<usize>,
    order: Order,
    first: usize,
    n: usize,
) -> (Vec<(u64, u64)>, usize) {
    let requests = records.clone().filter(|r| r.is_request());
    match order {
        Order::Newest => {
            let total = known.unwrap_or_else(|| requests.clone().count());
            (requests.rev().skip(first).take(n).map(|r| (r.ts, r.id)).collect(), total)
        }
        Order::Slowest => {
            let mut keys: Vec<_> = requests.map(|r| (r.latency_us, r.ts, r.id)).collect();
            keys.sort_unstable_by(|a, b| b.cmp(a));
            let total = keys.len();
            (keys.into_iter().skip(first).take(n).map(|(_, ts, id)| (ts, id)).collect(), total)
        }
    }
}

/// The list.
#[component]
pub fn RequestList(
    live: Live,
    /// The window's records when one is chosen (`None`: live).
    windowed: Signal<Option<Vec<Record>>>,
    selected: RwSignal<Option<u64>>,
    /// What the filter is, to say so when nothing matches.
    filter: Signal<String>,
) -> impl IntoView {
    let order = RwSignal::new(Order::Newest);
    let filter_text = use_context::<FilterText>();
    let filters = filter_text.is_some();
    // Live rows are refreshed at most 4 times a second: a busy stream never rebuilds the rows
    // for every batch.
    let tick = RwSignal::new(0u64);
    let seen = StoredValue::new(0u64);
    let timer = set_interval_with_handle(
        move || {
            let now = live.arrivals.get_untracked();
            if seen.get_value() != now {
                seen.set_value(now);
                tick.update(|t| *t += 1);
            }
        },
        std::time::Duration::from_millis(250),
    )
    .ok();
    on_cleanup(move || {
        if let Some(t) = timer {
            t.clear();
        }
    });
    let paused = RwSignal::new(None::<Vec<Record>>);
    let scroll = RwSignal::new(0usize);
    // The rows in view, of the frozen copy while paused, else of the window's, else of live.
    let keys = Memo::new(move |_| {
        let (o, first) = (order.get(), scroll.get());
        let n = VIEW_ROWS + 4;
        if let Some(frozen) = paused.with(|p| p.as_ref().map(|p| page(p.iter(), None, o, first, n))) {
            return frozen;
        }
        match windowed.with(|w| w.as_ref().map(|w| page(w.iter(), None, o, first, n))) {
            Some(k) => k,
            None => {
                tick.track();
                live.generation.track();
                let known = Some(live.requests.get_value());
                live.records.with_untracked(|all| page(all.iter(), known, o, first, n))
            }
        }
    });
    // Every source is in `Record::time_order`: a record is found by binary search.
    let find = move |ts: u64, id: u64| -> Option<Record> {
        let key = (ts, id);
        let in_vec = |v: &Vec<Record>| v.binary_search_by_key(&key, Record::time_order).ok().map(|i| v[i].clone());
        if let Some(found) = paused.with_untracked(|p| p.as_ref().map(in_vec)) {
            return found;
        }
        if let Some(found) = windowed.with_untracked(|w| w.as_ref().map(in_vec)) {
            return found;
        }
        live.records
            .with_untracked(|all| all.binary_search_by_key(&key, Record::time_order).ok().map(|i| all[i].clone()))
    };
    let rows = move || keys.with(|(k, _)| k.iter().filter_map(|&(ts, id)| find(ts, id)).collect::<Vec<_>>());
    let on_scroll = move |ev: web_sys::Event| {
        if let Some(el) = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) {
            scroll.set((f64::from(el.scroll_top()) / ROW_H).floor() as usize);
        }
    };
    let spacer = |rows: usize| format!("height: {:.0}px", rows as f64 * ROW_H);
    let above = move || spacer(scroll.get());
    let below = move || spacer(keys.with(|(_, total)| total.saturating_sub(scroll.get() + VIEW_ROWS + 4)));
    let toggle_pause = move |_| {
        if paused.with_untracked(Option::is_some) {
            paused.set(None);
        } else {
            let copy = windowed
                .get_untracked()
                .unwrap_or_else(|| live.records.with_untracked(|r| r.iter().cloned().collect()));
            paused.set(Some(copy));
        }
    };
    let count = move || {
        let n = keys.with(|(_, total)| *total);
        match (n, filter.with(|f| f.trim().is_empty())) {
            (0, false) => format!("No request matches `{}`.", filter.get()),
            (0, true) => "No traffic yet.".to_string(),
            (n, _) => format!("{n} requests"),
        }
    };
    let sort_header = move |o: Order, text: &'static str| {
        let mark = move || if order.get() == o { " ▾" } else { "" };
        view! { <button class="sort" class:on=move || order.get() == o on:click=move |_| order.set(o)>{text}{mark}</button> }
    };
    view! {
        <div class="list-toolbar">
            <span class="list-count" data-testid="list-count">{count}</span>
            <button data-testid="list-pause" on:click=toggle_pause>
                {move || if paused.with(Option::is_some) { "Resume" } else { "Pause" }}
            </button>
        </div>
        <div class="list-scroll" on:scroll=on_scroll>
            <table class="timeline" on:click=move |ev| on_click(&ev, selected, filter_text)>
                <thead>
                    <tr>
                        <th>{sort_header(Order::Newest, "time")}</th><th>"source"</th><th>"destination"</th><th>"via"</th>
                        <th>"request"</th><th>"status"</th><th class="num">{sort_header(Order::Slowest, "latency")}</th><th class="num">"conn"</th>
                    </tr>
                </thead>
                <tbody>
                    <tr class="spacer" style=above></tr>
                    <For each=rows key=|r| r.id children=move |r| row(&r, selected, filters)/>
                    <tr class="spacer" style=below></tr>
                </tbody>
            </table>
        </div>
    }
}

/// Click-to-filter text as plain markup (`Term`'s look and hooks): the list's one click handler
/// adds its term, so a row holds no handler, effect or component of its own, and 22 rows made
/// and dropped 4 times a second under a busy stream cost what their elements do.
fn term(text: String, term: String, filters: bool) -> AnyView {
    if filters && !term.is_empty() && !term.contains(char::is_whitespace) {
        let title = format!("filter: {term}");
        view! { <button class="term" data-testid="filter-term" data-term=term title=title>{text}</button> }.into_any()
    } else {
        view! { <span>{text}</span> }.into_any()
    }
}

fn who(e: &Endpoint, filters: bool) -> AnyView {
    let text = e.qualified_name().unwrap_or_else(|| format!("{}:{}", e.ip, e.port));
    let t = match (e.kind, &e.name) {
        (EndpointKind::Pod, Some(n)) => format!("pod:{n}"),
        (_, Some(n)) => n.to_string(),
        (_, None) => e.ip.to_string(),
    };
    term(text, t, filters)
}

/// A click in the list: on a filter term, its term joins the page's filter; elsewhere in a row,
/// the row is selected.
fn on_click(ev: &web_sys::MouseEvent, selected: RwSignal<Option<u64>>, filter: Option<FilterText>) {
    let Some(el) = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else { return };
    if let Some(t) = el.closest("[data-testid=filter-term]").ok().flatten().and_then(|t| t.get_attribute("data-term")) {
        if let Some(FilterText(f)) = filter {
            f.update(|text| *text = add_term(text, &t));
        }
        return;
    }
    let row = el.closest("[data-testid=timeline-row]").ok().flatten();
    if let Some(id) = row.and_then(|r| r.get_attribute("data-id")).and_then(|id| id.parse().ok()) {
        selected.set(Some(id));
    }
}

/// One request: markup only (the list handles its clicks), and its selection.
fn row(record: &Record, selected: RwSignal<Option<u64>>, filters: bool) -> impl IntoView + use<> {
    let missing = match &record.detail {
        Detail::Grpc(g) if g.status.is_some() => "no trailers",
        Detail::Dns(_) => "no answer",
        Detail::Tls(_) => "no ServerHello",
        _ => "—",
    };
    let status_class = format!("status {}", lanes_outcome_class(record));
    let status_text = record.detail.outcome().unwrap_or_else(|| missing.to_string());
    let status = match record.http_path_status().and_then(|(_, s)| s) {
        Some(s) => term(status_text, format!("status:{s}"), filters),
        None => term(status_text, String::new(), false),
    };
    let request = match record.http_path_status() {
        Some((path, _)) => term(record.detail.request_line(), format!("path:{path}"), filters),
        None => term(record.detail.request_line(), String::new(), false),
    };
    let via_cell = match &record.via.service {
        Some(s) => term(via(record), format!("svc:{s}"), filters),
        None => term(via(record), String::new(), false),
    };
    let latency = match record.latency_us {
        Some(l) if l < 1000 => format!("{:.2} ms", l as f64 / 1000.0),
        Some(l) => format!("{:.1} ms", l as f64 / 1000.0),
        None => "—".into(),
    };
    let (id, probe) = (record.id, record.probe);
    let row_class = move || {
        let mut c = if probe { "probe".to_string() } else { String::new() };
        if selected.get() == Some(id) {
            c.push_str(" selected");
        }
        c
    };
    view! {
        <tr data-testid="timeline-row" data-id=id.to_string() class=row_class>
            <td class="mono">{clock(record.ts)}</td>
            <td>{who(&record.src, filters)}</td>
            <td>{who(&record.dst, filters)}</td>
            <td>{via_cell}</td>
            <td class="mono">
                {request}
                {record.probe.then(|| view! { <span class="tag">"probe"</span> })}
            </td>
            <td class=status_class>{status}</td>
            <td class="num">{latency}</td>
            <td class="num mono">{term(record.conn.to_string(), format!("conn:{}", record.conn), filters)}</td>
        </tr>
    }
}
