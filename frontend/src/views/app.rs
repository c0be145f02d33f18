//! The page: header with connection status and the chosen window, the filter (kept in the URL with
//! the window, the selection and the Service, so a link reopens exactly this view), the timeline
//! with its connection swimlanes, the Service Map, the replica balance, the request list and the
//! detail panel of the selected request. Live, everything follows the stream (subscribed with the
//! filter); for a brushed window, everything comes from the API for that window, so the map, the
//! balance, the lanes and the list always agree.

use leptos::prelude::*;
use podtap_shared::{Filter, Record, ServiceMap};

use crate::api::{Span, fetch_map, fetch_window};
use crate::components::agents::AgentsPill;
use crate::components::filter_box::FilterBox;
use crate::components::status_pill::StatusPill;
use crate::components::term::FilterText;
use crate::live::{Live, Wanted, connect};
use crate::url_state;
use crate::views::balance::BalanceView;
use crate::views::detail::DetailPanel;
use crate::views::list::RequestList;
use crate::views::map::MapView;
use crate::views::timeline::Timeline;
use crate::views::timeline::overview::clock;

/// Records of one window the page loads at most (the API pages them).
const WINDOW_CAP: usize = 100_000;

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let live = Live::new();
    connect(live, 0);
    crate::live::apply_held_map(live);

    let filter_text = RwSignal::new(url_state::param("filter").unwrap_or_default());
    provide_context(FilterText(filter_text));
    Effect::new(move |_| url_state::set_param("filter", &filter_text.get()));
    let parsed = Memo::new(move |_| Filter::parse(&filter_text.get()));
    // An invalid filter keeps the last valid view, and says why.
    let valid = RwSignal::new(if parsed.get_untracked().is_ok() { filter_text.get_untracked() } else { String::new() });
    Effect::new(move |_| {
        if parsed.with(Result::is_ok) {
            valid.set(filter_text.get());
        }
    });
    let error = Signal::derive(move || {
        parsed.get().err().map(|e| {
            let kept = valid.get();
            if kept.trim().is_empty() {
                format!("{e} — showing everything until the filter is valid")
            } else {
                format!("{e} — still showing `{kept}`")
            }
        })
    });
    let filter = Signal::derive(move || valid.get());

    let initial_window = match (url_state::param_u64("from"), url_state::param_u64("to")) {
        (Some(from), Some(to)) if from < to => Some(Span { from, to }),
        _ => None,
    };
    let window = RwSignal::new(initial_window);
    Effect::new(move |_| {
        let w = window.get();
        url_state::set_param("from", &w.map(|w| w.from.to_string()).unwrap_or_default());
        url_state::set_param("to", &w.map(|w| w.to.to_string()).unwrap_or_default());
    });
    let selected = RwSignal::new(url_state::param_u64("sel"));
    Effect::new(move |_| url_state::set_param("sel", &selected.get().map(|s| s.to_string()).unwrap_or_default()));
    let hide_probes = RwSignal::new(url_state::param("probes").as_deref() == Some("hide"));
    Effect::new(move |_| url_state::set_param("probes", if hide_probes.get() { "hide" } else { "" }));
    let service = RwSignal::new(url_state::param("service"));

    // Live: the stream sends only what the filter matches, and the chosen Service's balance.
    Effect::new(move |_| live.subscribe(Wanted { filter: filter.get(), service: service.get() }));

    // A window: its records, map and balance from the API.
    let fetched = LocalResource::new(move || {
        let (f, w) = (filter.get(), window.get());
        async move {
            match w {
                Some(w) => Some((w, f.clone(), fetch_window(&f, w, WINDOW_CAP).await)),
                None => None,
            }
        }
    });
    let windowed = RwSignal::new(None::<Vec<Record>>);
    let capped = RwSignal::new(false);
    let window_error = RwSignal::new(None::<String>);
    let loading = RwSignal::new(false);
    // A new window empties the views until its records are in (never the live ones meanwhile).
    Effect::new(move |_| {
        let chosen = window.get().is_some();
        filter.track();
        windowed.set(chosen.then(Vec::new));
        loading.set(chosen);
    });
    Effect::new(move |_| {
        if window.with(Option::is_none) {
            windowed.set(None);
            return;
        }
        // Only the answer for the window and filter shown now (not one still arriving for before).
        let current = (window.get(), filter.get());
        match fetched.get().flatten().filter(|(w, f, _)| (Some(*w), f.clone()) == current).map(|(_, _, r)| r) {
            Some(Ok((mut records, cut))) => {
                records.sort_by_key(Record::time_order);
                windowed.set(Some(records));
                capped.set(cut);
                window_error.set(None);
                loading.set(false);
            }
            Some(Err(e)) => {
                window_error.set(Some(e));
                loading.set(false);
            }
            None => {}
        }
    });
    let window_map = LocalResource::new(move || {
        let (f, w) = (filter.get(), window.get());
        async move {
            match w {
                Some(w) => Some(fetch_map(&f, Some(w)).await),
                None => None,
            }
        }
    });
    let last_window_map = RwSignal::new(ServiceMap::default());
    Effect::new(move |_| {
        if let Some(Some(Ok(m))) = window_map.get() {
            last_window_map.set(m);
        }
    });
    let map = Signal::derive(move || if window.with(Option::is_some) { last_window_map.get() } else { live.map.get() });
    let windowed_signal: Signal<Option<Vec<Record>>> = windowed.into();

    // The detail panel finds what the page holds before asking the server.
    let local = Callback::new(move |id: u64| {
        let find = |r: &Record| r.id == id;
        windowed
            .with_untracked(|w| w.as_ref().and_then(|w| w.iter().find(|r| find(r)).cloned()))
            .or_else(|| live.records.with_untracked(|all| all.iter().rev().find(|r| find(r)).cloned()))
    });

    let window_badge = move || {
        window.get().map(|w| {
            view! {
                <span class="pill window" data-testid="window">
                    {format!("window {} – {}", clock(w.from), clock(w.to))}
                    <button data-testid="window-live" on:click=move |_| window.set(None) title="back to the live view">"× live"</button>
                </span>
            }
        })
    };
    let empty_map = Signal::derive(move || {
        let f = filter.get();
        if f.trim().is_empty() { "No traffic yet.".to_string() } else { format!("No traffic matches `{f}`.") }
    });

    view! {
        <header>
            <h1>"podtap"</h1>
            <span class="source" data-testid="source">{move || live.source.get()}</span>
            <StatusPill live=live/>
            <AgentsPill live=live/>
            {window_badge}
        </header>
        <FilterBox text=filter_text error=error/>
        <main>
            <section class="panel">
                <h2>"Timeline"</h2>
                <p class="hint">{move || window_error.get()}</p>
                <Show when=move || loading.get()>
                    <p class="muted" data-testid="window-loading">"Loading the window's records…"</p>
                </Show>
                <Show when=move || capped.get()>
                    <p class="hint">{format!("This window holds more than {WINDOW_CAP} records: the first {WINDOW_CAP} are shown; brush a shorter one.")}</p>
                </Show>
                <Timeline live=live windowed=windowed_signal window=window filter=filter selected=selected hide_probes=hide_probes/>
            </section>
            <div class="two">
                <section class="panel">
                    <h2>"Service Map"</h2>
                    <MapView map=map empty=empty_map/>
                </section>
                <section class="panel">
                    <h2>"Replica balance"</h2>
                    <BalanceView live=live chosen=service window=window.into()/>
                </section>
            </div>
            <section class="panel">
                <h2>"Requests"</h2>
                <RequestList live=live windowed=windowed_signal selected=selected filter=filter/>
            </section>
        </main>
        <DetailPanel selected=selected local=local/>
    }
}
