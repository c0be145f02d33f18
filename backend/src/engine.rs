//! The engine: drives frames through decode → reassemble → dissect → correlate and counts
//! everything it could not use. Synchronous and IO-free, so files, live capture and the demo
//! replay all share it; the caller decides where frames come from and where records go.

use std::sync::Arc;

use podtap_shared::Record;
use serde::Serialize;

use crate::capture::file::Frames;
use crate::capture::{CaptureError, CaptureFile, Frame};
use crate::correlate;
use crate::correlate::merge::Merger;
use crate::decode::defrag::{Defragmenter, FragmentStats};
use crate::decode::{DecodeError, Decoded, decode, transport};
use crate::dissect::any::AnyProtocol;
use crate::dissect::dns::{self, DnsStats, DnsTracker};
use crate::dissect::{Dissected, Exchange};
use crate::reassemble::{Limits, Reassembler, ReassemblyStats};
use crate::resolve::ClusterState;

/// How often (in capture time) idle connections are swept.
const SWEEP_EVERY_US: u64 = 10_000_000;

/// What the engine saw, including everything it could not use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
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
    pub dns_over_tcp: u64,
    pub tcp: ReassemblyStats,
    pub dns: DnsStats,
    pub ip_fragments: FragmentStats,
}

/// Frames skipped per link type podtap does not decode: a few codes, the rest summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UnsupportedLinks {
    pub by_code: [(u32, u64); 4],
    pub others: u64,
}

