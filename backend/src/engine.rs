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
pub struct Engine {
    cluster: Arc<ClusterState>,
    tcp: Reassembler<AnyProtocol>,
    dns: DnsTracker,
    dns_out: Vec<Exchange>,
    defrag: Defragmenter,
    interfaces: Vec<Option<String>>,
    next_id: u64,
    last_sweep_us: u64,
    clock: Clock,
    scratch: Vec<Dissected>,
    /// One record per request (`None`: one per observation).
    merger: Option<Merger>,
    stats: EngineStats,
}

impl Engine {
    pub fn new(cluster: Arc<ClusterState>) -> Self {
        Self {
            cluster,
            tcp: Reassembler::new(Limits::default()),
            dns: DnsTracker::default(),
            dns_out: Vec::new(),
            defrag: Defragmenter::default(),
            interfaces: Vec::new(),
            next_id: 1,
            last_sweep_us: 0,
            clock: Clock::default(),
            scratch: Vec::new(),
            merger: Some(Merger::default()),
            stats: EngineStats::default(),
        }
    }

    /// One record per observation: every interface that saw a request reports it on its own
    /// (`analyze --per-interface`, and tests of single interfaces).
    pub fn per_interface(mut self) -> Self {
        self.merger = None;
        self
    }

    /// Names records with a newer cluster state from now on.
    pub fn set_cluster(&mut self, cluster: Arc<ClusterState>) {
        self.cluster = cluster;
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats { tcp: self.tcp.stats, dns: self.dns.stats, ip_fragments: self.defrag.stats, ..self.stats }
    }

    /// Takes the interface names a capture file has declared so far (index = `Frame::interface`).
    pub fn sync_interfaces(&mut self, frames: &Frames<'_>) {
        let declared = frames.interfaces();
        if declared.len() != self.interfaces.len() {
            self.interfaces = declared.iter().map(|i| i.name.clone()).collect();
            if let Some(last) = declared.len().checked_sub(1) {
                self.clock.declare(last as u32);
            }
        }
    }

    /// Names interface `index` (`Frame::interface`) for the records seen on it.
    pub fn name_interface(&mut self, index: u32, name: Option<String>) {
        self.clock.declare(index);
        let index = index as usize;
        if self.interfaces.len() <= index {
            self.interfaces.resize(index + 1, None);
        }
        self.interfaces[index] = name;
    }

    /// For live sources: closes idle connections by the wall clock when no packet has arrived to
    /// move capture time forward, so a quiet node still emits its last exchanges.
    pub fn idle(&mut self, now_us: u64, out: &mut Vec<Record>) {
        if now_us.saturating_sub(self.last_sweep_us) > SWEEP_EVERY_US {
            self.sweep(now_us);
        }
        // Called once every ring is drained: nothing older than now is still on its way.
        self.drain(now_us, Some(now_us), out);
    }

    /// Feeds one frame; finished records are appended to `out`.
    pub fn on_frame(&mut self, frame: &Frame<'_>, out: &mut Vec<Record>) {
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
        self.drain(frame.ts_us, None, out);
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

    /// End of input: closes every connection and emits what is still pending.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        self.tcp.finish(&mut self.scratch);
        self.dns.finish(&mut self.dns_out);
        self.drain(u64::MAX, Some(u64::MAX), out);
        if let Some(m) = &mut self.merger {
            m.flush_all(out);
        }
    }

    /// Turns finished exchanges into records; with merging, they wait (from capture time `now_us`)
    /// for the other observations of their request until every interface is past them
    /// (`watermark`; `None`: the clock's).
    fn drain(&mut self, now_us: u64, watermark: Option<u64>, out: &mut Vec<Record>) {
        for d in &self.scratch {
            self.stats.dns_over_tcp += u64::from(matches!(d, Dissected::Exchange(ex) if ex.dns().is_some()));
        }
        let dns = self.dns_out.drain(..).map(|ex| Dissected::Exchange(Box::new(ex)));
        for d in self.scratch.drain(..).chain(dns) {
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
        if let Some(m) = &mut self.merger
            && m.pending() > 0
        {
            m.flush_due(watermark.unwrap_or_else(|| self.clock.watermark()), out);
        }
    }

    /// Runs a whole capture file through the engine, calling `sink` with each batch of records.
    /// Frames before any damage are all used; the damage itself is returned after `finish`.
    pub fn run_file(&mut self, file: &CaptureFile, sink: impl FnMut(&mut Vec<Record>)) -> Result<(), CaptureError> {
        self.run_file_with_progress(file, sink, |_| {})
    }

    /// `run_file`, telling `progress` how many bytes of the file are done every so often.
    pub fn run_file_with_progress(
        &mut self,
        file: &CaptureFile,
        mut sink: impl FnMut(&mut Vec<Record>),
        mut progress: impl FnMut(usize),
    ) -> Result<(), CaptureError> {
        const PROGRESS_EVERY: u32 = 1 << 14;
        let mut until_progress = PROGRESS_EVERY;
        let mut out = Vec::new();
        let mut frames = file.frames();
        let mut result = Ok(());
        while let Some(frame) = frames.next() {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            self.sync_interfaces(&frames);
            self.on_frame(&frame, &mut out);
            if !out.is_empty() {
                sink(&mut out);
                out.clear();
            }
            until_progress -= 1;
            if until_progress == 0 {
                until_progress = PROGRESS_EVERY;
                progress(frames.offset());
            }
        }
        progress(frames.offset());
        self.finish(&mut out);
        sink(&mut out);
        result
    }
}
