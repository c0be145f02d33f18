//! Packets built with etherparse for the tests that need a capture no lab writes: one HTTP
//! exchange on its own TCP connection, and a classic pcap of frames.

use etherparse::PacketBuilder;
use podtap::capture::CaptureFile;

/// One TCP connection's IPv4 packets (no link header) from `client` to `server`: handshake,
/// `request`, `response`, close.
pub fn http_conversation(
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    request: &[u8],
    response: &[u8],
) -> Vec<Vec<u8>> {
    let seg = |from_client: bool, seq: u32, ack: u32, syn: bool, fin: bool, payload: &[u8]| {
        let (src, dst) = if from_client { (client, server) } else { (server, client) };
        let mut b = PacketBuilder::ipv4(src.0, dst.0, 64).tcp(src.1, dst.1, seq, 65000);
        if syn {
            b = b.syn();
        }
        if fin {
            b = b.fin();
        }
        if ack != 0 {
            b = b.ack(ack);
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    };
    let (c, s) = (1000u32, 5000u32);
    let c1 = c + 1 + request.len() as u32;
    let s1 = s + 1 + response.len() as u32;
    vec![
        seg(true, c, 0, true, false, b""),
        seg(false, s, c + 1, true, false, b""),
        seg(true, c + 1, s + 1, false, false, request),
        seg(false, s + 1, c1, false, false, response),
        seg(true, c1, s1, false, true, b""),
        seg(false, s1, c1 + 1, false, true, b""),
    ]
}

/// `l3` (an IPv4 packet, or `ether_type`'s) in an Ethernet frame.
pub fn ethernet(ether_type: u16, l3: &[u8]) -> Vec<u8> {
    [&[2, 0, 0, 0, 0, 1][..], &[2, 0, 0, 0, 0, 2], &ether_type.to_be_bytes(), l3].concat()
}

/// A classic pcap of `frames` with link type `link`, 100 µs apart.
pub fn pcap(link: u32, frames: &[Vec<u8>]) -> CaptureFile {
    CaptureFile::from_bytes("built", pcap_bytes(link, frames)).unwrap()
}

/// The bytes of `pcap`'s file.
#[allow(dead_code)] // not every test binary writes files
pub fn pcap_bytes(link: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = [&0xa1b2_c3d4u32.to_le_bytes()[..], &2u16.to_le_bytes(), &4u16.to_le_bytes(), &[0; 8]].concat();
    out.extend(65535u32.to_le_bytes());
    out.extend(link.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend(1_800_000_000u32.to_le_bytes());
        out.extend((i as u32 * 100).to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend(f);
    }
    out
}
