//! A signal that counts periods: what views that refresh from the API track.

use std::time::Duration;

use leptos::prelude::*;

/// A counter bumped every `period` for as long as the calling view lives.
pub fn ticker(period: Duration) -> RwSignal<u64> {
    let n = RwSignal::new(0u64);
    let handle = set_interval_with_handle(move || n.update(|n| *n += 1), period).ok();
    on_cleanup(move || {
        if let Some(h) = handle {
            h.clear();
        }
    });
    n
}
