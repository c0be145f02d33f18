//! Flags of sign-in and scope, the same for `serve` and `hub`: the identity sources (a trusted
//! authenticating proxy, bearer JWTs, OpenID Connect sign-in and how long sign-ins last), the
//! static scopes file, RBAC's rule, and the groups that are admins or see traffic with no
//! namespace. Validated into `access::People`'s parts.

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::http::HeaderName;
use ipnet::IpNet;

use super::ConfigError;
use crate::access::jwt::ClaimNames;
use crate::access::oidc::OidcConfig;
use crate::access::scopes::Scopes;
use crate::access::signin::Lifetimes;
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
    /// Bearer JWTs (API clients, portals) are checked against this JWKS address.
    #[arg(long, value_name = "URL")]
    pub jwt_jwks: Option<String>,
    /// The audience (`aud`) a bearer JWT must carry.
    #[arg(long, value_name = "AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// The issuer (`iss`) a bearer JWT must carry, when given.
    #[arg(long, value_name = "URL")]
    pub jwt_issuer: Option<String>,
    /// OpenID Connect sign-in with this issuer (its discovery document is read from
    /// ISSUER/.well-known/openid-configuration). The issuer must allow the redirect address
    /// https://PODTAP-HOST/BASE-PATH/auth/callback.
    #[arg(long, value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// podtap's client id at the issuer.
    #[arg(long, value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// A file holding podtap's client secret at the issuer (from a Secret).
    #[arg(long, value_name = "FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// The scopes asked for (add `groups` where the issuer gives groups by that scope).
    #[arg(long, value_name = "SCOPES", default_value = "openid email profile")]
    pub oidc_scopes: String,
    /// The claim people are named by, in ID tokens and bearer JWTs (as the API server's
    /// --oidc-username-claim: RBAC bindings name people by it).
    #[arg(long, value_name = "CLAIM", default_value = "sub")]
    pub oidc_user_claim: String,
    /// The claim listing people's groups, in ID tokens and bearer JWTs.
    #[arg(long, value_name = "CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,
    /// A sign-in unused this long ends.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub session_idle: String,
    /// A sign-in ends this long after it began, used or not.
    #[arg(long, value_name = "DURATION", default_value = "12h")]
    pub session_max: String,
    /// The audit log (sign-ins, sessions and links opened, exports, refusals) as JSON lines,
    /// appended to FILE; default: standard error.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
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
    /// Bearer JWTs: the JWKS address, the audience, the issuer when given.
    pub jwt: Option<(String, String, Option<String>)>,
    pub oidc: Option<OidcConfig>,
    pub claims: ClaimNames,
    pub lifetimes: Lifetimes,
    pub audit_log: Option<PathBuf>,
}

impl AuthConfig {
    /// Whether any identity source is configured.
    pub fn has_identity(&self) -> bool {
        self.proxy.is_some() || self.jwt.is_some() || self.oidc.is_some()
    }
}

fn duration(flag: &str, text: &str) -> Result<std::time::Duration, ConfigError> {
    match crate::timespec::parse_duration_us(text) {
        Ok(us) if us >= 1_000_000 => Ok(std::time::Duration::from_micros(us)),
        Ok(_) => Err(ConfigError::Auth(format!("{flag} {text}: give at least a second"))),
        Err(e) => Err(ConfigError::Auth(format!("{flag}: {e}"))),
    }
}

fn http_url(flag: &str, url: &str) -> Result<String, ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url.trim_end_matches('/').to_string())
    } else {
        Err(ConfigError::Auth(format!("{flag} {url}: give an http:// or https:// address")))
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
        let claims = ClaimNames { user: self.oidc_user_claim, groups: self.oidc_groups_claim };
        let jwt = match (self.jwt_jwks, self.jwt_audience) {
            (Some(jwks), Some(audience)) => {
                let issuer = self.jwt_issuer.as_deref().map(|i| http_url("--jwt-issuer", i)).transpose()?;
                Some((http_url("--jwt-jwks", &jwks)?, audience, issuer))
            }
            (None, None) if self.jwt_issuer.is_none() => None,
            _ => return Err(ConfigError::Auth("--jwt-jwks and --jwt-audience go together".into())),
        };
        let oidc = match (self.oidc_issuer, self.oidc_client_id, self.oidc_client_secret_file) {
            (Some(issuer), Some(client_id), Some(file)) => {
                let secret = std::fs::read_to_string(&file)
                    .map_err(|e| ConfigError::Auth(format!("--oidc-client-secret-file {}: {e}", file.display())))?;
                let scopes: Vec<String> = self.oidc_scopes.split_whitespace().map(str::to_string).collect();
                if !scopes.iter().any(|s| s == "openid") {
                    return Err(ConfigError::Auth("--oidc-scopes must include openid".into()));
                }
                Some(OidcConfig {
                    issuer: http_url("--oidc-issuer", &issuer)?,
                    client_id,
                    client_secret: secret.trim().to_string(),
                    scopes,
                    claims: claims.clone(),
                })
            }
            (None, None, None) => None,
            _ => {
                return Err(ConfigError::Auth(
                    "--oidc-issuer, --oidc-client-id and --oidc-client-secret-file go together".into(),
                ));
            }
        };
        let lifetimes = Lifetimes {
            idle: duration("--session-idle", &self.session_idle)?,
            max: duration("--session-max", &self.session_max)?,
        };
        Ok(AuthConfig {
            audit_log: self.audit_log,
            jwt,
            oidc,
            claims,
            lifetimes,
            proxy,
            scopes,
            admin_groups: self.admin_groups.into_iter().collect(),
            unnamespaced_groups: self.unnamespaced_groups.into_iter().collect(),
            rbac,
        })
    }
}
