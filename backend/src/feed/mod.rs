//! Sources that feed the hub, each on its own thread so reading and dissecting never wait for the
//! server or a browser: capture files replayed (`replay`) and live capture on the node (`live`).
//! Both batch records toward the hub the same way.

pub mod live;
pub mod replay;

use std::time::{Duration, Instant};

use podtap_shared::Record;

use crate::publish::Hub;

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
