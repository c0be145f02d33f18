//! Sharing what is on screen: save the window as a session and get a signed link to it, or a
//! link to the live view under the current filter; the HTML to embed either in a portal; and
//! downloads of the window (pcapng, HAR, JSON lines), saying first when packets have aged out.
//! Saving, links and the saved sessions' list (a new link, delete) are the admin's; anyone who
//! can see the data can download it. DOM hooks: `share`, `share-ttl`, `share-title`,
//! `save-session`, `live-link`, `share-url`, `embed-code`, `session-row` (`session-link`,
//! `session-delete`), `export-pcapng`, `export-har`, `export-jsonl`, `packets-note`.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{
    Span, delete_session, export_query, export_url, fetch_packets, fetch_sessions, link_session, make_live_link,
    save_session,
};
use crate::url_state;
use crate::views::timeline::overview::clock;

/// How long a new link lasts.
const TTLS: [(&str, u64); 4] = [("1 hour", 3600), ("1 day", 86_400), ("7 days", 604_800), ("30 days", 2_592_000)];

fn absolute(path: &str) -> String {
    let origin = web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default();
    format!("{origin}{path}")
}

/// The embed URL of a link's map: `…/embed/map?session=…` for a session's link (`/s/{id}`),
/// `…/embed/map?link=…` for a live link's (`/l/{id}`), with its `exp` and `sig`.
fn embed_of(url: &str, base: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let id = path.rsplit('/').next().unwrap_or("");
    let key = if path.contains("/s/") { "session" } else { "link" };
    absolute(&format!("{base}embed/map?{key}={id}&{query}"))
}

