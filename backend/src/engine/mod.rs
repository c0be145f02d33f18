//! The engine: drives frames through decode → reassemble → dissect → correlate and counts
//! everything it could not use. Synchronous and IO-free, so files, live capture and the demo
//! replay all share it; the caller decides where frames come from and where records go.

use std::sync::Arc;

use podtap_shared::Record;
use serde::{Deserialize, Serialize};

mod back;
mod decoder;
mod dissector;
mod front;
pub mod nodes;
mod shards;

pub use back::{CONN_STRIDE, Joiner, Origin};
pub use front::{Feeding, Handover, Observer};

use crate::capture::file::Frames;
use crate::capture::{CaptureError, CaptureFile, Frame};
use crate::decode::defrag::FragmentStats;
use crate::dissect::Dissected;
use crate::dissect::dns::DnsStats;
use crate::reassemble::ReassemblyStats;
use crate::resolve::ClusterState;

/// How often (in capture time) idle connections are swept.
const SWEEP_EVERY_US: u64 = 10_000_000;

/// What the engine saw, including everything it could not use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    pub frames: u64,
    pub bytes: u64,
    pub truncated_frames: u64,
    pub malformed_frames: u64,
    pub unsupported_link_frames: u64,
    pub unsupported_links: UnsupportedLinks,
    pub udp_frames: u64,
    pub other_frames: u64,
    pub http_exchanges: u64,
    pub tls_handshakes: u64,
    pub grpc_calls: u64,
    pub unmatched_responses: u64,
    /// Responses on connections whose request direction was never captured.
    pub one_way_responses: u64,
    /// HTTP/1 requests with a head httparse refused, read leniently and flagged.
    pub malformed_requests: u64,
    /// HTTP/1 responses paired with their request after lost bytes without proof.
    pub uncertain_pairings: u64,
    pub resyncs: u64,
    pub non_http_streams: u64,
    /// Records that waited for the cluster state to name a new pod's address, and got it.
    #[serde(default)]
    pub late_named: u64,
    /// Records that waited for a pod address's name in vain (`correlate::late`).
    #[serde(default)]
    pub late_unnamed: u64,
    /// Records waiting for a new pod's name now: a gauge, not a count (a test releases a pod's
    /// late status report once it sees one waiting).
    #[serde(default)]
    pub waiting_names: u64,
    pub dns_over_tcp: u64,
    /// Frames of podtap's own traffic (an agent's stream to its hub), left out.
    #[serde(default)]
    pub own_frames: u64,
    pub tcp: ReassemblyStats,
    pub dns: DnsStats,
    pub ip_fragments: FragmentStats,
}

/// Frames skipped per link type podtap does not decode: a few codes, the rest summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsupportedLinks {
    pub by_code: [(u32, u64); 4],
    pub others: u64,
}

impl EngineStats {
    /// One engine's counters from its two halves: what the observer saw and what the joiner
    /// named and merged.
    pub fn joined(front: &EngineStats, back: &EngineStats) -> EngineStats {
        EngineStats {
            http_exchanges: back.http_exchanges,
            tls_handshakes: back.tls_handshakes,
            grpc_calls: back.grpc_calls,
            unmatched_responses: back.unmatched_responses,
            one_way_responses: back.one_way_responses,
            malformed_requests: back.malformed_requests,
            uncertain_pairings: back.uncertain_pairings,
            resyncs: back.resyncs,
            non_http_streams: back.non_http_streams,
            late_named: back.late_named,
            late_unnamed: back.late_unnamed,
            waiting_names: back.waiting_names,
            ..*front
        }
    }
}

/// `a.f += b.f` for every listed field.
macro_rules! add_fields {
    ($a:expr, $b:expr; $($f:ident),* $(,)?) => { $( $a.$f += $b.$f; )* };
}

