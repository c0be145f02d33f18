//! Where HTTP/1.x messages start and how their heads read (RFC 9112 §3, §4, §5): any RFC 9110
//! §5.6.2 token is a method, so WebDAV's `PROPFIND` and custom methods are requests too; a head
//! httparse refuses but a server might still accept (an odd character in a header name, a double
//! space in the request line, a NUL in a value) is read leniently and reported with the reason.
//! Pure functions of bytes; no state.

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Longest method token believed (`PROPPATCH`, `VERSION-CONTROL`, … are far shorter).
const MAX_METHOD: usize = 24;

/// Whether bytes begin a message of the given kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Yes,
    No,
    /// Too few bytes to tell.
    More,
}

/// Does `b` begin a request line: `token SP target SP HTTP/1.x`? Spaces may be doubled (lenient).
pub fn request_start(b: &[u8]) -> Start {
    let method = b.iter().take_while(|c| is_tchar(**c)).count();
    if method == b.len() {
        return if method <= MAX_METHOD { Start::More } else { Start::No };
    }
    if method == 0 || method > MAX_METHOD || b[method] != b' ' {
        return Start::No;
    }
    // The target: no control characters, up to the space before the version.
    let line_end = b.iter().position(|c| *c == b'\n');
    let line = &b[..line_end.unwrap_or(b.len())];
    if line.iter().any(|c| c.is_ascii_control() && *c != b'\r' && *c != b'\t') {
        return Start::No;
    }
    let ok = line.windows(8).any(|w| w == b" HTTP/1.");
    match (ok, line_end) {
        (true, _) => Start::Yes,
        (false, Some(_)) => Start::No,
        (false, None) if b.len() < super::MAX_HEAD => Start::More,
        (false, None) => Start::No,
    }
}

/// Does `b` begin a status line (`HTTP/1.x NNN`)?
pub fn response_start(b: &[u8]) -> Start {
    const PREFIX: &[u8] = b"HTTP/1.";
    if b.len() < PREFIX.len() + 5 {
        return if PREFIX.starts_with(&b[..b.len().min(PREFIX.len())]) { Start::More } else { Start::No };
    }
    let code = &b[PREFIX.len() + 2..PREFIX.len() + 5];
    if b.starts_with(PREFIX) && b[PREFIX.len() + 1] == b' ' && code.iter().all(u8::is_ascii_digit) {
        Start::Yes
    } else {
        Start::No
    }
}

/// Where the next message of this kind starts after lost bytes: at the start of `input`, after a
/// line break, or (a keep-alive byte or the tail of a lost body before it) anywhere a whole
/// request line or status line begins with a known method or `HTTP/1.`.
pub fn find_start(input: &[u8], requests: bool) -> Option<usize> {
    /// Methods common enough that a token merely ending in one (`xGET`: a stray byte before a
    /// request) is taken for that byte and the method.
    const KNOWN: &[&[u8]] = &[b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ", b"OPTIONS ", b"PATCH "];
    let here = |at: &[u8]| if requests { request_start(at) } else { response_start(at) } == Start::Yes;
    let known_within = |at: usize| {
        let token = input[at..].iter().take_while(|c| is_tchar(**c)).count();
        let line = &input[at..at + token + 1];
        let m = KNOWN.iter().find(|m| line.ends_with(m) && line.len() > m.len());
        at + m.map_or(0, |m| line.len() - m.len())
    };
    let at_line_start = std::iter::once(0)
        .chain(input.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1))
        .find(|&i| here(&input[i..]));
    if let Some(at) = at_line_start {
        return Some(if requests { known_within(at) } else { at });
    }
    // Mid-line: only the well-known starts, so a token's tail is not taken for a method.
    (1..input.len()).find(|&i| {
        let at = &input[i..];
        let known = if requests { KNOWN.iter().any(|m| at.starts_with(m)) } else { at.starts_with(b"HTTP/1.") };
        known && here(at)
    })
}

/// A head read leniently: what httparse would have given, and why it refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Lenient<'a> {
    /// Bytes of the head, blank line included.
    pub len: usize,
    /// Request: method and target. Response: "HTTP/1.x" and the status code.
    pub first: &'a [u8],
    pub second: &'a [u8],
    pub headers: Vec<(&'a [u8], &'a [u8])>,
}

