//! Plaintext protocols that switch to TLS on the same connection: SMTP `STARTTLS` (RFC 3207 §4),
//! IMAP `STARTTLS` (RFC 3501 §6.2.1), POP3 `STLS` (RFC 2595 §4), FTP `AUTH TLS` (RFC 4217 §4),
//! LDAP's StartTLS extended operation (RFC 4511 §4.14) and XMPP `<starttls/>` (RFC 6120 §5.4).
//! Owns telling such a connection by its first bytes (a server's greeting, or a client's XMPP
//! stream or LDAP message), following the client's upgrade command to the server's positive
//! answer, and saying where TLS begins. Reads nothing of the plaintext but those few lines and
//! messages; the TLS that follows is `tls.rs`'s.

use crate::reassemble::Dir;

/// The longest plaintext line (or XMPP/LDAP bytes) kept while looking for the upgrade: the
/// commands and answers are short, and anything longer is not one of them.
const MAX_LINE: usize = 1024;

/// The longest LDAP message waited for whole.
const MAX_LDAP_MESSAGE: usize = 1 << 16;

/// The LDAP StartTLS extended operation's name (RFC 4511 §4.14.1), as its requestName
/// (`[0] LDAPOID`: context tag 0, length 22).
const LDAP_STARTTLS: &[u8] = b"\x80\x161.3.6.1.4.1.1466.20037";

/// Which plaintext protocol, as far as its first bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plain {
    /// A `220` greeting: SMTP or FTP, told apart by the client's upgrade command.
    Greeting220,
    Smtp,
    Ftp,
    Imap,
    Pop3,
    Ldap,
    Xmpp,
}

impl Plain {
    /// The protocol's name as records say it (`None` while SMTP and FTP are not told apart).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Plain::Greeting220 => None,
            Plain::Smtp => Some("smtp"),
            Plain::Ftp => Some("ftp"),
            Plain::Imap => Some("imap"),
            Plain::Pop3 => Some("pop3"),
            Plain::Ldap => Some("ldap"),
            Plain::Xmpp => Some("xmpp"),
        }
    }
}

/// What a server's or client's first bytes say, if they open one of these protocols.
/// `from_server`: whether they came from the side that did not open the connection (or, when
/// the handshake was not seen, whoever sent them: a greeting says it is the server).
pub fn opening(data: &[u8], from_server: bool) -> Option<Plain> {
    let text = |p: &[u8]| data.len() >= p.len() && data[..p.len()].eq_ignore_ascii_case(p);
    if from_server {
        return match () {
            _ if text(b"220 ") || text(b"220-") => Some(Plain::Greeting220),
            _ if text(b"+OK") => Some(Plain::Pop3),
            _ if text(b"* OK") || text(b"* PREAUTH") => Some(Plain::Imap),
            _ => None,
        };
    }
    match () {
        _ if text(b"<?xml") || text(b"<stream:stream") => Some(Plain::Xmpp),
        _ if ldap_message(data).is_some() => Some(Plain::Ldap),
        _ => None,
    }
}

/// A BER length at the start of `data` (RFC 4511 §5.1: definite lengths only): the length and
/// how many bytes it took.
fn ber_len(data: &[u8]) -> Option<(usize, usize)> {
    let first = *data.first()?;
    if first < 0x80 {
        return Some((usize::from(first), 1));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 || data.len() < 1 + n {
        return None;
    }
    Some((data[1..=n].iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)), 1 + n))
}

/// An LDAPMessage's protocolOp tag (RFC 4511 §4.2: `SEQUENCE { messageID INTEGER, protocolOp
/// [APPLICATION n] … }`) and the bytes after it, when `data` begins with one.
fn ldap_message(data: &[u8]) -> Option<(u8, &[u8])> {
    let rest = data.strip_prefix(&[0x30])?;
    let (_, n) = ber_len(rest)?;
    let rest = rest.get(n..)?.strip_prefix(&[0x02])?;
    let (id_len, n) = ber_len(rest)?;
    if !(1..=4).contains(&id_len) {
        return None;
    }
    let rest = rest.get(n + id_len..)?;
    let op = *rest.first()?;
    // [APPLICATION n], constructed (0x60–0x7f) or primitive (0x40–0x5f: UnbindRequest, DelRequest).
    (0x40..=0x7f).contains(&op).then(|| (op, &rest[1..]))
}

