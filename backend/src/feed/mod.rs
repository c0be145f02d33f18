//! Sources that feed the hub, each on its own thread so reading and dissecting never wait for the
//! server or a browser: capture files replayed (`replay`), live capture on the node (`live`), and
//! a synthetic cluster for load (`synthetic`). All batch records toward the hub the same way.

pub mod live;
pub mod replay;
pub mod synthetic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use podtap_shared::Record;
use tokio::sync::watch;

use crate::engine::Engine;
use crate::publish::Hub;
use crate::resolve::ClusterState;

/// The cluster state as it changes (the API server's reflectors), or as it was loaded (files);
/// `None` until the API server's first lists are in or the wait for them is over.
pub type ClusterFeed = watch::Receiver<Option<Arc<ClusterState>>>;

/// A feed of one state that never changes.
pub fn fixed(cluster: Arc<ClusterState>) -> ClusterFeed {
    let (tx, rx) = watch::channel(Some(cluster));
    // Dropping the sender leaves the value readable and `has_changed` an error, read as "no".
    drop(tx);
    rx
}

/// An engine naming with the feed's state; before the first one, holding what it dissects
/// until it comes (`follow_cluster` releases it), so nothing is named without it for good. With a
/// live state (the API server's), a record whose pod address is not named yet waits for it.
pub fn engine_for(feed: &mut ClusterFeed) -> Engine {
    let engine = match feed.borrow_and_update().clone() {
        Some(cluster) => Engine::new(cluster),
        None => Engine::new(Arc::default()).holding(),
    };
    if is_live(feed) { engine.awaiting_names(crate::correlate::late::LIVE_WAIT_US) } else { engine }
}

/// Whether the feed's state still changes (its sender lives: the API server's watch).
pub fn is_live(feed: &ClusterFeed) -> bool {
    feed.has_changed().is_ok()
}

/// Gives the engine the newest cluster state when it changed (one atomic load when it did not);
/// with the first, what it held is named, into `out`.
fn follow_cluster(engine: &mut Engine, feed: &mut ClusterFeed, out: &mut Vec<Record>) {
    if let Some(cluster) = newer_cluster(feed) {
        engine.set_cluster(cluster);
        engine.release(out);
    }
}

/// The feed's state, when it changed since it was last read.
fn newer_cluster(feed: &mut ClusterFeed) -> Option<Arc<ClusterState>> {
    match feed.has_changed() {
        Ok(true) => feed.borrow_and_update().clone(),
        _ => None,
    }
}

/// Blocks until the feed has its first state (the API server's first lists, or the wait for
/// them is over): a replay read before would name nothing.
pub fn wait_for_cluster(feed: &ClusterFeed) {
    while feed.borrow().is_none() && feed.has_changed().is_ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How records are batched toward the hub.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_AT: usize = 512;

/// Records on their way to the hub: sent when the batch is full or old enough.
struct Batch<'h> {
    hub: &'h Hub,
    records: Vec<Record>,
    last: Instant,
}

impl<'h> Batch<'h> {
    fn new(hub: &'h Hub) -> Self {
        Self { hub, records: Vec::new(), last: Instant::now() }
    }

    /// Sends if due.
    fn maybe_flush(&mut self) {
        if self.records.len() >= FLUSH_AT || self.last.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.hub.publish(&self.records);
        self.records.clear();
        self.last = Instant::now();
    }
}
