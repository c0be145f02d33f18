//! The front half of a whole file across cores. One thread reads and decodes every frame and
//! deals its work to a shard by address pair (`Work::shard`: both directions and every
//! interface's copy of a connection on one shard, fragments put back together first); each
//! shard's dissector reassembles and dissects its connections; the joiner's thread puts their
//! exchanges back in the order one front gives them — frame by frame, and what a sweep or the end
//! closed by connection id and query order (`Place`) — so the back takes the same steps and
//! makes the same records. Connections are numbered by the frame that opened them, which no
//! shard needs another to know. The joiner's thread makes the exchanges into records: shards that
//! made them (session 27) cost more than they saved on two cores — every name in a record is a
//! reference count, and those counts' cache lines bounced between the shards and the joiner
//! (BENCHMARKS.md, session 28).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::capture::{CaptureError, CaptureFile};
use crate::dissect::Dissected;
use crate::reassemble::Limits;

use super::decoder::Decoder;
use super::dissector::{Dissector, Place, Work};
use super::{Batch, EngineStats, PIPE_FRAMES};

/// What a shard is given, with the number of the frame it came with.
enum Job<'a> {
    Frame(u64, Work<'a>),
    /// Every shard closes what is idle as of this capture time.
    Sweep(u64, u64),
    Finish,
}

/// The frame number the end's exchanges go with.
const FINISH: u64 = u64::MAX;

/// What a shard made of one batch of jobs: exchanges, and where each frame's groups end.
struct Made {
    items: Vec<Dissected>,
    marks: Vec<(u64, Place, usize)>,
    /// After the end: what the shard counted.
    stats: Option<EngineStats>,
}

/// The reader's way to one shard: its jobs there, and its emptied job vectors back.
struct Lane<'a> {
    jobs: SyncSender<Vec<Job<'a>>>,
    spare: Receiver<Vec<Job<'a>>>,
}

/// One frame as the reader saw it.
struct Tick {
    ts_us: u64,
    watermark: u64,
    sweep: bool,
}

/// One batch of frames as the reader saw them, for the joiner's thread.
#[derive(Default)]
struct Meta {
    first: u64,
    ticks: Vec<Tick>,
    interfaces: Option<Vec<Option<String>>>,
    offset: usize,
    last: bool,
}

/// The front half of `file` over `shards` dissectors: one batch at a time to `deliver`, exactly
/// as `Observer::run` hands them. Returns what the shards counted (the decoder keeps its own).
pub(super) fn run(
    decoder: &mut Decoder,
    file: &CaptureFile,
    shards: usize,
    mut deliver: impl FnMut(Batch),
) -> (Result<(), CaptureError>, EngineStats) {
    let shards = shards.max(1);
    // The bound on connections held at once is the whole front's, shared.
    let limits = Limits { max_connections: Limits::default().max_connections.div_ceil(shards), ..Limits::default() };
    std::thread::scope(|scope| {
        // Room for 16 batches (~32k frames, ~20 MB more RSS) between stages: three threads
        // share two cores, and a stage the scheduler left out for a time slice should not stop
        // the others. Against 4: lower median wall in three noisy series in session 30, no
        // difference the noise let through on a quieter day in session 31 (BENCHMARKS.md).
        let (meta_tx, meta_rx) = sync_channel::<Meta>(32);
        let mut lanes = Vec::new();
        let mut made_rxs = Vec::new();
        for _ in 0..shards {
            let (job_tx, job_rx) = sync_channel::<Vec<Job<'_>>>(16);
            let (made_tx, made_rx) = sync_channel::<Made>(16);
            // A shard's emptied job vectors go back to the reader to be filled again.
            let (spare_tx, spare_rx) = sync_channel::<Vec<Job<'_>>>(SPARE);
            scope.spawn(move || dissect(limits, job_rx, made_tx, spare_tx));
            lanes.push(Lane { jobs: job_tx, spare: spare_rx });
            made_rxs.push(made_rx);
        }
        let reader = scope.spawn(move || read(decoder, file, &lanes, &meta_tx));
        let stats = combine(meta_rx, made_rxs, &mut deliver);
        (reader.join().expect("the reading thread does not panic"), stats)
    })
}

/// Emptied job vectors held for the reader per shard. A batch's vector (~2,000 jobs of 160
/// bytes) made new for every batch and freed on the shard's thread had the kernel clear fresh
/// pages for each (`clear_page_erms`, 1.3% of a run's samples on the reader's thread).
const SPARE: usize = 4;

