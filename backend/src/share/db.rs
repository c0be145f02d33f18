//! Where saved sessions and live links live: a redb database in `--data-dir/podtap.redb` (in
//! memory without one, and then gone at exit). A session is two rows — its small description
//! (listed often) and its payload (records, Services' backends, packets; read when opened) — so
//! listing never reads payloads. Bounded in count and bytes; full is an error unless oldest-first
//! eviction was asked for.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::session::{Payload, SessionMeta};

mod signins;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("session_meta");
const PAYLOAD: TableDefinition<&str, &[u8]> = TableDefinition::new("session_payload");
const LINKS: TableDefinition<&str, &[u8]> = TableDefinition::new("live_links");

/// How much the database may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub max_sessions: usize,
    pub max_bytes: u64,
    /// Delete the oldest sessions to make room, instead of refusing a new one.
    pub evict_oldest: bool,
}

impl Default for Bounds {
    fn default() -> Self {
        Self { max_sessions: 200, max_bytes: 1 << 30, evict_oldest: false }
    }
}

/// A signed link to the live view under a filter, kept so it can be listed and revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveLink {
    pub id: String,
    pub filter: String,
    pub created_us: u64,
    pub expires_s: u64,
    /// When it was revoked: kept, so its holder is told "revoked", not "tampered".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_us: Option<u64>,
    /// Who made it (a signed-in person; none for the admin token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What its creator saw when they made it, which is all it ever shows (none: everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sight: Option<crate::access::Sight>,
}

/// Where saved sessions are kept: this podtap's database, or the bus (hub replicas).
pub trait SessionRows: Send + Sync {
    /// Every session's description, oldest first.
    fn list(&self) -> Result<Vec<SessionMeta>, DbError>;
    fn meta(&self, id: &str) -> Result<Option<SessionMeta>, DbError>;
    fn payload(&self, id: &str) -> Result<Option<Payload>, DbError>;
    /// Stores a session, evicting the oldest first if allowed and needed; the ids evicted.
    fn save(&self, meta: &SessionMeta, payload: &Payload) -> Result<Vec<String>, DbError>;
    /// Deletes a session (and with it every link to it); whether it existed.
    fn delete(&self, id: &str) -> Result<bool, DbError>;
}

/// Which of `existing` (oldest first) must go for a new session of `bytes` to fit `bounds`.
pub fn evictions(existing: &[SessionMeta], bytes: u64, bounds: Bounds) -> Result<Vec<String>, DbError> {
    if bytes > bounds.max_bytes {
        return Err(DbError::TooLarge(bytes >> 20));
    }
    let mut used: u64 = existing.iter().map(|m| m.bytes).sum();
    let mut count = existing.len();
    let mut evict = Vec::new();
    let mut oldest = existing.iter();
    while count + 1 > bounds.max_sessions || used + bytes > bounds.max_bytes {
        let Some(victim) = oldest.next().filter(|_| bounds.evict_oldest) else {
            return Err(DbError::Full {
                sessions: count,
                mib: used >> 20,
                max_sessions: bounds.max_sessions,
                max_mib: bounds.max_bytes >> 20,
            });
        };
        used -= victim.bytes;
        count -= 1;
        evict.push(victim.id.clone());
    }
    Ok(evict)
}

/// Where live links are kept: this podtap's database, or the bus (hub replicas).
pub trait LinkRows: Send + Sync {
    fn add_link(&self, link: &LiveLink) -> Result<(), String> {
        self.put_link(link)
    }
    fn link(&self, id: &str) -> Result<Option<LiveLink>, String>;
    /// Every link, revoked ones too.
    fn all_links(&self) -> Result<Vec<LiveLink>, String>;
    /// Writes `link` over the one with its id.
    fn put_link(&self, link: &LiveLink) -> Result<(), String>;
    fn forget_link(&self, id: &str) -> Result<(), String>;

    /// The live links not revoked.
    fn links(&self) -> Result<Vec<LiveLink>, String> {
        Ok(self.all_links()?.into_iter().filter(|l| l.revoked_us.is_none()).collect())
    }

    /// Revokes a live link at `now_us`; whether it was live. (Revoked links are forgotten once
    /// they would have expired anyway, when the next is revoked.)
    fn revoke(&self, id: &str, now_us: u64) -> Result<bool, String> {
        let Some(mut link) = self.link(id)?.filter(|l| l.revoked_us.is_none()) else { return Ok(false) };
        link.revoked_us = Some(now_us);
        for gone in self.all_links()? {
            if gone.revoked_us.is_some() && gone.expires_s.saturating_mul(1_000_000) < now_us {
                self.forget_link(&gone.id)?;
            }
        }
        self.put_link(&link)?;
        Ok(true)
    }
}

/// What went wrong, in a sentence for the API.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "session storage is full ({sessions} sessions, {mib} MiB; at most {max_sessions} and {max_mib} MiB): delete sessions, or start podtap with --evict-sessions"
    )]
    Full { sessions: usize, mib: u64, max_sessions: usize, max_mib: u64 },
    #[error("this session ({0} MiB) is larger than the whole session storage allows")]
    TooLarge(u64),
    #[error("the session database failed: {0}")]
    Storage(String),
    #[error("a stored session could not be read back: {0}")]
    Corrupt(String),
}

