//! Which replica merges which share of the partitions, by leases in a JetStream key-value bucket
//! (`podtap-shares`): the key `share-I` names the replica merging share I and is renewed every
//! second by it; `alive-R` says replica R is up. Ages are the bus's own (each entry's stored
//! time against this replica's latest `alive`), so the replicas' clocks need not agree.
//!
//! - A replica merges its own share: it takes `share-I` when it is free, or when whoever holds it
//!   has not renewed it for `ALIVE` (an earlier run of itself, or a peer that died holding it).
//! - A replica takes a peer's share over when that peer is not alive and the share is free or has
//!   not been renewed for `--bus-takeover-after` (and this replica has been up that long, so that
//!   peers starting with it get their own first). Whoever swaps the key's revision first has it.
//! - A replica merging a peer's share gives it back as soon as that peer is alive again: it stops
//!   the share, then frees the key, and the peer resumes it.
//! - A replica that could not renew a share for `FENCE` (shorter than `ALIVE`), or whose renewal
//!   the bus refused (someone else holds it), stops merging it at once.
//!
//! Every start of a share resumes it (`slot`), so a share moved anywhere loses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use bytes::Bytes;
use tokio::task::JoinHandle;

use super::BusError;
use super::slot::{self, Running, Shared};

/// The bucket of leases.
pub const BUCKET: &str = "podtap-shares";
/// How often leases are renewed and looked at.
const TICK: Duration = Duration::from_secs(1);
/// A replica (or a lease) not renewed for this long is taken for dead.
const ALIVE_US: u64 = 3_000_000;
/// A holder that could not renew for this long stops merging (before anyone may take it).
const FENCE: Duration = Duration::from_secs(2);
/// The value of a share nobody holds.
const FREE: &str = "free";

/// The replica merging each share now, as last seen (for `/healthz`).
pub type Holders = Arc<Mutex<HashMap<u32, u32>>>;

/// A share this replica merges.
struct Held {
    running: Share,
    revision: u64,
    renewed: Instant,
}

/// A share being started (resuming it reads the bus, which must not hold up the renewals of the
/// others), or merged.
enum Share {
    Starting(JoinHandle<Result<Running, super::BusError>>),
    Running(Running),
}

impl Share {
    /// Stops it, wherever it is.
    async fn stop(self) {
        match self {
            Share::Starting(start) => {
                start.abort();
                if let Ok(Ok(running)) = start.await {
                    running.stop().await;
                }
            }
            Share::Running(running) => running.stop().await,
        }
    }
}

/// One replica's side of the leases.
pub struct Leases {
    store: kv::Store,
    shared: Arc<Shared>,
    me: u32,
    count: u32,
    /// `me` and this run's number: a lease says which run holds it.
    value: String,
    takeover_us: Option<u64>,
    started: Instant,
    held: HashMap<u32, Held>,
    holders: Holders,
}

/// A lease as read: who holds it, and how long ago (bus time) it was written.
struct Seen {
    holder: Option<u32>,
    revision: u64,
    age_us: u64,
}

/// Opens the bucket, takes this replica's own share if it can (the first look is done before
/// returning), then keeps the leases until the process ends.
pub async fn start(shared: Arc<Shared>, takeover: Option<Duration>, holders: Holders) -> Result<(), BusError> {
    let store = super::key_value(&shared.js, &shared.bus.url, BUCKET).await?;
    let (me, count) = shared.bus.replica;
    let mut leases = Leases {
        store,
        me,
        count,
        value: format!("{me} {}", crate::feed::replay::now_us()),
        takeover_us: takeover.map(|t| t.as_micros() as u64),
        started: Instant::now(),
        held: HashMap::new(),
        holders,
        shared,
    };
    leases.tick().await;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TICK);
        loop {
            every.tick().await;
            leases.tick().await;
        }
    });
    Ok(())
}

impl Leases {
    async fn tick(&mut self) {
        let Some(now) = self.alive().await else {
            self.fence();
            return;
        };
        self.settle().await;
        for share in 0..self.count {
            let key = format!("share-{share}");
            let seen = match self.store.entry(key.as_str()).await {
                Ok(e) => e.map(|e| Seen {
                    holder: parse(&e.value),
                    revision: e.revision,
                    age_us: now.saturating_sub(created_us(&e.created)),
                }),
                Err(e) => {
                    tracing::debug!("the lease of share {share}: {e}");
                    continue;
                }
            };
            let live_holder = seen.as_ref().filter(|s| s.age_us < ALIVE_US).and_then(|s| s.holder);
            if self.held.contains_key(&share) {
                self.keep(share, &key, now).await;
            } else {
                self.maybe_take(share, &key, seen, now).await;
            }
            let shown = if self.held.contains_key(&share) { Some(self.me) } else { live_holder };
            let mut holders = self.holders.lock().unwrap_or_else(|e| e.into_inner());
            match shown {
                Some(h) => holders.insert(share, h),
                None => holders.remove(&share),
            };
        }
        self.fence();
    }

