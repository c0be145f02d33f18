//! Sharing: saved sessions in an embedded database, the live links kept so they can be listed and
//! revoked (their signing and checking are `access`'s), and downloads (JSON lines,
//! HAR, pcapng). `Share` is what the server holds for all of it.

use std::sync::{Arc, Mutex};

pub mod db;
pub mod export;
pub mod session;

use crate::access::link::{self, LinkKeys};
use db::{LinkRows, SessionRows, Sessions};
use session::Frozen;

/// Sessions opened recently, kept in memory so a page's dozen queries read the database once.
const OPEN_SESSIONS: usize = 4;

/// Everything sharing needs, shared by all handlers.
pub struct Share {
    pub sessions: Sessions,
    /// Saved sessions and live links kept elsewhere than `sessions` (on the bus, for hub
    /// replicas).
    saved: Option<Arc<dyn SessionRows>>,
    links: Option<Arc<dyn LinkRows>>,
    pub keys: LinkKeys,
    /// Where the app is mounted, with a trailing slash (`/`, `/podtap/`).
    pub base: String,
    /// The `Secure` attribute for cookies (podtap behind TLS).
    pub secure_cookies: bool,
    opened: Mutex<Vec<Arc<Frozen>>>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share({:?}, base {})", self.sessions, self.base)
    }
}

impl Share {
    pub fn new(sessions: Sessions, keys: LinkKeys, base: String) -> Self {
        Self { sessions, saved: None, links: None, keys, base, secure_cookies: false, opened: Mutex::new(Vec::new()) }
    }

    /// Saved sessions and live links kept in `saved` and `links` instead of the session database.
    pub fn kept_in(self, saved: Arc<dyn SessionRows>, links: Arc<dyn LinkRows>) -> Self {
        Self { saved: Some(saved), links: Some(links), ..self }
    }

    /// Where saved sessions are kept.
    pub fn saved(&self) -> &dyn SessionRows {
        self.saved.as_deref().unwrap_or(&self.sessions)
    }

    /// Where live links are kept.
    pub fn links(&self) -> &dyn LinkRows {
        self.links.as_deref().unwrap_or(&self.sessions)
    }

    /// Sessions in memory, a random key, mounted at `/`: for tests and `analyze`-like uses.
    pub fn ephemeral() -> Self {
        let sessions = Sessions::in_memory(db::Bounds::default()).expect("an in-memory database opens");
        Self::new(sessions, LinkKeys::random(), "/".into())
    }

    /// A session, opened (from memory when it was lately).
    pub fn open(&self, id: &str) -> Result<Option<Arc<Frozen>>, db::DbError> {
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = opened.iter().find(|f| f.meta.id == id) {
            return Ok(Some(f.clone()));
        }
        let (Some(meta), Some(payload)) = (self.saved().meta(id)?, self.saved().payload(id)?) else {
            return Ok(None);
        };
        let frozen = Arc::new(Frozen::open(meta, payload));
        if opened.len() == OPEN_SESSIONS {
            opened.remove(0);
        }
        opened.push(frozen.clone());
        Ok(Some(frozen))
    }

    /// Forgets an opened session (deleted or evicted).
    pub fn forget(&self, id: &str) {
        self.opened.lock().unwrap_or_else(|e| e.into_inner()).retain(|f| f.meta.id != id);
    }
}

/// Sharing as configured: the database under `--data-dir` (else in memory), the link keys given
/// (else one kept in `--data-dir/link.key`, else one made now: links then die with the process).
pub fn from_config(config: &crate::cli::ShareConfig) -> anyhow::Result<Share> {
    use anyhow::Context;
    let sessions = match &config.data_dir {
        Some(dir) => {
            Sessions::open(dir, config.bounds).with_context(|| format!("cannot open sessions in {}", dir.display()))?
        }
        None => {
            tracing::info!("saved sessions are kept in memory until podtap exits: give --data-dir to keep them");
            Sessions::in_memory(config.bounds)?
        }
    };
    let keys = match (LinkKeys::new(&config.link_keys), &config.data_dir) {
        (Some(keys), _) => keys,
        (None, Some(dir)) => LinkKeys::new([kept_key(&dir.join("link.key"))?]).expect("one key"),
        (None, None) => {
            tracing::info!(
                "share links are signed with a key made at start: they stop working when podtap restarts (give --link-key or --data-dir)"
            );
            LinkKeys::random()
        }
    };
    Ok(Share::new(sessions, keys, config.base_path.clone()))
}

