//! Live capture on the node, two ways: into the engine and on to the hub (`podtap serve
//! --pod-interfaces`), or into a pcapng file (`podtap capture`). Both run until `stop` is set,
//! name each new interface as it is opened, and publish the kernel's counters.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::replay::now_us;
use super::{Batch, ClusterFeed, follow_cluster};
use crate::capture::live::{LiveCapture, LiveError, LiveStats};
use crate::capture::write::PcapngWriter;
use crate::publish::Hub;

/// The longest a poll sleeps, so `stop` is noticed quickly.
const POLL: Duration = Duration::from_millis(100);
/// The snapshot length declared in the file (the ring keeps whole packets up to a block).
const SNAPLEN: u32 = 262_144;
/// How often the kernel counters are read and reported.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Reports drops the moment they grow, once per interval.
struct DropWatch {
    last: Instant,
    drops: u64,
}

impl DropWatch {
    fn new() -> Self {
        Self { last: Instant::now(), drops: 0 }
    }

    /// Returns fresh stats when an interval has passed.
    fn due(&mut self, live: &mut LiveCapture) -> Option<LiveStats> {
        if self.last.elapsed() < STATS_EVERY {
            return None;
        }
        self.last = Instant::now();
        let stats = live.stats();
        if stats.drops > self.drops {
            tracing::warn!(
                "the kernel dropped {} packets (ring full); try a larger --ring-mb",
                stats.drops - self.drops
            );
            self.drops = stats.drops;
        }
        Some(stats)
    }
}

/// Captures into the engine and publishes records and capture counters to `hub` until `stop`.
pub fn run(mut live: LiveCapture, mut cluster: ClusterFeed, hub: &Hub, stop: &AtomicBool) -> Result<(), LiveError> {
    let mut engine = super::engine_for(&mut cluster);
    let mut batch = Batch::new(hub);
    let packets = hub.packets();
    let mut named = 0;
    let mut watch = DropWatch::new();
    while !stop.load(Ordering::Relaxed) {
        live.follow_changes()?;
        for (index, iface) in live.interfaces().iter().enumerate().skip(named) {
            engine.name_interface(index as u32, Some(iface.name.clone()));
            if let Some(p) = &packets {
                p.name_interface(index as u32, Some(iface.name.clone()));
            }
            named = index + 1;
        }
        follow_cluster(&mut engine, &mut cluster, &mut batch.records);
        live.poll(POLL, |f| {
            if let Some(p) = &packets {
                p.add(&f.frame);
            }
            engine.on_frame(&f.frame, &mut batch.records)
        })?;
        let now = now_us();
        for gone in live.take_ended() {
            engine.end_interface(gone, now, &mut batch.records);
        }
        engine.idle(now, &mut batch.records);
        batch.maybe_flush();
        if let Some(stats) = watch.due(&mut live) {
            hub.set_capture(stats);
            hub.set_engine(engine.stats());
        }
    }
    engine.finish(&mut batch.records);
    batch.flush();
    hub.set_capture(live.stats());
    hub.set_engine(engine.stats());
    Ok(())
}

/// Writes every captured frame to `out` as pcapng until `stop`; returns the final counters.
pub fn record<W: Write>(mut live: LiveCapture, out: W, stop: &AtomicBool) -> anyhow::Result<LiveStats> {
    let mut writer = PcapngWriter::new(out)?;
    let mut declared = 0;
    let mut watch = DropWatch::new();
    let mut failed = None;
    while !stop.load(Ordering::Relaxed) {
        // Interfaces first: a frame's interface must be declared before its first packet.
        live.follow_changes()?;
        for iface in live.interfaces().iter().skip(declared) {
            writer.add_interface(&iface.name, iface.link, SNAPLEN)?;
            declared += 1;
        }
        live.poll(POLL, |f| {
            if failed.is_none()
                && let Err(e) = writer.write_packet(f.frame.interface, f.ts_ns, f.wire_len, f.frame.data)
            {
                failed = Some(e);
            }
        })?;
        if let Some(e) = failed.take() {
            return Err(e.into());
        }
        let _ = watch.due(&mut live);
    }
    writer.flush()?;
    Ok(live.stats())
}
