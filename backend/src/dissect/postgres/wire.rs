//! PostgreSQL's frontend/backend protocol v3 on the wire: telling it from its first bytes, and
//! cutting one direction's byte stream into messages without ever holding more of a message
//! than podtap reads. PostgreSQL documentation, "Frontend/Backend Protocol": Message Formats
//! (protocol-message-formats.html) for every layout below, Message Flow (protocol-flow.html) for
//! the startup packet and SSLRequest/GSSENCRequest.

/// The startup packet's protocol code for v3 (major 3 in the high 16 bits; 3.2 is PostgreSQL 18's).
const V3_MAJOR: u32 = 3;
/// Codes that take the place of a protocol version in the first packet.
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// The longest message the server accepts is 1 GB; a length beyond it is not this protocol.
const MAX_MESSAGE: u32 = 1 << 30;
/// The longest startup packet (PostgreSQL refuses more than 10,000 bytes).
const MAX_STARTUP: u32 = 10_000;
/// Of a message podtap reads (a query, a Parse, a tag, an error), the first bytes kept; a longer
/// body is cut (its statement ends in `…`), and the rest of it skipped, never held.
pub const MAX_KEPT: usize = 64 * 1024;

/// Message types a frontend sends after its startup packet.
const FRONTEND: &[u8] = b"BCdcfDEHFPpQSX";
/// Message types a backend sends.
const BACKEND: &[u8] = b"RK23CdcGHWDIEVvnNAtS1sZT";

/// What a connection's first packet from its client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum First {
    /// A StartupMessage (protocol 3.x): user, database, options follow.
    Startup,
    Ssl,
    GssEnc,
    Cancel,
}

/// The first packet of a PostgreSQL session, when `data` opens with one: length, then a protocol
/// version or a request code, the whole packet present or still coming.
pub fn first_packet(data: &[u8]) -> Option<First> {
    let len = be32(data, 0)?;
    let code = be32(data, 4)?;
    let first = match code {
        SSL_REQUEST if len == 8 => First::Ssl,
        GSSENC_REQUEST if len == 8 => First::GssEnc,
        CANCEL_REQUEST if len == 16 => First::Cancel,
        _ if code >> 16 == V3_MAJOR && code & 0xffff <= 0xff && (9..=MAX_STARTUP).contains(&len) => {
            // The parameters are NUL-terminated names and values; `user` is required (looked for
            // when the whole packet is there: a first segment may carry only its head).
            let body = &data[8..];
            if data.len() >= len as usize && !body.windows(5).any(|w| w == b"user\0") {
                return None;
            }
            First::Startup
        }
        _ => return None,
    };
    Some(first)
}

/// Whether `data` is whole messages of one side, beginning at its first byte and ending at its
/// last: how a connection joined mid-stream is recognised (a client writes its messages whole,
/// and a segment begins at one more often than not). `strong`: a message only this protocol
/// sends must be among them (a query, a ReadyForQuery), unless the port said PostgreSQL.
pub fn whole_messages(data: &[u8], frontend: bool, strong: bool) -> bool {
    let types = if frontend { FRONTEND } else { BACKEND };
    let (mut at, mut telling) = (0usize, false);
    while at < data.len() {
        let Some(len) = be32(data, at + 1) else { return false };
        let t = data[at];
        if !types.contains(&t) || !(4..MAX_MESSAGE).contains(&len) {
            return false;
        }
        let end = at + 1 + len as usize;
        if end > data.len() {
            return false;
        }
        let body = &data[at + 5..end];
        telling |= match (frontend, t) {
            // A query: text ending in its one NUL.
            (true, b'Q') => body.last() == Some(&0) && !body[..body.len() - 1].contains(&0),
            // ReadyForQuery: its transaction status.
            (false, b'Z') => len == 5 && matches!(body, [b'I' | b'T' | b'E']),
            _ => false,
        };
        at = end;
    }
    at > 0 && (telling || !strong)
}

/// One direction's stream cut into messages. A message's head (type and length) is read first;
/// its body is kept only when wanted, and then only up to `MAX_KEPT` bytes.
#[derive(Debug, Default)]
pub struct Framer {
    /// The startup packet has no type byte: whether this direction still expects one.
    pub untyped_first: bool,
    /// Bytes of the direction cut so far.
    offset: u64,
    /// A head split across segments.
    head: Vec<u8>,
    /// Where (stream offset) and when the message being read began.
    began: (u64, u64),
    /// The message being read, past its head.
    current: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    kind: u8,
    head: usize,
    len: usize,
    read: usize,
    kept: Vec<u8>,
    /// How much of its body is kept.
    keep: usize,
}

/// A message read whole (its body cut at `MAX_KEPT` when it was longer).
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    /// The type byte; `0` for the untyped startup packet.
    pub kind: u8,
    /// Bytes on the wire, head included.
    pub wire_len: usize,
    pub body: Vec<u8>,
    /// The stream offset of its first byte, and the time of the segment that carried it.
    pub start: u64,
    pub ts_us: u64,
}

