//! Stage: who may see what. From what a request presents (the admin token as a bearer or its
//! signed cookie, a signed link) it decides what the request was granted, and for each route of
//! the API (and each page, by the route the page reads) which data that grant reads. Link
//! signing lives here too, and the rule for records (`rule`): what a viewer of some namespaces
//! sees of each record. Knows nothing of serving HTTP or of where sessions are stored: the
//! links it looks up come through `Links`, which the share's database implements; `publish` and
//! `share` use this stage, and it uses neither.

pub mod grant;
pub mod link;
pub mod rule;

pub use grant::{Credentials, Gate, Grant, LinkEntry, Links, Reads, Refusal, Route, page_route, reads};
pub use rule::{Sight, view};
