//! The page: header with connection status, the filter (kept in the URL so links share exactly
//! this view), the Service Map, the replica balance of a Service and the live request list.

use leptos::prelude::*;
use podtap_shared::{Filter, ServiceMap};

use crate::api::fetch_map;
use crate::components::filter_box::FilterBox;
use crate::components::status_pill::StatusPill;
use crate::live::{Live, connect};
use crate::url_state;
use crate::views::balance::BalanceView;
use crate::views::map::MapView;
use crate::views::timeline::Timeline;

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let live = Live::new();
    connect(live, 0);

    let filter_text = RwSignal::new(url_state::param("filter").unwrap_or_default());
    Effect::new(move |_| url_state::set_param("filter", &filter_text.get()));
    let parsed = Memo::new(move |_| Filter::parse(&filter_text.get()));
    let filter = Signal::derive(move || parsed.get().unwrap_or_default());
    let error = Signal::derive(move || parsed.get().err().map(|e| e.to_string()));

    // With a filter, the map comes from the server (it sees all retained records), refreshed
    // whenever the unfiltered map changes.
    let filtered = LocalResource::new(move || {
        let text = filter_text.get();
        live.map.track();
        async move {
            if text.trim().is_empty() || Filter::parse(&text).is_err() { None } else { Some(fetch_map(&text).await) }
        }
    });
    let last_filtered = RwSignal::new(ServiceMap::default());
    let map_error = RwSignal::new(None::<String>);
    Effect::new(move |_| match filtered.get().flatten() {
        Some(Ok(m)) => {
            last_filtered.set(m);
            map_error.set(None);
        }
        Some(Err(e)) => map_error.set(Some(e)),
        None => {}
    });
    let map = Signal::derive(move || if filter.with(Filter::is_empty) { live.map.get() } else { last_filtered.get() });

    view! {
        <header>
            <h1>"podtap"</h1>
            <span class="source" data-testid="source">{move || live.source.get()}</span>
            <StatusPill live=live/>
        </header>
        <FilterBox text=filter_text error=error/>
        <main>
            <section class="panel">
                <h2>"Service Map"</h2>
                <p class="hint">{move || map_error.get()}</p>
                <MapView map=map/>
            </section>
            <section class="panel">
                <h2>"Replica balance"</h2>
                <BalanceView map=live.map.into()/>
            </section>
            <section class="panel">
                <h2>"Requests"</h2>
                <Timeline records=live.records.into() filter=filter/>
            </section>
        </main>
    }
}
