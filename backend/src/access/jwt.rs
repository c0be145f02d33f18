//! JSON Web Tokens signed by an identity provider: bearer tokens from API clients and portals
//! (`--jwt-jwks URL --jwt-audience A`), and the ID tokens an OpenID Connect sign-in returns
//! (`oidc`), checked by the same code: the signature against the issuer's published keys (a
//! JWKS, fetched when first needed, again when a token names a key not yet seen — the issuer
//! rotated — at most every `MIN_REFETCH`, and whenever it is older than `MAX_AGE`), asymmetric
//! algorithms only, the audience, the issuer when known, and the times with `LEEWAY` of clock
//! skew. The person is named by a claim (`sub` by default, as the API server's OIDC default) and
//! their groups by another (`groups`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::grant::Refusal;
use super::who::{Source, Who};

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// Keys are fetched again at most this often for an unknown key id.
const MIN_REFETCH: Duration = Duration::from_secs(5);
/// Keys older than this are fetched again before use.
const MAX_AGE: Duration = Duration::from_secs(600);

/// The algorithms accepted: public-key signatures only (a shared secret would let anyone who
/// knows it sign, and mixing it with public keys is the classic confusion attack).
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Which claims name the person and their groups.
#[derive(Clone, Debug)]
pub struct ClaimNames {
    pub user: String,
    pub groups: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames { user: "sub".into(), groups: "groups".into() }
    }
}

/// An issuer's keys, fetched from its JWKS address and kept.
pub struct Keys {
    url: String,
    http: reqwest::Client,
    cached: Mutex<Option<(Instant, JwkSet)>>,
}

impl Keys {
    pub fn new(url: String, http: reqwest::Client) -> Self {
        Keys { url, http, cached: Mutex::new(None) }
    }

    async fn fetch(&self) -> Result<JwkSet, Refusal> {
        let unavailable = |e: String| Refusal::Unavailable(format!("the identity provider's keys ({}): {e}", self.url));
        let resp = self.http.get(&self.url).send().await.map_err(|e| unavailable(e.to_string()))?;
        let resp = resp.error_for_status().map_err(|e| unavailable(e.to_string()))?;
        let set: JwkSet = resp.json().await.map_err(|e| unavailable(e.to_string()))?;
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), set.clone()));
        Ok(set)
    }

    /// The key `kid` names (or the only key, for a token that names none).
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, Refusal> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        // The key from the kept set when it has it and is fresh (only that key is copied).
        let (kept, fetched_at) = {
            let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
            let at = cached.as_ref().map(|(at, _)| *at);
            (cached.as_ref().filter(|(at, _)| at.elapsed() < MAX_AGE).and_then(|(_, set)| pick(set)), at)
        };
        let jwk = match (kept, fetched_at) {
            (Some(jwk), _) => Some(jwk),
            (None, Some(at)) if at.elapsed() < MIN_REFETCH => None,
            _ => pick(&self.fetch().await?),
        };
        let jwk = jwk.ok_or_else(|| {
            Refusal::Invalid(format!(
                "the token is signed with a key its issuer does not publish ({})",
                kid.unwrap_or("no key id")
            ))
        })?;
        DecodingKey::from_jwk(&jwk).map_err(|e| Refusal::Invalid(format!("the issuer's key cannot be used: {e}")))
    }
}

/// Checks tokens of one issuer for one audience.
pub struct TokenCheck {
    pub keys: Keys,
    pub audience: String,
    pub issuer: Option<String>,
    pub claims: ClaimNames,
}

impl TokenCheck {
    /// The token's claims, when every check holds.
    pub async fn claims(&self, token: &str) -> Result<Map<String, Value>, Refusal> {
        let invalid = |e: jsonwebtoken::errors::Error| Refusal::Invalid(format!("the token is not valid: {e}"));
        let header = decode_header(token).map_err(invalid)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Refusal::Invalid(format!("tokens signed with {:?} are not accepted", header.alg)));
        }
        let key = self.keys.key(header.kid.as_deref()).await?;
        // Only the header's algorithm (checked above), and only with a key of its family.
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY.as_secs();
        v.validate_nbf = true;
        v.set_audience(&[&self.audience]);
        if let Some(issuer) = &self.issuer {
            v.set_issuer(&[issuer]);
        }
        Ok(decode::<Map<String, Value>>(token, &key, &v).map_err(invalid)?.claims)
    }

    /// The person the claims name, from `source`.
    pub fn who(&self, claims: &Map<String, Value>, source: Source) -> Result<Who, Refusal> {
        let user = claims.get(&self.claims.user).and_then(Value::as_str).filter(|u| !u.is_empty());
        let user = user
            .ok_or_else(|| Refusal::Invalid(format!("the token has no `{}` claim to name you by", self.claims.user)))?;
        let groups = match claims.get(&self.claims.groups) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Who { user: user.to_string(), groups, source })
    }

    /// A bearer token's person.
    pub async fn bearer(&self, token: &str) -> Result<Who, Refusal> {
        let claims = self.claims(token).await?;
        self.who(&claims, Source::Jwt)
    }
}

/// Whether a bearer value looks like a JWT (three base64url parts), not the admin token.
pub fn looks_like_jwt(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}
