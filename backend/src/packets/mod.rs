//! The packet ring: every frame a node's capture sees, kept on disk in a bounded ring of segment
//! files (`--packet-retention-mb`) and indexed in memory by flow (the unordered pair of sockets),
//! so the packets of the connections on screen can be exported while they are retained. The
//! oldest segment goes first; what went is remembered as a time, so an export can say which
//! connections have aged out. One lock: the capture thread appends, an export reads.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::capture::write::link_code;
use crate::capture::{Frame, LinkType};
use crate::decode::{Decoded, decode};

/// Segments the budget is split into: the ring forgets a segment's worth at a time.
const SEGMENTS: u64 = 8;
/// Bytes of a frame's header in a segment file: ts (8), interface (4), link (2), length (4).
const HEADER: usize = 18;

/// A flow: the two sockets of a TCP connection or a UDP exchange, smaller first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlowKey(pub SocketAddr, pub SocketAddr);

impl FlowKey {
    pub fn new(a: SocketAddr, b: SocketAddr) -> Self {
        if a <= b { Self(a, b) } else { Self(b, a) }
    }
}

/// What an export asks for: a flow over a time span (µs, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    pub flow: FlowKey,
    pub from_us: u64,
    pub to_us: u64,
}

impl Wanted {
    /// The same flow over the same span on a clock `offset_us` ahead (an agent's).
    pub fn on_clock(&self, offset_us: i64) -> Wanted {
        Wanted {
            from_us: self.from_us.saturating_add_signed(offset_us),
            to_us: self.to_us.saturating_add_signed(offset_us),
            ..*self
        }
    }
}

/// One retained frame, as an export or a saved session holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFrame {
    pub ts_us: u64,
    pub interface: u32,
    pub link: u16,
    pub flow: FlowKey,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A capture interface of the frames found: its name and the node it is on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iface {
    pub name: Option<String>,
    pub node: Option<String>,
}

/// The frames of the wanted flows (`StoredFrame::interface` indexes `interfaces`), and whether
/// some had aged out (or a node that had them could not be asked).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    pub frames: Vec<StoredFrame>,
    pub interfaces: Vec<Iface>,
    pub aged_out: bool,
}

impl Found {
    /// Several nodes' answers as one: interfaces renumbered, frames in time order.
    pub fn merge(parts: Vec<Found>) -> Found {
        let mut out = Found::default();
        for part in parts {
            let base = out.interfaces.len() as u32;
            out.interfaces.extend(part.interfaces);
            out.frames.extend(part.frames.into_iter().map(|f| StoredFrame { interface: f.interface + base, ..f }));
            out.aged_out |= part.aged_out;
        }
        out.frames.sort_by_key(|f| f.ts_us);
        out
    }

    /// Moves every frame's time by `offset_us` (a node's clock to the hub's).
    pub fn shift(mut self, offset_us: i64) -> Found {
        for f in &mut self.frames {
            f.ts_us = f.ts_us.saturating_add_signed(offset_us);
        }
        self
    }
}

/// The flow of a frame, if it carries TCP or UDP over IP. An IP fragment (a big DNS answer) has
/// no ports past its first piece: it is kept under its two addresses with port 0, and goes with
/// every flow between them.
pub fn flow_of(frame: &Frame<'_>) -> Option<FlowKey> {
    match decode(frame) {
        Ok(Decoded::Tcp(seg)) => Some(FlowKey::new(seg.src, seg.dst)),
        Ok(Decoded::Udp(d)) => Some(FlowKey::new(d.src, d.dst)),
        Ok(Decoded::Fragment(l3)) => {
            let (ip, _) = etherparse::LaxIpSlice::from_slice(l3).ok()?;
            Some(FlowKey::new(SocketAddr::new(ip.source_addr(), 0), SocketAddr::new(ip.destination_addr(), 0)))
        }
        _ => None,
    }
}

impl FlowKey {
    /// The key IP fragments between the same two addresses are kept under.
    fn fragments(self) -> FlowKey {
        FlowKey::new(SocketAddr::new(self.0.ip(), 0), SocketAddr::new(self.1.ip(), 0))
    }
}

/// Selects, from `frames`, those of the wanted flows within their spans.
pub fn select<'a>(frames: impl Iterator<Item = &'a StoredFrame>, wanted: &[Wanted]) -> Vec<StoredFrame> {
    let by_flow = index_wanted(wanted);
    frames.filter(|f| admits(&by_flow, f.flow, f.ts_us)).cloned().collect()
}