impl EngineStats {
    /// Adds another capture's counters (several nodes' files, several agents).
    pub fn add(&mut self, o: &EngineStats) {
        add_fields!(self, o; frames, bytes, truncated_frames, malformed_frames, unsupported_link_frames,
            udp_frames, other_frames, http_exchanges, tls_handshakes, grpc_calls, unmatched_responses,
            one_way_responses, malformed_requests, uncertain_pairings, resyncs, non_http_streams, dns_over_tcp,
            own_frames, late_named, late_unnamed, waiting_names);
        add_fields!(self.tcp, o.tcp; segments, connections, out_of_order_segments, retransmitted_bytes, gaps,
            gap_bytes, connections_over_limit, idle_closed, copies, interface_gone);
        add_fields!(self.dns, o.dns; queries, responses, malformed, unmatched_responses, retransmitted_queries,
            timed_out, over_limit, copies);
        add_fields!(self.ip_fragments, o.ip_fragments; fragments, reassembled, invalid);
        for (code, n) in o.unsupported_links.seen() {
            // A slot for the code (or the rest), then the other frames into it.
            self.unsupported_links.count(code);
            self.unsupported_links.add(code, n - 1);
        }
    }
}

impl UnsupportedLinks {
    /// `n` more frames of link type `code`.
    fn add(&mut self, code: u32, n: u64) {
        match self.by_code.iter_mut().find(|(c, _)| *c == code) {
            Some(slot) => slot.1 += n,
            None => self.others += n,
        }
    }

    pub(crate) fn count(&mut self, code: u32) {
        match self.by_code.iter_mut().find(|(c, n)| *c == code || *n == 0) {
            Some(slot) => *slot = (code, slot.1 + 1),
            None => self.others += 1,
        }
    }

    /// (code, frames) for every link type seen.
    pub fn seen(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.by_code.iter().copied().filter(|(_, n)| *n > 0)
    }
}

/// One engine per capture (or per live node): its connection ids and record ids are unique.
/// Two halves: an `Observer` turns frames into dissected exchanges (decode, defragment,
/// reassemble, dissect), a `Joiner` turns those into records (name, merge). They run one after
/// the other on a frame; for a whole file on two threads, or with the front sharded by
/// connection over more (`run_file_on`); for a replay on two (`split`): always with the same
/// records. On a cluster, each node's agent runs an observer and the hub one joiner.
pub struct Engine {
    front: Observer,
    back: Joiner,
}

/// What the front hands the back for one frame that finished exchanges: flush up to `before`
/// (the frames since the last step moved capture time that far), take `items` at `now_us`, then
/// flush up to `watermark`.
pub(crate) struct Step {
    before: u64,
    now_us: u64,
    watermark: u64,
    /// How many of the batch's items are this frame's (they follow the previous step's).
    items: usize,
}

/// Frames the front reads before it hands a batch of steps to the back.
const PIPE_FRAMES: usize = 2048;

impl Engine {
    pub fn new(cluster: Arc<ClusterState>) -> Self {
        Self { front: Observer::default(), back: Joiner::new(cluster) }
    }

    /// One record per observation: every interface that saw a request reports it on its own
    /// (`analyze --per-interface`, and tests of single interfaces).
    pub fn per_interface(mut self) -> Self {
        self.back.per_interface();
        self
    }

    /// Numbers connections and DNS flows by the frame that opened them, as a file's runs do
    /// (`Observer::numbered_by_frame`): frame by frame, the records of `run_file`.
    pub fn numbered_by_frame(mut self) -> Self {
        self.front.numbered_by_frame();
        self
    }

    /// The two halves apart, for a source read on one thread and joined on another: a replay's
    /// `Feeding` hands the joiner its batches (`Joiner::take_over`).
    pub fn split(self) -> (Feeding, Joiner) {
        (Feeding::new(self.front), self.back)
    }

    /// Names records with a newer cluster state from now on.
    pub fn set_cluster(&mut self, cluster: Arc<ClusterState>) {
        self.back.set_cluster(cluster);
    }

    /// An engine that holds what it dissects until `release` (the cluster state is not there
    /// yet): see `Joiner::hold`.
    pub fn holding(mut self) -> Self {
        self.back.hold();
        self
    }

