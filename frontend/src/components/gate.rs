//! What the page shows when it may show nothing: a sign-in form when podtap needs its token
//! (the token is posted once and becomes a cookie; it never goes into an address), and a plain
//! sentence when a link grants nothing (tampered or revoked: 403; expired: 410). Never a spinner
//! that retries forever; where podtap offers OpenID Connect, a button to the organisation's
//! sign-in first. DOM hooks: `sign-in` (with `sign-in-token`, `sign-in-oidc`), `link-refused`.

use leptos::prelude::*;

use crate::api::Refused;
use crate::page::Page;

/// The page for a request that was refused.
#[component]
pub fn Gate(refused: Refused) -> impl IntoView {
    let page = Page::get();
    if refused.status == 401 {
        let location = web_sys::window().map(|w| w.location());
        let next = location
            .map(|l| format!("{}{}", l.pathname().unwrap_or_default(), l.search().unwrap_or_default()))
            .unwrap_or_else(|| page.base.clone());
        let action = format!("{}api/v1/login", page.base);
        // Signing in with the organisation's identity, when podtap offers it; the token stays
        // below it, for the admin.
        let organisation = refused.sign_in.clone().map(|path| {
            let href = format!("{}{path}?next={}", page.base, crate::api::encode(&next));
            view! {
                <p><a class="button primary" href=href data-testid="sign-in-oidc">"Sign in with your organisation"</a></p>
                <p class="muted" data-testid="sign-in-reason">{refused.message.clone()}</p>
                <p class="muted">"Or, as podtap's admin, with its token:"</p>
            }
        });
        let intro = refused.sign_in.is_none().then_some(view! {
            <p>"This podtap was started with a token, and this browser has not signed in. Paste the token, or open the address podtap printed at start. With a share link, open that link instead: it needs no token."</p>
        });
        return view! {
            <section class="gate panel" data-testid="sign-in">
                <h1>"Sign in to podtap"</h1>
                {organisation}
                {intro}
                <form method="post" action=action>
                    <label>"Token " <input name="token" type="password" autocomplete="current-password" required data-testid="sign-in-token"/></label>
                    <input type="hidden" name="next" value=next/>
                    <button data-testid="sign-in-submit">"Sign in"</button>
                </form>
                <p class="muted">"The token becomes a cookie this browser keeps for 7 days; it never stays in an address."</p>
            </section>
        }
        .into_any();
    }
    let title = if refused.status == 410 { "This link has expired" } else { "This link does not open anything" };
    view! {
        <section class="gate panel" data-testid="link-refused" data-status=refused.status.to_string()>
            <h1>{title}</h1>
            <p>{refused.message}</p>
            <p class="muted">"Ask whoever shared it for a new link."</p>
        </section>
    }
    .into_any()
}
