//! RESP, Redis' serialisation protocol (redis.io/docs/latest/develop/reference/protocol-spec:
//! RESP2's simple strings, errors, integers, bulk strings and arrays; RESP3's null, boolean,
//! double, big number, bulk error, verbatim string, map, set, attribute and push), read as a
//! stream: a value is cut out without holding more of it than podtap keeps (a command's first
//! arguments, a reply's first line), however long its bulk strings are.

/// Of a bulk string, the bytes kept (a command's name, a key); the rest is skipped.
pub const KEEP: usize = 128;
/// The longest line (a type byte and its length or simple string) before the stream is not RESP.
const MAX_LINE: usize = 64 * 1024;
/// Elements an aggregate may announce; more is not a real value (Redis' own limit is far lower
/// for a client's command: 1M arguments by default).
const MAX_ELEMENTS: i64 = 1 << 32;

/// A whole value read from the stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Value {
    /// The top-level type byte (`*`, `$`, `+`, `-`, `:`, `>`, …), `b'i'` for an inline command.
    pub kind: u8,
    /// An aggregate's element count (`None` for a null array), else 0.
    pub len: Option<i64>,
    /// The first strings of a top-level array (a command's name and arguments), each cut at
    /// `KEEP` bytes; a simple string's or error's text; an inline command's words.
    pub parts: Vec<Vec<u8>>,
    /// Bytes on the wire.
    pub wire_len: u64,
    /// When its first byte was seen.
    pub ts_us: u64,
    /// Where in the direction's stream it began.
    pub start: u64,
}

/// What cutting a segment found.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    Value(Value),
    /// Bytes that are not RESP: the stream is not (or no longer) in step.
    Broken,
}

/// One direction's stream.
#[derive(Debug, Default)]
pub struct Reader {
    /// Bytes of the direction read so far.
    offset: u64,
    /// A line split across segments.
    line: Vec<u8>,
    /// The value being read, when one is.
    current: Option<Value>,
    /// Elements still to read, per open aggregate, innermost last.
    open: Vec<i64>,
    /// A bulk string being read: bytes left (its CRLF included), and whether to keep it.
    bulk: Option<(u64, bool)>,
    /// How many of the top-level array's strings to keep.
    keep_parts: usize,
}