impl UnsupportedLinks {
    fn count(&mut self, code: u32) {
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

/// Capture time of the newest frame of each interface: live rings are drained one after another,
/// so one interface's frames can run ahead of another's. An interface declared before any frame
/// starts at the first frame of any; one declared later, at the newest time seen so far.
#[derive(Default)]
struct Clock {
    newest: Vec<Option<u64>>,
    started: bool,
}

impl Clock {
    /// Interfaces declared or heard from so far.
    fn declared(&self) -> usize {
        self.newest.len()
    }

    /// Makes room for interface `index` (declared, not heard from yet).
    fn declare(&mut self, index: u32) {
        let i = index as usize;
        if self.newest.len() <= i {
            let start = self.newest.iter().flatten().copied().max();
            self.newest.resize(i + 1, start);
        }
    }

    fn tick(&mut self, index: u32, ts_us: u64) {
        self.declare(index);
        if !self.started {
            self.started = true;
            self.newest.iter_mut().for_each(|t| *t = Some(t.unwrap_or(ts_us)));
        }
        let t = &mut self.newest[index as usize];
        *t = Some(t.unwrap_or(0).max(ts_us));
    }

    /// How far capture time has got on every active interface: the oldest of the newest frames
    /// of the interfaces heard from in the last few seconds. Observations are merged up to it, so
    /// a partner still waiting in another interface's ring is not left behind.
    fn watermark(&self) -> u64 {
        const ACTIVE_US: u64 = 5_000_000;
        let latest = self.newest.iter().flatten().copied().max().unwrap_or(0);
        self.newest.iter().flatten().copied().filter(|t| *t + ACTIVE_US >= latest).min().unwrap_or(latest)
    }
}

/// One engine per capture (or per live node): its connection ids and record ids are unique.
/// Two halves: `Front` turns frames into dissected exchanges (decode, defragment, reassemble,
/// dissect), `Back` turns those into records (name, merge). They run one after the other on a
/// frame, or, for a whole file, on two threads (`run_file_with_progress`), with the same records.
pub struct Engine {
    front: Front,
    back: Back,
}

/// Frames → dissected exchanges.
struct Front {
    tcp: Reassembler<AnyProtocol>,
    dns: DnsTracker,
    dns_out: Vec<Exchange>,
    defrag: Defragmenter,
    last_sweep_us: u64,
    clock: Clock,
    scratch: Vec<Dissected>,
    stats: EngineStats,
}

/// Dissected exchanges → records.
struct Back {
    cluster: Arc<ClusterState>,
    interfaces: Vec<Option<String>>,
    next_id: u64,
    /// One record per request (`None`: one per observation).
    merger: Option<Merger>,
    stats: EngineStats,
}

/// What the front hands the back for one frame that finished exchanges: flush up to `before`
/// (the frames since the last step moved capture time that far), take `items` at `now_us`, then
/// flush up to `watermark`.
struct Step {
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
        Self {
            front: Front {
                tcp: Reassembler::new(Limits::default()),
                dns: DnsTracker::default(),
                dns_out: Vec::new(),
                defrag: Defragmenter::default(),
                last_sweep_us: 0,
                clock: Clock::default(),
                scratch: Vec::new(),
                stats: EngineStats::default(),
            },
            back: Back {
                cluster,
                interfaces: Vec::new(),
                next_id: 1,
                merger: Some(Merger::default()),
                stats: EngineStats::default(),
            },
        }
    }

    /// One record per observation: every interface that saw a request reports it on its own
    /// (`analyze --per-interface`, and tests of single interfaces).
    pub fn per_interface(mut self) -> Self {
        self.back.merger = None;
        self
    }

    /// Names records with a newer cluster state from now on.
    pub fn set_cluster(&mut self, cluster: Arc<ClusterState>) {
        self.back.cluster = cluster;
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        let (f, b) = (&self.front, &self.back.stats);
        EngineStats {
            http_exchanges: b.http_exchanges,
            tls_handshakes: b.tls_handshakes,
            grpc_calls: b.grpc_calls,
            unmatched_responses: b.unmatched_responses,
            one_way_responses: b.one_way_responses,
            malformed_requests: b.malformed_requests,
            uncertain_pairings: b.uncertain_pairings,
            resyncs: b.resyncs,
            non_http_streams: b.non_http_streams,
            tcp: f.tcp.stats,
            dns: f.dns.stats,
            ip_fragments: f.defrag.stats,
            ..f.stats
        }
    }

    /// Takes the interface names a capture file has declared so far (index = `Frame::interface`).
    pub fn sync_interfaces(&mut self, frames: &Frames<'_>) {
        if self.front.sync_interfaces(frames) {
            self.back.interfaces = frames.interfaces().iter().map(|i| i.name.clone()).collect();
        }
    }

    /// Names interface `index` (`Frame::interface`) for the records seen on it.
    pub fn name_interface(&mut self, index: u32, name: Option<String>) {
        self.front.clock.declare(index);
        let index = index as usize;
        if self.back.interfaces.len() <= index {
            self.back.interfaces.resize(index + 1, None);
        }
        self.back.interfaces[index] = name;
    }

    /// For live sources: closes idle connections by the wall clock when no packet has arrived to
    /// move capture time forward, so a quiet node still emits its last exchanges.
    pub fn idle(&mut self, now_us: u64, out: &mut Vec<Record>) {
        if now_us.saturating_sub(self.front.last_sweep_us) > SWEEP_EVERY_US {
            self.front.sweep(now_us);
        }
        // Called once every ring is drained: nothing older than now is still on its way.
        let items = self.front.take_items();
        self.back.take(items, now_us, out);
        self.back.flush(now_us, out);
    }

    /// Feeds one frame; finished records are appended to `out`.
    pub fn on_frame(&mut self, frame: &Frame<'_>, out: &mut Vec<Record>) {
        self.front.on_frame(frame);
        let items = self.front.take_items();
        self.back.take(items, frame.ts_us, out);
        if self.back.waiting() {
            self.back.flush(self.front.clock.watermark(), out);
        }
    }

    /// End of input: closes every connection and emits what is still pending.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        let items = self.front.finish();
        self.back.finish(items, out);
    }

    /// Runs a whole capture file through the engine, calling `sink` with each batch of records.
    /// Frames before any damage are all used; the damage itself is returned after `finish`.
    pub fn run_file(&mut self, file: &CaptureFile, sink: impl FnMut(&mut Vec<Record>)) -> Result<(), CaptureError> {
        self.run_file_with_progress(file, sink, |_| {})
    }

