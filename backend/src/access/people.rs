//! Who a request's person is, from the identity sources configured — a trusted proxy's headers
//! (`who`), a bearer JWT (`jwt`), an OpenID Connect sign-in's cookie (`oidc`, `signin`); a request
//! names at most one person, asked in that order — and what they see (`decide`). Separate from
//! `Gate`, which decides the admin token and links synchronously: naming a person may ask an
//! issuer or the API server, so it is asynchronous.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, header};

use super::decide::{Decider, Viewer};
use super::grant::{Grant, Refusal, cookie};
use super::jwt::{TokenCheck, looks_like_jwt};
use super::oidc::Oidc;
use super::signin::{Lifetimes, SIGNIN_COOKIE, SignIns, check};
use super::who::{ProxyAuth, Who};

/// The identity sources and how people's sight is decided.
#[derive(Default)]
pub struct People {
    pub proxy: Option<ProxyAuth>,
    pub jwt: Option<TokenCheck>,
    pub oidc: Option<Oidc>,
    pub signins: Option<Arc<dyn SignIns>>,
    pub lifetimes: Lifetimes,
    pub decider: Decider,
}

/// A person, and when what named them ends (an ID token's sign-in).
pub struct Named {
    pub who: Who,
    pub expires_s: Option<u64>,
    pub signin: Option<String>,
}

impl People {
    /// Whether any identity source is configured (then a request with no credentials is nobody,
    /// not the admin).
    pub fn configured(&self) -> bool {
        self.proxy.is_some() || self.jwt.is_some() || self.oidc.is_some()
    }

    /// The person the request names, if any; a refusal when it names one badly.
    pub async fn who(&self, headers: &HeaderMap, peer: Option<IpAddr>, now_s: u64) -> Result<Option<Named>, Refusal> {
        if let Some(p) = &self.proxy
            && let Some(who) = p.who(headers, peer)?
        {
            return Ok(Some(Named { who, expires_s: None, signin: None }));
        }
        let bearer =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if let (Some(check), Some(token)) = (&self.jwt, bearer.filter(|b| looks_like_jwt(b))) {
            return Ok(Some(Named { who: check.bearer(token).await?, expires_s: None, signin: None }));
        }
        if let (Some(oidc), Some(store), Some(id)) = (&self.oidc, &self.signins, cookie(headers, SIGNIN_COOKIE)) {
            let (who, s) = check(store.as_ref(), oidc, self.lifetimes, id, now_s).await?;
            let expires = (s.created_s + self.lifetimes.max.as_secs()).min(s.seen_s + self.lifetimes.idle.as_secs());
            return Ok(Some(Named { who, expires_s: Some(expires), signin: Some(s.id) }));
        }
        Ok(None)
    }

    /// The grant of a person: what they see among the cluster's `namespaces` (listed only if
    /// RBAC is to be asked about them one by one).
    pub async fn grant(&self, named: Named, namespaces: impl FnOnce() -> BTreeSet<String>) -> Grant {
        let mut viewer: Viewer = self.decider.viewer(named.who, namespaces).await;
        (viewer.expires_s, viewer.signin) = (named.expires_s, named.signin);
        Grant::User(Arc::new(viewer))
    }
}