    /// Says this replica is alive; the bus's time of saying so (µs).
    async fn alive(&self) -> Option<u64> {
        let key = format!("alive-{}", self.me);
        let put = self.store.put(key.as_str(), Bytes::from(self.value.clone())).await;
        if let Err(e) = put {
            tracing::warn!("the bus did not take this replica's lease: {e}");
            return None;
        }
        self.store.entry(key.as_str()).await.ok().flatten().map(|e| created_us(&e.created))
    }

    /// Whether replica `r` said it was alive within `ALIVE_US` (bus time `now`).
    async fn is_alive(&self, r: u32, now: u64) -> bool {
        match self.store.entry(format!("alive-{r}")).await {
            Ok(Some(e)) => now.saturating_sub(created_us(&e.created)) < ALIVE_US,
            _ => false,
        }
    }

    /// Renews a share this replica merges, or gives it back to its replica, alive again.
    async fn keep(&mut self, share: u32, key: &str, now: u64) {
        let Some(held) = self.held.get(&share) else { return };
        let revision = held.revision;
        if share != self.me && self.is_alive(share, now).await {
            let held = self.held.remove(&share).expect("held");
            held.running.stop().await;
            let _ = self.store.update(key, Bytes::from_static(FREE.as_bytes()), revision).await;
            tracing::info!("hub replica {share} is back: its share of the partitions is handed back to it");
            return;
        }
        match self.store.update(key, Bytes::from(self.value.clone()), revision).await {
            Ok(revision) => {
                if let Some(held) = self.held.get_mut(&share) {
                    (held.revision, held.renewed) = (revision, Instant::now());
                }
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::warn!("share {share} was taken by another replica: this one stops merging it");
                if let Some(held) = self.held.remove(&share) {
                    held.running.stop().await;
                }
            }
            Err(e) => tracing::warn!("renewing the lease of share {share}: {e}"),
        }
    }

    /// Takes a share this replica does not merge, when the rules say it may.
    async fn maybe_take(&mut self, share: u32, key: &str, seen: Option<Seen>, now: u64) {
        let mine = share == self.me;
        let may = match (&seen, mine) {
            (None, _) => mine || self.may_take_over(share, now).await,
            (Some(s), true) => s.holder.is_none() || s.age_us >= ALIVE_US,
            (Some(s), false) => {
                let dead = s.holder.is_none() || self.takeover_us.is_some_and(|t| s.age_us >= t);
                dead && self.may_take_over(share, now).await
            }
        };
        if !may {
            return;
        }
        let value = Bytes::from(self.value.clone());
        let taken = match &seen {
            None => self.store.create(key, value).await.map_err(|e| e.to_string()),
            Some(s) => self.store.update(key, value, s.revision).await.map_err(|e| e.to_string()),
        };
        let revision = match taken {
            Ok(r) => r,
            // Another replica was first.
            Err(e) => return tracing::debug!("taking share {share}: {e}"),
        };
        if !mine {
            let from = seen.and_then(|s| s.holder).map_or("nobody".to_string(), |h| format!("replica {h}"));
            tracing::warn!(
                "hub replica {share} is away: replica {} takes its share of the partitions over (held by {from})",
                self.me
            );
        }
        let shared = self.shared.clone();
        let start = tokio::spawn(async move { slot::start(&shared, share).await });
        self.held.insert(share, Held { running: Share::Starting(start), revision, renewed: Instant::now() });
    }

    /// Shares whose start has ended: merged, or (it failed) given up to be taken again.
    async fn settle(&mut self) {
        let ended: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, h)| matches!(&h.running, Share::Starting(start) if start.is_finished()))
            .map(|(share, _)| *share)
            .collect();
        for share in ended {
            let Some(held) = self.held.remove(&share) else { continue };
            let Share::Starting(start) = held.running else { continue };
            match start.await {
                Ok(Ok(running)) => {
                    self.held.insert(share, Held { running: Share::Running(running), ..held });
                }
                Ok(Err(e)) => {
                    tracing::warn!("starting share {share}: {e}; again in a second");
                    let free = Bytes::from_static(FREE.as_bytes());
                    let _ = self.store.update(format!("share-{share}"), free, held.revision).await;
                }
                Err(e) => tracing::warn!("starting share {share}: {e}"),
            }
        }
    }

    /// Whether a peer's share may be taken over: takeover is on, this replica has been up long
    /// enough for its peers to start too, and the share's own replica is not alive.
    async fn may_take_over(&self, share: u32, now: u64) -> bool {
        let Some(after) = self.takeover_us else { return false };
        self.started.elapsed().as_micros() as u64 >= after && !self.is_alive(share, now).await
    }

    /// Stops every share not renewed for `FENCE`: another replica may take it soon.
    fn fence(&mut self) {
        let stale: Vec<u32> = self.held.iter().filter(|(_, h)| h.renewed.elapsed() >= FENCE).map(|(s, _)| *s).collect();
        for share in stale {
            if let Some(held) = self.held.remove(&share) {
                tracing::warn!("the lease of share {share} could not be renewed: this replica stops merging it");
                tokio::spawn(held.running.stop());
            }
        }
    }
}

/// The replica a lease names (`None`: free).
fn parse(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value).ok()?.split(' ').next()?.parse().ok()
}

fn created_us(t: &time::OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(0)
}
