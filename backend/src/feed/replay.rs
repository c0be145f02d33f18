//! Replays capture files into the hub: once as fast as possible (on the capture's own time axis),
//! or paced at capture speed, or looped (the built-in demo) — paced or looped, timestamps move to
//! now.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Batch, ClusterFeed, follow_cluster};
use crate::capture::{CaptureFile, Frame};
use crate::publish::Hub;

/// How to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// At the speed of capture, timestamps shifted so the first packet is "now".
    pub realtime: bool,
    /// Start over at the end, forever.
    pub looped: bool,
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Replays `captures` into `hub`. Returns the damage of any file (after using what preceded it);
/// a looped replay never returns.
pub fn run(captures: &[CaptureFile], cluster: ClusterFeed, hub: &Hub, pacing: Pacing) -> Vec<String> {
    run_passes(captures, cluster, hub, pacing, if pacing.looped { None } else { Some(1) })
}

/// Replays `captures` `passes` times (`None`: forever). Looped, every pass is a capture of its
/// own: its timestamps move to now (or just after the previous pass, when replaying faster than
/// real time), and it starts with no connection, query or request left over from the last one,
/// so every pass gives the same records — probes and all — with ids that keep counting.
pub fn run_passes(
    captures: &[CaptureFile],
    mut cluster: ClusterFeed,
    hub: &Hub,
    pacing: Pacing,
    passes: Option<usize>,
) -> Vec<String> {
    // Read before the first lists, a replay (as fast as it reads) would name nothing.
    super::wait_for_cluster(&cluster);
    let mut engine = super::engine_for(&mut cluster);
    let packets = hub.packets();
    let mut errors = Vec::new();
    let mut batch = Batch::new(hub);
    let shift = pacing.realtime || pacing.looped;
    let mut pass_end_us = 0u64;
    let mut pass = 0;
    while passes.is_none_or(|n| pass < n) {
        pass += 1;
        for file in captures {
            let start_wall = Instant::now();
            let start_us = now_us().max(pass_end_us + 1_000_000);
            let mut first_ts: Option<u64> = None;
            let mut frames = file.frames();
            let mut named = 0;
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
                let first = *first_ts.get_or_insert(frame.ts_us);
                let offset = frame.ts_us.saturating_sub(first);
                if pacing.realtime {
                    let due = start_wall + Duration::from_micros(offset);
                    let now = Instant::now();
                    if due > now {
                        batch.flush();
                        std::thread::sleep(due - now);
                    }
                }
                let frame = if shift { Frame { ts_us: start_us + offset, ..frame } } else { frame };
                pass_end_us = pass_end_us.max(frame.ts_us);
                follow_cluster(&mut engine, &mut cluster, &mut batch.records);
                engine.sync_interfaces(&frames);
                if let Some(p) = &packets {
                    for (index, iface) in frames.interfaces().iter().enumerate().skip(named) {
                        p.name_interface(index as u32, iface.name.clone());
                        named = index + 1;
                    }
                    p.add(&frame);
                }
                engine.on_frame(&frame, &mut batch.records);
                batch.maybe_flush();
            }
        }
        // Each pass ends as a capture ends: what is open is closed, what waits is sent.
        engine.finish(&mut batch.records);
        batch.flush();
        hub.set_engine(engine.stats());
        if pass == 1 {
            for line in crate::analyze::unsupported_lines(&engine.stats()) {
                tracing::warn!("{}", line.trim_start_matches("podtap: "));
            }
        }
    }
    errors
}