impl From<redb::Error> for DbError {
    fn from(e: redb::Error) -> Self {
        DbError::Storage(e.to_string())
    }
}

macro_rules! storage {
    ($($t:ty),*) => {$(impl From<$t> for DbError {
        fn from(e: $t) -> Self { DbError::Storage(e.to_string()) }
    })*};
}
storage!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// The session database.
pub struct Sessions {
    db: Database,
    bounds: Bounds,
    /// Where it is kept, for `/healthz` and the log: a path or `memory`.
    pub location: String,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sessions({})", self.location)
    }
}

impl Sessions {
    /// Opens (or creates) `dir/podtap.redb`.
    pub fn open(dir: &Path, bounds: Bounds) -> Result<Self, DbError> {
        std::fs::create_dir_all(dir).map_err(|e| DbError::Storage(format!("{}: {e}", dir.display())))?;
        let path = dir.join("podtap.redb");
        let db = Database::create(&path).map_err(|e| DbError::Storage(format!("{}: {e}", path.display())))?;
        Self::with(db, bounds, path.display().to_string())
    }

    /// A database in memory: sessions last until podtap exits.
    pub fn in_memory(bounds: Bounds) -> Result<Self, DbError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::with(db, bounds, "memory".into())
    }

    fn with(db: Database, bounds: Bounds, location: String) -> Result<Self, DbError> {
        let txn = db.begin_write()?;
        txn.open_table(META)?;
        txn.open_table(PAYLOAD)?;
        txn.open_table(LINKS)?;
        txn.open_table(signins::SIGNINS)?;
        txn.commit()?;
        Ok(Self { db, bounds, location })
    }

    /// Every row of a table of JSON values.
    fn rows<T: DeserializeOwned>(&self, def: TableDefinition<&str, &[u8]>) -> Result<Vec<T>, DbError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def)?;
        let mut all = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            all.push(serde_json::from_slice::<T>(v.value()).map_err(|e| DbError::Corrupt(e.to_string()))?);
        }
        Ok(all)
    }

    /// One row of a table of JSON values.
    fn row<T: DeserializeOwned>(&self, def: TableDefinition<&str, &[u8]>, id: &str) -> Result<Option<T>, DbError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def)?;
        let Some(v) = table.get(id)? else { return Ok(None) };
        serde_json::from_slice(v.value()).map(Some).map_err(|e| DbError::Corrupt(e.to_string()))
    }

    /// Every session's description, oldest first.
    pub fn list(&self) -> Result<Vec<SessionMeta>, DbError> {
        let mut all: Vec<SessionMeta> = self.rows(META)?;
        all.sort_by(|a, b| (a.created_us, &a.id).cmp(&(b.created_us, &b.id)));
        Ok(all)
    }

    pub fn meta(&self, id: &str) -> Result<Option<SessionMeta>, DbError> {
        self.row(META, id)
    }

    pub fn payload(&self, id: &str) -> Result<Option<Payload>, DbError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PAYLOAD)?;
        let Some(v) = table.get(id)? else { return Ok(None) };
        rmp_serde::from_slice(v.value()).map(Some).map_err(|e| DbError::Corrupt(e.to_string()))
    }

    /// Stores a session, evicting the oldest first if allowed and needed; returns the ids evicted.
    pub fn save(&self, meta: &SessionMeta, payload: &Payload) -> Result<Vec<String>, DbError> {
        let body = rmp_serde::to_vec_named(payload).map_err(|e| DbError::Storage(e.to_string()))?;
        let mut meta = meta.clone();
        meta.bytes = body.len() as u64;
        let evict = evictions(&self.list()?, meta.bytes, self.bounds)?;
        let txn = self.db.begin_write()?;
        {
            let mut metas = txn.open_table(META)?;
            let mut payloads = txn.open_table(PAYLOAD)?;
            for id in &evict {
                metas.remove(id.as_str())?;
                payloads.remove(id.as_str())?;
            }
            let text = serde_json::to_vec(&meta).expect("a description serialises");
            metas.insert(meta.id.as_str(), text.as_slice())?;
            payloads.insert(meta.id.as_str(), body.as_slice())?;
        }
        txn.commit()?;
        Ok(evict)
    }

    /// Deletes a session (and with it every link to it); whether it existed.
    pub fn delete(&self, id: &str) -> Result<bool, DbError> {
        let txn = self.db.begin_write()?;
        let existed = {
            let mut metas = txn.open_table(META)?;
            let mut payloads = txn.open_table(PAYLOAD)?;
            payloads.remove(id)?;
            metas.remove(id)?.is_some()
        };
        txn.commit()?;
        Ok(existed)
    }
}

