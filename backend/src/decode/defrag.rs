//! IP fragments put back together (IPv4, and IPv6 fragment headers), with etherparse's pool: per
//! interface, so the two copies of one datagram seen on two veths never mix. Fragments that never
//! complete are dropped after `TIMEOUT_US` of capture time and counted.

use etherparse::SlicedPacket;
use etherparse::defrag::{IpDefragPayloadVec, IpDefragPool};

/// How long fragments wait for the rest of their packet (the Linux default, `ipfrag_time`).
pub const TIMEOUT_US: u64 = 30_000_000;

/// Fragment counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FragmentStats {
    /// Fragments taken in.
    pub fragments: u64,
    /// Packets made whole again.
    pub reassembled: u64,
    /// Fragments that contradicted each other or did not parse.
    pub invalid: u64,
}

#[derive(Default)]
pub struct Defragmenter {
    pool: IpDefragPool<u64, u32>,
    pub stats: FragmentStats,
}

/// A whole packet again: its addresses, transport protocol and payload.
pub struct Whole {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    pub packet: IpDefragPayloadVec,
}

impl Defragmenter {
    /// Takes one fragment (`l3` starts at its IP header); returns the packet once it is complete.
    pub fn add(&mut self, l3: &[u8], interface: u32, ts_us: u64) -> Option<Whole> {
        self.stats.fragments += 1;
        let Ok(slice) = SlicedPacket::from_ip(l3) else {
            self.stats.invalid += 1;
            return None;
        };
        let (src, dst) = match &slice.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => {
                (ip.header().source_addr().into(), ip.header().destination_addr().into())
            }
            Some(etherparse::NetSlice::Ipv6(ip)) => {
                (ip.header().source_addr().into(), ip.header().destination_addr().into())
            }
            _ => {
                self.stats.invalid += 1;
                return None;
            }
        };
        match self.pool.process_sliced_packet(&slice, ts_us, interface) {
            Ok(Some(packet)) => {
                self.stats.reassembled += 1;
                Some(Whole { src, dst, packet })
            }
            Ok(None) => None,
            Err(_) => {
                self.stats.invalid += 1;
                None
            }
        }
    }

    /// Gives a finished packet's buffer back for reuse.
    pub fn recycle(&mut self, whole: Whole) {
        self.pool.return_buf(whole.packet);
    }

    /// Forgets fragments older than the timeout.
    pub fn sweep(&mut self, now_us: u64) {
        self.pool.retain(|ts| now_us.saturating_sub(*ts) <= TIMEOUT_US);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpFragOffset, IpNumber, Ipv4Header, UdpHeader};

    /// A UDP datagram of `payload` from 10.0.0.1:53 to 10.0.0.2:4000, cut into IPv4 fragments
    /// of at most `mtu_payload` bytes (a multiple of 8).
    fn fragments(payload: &[u8], mtu_payload: usize, id: u16) -> Vec<Vec<u8>> {
        let udp = UdpHeader::with_ipv4_checksum(
            53,
            4000,
            &Ipv4Header::new(0, 64, IpNumber::UDP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap(),
            payload,
        )
        .unwrap();
        let mut whole = udp.to_bytes().to_vec();
        whole.extend_from_slice(payload);
        whole
            .chunks(mtu_payload)
            .enumerate()
            .map(|(i, chunk)| {
                let mut ip =
                    Ipv4Header::new(chunk.len() as u16, 64, IpNumber::UDP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
                ip.identification = id;
                ip.more_fragments = (i + 1) * mtu_payload < whole.len();
                ip.fragment_offset = IpFragOffset::try_new((i * mtu_payload / 8) as u16).unwrap();
                ip.header_checksum = ip.calc_header_checksum();
                let mut bytes = ip.to_bytes().to_vec();
                bytes.extend_from_slice(chunk);
                bytes
            })
            .collect()
    }

    #[test]
    fn fragments_in_any_order_make_the_datagram_once() {
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut frags = fragments(&payload, 1480, 7);
        assert_eq!(frags.len(), 3);
        frags.swap(0, 2);
        let mut d = Defragmenter::default();
        assert!(d.add(&frags[0], 1, 10).is_none());
        assert!(d.add(&frags[1], 1, 11).is_none());
        let whole = d.add(&frags[2], 1, 12).expect("complete");
        assert_eq!(whole.packet.ip_number, IpNumber::UDP);
        assert_eq!(&whole.packet.payload[8..], &payload[..]);
        assert_eq!(whole.src.to_string(), "10.0.0.1");
        d.recycle(whole);
        assert_eq!(d.stats, FragmentStats { fragments: 3, reassembled: 1, invalid: 0 });
    }

    #[test]
    fn two_interfaces_never_mix_and_stale_fragments_expire() {
        let payload = vec![b'x'; 2000];
        let frags = fragments(&payload, 1480, 9);
        let mut d = Defragmenter::default();
        assert!(d.add(&frags[0], 1, 0).is_none());
        assert!(d.add(&frags[1], 2, 0).is_none(), "the rest arrived on another interface");
        d.sweep(TIMEOUT_US + 1);
        assert!(d.add(&frags[1], 1, TIMEOUT_US + 2).is_none(), "its first half has expired");
        assert!(d.add(&frags[0], 1, TIMEOUT_US + 3).is_some());
        assert!(d.add(b"\x45garbage", 1, 0).is_none());
        assert_eq!(d.stats.invalid, 1);
    }
}
