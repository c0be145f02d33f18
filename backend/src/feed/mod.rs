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

/// The cluster state as it changes (the API server's reflectors), or as it was loaded (files).
pub type ClusterFeed = watch::Receiver<Arc<ClusterState>>;

/// A feed of one state that never changes.
pub fn fixed(cluster: Arc<ClusterState>) -> ClusterFeed {
    let (tx, rx) = watch::channel(cluster);
    // Dropping the sender leaves the value readable and `has_changed` an error, read as "no".
    drop(tx);
    rx
}

/// Gives the engine the newest cluster state when it changed (one atomic load when it did not).
fn follow_cluster(engine: &mut Engine, feed: &mut ClusterFeed) {
    if feed.has_changed().unwrap_or(false) {
        engine.set_cluster(feed.borrow_and_update().clone());
    }
}

/// How records are batched toward the hub.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
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
