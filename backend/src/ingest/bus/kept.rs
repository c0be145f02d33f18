//! What every hub replica must know alike, kept on the bus: sign-ins (a person signed in at one
//! replica is signed in at all, whichever the Service sends them to and after their replica
//! died; signing out or an admin's revocation holds on every replica at once) and live links (a
//! link made at one replica opens at any, and its revocation holds everywhere) and saved
//! sessions' descriptions (their payloads are in an object store: `saved`).
//!
//! Each kind lives in a JetStream key-value bucket (`podtap-signins`, `podtap-links`: one key per
//! row) that each replica mirrors into its memory by watching it: reads are local, writes go to
//! the bus and come back to every replica's mirror. A sign-in's id is its cookie and its refresh
//! token a secret, so nothing is on the bus in the clear: a key is a keyed hash of the row's id,
//! a value is sealed (ChaCha20-Poly1305), both with keys derived from the link keys, which every
//! replica must be given alike. The first link key seals and names what is written; every one
//! opens and finds (so rotating the keys, new first, loses nothing). A replica with other link
//! keys cannot open them, and says so.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_nats::jetstream::kv;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::BusError;
use crate::access::link::LinkKeys;
use crate::access::signin::{SignIn, SignIns};
use crate::share::db::{LinkRows, LiveLink};

/// The bucket of sign-ins.
pub const SIGNINS: &str = "podtap-signins";
/// The bucket of live links.
pub const LINKS: &str = "podtap-links";
/// The bucket of saved sessions' descriptions (their payloads: `saved`).
pub const SESSIONS: &str = "podtap-sessions";

/// Rows of one kind mirrored from the bus, by their key there.
pub struct Kept<T> {
    kv: kv::Store,
    mirror: Arc<RwLock<HashMap<String, T>>>,
    /// One per link key, the signing key's first: it seals, and any opens.
    ciphers: Vec<ChaCha20Poly1305>,
    /// Key the hash of an id, likewise: the first names what is written, any finds.
    namings: Vec<[u8; 32]>,
    /// What the rows are, for the log.
    what: &'static str,
}

/// Rows the bus keeps.
pub trait Row: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The bucket.
    const BUCKET: &'static str;
    /// What they are, for the log.
    const WHAT: &'static str;
}

impl Row for SignIn {
    const BUCKET: &'static str = SIGNINS;
    const WHAT: &'static str = "sign-in";
}

impl Row for LiveLink {
    const BUCKET: &'static str = LINKS;
    const WHAT: &'static str = "live link";
}

impl Row for podtap_shared::SessionMeta {
    const BUCKET: &'static str = SESSIONS;
    const WHAT: &'static str = "saved session";
}

impl<T: Row> Kept<T> {
    /// Opens (or makes) the bucket and starts mirroring it; the rows already there arrive within
    /// moments.
    pub async fn start(url: &str, keys: &LinkKeys) -> Result<Arc<Self>, BusError> {
        let bucket = T::BUCKET;
        let (_, js) = super::connect(url, &format!("podtap-hub {bucket}")).await?;
        let kv = super::key_value(&js, url, bucket).await?;
        let ciphers =
            keys.derive(&format!("{bucket} on the bus")).iter().map(|k| ChaCha20Poly1305::new(k.into())).collect();
        let namings = keys.derive(&format!("{bucket} ids on the bus"));
        let this = Arc::new(Self { kv, mirror: Arc::default(), ciphers, namings, what: T::WHAT });
        let watch = this.kv.watch_with_history(">").await.map_err(|e| BusError::Refused {
            url: url.into(),
            what: format!("a watch of {bucket}"),
            detail: e.to_string(),
        })?;
        tokio::spawn(mirror(watch, Arc::downgrade(&this)));
        Ok(this)
    }

    /// The bus's key for the row `id`, as it is written now.
    pub fn key(&self, id: &str) -> String {
        self.keys_of(id).swap_remove(0)
    }

    /// Every key the row `id` may be under: written with the link key now first, or before the
    /// keys rotated.
    pub fn keys_of(&self, id: &str) -> Vec<String> {
        let name = |naming: &[u8; 32]| -> String {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(naming).expect("HMAC takes keys of any length");
            mac.update(id.as_bytes());
            mac.finalize().into_bytes()[..16].iter().map(|b| format!("{b:02x}")).collect()
        };
        self.namings.iter().map(name).collect()
    }

    /// `text` as it goes on the bus: 12 bytes of nonce, then `text` sealed.
    pub fn seal(&self, text: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let mut bytes = nonce.to_vec();
        bytes.extend(self.ciphers[0].encrypt(Nonce::from_slice(&nonce), text).expect("sealing never fails"));
        bytes
    }

