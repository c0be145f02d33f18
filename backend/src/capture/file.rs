//! Capture files: pcap (µs and ns, either byte order) and pcapng (several interfaces with names,
//! any `if_tsresol`, either byte order), mapped into memory and read without copying packets:
//! every `Frame` borrows the mapping.
//!
//! A file that ends mid-packet or has a broken block yields every packet before the damage and
//! then one `CaptureError` naming the byte offset; garbage at the start is refused at `open`.
//! Frames of a file with several interfaces come out in capture-time order (`order`), not in the
//! order the writer drained its interfaces in.

use std::path::Path;

use super::link::{Frame, Interface, LinkType};
use super::order::Reorder;
use super::pcapng::{self, Step, Walker};

/// Problems reading a capture file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The first bytes are neither a pcap nor a pcapng header.
    #[error("{path}: not a pcap or pcapng file (starts with {magic})")]
    NotACapture { path: String, magic: String },
    /// The file is damaged from this offset on; everything before it was read.
    #[error("{path}: damaged at byte {offset}: {reason}; packets before it were read")]
    Damaged { path: String, offset: usize, reason: String },
}

/// The bytes of a capture: mapped from a file, or owned (the demo, tests).
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

#[derive(Clone, Copy)]
enum Format {
    /// Classic pcap: big-endian?, nanosecond timestamps?
    Pcap {
        big: bool,
        nanos: bool,
    },
    PcapNg,
}

/// A whole capture file, mapped into memory: frames borrow it, nothing is copied.
pub struct CaptureFile {
    path: String,
    bytes: Bytes,
    format: Format,
}

impl CaptureFile {
    /// Maps a file and checks that it is a capture.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let display = path.display().to_string();
        let io = |source| CaptureError::Io { path: display.clone(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.len() == 0 {
            return Self::from_bytes(display, Vec::new());
        }
        // SAFETY: the map is read-only and private to this process. If another process truncates
        // the file while it is mapped, reading the lost pages raises SIGBUS; capture files are not
        // rewritten in place by the tools that make them, and copying a multi-gigabyte file into
        // memory to rule this out would cost more than the risk (tcpdump and tshark map too).
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(io)?;
        let _ = map.advise(memmap2::Advice::Sequential);
        Self::checked(display, Bytes::Mapped(map))
    }

    /// Wraps bytes already in memory (the built-in demo, tests); `name` appears in errors.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Result<Self, CaptureError> {
        Self::checked(name.into(), Bytes::Owned(bytes))
    }

    fn checked(path: String, bytes: Bytes) -> Result<Self, CaptureError> {
        let magic = bytes.get(..4).map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        let format = match magic {
            Some(0xa1b2_c3d4) => Format::Pcap { big: false, nanos: false },
            Some(0xd4c3_b2a1) => Format::Pcap { big: true, nanos: false },
            Some(0xa1b2_3c4d) => Format::Pcap { big: false, nanos: true },
            Some(0x4d3c_b2a1) => Format::Pcap { big: true, nanos: true },
            Some(pcapng::SHB) => Format::PcapNg,
            _ => {
                let shown = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>();
                let magic = if shown.is_empty() { "nothing: the file is empty".into() } else { format!("0x{shown}") };
                return Err(CaptureError::NotACapture { path, magic });
            }
        };
        Ok(Self { path, bytes, format })
    }

    /// The file's name as given.
    /// Size of the capture in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn name(&self) -> &str {
        &self.path
    }

    /// Iterates over the frames. After an `Err` the iterator ends.
    pub fn frames(&self) -> Frames<'_> {
        Frames {
            file: self,
            pos: 0,
            done: false,
            walker: Walker::new(),
            pcap: None,
            order: Reorder::default(),
            damage: None,
            present: 0,
        }
    }

    /// Makes the map's pages present a step at a time, ahead of the reader at `pos`: `present`
    /// is how far they are. The kernel fills a step in one call (`MADV_POPULATE_READ`), which
    /// costs less than the fault per 64 KiB that reading in order takes otherwise; on a kernel
    /// without it, pages fault in as they are read.
    fn populate_ahead(&self, pos: usize, present: &mut usize) {
        let Bytes::Mapped(map) = &self.bytes else { return };
        if pos + POPULATE_STEP / 2 < *present || *present >= map.len() {
            return;
        }
        let len = POPULATE_STEP.min(map.len() - *present);
        let _ = map.advise_range(memmap2::Advice::PopulateRead, *present, len);
        *present += len;
    }
}

/// How much of a mapped file `CaptureFile::populate_ahead` makes present at once (a multiple
/// of the page size).
const POPULATE_STEP: usize = 16 << 20;

/// Iterator over a capture's frames; `interfaces()` grows as pcapng interface blocks are read.
pub struct Frames<'a> {
    file: &'a CaptureFile,
    pos: usize,
    done: bool,
    walker: Walker,
    /// Classic pcap: the one interface, once the file header is read.
    pcap: Option<Interface>,
    /// Frames read but not handed out yet (several interfaces: see `order`).
    order: Reorder<Frame<'a>>,
    /// The damage the file ends with, said once the frames before it are out.
    damage: Option<CaptureError>,
    /// How far the map's pages are present (`CaptureFile::populate_ahead`).
    present: usize,
}

