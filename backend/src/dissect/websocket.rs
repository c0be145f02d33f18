//! WebSocket (RFC 6455) after an HTTP/1.1 `101 Switching Protocols` with `Upgrade: websocket`:
//! one record per connection — the subprotocol and extensions the server chose (§4.2.2), each
//! side's messages by opcode and their payload bytes (§5.2, a message being a data frame and its
//! continuations up to FIN, §5.4), and the close frame's status code and reason (§5.5.1, §7.4).
//! Frames are read header by header; a payload is skipped, never held, except a close frame's
//! (at most 125 bytes, §5.5). A gap ends the reading: what was counted until then is the record.

use podtap_shared::{Detail, WebSocketExchange, WebSocketSide};

use super::{Dissected, Exchange, Timing};
use crate::reassemble::{ConnInfo, Dir};

/// What the 101 response said, read by HTTP/1 (`note` per header).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Upgrade {
    upgrade: bool,
    subprotocol: Option<String>,
    extensions: Option<String>,
    /// The side that sent the 101, and when.
    pub server: Option<Dir>,
    pub ts_us: u64,
}

impl Upgrade {
    pub fn note(&mut self, name: &str, value: &[u8]) {
        let text = || Some(String::from_utf8_lossy(value).chars().take(128).collect::<String>());
        if name.eq_ignore_ascii_case("upgrade") {
            self.upgrade |= value.eq_ignore_ascii_case(b"websocket");
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            self.subprotocol = text();
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            self.extensions = text();
        }
    }

    pub fn is_websocket(&self) -> bool {
        self.upgrade
    }
}

/// One direction's frames being read.
#[derive(Debug, Default)]
struct Reader {
    head: Vec<u8>,
    /// Payload bytes of the frame being read still to come, and whether they are a close
    /// frame's (kept, unmasked with `mask`).
    left: u64,
    close: Option<(Vec<u8>, [u8; 4], usize)>,
    /// Inside a fragmented message.
    continuing: bool,
    side: WebSocketSide,
}

pub struct WebSocket {
    client: Dir,
    upgrade: Upgrade,
    readers: [Reader; 2],
    ex: WebSocketExchange,
    first_ts: Option<u64>,
    last_ts: u64,
    lost: bool,
}

impl WebSocket {
    pub fn new(upgrade: Upgrade) -> Self {
        let server = upgrade.server.unwrap_or(Dir::BtoA);
        let client = if server == Dir::AtoB { Dir::BtoA } else { Dir::AtoB };
        WebSocket {
            client,
            ex: WebSocketExchange {
                subprotocol: upgrade.subprotocol.clone(),
                extensions: upgrade.extensions.clone(),
                ..Default::default()
            },
            upgrade,
            readers: [Reader::default(), Reader::default()],
            first_ts: None,
            last_ts: 0,
            lost: false,
        }
    }

    pub fn on_data(&mut self, dir: Dir, ts_us: u64, data: &[u8]) {
        if self.lost {
            return;
        }
        self.first_ts.get_or_insert(ts_us);
        self.last_ts = ts_us;
        let from_client = dir == self.client;
        let r = &mut self.readers[dir as usize];
        let mut at = 0;
        while at < data.len() {
            if r.left > 0 {
                let take = (r.left as usize).min(data.len() - at);
                if let Some((kept, mask, n)) = &mut r.close {
                    for &b in &data[at..at + take] {
                        if kept.len() < 125 {
                            kept.push(b ^ mask[*n % 4]);
                        }
                        *n += 1;
                    }
                }
                r.left -= take as u64;
                at += take;
                if r.left == 0
                    && let Some((kept, _, _)) = r.close.take()
                {
                    close_frame(&mut self.ex, &kept, from_client);
                }
                continue;
            }
            // A header: 2 bytes, the extended length, the mask.
            r.head.push(data[at]);
            at += 1;
            let Some((opcode, fin, len, mask)) = header(&r.head) else { continue };
            r.head.clear();
            // A 64-bit length may be anything on a hostile stream (§5.2 wants its top bit 0).
            r.side.bytes = r.side.bytes.saturating_add(len);
            match opcode {
                0x0 => {}
                0x1 | 0x2 => {
                    if opcode == 1 {
                        r.side.text += 1
                    } else {
                        r.side.binary += 1
                    }
                    r.continuing = !fin;
                }
                0x8 => {
                    r.side.close += 1;
                    r.close = Some((Vec::new(), mask.unwrap_or_default(), 0));
                }
                0x9 => r.side.ping += 1,
                0xa => r.side.pong += 1,
                _ => {
                    // A reserved opcode (§5.2): not a frame this side could send.
                    self.lost = true;
                    return;
                }
            }
            if opcode == 0 && fin {
                r.continuing = false;
            }
            r.left = len;
            if len == 0
                && let Some((kept, _, _)) = r.close.take()
            {
                close_frame(&mut self.ex, &kept, from_client);
            }
        }
    }

    pub fn on_gap(&mut self) {
        self.lost = true;
    }

    /// The connection ended: its one record.
    pub fn on_close(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        let mut ex = std::mem::take(&mut self.ex);
        ex.client = std::mem::take(&mut self.readers[self.client as usize].side);
        let server = if self.client == Dir::AtoB { Dir::BtoA } else { Dir::AtoB };
        ex.server = std::mem::take(&mut self.readers[server as usize].side);
        let timing = Timing {
            ts_us: self.upgrade.ts_us,
            response_ts_us: None,
            request_size: ex.client.bytes,
            response_size: ex.server.bytes,
        };
        let mut e = Exchange::on(info, info.endpoints(self.client), timing, Detail::Websocket(ex));
        e.end_us = Some(self.last_ts.max(self.upgrade.ts_us));
        out.push(Dissected::Exchange(Box::new(e)));
    }
}

