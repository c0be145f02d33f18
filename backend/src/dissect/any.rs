//! The per-connection dissector the reassembler drives: it waits for a connection's first bytes
//! and hands the connection to the protocol they belong to — TLS if they open a handshake record,
//! DNS if the connection is on port 53 or its bytes are a length-prefixed DNS message, else HTTP/1
//! (which itself gives up on anything that is not HTTP). Content first, the port only for DNS,
//! whose first segment may be too short to tell.

use super::Dissected;
use super::dns_tcp::{DnsTcp, looks_like_dns_tcp};
use super::http1::Http1;
use super::tls::{Tls, looks_like_tls};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

/// One connection's protocol, once known.
pub enum AnyProtocol {
    Undecided,
    Http1(Box<Http1>),
    Tls(Box<Tls>),
    Dns(Box<DnsTcp>),
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
            } else if on_dns_port(info) || looks_like_dns_tcp(data) {
                AnyProtocol::Dns(Box::default())
            } else {
                AnyProtocol::Http1(Box::new(Http1::new(info)))
            };
        }
        match self {
            AnyProtocol::Http1(h) => h.on_data(info, dir, ts_us, data, out),
            AnyProtocol::Tls(t) => t.on_data(info, dir, ts_us, data, out),
            AnyProtocol::Dns(d) => d.on_data(info, dir, ts_us, data, out),
            AnyProtocol::Undecided => unreachable!("decided above"),
        }
    }

    fn on_gap(&mut self, info: &ConnInfo, dir: Dir, len: u64) {
        match self {
            AnyProtocol::Http1(h) => h.on_gap(info, dir, len),
            AnyProtocol::Tls(t) => t.on_gap(info, dir, len),
            AnyProtocol::Dns(d) => d.on_gap(info, dir, len),
            AnyProtocol::Undecided => {}
        }
    }

    fn on_close(&mut self, info: &ConnInfo, ts_us: u64, out: &mut Vec<Dissected>) {
        match self {
            AnyProtocol::Http1(h) => h.on_close(info, ts_us, out),
            AnyProtocol::Tls(t) => t.on_close(info, ts_us, out),
            AnyProtocol::Dns(d) => d.on_close(info, ts_us, out),
            AnyProtocol::Undecided => {}
        }
    }
}
