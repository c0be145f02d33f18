//! Sources that feed the hub from capture files: once as fast as possible, or paced at capture
//! speed, or looped with timestamps shifted to now (the built-in demo). Runs on its own thread:
//! reading and dissecting never wait for the server or a browser.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use podtap_shared::Record;

use crate::capture::{CaptureFile, Frame};
use crate::engine::Engine;
use crate::publish::Hub;
use crate::resolve::ClusterState;

/// How records are batched toward the hub.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_AT: usize = 512;

/// How to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// At the speed of capture, timestamps shifted so the first packet is "now".
    pub realtime: bool,
    /// Start over at the end, forever.
    pub looped: bool,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Replays `captures` into `hub`. Returns the damage of any file (after using what preceded it);
/// a looped replay never returns.
pub fn run(captures: &[CaptureFile], cluster: Arc<ClusterState>, hub: &Hub, pacing: Pacing) -> Vec<String> {
    let mut engine = Engine::new(cluster);
    let mut errors = Vec::new();
    let mut batch: Vec<Record> = Vec::new();
    let mut last_flush = Instant::now();
    loop {
        for file in captures {
            let start_wall = Instant::now();
            let start_us = now_us();
            let mut first_ts: Option<u64> = None;
            let mut frames = file.frames();
            while let Some(frame) = frames.next() {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => {
                        if !errors.contains(&e.to_string()) {
                            tracing::warn!("{e}");
                            errors.push(e.to_string());
                        }
                        break;
                    }
                };
                let frame = if pacing.realtime {
                    let first = *first_ts.get_or_insert(frame.ts_us);
                    let offset = frame.ts_us.saturating_sub(first);
                    let due = start_wall + Duration::from_micros(offset);
                    let now = Instant::now();
                    if due > now {
                        flush(hub, &mut batch, &mut last_flush);
                        std::thread::sleep(due - now);
                    }
                    Frame { ts_us: start_us + offset, ..frame }
                } else {
                    frame
                };
                engine.sync_interfaces(&frames);
                engine.on_frame(&frame, &mut batch);
                if batch.len() >= FLUSH_AT || last_flush.elapsed() >= FLUSH_EVERY {
                    flush(hub, &mut batch, &mut last_flush);
                }
            }
        }
        if !pacing.looped {
            engine.finish(&mut batch);
            flush(hub, &mut batch, &mut last_flush);
            return errors;
        }
    }
}

fn flush(hub: &Hub, batch: &mut Vec<Record>, last: &mut Instant) {
    hub.publish(batch);
    batch.clear();
    *last = Instant::now();
}
