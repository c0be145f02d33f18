//! Flags of sign-in and scope, the same for `serve` and `hub`: the identity sources (a trusted
//! authenticating proxy so far), the static scopes file, and the groups that are admins or see
//! traffic with no namespace. Validated into `access::People`'s parts.

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::http::HeaderName;
use ipnet::IpNet;

use super::ConfigError;
use crate::access::scopes::Scopes;
use crate::access::who::ProxyAuth;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// A trusted authenticating proxy in front of podtap names the user in this header
    /// (e.g. X-Forwarded-User); believed only from --auth-proxy-from, refused from elsewhere.
    #[arg(long, value_name = "HEADER")]
    pub auth_proxy_user_header: Option<String>,
    /// The header the proxy lists the user's groups in (repeated, or comma-separated).
    #[arg(long, value_name = "HEADER")]
    pub auth_proxy_groups_header: Option<String>,
    /// The proxy's addresses (CIDR): the user header is accepted from these only.
    #[arg(long, value_name = "CIDR", num_args = 1.., value_delimiter = ',')]
    pub auth_proxy_from: Vec<String>,
    /// Namespaces people see besides what RBAC grants: YAML
    /// `{groups: {NAME: [NAMESPACE, …]}, users: {NAME: [NAMESPACE, …]}}`, "*" for all.
    #[arg(long, value_name = "FILE")]
    pub scopes: Option<PathBuf>,
    /// Members of these groups are admins: they see everything and manage every session, link
    /// and sign-in (the token stays the break-glass admin).
    #[arg(long = "admin-group", value_name = "GROUP", num_args = 1..)]
    pub admin_groups: Vec<String>,
    /// Members of these groups also see traffic with no namespace on either side (nodes, host
    /// network, the outside); everyone else but admins does not.
    #[arg(long = "unnamespaced-group", value_name = "GROUP", num_args = 1..)]
    pub unnamespaced_groups: Vec<String>,
    /// What RBAC must allow a person in a namespace for them to see its traffic (asked with a
    /// SubjectAccessReview when podtap watches an API server): `VERB RESOURCE[.GROUP]`.
    #[arg(long, value_name = "VERB RESOURCE", default_value = "get traffic.podtap.io")]
    pub rbac_rule: String,
    /// Do not ask RBAC: people see what the scopes file grants them, nothing more.
    #[arg(long)]
    pub no_rbac: bool,
}

/// Validated sign-in and scope flags.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub proxy: Option<ProxyAuth>,
    pub scopes: Option<Scopes>,
    pub admin_groups: BTreeSet<String>,
    pub unnamespaced_groups: BTreeSet<String>,
    /// The verb and resource RBAC is asked about; none: RBAC is not asked.
    pub rbac: Option<(String, String)>,
}

impl AuthConfig {
    /// Whether any identity source is configured.
    pub fn has_identity(&self) -> bool {
        self.proxy.is_some()
    }
}

fn header(flag: &str, name: &str) -> Result<HeaderName, ConfigError> {
    name.parse().map_err(|_| ConfigError::Auth(format!("{flag} {name}: not a header name")))
}

impl AuthArgs {
    pub fn validate(self) -> Result<AuthConfig, ConfigError> {
        let from = self
            .auth_proxy_from
            .iter()
            .map(|c| {
                c.parse::<IpNet>().or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
                    ConfigError::Auth(format!("--auth-proxy-from {c}: give an address block like 10.0.0.0/8"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let proxy = match (self.auth_proxy_user_header, from.is_empty()) {
            (Some(_), true) => {
                return Err(ConfigError::Auth(
                    "--auth-proxy-user-header needs --auth-proxy-from: the proxy's addresses, the only ones its header is believed from".into(),
                ));
            }
            (Some(user), false) => Some(ProxyAuth {
                user_header: header("--auth-proxy-user-header", &user)?,
                groups_header: self
                    .auth_proxy_groups_header
                    .as_deref()
                    .map(|g| header("--auth-proxy-groups-header", g))
                    .transpose()?,
                from,
            }),
            (None, _) if self.auth_proxy_groups_header.is_some() || !from.is_empty() => {
                return Err(ConfigError::Auth(
                    "--auth-proxy-groups-header and --auth-proxy-from need --auth-proxy-user-header".into(),
                ));
            }
            (None, _) => None,
        };
        let scopes = self.scopes.as_deref().map(Scopes::load).transpose().map_err(ConfigError::Auth)?;
        let rbac = match self.rbac_rule.split_whitespace().collect::<Vec<_>>()[..] {
            _ if self.no_rbac => None,
            [verb, resource] => Some((verb.to_string(), resource.to_string())),
            _ => {
                return Err(ConfigError::Auth(format!(
                    "--rbac-rule {}: give a verb and a resource, like `get traffic.podtap.io` or `get pods`",
                    self.rbac_rule
                )));
            }
        };
        Ok(AuthConfig {
            proxy,
            scopes,
            admin_groups: self.admin_groups.into_iter().collect(),
            unnamespaced_groups: self.unnamespaced_groups.into_iter().collect(),
            rbac,
        })
    }
}
