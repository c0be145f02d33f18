//! Replays capture files into the hub: once as fast as possible, or paced at capture speed, or
//! looped with timestamps shifted to now (the built-in demo).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Batch, ClusterFeed, follow_cluster};
use crate::capture::{CaptureFile, Frame};
use crate::engine::Engine;
use crate::publish::Hub;

/// How to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// At the speed of capture, timestamps shifted so the first packet is "now".
    pub realtime: bool,
    /// Start over at the end, forever.
    pub looped: bool,
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Replays `captures` into `hub`. Returns the damage of any file (after using what preceded it);
/// a looped replay never returns.
pub fn run(captures: &[CaptureFile], mut cluster: ClusterFeed, hub: &Hub, pacing: Pacing) -> Vec<String> {
    let mut engine = Engine::new(cluster.borrow_and_update().clone());
    let mut errors = Vec::new();
    let mut batch = Batch::new(hub);
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
                        batch.flush();
                        std::thread::sleep(due - now);
                    }
                    Frame { ts_us: start_us + offset, ..frame }
                } else {
                    frame
                };
                follow_cluster(&mut engine, &mut cluster);
                engine.sync_interfaces(&frames);
                engine.on_frame(&frame, &mut batch.records);
                batch.maybe_flush();
            }
        }
        if !pacing.looped {
            engine.finish(&mut batch.records);
            batch.flush();
            return errors;
        }
    }
}