    /// The cluster state is live: records wait up to `wait_us` for a new pod's name
    /// (`Joiner::await_names`).
    pub fn awaiting_names(mut self, wait_us: u64) -> Self {
        self.back.await_names(wait_us);
        self
    }

    /// Names what was held with the cluster state there is now; its records go to `out`.
    pub fn release(&mut self, out: &mut Vec<Record>) {
        self.back.release(out);
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats::joined(&self.front.stats(), self.back.stats())
    }

    /// Takes the interface names a capture file has declared so far (index = `Frame::interface`).
    pub fn sync_interfaces(&mut self, frames: &Frames<'_>) {
        if self.front.sync_interfaces(frames) {
            self.back.origin_mut(0).set_interfaces(frames.interface_names());
        }
    }

    /// Names interface `index` (`Frame::interface`) for the records seen on it.
    pub fn name_interface(&mut self, index: u32, name: Option<String>) {
        self.front.declare(index);
        self.back.origin_mut(0).name_interface(index as usize, name);
    }

    /// For live sources: closes idle connections by the wall clock when no packet has arrived to
    /// move capture time forward, so a quiet node still emits its last exchanges.
    pub fn idle(&mut self, now_us: u64, out: &mut Vec<Record>) {
        self.front.idle(now_us);
        // Called once every ring is drained: nothing older than now is still on its way.
        let items = self.front.take_items();
        self.back.take(0, items, now_us, out);
        self.back.flush(now_us, out);
    }

    /// The capture of `interface` ended (live: it went away and its ring was drained); what was
    /// seen on it alone is finished now, into `out`.
    pub fn end_interface(&mut self, interface: u32, now_us: u64, out: &mut Vec<Record>) {
        self.front.end_interface(interface, now_us);
        let items = self.front.take_items();
        self.back.take(0, items, now_us, out);
    }

    /// Feeds one frame; finished records are appended to `out`.
    pub fn on_frame(&mut self, frame: &Frame<'_>, out: &mut Vec<Record>) {
        self.front.on_frame(frame);
        let items = self.front.take_items();
        self.back.take(0, items, frame.ts_us, out);
        if self.back.waiting() {
            self.back.flush(self.front.watermark(), out);
        }
    }

