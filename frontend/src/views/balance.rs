//! Replica balance of one Service: per pod, the requests it answered and the connections they
//! came over, side by side — kube-proxy balances connections, not requests — with probes apart,
//! the skew and its cause in one sentence. The Service is picked from those on the map and kept
//! in the URL (`?service=ns/name`). DOM hook: `balance-row` with `data-pod`, `data-requests`,
//! `data-connections`; the sentence is `balance-cause`.

use leptos::prelude::*;
use podtap_shared::{Balance, EndpointBalance, EndpointKind, ServiceMap};

use crate::api::fetch_balance;
use crate::url_state;

/// The Services on the map, `ns/name`, sorted.
fn services(map: &ServiceMap) -> Vec<String> {
    let mut s: Vec<String> = map
        .nodes
        .iter()
        .filter(|n| n.kind == EndpointKind::Service)
        .filter_map(|n| n.id.strip_prefix("service:").map(str::to_string))
        .collect();
    s.sort();
    s
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// The balance panel.
#[component]
pub fn BalanceView(
    /// The current (unfiltered) map: which Services exist, and when to refresh.
    map: Signal<ServiceMap>,
) -> impl IntoView {
    let chosen = RwSignal::new(url_state::param("service"));
    let options = Memo::new(move |_| map.with(services));
    // Without a choice, the first Service on the map.
    let service = Signal::derive(move || chosen.get().or_else(|| options.with(|o| o.first().cloned())));
    let fetched = LocalResource::new(move || {
        let s = service.get();
        map.track();
        async move {
            match s {
                Some(s) => Some(fetch_balance(&s).await),
                None => None,
            }
        }
    });
    let balance = RwSignal::new(None::<Balance>);
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| match fetched.get().flatten() {
        Some(Ok(b)) => {
            balance.set(Some(b));
            error.set(None);
        }
        Some(Err(e)) => error.set(Some(e)),
        None => {}
    });
    let pick = move |ev| {
        let v = event_target_value(&ev);
        url_state::set_param("service", &v);
        chosen.set(Some(v));
    };
    view! {
        <div class="balance">
            <label>
                "Service "
                <select data-testid="balance-service" on:change=pick>
                    <For
                        each=move || options.get()
                        key=|s| s.clone()
                        children=move |s| {
                            let selected = { let s = s.clone(); move || service.get().as_deref() == Some(s.as_str()) };
                            view! { <option value=s.clone() selected=selected>{s.clone()}</option> }
                        }
                    />
                </select>
            </label>
            <p class="hint">{move || error.get()}</p>
            {move || balance.get().map(|b| view! { <BalanceTable balance=b/> })}
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
    let label = pod.clone();
    let per_conn = e.requests_per_connection.map_or("—".into(), |r| format!("{r:.1}"));
    let bar = |share: f64, class: &'static str| {
        view! { <span class=class style=format!("width: {:.1}%", share * 100.0)></span> }
    };
    view! {
        <tr data-testid="balance-row" data-pod=pod data-requests=e.requests.to_string()
            data-connections=e.connections.to_string() data-probes=e.probe_requests.to_string()>
            <td>{label}</td>
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
