//! The page: first what it may see (`access`: the admin, a saved session's link, a live link —
//! or a sign-in form, or why a link grants nothing); then the header with connection status,
//! the chosen window and sharing, the filter (kept in the URL with the window, the selection and
//! the Service, so a link reopens exactly this view), the timeline with its connection swimlanes,
//! the Service Map, the replica balance, the request list and the detail panel of the selected
//! request. Live, everything follows the stream (subscribed with the filter); for a brushed
//! window — and always for a saved session — everything comes from the API for that window, so
//! the map, the balance, the lanes and the list always agree. An embed page shows one view alone
//! and talks to its portal by `postMessage`.

use leptos::prelude::*;
use podtap_shared::{Filter, Record, ServiceMap};

use crate::api::{Access, Span, fetch_access, fetch_map, fetch_window};
use crate::components::agents::AgentsPill;
use crate::components::filter_box::FilterBox;
use crate::components::gate::Gate;
use crate::components::share::ShareMenu;
use crate::components::status_pill::StatusPill;
use crate::components::term::FilterText;
use crate::components::who::{NoNamespace, WhoPill};
use crate::embed;
use crate::live::{Live, Wanted};
use crate::map::view::{MapSource, MapView};
use crate::page::{EmbedView, Page};
use crate::url_state;
use crate::views::balance::BalanceView;
use crate::views::detail::DetailPanel;
use crate::views::list::RequestList;
use crate::views::timeline::Timeline;
use crate::views::timeline::overview::clock;

/// Records of one window the page loads at most (the API pages them).
const WINDOW_CAP: usize = 100_000;
/// How long the record views wait for the stream's first snapshot before mounting without it.
const RECORD_VIEWS_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// The whole app: what the page may see decides what it shows. The live stream opens at once,
/// beside the access check rather than after it (its snapshot is most of a cold page's wait; the
/// server checks the stream's own access), and is closed if the page may see nothing.
#[component]
pub fn App() -> impl IntoView {
    let access = LocalResource::new(fetch_access);
    let live = Live::new();
    let early = !Page::get().frozen();
    if early {
        let service = url_state::param("service");
        live.subscribe(Wanted { filter: valid_url_filter(), service });
        crate::live::start(live);
    }
    move || match access.get() {
        None => view! { <p class="muted gate">"Opening podtap…"</p> }.into_any(),
        Some(Err(refused)) if refused.status != 0 => {
            live.stop();
            view! { <Gate refused=refused/> }.into_any()
        }
        Some(Err(unreachable)) => {
            live.stop();
            view! { <p class="hint gate" data-testid="unreachable">{format!("podtap did not answer: {}", unreachable.message)}</p> }.into_any()
        }
        Some(Ok(access)) => view! { <Shell access=access live=live streaming=early/> }.into_any(),
    }
}

/// The address's filter if it parses, else none (an invalid one is shown with its error, and
/// the page shows everything until it is mended).
fn valid_url_filter() -> String {
    let text = url_state::param("filter").unwrap_or_default();
    if Filter::parse(&text).is_ok() { text } else { String::new() }
}

