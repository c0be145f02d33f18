//! Server-side sign-ins: an OpenID Connect sign-in is a row in the embedded database (`SignIns`,
//! which the share's database implements) and a cookie holding only its random id. A sign-in
//! ends when it is idle longer than `--session-idle`, older than `--session-max`, signed out,
//! revoked (an admin deletes a person's sign-ins: their streams end at the next check), or
//! when its ID token expires and the issuer gave no refresh token (with one, it is refreshed).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::grant::Refusal;
use super::jwt::LEEWAY;
use super::oidc::Oidc;
use super::who::{Source, Who};

/// The cookie holding a sign-in's id.
pub const SIGNIN_COOKIE: &str = "podtap_signin";
/// A sign-in's last use is written at most this often.
const SEEN_EVERY_S: u64 = 60;

/// One sign-in, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub id: String,
    pub user: String,
    pub groups: Vec<String>,
    pub created_s: u64,
    pub seen_s: u64,
    /// When the ID token expires.
    pub token_expires_s: u64,
    /// Kept on the hub's disk only; never sent anywhere but the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Where sign-ins are kept.
pub trait SignIns: Send + Sync {
    fn put(&self, s: &SignIn) -> Result<(), String>;
    fn get(&self, id: &str) -> Result<Option<SignIn>, String>;
    fn delete(&self, id: &str) -> Result<bool, String>;
    /// Every sign-in, oldest first.
    fn all(&self) -> Result<Vec<SignIn>, String>;
}

/// How long sign-ins last.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub idle: Duration,
    pub max: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes { idle: Duration::from_secs(3600), max: Duration::from_secs(12 * 3600) }
    }
}

fn ended(why: &str) -> Refusal {
    Refusal::Invalid(format!("your sign-in ended ({why}): sign in again"))
}

/// The person signed in as `id` at `now_s`, the sign-in kept up to date (last use, a refreshed
/// token), or why it ended (and then it is deleted).
pub async fn check(
    store: &dyn SignIns,
    oidc: &Oidc,
    life: Lifetimes,
    id: &str,
    now_s: u64,
) -> Result<(Who, SignIn), Refusal> {
    let storage = |e: String| Refusal::Storage(e);
    let mut s = store.get(id).map_err(storage)?.ok_or_else(|| ended("signed out, or revoked"))?;
    let end = |why: &str| {
        let _ = store.delete(id);
        Err(ended(why))
    };
    if now_s.saturating_sub(s.seen_s) > life.idle.as_secs() {
        return end("idle too long");
    }
    if now_s.saturating_sub(s.created_s) > life.max.as_secs() {
        return end("it reached its longest time");
    }
    let mut changed = false;
    if now_s > s.token_expires_s + LEEWAY.as_secs() {
        let Some(refresh) = s.refresh_token.clone() else { return end("your identity token expired") };
        match oidc.refresh(&refresh).await {
            Ok(fresh) => {
                (s.groups, s.token_expires_s, s.refresh_token) =
                    (fresh.who.groups, fresh.expires_s, fresh.refresh_token);
                changed = true;
            }
            Err(Refusal::Unavailable(e)) => return Err(Refusal::Unavailable(e)),
            Err(_) => return end("the identity provider would not renew it"),
        }
    }
    if changed || now_s.saturating_sub(s.seen_s) >= SEEN_EVERY_S {
        s.seen_s = now_s;
        store.put(&s).map_err(storage)?;
    }
    Ok((Who { user: s.user.clone(), groups: s.groups.clone(), source: Source::Oidc }, s))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::access::jwt::ClaimNames;
    use crate::access::oidc::OidcConfig;

    #[derive(Default)]
    struct Memory(Mutex<HashMap<String, SignIn>>);

    impl SignIns for Memory {
        fn put(&self, s: &SignIn) -> Result<(), String> {
            self.0.lock().unwrap().insert(s.id.clone(), s.clone());
            Ok(())
        }
        fn get(&self, id: &str) -> Result<Option<SignIn>, String> {
            Ok(self.0.lock().unwrap().get(id).cloned())
        }
        fn delete(&self, id: &str) -> Result<bool, String> {
            Ok(self.0.lock().unwrap().remove(id).is_some())
        }
        fn all(&self) -> Result<Vec<SignIn>, String> {
            Ok(self.0.lock().unwrap().values().cloned().collect())
        }
    }

    fn signin(id: &str, created_s: u64, seen_s: u64, token_expires_s: u64) -> SignIn {
        SignIn {
            id: id.into(),
            user: "alice".into(),
            groups: vec![],
            created_s,
            seen_s,
            token_expires_s,
            refresh_token: None,
        }
    }

    /// An issuer nobody is asked (none of these sign-ins has a refresh token).
    fn nowhere() -> Oidc {
        let config = OidcConfig {
            issuer: "http://127.0.0.1:9".into(),
            client_id: "podtap".into(),
            client_secret: "s".into(),
            scopes: vec!["openid".into()],
            claims: ClaimNames::default(),
        };
        Oidc::new(config, reqwest::Client::new())
    }

    #[tokio::test]
    async fn a_sign_in_ends_idle_too_old_or_with_its_token_and_is_deleted() {
        let store = Memory::default();
        let life = Lifetimes { idle: Duration::from_secs(100), max: Duration::from_secs(1_000) };
        let oidc = nowhere();
        for s in [
            signin("ok", 0, 500, 900),
            signin("idle", 0, 300, 900),
            signin("old", 0, 990, 2_000),
            signin("token", 0, 500, 400),
        ] {
            store.put(&s).unwrap();
        }
        let (who, kept) = check(&store, &oidc, life, "ok", 550).await.unwrap();
        assert_eq!((who.user.as_str(), who.source), ("alice", Source::Oidc));
        assert_eq!(kept.seen_s, 500, "a use within a minute of the last is not written");
        assert_eq!(check(&store, &oidc, life, "ok", 600).await.unwrap().1.seen_s, 600);
        for (id, now, why) in
            [("idle", 550, "idle"), ("old", 1_050, "longest"), ("token", 550, "expired"), ("gone", 550, "revoked")]
        {
            let e = check(&store, &oidc, life, id, now).await.unwrap_err();
            assert!(matches!(&e, Refusal::Invalid(m) if m.contains(why)), "{id}: {e}");
            assert_eq!(store.get(id).unwrap(), None, "{id} deleted");
        }
        // Within the clock skew allowed, a token just expired still holds.
        store.put(&signin("skew", 0, 500, 520)).unwrap();
        assert!(check(&store, &oidc, life, "skew", 560).await.is_ok());
    }
}
