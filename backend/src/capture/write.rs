//! Writes pcapng: a section header, one Interface Description Block per interface (name and
//! nanosecond timestamps), and Enhanced Packet Blocks. What `podtap capture` records can be read
//! back by podtap, Wireshark, tshark and tcpdump.

use std::io::{self, Write};

use super::LinkType;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
/// Nanoseconds: 10^-9.
const NANOS: u8 = 9;

pub struct PcapngWriter<W: Write> {
    out: W,
    interfaces: u32,
}

/// The pcap LINKTYPE_ code of a link.
pub fn link_code(link: LinkType) -> u16 {
    match link {
        LinkType::Ethernet => 1,
        LinkType::LinuxSll => 113,
        LinkType::LinuxSll2 => 276,
        LinkType::RawIp => 101,
        LinkType::Null => 0,
        LinkType::Loop => 108,
        LinkType::Other(code) => code as u16,
    }
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a section (native byte order, as pcapng allows).
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_ne_bytes());
        body.extend_from_slice(&1u16.to_ne_bytes());
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.extend_from_slice(&u64::MAX.to_ne_bytes()); // section length: unknown
        block(&mut out, SHB, &body)?;
        Ok(Self { out, interfaces: 0 })
    }

    /// Declares the next interface; its index is the count of interfaces declared before it.
    pub fn add_interface(&mut self, name: &str, link: LinkType, snaplen: u32) -> io::Result<u32> {
        self.add_interface_with(name, link, snaplen, None)
    }

    /// `add_interface` with a comment (`opt_comment`: what the interface was, on which node).
    pub fn add_interface_with(
        &mut self,
        name: &str,
        link: LinkType,
        snaplen: u32,
        comment: Option<&str>,
    ) -> io::Result<u32> {
        let mut body = Vec::with_capacity(32 + name.len());
        body.extend_from_slice(&link_code(link).to_ne_bytes());
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.extend_from_slice(&snaplen.to_ne_bytes());
        option(&mut body, IF_NAME, name.as_bytes());
        option(&mut body, IF_TSRESOL, &[NANOS]);
        if let Some(c) = comment {
            option(&mut body, OPT_COMMENT, c.as_bytes());
        }
        option(&mut body, OPT_END, &[]);
        block(&mut self.out, IDB, &body)?;
        self.interfaces += 1;
        Ok(self.interfaces - 1)
    }

    /// One packet on interface `interface`, captured at `ts_ns` (Unix nanoseconds).
    pub fn write_packet(&mut self, interface: u32, ts_ns: u64, wire_len: u32, data: &[u8]) -> io::Result<()> {
        self.write_packet_with(interface, ts_ns, wire_len, data, None)
    }

    /// `write_packet` with a comment (which connection, between which pods).
    pub fn write_packet_with(
        &mut self,
        interface: u32,
        ts_ns: u64,
        wire_len: u32,
        data: &[u8],
        comment: Option<&str>,
    ) -> io::Result<()> {
        let mut options = Vec::new();
        if let Some(c) = comment {
            option(&mut options, OPT_COMMENT, c.as_bytes());
            option(&mut options, OPT_END, &[]);
        }
        let mut head = [0u8; 20];
        head[0..4].copy_from_slice(&interface.to_ne_bytes());
        head[4..8].copy_from_slice(&((ts_ns >> 32) as u32).to_ne_bytes());
        head[8..12].copy_from_slice(&(ts_ns as u32).to_ne_bytes());
        head[12..16].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        head[16..20].copy_from_slice(&wire_len.max(data.len() as u32).to_ne_bytes());
        let total = (12 + head.len() + data.len() + pad4(data.len()) + options.len()) as u32;
        self.out.write_all(&EPB.to_ne_bytes())?;
        self.out.write_all(&total.to_ne_bytes())?;
        self.out.write_all(&head)?;
        self.out.write_all(data)?;
        self.out.write_all(&[0; 3][..pad4(data.len())])?;
        self.out.write_all(&options)?;
        self.out.write_all(&total.to_ne_bytes())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    body.extend_from_slice(&code.to_ne_bytes());
    body.extend_from_slice(&(value.len() as u16).to_ne_bytes());
    body.extend_from_slice(value);
    body.extend(std::iter::repeat_n(0, pad4(value.len())));
}

fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    out.write_all(&kind.to_ne_bytes())?;
    out.write_all(&total.to_ne_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureFile;

    #[test]
    fn what_is_written_reads_back_with_names_and_nanosecond_times() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        assert_eq!(w.add_interface("veth1", LinkType::Ethernet, 65535).unwrap(), 0);
        assert_eq!(w.add_interface("wg0", LinkType::RawIp, 65535).unwrap(), 1);
        w.write_packet(1, 1_700_000_000_123_456_789, 5, b"abcde").unwrap();
        w.write_packet(0, 1_700_000_001_000_000_000, 60, b"xyz").unwrap();
        let file = CaptureFile::from_bytes("test.pcapng", w.into_inner()).unwrap();
        let mut frames = file.frames();
        let a = frames.next().unwrap().unwrap();
        assert_eq!((a.interface, a.ts_us, a.link, a.data), (1, 1_700_000_000_123_456, LinkType::RawIp, &b"abcde"[..]));
        let b = frames.next().unwrap().unwrap();
        assert_eq!((b.interface, b.ts_us, b.data), (0, 1_700_000_001_000_000, &b"xyz"[..]));
        let names = frames.interface_names();
        assert_eq!(names, [Some("veth1".to_string()), Some("wg0".to_string())]);
        assert!(frames.next().is_none());
    }
}
