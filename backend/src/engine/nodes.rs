//! Captures from several nodes at once (`analyze FILE@NODE…`): one observer per file on its own
//! thread, one joiner for them all, fed in capture-time order across the files, so a request seen
//! on two nodes — before DNAT on the client's, after it on the server's — is merged like one seen
//! on two interfaces of one node.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, sync_channel};

use podtap_shared::{Name, Record};

use super::{Batch, EngineStats, Joiner, Observer, Step};
use crate::capture::{CaptureError, CaptureFile};
use crate::dissect::Dissected;

/// One node's capture.
pub struct NodeCapture<'a> {
    pub file: &'a CaptureFile,
    pub node: Option<Name>,
}

/// What one file's observer has handed over and not yet been joined.
struct Source {
    rx: Receiver<Batch>,
    steps: VecDeque<Step>,
    items: std::vec::IntoIter<Dissected>,
    /// How far this file's capture time has got in what was joined (`u64::MAX` when done).
    progress: u64,
    /// Capture time after the current batch's last step.
    after: u64,
    last: bool,
    done: bool,
}

impl Source {
    /// Makes sure a step is waiting, unless the file is done.
    fn refill(&mut self, joiner: &mut Joiner, origin: usize) {
        while !self.done && self.steps.is_empty() {
            self.progress = self.progress.max(self.after);
            if self.last {
                self.done = true;
                self.progress = u64::MAX;
                return;
            }
            let Ok(batch) = self.rx.recv() else {
                self.done = true;
                self.progress = u64::MAX;
                return;
            };
            if let Some(names) = batch.interfaces {
                joiner.origin_mut(origin).set_interfaces(names);
            }
            self.steps = batch.steps.into();
            self.items = batch.items.into_iter();
            self.after = batch.after;
            self.last = batch.last;
        }
    }
}

/// Runs every capture through its own observer and all of them through `joiner` (origin `i` is
/// capture `i`), calling `sink` with each batch of records. Returns each file's counters and
/// damage (frames before the damage are all used).
pub fn run_files(
    captures: &[NodeCapture<'_>],
    joiner: &mut Joiner,
    mut sink: impl FnMut(&mut Vec<Record>),
) -> Vec<(EngineStats, Result<(), CaptureError>)> {
    for (i, c) in captures.iter().enumerate() {
        joiner.origin_mut(i).node = c.node.clone();
    }
    std::thread::scope(|scope| {
        let mut sources = Vec::new();
        let mut readers = Vec::new();
        for c in captures {
            let (tx, rx) = sync_channel::<Batch>(4);
            let file = c.file;
            readers.push(scope.spawn(move || {
                let mut observer = Observer::default();
                let result = observer.run(file, |batch| tx.send(batch).is_ok());
                (observer.stats(), result)
            }));
            sources.push(Source {
                rx,
                steps: VecDeque::new(),
                items: Vec::new().into_iter(),
                progress: 0,
                after: 0,
                last: false,
                done: false,
            });
        }
        let mut out = Vec::new();
        loop {
            for (i, s) in sources.iter_mut().enumerate() {
                s.refill(joiner, i);
            }
            // The earliest step of any file goes first.
            let next = sources.iter().enumerate().filter_map(|(i, s)| s.steps.front().map(|st| (st.now_us, i))).min();
            let Some((_, i)) = next else { break };
            let s = &mut sources[i];
            let step = s.steps.pop_front().expect("a step");
            s.progress = s.progress.max(step.before);
            let items: Vec<Dissected> = s.items.by_ref().take(step.items).collect();
            joiner.take(i, items, step.now_us, &mut out);
            sources[i].progress = sources[i].progress.max(step.watermark);
            // Nothing older than every file's progress can still come.
            let watermark = sources.iter().map(|s| s.progress).min().unwrap_or(u64::MAX);
            if watermark != u64::MAX {
                joiner.flush(watermark, &mut out);
            }
            if !out.is_empty() {
                sink(&mut out);
                out.clear();
            }
        }
        joiner.finish(0, Vec::new(), &mut out);
        if !out.is_empty() {
            sink(&mut out);
        }
        readers.into_iter().map(|r| r.join().expect("the reading thread does not panic")).collect()
    })
}