/// The reading thread: every frame decoded, its work to its shard, its tick to the joiner's
/// thread; the same sweeps one front makes, to every shard. Each shard's job vectors come back
/// to be filled again.
fn read<'a>(
    decoder: &mut Decoder,
    file: &'a CaptureFile,
    shards: &[Lane<'a>],
    metas: &SyncSender<Meta>,
) -> Result<(), CaptureError> {
    let mut frames = file.frames();
    let mut result = Ok(());
    let mut jobs: Vec<Vec<Job<'a>>> = shards.iter().map(|_| Vec::new()).collect();
    let mut meta = Meta { first: decoder.frames() + 1, ..Meta::default() };
    let send = |jobs: &mut Vec<Vec<Job<'a>>>, meta: Meta| {
        // The next batch's vector is one the shard gave back, or starts as large as this one
        // grew: no growing it again.
        let sent = shards.iter().zip(jobs.iter_mut()).all(|(lane, j)| {
            let room = j.len();
            let next = lane.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(room));
            lane.jobs.send(std::mem::replace(j, next)).is_ok()
        });
        sent && metas.send(meta).is_ok()
    };
    while let Some(frame) = frames.next() {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        if decoder.sync_interfaces(&frames) {
            meta.interfaces = Some(frames.interface_names());
        }
        if let Some(work) = decoder.decode(&frame) {
            let shard = work.shard(shards.len());
            jobs[shard].push(Job::Frame(decoder.frames(), work));
        }
        let sweep = decoder.after(&frame);
        if let Some(now) = sweep {
            jobs.iter_mut().for_each(|j| j.push(Job::Sweep(decoder.frames(), now)));
        }
        meta.ticks.push(Tick { ts_us: frame.ts_us, watermark: decoder.watermark(), sweep: sweep.is_some() });
        if decoder.frames().is_multiple_of(PIPE_FRAMES as u64) {
            meta.offset = frames.offset();
            let ticks = Vec::with_capacity(PIPE_FRAMES);
            let next = Meta { first: decoder.frames() + 1, ticks, ..Meta::default() };
            if !send(&mut jobs, std::mem::replace(&mut meta, next)) {
                return result;
            }
        }
    }
    jobs.iter_mut().for_each(|j| j.push(Job::Finish));
    meta.offset = frames.offset();
    meta.last = true;
    send(&mut jobs, meta);
    result
}

/// A shard's thread: its jobs through its own dissector; each emptied batch back to `spare`.
fn dissect<'a>(limits: Limits, jobs: Receiver<Vec<Job<'a>>>, made: SyncSender<Made>, spare: SyncSender<Vec<Job<'a>>>) {
    let mut dissector = Dissector::new(limits);
    let mut marks = Vec::new();
    // Each batch's vectors start as large as the last one's grew.
    let mut room = (0, 0);
    for mut batch in jobs {
        let mut out = Made { items: Vec::with_capacity(room.0), marks: Vec::with_capacity(room.1), stats: None };
        for job in batch.drain(..) {
            let number = match job {
                Job::Frame(number, work) => {
                    dissector.work_into(work, number, &mut out.items, &mut marks);
                    number
                }
                Job::Sweep(number, now) => {
                    dissector.sweep_into(now, &mut out.items, &mut marks);
                    number
                }
                Job::Finish => {
                    dissector.finish_into(&mut out.items, &mut marks);
                    out.stats = Some(dissector.stats());
                    FINISH
                }
            };
            out.marks.extend(marks.drain(..).map(|(place, end)| (number, place, end)));
        }
        room = (out.items.len(), out.marks.len());
        // The reader may have all it can hold: then this one is freed.
        let _ = spare.try_send(batch);
        if made.send(out).is_err() {
            return;
        }
    }
}

/// One shard's output as the joiner's thread takes it.
struct Taken {
    items: std::vec::IntoIter<Dissected>,
    marks: std::iter::Peekable<std::vec::IntoIter<(u64, Place, usize)>>,
    /// Items taken from this batch so far.
    at: usize,
}

impl Taken {
    /// The next group if it belongs to frame `number`.
    fn group(&mut self, number: u64) -> Option<(Place, std::iter::Take<&mut std::vec::IntoIter<Dissected>>)> {
        let (_, place, end) = self.marks.next_if(|(n, _, _)| *n == number)?;
        let n = end - self.at;
        self.at = end;
        Some((place, self.items.by_ref().take(n)))
    }
}

/// The joiner's thread: every shard's exchanges back in one front's order, as its batches.
/// Returns what the shards counted.
fn combine(metas: Receiver<Meta>, shards: Vec<Receiver<Made>>, deliver: &mut impl FnMut(Batch)) -> EngineStats {
    let mut stats = EngineStats::default();
    let mut since_step = 0u64;
    let mut taken: Vec<Taken> = Vec::new();
    for meta in metas {
        taken.clear();
        for rx in &shards {
            let Ok(made) = rx.recv() else { return stats };
            if let Some(s) = made.stats {
                stats.add(&s);
            }
            taken.push(Taken { items: made.items.into_iter(), marks: made.marks.into_iter().peekable(), at: 0 });
        }
        let mut batch = Batch { interfaces: meta.interfaces, ..Batch::default() };
        for (number, tick) in (meta.first..).zip(&meta.ticks) {
            gather(&mut taken, number, tick.sweep, &mut batch.items);
            batch.step(&mut since_step, tick.ts_us, tick.watermark);
        }
        batch.after = since_step;
        batch.offset = meta.offset;
        if meta.last {
            gather(&mut taken, FINISH, true, &mut batch.items);
            batch.end(since_step, meta.offset);
        }
        deliver(batch);
    }
    stats
}

/// Frame `number`'s exchanges from every shard onto `to`, in one front's order. Without a sweep
/// only the shard of its connection made any, already in order.
fn gather(taken: &mut [Taken], number: u64, sweep: bool, to: &mut Vec<Dissected>) {
    if !sweep {
        for t in taken.iter_mut() {
            while let Some((_, items)) = t.group(number) {
                to.extend(items);
            }
        }
        return;
    }
    let mut groups: Vec<(Place, Vec<Dissected>)> = Vec::new();
    for t in taken.iter_mut() {
        while let Some((place, items)) = t.group(number) {
            groups.push((place, items.collect()));
        }
    }
    groups.sort_by_key(|(place, _)| *place);
    to.extend(groups.into_iter().flat_map(|(_, items)| items));
}
