//! TLS handshakes in the clear (RFC 8446 §4.1.2–4.1.3, RFC 5246 §7.4.1): the ClientHello's SNI and
//! ALPN offer, the ServerHello's chosen ALPN and negotiated version (from `supported_versions` for
//! TLS 1.3). One exchange per connection, from ClientHello to ServerHello (a HelloRetryRequest and
//! the second ClientHello it asks for are the same handshake; a fatal alert instead of a hello
//! ends it, failed); after that the bytes are encrypted and ignored. Every record of a segment is
//! read — hellos share segments with ChangeCipherSpec, alerts and 0-RTT data — and records that
//! do not parse in the clear are skipped by their length. tls-parser parses; nothing is decrypted.
//! Old and early versions too: an SSL 2.0-compatible ClientHello (RFC 5246 Appendix E.2, as SSLv3
//! clients send it) and the ServerHellos of TLS 1.3's drafts, named `TLS1.3-draft-NN`. TLS that
//! begins after a plaintext protocol's upgrade (`starttls`) says which protocol it was.

use podtap_shared::{Detail, TlsExchange};
use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, TlsRecordHeader, TlsVersion, parse_tls_extensions,
    parse_tls_record_header, parse_tls_record_with_header, parse_tls_server_hello_extensions,
};

use super::{Dissected, Exchange, Timing};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

/// Bytes held per direction while waiting for a whole handshake record (2^14 + header).
const MAX_RECORD: usize = 16_384 + 5;

/// True when bytes begin like a TLS handshake record (content type 22, major version 3), or
/// like an SSL 2.0-compatible ClientHello offering SSL 3.0 or TLS (RFC 5246 Appendix E.2: a
/// two-byte header with its high bit set, message type 1, then the version offered), as old SSLv3
/// clients send their first hello.
pub fn looks_like_tls(data: &[u8]) -> bool {
    matches!(data, [0x16, 0x03, ..]) || sslv2_hello_len(data).is_some()
}

/// The length of the SSL 2.0-compatible ClientHello (header included) at the start of `data`.
fn sslv2_hello_len(data: &[u8]) -> Option<usize> {
    match *data {
        [h0, h1, 0x01, 0x03, 0x00..=0x03, ..] if h0 & 0x80 != 0 => {
            let len = usize::from(h0 & 0x7f) << 8 | usize::from(h1);
            // msg_type, version, three lengths and at least one cipher spec (RFC 6101 E.1).
            (len >= 9 + 3).then_some(2 + len)
        }
        _ => None,
    }
}

/// The version a ServerHello that tls-parser does not read says: those of TLS 1.3 drafts 19–21
/// (RFC 8446's drafts before 22 put the version first and had no session id: `version, random,
/// cipher_suite, extensions`). `body` is the record's contents.
fn draft_server_hello_version(body: &[u8]) -> Option<TlsVersion> {
    match *body {
        [2, _, _, _, 0x7f, minor @ 0x13..=0x15, ..] => Some(TlsVersion(0x7f00 | u16::from(minor))),
        _ => None,
    }
}

struct Hello {
    dir: Dir,
    ts_us: u64,
    size: u64,
    sni: Option<String>,
    alpn: Vec<String>,
    /// The fatal alert the server answered with instead of its hello.
    alert: Option<String>,
}

/// RFC 8446 §4.1.3: the `random` of a ServerHello that is a HelloRetryRequest (SHA-256 of
/// "HelloRetryRequest").
const HELLO_RETRY_REQUEST: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Per-connection TLS state.
pub struct Tls {
    bufs: [Vec<u8>; 2],
    /// Time of the first byte of what `bufs` holds: a hello's time is its first byte's.
    first_ts: [u64; 2],
    client: Option<Hello>,
    done: bool,
    /// The plaintext protocol the connection began in (`starttls`).
    upgraded_from: Option<&'static str>,
}

impl Tls {
    /// TLS that begins after a plaintext protocol's upgrade command.
    pub fn after(upgraded_from: &'static str) -> Self {
        Self { upgraded_from: Some(upgraded_from), ..Self::fresh() }
    }

    fn fresh() -> Self {
        Self { bufs: [Vec::new(), Vec::new()], first_ts: [0; 2], client: None, done: false, upgraded_from: None }
    }
}

fn version_name(v: TlsVersion) -> String {
    match v.0 {
        0x0300 => "SSL3.0".into(),
        0x0301 => "TLS1.0".into(),
        0x0302 => "TLS1.1".into(),
        0x0303 => "TLS1.2".into(),
        0x0304 => "TLS1.3".into(),
        // Drafts of TLS 1.3 (draft-ietf-tls-tls13-NN), and Facebook's experiments with them.
        n if n >> 8 == 0x7f => format!("TLS1.3-draft-{}", n & 0xff),
        n if n >> 8 == 0xfb => format!("TLS1.3-draft-{}-fb", n & 0xff),
        n => format!("0x{n:04x}"),
    }
}