    /// `run_file`, telling `progress` how many bytes of the file are done every so often. With a
    /// second core, the front half reads and dissects on its own thread while this one names,
    /// merges and calls `sink`: the same records in the same order, in less time.
    pub fn run_file_with_progress(
        &mut self,
        file: &CaptureFile,
        mut sink: impl FnMut(&mut Vec<Record>),
        mut progress: impl FnMut(usize),
    ) -> Result<(), CaptureError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores < 2 {
            return self.run_file_serially(file, sink, progress);
        }
        let Engine { front, back } = self;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || front.run(file, |batch| tx.send(batch).is_ok()));
            let mut out = Vec::new();
            for batch in rx {
                let offset = batch.offset;
                back.apply(batch, &mut out);
                if !out.is_empty() {
                    sink(&mut out);
                    out.clear();
                }
                progress(offset);
            }
            reader.join().expect("the reading thread does not panic")
        })
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
            let offset = batch.offset;
            back.apply(batch, &mut out);
            if !out.is_empty() {
                sink(&mut out);
                out.clear();
            }
            progress(offset);
            true
        })
    }
}

/// Frames the front read, as steps for the back.
struct Batch {
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
}

impl Front {
    /// Takes newly declared interfaces; whether there were any.
    fn sync_interfaces(&mut self, frames: &Frames<'_>) -> bool {
        let declared = frames.interfaces().len();
        if declared == self.clock.declared() {
            return false;
        }
        if let Some(last) = declared.checked_sub(1) {
            self.clock.declare(last as u32);
        }
        true
    }

    fn on_frame(&mut self, frame: &Frame<'_>) {
        self.stats.frames += 1;
        self.stats.bytes += frame.data.len() as u64;
        match decode(frame) {
            Ok(Decoded::Fragment(l3)) => {
                if let Some(whole) = self.defrag.add(l3, frame.interface, frame.ts_us) {
                    let p = &whole.packet;
                    let decoded = transport(frame, whole.src, whole.dst, p.ip_number, &p.payload);
                    self.on_decoded(decoded);
                    self.defrag.recycle(whole);
                }
            }
            decoded => self.on_decoded(decoded),
        }
        if frame.ts_us.saturating_sub(self.last_sweep_us) > SWEEP_EVERY_US {
            self.sweep(frame.ts_us);
        }
        self.clock.tick(frame.interface, frame.ts_us);
    }

    fn on_decoded(&mut self, decoded: Result<Decoded<'_>, DecodeError>) {
        match decoded {
            Ok(Decoded::Tcp(seg)) => self.tcp.on_segment(&seg, &mut self.scratch),
            Ok(Decoded::Udp(d)) if dns::on_dns_port(&d) => {
                let tcp = &mut self.tcp;
                self.dns.on_datagram(&d, &mut || tcp.allocate_id(), &mut self.dns_out);
            }
            Ok(Decoded::Udp(_)) => self.stats.udp_frames += 1,
            // A fragment inside a reassembled packet cannot happen; count it with the rest.
            Ok(Decoded::Other | Decoded::Fragment(_)) => self.stats.other_frames += 1,
            Err(DecodeError::Truncated) => self.stats.truncated_frames += 1,
            Err(DecodeError::Malformed) => self.stats.malformed_frames += 1,
            Err(DecodeError::UnsupportedLink(code)) => {
                self.stats.unsupported_link_frames += 1;
                self.stats.unsupported_links.count(code);
            }
        }
    }

    fn sweep(&mut self, now_us: u64) {
        self.last_sweep_us = now_us;
        self.tcp.sweep(now_us, &mut self.scratch);
        self.dns.sweep(now_us, &mut self.dns_out);
        self.defrag.sweep(now_us);
    }

    /// What the last frames finished: TCP exchanges, then DNS ones.
    fn take_items(&mut self) -> Vec<Dissected> {
        let mut items = Vec::new();
        self.move_items(&mut items);
        items
    }

    /// `take_items` onto the end of `to`, keeping this side's buffers.
    fn move_items(&mut self, to: &mut Vec<Dissected>) {
        for d in &self.scratch {
            self.stats.dns_over_tcp += u64::from(matches!(d, Dissected::Exchange(ex) if ex.dns().is_some()));
        }
        to.append(&mut self.scratch);
        to.extend(self.dns_out.drain(..).map(|ex| Dissected::Exchange(Box::new(ex))));
    }

    /// End of input: every connection closed, every query given up.
    fn finish(&mut self) -> Vec<Dissected> {
        self.tcp.finish(&mut self.scratch);
        self.dns.finish(&mut self.dns_out);
        self.take_items()
    }

