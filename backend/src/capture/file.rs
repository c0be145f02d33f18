//! Capture files: pcap (µs and ns) and pcapng (several interfaces with names, any `if_tsresol`),
//! read from one in-memory buffer without copying packets: every `Frame` borrows the buffer.
//!
//! A file that ends mid-packet or has a broken block yields every packet before the damage and
//! then one `CaptureError` naming the byte offset; garbage at the start is refused at `open`.

use std::borrow::Cow;
use std::path::Path;

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, PcapError, TsResolution};

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

/// How the bytes of a frame begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// Linux "cooked" capture v1 (`tcpdump -i any` before libpcap 1.10).
    LinuxSll,
    /// Linux "cooked" capture v2.
    LinuxSll2,
    /// Bare IPv4 or IPv6.
    RawIp,
    /// Anything else; decode counts and skips such frames.
    Other(u32),
}

impl From<DataLink> for LinkType {
    fn from(d: DataLink) -> Self {
        match d {
            DataLink::ETHERNET => LinkType::Ethernet,
            DataLink::LINUX_SLL => LinkType::LinuxSll,
            DataLink::LINUX_SLL2 => LinkType::LinuxSll2,
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => LinkType::RawIp,
            other => LinkType::Other(u32::from(other)),
        }
    }
}

/// A capture interface: its name when the file records one (pcapng `if_name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: Option<String>,
    pub link: LinkType,
    /// Timestamp units per second (pcapng `if_tsresol`; 10^6 by default).
    units_per_sec: u64,
}

/// One captured frame, borrowed from the file's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Microseconds since the Unix epoch.
    pub ts_us: u64,
    /// Index into the file's interfaces (0 for pcap).
    pub interface: u32,
    pub link: LinkType,
    pub data: &'a [u8],
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

/// A whole capture file, mapped into memory: frames borrow it, nothing is copied.
pub struct CaptureFile {
    path: String,
    bytes: Bytes,
    format: Format,
}

#[derive(Clone, Copy)]
enum Format {
    Pcap,
    PcapNg,
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
            Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1) => Format::Pcap,
            Some(0x0a0d_0d0a) => Format::PcapNg,
            _ => {
                let shown = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>();
                let magic = if shown.is_empty() { "nothing: the file is empty".into() } else { format!("0x{shown}") };
                return Err(CaptureError::NotACapture { path, magic });
            }
        };
        Ok(Self { path, bytes, format })
    }

    /// The file's name as given.
    pub fn name(&self) -> &str {
        &self.path
    }

    /// Iterates over the frames. After an `Err` the iterator ends.
    pub fn frames(&self) -> Frames<'_> {
        Frames { file: self, pos: 0, state: State::Start, interfaces: Vec::new() }
    }
}

enum State {
    Start,
    Pcap(PcapParser, Interface),
    PcapNg(Box<PcapNgParser>),
    Done,
}

/// Iterator over a capture's frames; `interfaces()` grows as pcapng interface blocks are read.
pub struct Frames<'a> {
    file: &'a CaptureFile,
    pos: usize,
    state: State,
    interfaces: Vec<Interface>,
}

