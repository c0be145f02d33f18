//! Who a request's person is, from the identity sources configured (`--auth-proxy-*` so far;
//! a request carries at most one person), and what they see (`decide`). Separate from `Gate`,
//! which decides the admin token and links synchronously: naming a person may ask the API
//! server (RBAC) or an issuer's keys, so it is asynchronous.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderMap;

use super::decide::{Decider, Viewer};
use super::grant::{Grant, Refusal};
use super::who::{ProxyAuth, Who};

/// The identity sources and how people's sight is decided.
#[derive(Default)]
pub struct People {
    pub proxy: Option<ProxyAuth>,
    pub decider: Decider,
}

impl People {
    /// Whether any identity source is configured (then a request with no credentials is nobody,
    /// not the admin).
    pub fn configured(&self) -> bool {
        self.proxy.is_some()
    }

    /// The person the request names, if any; a refusal when it names one badly.
    pub fn who(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Option<Who>, Refusal> {
        match &self.proxy {
            Some(p) => p.who(headers, peer),
            None => Ok(None),
        }
    }

    /// The grant of a person: what they see among the cluster's `namespaces`.
    pub async fn grant(&self, who: Who, namespaces: &BTreeSet<String>) -> Grant {
        let viewer: Viewer = self.decider.viewer(who, namespaces).await;
        Grant::User(Arc::new(viewer))
    }
}
