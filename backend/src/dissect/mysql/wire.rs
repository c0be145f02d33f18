//! The MySQL/MariaDB client/server protocol on the wire (MySQL's "Client/Server Protocol" pages:
//! MySQL Packets, Connection Phase (Initial Handshake, HandshakeResponse41, SSLRequest), the
//! generic OK/ERR/EOF packets, Text and Binary Protocol result sets, COM_STMT_PREPARE's answer):
//! a 3-byte length and a sequence id before every payload; one direction's stream cut into
//! payloads without holding more of them than podtap reads.

/// The longest payload of one packet; a payload this long continues in the next packet.
pub const MAX_PAYLOAD: usize = 0xff_ffff;
/// Of a payload, the bytes kept (a query's text is cut here; its statement ends in `…`).
pub const KEEP: usize = 64 * 1024;

pub const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
pub const CLIENT_COMPRESS: u32 = 0x20;
pub const CLIENT_PROTOCOL_41: u32 = 0x200;
pub const CLIENT_SSL: u32 = 0x800;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
pub const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x20_0000;
/// A server status flag: another result follows this one (multi-statements, procedures).
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x8;
/// The status flag of the EOF after a cursor's columns: the rows wait for COM_STMT_FETCH.
pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x40;

/// One packet read whole (its payload cut at `KEEP`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    /// The payload's length on the wire.
    pub len: usize,
    pub payload: Vec<u8>,
    /// Bytes on the wire, header included; the stream offset of the first, and its time.
    pub wire_len: u64,
    pub start: u64,
    pub ts_us: u64,
}

/// One direction's stream cut into packets.
#[derive(Debug, Default)]
pub struct Framer {
    offset: u64,
    head: Vec<u8>,
    current: Option<Packet>,
    /// Bytes of the current payload still to come.
    left: usize,
}

impl Framer {
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn reset(&mut self, len: u64) {
        *self = Framer { offset: self.offset + len, ..Default::default() };
    }

    pub fn feed(&mut self, data: &[u8], ts_us: u64, out: &mut Vec<Packet>) {
        let mut at = 0;
        while at < data.len() {
            if let Some(p) = &mut self.current {
                let take = self.left.min(data.len() - at);
                let keep = take.min(KEEP.saturating_sub(p.payload.len()));
                p.payload.extend_from_slice(&data[at..at + keep]);
                p.wire_len += take as u64;
                self.left -= take;
                self.offset += take as u64;
                at += take;
                if self.left == 0 {
                    out.push(self.current.take().expect("a packet being read"));
                }
                continue;
            }
            if self.head.is_empty() {
                self.current = None;
            }
            let start = self.offset;
            let take = (4 - self.head.len()).min(data.len() - at);
            self.head.extend_from_slice(&data[at..at + take]);
            at += take;
            self.offset += take as u64;
            if self.head.len() < 4 {
                continue;
            }
            let len = usize::from(self.head[0]) | usize::from(self.head[1]) << 8 | usize::from(self.head[2]) << 16;
            let p = Packet {
                seq: self.head[3],
                len,
                wire_len: 4,
                start: start + take as u64 - 4,
                ts_us,
                ..Default::default()
            };
            self.head.clear();
            if len == 0 {
                out.push(p);
            } else {
                self.left = len;
                self.current = Some(p);
            }
        }
    }
}

/// A length-encoded integer at `at`, and where the next field begins.
pub fn lenenc(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *b.get(at)?;
    let le = |n: usize| -> Option<u64> {
        let bytes = b.get(at + 1..at + 1 + n)?;
        Some(bytes.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x)))
    };
    match first {
        0..=0xfa => Some((u64::from(first), at + 1)),
        0xfc => Some((le(2)?, at + 3)),
        0xfd => Some((le(3)?, at + 4)),
        0xfe => Some((le(8)?, at + 9)),
        _ => None,
    }
}

pub fn le16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|x| u16::from_le_bytes([x[0], x[1]]))
}

pub fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

fn cstr(b: &[u8], at: usize) -> Option<(String, usize)> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&x| x == 0)?;
    Some((String::from_utf8_lossy(&rest[..end]).chars().take(128).collect(), at + end + 1))
}

/// A server's Initial Handshake v10: its first packet (sequence 0, protocol version 10, a
/// NUL-terminated version string).
pub fn is_server_greeting(data: &[u8]) -> bool {
    let [l0, l1, l2, 0, 10, rest @ ..] = data else { return false };
    let len = usize::from(*l0) | usize::from(*l1) << 8 | usize::from(*l2) << 16;
    (40..512).contains(&len) && rest.iter().take(64).position(|&b| b == 0).is_some_and(|v| v >= 3)
}

/// What a HandshakeResponse41 (or its SSLRequest prefix) says: capabilities, user, database.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Login {
    pub capabilities: u32,
    pub user: Option<String>,
    pub database: Option<String>,
    /// Only the SSLRequest part: TLS follows.
    pub ssl: bool,
}

