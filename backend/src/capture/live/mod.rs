//! Live capture on a node: one TPACKET_V3 ring per selected interface, all waited on by one
//! thread, so frames reach the engine straight from kernel memory. Interfaces are matched by name
//! (exact names and globs, with excludes) and followed: the list is read again as soon as the
//! kernel says a link changed (`links`), and every second regardless; rings are opened on new pod
//! interfaces and closed on vanished ones. A pod interface that comes back
//! under the same name is a new interface (new index), so its connections never mix with the old.
//!
//! A kernel filter keeps only IP frames (IPv4, IPv6, VLAN-tagged) on Ethernet links, so ARP and
//! other chatter never cross into user space.

mod links;
mod ring;
mod select;

use std::io;
use std::time::{Duration, Instant};

pub use ring::{RingSize, RingStats};
pub use select::{POD_PATTERNS, Selection};

use super::{Frame, LinkType};
use ring::Ring;
use select::SysInterface;

/// How often the interface list is read again.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// Why live capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no interface named {0} on this node (see `ip link`)")]
    NoSuchInterface(String),
    #[error("live capture needs CAP_NET_RAW: run podtap as root or grant it the capability")]
    NotPermitted,
    #[error("cannot capture on {name}: {source}")]
    Open {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot list network interfaces: {0}")]
    List(#[source] io::Error),
}

/// One captured frame and what the ring knew about it.
pub struct LiveFrame<'a> {
    pub frame: Frame<'a>,
    pub ts_ns: u64,
    pub wire_len: u32,
}

/// An interface podtap has captured on, open now or earlier (indexes are never reused).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveInterface {
    pub name: String,
    #[serde(skip)]
    pub ifindex: u32,
    #[serde(skip)]
    pub link: LinkType,
    pub open: bool,
    #[serde(flatten)]
    pub stats: RingStats,
}

/// Totals over every interface ever opened.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LiveStats {
    pub packets: u64,
    pub drops: u64,
    pub interfaces: Vec<LiveInterface>,
}

pub struct LiveCapture {
    selection: Selection,
    size: RingSize,
    /// Index = `Frame::interface`.
    slots: Vec<LiveInterface>,
    rings: Vec<(u32, Ring)>,
    /// Rings of interfaces that went away, kept until the kernel has handed over their last
    /// block: a TPACKET_V3 block stays the kernel's until it is full or `retire_ms` passed, so a
    /// pod deleted right after its last packets (a probe's answer, a FIN) would take them along.
    closing: Vec<(u32, Ring, Instant)>,
    /// Interfaces whose gone ring was let go since `take_ended`: nothing more comes from them.
    ended: Vec<u32>,
    last_scan: Instant,
    /// The kernel's word that a link changed (`None`: rescans only).
    links: Option<links::LinkEvents>,
    vlan_scratch: Vec<u8>,
}

/// `ldh [12]; jeq IPv4/IPv6/802.1Q/802.1ad → accept; reject` (classic BPF).
fn ip_only_filter() -> [libc::sock_filter; 7] {
    const LD_H_ABS: u16 = 0x28;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    [
        f(LD_H_ABS, 0, 0, 12),
        f(JEQ_K, 4, 0, 0x0800),
        f(JEQ_K, 3, 0, 0x86dd),
        f(JEQ_K, 2, 0, 0x8100),
        f(JEQ_K, 1, 0, 0x88a8),
        f(RET_K, 0, 0, 0),
        f(RET_K, 0, 0, 0x0004_0000),
    ]
}

impl LiveCapture {
    /// Opens rings on every interface `selection` matches now. Exact names must exist; patterns
    /// may match nothing yet (pods come later).
    pub fn open(selection: Selection, size: RingSize) -> Result<Self, LiveError> {
        let present = select::list().map_err(LiveError::List)?;
        if let Some(missing) = selection.exact().find(|n| !present.iter().any(|i| &i.name == n)) {
            return Err(LiveError::NoSuchInterface(missing.to_string()));
        }
        let mut live = LiveCapture {
            selection,
            size,
            slots: Vec::new(),
            rings: Vec::new(),
            closing: Vec::new(),
            ended: Vec::new(),
            last_scan: Instant::now(),
            links: links::LinkEvents::open(),
            vlan_scratch: Vec::new(),
        };
        live.follow(present)?;
        if live.rings.is_empty() {
            tracing::info!("no interface matches {} yet; waiting for pods", live.selection);
        }
        Ok(live)
    }

    /// Every interface opened so far; index = `Frame::interface`.
    pub fn interfaces(&self) -> &[LiveInterface] {
        &self.slots
    }