/// What cutting a segment found.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    Message(Message),
    /// A length no message can have: the stream is not (or no longer) in step.
    Broken,
}

impl Framer {
    pub fn client() -> Self {
        Framer { untyped_first: true, ..Default::default() }
    }

    /// The stream offset of the next byte fed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Cuts `data` (carried by a segment at `ts_us`) into messages; `keep(kind)` says how much of
    /// a message's body to keep (at most `MAX_KEPT`).
    pub fn feed(&mut self, data: &[u8], ts_us: u64, keep: impl Fn(u8) -> usize, out: &mut Vec<Cut>) {
        let mut at = 0;
        while at < data.len() {
            if let Some(p) = &mut self.current {
                let take = (p.len - p.read).min(data.len() - at);
                if p.kept.len() < p.keep {
                    let n = take.min(p.keep - p.kept.len());
                    p.kept.extend_from_slice(&data[at..at + n]);
                }
                p.read += take;
                at += take;
                self.offset += take as u64;
                if p.read == p.len {
                    let p = self.current.take().expect("a message being read");
                    out.push(Cut::Message(self.finish(p)));
                }
                continue;
            }
            // A head: 5 bytes (type, length), or 4 for the startup packet.
            let head_len = if self.untyped_first { 4 } else { 5 };
            if self.head.is_empty() {
                self.began = (self.offset, ts_us);
            }
            let take = (head_len - self.head.len()).min(data.len() - at);
            self.head.extend_from_slice(&data[at..at + take]);
            at += take;
            self.offset += take as u64;
            if self.head.len() < head_len {
                return;
            }
            let (kind, len) = if self.untyped_first {
                (0, be32(&self.head, 0).unwrap_or(0))
            } else {
                (self.head[0], be32(&self.head, 1).unwrap_or(0))
            };
            self.head.clear();
            self.untyped_first = false;
            if !(4..MAX_MESSAGE).contains(&len) {
                out.push(Cut::Broken);
                return;
            }
            let keep = keep(kind).min(MAX_KEPT);
            let p = Partial { kind, head: head_len, len: len as usize - 4, read: 0, kept: Vec::new(), keep };
            if p.len == 0 {
                out.push(Cut::Message(self.finish(p)));
            } else {
                self.current = Some(p);
            }
        }
    }

    fn finish(&self, p: Partial) -> Message {
        let (start, ts_us) = self.began;
        Message { kind: p.kind, wire_len: p.head + p.len, body: p.kept, start, ts_us }
    }

    /// Loses step (a gap in the capture, of `len` bytes): the next segment is read as if it
    /// began a message.
    pub fn reset(&mut self, len: u64) {
        self.head.clear();
        self.current = None;
        self.offset += len;
    }

    /// Whether the framer is between messages.
    #[cfg(test)]
    pub fn at_boundary(&self) -> bool {
        self.head.is_empty() && self.current.is_none()
    }
}

