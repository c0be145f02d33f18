//! The filter box: the text of a `podtap_shared::Filter`, with the parse error shown under it.

use leptos::prelude::*;

/// The filter input.
#[component]
pub fn FilterBox(
    /// The filter text; the box reads and writes it.
    text: RwSignal<String>,
    /// Why the text is not a valid filter, if it is not.
    error: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class="filter">
            <input
                data-testid="filter-input"
                type="search"
                spellcheck="false"
                placeholder="filter: ns:default svc:web status:5xx -probe:true path:/users …"
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            />
            <span class="filter-error" data-testid="filter-error">{move || error.get()}</span>
        </div>
    }
}
