//! Who is looking, in the header: a signed-in person's name and the namespaces they see (why, on
//! hover), and a sign-out; and, for a person who sees no namespace, the sentence that says so
//! instead of an empty page. DOM hooks: `whoami` (`data-user`), `sign-out`, `no-namespace`.

use leptos::prelude::*;
use podtap_shared::WhoAmI;

use crate::page::Page;

/// The namespaces seen, in words.
fn scope(who: &WhoAmI) -> String {
    match &who.namespaces {
        None => "every namespace".into(),
        Some(n) if n.is_empty() && who.unnamespaced => "traffic with no namespace".into(),
        Some(n) if n.is_empty() => "no namespace".into(),
        Some(n) => n.join(", "),
    }
}

/// Whether the person sees nothing at all.
pub fn sees_nothing(who: &WhoAmI) -> bool {
    who.namespaces.as_ref().is_some_and(Vec::is_empty) && !who.unnamespaced && who.user.is_some()
}

#[component]
pub fn WhoPill(who: WhoAmI) -> impl IntoView {
    let user = who.user.clone()?;
    let action = format!("{}api/v1/logout", Page::get().base);
    Some(view! {
        <span class="pill who" data-testid="whoami" data-user=user.clone() title=who.why.join("\n")>
            {format!("{user} · {}", scope(&who))}
            <form method="post" action=action class="inline">
                <button data-testid="sign-out">"sign out"</button>
            </form>
        </span>
    })
}

/// What a person who sees no namespace is shown.
#[component]
pub fn NoNamespace(who: WhoAmI) -> impl IntoView {
    view! {
        <section class="panel gate" data-testid="no-namespace">
            <h2>"You may not see any namespace's traffic"</h2>
            <p>{format!("podtap shows {} the traffic of the namespaces Kubernetes lets them see, and none is granted to them.", who.user.unwrap_or_default())}</p>
            <ul>{who.why.into_iter().map(|w| view! { <li>{w}</li> }).collect::<Vec<_>>()}</ul>
            <p class="muted">"Ask your cluster's admins for a RoleBinding to the ClusterRole podtap-traffic-viewer in your namespace, then reload this page."</p>
        </section>
    }
}