/// A frame header when `head` holds all of it: opcode, FIN, payload length, masking key.
fn header(head: &[u8]) -> Option<(u8, bool, u64, Option<[u8; 4]>)> {
    let [b0, b1, rest @ ..] = head else { return None };
    let masked = b1 & 0x80 != 0;
    let (len, at) = match b1 & 0x7f {
        126 => (u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)), 2),
        127 => (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?), 8),
        n => (u64::from(n), 0),
    };
    let mask = if masked { Some(rest.get(at..at + 4)?.try_into().ok()?) } else { None };
    if rest.len() != at + if masked { 4 } else { 0 } {
        return None;
    }
    Some((b0 & 0x0f, b0 & 0x80 != 0, len, mask))
}

/// A close frame's body (§5.5.1): a status code and a UTF-8 reason.
fn close_frame(ex: &mut WebSocketExchange, body: &[u8], from_client: bool) {
    if ex.closed_by.is_some() {
        return; // the answering close echoes the first
    }
    ex.closed_by = Some(if from_client { "client" } else { "server" }.into());
    if let [a, b, reason @ ..] = body {
        ex.close_code = Some(u16::from_be_bytes([*a, *b]));
        ex.close_reason = Some(String::from_utf8_lossy(reason).chars().take(123).collect());
    } else {
        ex.close_code = Some(1005); // no status code present (§7.4.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::any::AnyProtocol;
    use crate::reassemble::ConnHandler;

    /// A frame as RFC 6455 §5.7's examples build them; masked with `mask` when the client sends.
    fn frame(opcode: u8, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![opcode | if fin { 0x80 } else { 0 }];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => f.push(m | n as u8),
            n @ 126..=0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    const KEY: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

    #[test]
    fn a_session_after_its_upgrade_is_one_record_of_messages_by_kind() {
        let info = ConnInfo::test(1, 0, "10.0.0.1:40000", "10.0.0.2:8080");
        let mut p = AnyProtocol::new(&info);
        let mut out = Vec::new();
        let request = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        p.on_data(&info, Dir::AtoB, 1, request, &mut out);
        // The server's first message comes in the 101's segment (§5.7's unmasked "Hello").
        p.on_data(&info, Dir::BtoA, 2, &[&response[..], b"\x81\x05\x48\x65\x6c\x6c\x6f"].concat(), &mut out);
        // A masked "Hello" (§5.7), a fragmented text message, a big binary one, a ping.
        let client = [
            &b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"[..],
            &frame(0x1, false, b"Hel", KEY),
            &frame(0x0, true, b"lo", KEY),
            &frame(0x2, true, &vec![7; 70_000], KEY),
            &frame(0x9, true, b"", KEY),
        ]
        .concat();
        for chunk in client.chunks(1000) {
            p.on_data(&info, Dir::AtoB, 3, chunk, &mut out);
        }
        p.on_data(&info, Dir::BtoA, 4, &frame(0xa, true, b"", None), &mut out);
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"bye");
        p.on_data(&info, Dir::AtoB, 5, &frame(0x8, true, &close, KEY), &mut out);
        p.on_data(&info, Dir::BtoA, 6, &frame(0x8, true, &close, None), &mut out);
        p.on_close(&info, 7, &mut out);
        let ws: Vec<&WebSocketExchange> = out
            .iter()
            .filter_map(|d| match d {
                Dissected::Exchange(e) => match &e.detail {
                    Detail::Websocket(w) => Some(w),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(ws.len(), 1, "{out:?}");
        let w = ws[0];
        assert_eq!(w.subprotocol.as_deref(), Some("chat"));
        let c = &w.client;
        assert_eq!((c.text, c.binary, c.ping, c.pong, c.close), (2, 1, 1, 0, 1));
        assert_eq!(c.bytes, 5 + 3 + 2 + 70_000 + 5);
        assert_eq!((w.server.text, w.server.pong, w.server.close), (1, 1, 1));
        assert_eq!(
            (w.close_code, w.close_reason.as_deref(), w.closed_by.as_deref()),
            (Some(1000), Some("bye"), Some("client"))
        );
        assert!(
            out.iter().any(|d| matches!(d, Dissected::Exchange(e) if e.http().is_some_and(|h| h.status == Some(101))))
        );
    }

    #[test]
    fn hostile_lengths_and_opcodes_cost_the_stream_without_allocating() {
        let mut w = WebSocket::new(Upgrade { upgrade: true, server: Some(Dir::BtoA), ..Default::default() });
        w.on_data(Dir::AtoB, 1, b"\x82\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00abc");
        assert_eq!(w.readers[0].side.binary, 1);
        w.on_data(Dir::BtoA, 2, b"\x83\x00");
        assert!(w.lost, "opcode 3 is reserved");
        // What fuzzing found: a byte counted, then a frame announcing 2^64 - 1 bytes (a reserved
        // opcode, the length's top bit set): no overflow, the stream given up.
        let mut w = WebSocket::new(Upgrade { upgrade: true, server: Some(Dir::BtoA), ..Default::default() });
        w.on_data(Dir::BtoA, 1, b"\x0a\x01\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x0a\x4d");
        assert!(w.lost, "opcode 15 is reserved");
        let info = ConnInfo::test(1, 0, "10.0.0.1:40000", "10.0.0.2:8080");
        let mut out = Vec::new();
        w.on_close(&info, &mut out);
        assert_eq!(out.len(), 1);
    }
}