impl<'a> Frames<'a> {
    /// Bytes of the file read so far (for progress).
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The interfaces described so far.
    pub fn interfaces(&self) -> &[Interface] {
        match &self.pcap {
            Some(i) => std::slice::from_ref(i),
            None => &self.walker.interfaces,
        }
    }

    /// The names of the interfaces described so far (by `Frame::interface`).
    pub fn interface_names(&self) -> Vec<Option<String>> {
        self.interfaces().iter().map(|i| i.name.clone()).collect()
    }

    fn damaged(&mut self, reason: impl ToString) -> Option<Result<Frame<'a>, CaptureError>> {
        self.done = true;
        Some(Err(CaptureError::Damaged { path: self.file.path.clone(), offset: self.pos, reason: reason.to_string() }))
    }

    /// Classic pcap (the libpcap file format): a 24-byte header, then 16-byte record headers.
    fn next_pcap(&mut self, big: bool, nanos: bool) -> Option<Result<Frame<'a>, CaptureError>> {
        let bytes: &'a [u8] = &self.file.bytes;
        let u32_at = |at: usize| {
            bytes.get(at..at + 4).map(|x| {
                let x = [x[0], x[1], x[2], x[3]];
                if big { u32::from_be_bytes(x) } else { u32::from_le_bytes(x) }
            })
        };
        if self.pcap.is_none() {
            let Some(link) = u32_at(20) else { return self.damaged("file header cut short") };
            let units = if nanos { 1_000_000_000 } else { 1_000_000 };
            self.pcap = Some(Interface::new(None, LinkType::from_code(link), units));
            self.pos = 24;
        }
        if self.pos == bytes.len() {
            self.done = true;
            return None;
        }
        let (Some(sec), Some(frac), Some(caplen)) = (u32_at(self.pos), u32_at(self.pos + 4), u32_at(self.pos + 8))
        else {
            return self.damaged("packet header cut short");
        };
        let start = self.pos + 16;
        let Some(data) = bytes.get(start..start + caplen as usize) else {
            return self.damaged(format!("packet of {caplen} bytes, {} left", bytes.len().saturating_sub(start)));
        };
        self.pos = start + caplen as usize;
        let iface = self.pcap.as_ref().expect("set above");
        let ts_us = u64::from(sec) * 1_000_000 + iface.micros(u64::from(frac));
        Some(Ok(Frame { ts_us, interface: 0, link: iface.link, data }))
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, CaptureError>;

    /// Frames in capture-time order: as the file has them while it has one interface, held
    /// until every interface has passed them (at most `order::WINDOW_US`) once it has several.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(frame) = self.order.ready() {
                return Some(Ok(frame));
            }
            if self.done {
                return self.order.pop().map(Ok).or_else(|| self.damage.take().map(Err));
            }
            match self.next_in_file() {
                None => {}
                Some(Err(e)) => self.damage = Some(e),
                Some(Ok(frame)) if self.order.is_empty() && self.interfaces().len() < 2 => return Some(Ok(frame)),
                Some(Ok(frame)) => {
                    self.order.declare(self.interfaces().len());
                    self.order.push(frame.interface, frame.ts_us, frame);
                }
            }
        }
    }
}

