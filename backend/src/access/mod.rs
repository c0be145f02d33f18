//! Stage: who may see what. From what a request presents — the admin token as a bearer or its
//! signed cookie, a signed link, or a person named by an identity source (`who`: a trusted
//! proxy's headers; `jwt`: a bearer token; `oidc`, `signin`: an OpenID Connect sign-in kept
//! server-side; `people` asks them in turn) — it decides what the request was granted (`grant`),
//! what a person sees (`decide`: admin groups, the scopes file `scopes`, RBAC through a
//! `Reviewer`), and for each route of the API (and each page, by the route the page reads) which
//! data that grant reads. The rule for records is here (`rule`: what a viewer of some namespaces
//! sees of each record), link signing (`link`) and the audit log (`audit`). It knows nothing of
//! serving HTTP or of where sessions and sign-ins are stored: those come through `Links` and
//! `SignIns`, which the share's database implements; `publish` and `share` use this stage, and it
//! uses neither.

pub mod audit;
pub mod decide;
pub mod grant;
pub mod jwt;
pub mod link;
pub mod oidc;
pub mod people;
pub mod rule;
pub mod scopes;
pub mod signin;
pub mod who;

pub use decide::{Decider, Viewer};
pub use grant::{Credentials, Gate, Grant, LinkEntry, Links, Reads, Refusal, Route, page_route, reads};
pub use people::People;
pub use rule::{Sight, sees, view};
pub use who::{Source, Who};