    /// What `seal` sealed, with any of the link keys (none: with others, or not sealed).
    pub fn open(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let (nonce, sealed) = bytes.split_at_checked(12)?;
        self.ciphers.iter().find_map(|c| c.decrypt(Nonce::from_slice(nonce), sealed).ok())
    }

    /// `row` as it goes on the bus: sealed.
    fn sealed(&self, row: &T) -> Vec<u8> {
        self.seal(&serde_json::to_vec(row).expect("a row serialises"))
    }

    /// A row from the bus, opened (none: sealed with other keys, or not such a row).
    fn opened(&self, bytes: &[u8]) -> Option<T> {
        serde_json::from_slice(&self.open(bytes)?).ok()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, T>> {
        self.mirror.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The row `id`.
    pub fn row(&self, id: &str) -> Option<T> {
        let mirror = self.mirror.read().unwrap_or_else(|e| e.into_inner());
        self.keys_of(id).iter().find_map(|k| mirror.get(k).cloned())
    }

    /// Keeps `row` as `id`: here at once, on every replica in moments (under the key of the link
    /// key now first; one under an older key goes).
    pub fn keep(&self, id: &str, row: &T) {
        let key = self.key(id);
        self.forget_older(id);
        self.write().insert(key.clone(), row.clone());
        let (kv, value) = (self.kv.clone(), self.sealed(row));
        send(self.what, async move { kv.put(key, value.into()).await.map(|_| ()).map_err(|e| e.to_string()) });
    }

    /// Forgets the row `id`; whether there was one.
    pub fn forget(&self, id: &str) -> bool {
        let key = self.key(id);
        let here = self.write().remove(&key).is_some();
        let existed = self.forget_older(id) || here;
        let kv = self.kv.clone();
        send(self.what, async move { kv.delete(key).await.map_err(|e| e.to_string()) });
        existed
    }

    /// Forgets the row `id` under the keys of older link keys; whether it was under one.
    fn forget_older(&self, id: &str) -> bool {
        let mut had = false;
        for key in self.keys_of(id).into_iter().skip(1) {
            if self.write().remove(&key).is_some() {
                had = true;
                let kv = self.kv.clone();
                send(self.what, async move { kv.delete(key).await.map_err(|e| e.to_string()) });
            }
        }
        had
    }

    /// Every row.
    pub fn rows(&self) -> Vec<T> {
        self.mirror.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }
}

/// Keeps the mirror as the bus says, until the rows are dropped.
async fn mirror<T: Row>(mut watch: kv::Watch, this: std::sync::Weak<Kept<T>>) {
    while let Some(entry) = watch.next().await {
        let Some(this) = this.upgrade() else { return };
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("{}s on the bus: {e}", T::WHAT);
                continue;
            }
        };
        match entry.operation {
            kv::Operation::Put => match this.opened(&entry.value) {
                Some(s) => {
                    this.write().insert(entry.key, s);
                }
                None => tracing::warn!(
                    "a {} on the bus cannot be opened here, left out: give every hub replica the same --link-key",
                    T::WHAT
                ),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                this.write().remove(&entry.key);
            }
        }
    }
    tracing::warn!("the watch of {}s on the bus ended: those made at other replicas are no longer seen", T::WHAT);
}

/// Runs `write` on the runtime, without waiting for it (the mirror already has the change).
fn send(what: &'static str, write: impl Future<Output = Result<(), String>> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(async move {
                if let Err(e) = write.await {
                    tracing::warn!("keeping a {what} on the bus: {e}");
                }
            });
        }
        Err(_) => tracing::warn!("keeping a {what} on the bus: no runtime to send it with"),
    }
}

impl SignIns for Kept<SignIn> {
    fn put(&self, s: &SignIn) -> Result<(), String> {
        self.keep(&s.id, s);
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<SignIn>, String> {
        Ok(self.row(id))
    }

    fn delete(&self, id: &str) -> Result<bool, String> {
        Ok(self.forget(id))
    }

    fn all(&self) -> Result<Vec<SignIn>, String> {
        let mut all = self.rows();
        all.sort_by(|a, b| (a.created_s, &a.id).cmp(&(b.created_s, &b.id)));
        Ok(all)
    }
}

impl LinkRows for Kept<LiveLink> {
    fn link(&self, id: &str) -> Result<Option<LiveLink>, String> {
        Ok(self.row(id))
    }

    fn all_links(&self) -> Result<Vec<LiveLink>, String> {
        let mut all = self.rows();
        all.sort_by(|a, b| (a.created_us, &a.id).cmp(&(b.created_us, &b.id)));
        Ok(all)
    }

    fn put_link(&self, link: &LiveLink) -> Result<(), String> {
        self.keep(&link.id, link);
        Ok(())
    }

    fn forget_link(&self, id: &str) -> Result<(), String> {
        self.forget(id);
        Ok(())
    }
}