impl<'a> Frames<'a> {
    /// The next frame in the file's own order.
    fn next_in_file(&mut self) -> Option<Result<Frame<'a>, CaptureError>> {
        if self.done {
            return None;
        }
        let bytes: &'a [u8] = &self.file.bytes;
        self.file.populate_ahead(self.pos, &mut self.present);
        let from = self.pos;
        let next = match self.file.format {
            Format::Pcap { big, nanos } => self.next_pcap(big, nanos),
            Format::PcapNg => self.next_pcapng(),
        };
        // The bytes a little further on start loading now, as many as this frame spanned.
        super::prefetch::file_ahead(&bytes[from..], self.pos - from);
        next
    }

    /// The next packet block's frame, past the other blocks.
    fn next_pcapng(&mut self) -> Option<Result<Frame<'a>, CaptureError>> {
        let bytes: &'a [u8] = &self.file.bytes;
        loop {
            if self.pos == bytes.len() {
                self.done = true;
                return None;
            }
            match self.walker.next(&bytes[self.pos..]) {
                Ok((step, len)) => {
                    self.pos += len;
                    if let Step::Packet { interface, ts_raw, data } = step {
                        let Some(iface) = self.walker.interfaces.get(interface as usize) else {
                            self.pos -= len;
                            return self.damaged(format!("packet on undeclared interface {interface}"));
                        };
                        return Some(Ok(Frame { ts_us: iface.micros(ts_raw), interface, link: iface.link, data }));
                    }
                }
                Err(reason) => return self.damaged(reason),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic pcap header (µs, Ethernet) and one 4-byte packet at t = 1.5 s.
    fn tiny_pcap() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(0xa1b2_c3d4u32.to_le_bytes());
        b.extend(2u16.to_le_bytes());
        b.extend(4u16.to_le_bytes());
        b.extend([0u8; 8]);
        b.extend(65535u32.to_le_bytes());
        b.extend(1u32.to_le_bytes()); // Ethernet
        b.extend(1u32.to_le_bytes()); // ts_sec
        b.extend(500_000u32.to_le_bytes()); // ts_usec
        b.extend(4u32.to_le_bytes());
        b.extend(4u32.to_le_bytes());
        b.extend([1, 2, 3, 4]);
        b
    }

    #[test]
    fn reads_a_pcap_packet_with_its_timestamp() {
        let file = CaptureFile::from_bytes("t", tiny_pcap()).unwrap();
        let frames: Vec<_> = file.frames().collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].ts_us, 1_500_000);
        assert_eq!(frames[0].link, LinkType::Ethernet);
        assert_eq!(frames[0].data, &[1, 2, 3, 4]);
    }

    #[test]
    fn a_truncated_file_gives_the_packets_before_the_damage_then_one_error() {
        let mut two = tiny_pcap();
        two.extend_from_slice(&tiny_pcap()[24..]);
        two.truncate(two.len() - 2);
        let file = CaptureFile::from_bytes("cut.pcap", two).unwrap();
        let results: Vec<_> = file.frames().collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("cut.pcap: damaged at byte 44"), "{err}");
    }

    /// One pcapng block in the given byte order: type, length, body (padded), length.
    fn block(big: bool, kind: u32, body: &[u8]) -> Vec<u8> {
        let u32b = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut padded = body.to_vec();
        padded.resize(body.len().div_ceil(4) * 4, 0);
        let len = 12 + padded.len() as u32;
        let mut b = Vec::new();
        b.extend(u32b(kind));
        b.extend(u32b(len));
        b.extend(padded);
        b.extend(u32b(len));
        b
    }

    /// Section header, one Ethernet interface named `veth1` with nanosecond timestamps, and one
    /// enhanced packet of 3 bytes at t = 2.000000123 s.
    fn tiny_pcapng(big: bool) -> Vec<u8> {
        let u16b = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let u32b = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut shb = u32b(0x1a2b_3c4d).to_vec();
        shb.extend(u16b(1));
        shb.extend(u16b(0));
        shb.extend([0xff; 8]);
        let mut idb = u16b(1).to_vec();
        idb.extend(u16b(0));
        idb.extend(u32b(65535));
        for (code, value) in [(2u16, &b"veth1"[..]), (9, &[9u8][..])] {
            idb.extend(u16b(code));
            idb.extend(u16b(value.len() as u16));
            idb.extend(value);
            idb.resize(idb.len().div_ceil(4) * 4, 0);
        }
        idb.extend([0; 4]); // opt_endofopt
        let ts: u64 = 2_000_000_123;
        let mut epb = u32b(0).to_vec();
        epb.extend(u32b((ts >> 32) as u32));
        epb.extend(u32b(ts as u32));
        epb.extend(u32b(3));
        epb.extend(u32b(3));
        epb.extend([7, 8, 9]);
        [block(big, 0x0a0d_0d0a, &shb), block(big, 1, &idb), block(big, 6, &epb)].concat()
    }

    #[test]
    fn reads_pcapng_in_either_byte_order_with_names_and_nanoseconds() {
        for big in [false, true] {
            let file = CaptureFile::from_bytes("t.pcapng", tiny_pcapng(big)).unwrap();
            let mut frames = file.frames();
            let f = frames.next().unwrap().unwrap();
            assert_eq!(
                (f.ts_us, f.interface, f.link, f.data),
                (2_000_000, 0, LinkType::Ethernet, &[7u8, 8, 9][..]),
                "big={big}"
            );
            assert_eq!(frames.interfaces()[0].name.as_deref(), Some("veth1"));
            assert!(frames.next().is_none());
        }
    }

    #[test]
    fn damaged_pcapng_names_the_offset() {
        let whole = tiny_pcapng(false);
        let file = CaptureFile::from_bytes("cut.pcapng", whole[..whole.len() - 6].to_vec()).unwrap();
        let err = file.frames().find_map(Result::err).unwrap().to_string();
        assert!(err.starts_with("cut.pcapng: damaged at byte 72: block of type 0x6 needs 36 bytes, 30 left"), "{err}");
        let mut liar = whole.clone();
        let n = liar.len();
        liar[n - 4] = 0xff; // trailing length differs from the leading one
        let file = CaptureFile::from_bytes("liar.pcapng", liar).unwrap();
        assert!(file.frames().find_map(Result::err).unwrap().to_string().contains("trailing length differs"));
    }

    #[test]
    fn garbage_is_refused_with_its_magic() {
        let err = CaptureFile::from_bytes("x", b"GET / HTTP/1.1".to_vec()).err().unwrap().to_string();
        assert_eq!(err, "x: not a pcap or pcapng file (starts with 0x47455420)");
        let err = CaptureFile::from_bytes("e", vec![]).err().unwrap().to_string();
        assert!(err.contains("empty"), "{err}");
    }
}
