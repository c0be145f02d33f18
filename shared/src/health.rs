//! How complete podtap's picture is, as the browser shows it: the Kubernetes kinds it could not
//! list (RBAC, an API group the server lacks) and what each costs the user.

use serde::{Deserialize, Serialize};

/// One kind podtap could not list everywhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingKind {
    /// The resource, as kubectl names it: `pods`, `jobs`, `endpointslices`, …
    pub kind: String,
    /// Why, in a few words: "forbidden (403)", "not served by this API server (404)", "listed
    /// only in namespaces default, shop", or the error the server gave.
    pub reason: String,
    /// What the user loses, in one sentence.
    pub effect: String,
}
