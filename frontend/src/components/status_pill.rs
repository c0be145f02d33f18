//! Connection status, and what says how complete the picture is: records this browser missed
//! (counted in records), seconds the server sent a sample of, unreadable messages, Kubernetes kinds
//! the server could not list, and that it is still waiting for the API server's first lists.

use leptos::prelude::*;

use crate::live::{Live, Status};

/// "live", "connecting…" or "retrying in Ns", plus skipped/unreadable message counts when any.
#[component]
pub fn StatusPill(
    /// The live state to report on.
    live: Live,
) -> impl IntoView {
    let text = move || match live.status.get() {
        Status::Live => "live".to_string(),
        Status::Connecting => "connecting…".to_string(),
        Status::Retrying(s) => format!("disconnected, retrying in {s}s"),
    };
    let class = move || match live.status.get() {
        Status::Live => "pill live",
        _ => "pill down",
    };
    view! {
        <span class=class data-testid="status">{text}</span>
        <Show when=move || { live.skipped.get() > 0 }>
            <span class="pill warn" data-testid="lagged" title="this browser fell behind; the server never waits for it">
                {move || format!("{} records not shown (this browser fell behind)", live.skipped.get())}
            </span>
        </Show>
        {move || live.sampled.get().map(|s| view! {
            <span class="pill warn" data-testid="sampled"
                title="more records matched than one browser is sent; the map and balance still count them all">
                {format!("showing {} of {} records in one second", s.shown, s.matched)}
            </span>
        })}
        {move || live.refused.get().map(|r| view! { <span class="pill warn" data-testid="refused">{r}</span> })}
        <Show when=move || { live.cluster_waiting.get() }>
            <span class="pill warn" data-testid="cluster-waiting" title=move || missing_detail(&live)>
                "waiting for the API server's first lists: names come with them"
            </span>
        </Show>
        <Show when=move || { !live.cluster_waiting.get() && !live.missing.get().is_empty() }>
            <span class="pill warn" data-testid="cluster-missing" title=move || missing_detail(&live)>
                {move || missing_summary(&live)}
            </span>
        </Show>
        <Show when=move || { live.bad_messages.get() > 0 }>
            <span class="pill warn">{move || format!("{} unreadable messages", live.bad_messages.get())}</span>
        </Show>
    }
}

/// "names incomplete: jobs, nodes".
fn missing_summary(live: &Live) -> String {
    let kinds: Vec<String> = live.missing.get().into_iter().map(|m| m.kind).collect();
    format!("names incomplete: {}", kinds.join(", "))
}

/// One line per kind: why, and what it costs.
fn missing_detail(live: &Live) -> String {
    live.missing.get().iter().map(|m| format!("{}: {} — {}", m.kind, m.reason, m.effect)).collect::<Vec<_>>().join("\n")
}
