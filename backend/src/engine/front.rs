//! The front half of the engine: frames → dissected exchanges (decode, defragment, reassemble,
//! dissect), with the capture clock of every interface. On a node's agent this is all that runs;
//! what it finds goes to the hub's `Joiner`.

use crate::capture::file::Frames;
use crate::capture::{CaptureError, CaptureFile, Frame};
use crate::decode::defrag::Defragmenter;
use crate::decode::{DecodeError, Decoded, decode, transport};
use crate::dissect::any::AnyProtocol;
use crate::dissect::dns::{self, DnsTracker};
use crate::dissect::{Dissected, Exchange};
use crate::reassemble::{Limits, Reassembler};

use super::{Batch, EngineStats, PIPE_FRAMES, SWEEP_EVERY_US, Step};

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

/// Frames → dissected exchanges.
pub struct Observer {
    tcp: Reassembler<AnyProtocol>,
    dns: DnsTracker,
    dns_out: Vec<Exchange>,
    defrag: Defragmenter,
    last_sweep_us: u64,
    clock: Clock,
    scratch: Vec<Dissected>,
    stats: EngineStats,
    /// Sockets whose TCP traffic is podtap's own (an agent's stream to its hub): not observed.
    ignored: Vec<std::net::SocketAddr>,
}

impl Default for Observer {
    fn default() -> Self {
        Self {
            tcp: Reassembler::new(Limits::default()),
            dns: DnsTracker::default(),
            dns_out: Vec::new(),
            defrag: Defragmenter::default(),
            last_sweep_us: 0,
            clock: Clock::default(),
            scratch: Vec::new(),
            stats: EngineStats::default(),
            ignored: Vec::new(),
        }
    }
}

impl Observer {
    /// Takes newly declared interfaces; whether there were any.
    pub fn sync_interfaces(&mut self, frames: &Frames<'_>) -> bool {
        let declared = frames.interfaces().len();
        if declared == self.clock.declared() {
            return false;
        }
        if let Some(last) = declared.checked_sub(1) {
            self.clock.declare(last as u32);
        }
        true
    }

    /// Feeds one frame; what it finished waits for `take_items`.
    pub fn on_frame(&mut self, frame: &Frame<'_>) {
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
            Ok(Decoded::Tcp(seg)) if self.ignored.iter().any(|a| *a == seg.src || *a == seg.dst) => {
                self.stats.own_frames += 1;
            }
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

    /// Leaves out TCP traffic to or from `addr` (the agent's own connection to its hub, which
    /// would otherwise be observed, sent, and observed again).
    pub fn ignore(&mut self, addr: std::net::SocketAddr) {
        self.ignored.push(addr);
    }

    /// Makes room for interface `index` before its first frame.
    pub fn declare(&mut self, index: u32) {
        self.clock.declare(index);
    }

    /// How far capture time has got on every active interface (see `Clock::watermark`).
    pub fn watermark(&self) -> u64 {
        self.clock.watermark()
    }

    /// For live sources: closes idle connections by the wall clock when no packet has arrived
    /// to move capture time forward.
    pub fn idle(&mut self, now_us: u64) {
        if now_us.saturating_sub(self.last_sweep_us) > SWEEP_EVERY_US {
            self.sweep(now_us);
        }
    }

    /// The capture of `interface` ended: what was seen on it alone closes now
    /// (`Reassembler::end_interface`).
    pub fn end_interface(&mut self, interface: u32, now_us: u64) {
        self.tcp.end_interface(interface, now_us, &mut self.scratch);
    }

    /// Counters so far: everything this half saw (the joiner adds what it named and merged).
    pub fn stats(&self) -> EngineStats {
        EngineStats { tcp: self.tcp.stats, dns: self.dns.stats, ip_fragments: self.defrag.stats, ..self.stats }
    }

    fn sweep(&mut self, now_us: u64) {
        self.last_sweep_us = now_us;
        self.tcp.sweep(now_us, &mut self.scratch);
        self.dns.sweep(now_us, &mut self.dns_out);
        self.defrag.sweep(now_us);
    }

    /// What the last frames finished: TCP exchanges, then DNS ones.
    pub fn take_items(&mut self) -> Vec<Dissected> {
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
    pub fn finish(&mut self) -> Vec<Dissected> {
        self.tcp.finish(&mut self.scratch);
        self.dns.finish(&mut self.dns_out);
        self.take_items()
    }

    /// The front half of a whole file: batches of steps to `send`, which says whether to go on.
    pub(crate) fn run(&mut self, file: &CaptureFile, mut send: impl FnMut(Batch) -> bool) -> Result<(), CaptureError> {
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
