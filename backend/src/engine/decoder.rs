//! The reading part of the front half: frames → what there is to dissect of them (TCP segments,
//! DNS datagrams, packets put back together from fragments), everything else counted, and the
//! capture clock of every interface. One per front; a file's sharded run has one for all shards.

use std::net::SocketAddr;

use crate::capture::Frame;
use crate::capture::file::Frames;
use crate::decode::defrag::{Defragmenter, Whole};
use crate::decode::{DecodeError, Decoded, decode, transport};
use crate::dissect::dns;

use super::dissector::Work;
use super::{EngineStats, SWEEP_EVERY_US};

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

/// Frames → work for a `Dissector`.
#[derive(Default)]
pub(crate) struct Decoder {
    defrag: Defragmenter,
    clock: Clock,
    last_sweep_us: u64,
    stats: EngineStats,
    /// Sockets whose TCP traffic is podtap's own (an agent's stream to its hub): not observed.
    ignored: Vec<SocketAddr>,
}

impl Decoder {
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

    /// Makes room for interface `index` before its first frame.
    pub fn declare(&mut self, index: u32) {
        self.clock.declare(index);
    }

    /// Leaves out TCP traffic to or from `addr`.
    pub fn ignore(&mut self, addr: SocketAddr) {
        self.ignored.push(addr);
    }

    /// Frames read so far: the number of the last one (the first is 1).
    pub fn frames(&self) -> u64 {
        self.stats.frames
    }

    /// One frame: what there is to dissect of it; the rest is counted. Call `after` next.
    pub fn decode<'a>(&mut self, frame: &Frame<'a>) -> Option<Work<'a>> {
        self.stats.frames += 1;
        self.stats.bytes += frame.data.len() as u64;
        match decode(frame) {
            Ok(Decoded::Fragment(l3)) => {
                let whole = self.defrag.add(l3, frame.interface, frame.ts_us)?;
                let p = &whole.packet;
                let decoded = transport(frame, whole.src, whole.dst, p.ip_number, &p.payload);
                let pair = self.classify(decoded).map(|w| w.pair());
                match pair {
                    Some(pair) => Some(Work::Whole { ts_us: frame.ts_us, interface: frame.interface, whole, pair }),
                    None => {
                        self.defrag.recycle(whole);
                        None
                    }
                }
            }
            decoded => self.classify(decoded),
        }
    }

    /// What a decoded packet is to the dissector, or counted.
    fn classify<'a>(&mut self, decoded: Result<Decoded<'a>, DecodeError>) -> Option<Work<'a>> {
        let s = &mut self.stats;
        match decoded {
            Ok(Decoded::Tcp(seg)) if self.ignored.iter().any(|a| *a == seg.src || *a == seg.dst) => {
                s.own_frames += 1;
            }
            Ok(Decoded::Tcp(seg)) => return Some(Work::Tcp(seg)),
            Ok(Decoded::Udp(d)) if dns::on_dns_port(&d) => return Some(Work::Dns(d)),
            Ok(Decoded::Udp(_)) => s.udp_frames += 1,
            // A fragment inside a reassembled packet cannot happen; count it with the rest.
            Ok(Decoded::Other | Decoded::Fragment(_)) => s.other_frames += 1,
            Err(DecodeError::Truncated) => s.truncated_frames += 1,
            Err(DecodeError::Malformed) => s.malformed_frames += 1,
            Err(DecodeError::UnsupportedLink(code)) => {
                s.unsupported_link_frames += 1;
                s.unsupported_links.count(code);
            }
        }
        None
    }

    /// A packet put back together has been dissected: its buffer serves the next.
    pub fn recycle(&mut self, whole: Whole) {
        self.defrag.recycle(whole);
    }

    /// After a frame and its work: ticks the clock; returns the capture time to close idle
    /// connections at when it is time to (fragments waiting too long are dropped here).
    pub fn after(&mut self, frame: &Frame<'_>) -> Option<u64> {
        let sweep = self.sweep_due(frame.ts_us);
        self.clock.tick(frame.interface, frame.ts_us);
        sweep
    }

    /// For live sources with no frame to move capture time: the time to sweep at, when due.
    pub fn sweep_due(&mut self, now_us: u64) -> Option<u64> {
        if now_us.saturating_sub(self.last_sweep_us) <= SWEEP_EVERY_US {
            return None;
        }
        self.last_sweep_us = now_us;
        self.defrag.sweep(now_us);
        Some(now_us)
    }

    /// How far capture time has got on every active interface (see `Clock::watermark`).
    pub fn watermark(&self) -> u64 {
        self.clock.watermark()
    }

    /// What this part counted.
    pub fn stats(&self) -> EngineStats {
        EngineStats { ip_fragments: self.defrag.stats, ..self.stats }
    }
}