/// Whether an LDAP ExtendedResponse (`[APPLICATION 24]`) at the start of `data` says success.
fn ldap_extended_success(data: &[u8]) -> Option<bool> {
    let (op, rest) = ldap_message(data)?;
    if op != 0x78 {
        return None;
    }
    let (_, n) = ber_len(rest)?;
    // LDAPResult: resultCode ENUMERATED first (RFC 4511 §4.1.9).
    match rest.get(n..n + 3)? {
        [0x0a, 0x01, code] => Some(*code == 0),
        _ => None,
    }
}

/// One connection in a plaintext protocol until it switches to TLS.
pub struct StartTls {
    plain: Plain,
    /// The side that sent the upgrade command (the client).
    client: Option<Dir>,
    /// Bytes of the line (or message) each direction is in the middle of.
    lines: [Vec<u8>; 2],
    /// The upgrade was asked for; IMAP's tag its answer carries.
    asked: Option<Vec<u8>>,
}

impl StartTls {
    /// A connection whose first bytes `opening` recognised, sent by `dir`.
    pub fn new(plain: Plain, dir: Dir, from_server: bool) -> Self {
        let client = if from_server { other(dir) } else { dir };
        Self { plain, client: Some(client), lines: [Vec::new(), Vec::new()], asked: None }
    }

    /// The protocol, once known.
    pub fn plain(&self) -> Plain {
        self.plain
    }

    /// Takes `data` from `dir`; when the server's positive answer to the upgrade ends in it,
    /// returns where TLS begins in `data` (both sides speak TLS after it).
    pub fn on_data(&mut self, dir: Dir, data: &[u8]) -> Option<usize> {
        let from_client = self.client == Some(dir);
        match self.plain {
            Plain::Ldap | Plain::Xmpp => self.on_message(dir, from_client, data),
            _ => self.on_lines(dir, from_client, data),
        }
    }

    /// Line protocols: every complete line of `data`.
    fn on_lines(&mut self, dir: Dir, from_client: bool, data: &[u8]) -> Option<usize> {
        let mut start = 0;
        for (i, b) in data.iter().enumerate() {
            if *b != b'\n' {
                continue;
            }
            let buf = &mut self.lines[dir as usize];
            let line = if buf.is_empty() {
                data[start..i].to_vec()
            } else {
                let mut l = std::mem::take(buf);
                l.extend_from_slice(&data[start..i]);
                l
            };
            start = i + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if from_client {
                self.command(line);
            } else if self.answer(line) {
                return Some(start);
            }
        }
        let buf = &mut self.lines[dir as usize];
        buf.extend_from_slice(&data[start..]);
        if buf.len() > MAX_LINE {
            buf.clear();
        }
        None
    }

    /// A client's line: the upgrade command of the protocol (telling SMTP from FTP).
    fn command(&mut self, line: &[u8]) {
        let words: Vec<&[u8]> = line.split(|b| *b == b' ').filter(|w| !w.is_empty()).collect();
        let is = |w: &[u8], s: &str| w.eq_ignore_ascii_case(s.as_bytes());
        match (self.plain, words.as_slice()) {
            (Plain::Greeting220 | Plain::Smtp, [w]) if is(w, "STARTTLS") => {
                self.plain = Plain::Smtp;
                self.asked = Some(Vec::new());
            }
            (Plain::Greeting220 | Plain::Ftp, [auth, how])
                if is(auth, "AUTH") && ["TLS", "SSL", "TLS-C", "TLS-P"].iter().any(|h| is(how, h)) =>
            {
                self.plain = Plain::Ftp;
                self.asked = Some(Vec::new());
            }
            (Plain::Greeting220, [w, ..]) if ["EHLO", "HELO"].iter().any(|c| is(w, c)) => self.plain = Plain::Smtp,
            (Plain::Greeting220, [w, ..]) if ["USER", "FEAT", "SYST"].iter().any(|c| is(w, c)) => {
                self.plain = Plain::Ftp;
            }
            (Plain::Pop3, [w]) if is(w, "STLS") => self.asked = Some(Vec::new()),
            (Plain::Imap, [tag, w]) if is(w, "STARTTLS") => self.asked = Some(tag.to_vec()),
            _ => {}
        }
    }