fn index_wanted(wanted: &[Wanted]) -> FxHashMap<FlowKey, Vec<(u64, u64)>> {
    let mut by_flow: FxHashMap<FlowKey, Vec<(u64, u64)>> = FxHashMap::default();
    for w in wanted {
        by_flow.entry(w.flow).or_default().push((w.from_us, w.to_us));
        by_flow.entry(w.flow.fragments()).or_default().push((w.from_us, w.to_us));
    }
    by_flow
}

fn admits(by_flow: &FxHashMap<FlowKey, Vec<(u64, u64)>>, flow: FlowKey, ts: u64) -> bool {
    by_flow.get(&flow).is_some_and(|spans| spans.iter().any(|&(a, b)| a <= ts && ts <= b))
}

struct Segment {
    path: PathBuf,
    bytes: u64,
    first_us: u64,
    last_us: u64,
    /// Offsets of each flow's frames in the file.
    flows: FxHashMap<FlowKey, Vec<u32>>,
}

struct Ring {
    dir: PathBuf,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    next: u64,
    /// Everything up to this time has been forgotten (0: nothing yet).
    aged_out_us: u64,
    interfaces: Vec<Option<String>>,
    frames: u64,
    /// A write that failed: retention stops, the reason is kept for `/healthz`.
    failed: Option<String>,
}

/// Retained packets of one node.
pub struct PacketStore {
    ring: Mutex<Ring>,
    /// Remove the directory at drop (a temporary one).
    temporary: bool,
}

impl std::fmt::Debug for PacketStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PacketStore({})", self.lock().dir.display())
    }
}

/// What `/healthz` tells about retention.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionStats {
    pub bytes: u64,
    pub budget_bytes: u64,
    pub frames: u64,
    /// Packets before this time (µs) have aged out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aged_out_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PacketStore {
    /// A ring of `budget_bytes` in `dir` (emptied first: packets of an earlier run are not indexed).
    pub fn open(dir: &Path, budget_bytes: u64, temporary: bool) -> io::Result<Self> {
        if dir.exists() {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "seg") {
                    std::fs::remove_file(path)?;
                }
            }
        }
        std::fs::create_dir_all(dir)?;
        let ring = Ring {
            dir: dir.to_path_buf(),
            segment_bytes: (budget_bytes / SEGMENTS).max(64 * 1024),
            segments: VecDeque::new(),
            writer: None,
            next: 0,
            aged_out_us: 0,
            interfaces: Vec::new(),
            frames: 0,
            failed: None,
        };
        Ok(Self { ring: Mutex::new(ring), temporary })
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names interface `index` of the frames that follow.
    pub fn name_interface(&self, index: u32, name: Option<String>) {
        let mut ring = self.lock();
        let i = index as usize;
        if ring.interfaces.len() <= i {
            ring.interfaces.resize(i + 1, None);
        }
        ring.interfaces[i] = name;
    }

    pub fn interfaces(&self) -> Vec<Option<String>> {
        self.lock().interfaces.clone()
    }

    /// Keeps a frame (frames without TCP or UDP are not kept: nothing on screen refers to them).
    pub fn add(&self, frame: &Frame<'_>) {
        let Some(flow) = flow_of(frame) else { return };
        let mut ring = self.lock();
        if ring.failed.is_none()
            && let Err(e) = ring.append(frame, flow)
        {
            tracing::warn!("packet retention stops: {e}");
            ring.failed = Some(e.to_string());
        }
    }

    /// The retained frames of the wanted flows, oldest first; and whether some spans began
    /// before what is retained (their packets aged out, in part or whole).
    pub fn select(&self, wanted: &[Wanted]) -> io::Result<(Vec<StoredFrame>, bool)> {
        let by_flow = index_wanted(wanted);
        let mut ring = self.lock();
        if let Some(w) = ring.writer.as_mut() {
            w.flush()?;
        }
        let aged = wanted.iter().any(|w| w.from_us < ring.aged_out_us);
        let mut out = Vec::new();
        for seg in &ring.segments {
            if wanted.iter().all(|w| w.to_us < seg.first_us || w.from_us > seg.last_us) {
                continue;
            }
            let mut offsets: Vec<(u32, FlowKey)> = by_flow
                .keys()
                .filter_map(|k| seg.flows.get(k).map(|o| o.iter().map(move |&off| (off, *k))))
                .flatten()
                .collect();
            if offsets.is_empty() {
                continue;
            }
            offsets.sort_unstable();
            let mut file = File::open(&seg.path)?;
            for (off, flow) in offsets {
                file.seek(SeekFrom::Start(u64::from(off)))?;
                let mut head = [0u8; HEADER];
                file.read_exact(&mut head)?;
                let ts_us = u64::from_le_bytes(head[0..8].try_into().expect("8 bytes"));
                let interface = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
                let link = u16::from_le_bytes(head[12..14].try_into().expect("2 bytes"));
                let len = u32::from_le_bytes(head[14..18].try_into().expect("4 bytes")) as usize;
                let mut data = vec![0u8; len];
                file.read_exact(&mut data)?;
                if admits(&by_flow, flow, ts_us) {
                    out.push(StoredFrame { ts_us, interface, link, flow, data });
                }
            }
        }
        out.sort_by_key(|f| f.ts_us);
        Ok((out, aged))
    }

    /// `select`, with the interfaces named (on `node`).
    pub fn found(&self, wanted: &[Wanted], node: Option<&str>) -> io::Result<Found> {
        let (frames, aged_out) = self.select(wanted)?;
        let interfaces =
            self.interfaces().into_iter().map(|name| Iface { name, node: node.map(str::to_string) }).collect();
        let mut found = Found { frames, interfaces, aged_out };
        // A frame on an interface never named still needs an entry.
        let most = found.frames.iter().map(|f| f.interface as usize + 1).max().unwrap_or(0);
        if found.interfaces.len() < most {
            found.interfaces.resize(most, Iface { name: None, node: node.map(str::to_string) });
        }
        Ok(found)
    }

    pub fn stats(&self) -> RetentionStats {
        let ring = self.lock();
        RetentionStats {
            bytes: ring.segments.iter().map(|s| s.bytes).sum(),
            budget_bytes: ring.segment_bytes * SEGMENTS,
            frames: ring.frames,
            aged_out_us: (ring.aged_out_us > 0).then_some(ring.aged_out_us),
            error: ring.failed.clone(),
        }
    }
}

