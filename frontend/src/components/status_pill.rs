//! Connection status, and the counts that say how complete the picture is.

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
            <span class="pill warn" title="this browser fell behind; the server never waits for it">
                {move || format!("{} records not shown", live.skipped.get())}
            </span>
        </Show>
        <Show when=move || { live.bad_messages.get() > 0 }>
            <span class="pill warn">{move || format!("{} unreadable messages", live.bad_messages.get())}</span>
        </Show>
    }
}
