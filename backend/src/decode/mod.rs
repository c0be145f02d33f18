//! Stage 2, decode: a captured frame → a borrowed TCP `Segment` (or a note of what else it was).
//! Uses etherparse's lax per-layer slices: no allocation, no copy, and a packet that lies about its
//! lengths is decoded as far as it is true. Link layers: Ethernet (with VLAN tags), Linux cooked
//! v1 and v2, raw IP, BSD loopback (NULL and LOOP). Tunnels on a node's uplink are opened —
//! VXLAN, Geneve, IP in IP either way, GRE (`tunnel`) — and the packet inside is decoded, saying
//! which tunnel it was in. Owns no state; knows nothing of connections.

use std::net::{IpAddr, SocketAddr};

use etherparse::{IpNumber, LaxIpSlice, TcpSlice, UdpSlice};
use podtap_shared::{Tunnel, TunnelKind};

use crate::capture::{Frame, LinkType};

pub mod defrag;
pub mod tunnel;

/// Tunnels inside tunnels opened at most this deep.
const MAX_DEPTH: u8 = 4;

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
    /// The tunnel it was carried in, when it was captured encapsulated.
    pub tunnel: Option<Tunnel>,
}

/// A UDP datagram, borrowed from its frame.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    pub ts_us: u64,
    pub interface: u32,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
    /// The tunnel it was carried in, when it was captured encapsulated.
    pub tunnel: Option<Tunnel>,
}

/// What a frame turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    Tcp(Segment<'a>),
    Udp(Datagram<'a>),
    /// A fragment of an IP packet (its IP header and bytes): the engine puts fragments back
    /// together and decodes the whole with `transport`.
    Fragment(&'a [u8]),
    /// ARP, ICMP and the like: counted and skipped.
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

/// EtherTypes this stage follows.
const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;
const VLAN: u16 = 0x8100;
const QINQ: u16 = 0x88a8;

/// The network-layer EtherType and bytes of a frame, past the link header and up to two VLAN tags.
fn link_payload(link: LinkType, data: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    let be16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|x| u16::from_be_bytes([x[0], x[1]]));
    let (mut ether_type, mut rest) = match link {
        LinkType::Ethernet => (be16(data, 12).ok_or(DecodeError::Truncated)?, &data[14..]),
        // BSD loopback: a 4-byte address family (host order for NULL, network order for LOOP;
        // AF_INET6 differs between systems), so the IP version says which.
        LinkType::Null | LinkType::Loop => match data.get(4).map(|b| b >> 4) {
            Some(4) => (IPV4, &data[4..]),
            Some(6) => (IPV6, &data[4..]),
            Some(_) => return Err(DecodeError::Malformed),
            None => return Err(DecodeError::Truncated),
        },
        // Linux cooked v1: protocol (an EtherType) at bytes 14..16, payload from 16.
        LinkType::LinuxSll => (be16(data, 14).ok_or(DecodeError::Truncated)?, &data[16..]),
        // Linux cooked v2: protocol at bytes 0..2, payload from 20.
        LinkType::LinuxSll2 if data.len() >= 20 => (be16(data, 0).expect("20 bytes"), &data[20..]),
        LinkType::LinuxSll2 => return Err(DecodeError::Truncated),
        LinkType::RawIp => match data.first().map(|b| b >> 4) {
            Some(4) => (IPV4, data),
            Some(6) => (IPV6, data),
            _ => return Err(DecodeError::Malformed),
        },
        LinkType::Other(n) => return Err(DecodeError::UnsupportedLink(n)),
    };
    // IEEE 802.1Q / 802.1ad: 4 bytes each (TCI, then the inner EtherType).
    for _ in 0..2 {
        if ether_type != VLAN && ether_type != QINQ {
            break;
        }
        ether_type = be16(rest, 2).ok_or(DecodeError::Truncated)?;
        rest = &rest[4..];
    }
    Ok((ether_type, rest))
}

/// Decodes one frame. Works on etherparse's per-layer slices rather than its composite
/// `LaxSlicedPacket`, whose by-value moves cost ~8% of a whole analysis.
pub fn decode<'a>(frame: &Frame<'a>) -> Result<Decoded<'a>, DecodeError> {
    let (ether_type, l3) = link_payload(frame.link, frame.data)?;
    network(frame, ether_type, l3, None, 0)
}

/// Decodes an IP packet (EtherType `ether_type`), inside `tunnel` when it was encapsulated.
fn network<'a>(
    frame: &Frame<'_>,
    ether_type: u16,
    l3: &'a [u8],
    tunnel: Option<Tunnel>,
    depth: u8,
) -> Result<Decoded<'a>, DecodeError> {
    if ether_type != IPV4 && ether_type != IPV6 {
        return Ok(Decoded::Other);
    }
    // Lax: an IP header that claims more bytes than were captured keeps what is there.
    let (ip, _) = LaxIpSlice::from_slice(l3).map_err(|_| DecodeError::Malformed)?;
    let payload = ip.payload();
    if payload.fragmented {
        return Ok(Decoded::Fragment(l3));
    }
    inner(frame, ip.source_addr(), ip.destination_addr(), payload.ip_number, payload.payload, tunnel, depth)
}

