//! Encapsulations a Kubernetes node's uplink carries: VXLAN (RFC 7348; UDP 4789, and 8472, the
//! Linux and Flannel default), Geneve (RFC 8926; UDP 6081) and GRE (RFC 2784 with RFC 2890's key
//! and sequence number). Each turns the outer payload into the inner frame's EtherType and bytes;
//! IP in IP needs no header of its own (IP protocol 4 or 41: the inner packet follows). Pure
//! functions of bytes.

use podtap_shared::TunnelKind;

/// What an encapsulation holds: the inner frame's EtherType (Ethernet frames as `ETHERNET`),
/// its bytes, and the network identifier (VNI, GRE key) if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inner<'a> {
    pub kind: TunnelKind,
    pub ether_type: u16,
    pub bytes: &'a [u8],
    pub vni: Option<u32>,
}

/// "Transparent Ethernet bridging" (RFC 1701): the inner bytes are a whole Ethernet frame.
pub const ETHERNET: u16 = 0x6558;

/// UDP ports that carry VXLAN or Geneve.
pub fn udp_tunnel(dst_port: u16) -> Option<TunnelKind> {
    match dst_port {
        4789 | 8472 => Some(TunnelKind::Vxlan),
        6081 => Some(TunnelKind::Geneve),
        _ => None,
    }
}

/// RFC 7348 §5: flags (the I bit set), 24 reserved bits, the VNI, 8 reserved bits; an Ethernet
/// frame follows.
pub fn vxlan(p: &[u8]) -> Option<Inner<'_>> {
    let h = p.get(..8)?;
    (h[0] & 0x08 != 0).then(|| Inner {
        kind: TunnelKind::Vxlan,
        ether_type: ETHERNET,
        bytes: &p[8..],
        vni: Some(u32::from_be_bytes([0, h[4], h[5], h[6]])),
    })
}

/// RFC 8926 §3.4: version 0, options length in 4-byte words, the protocol type of the inner
/// frame (Ethernet, IPv4 or IPv6), the VNI, then options.
pub fn geneve(p: &[u8]) -> Option<Inner<'_>> {
    let h = p.get(..8)?;
    if h[0] >> 6 != 0 {
        return None;
    }
    let options = usize::from(h[0] & 0x3f) * 4;
    Some(Inner {
        kind: TunnelKind::Geneve,
        ether_type: u16::from_be_bytes([h[2], h[3]]),
        bytes: p.get(8 + options..)?,
        vni: Some(u32::from_be_bytes([0, h[4], h[5], h[6]])),
    })
}

/// RFC 2784 §2 and RFC 2890 §2: flags (checksum, key, sequence), version 0, the inner EtherType,
/// then the optional fields in that order.
pub fn gre(p: &[u8]) -> Option<Inner<'_>> {
    let h = p.get(..4)?;
    let (checksum, key, sequence) = (h[0] & 0x80 != 0, h[0] & 0x20 != 0, h[0] & 0x10 != 0);
    if h[1] & 0x07 != 0 {
        return None; // version 1 is PPTP's enhanced GRE
    }
    let mut at = 4 + if checksum { 4 } else { 0 };
    let vni = if key {
        let k = p.get(at..at + 4)?;
        at += 4;
        Some(u32::from_be_bytes([k[0], k[1], k[2], k[3]]))
    } else {
        None
    };
    at += if sequence { 4 } else { 0 };
    Some(Inner { kind: TunnelKind::Gre, ether_type: u16::from_be_bytes([h[2], h[3]]), bytes: p.get(at..)?, vni })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_gives_the_vni_and_the_inner_frame() {
        let p = [0x08, 0, 0, 0, 0x00, 0x00, 0x01, 0, 0xaa, 0xbb];
        assert_eq!(
            vxlan(&p),
            Some(Inner { kind: TunnelKind::Vxlan, ether_type: ETHERNET, bytes: &[0xaa, 0xbb], vni: Some(1) })
        );
        assert_eq!(vxlan(&[0, 0, 0, 0, 0, 0, 1, 0]), None, "the I flag must be set");
        assert_eq!(vxlan(&[0x08, 0, 0]), None);
    }

    #[test]
    fn geneve_skips_its_options() {
        // version 0, 1 word of options, protocol Ethernet, VNI 0x123456.
        let p = [0x01, 0, 0x65, 0x58, 0x12, 0x34, 0x56, 0, 1, 2, 3, 4, 0xee];
        let inner = geneve(&p).unwrap();
        assert_eq!((inner.ether_type, inner.bytes, inner.vni), (ETHERNET, &[0xee][..], Some(0x123456)));
        assert_eq!(geneve(&[0x41, 0, 0x65, 0x58, 0, 0, 0, 0]), None, "version 1");
        assert_eq!(geneve(&[0x3f, 0, 0x65, 0x58, 0, 0, 0, 0]), None, "options beyond the packet");
    }

    #[test]
    fn gre_with_and_without_key_checksum_and_sequence() {
        let plain = [0, 0, 0x08, 0x00, 0x45];
        assert_eq!(gre(&plain).map(|i| (i.ether_type, i.bytes, i.vni)), Some((0x0800, &[0x45][..], None)));
        let all = [0xb0, 0, 0x86, 0xdd, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0x60];
        assert_eq!(gre(&all).map(|i| (i.ether_type, i.bytes, i.vni)), Some((0x86dd, &[0x60][..], Some(7))));
        assert_eq!(gre(&[0, 1, 0x88, 0x0b]), None, "PPTP");
    }
}