/// Saved sessions in this podtap's database.
impl SessionRows for Sessions {
    fn list(&self) -> Result<Vec<SessionMeta>, DbError> {
        Sessions::list(self)
    }
    fn meta(&self, id: &str) -> Result<Option<SessionMeta>, DbError> {
        Sessions::meta(self, id)
    }
    fn payload(&self, id: &str) -> Result<Option<Payload>, DbError> {
        Sessions::payload(self, id)
    }
    fn save(&self, meta: &SessionMeta, payload: &Payload) -> Result<Vec<String>, DbError> {
        Sessions::save(self, meta, payload)
    }
    fn delete(&self, id: &str) -> Result<bool, DbError> {
        Sessions::delete(self, id)
    }
}

/// Live links in this podtap's database.
impl LinkRows for Sessions {
    fn link(&self, id: &str) -> Result<Option<LiveLink>, String> {
        self.row(LINKS, id).map_err(|e| e.to_string())
    }

    fn all_links(&self) -> Result<Vec<LiveLink>, String> {
        self.rows(LINKS).map_err(|e| e.to_string())
    }

    fn put_link(&self, link: &LiveLink) -> Result<(), String> {
        let write = || -> Result<(), DbError> {
            let txn = self.db.begin_write()?;
            {
                let mut links = txn.open_table(LINKS)?;
                links.insert(link.id.as_str(), serde_json::to_vec(link).expect("a link serialises").as_slice())?;
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| e.to_string())
    }

    fn forget_link(&self, id: &str) -> Result<(), String> {
        let write = || -> Result<(), DbError> {
            let txn = self.db.begin_write()?;
            txn.open_table(LINKS)?.remove(id)?;
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, created_us: u64) -> SessionMeta {
        SessionMeta {
            id: id.into(),
            title: String::new(),
            created_us,
            from: 0,
            to: 1,
            filter: String::new(),
            view: Default::default(),
            records: 0,
            requests: 0,
            packets: 0,
            packets_aged_out: false,
            source: "t".into(),
            clock: podtap_shared::Clock::Wall,
            bytes: 0,
            owner: None,
            seen_as: None,
        }
    }

    #[test]
    fn a_full_store_refuses_in_a_sentence_unless_told_to_evict() {
        let bounds = Bounds { max_sessions: 2, max_bytes: 1 << 20, evict_oldest: false };
        let db = Sessions::in_memory(bounds).unwrap();
        db.save(&meta("a", 1), &Payload::default()).unwrap();
        db.save(&meta("b", 2), &Payload::default()).unwrap();
        let full = db.save(&meta("c", 3), &Payload::default()).unwrap_err();
        assert!(full.to_string().contains("session storage is full (2 sessions"), "{full}");
        assert!(full.to_string().contains("--evict-sessions"), "{full}");
        assert_eq!(db.list().unwrap().len(), 2, "nothing was lost");

        let db = Sessions::in_memory(Bounds { evict_oldest: true, ..bounds }).unwrap();
        for (id, t) in [("a", 1), ("b", 2)] {
            db.save(&meta(id, t), &Payload::default()).unwrap();
        }
        assert_eq!(db.save(&meta("c", 3), &Payload::default()).unwrap(), ["a"], "the oldest goes");
        let ids: Vec<String> = db.list().unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["b", "c"]);
        assert!(db.payload("a").unwrap().is_none(), "its payload went with it");
    }

    #[test]
    fn bytes_are_bounded_too_and_a_session_bigger_than_all_is_refused() {
        let big = Payload { records: vec![podtap_shared::Record::test(); 200], ..Payload::default() };
        let db = Sessions::in_memory(Bounds { max_sessions: 100, max_bytes: 1024, evict_oldest: true }).unwrap();
        assert!(matches!(db.save(&meta("big", 1), &big), Err(DbError::TooLarge(_))));
        assert!(db.list().unwrap().is_empty());
    }

    #[test]
    fn what_is_saved_reads_back_and_deletes() {
        let db = Sessions::in_memory(Bounds::default()).unwrap();
        let payload = Payload { records: vec![podtap_shared::Record::test()], ..Payload::default() };
        db.save(&meta("a", 1), &payload).unwrap();
        let back = db.payload("a").unwrap().unwrap();
        assert_eq!(back.records, payload.records);
        assert!(db.meta("a").unwrap().unwrap().bytes > 0, "its stored size is kept");
        assert!(db.delete("a").unwrap());
        assert!(!db.delete("a").unwrap());
        assert!(db.meta("a").unwrap().is_none());
        let link = LiveLink {
            id: "l".into(),
            filter: "ns:x".into(),
            created_us: 1,
            expires_s: 2,
            revoked_us: None,
            owner: Some("alice".into()),
            sight: Some(crate::access::Sight::of(["team-a"])),
        };
        db.add_link(&link).unwrap();
        assert_eq!(db.link("l").unwrap(), Some(link));
        assert_eq!(db.links().unwrap().len(), 1);
        assert!(db.revoke("l", 1_000_000).unwrap());
        assert!(!db.revoke("l", 1_000_000).unwrap(), "once");
        assert!(db.links().unwrap().is_empty(), "a revoked link is not listed");
        assert_eq!(db.link("l").unwrap().unwrap().revoked_us, Some(1_000_000), "but remembered");
    }
}