/// The key in `path`, made (readable by this user only) when there is none.
fn kept_key(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    if let Ok(text) = std::fs::read_to_string(path) {
        let key = text.trim().to_string();
        anyhow::ensure!(
            key.len() >= link::MIN_KEY_LEN,
            "{}: the link key is shorter than 16 characters",
            path.display()
        );
        return Ok(key);
    }
    let key = link::random_text(43);
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write the link key {}", path.display()))?;
    writeln!(file, "{key}")?;
    Ok(key)
}

/// The packet ring for a node's capture: `--data-dir/packets`, else a temporary directory
/// removed at exit; none when retention is 0.
pub fn packet_store(config: &crate::cli::ShareConfig) -> anyhow::Result<Option<Arc<crate::packets::PacketStore>>> {
    use anyhow::Context;
    if config.packet_retention_bytes == 0 {
        return Ok(None);
    }
    let (dir, temporary) = match &config.data_dir {
        Some(d) => (d.join("packets"), false),
        None => {
            sweep_temporary_packets();
            (temporary_packets(std::process::id()), true)
        }
    };
    let store = crate::packets::PacketStore::open(&dir, config.packet_retention_bytes, temporary)
        .with_context(|| format!("cannot keep packets in {}", dir.display()))?;
    Ok(Some(Arc::new(store)))
}

/// Where a podtap without `--data-dir` keeps its packet ring: `TMP/podtap-packets-PID`.
fn temporary_packets(pid: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("podtap-packets-{pid}"))
}

/// Removes this process's temporary packet ring, if it made one: at exit, where the store's own
/// `Drop` may never run (threads that hold it outlive `main`).
pub fn remove_temporary_packets() {
    let _ = std::fs::remove_dir_all(temporary_packets(std::process::id()));
}

/// Removes the temporary packet rings of podtaps that are gone (killed: nothing of theirs ran at
/// exit), so they do not pile up in `TMP`.
fn sweep_temporary_packets() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) =
            name.to_str().and_then(|n| n.strip_prefix("podtap-packets-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The gate asks here what an id is: a saved session, or a live link (revoked or not).
impl crate::access::Links for Share {
    fn entry(&self, id: &str) -> Result<Option<crate::access::LinkEntry>, String> {
        if self.saved().meta(id).map_err(|e| e.to_string())?.is_some() {
            return Ok(Some(crate::access::LinkEntry::Session));
        }
        Ok(self.links().link(id)?.map(|l| crate::access::LinkEntry::Live {
            filter: l.filter,
            revoked: l.revoked_us.is_some(),
            sight: l.sight.unwrap_or(crate::access::Sight::All),
        }))
    }
}

/// Sign-ins are kept with the sessions.
impl crate::access::signin::SignIns for Share {
    fn put(&self, s: &crate::access::signin::SignIn) -> Result<(), String> {
        crate::access::signin::SignIns::put(&self.sessions, s)
    }
    fn get(&self, id: &str) -> Result<Option<crate::access::signin::SignIn>, String> {
        crate::access::signin::SignIns::get(&self.sessions, id)
    }
    fn delete(&self, id: &str) -> Result<bool, String> {
        crate::access::signin::SignIns::delete(&self.sessions, id)
    }
    fn all(&self) -> Result<Vec<crate::access::signin::SignIn>, String> {
        crate::access::signin::SignIns::all(&self.sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_packet_ring_sweeps_those_of_podtaps_gone_and_goes_at_exit() {
        // No process has this pid (above Linux's largest).
        let gone = temporary_packets(u32::MAX - 7);
        std::fs::create_dir_all(gone.join("segments")).unwrap();
        let config = crate::cli::ShareConfig { packet_retention_bytes: 1 << 20, ..Default::default() };
        let store = packet_store(&config).unwrap().expect("a ring");
        assert!(!gone.exists(), "a dead podtap's ring is removed");
        let mine = temporary_packets(std::process::id());
        assert!(mine.exists());
        drop(store);
        remove_temporary_packets();
        assert!(!mine.exists());
    }
}