    /// End of input: closes every connection and emits what is still pending.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        let items = self.front.finish();
        self.back.finish(0, items, out);
    }

    /// Runs a whole capture file through the engine, calling `sink` with each batch of records.
    /// Frames before any damage are all used; the damage itself is returned after `finish`.
    pub fn run_file(&mut self, file: &CaptureFile, sink: impl FnMut(&mut Vec<Record>)) -> Result<(), CaptureError> {
        self.run_file_with_progress(file, sink, |_| {})
    }

    /// `run_file`, telling `progress` how many bytes of the file are done every so often, on as
    /// many threads as `Engine::threads` says: the same records in the same order, in less time.
    pub fn run_file_with_progress(
        &mut self,
        file: &CaptureFile,
        sink: impl FnMut(&mut Vec<Record>),
        progress: impl FnMut(usize),
    ) -> Result<(), CaptureError> {
        self.run_file_on(file, Self::threads(), sink, progress)
    }

    /// Threads a file's run uses by default: the machine's cores, and three on two (a reading
    /// thread, one shard and the joiner). Four measured as fast as three in session 24; once the
    /// interfaces' reordering let frames go while still in the cache, three took 9% less wall
    /// and 12% less CPU than four on the bench pcapng (BENCHMARKS.md, session 29).
    pub fn threads() -> usize {
        match std::thread::available_parallelism().map_or(1, usize::from) {
            1 => 1,
            2 => 3,
            n => n,
        }
    }

    /// `run_file_with_progress` on `threads` threads: one reads, dissects, names and merges on
    /// this one (`run_file_serially`); two reads and dissects on its own thread beside this one;
    /// more shard the dissecting by connection over all but two (`run_file_sharded`).
    pub fn run_file_on(
        &mut self,
        file: &CaptureFile,
        threads: usize,
        mut sink: impl FnMut(&mut Vec<Record>),
        mut progress: impl FnMut(usize),
    ) -> Result<(), CaptureError> {
        match threads {
            0 | 1 => self.run_file_serially(file, sink, progress),
            2 => {
                let Engine { front, back } = self;
                let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
                std::thread::scope(|scope| {
                    let reader = scope.spawn(move || front.run(file, |batch| tx.send(batch).is_ok()));
                    let mut out = Vec::new();
                    for batch in rx {
                        deliver(back, batch, &mut out, &mut sink, &mut progress);
                    }
                    reader.join().expect("the reading thread does not panic")
                })
            }
            n => self.run_file_sharded(file, n - 2, sink, progress),
        }
    }

    /// `run_file_with_progress` with the front half dealt over `shards` threads by connection,
    /// beside a reading thread and this one (which names, merges and calls `sink`): the records
    /// one thread gives, in the same order, with every core busy.
    pub fn run_file_sharded(
        &mut self,
        file: &CaptureFile,
        shards: usize,
        mut sink: impl FnMut(&mut Vec<Record>),
        mut progress: impl FnMut(usize),
    ) -> Result<(), CaptureError> {
        let Engine { front, back } = self;
        front.numbered_by_frame();
        let mut out = Vec::new();
        let (result, counted) = shards::run(&mut front.decoder, file, shards, |batch| {
            deliver(back, batch, &mut out, &mut sink, &mut progress);
        });
        front.absorbed.add(&counted);
        result
    }

    /// `run_file_with_progress` on this thread alone (one core): the same batches, applied as
    /// they are read.
    pub fn run_file_serially(
        &mut self,
        file: &CaptureFile,
        mut sink: impl FnMut(&mut Vec<Record>),
        mut progress: impl FnMut(usize),
    ) -> Result<(), CaptureError> {
        let Engine { front, back } = self;
        let mut out = Vec::new();
        front.run(file, |batch| {
            deliver(back, batch, &mut out, &mut sink, &mut progress);
            true
        })
    }
}

/// One batch of a file through the joiner, its records to `sink`, how far it got to `progress`.
fn deliver(
    back: &mut Joiner,
    batch: Batch,
    out: &mut Vec<Record>,
    sink: &mut impl FnMut(&mut Vec<Record>),
    progress: &mut impl FnMut(usize),
) {
    let offset = batch.offset;
    back.apply(0, batch, out);
    if !out.is_empty() {
        sink(out);
        out.clear();
    }
    progress(offset);
}

/// Frames the front read, as steps for the back.
#[derive(Default)]
pub(crate) struct Batch {
    steps: Vec<Step>,
    /// The items of every step, in order.
    items: Vec<Dissected>,
    /// How far capture time got after the last step (frames that finished nothing).
    after: u64,
    /// The file's interface names, when they changed.
    interfaces: Option<Vec<Option<String>>>,
    offset: usize,
    /// The end of the file: the back finishes after this batch.
    last: bool,
    /// Items the steps so far hold (the rest are the current frame's).
    stepped: usize,
}

impl Batch {
    /// One frame read: the items added since the last step are its step's, taken at `now_us`
    /// and flushed to `watermark`; a frame that finished nothing moves `since_step` on instead.
    fn step(&mut self, since_step: &mut u64, now_us: u64, watermark: u64) {
        match self.items.len() - self.stepped {
            0 => *since_step = (*since_step).max(watermark),
            items => {
                self.steps.push(Step { before: *since_step, now_us, watermark, items });
                self.stepped = self.items.len();
                *since_step = 0;
            }
        }
    }

    /// End of input: the items added since the last step are what finishing gave; the back
    /// finishes after this batch, which ends at `offset`.
    fn end(&mut self, since_step: u64, offset: usize) {
        self.after = since_step;
        let items = self.items.len() - self.stepped;
        self.steps.push(Step { before: since_step, now_us: u64::MAX, watermark: u64::MAX, items });
        self.stepped = self.items.len();
        self.offset = offset;
        self.last = true;
    }
}