impl Reader {
    /// `keep_parts`: how many of a top-level array's strings to keep (a command's name and first
    /// arguments); replies keep none.
    pub fn new(keep_parts: usize) -> Self {
        Reader { keep_parts, ..Default::default() }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Loses step (a gap of `len` bytes).
    pub fn reset(&mut self, len: u64) {
        let keep = self.keep_parts;
        *self = Reader { offset: self.offset + len, keep_parts: keep, ..Default::default() };
    }

    pub fn feed(&mut self, data: &[u8], ts_us: u64, out: &mut Vec<Cut>) {
        let mut at = 0;
        while at < data.len() {
            if self.current.is_none() {
                self.current = Some(Value { ts_us, start: self.offset, ..Default::default() });
            }
            if let Some((left, keep)) = self.bulk {
                let take = (left as usize).min(data.len() - at);
                if keep {
                    let v = self.current.as_mut().expect("a value being read");
                    if let Some(part) = v.parts.last_mut() {
                        let body_left = left.saturating_sub(2) as usize;
                        let n = take.min(body_left).min(KEEP.saturating_sub(part.len()));
                        part.extend_from_slice(&data[at..at + n]);
                    }
                }
                self.advance(take, &mut at);
                let left = left - take as u64;
                if left > 0 {
                    self.bulk = Some((left, keep));
                    return;
                }
                self.bulk = None;
                self.element_done(out);
                continue;
            }
            // A line: up to CRLF.
            let rest = &data[at..];
            let end = rest.iter().position(|&b| b == b'\n');
            let take = end.map_or(rest.len(), |e| e + 1);
            if self.line.len() + take > MAX_LINE {
                out.push(Cut::Broken);
                self.reset(0);
                return;
            }
            self.line.extend_from_slice(&rest[..take]);
            self.advance(take, &mut at);
            if end.is_none() {
                return;
            }
            let line = std::mem::take(&mut self.line);
            if !self.on_line(&line, out) {
                out.push(Cut::Broken);
                self.reset(0);
                return;
            }
        }
    }

    fn advance(&mut self, n: usize, at: &mut usize) {
        *at += n;
        self.offset += n as u64;
        if let Some(v) = self.current.as_mut() {
            v.wire_len += n as u64;
        }
    }

    /// One line (with its LF): a type and its payload. `false`: not RESP.
    fn on_line(&mut self, line: &[u8], out: &mut Vec<Cut>) -> bool {
        let Some(text) = line.strip_suffix(b"\n") else { return false };
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let Some((&kind, payload)) = text.split_first() else { return false };
        let top = self.open.is_empty();
        let v = self.current.as_mut().expect("a value being read");
        if top {
            v.kind = kind;
        }
        let number = || std::str::from_utf8(payload).ok().and_then(|s| s.parse::<i64>().ok());
        match kind {
            b'+' | b'-' | b':' | b',' | b'(' | b'#' | b'_' => {
                if top && matches!(kind, b'+' | b'-') {
                    v.parts.push(payload[..payload.len().min(KEEP)].to_vec());
                }
                if kind == b':' && number().is_none() {
                    return false;
                }
                self.element_done(out);
            }
            b'$' | b'!' | b'=' => match number() {
                Some(-1) => self.element_done(out),
                Some(n) if n >= 0 => {
                    // A string of the top-level array, among the first kept: kept.
                    let keep = self.open.len() == 1 && v.kind == b'*' && v.parts.len() < self.keep_parts;
                    if keep {
                        v.parts.push(Vec::new());
                    }
                    if top && kind == b'!' {
                        v.parts.push(Vec::new());
                    }
                    let keep = keep || (top && kind == b'!');
                    self.bulk = Some((n as u64 + 2, keep));
                }
                _ => return false,
            },
            b'*' | b'%' | b'~' | b'>' | b'|' => match number() {
                Some(-1) if kind == b'*' => {
                    if top {
                        v.len = None;
                    }
                    self.element_done(out);
                }
                Some(n) if (0..MAX_ELEMENTS).contains(&n) => {
                    let n = if matches!(kind, b'%' | b'|') { 2 * n } else { n };
                    if top {
                        v.len = Some(n);
                    }
                    // An attribute precedes the value it describes, at any depth, and is not an
                    // element of its own: its pairs and that value count as one.
                    let n = n + i64::from(kind == b'|');
                    if n == 0 {
                        self.element_done(out);
                    } else {
                        self.open.push(n);
                    }
                }
                _ => return false,
            },
            // An inline command (`PING`, as typed into telnet): its words.
            _ if top && kind.is_ascii_alphabetic() => {
                v.kind = b'i';
                v.parts = text
                    .split(|&b| b == b' ')
                    .filter(|w| !w.is_empty())
                    .take(self.keep_parts)
                    .map(|w| w[..w.len().min(KEEP)].to_vec())
                    .collect();
                self.element_done(out);
            }
            _ => return false,
        }
        true
    }

    /// An element is whole: the aggregates it closes are too, and a top-level value goes out.
    fn element_done(&mut self, out: &mut Vec<Cut>) {
        while let Some(left) = self.open.last_mut() {
            *left -= 1;
            if *left > 0 {
                return;
            }
            self.open.pop();
        }
        if let Some(v) = self.current.take() {
            out.push(Cut::Value(v));
        }
    }
}

/// Whether `data` opens with a command as clients send them: an array of bulk strings
/// (`*2\r\n$3\r\nGET\r\n`), its name made of letters.
pub fn looks_like_command(data: &[u8]) -> bool {
    let Some(rest) = data.strip_prefix(b"*") else { return false };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 7 || !rest[digits..].starts_with(b"\r\n$") {
        return false;
    }
    let rest = &rest[digits + 3..];
    let len_digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(name_len) = std::str::from_utf8(&rest[..len_digits]).ok().and_then(|s| s.parse::<usize>().ok()) else {
        return false;
    };
    let name = rest.get(len_digits + 2..len_digits + 2 + name_len.min(32));
    (1..=32).contains(&name_len)
        && rest[len_digits..].starts_with(b"\r\n")
        && name.is_none_or(|n| n.iter().all(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'.' || *b == b'|'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(data: &[&[u8]], keep: usize) -> Vec<Cut> {
        let mut r = Reader::new(keep);
        let mut out = Vec::new();
        for (i, d) in data.iter().enumerate() {
            r.feed(d, i as u64, &mut out);
        }
        out
    }

    #[test]
    fn a_command_keeps_its_name_and_first_key_and_skips_the_value() {
        let set = b"*3\r\n$3\r\nSET\r\n$7\r\nuser:42\r\n$11\r\nhello world\r\n";
        let out = values(&[set], 2);
        let [Cut::Value(v)] = &out[..] else { panic!("{out:?}") };
        assert_eq!((v.kind, v.len, v.wire_len), (b'*', Some(3), set.len() as u64));
        assert_eq!(v.parts, [b"SET".to_vec(), b"user:42".to_vec()]);
        // Cut anywhere: the same value.
        for cut in 1..set.len() {
            let out = values(&[&set[..cut], &set[cut..]], 2);
            assert!(matches!(&out[..], [Cut::Value(w)] if w.parts == v.parts && w.wire_len == v.wire_len), "cut {cut}");
        }
    }

    #[test]
    fn every_reply_type_of_resp2_and_resp3_is_one_value() {
        let replies: &[&[u8]] = &[
            b"+OK\r\n",
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            b":1000\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"_\r\n",
            b"#t\r\n",
            b",3.14\r\n",
            b"(3492890328409238509324850943850943825024385\r\n",
            b"!21\r\nSYNTAX invalid syntax\r\n",
            b"=15\r\ntxt:Some string\r\n",
            b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
            b"~2\r\n+a\r\n+b\r\n",
            b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2\r\n",
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n",
            b"*0\r\n",
            // An attribute inside an aggregate describes its next element (and is not one), and
            // an empty one still precedes a value.
            b"*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n",
            b"|0\r\n+OK\r\n",
        ];
        let joined = replies.concat();
        let out = values(&[&joined], 0);
        assert_eq!(out.len(), replies.len(), "{out:?}");
        for (cut, want) in out.iter().zip(replies) {
            let Cut::Value(v) = cut else { panic!("{cut:?}") };
            assert_eq!(v.wire_len, want.len() as u64, "{:?}", String::from_utf8_lossy(want));
        }
        let kinds: Vec<u8> = out.iter().map(|c| if let Cut::Value(v) = c { v.kind } else { 0 }).collect();
        assert_eq!(kinds, b"+-:$$**_#,(!=%~|>**|");
    }

    #[test]
    fn hostile_lengths_break_the_stream_without_allocating() {
        assert_eq!(values(&[b"*99999999999999\r\n"], 2), [Cut::Broken]);
        assert_eq!(values(&[b"$abc\r\n"], 2), [Cut::Broken]);
        assert_eq!(values(&[b"\x00\x01\x02\r\n"], 2), [Cut::Broken]);
        // A 1 GB bulk string announced: nothing of it kept past KEEP, and no value until it ends.
        let mut r = Reader::new(2);
        let mut out = Vec::new();
        r.feed(b"*2\r\n$3\r\nGET\r\n$1000000000\r\n", 0, &mut out);
        r.feed(&vec![b'x'; 100_000], 1, &mut out);
        assert!(out.is_empty());
        assert!(r.current.as_ref().is_some_and(|v| v.parts[1].len() == KEEP));
    }

    #[test]
    fn commands_are_told_from_their_first_bytes() {
        assert!(looks_like_command(b"*1\r\n$4\r\nPING\r\n"));
        assert!(looks_like_command(b"*3\r\n$3\r\nSET\r\n"));
        assert!(!looks_like_command(b"*\r\n"));
        assert!(!looks_like_command(b"GET / HTTP/1.1\r\n"));
        assert!(!looks_like_command(b"*1\r\n$4\r\n\x00\x01\x02\x03\r\n"));
    }
}
