//! Flags of sharing, the same for `serve` and `hub`: where sessions and retained packets are
//! kept, the keys links are signed with, and the path podtap is mounted at behind a proxy.

use std::path::PathBuf;

use super::ConfigError;
use crate::access::link::MIN_KEY_LEN;
use crate::share::db::Bounds;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ShareArgs {
    /// Directory for the session database (podtap.redb), the link key when none is given, and the
    /// packet ring. Without it, sessions last until podtap exits and packets go to a temporary
    /// directory.
    #[arg(long, value_name = "DIR", env = "PODTAP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keys share links are signed with (16 characters or more), newest first: the first signs,
    /// all verify (rotate by putting the new key first). Comma-separated in the environment, e.g.
    /// from a Secret. Default: one kept in --data-dir, else one made at start.
    #[arg(
        long = "link-key",
        value_name = "KEY",
        env = "PODTAP_LINK_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub link_keys: Vec<String>,
    /// The path podtap is served under behind a reverse proxy (`/podtap/`); both a proxy that
    /// keeps the prefix and one that strips it work.
    #[arg(long, value_name = "PATH", default_value = "/", env = "PODTAP_BASE_PATH")]
    pub base_path: String,
    /// Disk kept for the recent packets of this node's capture, for pcapng exports (0: none).
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub packet_retention_mb: u64,
    /// Saved sessions kept at most.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub max_sessions: usize,
    /// Disk all saved sessions may take, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub sessions_mb: u64,
    /// When session storage is full, delete the oldest sessions instead of refusing a new one.
    #[arg(long)]
    pub evict_sessions: bool,
}

/// Validated sharing flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareConfig {
    pub data_dir: Option<PathBuf>,
    pub link_keys: Vec<String>,
    /// With leading and trailing slashes.
    pub base_path: String,
    pub packet_retention_bytes: u64,
    pub bounds: Bounds,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareArgs {
            base_path: "/".into(),
            packet_retention_mb: 256,
            max_sessions: 200,
            sessions_mb: 1024,
            ..ShareArgs::default()
        }
        .validate()
        .expect("the defaults are valid")
    }
}

impl ShareArgs {
    pub fn validate(self) -> Result<ShareConfig, ConfigError> {
        let keys: Vec<String> =
            self.link_keys.into_iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
        if keys.iter().any(|k| k.len() < MIN_KEY_LEN) {
            return Err(ConfigError::ShortLinkKey);
        }
        let path = self.base_path.trim();
        let safe = path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
        if !path.starts_with('/') || path.starts_with("//") || !safe || path.contains("/../") || path.ends_with("/..") {
            return Err(ConfigError::BadBasePath(self.base_path.clone()));
        }
        if self.max_sessions == 0 || self.sessions_mb == 0 {
            return Err(ConfigError::ZeroSessions);
        }
        Ok(ShareConfig {
            data_dir: self.data_dir,
            link_keys: keys,
            base_path: format!("{}/", path.trim_end_matches('/')),
            packet_retention_bytes: self.packet_retention_mb << 20,
            bounds: Bounds {
                max_sessions: self.max_sessions,
                max_bytes: self.sessions_mb << 20,
                evict_oldest: self.evict_sessions,
            },
        })
    }
}