impl Ring {
    fn append(&mut self, frame: &Frame<'_>, flow: FlowKey) -> io::Result<()> {
        let need = (HEADER + frame.data.len()) as u64;
        if self.segments.back().is_none_or(|s| s.bytes + need > self.segment_bytes) {
            self.roll()?;
        }
        let seg = self.segments.back_mut().expect("rolled");
        let w = self.writer.as_mut().expect("open with its segment");
        let off = u32::try_from(seg.bytes).map_err(|_| io::Error::other("segment over 4 GiB"))?;
        w.write_all(&frame.ts_us.to_le_bytes())?;
        w.write_all(&frame.interface.to_le_bytes())?;
        w.write_all(&link_code(frame.link).to_le_bytes())?;
        w.write_all(&(frame.data.len() as u32).to_le_bytes())?;
        w.write_all(frame.data)?;
        seg.bytes += need;
        if seg.flows.is_empty() {
            seg.first_us = frame.ts_us;
        }
        seg.first_us = seg.first_us.min(frame.ts_us);
        seg.last_us = seg.last_us.max(frame.ts_us);
        seg.flows.entry(flow).or_default().push(off);
        self.frames += 1;
        Ok(())
    }

    /// Starts a new segment, forgetting the oldest when the ring is full.
    fn roll(&mut self) -> io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
        }
        while self.segments.len() as u64 >= SEGMENTS {
            let old = self.segments.pop_front().expect("non-empty");
            self.aged_out_us = self.aged_out_us.max(old.last_us + 1);
            std::fs::remove_file(&old.path)?;
        }
        let path = self.dir.join(format!("{:08}.seg", self.next));
        self.next += 1;
        self.writer = Some(BufWriter::with_capacity(256 * 1024, File::create(&path)?));
        self.segments.push_back(Segment { path, bytes: 0, first_us: 0, last_us: 0, flows: FxHashMap::default() });
        Ok(())
    }
}

impl Drop for PacketStore {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.lock().dir);
        }
    }
}

/// The link of a pcap link-type code.
pub fn link_of(code: u16) -> LinkType {
    LinkType::from_code(u32::from(code))
}

#[cfg(test)]
mod tests;
