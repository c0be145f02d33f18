//! Sign-ins kept on the bus, so that every hub replica knows them alike: a person signed in at one
//! replica is signed in at all (whichever the Service sends them to, and after their replica
//! died), and signing out or an admin's revocation holds on every replica at once.
//!
//! They live in a JetStream key-value bucket (`podtap-signins`, one key per sign-in) that each
//! replica mirrors into its memory by watching it: reads are local, writes go to the bus and come
//! back to every replica's mirror. A sign-in's id is its cookie and its refresh token a secret, so
//! neither is on the bus in the clear: the key is a keyed hash of the id, the value is sealed
//! (ChaCha20-Poly1305), both with keys derived from the link keys, which every replica must be
//! given alike. A replica with other link keys cannot open them, and says so.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_nats::jetstream::kv;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::BusError;
use crate::access::link::LinkKeys;
use crate::access::signin::{SignIn, SignIns};

/// The bucket of sign-ins.
pub const BUCKET: &str = "podtap-signins";
/// Sign-ins mirrored from the bus, by their key there.
pub struct BusSignIns {
    kv: kv::Store,
    mirror: Arc<RwLock<HashMap<String, SignIn>>>,
    cipher: ChaCha20Poly1305,
    /// Keys the hash of an id.
    naming: [u8; 32],
}

impl BusSignIns {
    /// Opens (or makes) the bucket and starts mirroring it; the sign-ins already there arrive
    /// within moments.
    pub async fn start(url: &str, keys: &LinkKeys) -> Result<Arc<Self>, BusError> {
        let (_, js) = super::connect(url, "podtap-hub sign-ins").await?;
        let kv = match js.get_key_value(BUCKET).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config { bucket: BUCKET.into(), history: 1, ..Default::default() })
                .await
                .map_err(|e| BusError::Refused {
                    url: url.into(),
                    what: format!("the key-value bucket {BUCKET}"),
                    detail: e.to_string(),
                })?,
        };
        let cipher = ChaCha20Poly1305::new(&keys.derive("sign-ins on the bus").into());
        let naming = keys.derive("sign-in ids on the bus");
        let this = Arc::new(Self { kv, mirror: Arc::default(), cipher, naming });
        let watch = this.kv.watch_with_history(">").await.map_err(|e| BusError::Refused {
            url: url.into(),
            what: format!("a watch of {BUCKET}"),
            detail: e.to_string(),
        })?;
        tokio::spawn(mirror(watch, Arc::downgrade(&this)));
        Ok(this)
    }

    /// The bus's key for the sign-in `id`.
    fn key(&self, id: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.naming).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        let hash = mac.finalize().into_bytes();
        hash[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `s` as it goes on the bus: sealed.
    fn sealed(&self, s: &SignIn) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let text = serde_json::to_vec(s).expect("a sign-in serialises");
        let mut bytes = nonce.to_vec();
        bytes.extend(self.cipher.encrypt(Nonce::from_slice(&nonce), text.as_slice()).expect("sealing never fails"));
        bytes
    }

    /// A sign-in from the bus, opened (none: sealed with other keys, or not a sign-in).
    fn opened(&self, bytes: &[u8]) -> Option<SignIn> {
        let (nonce, sealed) = bytes.split_at_checked(12)?;
        let text = self.cipher.decrypt(Nonce::from_slice(nonce), sealed).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, SignIn>> {
        self.mirror.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps the mirror as the bus says, until the sign-ins are dropped.
async fn mirror(mut watch: kv::Watch, this: std::sync::Weak<BusSignIns>) {
    while let Some(entry) = watch.next().await {
        let Some(this) = this.upgrade() else { return };
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("sign-ins on the bus: {e}");
                continue;
            }
        };
        match entry.operation {
            kv::Operation::Put => match this.opened(&entry.value) {
                Some(s) => {
                    this.write().insert(entry.key, s);
                }
                None => tracing::warn!(
                    "a sign-in on the bus cannot be opened here, left out: give every hub replica the same --link-key"
                ),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                this.write().remove(&entry.key);
            }
        }
    }
    tracing::warn!("the watch of sign-ins on the bus ended: sign-ins made at other replicas are no longer seen");
}

/// Runs `write` on the runtime, without waiting for it (the mirror already has the change).
fn send(what: &'static str, write: impl Future<Output = Result<(), String>> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(async move {
                if let Err(e) = write.await {
                    tracing::warn!("{what} on the bus: {e}");
                }
            });
        }
        Err(_) => tracing::warn!("{what} on the bus: no runtime to send it with"),
    }
}

impl SignIns for BusSignIns {
    fn put(&self, s: &SignIn) -> Result<(), String> {
        let key = self.key(&s.id);
        self.write().insert(key.clone(), s.clone());
        let (kv, value) = (self.kv.clone(), self.sealed(s));
        send(
            "keeping a sign-in",
            async move { kv.put(key, value.into()).await.map(|_| ()).map_err(|e| e.to_string()) },
        );
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<SignIn>, String> {
        Ok(self.mirror.read().unwrap_or_else(|e| e.into_inner()).get(&self.key(id)).cloned())
    }

    fn delete(&self, id: &str) -> Result<bool, String> {
        let key = self.key(id);
        let existed = self.write().remove(&key).is_some();
        let kv = self.kv.clone();
        send("ending a sign-in", async move { kv.delete(key).await.map_err(|e| e.to_string()) });
        Ok(existed)
    }

    fn all(&self) -> Result<Vec<SignIn>, String> {
        let mut all: Vec<SignIn> = self.mirror.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| (a.created_s, &a.id).cmp(&(b.created_s, &b.id)));
        Ok(all)
    }
}