/// The app for what `access` allows.
#[component]
fn Shell(access: Access, live: Live, streaming: bool) -> impl IntoView {
    let page = Page::get();
    // A saved session restores its view (where the address does not say otherwise) and shows
    // its own window; it has no stream.
    let session = access.session.clone().filter(|_| page.frozen());
    if let Some(s) = &session {
        url_state::restore(&s.view);
        url_state::restore(&[("from".to_string(), s.from.to_string()), ("to".to_string(), s.to.to_string())].into());
    }
    if session.is_none() && !streaming {
        crate::live::start(live);
    }

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
    let whole = session.as_ref().map(|s| Span { from: s.from, to: s.to });
    if whole.is_some() {
        // A session has no live view: "× live" returns to the whole session.
        Effect::new(move |_| {
            if window.get().is_none() {
                window.set(whole);
            }
        });
    }
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
    let map = MapSource { window: window.into(), windowed: last_window_map, live: live.map };
    let windowed_signal: Signal<Option<Vec<Record>>> = windowed.into();

    // The detail panel finds what the page holds before asking the server.
    let local = Callback::new(move |id: u64| {
        let find = |r: &Record| r.id == id;
        windowed
            .with_untracked(|w| w.as_ref().and_then(|w| w.iter().find(|r| find(r)).cloned()))
            .or_else(|| live.records.with_untracked(|all| all.iter().rev().find(|r| find(r)).cloned()))
    });

    let frozen = whole.is_some();
    let window_badge = move || {
        window.get().map(|w| {
            let (label, title) =
                if frozen { ("× whole", "back to the whole session") } else { ("× live", "back to the live view") };
            view! {
                <span class="pill window" data-testid="window">
                    {format!("window {} – {}", clock(w.from), clock(w.to))}
                    <button data-testid="window-live" on:click=move |_| window.set(None) title=title>{label}</button>
                </span>
            }
        })
    };
    let scope_badge = match (&session, &access.filter) {
        (Some(s), _) => Some(view! {
            <span class="pill session" data-testid="session" data-id=s.id.clone()
                title="a saved session: what was on screen when it was saved, whatever happened since">
                {format!("saved session · {} requests", s.requests)}
            </span>
        }.into_any()),
        (None, Some(f)) => Some(view! {
            <span class="pill session" data-testid="link-scope" title="this link shows the live view under this filter only">
                {format!("live link · {f}")}
            </span>
        }.into_any()),
        _ => None,
    };
    let allowed = access.embed_origins.clone();
    embed::listen(embed::Handles { filter: filter_text, window, selected }, allowed.clone());
    {
        let allowed = allowed.clone();
        Effect::new(move |_| {
            let id = selected.get();
            embed::selected(id, id.and_then(|id| local.run(id)).as_ref(), &allowed);
        });
    }
    let view_name = match page.embed {
        Some(EmbedView::Map) => "map",
        Some(EmbedView::Timeline) => "timeline",
        Some(EmbedView::Balance) => "balance",
        None => "app",
    };
    request_animation_frame({
        let (allowed, scope) = (allowed.clone(), access.scope.clone());
        move || embed::ready(view_name, &scope, &allowed)
    });
    let empty_map = Signal::derive(move || {
        let f = filter.get();
        if f.trim().is_empty() { "No traffic yet.".to_string() } else { format!("No traffic matches `{f}`.") }
    });

    let status = if frozen {
        view! { <span class="pill live" data-testid="status" data-state="session">"saved"</span> }.into_any()
    } else {
        view! { <StatusPill live=live/> }.into_any()
    };
    // A snapshot that came before the views hands its records over after their first frame.
    live.mounted();
    // The views of records (the timeline, the list) mount with the first snapshot's records, a
    // task after the map's first frame: mounting them first cost a cold page's map 0.1 s. Without
    // a stream, or if none comes soon, they mount at once / after RECORD_VIEWS_WAIT.
    let records_ready = RwSignal::new(frozen);
    Effect::new(move |_| {
        if live.settled.get() {
            records_ready.set(true);
        }
    });
    set_timeout(move || records_ready.set(true), RECORD_VIEWS_WAIT);
    if let Some(embedded) = page.embed {
        let body = match embedded {
            EmbedView::Map => view! {
                <MapView map=map empty=empty_map live=live filter=filter window=window.into() hide_probes=hide_probes service=service frozen=frozen/>
            }
            .into_any(),
            EmbedView::Balance => view! { <BalanceView live=live chosen=service window=window.into()/> }.into_any(),
            EmbedView::Timeline => view! {
                <Timeline live=live windowed=windowed_signal window=window filter=filter selected=selected hide_probes=hide_probes/>
            }
            .into_any(),
        };
        return view! {
            <div class="embed-bar">{status}{scope_badge}{window_badge}</div>
            <main class="embedded" data-testid="embed" data-view=view_name>{body}</main>
        }
        .into_any();
    }
    let who = access.whoami.clone();
    if crate::components::who::sees_nothing(&who) {
        return view! {
            <header>
                <h1>"podtap"</h1>
                <WhoPill who=who.clone()/>
            </header>
            <main><NoNamespace who=who/></main>
        }
        .into_any();
    }
    view! {
        <header>
            <h1>"podtap"</h1>
            <span class="source" data-testid="source">{move || live.source.get()}</span>
            {status}
            {scope_badge}
            <AgentsPill live=live/>
            {window_badge}
            <ShareMenu filter=filter window=window.into() can_share=access.can_share/>
            <WhoPill who=who/>
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
                <Show when=move || records_ready.get() fallback=|| view! { <div class="timeline-pending"></div> }>
                    <Timeline live=live windowed=windowed_signal window=window filter=filter selected=selected hide_probes=hide_probes/>
                </Show>
            </section>
            <section class="panel">
                <h2>"Service Map"</h2>
                <MapView map=map empty=empty_map live=live filter=filter window=window.into() hide_probes=hide_probes service=service frozen=frozen/>
            </section>
            <section class="panel">
                <h2>"Replica balance"</h2>
                <BalanceView live=live chosen=service window=window.into()/>
            </section>
            <section class="panel">
                <h2>"Requests"</h2>
                <Show when=move || records_ready.get()>
                    <RequestList live=live windowed=windowed_signal selected=selected filter=filter/>
                </Show>
            </section>
        </main>
        <DetailPanel selected=selected local=local/>
    }
    .into_any()
}
