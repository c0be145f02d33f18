//! Stage 2, decode: a captured frame → a borrowed TCP `Segment` (or a note of what else it was).
//! Uses etherparse's lax sliced API: no allocation, no copy, and a packet that lies about its
//! lengths is decoded as far as it is true. Owns no state; knows nothing of connections.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::capture::{Frame, LinkType};

/// TCP flags the reassembler needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// A TCP segment, borrowed from its frame.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub ts_us: u64,
    pub interface: u32,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub flags: TcpFlags,
    pub payload: &'a [u8],
}

/// A UDP datagram, borrowed from its frame.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    pub ts_us: u64,
    pub interface: u32,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
}

/// What a frame turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    Tcp(Segment<'a>),
    Udp(Datagram<'a>),
    /// ARP, ICMP, IP fragments and the like: counted and skipped.
    Other,
}

/// Why a frame could not be decoded. Each is counted, never fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is shorter than its link header.
    #[error("frame shorter than its link-layer header")]
    Truncated,
    /// The IP or TCP header is broken beyond what lax parsing accepts.
    #[error("malformed IP or TCP header")]
    Malformed,
    /// A link type podtap does not decode.
    #[error("unsupported link type {0}")]
    UnsupportedLink(u32),
}

/// Decodes one frame.
pub fn decode<'a>(frame: &Frame<'a>) -> Result<Decoded<'a>, DecodeError> {
    let data = frame.data;
    let sliced = match frame.link {
        LinkType::Ethernet => LaxSlicedPacket::from_ethernet(data).map_err(|_| DecodeError::Truncated)?,
        LinkType::RawIp => LaxSlicedPacket::from_ip(data).map_err(|_| DecodeError::Malformed)?,
        // Linux cooked v1: protocol (an EtherType) at bytes 14..16, payload from 16.
        LinkType::LinuxSll => {
            let proto = data.get(14..16).ok_or(DecodeError::Truncated)?;
            LaxSlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([proto[0], proto[1]])), &data[16..])
        }
        // Linux cooked v2: protocol at bytes 0..2, payload from 20.
        LinkType::LinuxSll2 => {
            if data.len() < 20 {
                return Err(DecodeError::Truncated);
            }
            LaxSlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([data[0], data[1]])), &data[20..])
        }
        LinkType::Other(n) => return Err(DecodeError::UnsupportedLink(n)),
    };
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            if v4.is_payload_fragmented() {
                return Ok(Decoded::Other);
            }
            let h = v4.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            if v6.is_payload_fragmented() {
                return Ok(Decoded::Other);
            }
            let h = v6.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        Some(LaxNetSlice::Arp(_)) | None => return Ok(Decoded::Other),
    };
    match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => Ok(Decoded::Tcp(Segment {
            ts_us: frame.ts_us,
            interface: frame.interface,
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            seq: tcp.sequence_number(),
            flags: TcpFlags { syn: tcp.syn(), ack: tcp.ack(), fin: tcp.fin(), rst: tcp.rst() },
            payload: tcp.payload(),
        })),
        Some(TransportSlice::Udp(udp)) => Ok(Decoded::Udp(Datagram {
            ts_us: frame.ts_us,
            interface: frame.interface,
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            payload: udp.payload(),
        })),
        Some(_) => Ok(Decoded::Other),
        // An IP packet that claims TCP but whose header did not parse.
        None if sliced.stop_err.is_some() => Err(DecodeError::Malformed),
        None => Ok(Decoded::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 7, 64000)
            .ack(1)
            .psh();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn frame(link: LinkType, data: &[u8]) -> Frame<'_> {
        Frame { ts_us: 42, interface: 3, link, data }
    }

    #[test]
    fn ethernet_ipv4_tcp_becomes_a_borrowed_segment() {
        let bytes = tcp_frame(b"GET / HTTP/1.1\r\n\r\n");
        let Decoded::Tcp(s) = decode(&frame(LinkType::Ethernet, &bytes)).unwrap() else { panic!("not tcp") };
        assert_eq!(s.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "10.0.0.2:80".parse().unwrap());
        assert_eq!((s.seq, s.interface, s.ts_us), (7, 3, 42));
        assert!(s.flags.ack && !s.flags.syn);
        assert_eq!(s.payload, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn linux_cooked_v1_and_v2_and_raw_ip_decode_alike() {
        let eth = tcp_frame(b"x");
        let ip = &eth[14..];
        let mut sll = vec![0u8; 14];
        sll.extend([0x08, 0x00]);
        sll.extend_from_slice(ip);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend([0u8; 18]);
        sll2.extend_from_slice(ip);
        for (link, bytes) in [(LinkType::LinuxSll, &sll[..]), (LinkType::LinuxSll2, &sll2[..]), (LinkType::RawIp, ip)] {
            let Decoded::Tcp(s) = decode(&frame(link, bytes)).unwrap() else { panic!("{link:?} not tcp") };
            assert_eq!(s.payload, b"x", "{link:?}");
        }
    }

    #[test]
    fn a_packet_that_lies_about_its_length_keeps_what_is_there() {
        let mut bytes = tcp_frame(b"0123456789");
        bytes.truncate(bytes.len() - 4); // IP total length now claims 4 bytes more than captured
        let Decoded::Tcp(s) = decode(&frame(LinkType::Ethernet, &bytes)).unwrap() else { panic!("not tcp") };
        assert_eq!(s.payload, b"012345");
    }

    #[test]
    fn short_and_foreign_frames_are_errors_not_panics() {
        assert_eq!(decode(&frame(LinkType::Ethernet, &[0; 5])).unwrap_err(), DecodeError::Truncated);
        assert_eq!(decode(&frame(LinkType::LinuxSll2, &[0; 5])).unwrap_err(), DecodeError::Truncated);
        assert_eq!(decode(&frame(LinkType::Other(147), &[0; 5])).unwrap_err(), DecodeError::UnsupportedLink(147));
        let mut bad = tcp_frame(b"");
        bad[14 + 20 + 12] = 0x10; // TCP data offset 1 (< 5 words)
        assert!(decode(&frame(LinkType::Ethernet, &bad)).is_err());
    }
}
