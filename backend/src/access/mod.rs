//! Stage: who may see what. From what a request presents (the admin token as a bearer or its
//! signed cookie, a signed link, a person named by an identity source: `who`, `people`, with
//! their namespaces from the scopes file and RBAC: `scopes`, `decide`) it decides what the
//! request was granted, and for each route of
//! the API (and each page, by the route the page reads) which data that grant reads. Link
//! signing lives here too, and the rule for records (`rule`): what a viewer of some namespaces
//! sees of each record. Knows nothing of serving HTTP or of where sessions are stored: the
//! links it looks up come through `Links`, which the share's database implements; `publish` and
//! `share` use this stage, and it uses neither.

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