    /// A server's line: whether it is the positive answer to the upgrade asked for. A refusal
    /// (SMTP 454, FTP 431/504, POP3 -ERR, IMAP NO/BAD) leaves the connection in plaintext.
    fn answer(&mut self, line: &[u8]) -> bool {
        let Some(tag) = &self.asked else { return false };
        let starts = |p: &[u8]| line.len() >= p.len() && line[..p.len()].eq_ignore_ascii_case(p);
        let (yes, final_line) = match self.plain {
            // A multi-line reply (`220-…`) ends at its `220 ` line.
            Plain::Smtp => (starts(b"220 ") || line == b"220", !starts(b"220-") && line.len() >= 3),
            Plain::Ftp => (starts(b"234 ") || line == b"234", line.get(3) != Some(&b'-') && line.len() >= 3),
            Plain::Pop3 => (starts(b"+OK"), starts(b"+OK") || starts(b"-ERR")),
            Plain::Imap => {
                let mine = line.len() > tag.len() && line[..tag.len()] == tag[..] && line[tag.len()] == b' ';
                let status = if mine { &line[tag.len() + 1..] } else { &[][..] };
                let ok = status.len() >= 2 && status[..2].eq_ignore_ascii_case(b"OK");
                (mine && ok, mine)
            }
            _ => (false, false),
        };
        if final_line && !yes {
            self.asked = None;
        }
        yes
    }

    /// LDAP and XMPP: messages, not lines. Each direction's bytes since its last message are
    /// looked through for the request and the answer.
    fn on_message(&mut self, dir: Dir, from_client: bool, data: &[u8]) -> Option<usize> {
        let mut buf = std::mem::take(&mut self.lines[dir as usize]);
        let before = buf.len();
        buf.extend_from_slice(data);
        let begins = match (self.plain, from_client) {
            (Plain::Xmpp, true) | (Plain::Ldap, true) => {
                let asked = match self.plain {
                    Plain::Xmpp => find(&buf, b"<starttls").is_some() && find(&buf, b"xmpp-tls").is_some(),
                    _ => find(&buf, LDAP_STARTTLS).is_some(),
                };
                if asked {
                    self.asked = Some(Vec::new());
                    buf.clear();
                }
                None
            }
            (Plain::Xmpp, false) => self.xmpp_answer(&mut buf),
            (Plain::Ldap, false) => self.ldap_answer(&mut buf),
            _ => None,
        };
        if let Some(end) = begins {
            return Some(end.saturating_sub(before));
        }
        // An LDAP answer is read whole message by message (a search result may be long).
        let most = if self.plain == Plain::Ldap { MAX_LDAP_MESSAGE } else { MAX_LINE };
        if buf.len() > most {
            buf.clear();
        }
        self.lines[dir as usize] = buf;
        None
    }

    /// `<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` in the server's bytes: where TLS
    /// begins in them (after its `>`). A `<failure …/>` ends the wait.
    fn xmpp_answer(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        self.asked.as_ref()?;
        if let Some(at) = find(buf, b"<proceed")
            && let Some(end) = buf[at..].iter().position(|b| *b == b'>')
        {
            return Some(at + end + 1);
        }
        if find(buf, b"<failure").is_some() {
            self.asked = None;
            buf.clear();
        }
        None
    }

    /// The server's LDAP messages, one whole message at a time: where TLS begins in them, after
    /// the ExtendedResponse that says success to the StartTLS request.
    fn ldap_answer(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        let mut consumed = 0;
        while let Some(len) = ldap_message_len(&buf[consumed..]) {
            if consumed + len > buf.len() {
                break; // the rest of it is still on its way
            }
            let msg = &buf[consumed..consumed + len];
            consumed += len;
            if self.asked.is_some() {
                match ldap_extended_success(msg) {
                    Some(true) => return Some(consumed),
                    Some(false) => self.asked = None,
                    None => {}
                }
            }
        }
        buf.drain(..consumed);
        None
    }
}

/// The whole length of the LDAPMessage (a SEQUENCE) at the start of `data`: tag, length and
/// contents.
fn ldap_message_len(data: &[u8]) -> Option<usize> {
    if data.first() != Some(&0x30) {
        return None;
    }
    let (len, n) = ber_len(&data[1..])?;
    Some(1 + n + len)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn other(dir: Dir) -> Dir {
    match dir {
        Dir::AtoB => Dir::BtoA,
        Dir::BtoA => Dir::AtoB,
    }
}

#[cfg(test)]
mod tests;
