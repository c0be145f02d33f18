//! TLS handshakes in the clear (RFC 8446 §4.1.2–4.1.3, RFC 5246 §7.4.1): the ClientHello's SNI and
//! ALPN offer, the ServerHello's chosen ALPN and negotiated version (from `supported_versions` for
//! TLS 1.3). One exchange per connection, from ClientHello to ServerHello; after that the bytes are
//! encrypted and ignored. Records are parsed by tls-parser; nothing is decrypted.

use podtap_shared::{Detail, TlsExchange};
use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, TlsVersion, parse_tls_extensions, parse_tls_plaintext,
    parse_tls_server_hello_extensions,
};

use super::{Dissected, Exchange};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

/// Bytes held per direction while waiting for a whole handshake record (2^14 + header).
const MAX_RECORD: usize = 16_384 + 5;

/// True when bytes begin like a TLS handshake record (content type 22, major version 3).
pub fn looks_like_tls(data: &[u8]) -> bool {
    matches!(data, [0x16, 0x03, ..])
}

struct Hello {
    dir: Dir,
    ts_us: u64,
    size: u64,
    sni: Option<String>,
    alpn: Vec<String>,
}

/// Per-connection TLS state.
pub struct Tls {
    bufs: [Vec<u8>; 2],
    /// Time of the first byte of what `bufs` holds: a hello's time is its first byte's.
    first_ts: [u64; 2],
    client: Option<Hello>,
    done: bool,
}

fn version_name(v: TlsVersion) -> String {
    match v.0 {
        0x0300 => "SSL3.0".into(),
        0x0301 => "TLS1.0".into(),
        0x0302 => "TLS1.1".into(),
        0x0303 => "TLS1.2".into(),
        0x0304 => "TLS1.3".into(),
        n => format!("0x{n:04x}"),
    }
}

/// tls-parser's extension-list parsers (the ClientHello and the ServerHello grammar).
type ExtensionParser<'a> = fn(&'a [u8]) -> tls_parser::nom::IResult<&'a [u8], Vec<TlsExtension<'a>>>;

/// (SNI, ALPN protocols, supported_versions) found in a hello's extensions, parsed with the
/// ClientHello or the ServerHello grammar (they differ for `supported_versions`).
fn extensions<'a>(ext: Option<&'a [u8]>, parse: ExtensionParser<'a>) -> (Option<String>, Vec<String>, Vec<TlsVersion>) {
    let Some(Ok((_, list))) = ext.map(parse) else { return (None, Vec::new(), Vec::new()) };
    let (mut sni, mut alpn, mut versions) = (None, Vec::new(), Vec::new());
    for e in list {
        match e {
            TlsExtension::SNI(names) => {
                sni = names.first().map(|(_, n)| String::from_utf8_lossy(n).into_owned());
            }
            TlsExtension::ALPN(protos) => {
                alpn = protos.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect()
            }
            TlsExtension::SupportedVersions(v) => versions = v,
            _ => {}
        }
    }
    (sni, alpn, versions)
}

impl Tls {
    fn exchange(&self, info: &ConnInfo, hello: &Hello, server: Option<(u64, u64, Vec<String>, String)>) -> Exchange {
        let (client, srv) = info.endpoints(hello.dir);
        let (response_ts_us, response_size, alpn, version) = match server {
            Some((ts, size, alpn, version)) => {
                (Some(ts), size, if alpn.is_empty() { hello.alpn.clone() } else { alpn }, Some(version))
            }
            None => (None, 0, hello.alpn.clone(), None),
        };
        Exchange {
            conn: info.id,
            interface: info.interface,
            points: info.points,
            client,
            server: srv,
            ts_us: hello.ts_us,
            response_ts_us,
            request_size: hello.size,
            response_size,
            detail: Detail::Tls(TlsExchange { sni: hello.sni.clone(), alpn, version }),
        }
    }
}

impl ConnHandler for Tls {
    type Output = Dissected;

    fn new(_: &ConnInfo) -> Self {
        Self { bufs: [Vec::new(), Vec::new()], first_ts: [0; 2], client: None, done: false }
    }

    fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        if self.done {
            return;
        }
        let mut buf = std::mem::take(&mut self.bufs[dir as usize]);
        if buf.is_empty() {
            self.first_ts[dir as usize] = ts_us;
        }
        let ts_us = self.first_ts[dir as usize];
        buf.extend_from_slice(data);
        let record = match parse_tls_plaintext(&buf) {
            Ok((_, record)) => record,
            Err(tls_parser::nom::Err::Incomplete(_)) if buf.len() < MAX_RECORD => {
                self.bufs[dir as usize] = buf; // a record split across segments: wait for the rest
                return;
            }
            Err(_) => {
                self.done = true;
                out.push(Dissected::Resync);
                return;
            }
        };
        let size = buf.len() as u64;
        for msg in &record.msg {
            match msg {
                TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) if self.client.is_none() => {
                    let (sni, alpn, _) = extensions(ch.ext, parse_tls_extensions);
                    self.client = Some(Hello { dir, ts_us, size, sni, alpn });
                }
                TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)) => {
                    let (_, alpn, versions) = extensions(sh.ext, parse_tls_server_hello_extensions);
                    // TLS 1.3 keeps 1.2 in the legacy field and says 1.3 in supported_versions.
                    let version = version_name(versions.first().copied().unwrap_or(sh.version));
                    if let Some(hello) = self.client.take() {
                        out.push(Dissected::Exchange(Box::new(self.exchange(
                            info,
                            &hello,
                            Some((ts_us, size, alpn, version)),
                        ))));
                    } else {
                        out.push(Dissected::UnmatchedResponse);
                    }
                    self.done = true;
                }
                _ => {}
            }
        }
    }

    fn on_gap(&mut self, _: &ConnInfo, dir: Dir, _len: u64) {
        self.bufs[dir as usize].clear();
    }

    fn on_close(&mut self, info: &ConnInfo, _ts_us: u64, out: &mut Vec<Dissected>) {
        if let Some(hello) = self.client.take() {
            out.push(Dissected::Exchange(Box::new(self.exchange(info, &hello, None))));
        }
    }
}

#[cfg(test)]
mod tests;