pub fn login(p: &[u8]) -> Option<Login> {
    let capabilities = le32(p, 0)?;
    if capabilities & CLIENT_PROTOCOL_41 == 0 {
        return None;
    }
    if p.len() == 32 {
        return Some(Login { capabilities, ssl: capabilities & CLIENT_SSL != 0, ..Default::default() });
    }
    let (user, at) = cstr(p, 32)?;
    // The auth response: length-encoded, or one length byte, or NUL-terminated.
    let at = if capabilities & CLIENT_PLUGIN_AUTH_LENENC != 0 {
        let (n, at) = lenenc(p, at)?;
        at + n as usize
    } else if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        at + 1 + usize::from(*p.get(at)?)
    } else {
        cstr(p, at)?.1
    };
    let database = (capabilities & CLIENT_CONNECT_WITH_DB != 0).then(|| cstr(p, at).map(|d| d.0)).flatten();
    Some(Login { capabilities, user: Some(user), database: database.filter(|d| !d.is_empty()), ssl: false })
}

/// An ERR packet's code and SQLSTATE (`#` and five characters, with CLIENT_PROTOCOL_41); its
/// message quotes values and stays on the node.
pub fn err(p: &[u8]) -> (Option<u16>, Option<String>) {
    let code = le16(p, 1);
    let state = (p.get(3) == Some(&b'#')).then(|| p.get(4..9)).flatten();
    (code, state.map(|s| String::from_utf8_lossy(s).into_owned()))
}

/// An OK packet's affected rows and status flags.
pub fn ok(p: &[u8]) -> (u64, u16) {
    let Some((rows, at)) = lenenc(p, 1) else { return (0, 0) };
    let Some((_, at)) = lenenc(p, at) else { return (rows, 0) };
    (rows, le16(p, at).unwrap_or(0))
}

/// An EOF packet (five bytes: 0xFE, warnings, status): its status flags.
pub fn eof_status(p: &[u8]) -> Option<u16> {
    (p.len() == 5 && p[0] == 0xfe).then(|| le16(p, 3).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_framer_cuts_packets_across_segments() {
        let stream = [&b"\x05\x00\x00\x00\x03SEL1"[..], b"\x01\x00\x00\x01\x00", b"\x00\x00\x00\x02"].concat();
        for cut in 1..stream.len() {
            let mut f = Framer::default();
            let mut out = Vec::new();
            f.feed(&stream[..cut], 1, &mut out);
            f.feed(&stream[cut..], 2, &mut out);
            let got: Vec<(u8, usize, u64, u64)> = out.iter().map(|p| (p.seq, p.len, p.wire_len, p.start)).collect();
            assert_eq!(got, [(0, 5, 9, 0), (1, 1, 5, 9), (2, 0, 4, 14)], "cut at {cut}");
            assert_eq!(out[0].payload, b"\x03SEL1");
        }
    }

    #[test]
    fn a_huge_announced_payload_keeps_at_most_keep_bytes() {
        let mut f = Framer::default();
        let mut out = Vec::new();
        f.feed(b"\xff\xff\xff\x00\x03", 1, &mut out);
        f.feed(&vec![b'x'; 200_000], 2, &mut out);
        assert!(out.is_empty());
        assert_eq!(f.current.as_ref().map(|p| p.payload.len()), Some(KEEP));
    }

    #[test]
    fn lengths_logins_and_errors() {
        assert_eq!(lenenc(b"\xfc\x10\x27", 0), Some((10_000, 3)));
        assert_eq!(lenenc(b"\xfb", 0), None);
        assert_eq!(err(b"\xff\x7a\x04#42S02Table 'shop.secret' doesn't exist"), (Some(1146), Some("42S02".into())));
        assert_eq!(ok(b"\x00\x03\x00\x02\x00\x00\x00"), (3, 2));
        assert_eq!(eof_status(b"\xfe\x00\x00\x0a\x00"), Some(10));
        // HandshakeResponse41: PROTOCOL_41 | SECURE_CONNECTION | CONNECT_WITH_DB, user, a
        // 20-byte scramble, the database.
        let caps = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_CONNECT_WITH_DB).to_le_bytes();
        let p = [&caps[..], &[0, 0, 0, 1, 33], &[0; 23], b"app\0", &[20], &[7; 20], b"shop\0"].concat();
        let l = login(&p).unwrap();
        assert_eq!((l.user.as_deref(), l.database.as_deref(), l.ssl), (Some("app"), Some("shop"), false));
        let ssl = [&(CLIENT_PROTOCOL_41 | CLIENT_SSL).to_le_bytes()[..], &[0; 28]].concat();
        assert!(login(&ssl).unwrap().ssl);
        let greeting = [&b"\x4a\x00\x00\x00\x0a11.4.2-MariaDB\0"[..], &[1; 60]].concat();
        assert!(is_server_greeting(&greeting));
        assert!(!is_server_greeting(b"HTTP/1.1 200 OK\r\n"));
    }
}
