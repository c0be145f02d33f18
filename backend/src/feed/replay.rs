//! Replays capture files into the hub: once as fast as possible (on the capture's own time axis),
//! or paced at capture speed, or looped (the built-in demo) — paced or looped, timestamps move to
//! now.

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Batch, ClusterFeed, follow_cluster};
use crate::capture::file::Frames;
use crate::capture::{CaptureFile, Frame};
use crate::engine::{Engine, EngineStats, Handover};
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
/// so every pass gives the same records — probes and all — with ids that keep counting. With a
/// second core, reading and dissecting run on one thread and naming, merging and publishing on
/// another, with the records one thread makes.
pub fn run_passes(
    captures: &[CaptureFile],
    mut cluster: ClusterFeed,
    hub: &Hub,
    pacing: Pacing,
    passes: Option<usize>,
) -> Vec<String> {
    // Read before the first lists, a replay (as fast as it reads) would name nothing.
    super::wait_for_cluster(&cluster);
    let engine = super::engine_for(&mut cluster);
    let replay = Replay { captures, hub, pacing, passes };
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return on_one_thread(engine, cluster, replay);
    }
    let (mut feeding, mut joiner) = engine.split();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Handover, Option<EngineStats>)>(16);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut batch = Batch::new(hub);
            let mut pass = 0;
            loop {
                let (handover, pass_end) = match rx.recv_timeout(super::FLUSH_EVERY) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        batch.flush();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                if let Some(state) = super::newer_cluster(&mut cluster) {
                    joiner.set_cluster(state);
                    joiner.release(&mut batch.records);
                }
                joiner.take_over(handover, &mut batch.records);
                batch.maybe_flush();
                if let Some(front) = pass_end {
                    pass += 1;
                    batch.flush();
                    passed(hub, &EngineStats::joined(&front, joiner.stats()), pass);
                }
            }
        });
        let mut handed = Instant::now();
        let send = move |m, handed: &mut Instant| {
            *handed = Instant::now();
            tx.send(m).is_ok()
        };
        let errors = read(replay, |read| match read {
            Read::Frame(frame, frames) => {
                feeding.frame(frame, frames);
                !feeding.full() || send((feeding.take(), None), &mut handed)
            }
            // Paced, the reader sleeps between most frames: what it read goes over when it will
            // sleep a while, or has not handed anything over for a moment.
            Read::Sleeping(d)
                if !feeding.is_empty() && (d >= HAND_OVER_SLEEP || handed.elapsed() >= HAND_OVER_EVERY) =>
            {
                send((feeding.take(), None), &mut handed)
            }
            Read::Sleeping(_) => true,
            Read::PassEnd => send((feeding.finish(), Some(feeding.stats())), &mut handed),
        });
        // Hung up, the joiner's thread ends once it has published the rest.
        drop(send);
        errors
    })
}

/// What to replay, how, and to which hub.
#[derive(Clone, Copy)]
struct Replay<'a> {
    captures: &'a [CaptureFile],
    hub: &'a Hub,
    pacing: Pacing,
    passes: Option<usize>,
}

/// `run_passes` on one core: every stage on this thread.
fn on_one_thread(mut engine: Engine, mut cluster: ClusterFeed, replay: Replay<'_>) -> Vec<String> {
    let hub = replay.hub;
    let mut batch = Batch::new(hub);
    let mut pass = 0;
    read(replay, |read| {
        match read {
            Read::Frame(frame, frames) => {
                follow_cluster(&mut engine, &mut cluster, &mut batch.records);
                engine.sync_interfaces(frames);
                engine.on_frame(frame, &mut batch.records);
                batch.maybe_flush();
            }
            Read::Sleeping(d) if d >= HAND_OVER_SLEEP => batch.flush(),
            Read::Sleeping(_) => batch.maybe_flush(),
            Read::PassEnd => {
                // Each pass ends as a capture ends: what is open is closed, what waits is sent.
                engine.finish(&mut batch.records);
                batch.flush();
                pass += 1;
                passed(hub, &engine.stats(), pass);
            }
        }
        true
    })
}

/// A pass is over: the hub gets its counters; after the first, what podtap could not read is
/// said once.
fn passed(hub: &Hub, stats: &EngineStats, pass: usize) {
    hub.set_engine(*stats);
    if pass == 1 {
        for line in crate::analyze::unsupported_lines(stats) {
            tracing::warn!("{}", line.trim_start_matches("podtap: "));
        }
    }
}

/// A paced replay hands what it read over before a sleep this long, and at least this often.
const HAND_OVER_SLEEP: Duration = Duration::from_millis(2);
const HAND_OVER_EVERY: Duration = Duration::from_millis(10);

/// What the reading loop tells its consumer.
enum Read<'a, 'f> {
    /// The next frame (timestamps shifted as paced) of the capture `frames` reads.
    Frame(&'a Frame<'f>, &'a Frames<'f>),
    /// The replay waits this long for the clock: what is read may go out now.
    Sleeping(Duration),
    /// The end of a pass over every capture.
    PassEnd,
}

/// The replay's reading: paces and shifts frames, files them with the hub's packets, and tells
/// `take` (which says whether to go on). Returns the damage of any file.
fn read(replay: Replay<'_>, mut take: impl FnMut(Read<'_, '_>) -> bool) -> Vec<String> {
    let Replay { captures, hub, pacing, passes } = replay;
    let packets = hub.packets();
    let mut errors = Vec::new();
    let shift = pacing.realtime || pacing.looped;
    let mut pass_end_us = 0u64;
    let mut pass = 0;
    while passes.is_none_or(|n| pass < n) {
        pass += 1;
        for file in captures {
            let start_wall = Instant::now();
            // Paced, a pass starts now: the last one ended a moment ago in real time too (a
            // second's gap here put every pass a second further ahead of the clock). Unpaced,
            // passes a second apart.
            let gap = if pacing.realtime { 1 } else { 1_000_000 };
            let start_us = now_us().max(pass_end_us + gap);
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
                        if !take(Read::Sleeping(due - now)) {
                            return errors;
                        }
                        std::thread::sleep(due - now);
                    }
                }
                let frame = if shift { Frame { ts_us: start_us + offset, ..frame } } else { frame };
                pass_end_us = pass_end_us.max(frame.ts_us);
                if let Some(p) = &packets {
                    for (index, iface) in frames.interfaces().iter().enumerate().skip(named) {
                        p.name_interface(index as u32, iface.name.clone());
                        named = index + 1;
                    }
                    p.add(&frame);
                }
                if !take(Read::Frame(&frame, &frames)) {
                    return errors;
                }
            }
        }
        if !take(Read::PassEnd) {
            return errors;
        }
    }
    errors
}