    /// The front half of a whole file: batches of steps to `send`, which says whether to go on.
    fn run(&mut self, file: &CaptureFile, mut send: impl FnMut(Batch) -> bool) -> Result<(), CaptureError> {
        let mut frames = file.frames();
        let mut result = Ok(());
        let new_batch =
            || Batch { steps: Vec::new(), items: Vec::new(), after: 0, interfaces: None, offset: 0, last: false };
        let mut batch = new_batch();
        let mut since_step = 0u64;
        let mut read = 0;
        while let Some(frame) = frames.next() {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if self.sync_interfaces(&frames) {
                batch.interfaces = Some(frames.interfaces().iter().map(|i| i.name.clone()).collect());
            }
            self.on_frame(&frame);
            let watermark = self.clock.watermark();
            let before = batch.items.len();
            self.move_items(&mut batch.items);
            match batch.items.len() - before {
                0 => since_step = since_step.max(watermark),
                items => {
                    batch.steps.push(Step { before: since_step, now_us: frame.ts_us, watermark, items });
                    since_step = 0;
                }
            }
            read += 1;
            if read % PIPE_FRAMES == 0 {
                batch.after = since_step;
                batch.offset = frames.offset();
                if !send(std::mem::replace(&mut batch, new_batch())) {
                    return result;
                }
            }
        }
        batch.after = since_step;
        let items = self.finish();
        batch.steps.push(Step { before: since_step, now_us: u64::MAX, watermark: u64::MAX, items: items.len() });
        batch.items.extend(items);
        batch.offset = frames.offset();
        batch.last = true;
        send(batch);
        result
    }
}

impl Back {
    /// One batch from the front, in the order the frames came: the same flushes and takes that
    /// `Engine::on_frame` makes frame by frame.
    fn apply(&mut self, batch: Batch, out: &mut Vec<Record>) {
        if let Some(names) = batch.interfaces {
            self.interfaces = names;
        }
        let mut items = batch.items.into_iter();
        for step in batch.steps {
            self.flush(step.before, out);
            self.take(items.by_ref().take(step.items), step.now_us, out);
            self.flush(step.watermark, out);
        }
        self.flush(batch.after, out);
        if batch.last {
            self.finish(Vec::new(), out);
        }
    }

    /// Whether the merger holds observations waiting for their window.
    fn waiting(&self) -> bool {
        self.merger.as_ref().is_some_and(|m| m.pending() > 0)
    }

    /// Turns finished exchanges into records; with merging, they wait (from capture time
    /// `now_us`) for the other observations of their request.
    fn take(&mut self, items: impl IntoIterator<Item = Dissected>, now_us: u64, out: &mut Vec<Record>) {
        for d in items {
            match d {
                Dissected::Exchange(ex) => {
                    self.stats.http_exchanges += u64::from(ex.http().is_some());
                    if let Some(h) = ex.http() {
                        self.stats.malformed_requests += u64::from(h.malformed.is_some());
                        self.stats.uncertain_pairings += u64::from(h.paired.is_some());
                    }
                    self.stats.tls_handshakes += u64::from(matches!(ex.detail, podtap_shared::Detail::Tls(_)));
                    self.stats.grpc_calls += u64::from(matches!(ex.detail, podtap_shared::Detail::Grpc(_)));
                    let index = ex.interface;
                    let iface = self.interfaces.get(index as usize).and_then(|n| n.as_deref());
                    let record = correlate::record(*ex, self.next_id, iface, &self.cluster);
                    self.next_id += 1;
                    match &mut self.merger {
                        Some(m) => m.push(record, now_us, &self.cluster, out),
                        None => out.push(record),
                    }
                }
                Dissected::UnmatchedResponse => self.stats.unmatched_responses += 1,
                Dissected::OneWay => self.stats.one_way_responses += 1,
                Dissected::Resync => self.stats.resyncs += 1,
                Dissected::NotThisProtocol => self.stats.non_http_streams += 1,
            }
        }
    }

    /// Emits every request whose window has passed by `watermark`.
    fn flush(&mut self, watermark: u64, out: &mut Vec<Record>) {
        if let Some(m) = &mut self.merger {
            m.flush_due(watermark, out);
        }
    }

    fn finish(&mut self, items: Vec<Dissected>, out: &mut Vec<Record>) {
        self.take(items, u64::MAX, out);
        if let Some(m) = &mut self.merger {
            m.flush_all(out);
        }
    }
}