pub fn be32(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A NUL-terminated string at `at` in `body`, and where the next field begins.
pub fn cstr(body: &[u8], at: usize) -> Option<(&str, usize)> {
    let rest = body.get(at..)?;
    let end = rest.iter().position(|&b| b == 0);
    let text = &rest[..end.unwrap_or(rest.len())];
    Some((std::str::from_utf8(text).ok()?, at + text.len() + 1))
}

/// A body cut at `MAX_KEPT` may end mid-string: its text up to the cut.
pub fn text_prefix(body: &[u8], at: usize) -> String {
    let rest = body.get(at..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

/// The startup packet's parameters: `user`, `database` (defaulting to the user, as the server
/// does), `application_name`.
pub fn startup_params(body: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let (mut user, mut database, mut application) = (None, None, None);
    // After the 4-byte protocol version: name, value, …, and a final NUL.
    let mut at = 4;
    while let Some((name, next)) = cstr(body, at) {
        if name.is_empty() {
            break;
        }
        let Some((value, after)) = cstr(body, next) else { break };
        let value = Some(value.chars().take(128).collect::<String>());
        match name {
            "user" => user = value,
            "database" => database = value,
            "application_name" => application = value,
            _ => {}
        }
        at = after;
    }
    (user.clone(), database.or(user), application)
}

/// An ErrorResponse's SQLSTATE (field `C`); its message and detail quote values and stay here.
pub fn error_code(body: &[u8]) -> Option<String> {
    let mut at = 0;
    while let Some(&field) = body.get(at) {
        if field == 0 {
            break;
        }
        let (value, next) = cstr(body, at + 1)?;
        if field == b'C' && value.len() == 5 && value.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Some(value.to_string());
        }
        at = next;
    }
    None
}

/// A CommandComplete tag (`SELECT 5`, `INSERT 0 1`, `CREATE TABLE`): the command, and the rows
/// when the tag counts them.
pub fn command_tag(body: &[u8]) -> (String, Option<u64>) {
    let tag = text_prefix(body, 0);
    let mut words: Vec<&str> = tag.split_whitespace().collect();
    let mut rows = None;
    if let Some(n) = words.last().and_then(|w| w.parse::<u64>().ok()) {
        rows = Some(n);
        words.pop();
        // `INSERT oid rows`: the oid (always 0 since PostgreSQL 12) goes too.
        if words.first() == Some(&"INSERT") && words.last().is_some_and(|w| w.parse::<u64>().is_ok()) {
            words.pop();
        }
    }
    (words.join(" ").chars().take(64).collect(), rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_packet_tells_a_session_from_its_requests() {
        let startup = b"\0\0\0\x21\0\x03\0\0user\0app\0database\0shop\0\0";
        assert_eq!(first_packet(&startup[..]), Some(First::Startup));
        assert_eq!(first_packet(b"\0\0\0\x08\x04\xd2\x16\x2f"), Some(First::Ssl));
        assert_eq!(first_packet(b"\0\0\0\x08\x04\xd2\x16\x30"), Some(First::GssEnc));
        assert_eq!(first_packet(b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x01\0\0\0\x02"), Some(First::Cancel));
        assert_eq!(first_packet(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(first_packet(b"\0\0\0\x08\0\x03\0\0"), None, "no parameters: not a startup");
        assert_eq!(startup_params(&startup[4..]), (Some("app".into()), Some("shop".into()), None));
    }

    #[test]
    fn whole_messages_tell_a_session_joined_mid_stream() {
        let query = b"Q\0\0\0\x0dSELECT 1\0";
        assert!(whole_messages(query, true, true));
        assert!(!whole_messages(&query[..10], true, false), "a message cut short");
        let answer = b"C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I";
        assert!(whole_messages(answer, false, true));
        assert!(!whole_messages(b"C\0\0\0\x0dSELECT 1\0", false, true), "nothing telling");
        assert!(whole_messages(b"C\0\0\0\x0dSELECT 1\0", false, false), "the port said so");
        assert!(!whole_messages(b"HTTP/1.1 200 OK\r\n", false, false));
    }

    #[test]
    fn the_framer_cuts_across_segments_and_keeps_only_what_is_wanted() {
        let stream =
            [&b"\0\0\0\x09\0\x03\0\0\0"[..], b"Q\0\0\0\x0dSELECT 1\0", b"D\0\0\0\x08abcd", b"X\0\0\0\x04"].concat();
        for split in 1..stream.len() {
            let mut f = Framer::client();
            let mut cuts = Vec::new();
            let keep = |k| if k == b'Q' { MAX_KEPT } else { 0 };
            f.feed(&stream[..split], 1, keep, &mut cuts);
            f.feed(&stream[split..], 2, keep, &mut cuts);
            let kinds: Vec<(u8, usize, usize, u64, u64)> = cuts
                .iter()
                .map(|c| match c {
                    Cut::Message(m) => (m.kind, m.wire_len, m.body.len(), m.start, m.ts_us),
                    Cut::Broken => (b'!', 0, 0, 0, 0),
                })
                .collect();
            let ts = |start: usize| if start < split { 1 } else { 2 };
            let want =
                [(0, 9, 0, 0, ts(0)), (b'Q', 14, 9, 9, ts(9)), (b'D', 9, 0, 23, ts(23)), (b'X', 5, 0, 32, ts(32))];
            assert_eq!(kinds, want, "split at {split}");
            assert!(f.at_boundary());
        }
    }

    #[test]
    fn a_hostile_length_breaks_the_stream_and_allocates_nothing() {
        let mut f = Framer::default();
        let mut cuts = Vec::new();
        f.feed(b"Q\xff\xff\xff\xffSELECT", 1, |_| MAX_KEPT, &mut cuts);
        assert_eq!(cuts, [Cut::Broken]);
        let mut f = Framer::default();
        let mut cuts = Vec::new();
        // A 1 GB message announced, 6 bytes present: 6 bytes kept.
        f.feed(b"Q\x3f\xff\xff\xffSELECT", 1, |_| MAX_KEPT, &mut cuts);
        assert!(cuts.is_empty() && f.current.as_ref().is_some_and(|p| p.kept.len() == 6));
    }

    #[test]
    fn tags_errors_and_parameters_are_read_without_their_values() {
        assert_eq!(command_tag(b"SELECT 5\0"), ("SELECT".into(), Some(5)));
        assert_eq!(command_tag(b"INSERT 0 3\0"), ("INSERT".into(), Some(3)));
        assert_eq!(command_tag(b"CREATE TABLE\0"), ("CREATE TABLE".into(), None));
        let error = b"SERROR\0VERROR\0C42P01\0Mrelation \"secret_table\" does not exist\0\0";
        assert_eq!(error_code(error), Some("42P01".into()));
        assert_eq!(error_code(b"\0"), None);
    }
}
