//! Who a request is, when a person (not a link): a user name and groups, and where they came
//! from. A trusted authenticating proxy in front of podtap (oauth2-proxy, an ingress's external
//! auth, Pomerium…) says so in request headers, believed only from the proxy's addresses
//! (`--auth-proxy-from`); a header from anywhere else is refused, never ignored, so a
//! misconfigured route is found at once instead of serving strangers as nobody.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use super::grant::Refusal;

/// How a person proved who they are (the admin token and links are not people: `Grant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A trusted authenticating proxy's headers.
    Proxy,
    /// A bearer JWT, verified against a JWKS.
    Jwt,
    /// An OpenID Connect sign-in (a server-side session).
    Oidc,
}

impl Source {
    /// As `whoami` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Proxy => "proxy",
            Source::Jwt => "jwt",
            Source::Oidc => "oidc",
        }
    }
}

/// A person, as their identity source names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub user: String,
    pub groups: Vec<String>,
    pub source: Source,
}

/// The trusted proxy: which headers name the user and their groups, and from where.
#[derive(Clone, Debug)]
pub struct ProxyAuth {
    pub user_header: HeaderName,
    pub groups_header: Option<HeaderName>,
    pub from: Vec<IpNet>,
}

impl ProxyAuth {
    /// The user the proxy names, if the request carries the header: `Ok(None)` without it, a
    /// refusal when it came from an address that is not the proxy's (or is unreadable).
    pub fn who(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Option<Who>, Refusal> {
        let Some(value) = headers.get(&self.user_header) else { return Ok(None) };
        let trusted = peer.is_some_and(|p| self.from.iter().any(|net| net.contains(&p)));
        if !trusted {
            let from = peer.map_or_else(|| "an unknown address".to_string(), |p| p.to_string());
            return Err(Refusal::Forbidden(format!(
                "{} came from {from}, which is not a trusted authenticating proxy (--auth-proxy-from)",
                self.user_header
            )));
        }
        let user = value.to_str().map(str::trim).unwrap_or("");
        if user.is_empty() {
            return Err(Refusal::Forbidden(format!("{} names no user", self.user_header)));
        }
        // Several headers (Kubernetes' X-Remote-Group style) or one comma-separated list.
        let groups = match &self.groups_header {
            Some(name) => headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        Ok(Some(Who { user: user.to_string(), groups, source: Source::Proxy }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy() -> ProxyAuth {
        ProxyAuth {
            user_header: HeaderName::from_static("x-forwarded-user"),
            groups_header: Some(HeaderName::from_static("x-forwarded-groups")),
            from: vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_proxy_is_believed_from_its_addresses_only_and_refused_elsewhere() {
        let p = proxy();
        let h = headers(&[
            ("x-forwarded-user", "alice"),
            ("x-forwarded-groups", "dev, team-a"),
            ("x-forwarded-groups", "ops"),
        ]);
        let who = p.who(&h, Some("10.1.2.3".parse().unwrap())).unwrap().unwrap();
        assert_eq!((who.user.as_str(), who.groups), ("alice", vec!["dev".to_string(), "team-a".into(), "ops".into()]));
        let refused = p.who(&h, Some("192.0.2.9".parse().unwrap())).unwrap_err();
        assert!(refused.to_string().contains("192.0.2.9"), "{refused}");
        assert!(p.who(&h, None).is_err());
        assert_eq!(p.who(&HeaderMap::new(), Some("192.0.2.9".parse().unwrap())), Ok(None));
        assert!(p.who(&headers(&[("x-forwarded-user", " ")]), Some("127.0.0.1".parse().unwrap())).is_err());
    }
}
