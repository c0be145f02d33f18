//! Replica balance of one Service: per pod, the requests it answered and the connections they
//! came over, side by side — kube-proxy balances connections, not requests — with probes apart,
//! the skew and its cause in one sentence. The picker lists every Service most skewed first, can be
//! searched, starts on the most skewed one and never switches by itself; the choice is kept in the
//! URL (`?service=ns/name`), and one nobody knows is said to be unknown. Live, the numbers come
//! with the stream; for a chosen window, from the API. DOM hooks: `balance-service` (the select),
//! `balance-search`, `balance-row` with `data-pod`, `data-requests`, `data-connections`; the
//! sentence is `balance-cause`.

use std::time::Duration;

use leptos::prelude::*;
use podtap_shared::{Balance, EndpointBalance};

use crate::api::{Span, fetch_balance, fetch_services};
use crate::components::term::Term;
use crate::live::Live;

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// The balance panel.
#[component]
pub fn BalanceView(
    live: Live,
    /// The chosen Service, `ns/name` (from the URL, or the most skewed once known).
    chosen: RwSignal<Option<String>>,
    window: Signal<Option<Span>>,
) -> impl IntoView {
    let refresh = crate::components::ticker::ticker(Duration::from_secs(5));
    let listed = LocalResource::new(move || {
        let w = window.get();
        if w.is_none() {
            refresh.track();
        }
        async move { fetch_services(w).await }
    });
    let services = RwSignal::new(Vec::<Balance>::new());
    Effect::new(move |_| {
        if let Some(Ok(list)) = listed.get() {
            // The first time Services are known, the most skewed one is shown; never again by itself.
            if chosen.get_untracked().is_none()
                && let Some(first) = list.first()
            {
                chosen.set(Some(first.service.clone()));
            }
            services.set(list);
        }
    });
    let search = RwSignal::new(String::new());
    let options = Memo::new(move |_| {
        let needle = search.get().to_ascii_lowercase();
        services.with(|all| {
            all.iter()
                .filter(|b| needle.is_empty() || b.service.to_ascii_lowercase().contains(&needle))
                .map(|b| (b.service.clone(), b.skew))
                .collect::<Vec<_>>()
        })
    });
    // A window's balance from the API; live, the stream's (the API until the stream's first).
    let fetched = LocalResource::new(move || {
        let (s, w) = (chosen.get(), window.get());
        if w.is_none() {
            refresh.track();
        }
        async move {
            match s {
                Some(s) => Some(fetch_balance(&s, w).await),
                None => None,
            }
        }
    });
    let shown = Signal::derive(move || {
        let streamed = live.balance.get().filter(|b| Some(&b.service) == chosen.get().as_ref());
        match (window.get(), streamed) {
            (None, Some(b)) => Some(Ok(b)),
            _ => fetched.get().flatten(),
        }
    });
    let pick = move |ev| {
        let v = event_target_value(&ev);
        crate::url_state::set_param("service", &v);
        chosen.set(Some(v));
    };
    let unknown = move || {
        let c = chosen.get()?;
        let known = services.with(|s| s.iter().any(|b| b.service == c));
        (!known && matches!(shown.get(), Some(Err(_)) | None)).then(|| {
            format!("Service {c} is unknown: neither the cluster state nor the traffic in this window knows it.")
        })
    };
    view! {
        <div class="balance">
            <label>
                "Service "
                <input type="search" class="balance-search" data-testid="balance-search" placeholder="search…"
                    prop:value=move || search.get() on:input=move |ev| search.set(event_target_value(&ev))/>
                <select data-testid="balance-service" on:change=pick>
                    {move || {
                        let c = chosen.get();
                        let mut opts = options.get();
                        // The chosen one stays listed (and selectable) even if the search hides it.
                        if let Some(c) = &c
                            && !opts.iter().any(|(s, _)| s == c)
                        {
                            opts.insert(0, (c.clone(), f64::NAN));
                        }
                        opts.into_iter()
                            .map(|(s, skew)| {
                                let label = if skew.is_nan() { format!("{s} (unknown)") } else { format!("{s} · skew {skew:.2}") };
                                let selected = c.as_deref() == Some(s.as_str());
                                view! { <option value=s.clone() selected=selected>{label}</option> }
                            })
                            .collect::<Vec<_>>()
                    }}
                </select>
            </label>
            <p class="hint" data-testid="balance-unknown">{unknown}</p>
            {move || match shown.get() {
                Some(Ok(b)) => view! { <BalanceTable balance=b/> }.into_any(),
                Some(Err(e)) if unknown().is_none() => view! { <p class="hint">{e}</p> }.into_any(),
                _ => ().into_any(),
            }}
        </div>
    }
}

#[component]
fn BalanceTable(balance: Balance) -> impl IntoView {
    let summary = format!(
        "{} requests over {} connections · skew {:.2}{}",
        balance.requests,
        balance.connections,
        balance.skew,
        if balance.probe_requests > 0 {
            format!(" · {} probe requests apart", balance.probe_requests)
        } else {
            String::new()
        }
    );
    let cause = balance.cause.clone().unwrap_or_else(|| "Requests are spread evenly.".into());
    let skewed = if balance.cause.is_some() { "cause skewed" } else { "cause" };
    view! {
        <p class="summary">{summary}</p>
        <p class=skewed data-testid="balance-cause">{cause}</p>
        <table class="balance-table">
            <thead>
                <tr>
                    <th>"pod"</th><th class="num">"requests"</th><th class="num">"connections"</th>
                    <th class="num">"req/conn"</th><th>"share of requests · of connections"</th><th class="num">"probes"</th>
                </tr>
            </thead>
            <tbody>
                {balance.endpoints.into_iter().map(|e| view! { <Row endpoint=e/> }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn Row(endpoint: EndpointBalance) -> impl IntoView {
    let e = endpoint;
    let pod = e.pod.clone().unwrap_or_else(|| e.ip.to_string());
    let short = pod.rsplit('/').next().unwrap_or(&pod).to_string();
    let label = pod.clone();
    let per_conn = e.requests_per_connection.map_or("—".into(), |r| format!("{r:.1}"));
    let bar = |share: f64, class: &'static str| {
        view! { <span class=class style=format!("width: {:.1}%", share * 100.0)></span> }
    };
    view! {
        <tr data-testid="balance-row" data-pod=pod.clone() data-requests=e.requests.to_string()
            data-connections=e.connections.to_string() data-probes=e.probe_requests.to_string()>
            <td><Term text=label term=format!("pod:{short}")/></td>
            <td class="num">{e.requests}</td>
            <td class="num">{e.connections}</td>
            <td class="num">{per_conn}</td>
            <td class="shares">
                <div class="bar">{bar(e.share_of_requests, "requests")}</div>
                <div class="bar">{bar(e.share_of_connections, "connections")}</div>
                <span class="share-text">{percent(e.share_of_requests)} " · " {percent(e.share_of_connections)}</span>
            </td>
            <td class="num">{e.probe_requests}</td>
        </tr>
    }
}
