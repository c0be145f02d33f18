//! The per-connection dissector the reassembler drives: it waits for a connection's first bytes
//! and hands the connection to the protocol they belong to — TLS if they open a handshake record,
//! HTTP/2 if they are the h2c preface (or HTTP/1.1 upgrades to h2c), DNS if the connection is on port 53 or its bytes are a length-prefixed DNS message, else HTTP/1
//! (which itself gives up on anything that is not HTTP). Content first, the port only for DNS,
//! whose first segment may be too short to tell. An HTTP `CONNECT` tunnel is decided again from
//! its own first bytes once the proxy answered.

use super::Dissected;
use super::dns_tcp::{DnsTcp, looks_like_dns_tcp};
use super::http1::Http1;
use super::http2::{Http2, PREFACE};
use super::tls::{Tls, looks_like_tls};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

/// One connection's protocol, once known.
pub enum AnyProtocol {
    Undecided,
    Http1(Box<Http1>),
    Http2(Box<Http2>),
    Tls(Box<Tls>),
    Dns(Box<DnsTcp>),
}

/// An HTTP/2 SETTINGS frame (not an ACK) on stream 0 with whole 6-byte settings: what an HTTP/2
/// server sends first. Nine bytes this specific do not begin any text protocol.
fn looks_like_server_settings(data: &[u8]) -> bool {
    let [l0, l1, l2, kind, flags, s0, s1, s2, s3, ..] = *data else { return false };
    let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
    kind == 4 && flags == 0 && [s0, s1, s2, s3] == [0; 4] && len % 6 == 0 && len <= 6 * 16
}

fn other(dir: Dir) -> Dir {
    match dir {
        Dir::AtoB => Dir::BtoA,
        Dir::BtoA => Dir::AtoB,
    }
}

fn on_dns_port(info: &ConnInfo) -> bool {
    [info.a.port(), info.b.port()].contains(&53)
}

impl ConnHandler for AnyProtocol {
    type Output = Dissected;

    fn new(_: &ConnInfo) -> Self {
        AnyProtocol::Undecided
    }

    fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        if let AnyProtocol::Undecided = self {
            *self = if looks_like_tls(data) {
                AnyProtocol::Tls(Box::new(Tls::new(info)))
            } else if data.len() >= 3 && PREFACE.starts_with(&data[..data.len().min(PREFACE.len())]) {
                AnyProtocol::Http2(Box::new(Http2::new(dir)))
            } else if looks_like_server_settings(data) {
                // h2c servers (grpc-core among them) may send SETTINGS before the client's preface.
                AnyProtocol::Http2(Box::new(Http2::new(info.opener.unwrap_or(other(dir)))))
            } else if on_dns_port(info) || looks_like_dns_tcp(data) {
                AnyProtocol::Dns(Box::default())
            } else {
                AnyProtocol::Http1(Box::new(Http1::new(info)))
            };
        }
        match self {
            AnyProtocol::Http1(h) => {
                h.on_data(info, dir, ts_us, data, out);
                if let Some((request, rest)) = h.take_h2c() {
                    // The server's side switched; the client sends its preface next.
                    let mut h2 = Http2::upgraded(other(dir), request);
                    h2.on_data(info, dir, ts_us, &rest, out);
                    *self = AnyProtocol::Http2(Box::new(h2));
                } else if let Some(mut tunnel) = h.take_tunnel() {
                    // CONNECT answered: what follows is another protocol (TLS, usually), decided
                    // afresh from its first bytes — the client's, which may have come already.
                    *self = AnyProtocol::Undecided;
                    for d in [other(dir), dir] {
                        let bytes = std::mem::take(&mut tunnel[d as usize]);
                        if !bytes.is_empty() {
                            self.on_data(info, d, ts_us, &bytes, out);
                        }
                    }
                }
            }
            AnyProtocol::Http2(h) => h.on_data(info, dir, ts_us, data, out),
            AnyProtocol::Tls(t) => t.on_data(info, dir, ts_us, data, out),
            AnyProtocol::Dns(d) => d.on_data(info, dir, ts_us, data, out),
            AnyProtocol::Undecided => unreachable!("decided above"),
        }
    }

    fn on_gap(&mut self, info: &ConnInfo, dir: Dir, len: u64) {
        match self {
            AnyProtocol::Http1(h) => h.on_gap(info, dir, len),
            AnyProtocol::Tls(t) => t.on_gap(info, dir, len),
            AnyProtocol::Http2(h) => h.on_gap(info, dir, len),
            AnyProtocol::Dns(d) => d.on_gap(info, dir, len),
            AnyProtocol::Undecided => {}
        }
    }

    fn on_close(&mut self, info: &ConnInfo, ts_us: u64, out: &mut Vec<Dissected>) {
        match self {
            AnyProtocol::Http1(h) => h.on_close(info, ts_us, out),
            AnyProtocol::Tls(t) => t.on_close(info, ts_us, out),
            AnyProtocol::Http2(h) => h.on_close(info, ts_us, out),
            AnyProtocol::Dns(d) => d.on_close(info, ts_us, out),
            AnyProtocol::Undecided => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podtap_shared::Detail;

    #[test]
    fn tls_inside_an_http_connect_tunnel_is_seen_as_tls() {
        let info = ConnInfo::test(1, 0, "10.0.0.1:40000", "10.0.0.2:3128");
        let mut p = AnyProtocol::new(&info);
        let mut out = Vec::new();
        let hello = crate::dissect::tls::tests::client_hello("api.example");
        let connect =
            [&b"CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n"[..], &hello[..20]].concat();
        p.on_data(&info, Dir::AtoB, 1, &connect, &mut out);
        p.on_data(&info, Dir::BtoA, 2, b"HTTP/1.1 200 Connection Established\r\n\r\n", &mut out);
        p.on_data(&info, Dir::AtoB, 3, &hello[20..], &mut out);
        p.on_data(&info, Dir::BtoA, 4, &crate::dissect::tls::tests::server_hello(), &mut out);
        p.on_close(&info, 5, &mut out);
        let details: Vec<&Detail> =
            out.iter().filter_map(|d| if let Dissected::Exchange(e) = d { Some(&e.detail) } else { None }).collect();
        assert!(matches!(details[0], Detail::Http(h) if h.method == "CONNECT" && h.status == Some(200)));
        assert!(matches!(details[1], Detail::Tls(t) if t.sni.as_deref() == Some("api.example") && t.version.is_some()));
        assert_eq!(details.len(), 2);
    }
}