impl<'a> Frames<'a> {
    /// The interfaces described so far.
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    fn damaged(&mut self, reason: impl ToString) -> Option<Result<Frame<'a>, CaptureError>> {
        self.state = State::Done;
        Some(Err(CaptureError::Damaged { path: self.file.path.clone(), offset: self.pos, reason: reason.to_string() }))
    }

    fn start(&mut self) -> Result<(), PcapError> {
        let bytes = &self.file.bytes[..];
        match self.file.format {
            Format::Pcap => {
                let (rest, parser) = PcapParser::new(bytes)?;
                let header = parser.header();
                let units_per_sec = match header.ts_resolution {
                    TsResolution::MicroSecond => 1_000_000,
                    TsResolution::NanoSecond => 1_000_000_000,
                };
                let iface = Interface { name: None, link: header.datalink.into(), units_per_sec };
                self.interfaces.push(iface.clone());
                self.pos = bytes.len() - rest.len();
                self.state = State::Pcap(parser, iface);
            }
            Format::PcapNg => {
                let (rest, parser) = PcapNgParser::new(bytes)?;
                self.pos = bytes.len() - rest.len();
                self.state = State::PcapNg(Box::new(parser));
            }
        }
        Ok(())
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes: &'a [u8] = &self.file.bytes;
        loop {
            if matches!(self.state, State::Start)
                && let Err(e) = self.start()
            {
                return self.damaged(e);
            }
            let rest = &bytes[self.pos..];
            match &mut self.state {
                State::Start => unreachable!("started above"),
                State::Done => return None,
                _ if rest.is_empty() => {
                    self.state = State::Done;
                    return None;
                }
                State::Pcap(parser, iface) => {
                    let (link, units) = (iface.link, iface.units_per_sec);
                    match parser.next_raw_packet(rest) {
                        Ok((rest, p)) => {
                            self.pos = bytes.len() - rest.len();
                            let ts_us = u64::from(p.ts_sec) * 1_000_000 + u64::from(p.ts_frac) * 1_000_000 / units;
                            let Cow::Borrowed(data) = p.data else { unreachable!("pcap-file borrows from the slice") };
                            return Some(Ok(Frame { ts_us, interface: 0, link, data }));
                        }
                        Err(e) => return self.damaged(e),
                    }
                }
                State::PcapNg(parser) => match parser.next_block(rest) {
                    Ok((rest, block)) => {
                        self.pos = bytes.len() - rest.len();
                        match block {
                            Block::SectionHeader(_) => self.interfaces.clear(),
                            Block::InterfaceDescription(idb) => self.interfaces.push(interface_of(&idb)),
                            Block::EnhancedPacket(epb) => {
                                let Some(iface) = self.interfaces.get(epb.interface_id as usize) else {
                                    return self
                                        .damaged(format!("packet on undeclared interface {}", epb.interface_id));
                                };
                                // pcap-file reads the raw timestamp as nanoseconds whatever if_tsresol says.
                                let raw = epb.timestamp.as_nanos();
                                let ts_us = (raw * 1_000_000 / u128::from(iface.units_per_sec)) as u64;
                                let Cow::Borrowed(data) = epb.data else {
                                    unreachable!("pcap-file borrows from the slice")
                                };
                                return Some(Ok(Frame { ts_us, interface: epb.interface_id, link: iface.link, data }));
                            }
                            Block::SimplePacket(spb) => {
                                let Some(iface) = self.interfaces.first() else {
                                    return self.damaged("simple packet before any interface");
                                };
                                let Cow::Borrowed(data) = spb.data else {
                                    unreachable!("pcap-file borrows from the slice")
                                };
                                return Some(Ok(Frame { ts_us: 0, interface: 0, link: iface.link, data }));
                            }
                            _ => {}
                        }
                    }
                    Err(e) => return self.damaged(e),
                },
            }
        }
    }
}

fn interface_of(idb: &pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock) -> Interface {
    let mut iface = Interface { name: None, link: idb.linktype.into(), units_per_sec: 1_000_000 };
    for opt in &idb.options {
        match opt {
            InterfaceDescriptionOption::IfName(n) => iface.name = Some(n.to_string()),
            // RFC pcapng §4.2: high bit set = power of 2, else power of 10.
            InterfaceDescriptionOption::IfTsResol(r) => {
                iface.units_per_sec =
                    if r & 0x80 != 0 { 1u64 << (r & 0x7f).min(63) } else { 10u64.pow(u32::from(*r).min(19)) };
            }
            _ => {}
        }
    }
    iface
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

    #[test]
    fn garbage_is_refused_with_its_magic() {
        let err = CaptureFile::from_bytes("x", b"GET / HTTP/1.1".to_vec()).err().unwrap().to_string();
        assert_eq!(err, "x: not a pcap or pcapng file (starts with 0x47455420)");
        let err = CaptureFile::from_bytes("e", vec![]).err().unwrap().to_string();
        assert!(err.contains("empty"), "{err}");
    }
}
