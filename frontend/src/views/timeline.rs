//! The live request list, newest request first: who called whom, through what, with what result. Rows are
//! keyed by record id so a new record adds one row; at most `SHOWN` rows are in the DOM.
//! DOM hook: `timeline-row` with `data-id`.

use leptos::prelude::*;
use podtap_shared::{Detail, Endpoint, Filter, Record, ViaKind};

/// Rows in the DOM at once.
const SHOWN: usize = 200;

fn who(e: &Endpoint) -> String {
    match e.qualified_name() {
        Some(n) => n,
        None => format!("{}:{}", e.ip, e.port),
    }
}

fn via(r: &Record) -> String {
    let kind = match r.via.kind {
        ViaKind::ClusterIp => "ClusterIP",
        ViaKind::NodePort => "NodePort",
        ViaKind::LoadBalancer => "LoadBalancer",
        ViaKind::Direct => "direct",
        ViaKind::Unknown => "?",
    };
    match &r.via.service {
        Some(s) => format!("{kind} {s}"),
        None => kind.to_string(),
    }
}

fn clock(ts_us: u64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64((ts_us / 1000) as f64));
    format!("{:02}:{:02}:{:02}.{:03}", d.get_hours(), d.get_minutes(), d.get_seconds(), d.get_milliseconds())
}

/// The request list.
#[component]
pub fn Timeline(
    /// Every record the browser holds, oldest first.
    records: Signal<Vec<Record>>,
    /// Only matching records are listed.
    filter: Signal<Filter>,
) -> impl IntoView {
    let shown = Memo::new(move |_| {
        filter.with(|f| {
            records.with(|all| all.iter().rev().filter(|r| f.matches(r)).take(SHOWN).cloned().collect::<Vec<_>>())
        })
    });
    view! {
        <table class="timeline">
            <thead>
                <tr>
                    <th>"time"</th><th>"source"</th><th>"destination"</th><th>"via"</th>
                    <th>"request"</th><th>"status"</th><th class="num">"latency"</th><th class="num">"conn"</th>
                </tr>
            </thead>
            <tbody>
                <For each=move || shown.get() key=|r| r.id children=move |r| view! { <Row record=r/> }/>
            </tbody>
        </table>
    }
}

/// One request.
#[component]
fn Row(
    /// The record shown.
    record: Record,
) -> impl IntoView {
    // Colour and the words for "nothing came back" are this view's; the text is shared.
    let (status_class, missing) = match &record.detail {
        Detail::Http(h) => match h.status {
            Some(s) if s >= 500 => ("status s5", "—"),
            Some(s) if s >= 400 => ("status s4", "—"),
            Some(_) => ("status ok", "—"),
            None => ("status none", "—"),
        },
        Detail::Grpc(g) => match (g.grpc_status, g.status) {
            (Some(0), _) => ("status ok", "—"),
            (Some(_), _) => ("status s5", "—"),
            (None, Some(_)) => ("status s4", "no trailers"),
            (None, None) => ("status none", "—"),
        },
        Detail::Dns(d) => match d.rcode.as_deref() {
            Some("NOERROR") => ("status ok", "no answer"),
            Some("NXDOMAIN") => ("status s4", "no answer"),
            _ => ("status s5", "no answer"),
        },
        Detail::Tls(t) => (if t.version.is_some() { "status ok" } else { "status s5" }, "no ServerHello"),
    };
    let request = record.detail.request_line();
    let status = record.detail.outcome().unwrap_or_else(|| missing.to_string());
    let latency = match record.latency_us {
        Some(l) if l < 1000 => format!("{:.2} ms", l as f64 / 1000.0),
        Some(l) => format!("{:.1} ms", l as f64 / 1000.0),
        None => "—".into(),
    };
    let row_class = if record.probe { "probe" } else { "" };
    view! {
        <tr data-testid="timeline-row" data-id=record.id.to_string() class=row_class>
            <td class="mono">{clock(record.ts)}</td>
            <td>{who(&record.src)}</td>
            <td>{who(&record.dst)}</td>
            <td>{via(&record)}</td>
            <td class="mono">
                {request}
                {record.probe.then(|| view! { <span class="tag">"probe"</span> })}
            </td>
            <td class=status_class>{status}</td>
            <td class="num">{latency}</td>
            <td class="num mono">{record.conn}</td>
        </tr>
    }
}