    /// Opens rings on new matching interfaces and closes those that are gone. Only a missing
    /// permission is an error; an interface that vanishes while being opened is skipped.
    fn follow(&mut self, present: Vec<SysInterface>) -> Result<(), LiveError> {
        let mut kept = Vec::with_capacity(self.rings.len());
        for (slot, mut ring) in self.rings.drain(..) {
            let info = &mut self.slots[slot as usize];
            info.stats = ring.stats();
            if present.iter().any(|p| p.ifindex == info.ifindex && p.name == info.name) {
                kept.push((slot, ring));
            } else {
                info.open = false;
                tracing::info!("stopped capturing on {} (gone)", info.name);
                self.closing.push((slot, ring, Instant::now()));
            }
        }
        self.rings = kept;
        // Past a few block timeouts the kernel has handed over whatever was in a gone ring.
        let linger = Duration::from_millis(u64::from(self.size.retire_ms) * 3 + 20);
        let (slots, ended) = (&mut self.slots, &mut self.ended);
        self.closing.retain_mut(|(slot, ring, since)| {
            let keep = since.elapsed() < linger;
            if !keep {
                slots[*slot as usize].stats = ring.stats();
                ended.push(*slot);
            }
            keep
        });
        let mut prepared = Vec::new();
        for iface in present {
            let open = self.rings.iter().any(|(s, _)| self.slots[*s as usize].ifindex == iface.ifindex);
            if open || !self.selection.matches(&iface.name) {
                continue;
            }
            let Some(link) = iface.link() else {
                tracing::warn!("not capturing on {}: link type {} is not supported", iface.name, iface.kind);
                continue;
            };
            let filter = ip_only_filter();
            let filter = (link == LinkType::Ethernet).then_some(&filter[..]);
            match Ring::prepare(self.size, filter) {
                Ok(ring) => prepared.push((iface, link, ring)),
                Err(e) => self.refused(&iface.name, e)?,
            }
        }
        // Bound together once all are set up: the first never waits (and fills) while the others
        // are prepared.
        for (iface, link, ring) in prepared {
            match ring.bind(iface.ifindex) {
                Ok(()) => {
                    tracing::info!("capturing on {} (index {})", iface.name, iface.ifindex);
                    let slot = self.slots.len() as u32;
                    self.slots.push(LiveInterface {
                        name: iface.name,
                        ifindex: iface.ifindex,
                        link,
                        open: true,
                        stats: RingStats::default(),
                    });
                    self.rings.push((slot, ring));
                }
                Err(e) => self.refused(&iface.name, e)?,
            }
        }
        Ok(())
    }

    /// A ring that could not be opened: no permission or an exact name is an error; a pattern's
    /// interface that vanished meanwhile is skipped.
    fn refused(&self, name: &str, e: std::io::Error) -> Result<(), LiveError> {
        match e.raw_os_error() {
            Some(libc::EPERM) => Err(LiveError::NotPermitted),
            _ if self.selection.exact().any(|n| n == name) => {
                Err(LiveError::Open { name: name.to_string(), source: e })
            }
            _ => {
                tracing::warn!("cannot capture on {name}: {e}");
                Ok(())
            }
        }
    }

    /// Follows interface changes: at once after the kernel announced a link change or a socket
    /// reported its interface down or gone, else once a second. New interfaces are appended to `interfaces()`.
    pub fn follow_changes(&mut self) -> Result<(), LiveError> {
        if self.last_scan.elapsed() >= RESCAN_EVERY {
            self.last_scan = Instant::now();
            let present = select::list().map_err(LiveError::List)?;
            self.follow(present)?;
        }
        Ok(())
    }

    /// Interfaces (`Frame::interface`) that went away and whose last frames were handed over
    /// since the last call: a consumer may finish what it holds of them. Numbers are not reused.
    pub fn take_ended(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.ended)
    }

    /// Waits up to `timeout` for packets and hands each to `each`. Returns how many frames were
    /// handed over. Interfaces change only in `follow_changes`, so a caller can declare them
    /// before their first frame.
    pub fn poll(&mut self, timeout: Duration, mut each: impl FnMut(LiveFrame<'_>)) -> Result<usize, LiveError> {
        let mut fds: Vec<_> = self.rings.iter().map(|(_, r)| r.fd()).collect();
        fds.extend(self.closing.iter().map(|(_, r, _)| r.fd()));
        fds.extend(self.links.as_ref().map(|l| l.fd()));
        if fds.is_empty() {
            std::thread::sleep(timeout.min(RESCAN_EVERY));
            return Ok(0);
        }
        let wait_ms = timeout.min(RESCAN_EVERY).as_millis() as i32;
        let failed = ring::wait(&fds, wait_ms).map_err(LiveError::List)?;
        // `failed` indexes `fds`: the open rings, then the closing ones (whose errors are known).
        let (open, closing_end) = (self.rings.len(), self.rings.len() + self.closing.len());
        let failed_open = failed.iter().any(|&i| i < open || i >= closing_end);
        if failed_open || self.links.as_ref().is_some_and(|l| l.drain()) || !self.closing.is_empty() {
            // An interface went down or away (or a gone one's ring waits to be let go): look now
            // rather than at the next second.
            self.last_scan = Instant::now() - RESCAN_EVERY;
        }
        let mut handed = 0;
        let scratch = &mut self.vlan_scratch;
        let closing = self.closing.iter_mut().map(|(slot, ring, _)| (slot, ring));
        for (slot, ring) in self.rings.iter_mut().map(|(slot, ring)| (slot, ring)).chain(closing) {
            let link = self.slots[*slot as usize].link;
            handed += ring.drain(|p| {
                let data = match p.vlan {
                    Some((tpid, tci)) if link == LinkType::Ethernet && p.data.len() >= 12 => {
                        scratch.clear();
                        scratch.extend_from_slice(&p.data[..12]);
                        scratch.extend_from_slice(&tpid.to_be_bytes());
                        scratch.extend_from_slice(&tci.to_be_bytes());
                        scratch.extend_from_slice(&p.data[12..]);
                        &scratch[..]
                    }
                    _ => p.data,
                };
                let frame = Frame { ts_us: p.ts_ns / 1000, interface: *slot, link, data };
                each(LiveFrame { frame, ts_ns: p.ts_ns, wire_len: p.wire_len + u32::from(p.vlan.is_some()) * 4 });
            });
        }
        Ok(handed)
    }

    /// Kernel counters, per interface and in total.
    pub fn stats(&mut self) -> LiveStats {
        for (slot, ring) in &mut self.rings {
            self.slots[*slot as usize].stats = ring.stats();
        }
        LiveStats {
            packets: self.slots.iter().map(|s| s.stats.packets).sum(),
            drops: self.slots.iter().map(|s| s.stats.drops).sum(),
            interfaces: self.slots.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
