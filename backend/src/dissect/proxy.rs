//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) that load balancers and ingress
//! controllers put before the client's first byte, so the backend learns the real client: read,
//! taken off, and the address it names reported as the client. A pure function of bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature (spec §2.2).
const V2: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 line is at most 107 bytes, CRLF included (spec §2.1).
const V1_MAX: usize = 107;

/// What the first bytes of a connection are.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// A whole header of `len` bytes; `source` is the client it names (`None` for `UNKNOWN`,
    /// `LOCAL` or a family without addresses).
    Proxy { len: usize, source: Option<SocketAddr> },
    /// The start of a header: wait for more.
    More,
    /// Not a PROXY header.
    No,
}

/// Reads a PROXY header at the start of `b`.
pub fn parse(b: &[u8]) -> Header {
    if b.starts_with(b"PROXY ") {
        return v1(b);
    }
    if b.len() < V2.len() {
        return if V2.starts_with(b) || b"PROXY ".starts_with(b) { Header::More } else { Header::No };
    }
    if b.starts_with(V2) { v2(b) } else { Header::No }
}

/// `PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n`.
fn v1(b: &[u8]) -> Header {
    let Some(end) = b.iter().take(V1_MAX).position(|c| *c == b'\n') else {
        return if b.len() < V1_MAX { Header::More } else { Header::No };
    };
    let Ok(line) = std::str::from_utf8(&b[..end]) else { return Header::No };
    let mut words = line.trim_end_matches('\r').split(' ').skip(1);
    let source = match (words.next(), words.next(), words.next(), words.next()) {
        (Some("TCP4" | "TCP6"), Some(src), Some(_dst), Some(port)) => {
            src.parse::<IpAddr>().ok().zip(port.parse::<u16>().ok()).map(|(ip, port)| SocketAddr::new(ip, port))
        }
        (Some("UNKNOWN"), ..) => None,
        _ => return Header::No,
    };
    Header::Proxy { len: end + 1, source }
}

/// Signature, version and command, family and protocol, length, addresses, TLVs.
fn v2(b: &[u8]) -> Header {
    let Some(h) = b.get(..16) else { return Header::More };
    if h[12] >> 4 != 2 {
        return Header::No;
    }
    let len = 16 + usize::from(u16::from_be_bytes([h[14], h[15]]));
    let Some(body) = b.get(16..len) else { return Header::More };
    let local = h[12] & 0x0f == 0;
    let source = match h[13] >> 4 {
        _ if local => None,
        1 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([body[8], body[9]])))
        }
        2 if body.len() >= 36 => {
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&body[..16]).expect("16 bytes"));
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([body[32], body[33]])))
        }
        _ => None,
    };
    Header::Proxy { len, source }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A version 2 header for a TCP over IPv4 connection from `src` to `dst`, with one TLV.
    pub(crate) fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
        let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else { panic!("IPv4 only") };
        let tlv = [0x04, 0x00, 0x02, 0xab, 0xcd]; // PP2_TYPE_NOOP
        let mut body = [s.ip().octets(), d.ip().octets()].concat();
        body.extend(s.port().to_be_bytes());
        body.extend(d.port().to_be_bytes());
        body.extend(tlv);
        [&V2[..], &[0x21, 0x11], &(body.len() as u16).to_be_bytes(), &body].concat()
    }

    #[test]
    fn version_1_names_the_client() {
        let h = b"PROXY TCP4 203.0.113.7 10.0.0.2 56324 80\r\nGET / HTTP/1.1\r\n";
        assert_eq!(parse(h), Header::Proxy { len: 42, source: Some("203.0.113.7:56324".parse().unwrap()) });
        let h6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n";
        assert_eq!(parse(h6), Header::Proxy { len: h6.len(), source: Some("[2001:db8::1]:4000".parse().unwrap()) });
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Header::Proxy { len: 15, source: None });
        assert_eq!(parse(b"PROXY TCP4 203.0"), Header::More);
        assert_eq!(parse(b"PROXY BOGUS\r\n"), Header::No);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Header::No);
    }

    #[test]
    fn version_2_names_the_client_and_skips_its_tlvs() {
        let h = v2_header("198.51.100.9:40000".parse().unwrap(), "10.0.0.2:443".parse().unwrap());
        assert_eq!(parse(&h), Header::Proxy { len: h.len(), source: Some("198.51.100.9:40000".parse().unwrap()) });
        assert_eq!(parse(&h[..10]), Header::More);
        assert_eq!(parse(&h[..20]), Header::More);
        let mut local = h.clone();
        local[12] = 0x20;
        assert_eq!(parse(&local), Header::Proxy { len: h.len(), source: None });
        assert_eq!(parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00"), Header::No);
    }
}
