//! The front half of the engine: frames → dissected exchanges (decode, defragment, reassemble,
//! dissect), with the capture clock of every interface. On a node's agent this is all that runs;
//! what it finds goes to the hub's `Joiner`.

use crate::capture::file::Frames;
use crate::capture::{CaptureError, CaptureFile, Frame};
use crate::dissect::Dissected;
use crate::engine::Joiner;

use super::decoder::Decoder;
use super::dissector::Dissector;
use super::{Batch, EngineStats, PIPE_FRAMES};

/// Frames → dissected exchanges: a `Decoder` and one `Dissector`.
#[derive(Default)]
pub struct Observer {
    pub(super) decoder: Decoder,
    pub(super) dissector: Dissector,
    /// Connections are numbered by the frame that opened them (a file's runs), not in turn.
    numbered: bool,
    /// What dissectors on other threads counted for this observer (a sharded file run).
    pub(super) absorbed: EngineStats,
}

impl Observer {
    /// Numbers connections and DNS flows by the frame that opened them (its number in the
    /// capture, from 1), as a file's runs do however many threads share it. Live capture numbers
    /// them in turn: frames are uncounted there, and ids must stay small.
    pub fn numbered_by_frame(&mut self) {
        self.numbered = true;
    }

    /// Takes newly declared interfaces; whether there were any.
    pub fn sync_interfaces(&mut self, frames: &Frames<'_>) -> bool {
        self.decoder.sync_interfaces(frames)
    }

    /// Feeds one frame; what it finished waits for `take_items`.
    pub fn on_frame(&mut self, frame: &Frame<'_>) {
        if let Some(work) = self.decoder.decode(frame) {
            let number = self.numbered.then(|| self.decoder.frames());
            if let Some(whole) = self.dissector.on_work(work, number) {
                self.decoder.recycle(whole);
            }
        }
        if let Some(now) = self.decoder.after(frame) {
            self.dissector.sweep(now);
        }
    }

    /// Leaves out TCP traffic to or from `addr` (the agent's own connection to its hub, which
    /// would otherwise be observed, sent, and observed again).
    pub fn ignore(&mut self, addr: std::net::SocketAddr) {
        self.decoder.ignore(addr);
    }

    /// Makes room for interface `index` before its first frame.
    pub fn declare(&mut self, index: u32) {
        self.decoder.declare(index);
    }

    /// How far capture time has got on every active interface (see `Decoder::watermark`).
    pub fn watermark(&self) -> u64 {
        self.decoder.watermark()
    }

    /// For live sources: closes idle connections by the wall clock when no packet has arrived
    /// to move capture time forward.
    pub fn idle(&mut self, now_us: u64) {
        if let Some(now) = self.decoder.sweep_due(now_us) {
            self.dissector.sweep(now);
        }
    }

    /// The capture of `interface` ended: what was seen on it alone closes now
    /// (`Reassembler::end_interface`).
    pub fn end_interface(&mut self, interface: u32, now_us: u64) {
        self.dissector.end_interface(interface, now_us);
    }

    /// Counters so far: everything this half saw (the joiner adds what it named and merged).
    pub fn stats(&self) -> EngineStats {
        let mut stats = self.decoder.stats();
        stats.add(&self.dissector.stats());
        stats.add(&self.absorbed);
        stats
    }

    /// What the last frames finished: TCP exchanges, then DNS ones.
    pub fn take_items(&mut self) -> Vec<Dissected> {
        let mut items = Vec::new();
        self.dissector.move_items(&mut items);
        items
    }

    /// End of input: every connection closed, every query given up.
    pub fn finish(&mut self) -> Vec<Dissected> {
        self.dissector.finish();
        self.take_items()
    }

    /// The front half of a whole file: batches of steps to `send`, which says whether to go on.
    pub(crate) fn run(&mut self, file: &CaptureFile, mut send: impl FnMut(Batch) -> bool) -> Result<(), CaptureError> {
        self.numbered_by_frame();
        let mut feeding = Feeding::new(std::mem::take(self));
        let mut frames = file.frames();
        let mut result = Ok(());
        let mut going = true;
        while let Some(frame) = frames.next() {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            feeding.frame(&frame, &frames);
            if feeding.full() && !send(feeding.take().0) {
                going = false;
                break;
            }
        }
        if going {
            let mut last = feeding.finish().0;
            last.offset = frames.offset();
            send(last);
        }
        *self = feeding.observer;
        result
    }
}

/// A front fed frame by frame, handing what it finished to a `Joiner` in batches
/// (`Joiner::apply`): a file's run (`Observer::run`), and a replay's reading half on its own
/// thread. The records are the ones `Engine::on_frame` makes.
pub struct Feeding {
    observer: Observer,
    batch: Batch,
    since_step: u64,
    frames: usize,
}

impl Feeding {
    /// The front of an engine split in two (`Engine::split`).
    pub(crate) fn new(observer: Observer) -> Self {
        Self { observer, batch: Batch::default(), since_step: 0, frames: 0 }
    }

    /// One frame of `frames` (whose interfaces it takes when they changed).
    pub fn frame(&mut self, frame: &Frame<'_>, frames: &Frames<'_>) {
        if self.observer.sync_interfaces(frames) {
            self.batch.interfaces = Some(frames.interface_names());
        }
        self.observer.on_frame(frame);
        self.observer.dissector.move_items(&mut self.batch.items);
        self.batch.step(&mut self.since_step, frame.ts_us, self.observer.watermark());
        self.batch.offset = frames.offset();
        self.frames += 1;
    }

    /// Whether no frame waits to be handed over.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Whether enough frames wait to be worth handing over.
    pub fn full(&self) -> bool {
        self.frames >= PIPE_FRAMES
    }

    /// What was read since the last hand-over.
    pub fn take(&mut self) -> Handover {
        self.batch.after = self.since_step;
        self.frames = 0;
        Handover(std::mem::take(&mut self.batch))
    }

    /// The end of a pass over the input: every connection closed, every query given up; the last
    /// hand-over of it, after which the joiner finishes too.
    pub fn finish(&mut self) -> Handover {
        self.observer.dissector.finish();
        self.observer.dissector.move_items(&mut self.batch.items);
        self.batch.end(self.since_step, 0);
        self.since_step = 0;
        self.frames = 0;
        Handover(std::mem::take(&mut self.batch))
    }

    /// What this half counted so far.
    pub fn stats(&self) -> EngineStats {
        self.observer.stats()
    }
}

/// Frames a `Feeding` read, for its joiner.
pub struct Handover(Batch);

impl Joiner {
    /// Names and merges what a `Feeding` handed over, into `out`.
    pub fn take_over(&mut self, handover: Handover, out: &mut Vec<podtap_shared::Record>) {
        self.apply(0, handover.0, out);
    }
}
