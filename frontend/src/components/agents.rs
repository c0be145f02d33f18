//! `podtap hub`: every node's agent in the header, so a node whose traffic is missing is seen to
//! be missing. A pill says how many are connected; opened, one row per node: connected or since
//! when it is away, how far behind, its clock offset, what it buffered and dropped, the kernel's
//! drops, and its outages.

use leptos::prelude::*;
use podtap_shared::AgentStatus;

use crate::live::Live;
use crate::views::list::clock;

fn state(a: &AgentStatus) -> String {
    match (&a.refused, a.connected, a.sessions) {
        (Some(why), ..) => format!("refused: {why}"),
        (None, true, _) => "connected".into(),
        (None, false, 0) => "no agent has connected".into(),
        (None, false, _) => format!("away since {}", clock(a.since_us)),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.0} ms"))
}

/// Whatever is wrong with an agent, in a few words; empty when nothing is.
fn trouble(a: &AgentStatus) -> String {
    let mut t = Vec::new();
    if a.dropped_observations > 0 {
        t.push(format!("{} observations dropped", a.dropped_observations));
    }
    if a.kernel_drops > 0 {
        t.push(format!("{} packets dropped by the kernel", a.kernel_drops));
    }
    if a.reassembly_gaps > 0 {
        t.push(format!("{} gaps in TCP streams", a.reassembly_gaps));
    }
    let away: Vec<String> = a
        .outages
        .iter()
        .map(|o| match o.to_us {
            Some(to) => format!("{}–{}", clock(o.from_us), clock(to)),
            None => format!("since {}", clock(o.from_us)),
        })
        .collect();
    if !away.is_empty() && a.sessions > 0 {
        t.push(format!("not seen {}", away.join(", ")));
    }
    t.join("; ")
}

#[component]
pub fn AgentsPill(live: Live) -> impl IntoView {
    let agents = live.agents;
    let connected = move || agents.with(|a| a.iter().filter(|a| a.connected).count());
    let total = move || agents.with(Vec::len);
    let healthy = move || agents.with(|a| a.iter().all(|a| a.connected && trouble(a).is_empty()));
    view! {
        <Show when=move || { total() > 0 }>
            <details class="agents" data-testid="agents" data-connected=connected data-total=total>
                <summary class=move || if healthy() { "pill live" } else { "pill warn" }>
                    {move || format!("agents {}/{}", connected(), total())}
                </summary>
                <table class="agents-table">
                    <thead><tr>
                        <th>"node"</th><th>"state"</th><th>"lag"</th><th>"clock offset"</th>
                        <th>"buffered"</th><th>"what is missing"</th>
                    </tr></thead>
                    <tbody>
                        {move || agents.get().into_iter().map(|a| {
                            let row_class = if a.connected && trouble(&a).is_empty() { "" } else { "warn" };
                            view! {
                                <tr data-testid="agent-row" data-node=a.node.clone()
                                    data-connected=a.connected.to_string() class=row_class>
                                    <td>{a.node.clone()}</td>
                                    <td>{state(&a)}</td>
                                    <td>{ms(a.lag_ms)}</td>
                                    <td>{ms(a.clock_offset_ms)}</td>
                                    <td>{format!("{} KiB", a.buffered_bytes / 1024)}</td>
                                    <td>{trouble(&a)}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </details>
        </Show>
    }
}
