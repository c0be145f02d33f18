//! Saved sessions kept on the bus, so that every hub replica lists, opens and deletes the same
//! ones (and a link to a session opens at any replica, after the one it was saved at died):
//! their descriptions in a mirrored key-value bucket (`kept`), their payloads (records, backends,
//! packets) sealed in a JetStream object store (`podtap-session-payloads`), read when a session
//! is opened. The bounds (`--max-sessions`, `--max-session-mb`) are the whole bus's.
//!
//! The session API is synchronous (the database it replaces is): the bus is waited for on the
//! calling thread, which the runtime lets go meanwhile.

use std::sync::Arc;

use async_nats::jetstream::object_store::{self, ObjectStore};
use tokio::io::AsyncReadExt;

use super::BusError;
use super::kept::Kept;
use crate::access::link::LinkKeys;
use crate::share::db::{Bounds, DbError, SessionRows, evictions};
use crate::share::session::{Payload, SessionMeta};

/// The object store of payloads.
pub const PAYLOADS: &str = "podtap-session-payloads";

/// Saved sessions on the bus.
pub struct BusSessions {
    metas: Arc<Kept<SessionMeta>>,
    payloads: ObjectStore,
    bounds: Bounds,
}

impl BusSessions {
    pub async fn start(url: &str, keys: &LinkKeys, bounds: Bounds) -> Result<Arc<Self>, BusError> {
        let metas = Kept::start(url, keys).await?;
        let (_, js) = super::connect(url, &format!("podtap-hub {PAYLOADS}")).await?;
        let payloads = match js.get_object_store(PAYLOADS).await {
            Ok(s) => s,
            Err(_) => js
                .create_object_store(object_store::Config { bucket: PAYLOADS.into(), ..Default::default() })
                .await
                .map_err(|e| BusError::Refused {
                    url: url.into(),
                    what: format!("the object store {PAYLOADS}"),
                    detail: e.to_string(),
                })?,
        };
        Ok(Arc::new(Self { metas, payloads, bounds }))
    }

    async fn read(&self, id: &str) -> Result<Option<Vec<u8>>, DbError> {
        let mut found = None;
        // Saved before the link keys rotated, it is under an older key's name.
        for name in self.metas.keys_of(id) {
            match self.payloads.get(name).await {
                Ok(o) => {
                    found = Some(o);
                    break;
                }
                Err(e) if e.kind() == object_store::GetErrorKind::NotFound => {}
                Err(e) => return Err(DbError::Storage(format!("the bus: {e}"))),
            }
        }
        let Some(mut object) = found else { return Ok(None) };
        let mut sealed = Vec::new();
        object.read_to_end(&mut sealed).await.map_err(|e| DbError::Storage(format!("the bus: {e}")))?;
        let text = self.metas.open(&sealed).ok_or_else(|| {
            DbError::Corrupt(
                "a session on the bus cannot be opened here: give every hub replica the same --link-key".into(),
            )
        })?;
        Ok(Some(text))
    }

    async fn remove(&self, id: &str) {
        self.metas.forget(id);
        for name in self.metas.keys_of(id) {
            if let Err(e) = self.payloads.delete(name).await {
                tracing::debug!("deleting a session's payload on the bus: {e}");
            }
        }
    }
}

/// Waits for `f` on this thread (the runtime's other work goes on).
fn block<F: Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

impl SessionRows for BusSessions {
    fn list(&self) -> Result<Vec<SessionMeta>, DbError> {
        let mut all = self.metas.rows();
        all.sort_by(|a, b| (a.created_us, &a.id).cmp(&(b.created_us, &b.id)));
        Ok(all)
    }

    fn meta(&self, id: &str) -> Result<Option<SessionMeta>, DbError> {
        Ok(self.metas.row(id))
    }

    fn payload(&self, id: &str) -> Result<Option<Payload>, DbError> {
        let Some(text) = block(self.read(id))? else { return Ok(None) };
        rmp_serde::from_slice(&text).map(Some).map_err(|e| DbError::Corrupt(e.to_string()))
    }

    fn save(&self, meta: &SessionMeta, payload: &Payload) -> Result<Vec<String>, DbError> {
        let body = rmp_serde::to_vec_named(payload).map_err(|e| DbError::Storage(e.to_string()))?;
        let meta = SessionMeta { bytes: body.len() as u64, ..meta.clone() };
        let evict = evictions(&self.list()?, meta.bytes, self.bounds)?;
        block(async {
            for id in &evict {
                self.remove(id).await;
            }
            let sealed = self.metas.seal(&body);
            self.payloads
                .put(self.metas.key(&meta.id).as_str(), &mut sealed.as_slice())
                .await
                .map_err(|e| DbError::Storage(format!("the bus: {e}")))
        })?;
        // The description last: a session listed anywhere can be opened.
        self.metas.keep(&meta.id, &meta);
        Ok(evict)
    }

    fn delete(&self, id: &str) -> Result<bool, DbError> {
        let existed = self.metas.row(id).is_some();
        block(self.remove(id));
        Ok(existed)
    }
}