#[component]
pub fn ShareMenu(
    filter: Signal<String>,
    window: Signal<Option<Span>>,
    /// The admin may save sessions and make links.
    can_share: bool,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let ttl = RwSignal::new(604_800u64);
    let made = RwSignal::new(None::<Result<String, String>>);
    let busy = RwSignal::new(false);
    let title = RwSignal::new(String::new());
    // Bumped when the saved sessions change (saved, deleted): the list is fetched again.
    let saved = RwSignal::new(0u32);
    let base = StoredValue::new(crate::page::Page::get().base);
    let save = move |_| {
        busy.set(true);
        let (f, w, t, name) =
            (filter.get_untracked(), window.get_untracked(), ttl.get_untracked(), title.get_untracked());
        spawn_local(async move {
            made.set(Some(save_session(w, &f, &url_state::all(), t, &name).await.map(|l| l.url)));
            busy.set(false);
            saved.update(|n| *n += 1);
        });
    };
    let live = move |_| {
        busy.set(true);
        let (f, t) = (filter.get_untracked(), ttl.get_untracked());
        spawn_local(async move {
            made.set(Some(make_live_link(&f, t).await.map(|l| l.url)));
            busy.set(false);
        });
    };
    let query = Signal::derive(move || export_query(&filter.get(), window.get(), None));
    let packets = LocalResource::new(move || {
        let (q, shown) = (query.get(), open.get());
        async move { if shown { fetch_packets(&q).await.ok() } else { None } }
    });
    let note = move || {
        packets.get().flatten().map(|p| match (p.retained, p.aged_out, p.frames) {
            (false, _, _) => "This podtap keeps no packets: the pcapng export is empty.".to_string(),
            (true, true, 0) => "The packets of these connections have aged out.".to_string(),
            (true, true, n) => format!("{n} packets are kept; some of these connections' packets have aged out."),
            (true, false, n) => format!("{n} packets of {} connections are kept.", p.connections),
        })
    };
    let sessions = LocalResource::new(move || {
        let shown = open.get() && can_share;
        saved.track();
        async move { if shown { fetch_sessions().await.ok() } else { None } }
    });
    let session_rows = move || {
        sessions.get().flatten().map(|all| {
            all.into_iter()
                .rev()
                .map(|m| {
                    let id = StoredValue::new(m.id.clone());
                    let name = if m.title.is_empty() { format!("{} – {}", clock(m.from), clock(m.to)) } else { m.title.clone() };
                    let reopen = move |_| {
                        let t = ttl.get_untracked();
                        spawn_local(async move { made.set(Some(link_session(&id.get_value(), t).await.map(|l| l.url))) });
                    };
                    let remove = move |_| {
                        spawn_local(async move {
                            if let Err(e) = delete_session(&id.get_value()).await {
                                made.set(Some(Err(e)));
                            }
                            saved.update(|n| *n += 1);
                        });
                    };
                    view! {
                        <li data-testid="session-row" data-id=m.id.clone()>
                            <span>{name}</span>
                            <span class="muted">{format!(" {} requests ", m.requests)}</span>
                            <button data-testid="session-link" on:click=reopen title="a new link to it">"link"</button>
                            <button data-testid="session-delete" on:click=remove title="delete it: its links stop working">"delete"</button>
                        </li>
                    }
                })
                .collect_view()
        })
    };
    let result = move || {
        made.get().map(|r| match r {
            Ok(url) => {
                let full = absolute(&url);
                let embed = format!(
                    "<iframe src=\"{}\" width=\"900\" height=\"600\" style=\"border:0\"></iframe>",
                    embed_of(&url, &base.get_value())
                );
                let copied = RwSignal::new(false);
                let text = full.clone();
                let copy = move |_| {
                    if let Some(w) = web_sys::window() {
                        let _ = w.navigator().clipboard().write_text(&text);
                        copied.set(true);
                    }
                };
                view! {
                    <label>"Link " <input readonly data-testid="share-url" value=full.clone() on:focus=|e| select_all(&e)/></label>
                    <button data-testid="share-copy" on:click=copy>{move || if copied.get() { "copied" } else { "copy link" }}</button>
                    <label>"Embed " <textarea readonly data-testid="embed-code" rows="2">{embed}</textarea></label>
                }
                .into_any()
            }
            Err(e) => view! { <p class="hint" data-testid="share-error">{e}</p> }.into_any(),
        })
    };
    view! {
        <span class="share">
            <button data-testid="share" on:click=move |_| open.update(|o| *o = !*o)>{if can_share { "Share" } else { "Export" }}</button>
            <Show when=move || open.get()>
                <div class="share-menu panel">
                    <Show when=move || can_share>
                        <label>"Valid for "
                            <select data-testid="share-ttl" on:change=move |e| ttl.set(event_target_value(&e).parse().unwrap_or(604_800))>
                                {TTLS.iter().map(|(label, s)| view! { <option value=s.to_string() selected=*s == 604_800>{*label}</option> }).collect_view()}
                            </select>
                        </label>
                        <label>"Title " <input data-testid="share-title" placeholder="optional"
                            prop:value=move || title.get() on:input=move |e| title.set(event_target_value(&e))/></label>
                        <div class="row">
                            <button data-testid="save-session" disabled=move || busy.get() on:click=save
                                title="freeze what is on screen: its records, connections, names and packets">"Save session"</button>
                            <button data-testid="live-link" disabled=move || busy.get() on:click=live
                                title="the live view under this filter; the holder cannot widen it">"Live link"</button>
                        </div>
                        {result}
                        <details class="saved">
                            <summary>"Saved sessions"</summary>
                            <ul class="sessions">{session_rows}</ul>
                        </details>
                    </Show>
                    <div class="row">
                        "Download: "
                        <a data-testid="export-pcapng" href=move || export_url("pcapng", &query.get()) download>"pcapng"</a>
                        <a data-testid="export-har" href=move || export_url("har", &query.get()) download>"HAR"</a>
                        <a data-testid="export-jsonl" href=move || export_url("jsonl", &query.get()) download>"JSON lines"</a>
                    </div>
                    <p class="muted" data-testid="packets-note">{note}</p>
                </div>
            </Show>
        </span>
    }
}

fn select_all(e: &leptos::ev::FocusEvent) {
    use wasm_bindgen::JsCast;
    if let Some(input) = e.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) {
        input.select();
    }
}