/// Reads a head httparse refused: the first line split at runs of spaces, header lines split at
/// their first colon (lines without one are skipped). `None` when the head is not complete
/// within `MAX_HEAD` or its first line is not HTTP at all.
pub fn lenient(input: &[u8], requests: bool) -> Option<Lenient<'_>> {
    let limit = &input[..input.len().min(super::MAX_HEAD)];
    let end = limit
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| limit.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))?;
    let mut lines = input[..end].split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first_line = lines.next()?;
    let mut words = first_line.split(|b| *b == b' ').filter(|w| !w.is_empty());
    let (a, b, c) = (words.next()?, words.next()?, words.next());
    let ok = if requests {
        !a.is_empty()
            && a.len() <= MAX_METHOD
            && a.iter().all(|x| is_tchar(*x))
            && c.is_some_and(|v| v.starts_with(b"HTTP/1."))
    } else {
        a.starts_with(b"HTTP/1.") && b.len() == 3 && b.iter().all(u8::is_ascii_digit)
    };
    if !ok {
        return None;
    }
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let colon = l.iter().position(|x| *x == b':')?;
            let name = l[..colon].trim_ascii();
            (!name.is_empty()).then(|| (name, l[colon + 1..].trim_ascii()))
        })
        .collect();
    Some(Lenient { len: end, first: a, second: b, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_token_is_a_method() {
        for line in [
            &b"PROPFIND /dav/ HTTP/1.1\r\n"[..],
            b"MKCOL /x HTTP/1.1\r\n",
            b"X-PURGE-CACHE /a HTTP/1.0\r\n",
            b"GET  /double HTTP/1.1\r\n",
        ] {
            assert_eq!(request_start(line), Start::Yes, "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(request_start(b"PROPF"), Start::More);
        assert_eq!(request_start(b"MKCOL /x HT"), Start::More);
        assert_eq!(request_start(b"\x16\x03\x01\x02\x00"), Start::No);
        assert_eq!(request_start(b"hello world\r\n"), Start::No);
        assert_eq!(request_start(b"{\"json\": 1}"), Start::No);
        assert_eq!(response_start(b"HTTP/1.1 200 OK\r\n"), Start::Yes);
        assert_eq!(response_start(b"HTTP/1"), Start::More);
        assert_eq!(response_start(b"HTTP/2 200"), Start::No);
    }

    #[test]
    fn the_next_message_is_found_after_a_line_break_or_a_keep_alive_byte() {
        assert_eq!(find_start(b"tail of a body\r\nPROPFIND / HTTP/1.1\r\n", true), Some(16));
        assert_eq!(find_start(b"xGET /a HTTP/1.1\r\n", true), Some(1));
        assert_eq!(find_start(b"lost body bytesHTTP/1.1 200 OK\r\n", false), Some(15));
        assert_eq!(find_start(b"no message here", true), None);
    }

    #[test]
    fn heads_httparse_refuses_are_read_leniently() {
        let head = b"GET  /odd HTTP/1.1\r\nHost: web\r\nX(bad): 1\r\nX-Nul: a\x00b\r\nno colon line\r\nContent-Length: 2\r\n\r\nok";
        let l = lenient(head, true).unwrap();
        assert_eq!((l.first, l.second, l.len), (&b"GET"[..], &b"/odd"[..], head.len() - 2));
        assert!(l.headers.contains(&(&b"X(bad)"[..], &b"1"[..])));
        assert!(l.headers.contains(&(&b"Content-Length"[..], &b"2"[..])));
        assert_eq!(l.headers.len(), 4);
        assert!(lenient(b"GET /x HTTP/1.1\r\nHost: a\r\n", true).is_none(), "head not complete");
        assert!(lenient(b"\x16\x03\x01 junk\r\n\r\n", true).is_none(), "not HTTP");
        let r = lenient(b"HTTP/1.1 200 OK\r\nBad Header Name: x\r\n\r\n", false).unwrap();
        assert_eq!((r.first, r.second), (&b"HTTP/1.1"[..], &b"200"[..]));
    }
}
