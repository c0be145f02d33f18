//! OpenID Connect sign-in with any issuer: the authorization code flow with PKCE (S256) and a
//! nonce. The issuer's discovery document gives its endpoints and its keys' address; the ID token
//! is checked by `jwt` (the same checks as a bearer token: signature against the published keys,
//! refetched when the issuer rotates them; audience = our client id; the issuer; the times with
//! clock skew), and its nonce against the one this sign-in sent. What the flow ends in — the
//! person, when their ID token expires, a refresh token when the issuer gives one — becomes a
//! server-side sign-in (`signin`). A flow is remembered between its start and its callback for
//! `PENDING_FOR`, at most `MAX_PENDING` at once.
//!
//! Written on `jsonwebtoken` rather than a full OIDC client crate so ID tokens and API bearer
//! tokens go through one verifier with one key cache and one skew rule; the protocol steps
//! (a URL, a form POST, a hash) are the small part.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::grant::Refusal;
use super::jwt::{ClaimNames, Keys, TokenCheck};
use super::link::random_text;
use super::who::{Source, Who};

/// How long a started sign-in may take.
pub const PENDING_FOR: Duration = Duration::from_secs(600);
/// Sign-ins started and not finished, at most.
const MAX_PENDING: usize = 10_000;
/// How long the discovery document is trusted before it is read again.
const DISCOVERY_FOR: Duration = Duration::from_secs(3600);

/// The flags: which issuer, who podtap is there, what to ask for, which claims name people.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub claims: ClaimNames,
}

/// The parts of the issuer's discovery document used here.
#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

struct Pending {
    verifier: String,
    nonce: String,
    next: String,
    redirect_uri: String,
    at: Instant,
}

/// What a finished sign-in (or a refresh) gives.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub who: Who,
    /// When the ID token expires (Unix seconds).
    pub expires_s: u64,
    pub refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

pub struct Oidc {
    pub config: OidcConfig,
    http: reqwest::Client,
    discovered: Mutex<Option<(Instant, Discovery, Arc<TokenCheck>)>>,
    pending: Mutex<HashMap<String, Pending>>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Refusal {
    Refusal::Unavailable(format!("the identity provider could not be asked ({what}): {e}"))
}

impl Oidc {
    pub fn new(config: OidcConfig, http: reqwest::Client) -> Self {
        Oidc { config, http, discovered: Mutex::new(None), pending: Mutex::new(HashMap::new()) }
    }

    /// The issuer's discovery document and a checker for its ID tokens, read when first needed.
    async fn discovery(&self) -> Result<(Discovery, Arc<TokenCheck>), Refusal> {
        if let Some((at, d, check)) = self.discovered.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && at.elapsed() < DISCOVERY_FOR
        {
            return Ok((d.clone(), check.clone()));
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let resp = self.http.get(&url).send().await.map_err(|e| unavailable("discovery", e))?;
        let d: Discovery = resp
            .error_for_status()
            .map_err(|e| unavailable("discovery", e))?
            .json()
            .await
            .map_err(|e| unavailable("discovery", e))?;
        if d.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(unavailable("discovery", format!("it names itself {}, not {}", d.issuer, self.config.issuer)));
        }
        let check = Arc::new(TokenCheck {
            keys: Keys::new(d.jwks_uri.clone(), self.http.clone()),
            audience: self.config.client_id.clone(),
            issuer: Some(d.issuer.clone()),
            claims: self.config.claims.clone(),
        });
        *self.discovered.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), d.clone(), check.clone()));
        Ok((d, check))
    }

    /// Where to send the browser to sign in; `redirect_uri` is podtap's callback as the browser
    /// reaches it, `next` where to go after.
    pub async fn begin(&self, redirect_uri: &str, next: &str) -> Result<String, Refusal> {
        let (d, _) = self.discovery().await?;
        let (state, nonce, verifier) = (random_text(32), random_text(32), random_text(64));
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.retain(|_, p| p.at.elapsed() < PENDING_FOR);
            if pending.len() >= MAX_PENDING {
                return Err(Refusal::Unavailable("too many sign-ins are under way: try again in a minute".into()));
            }
            let p = Pending {
                verifier,
                nonce: nonce.clone(),
                next: next.into(),
                redirect_uri: redirect_uri.into(),
                at: Instant::now(),
            };
            pending.insert(state.clone(), p);
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if d.authorization_endpoint.contains('?') { '&' } else { '?' };
        Ok(format!("{}{sep}{query}", d.authorization_endpoint))
    }

    /// The callback: the code redeemed, the ID token checked; the person and where to go next.
    pub async fn finish(&self, code: &str, state: &str) -> Result<(SignedIn, String), Refusal> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(state);
        let p = pending.filter(|p| p.at.elapsed() < PENDING_FOR).ok_or_else(|| {
            Refusal::Invalid("this sign-in was not started here, or took more than 10 minutes: sign in again".into())
        })?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", p.redirect_uri.as_str()),
            ("code_verifier", p.verifier.as_str()),
        ];
        let signed = self.redeem(&form, Some(&p.nonce)).await?;
        Ok((signed, p.next))
    }

    /// A new ID token for a sign-in whose token expired.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignedIn, Refusal> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        let mut signed = self.redeem(&form, None).await?;
        signed.refresh_token = signed.refresh_token.or_else(|| Some(refresh_token.to_string()));
        Ok(signed)
    }

    /// Where the issuer signs people out, when it says.
    pub async fn end_session(&self) -> Option<String> {
        self.discovery().await.ok()?.0.end_session_endpoint
    }

    async fn redeem(&self, form: &[(&str, &str)], nonce: Option<&str>) -> Result<SignedIn, Refusal> {
        let (d, check) = self.discovery().await?;
        let resp = self
            .http
            .post(&d.token_endpoint)
            .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
            .form(form)
            .send()
            .await
            .map_err(|e| unavailable("token", e))?;
        let status = resp.status();
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let why = body["error_description"].as_str().or(body["error"].as_str()).unwrap_or("refused");
            return Err(Refusal::Invalid(format!("the identity provider refused the sign-in ({status}): {why}")));
        }
        let tokens: TokenResponse = resp.json().await.map_err(|e| unavailable("token", e))?;
        let id_token =
            tokens.id_token.ok_or_else(|| Refusal::Invalid("the identity provider sent no ID token".into()))?;
        let claims = check.claims(&id_token).await?;
        if let Some(nonce) = nonce
            && claims.get("nonce").and_then(Value::as_str) != Some(nonce)
        {
            return Err(Refusal::Invalid("the ID token is not this sign-in's (its nonce differs)".into()));
        }
        let who = check.who(&claims, Source::Oidc)?;
        let expires_s = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok(SignedIn { who, expires_s, refresh_token: tokens.refresh_token })
    }
}