/// Decodes a transport header and payload (from a frame, or from fragments put back together).
pub fn transport<'a>(
    frame: &Frame<'_>,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    ip_number: IpNumber,
    payload: &'a [u8],
) -> Result<Decoded<'a>, DecodeError> {
    inner(frame, src_ip, dst_ip, ip_number, payload, None, 0)
}

/// The transport layer, or the packet inside a tunnel this layer opens.
fn inner<'a>(
    frame: &Frame<'_>,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    ip_number: IpNumber,
    payload: &'a [u8],
    tunnel: Option<Tunnel>,
    depth: u8,
) -> Result<Decoded<'a>, DecodeError> {
    let opened = |kind, vni| Some(Tunnel { kind, outer_src: src_ip, outer_dst: dst_ip, vni });
    let deeper = depth < MAX_DEPTH;
    match ip_number {
        IpNumber::IPV4 | IpNumber::IPV6 if deeper => {
            let ether_type = if ip_number == IpNumber::IPV4 { IPV4 } else { IPV6 };
            network(frame, ether_type, payload, opened(TunnelKind::Ipip, None), depth + 1)
        }
        IpNumber::GRE if deeper => match tunnel::gre(payload) {
            Some(t) => open(frame, t, opened(t.kind, t.vni), depth),
            None => Ok(Decoded::Other),
        },
        IpNumber::TCP => {
            let tcp = TcpSlice::from_slice(payload).map_err(|_| DecodeError::Malformed)?;
            Ok(Decoded::Tcp(Segment {
                ts_us: frame.ts_us,
                interface: frame.interface,
                src: SocketAddr::new(src_ip, tcp.source_port()),
                dst: SocketAddr::new(dst_ip, tcp.destination_port()),
                seq: tcp.sequence_number(),
                flags: TcpFlags { syn: tcp.syn(), ack: tcp.ack(), fin: tcp.fin(), rst: tcp.rst() },
                payload: tcp.payload(),
                tunnel,
            }))
        }
        IpNumber::UDP => {
            let udp = UdpSlice::from_slice_lax(payload).map_err(|_| DecodeError::Malformed)?;
            let encapsulated = match tunnel::udp_tunnel(udp.destination_port()).filter(|_| deeper) {
                Some(TunnelKind::Vxlan) => tunnel::vxlan(udp.payload()),
                Some(_) => tunnel::geneve(udp.payload()),
                None => None,
            };
            if let Some(t) = encapsulated {
                return open(frame, t, opened(t.kind, t.vni), depth);
            }
            Ok(Decoded::Udp(Datagram {
                ts_us: frame.ts_us,
                interface: frame.interface,
                src: SocketAddr::new(src_ip, udp.source_port()),
                dst: SocketAddr::new(dst_ip, udp.destination_port()),
                payload: udp.payload(),
                tunnel,
            }))
        }
        _ => Ok(Decoded::Other),
    }
}

/// Decodes what a tunnel carries: an Ethernet frame or an IP packet.
fn open<'a>(
    frame: &Frame<'_>,
    t: tunnel::Inner<'a>,
    tunnel: Option<Tunnel>,
    depth: u8,
) -> Result<Decoded<'a>, DecodeError> {
    let (ether_type, l3) = match t.ether_type {
        tunnel::ETHERNET => link_payload(LinkType::Ethernet, t.bytes)?,
        other => (other, t.bytes),
    };
    network(frame, ether_type, l3, tunnel, depth + 1)
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
    fn vlan_tagged_frames_decode_and_arp_is_other() {
        let eth = tcp_frame(b"tagged");
        let mut tagged = eth[..12].to_vec();
        tagged.extend([0x81, 0x00, 0x00, 0x2a]); // 802.1Q, VLAN 42
        tagged.extend_from_slice(&eth[12..]);
        let Decoded::Tcp(s) = decode(&frame(LinkType::Ethernet, &tagged)).unwrap() else { panic!("not tcp") };
        assert_eq!(s.payload, b"tagged");
        let mut arp = eth[..12].to_vec();
        arp.extend([0x08, 0x06]);
        arp.extend([0u8; 28]);
        assert!(matches!(decode(&frame(LinkType::Ethernet, &arp)).unwrap(), Decoded::Other));
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
        assert_eq!(decode(&frame(LinkType::RawIp, &[0x50; 30])).unwrap_err(), DecodeError::Malformed);
        let mut bad = tcp_frame(b"");
        bad[14 + 20 + 12] = 0x10; // TCP data offset 1 (< 5 words)
        assert!(decode(&frame(LinkType::Ethernet, &bad)).is_err());
    }
}