/// RFC 8446 §6 alert descriptions, as the RFC spells them.
fn alert_name(code: u8) -> String {
    let name = match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        n => return format!("alert_{n}"),
    };
    name.to_string()
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
    /// One whole record of `dir`. Records that do not parse (encrypted handshake, 0-RTT or
    /// application data) are skipped, not taken for the end of TLS.
    #[allow(clippy::too_many_arguments)]
    fn on_record(
        &mut self,
        info: &ConnInfo,
        dir: Dir,
        ts_us: u64,
        header: &TlsRecordHeader,
        body: &[u8],
        size: u64,
        out: &mut Vec<Dissected>,
    ) {
        let Ok((_, messages)) = parse_tls_record_with_header(body, header) else {
            if let Some(version) = draft_server_hello_version(body) {
                self.server_hello(info, ts_us, size, Vec::new(), version, out);
            }
            return;
        };
        for msg in &messages {
            match msg {
                TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) if self.client.is_none() => {
                    let (sni, alpn, _) = extensions(ch.ext, parse_tls_extensions);
                    self.client = Some(Hello { dir, ts_us, size, sni, alpn, alert: None });
                }
                // A HelloRetryRequest (RFC 8446 §4.1.4) is a ServerHello with a fixed random: the
                // client says hello again and the handshake goes on. Still one handshake.
                TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)) if sh.random == HELLO_RETRY_REQUEST => {}
                TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)) => {
                    let (_, alpn, versions) = extensions(sh.ext, parse_tls_server_hello_extensions);
                    // TLS 1.3 keeps 1.2 in the legacy field and says 1.3 in supported_versions.
                    let version = versions.first().copied().unwrap_or(sh.version);
                    self.server_hello(info, ts_us, size, alpn, version, out);
                }
                // Draft 18 of TLS 1.3 (RFC 8446's drafts): its own ServerHello layout.
                TlsMessage::Handshake(TlsMessageHandshake::ServerHelloV13Draft18(sh)) => {
                    self.server_hello(info, ts_us, size, Vec::new(), sh.version, out);
                }
                // A fatal alert from the server before its hello: the handshake failed.
                TlsMessage::Alert(a) if a.severity.0 == 2 => {
                    if let Some(hello) = self.client.as_mut().filter(|h| h.dir != dir) {
                        hello.alert = Some(alert_name(a.code.0));
                        let hello = self.client.take().expect("present");
                        out.push(Dissected::Exchange(Box::new(self.exchange(info, &hello, None))));
                        self.done = true;
                    }
                }
                _ => {}
            }
        }
    }

    /// The server's hello ends the handshake: one exchange with the client's.
    fn server_hello(
        &mut self,
        info: &ConnInfo,
        ts_us: u64,
        size: u64,
        alpn: Vec<String>,
        version: TlsVersion,
        out: &mut Vec<Dissected>,
    ) {
        match self.client.take() {
            Some(hello) => {
                let ex = self.exchange(info, &hello, Some((ts_us, size, alpn, version_name(version))));
                out.push(Dissected::Exchange(Box::new(ex)));
            }
            None => out.push(Dissected::UnmatchedResponse),
        }
        self.done = true;
    }

    /// An SSL 2.0-compatible ClientHello (`sslv2_hello_len`): no extensions, so no SNI or ALPN.
    fn sslv2_hello(&mut self, dir: Dir, ts_us: u64, size: usize) {
        if self.client.is_none() {
            self.client = Some(Hello { dir, ts_us, size: size as u64, sni: None, alpn: Vec::new(), alert: None });
        }
    }

    fn exchange(&self, info: &ConnInfo, hello: &Hello, server: Option<(u64, u64, Vec<String>, String)>) -> Exchange {
        let (client, srv) = info.endpoints(hello.dir);
        let (response_ts_us, response_size, alpn, version) = match server {
            Some((ts, size, alpn, version)) => {
                (Some(ts), size, if alpn.is_empty() { hello.alpn.clone() } else { alpn }, Some(version))
            }
            None => (None, 0, hello.alpn.clone(), None),
        };
        let timing = Timing { ts_us: hello.ts_us, response_ts_us, request_size: hello.size, response_size };
        let tls = TlsExchange {
            sni: hello.sni.clone(),
            alpn,
            version,
            alert: hello.alert.clone(),
            upgraded_from: self.upgraded_from.map(str::to_string),
        };
        Exchange::on(info, (client, srv), timing, Detail::Tls(tls))
    }
}

impl ConnHandler for Tls {
    type Output = Dissected;

    fn new(_: &ConnInfo) -> Self {
        Self::fresh()
    }

    fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        if self.done {
            return;
        }
        let mut buf = std::mem::take(&mut self.bufs[dir as usize]);
        if buf.is_empty() {
            self.first_ts[dir as usize] = ts_us;
        }
        buf.extend_from_slice(data);
        // Every record of the chunk: a hello may follow a ChangeCipherSpec, an alert, or come
        // before 0-RTT data, all in one segment.
        let mut pos = 0;
        while !self.done && pos < buf.len() {
            let rest = &buf[pos..];
            if let Some(whole) = sslv2_hello_len(rest).filter(|_| pos == 0 && self.client.is_none()) {
                if rest.len() < whole {
                    break;
                }
                self.sslv2_hello(dir, self.first_ts[dir as usize], whole);
                pos += whole;
                self.first_ts[dir as usize] = ts_us;
                continue;
            }
            let header = match parse_tls_record_header(rest) {
                Ok((_, h)) if (20..=24).contains(&u8::from(h.record_type)) && h.version.0 >> 8 == 3 => h,
                Err(tls_parser::nom::Err::Incomplete(_)) => break,
                _ => {
                    // Not a TLS record here: the stream is not (or no longer) TLS we can read.
                    self.done = true;
                    out.push(Dissected::Resync);
                    return;
                }
            };
            let whole = 5 + usize::from(header.len);
            if rest.len() < whole {
                break; // a record split across segments: wait for the rest
            }
            let record = &rest[..whole];
            let ts = self.first_ts[dir as usize];
            self.on_record(info, dir, ts, &header, &record[5..], whole as u64, out);
            pos += whole;
            self.first_ts[dir as usize] = ts_us;
        }
        buf.drain(..pos);
        if buf.len() >= MAX_RECORD {
            self.done = true;
            out.push(Dissected::Resync);
            return;
        }
        self.bufs[dir as usize] = buf;
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
pub(crate) mod tests;
