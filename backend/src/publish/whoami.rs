//! `GET /api/v1/whoami`: who the request is, how they proved it, their groups, the namespaces
//! they see (or all) and why — what the page's header shows, and what a person asks when they
//! see less than they expected.

use axum::extract::State;
use axum::{Extension, Json};
use podtap_shared::WhoAmI;

use super::AppState;
use crate::access::{Grant, Sight};

/// The answer for a grant.
pub fn of(state: &AppState, grant: &Grant) -> WhoAmI {
    let (namespaces, unnamespaced) = match grant.sight() {
        Sight::All => (None, true),
        Sight::Namespaces { names, unnamespaced } => (Some(names.into_iter().collect()), unnamespaced),
    };
    match grant {
        Grant::Admin => {
            let open = state.token.is_none();
            WhoAmI {
                source: if open { "none" } else { "token" }.into(),
                admin: true,
                why: vec![if open {
                    "podtap has no token and no sign-in configured: whoever reaches it is the admin".into()
                } else {
                    "the admin token (break-glass): sees and manages everything".into()
                }],
                unnamespaced,
                ..WhoAmI::default()
            }
        }
        Grant::User(v) => WhoAmI {
            user: Some(v.who.user.clone()),
            source: v.who.source.as_str().into(),
            groups: v.who.groups.clone(),
            namespaces,
            unnamespaced,
            admin: v.admin,
            why: v.why.clone(),
            expires: v.expires_s,
        },
        Grant::Session { id, expires_s } => WhoAmI {
            source: "link".into(),
            why: vec![format!("a link to saved session {id}: its records, as whoever saved it saw them")],
            expires: Some(*expires_s),
            ..WhoAmI::default()
        },
        Grant::Live { filter, expires_s, sight, .. } => WhoAmI {
            source: "link".into(),
            namespaces,
            unnamespaced,
            why: vec![format!(
                "a link to the live view under `{filter}`, showing {} (what its creator saw)",
                sight.describe()
            )],
            expires: Some(*expires_s),
            ..WhoAmI::default()
        },
    }
}

pub async fn whoami(State(state): State<AppState>, Extension(grant): Extension<Grant>) -> Json<WhoAmI> {
    Json(of(&state, &grant))
}
