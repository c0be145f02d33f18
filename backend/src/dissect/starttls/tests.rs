//! Each protocol's upgrade as its RFC shows it (byte for byte where the RFC gives the bytes),
//! driven through the connection dissector: after the server's yes, the TLS handshake is a TLS
//! record with its SNI, its version and the protocol it began in.

use podtap_shared::{Detail, TlsExchange};

use crate::dissect::Dissected;
use crate::dissect::any::AnyProtocol;
use crate::dissect::tls::tests::{client_hello, server_hello};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

/// A conversation on a connection whose SYN came from the client (`AtoB`), its TLS handshake
/// appended after the plaintext: the TLS records and the connection's protocol.
fn run(port: u16, plain: &[(Dir, &[u8])], then_tls: bool) -> (Vec<TlsExchange>, Option<String>) {
    let mut info = ConnInfo::test(1, 0, "10.0.0.1:40000", &format!("10.0.0.2:{port}"));
    info.opener = Some(Dir::AtoB);
    let mut p = AnyProtocol::new(&info);
    let mut out = Vec::new();
    let (hello, server) = (client_hello("mail.example"), server_hello());
    let tls: Vec<(Dir, &[u8])> = if then_tls { vec![(C, &hello[..]), (S, &server[..])] } else { Vec::new() };
    for (i, (dir, bytes)) in plain.iter().chain(tls.iter()).enumerate() {
        p.on_data(&info, *dir, 10 + i as u64, bytes, &mut out);
    }
    p.on_close(&info, 99, &mut out);
    let mut records = Vec::new();
    let mut protocol = None;
    for d in out {
        if let Dissected::Exchange(e) = d {
            match e.detail {
                Detail::Tls(t) => records.push(t),
                Detail::Tcp(t) => protocol = t.protocol,
                other => panic!("no other exchange: {other:?}"),
            }
        }
    }
    (records, protocol)
}

fn upgraded(records: &[TlsExchange], from: &str) {
    assert_eq!(records.len(), 1, "one TLS handshake: {records:?}");
    let t = &records[0];
    assert_eq!(t.sni.as_deref(), Some("mail.example"));
    assert_eq!(t.version.as_deref(), Some("TLS1.3"));
    assert_eq!(t.upgraded_from.as_deref(), Some(from));
}

const S: Dir = Dir::BtoA;
const C: Dir = Dir::AtoB;

#[test]
fn smtp_starttls_rfc_3207_section_4_2() {
    let (tls, proto) = run(
        25,
        &[
            (S, b"220 mail.imc.org SMTP service ready\r\n"),
            (C, b"EHLO mail.example.com\r\n"),
            (S, b"250-mail.imc.org offers a warm hug of welcome\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 DSN\r\n"),
            (C, b"STARTTLS\r\n"),
            (S, b"220 Go ahead\r\n"),
        ],
        true,
    );
    upgraded(&tls, "smtp");
    assert_eq!(proto.as_deref(), Some("tls"));
}

#[test]
fn imap_starttls_rfc_3501_section_6_2_1() {
    let (tls, _) = run(
        143,
        &[
            (S, b"* OK IMAP4rev1 Service Ready\r\n"),
            (C, b"a001 CAPABILITY\r\n"),
            (S, b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na001 OK CAPABILITY completed\r\n"),
            (C, b"a002 STARTTLS\r\n"),
            (S, b"a002 OK Begin TLS negotiation now\r\n"),
        ],
        true,
    );
    upgraded(&tls, "imap");
}

#[test]
fn pop3_stls_rfc_2595_section_4() {
    let (tls, _) = run(
        110,
        &[(S, b"+OK foo.com POP3 server ready\r\n"), (C, b"STLS\r\n"), (S, b"+OK Begin TLS negotiation\r\n")],
        true,
    );
    upgraded(&tls, "pop3");
}

#[test]
fn ftp_auth_tls_rfc_4217_section_4_split_across_segments() {
    let (tls, _) = run(
        21,
        &[
            (S, b"220-Welcome\r\n220 FTP server ready\r\n"),
            (C, b"AUTH "),
            (C, b"TLS\r\n"),
            (S, b"234 AUTH command OK."),
            (S, b" Initializing TLS connection.\r\n"),
        ],
        true,
    );
    upgraded(&tls, "ftp");
}

#[test]
fn ldap_starttls_extended_operation_rfc_4511_section_4_14() {
    // ExtendedRequest (messageID 1, requestName 1.3.6.1.4.1.1466.20037) and its success response
    // (resultCode 0, empty matchedDN and diagnosticMessage).
    let request = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";
    let response = b"\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00";
    // A bind first, as clients may: its response passes by.
    let bind = b"\x30\x0c\x02\x01\x02\x60\x07\x02\x01\x03\x04\x00\x80\x00";
    let bound = b"\x30\x0c\x02\x01\x02\x61\x07\x0a\x01\x00\x04\x00\x04\x00";
    let (tls, _) = run(389, &[(C, bind), (S, bound), (C, request), (S, response)], true);
    upgraded(&tls, "ldap");
}

#[test]
fn xmpp_starttls_rfc_6120_section_5_4_2() {
    let (tls, _) = run(
        5222,
        &[
            (C, b"<?xml version='1.0'?><stream:stream to='im.example.com' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"),
            (S, b"<?xml version='1.0'?><stream:stream from='im.example.com' id='t7AMCin9zjMNwQKDnplntZPIDEI=' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"),
            (C, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            (S, b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
        ],
        true,
    );
    upgraded(&tls, "xmpp");
}

#[test]
fn a_refused_upgrade_stays_plaintext_and_says_its_protocol() {
    // RFC 3207 §4: 454 TLS not available due to temporary reason.
    let (tls, proto) = run(
        25,
        &[
            (S, b"220 mail.example ESMTP\r\n"),
            (C, b"EHLO client.example\r\n"),
            (S, b"250 mail.example\r\n"),
            (C, b"STARTTLS\r\n"),
            (S, b"454 TLS not available due to temporary reason\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"221 Bye\r\n"),
        ],
        false,
    );
    assert!(tls.is_empty());
    assert_eq!(proto.as_deref(), Some("smtp"));
}

#[test]
fn a_connection_joined_mid_stream_still_tells_the_server_by_its_greeting() {
    let mut info = ConnInfo::test(1, 0, "10.0.0.2:110", "10.0.0.1:40000");
    info.opener = None;
    let mut p = AnyProtocol::new(&info);
    let mut out = Vec::new();
    p.on_data(&info, Dir::AtoB, 1, b"+OK ready\r\n", &mut out);
    p.on_data(&info, Dir::BtoA, 2, b"STLS\r\n", &mut out);
    p.on_data(&info, Dir::AtoB, 3, b"+OK go\r\n", &mut out);
    p.on_data(&info, Dir::BtoA, 4, &client_hello("pop.example"), &mut out);
    p.on_data(&info, Dir::AtoB, 5, &server_hello(), &mut out);
    let tls: Vec<&TlsExchange> = out
        .iter()
        .filter_map(|d| match d {
            Dissected::Exchange(e) => match &e.detail {
                Detail::Tls(t) => Some(t),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(tls.len(), 1, "{out:?}");
    assert_eq!((tls[0].sni.as_deref(), tls[0].upgraded_from.as_deref()), (Some("pop.example"), Some("pop3")));
}

#[test]
fn http_is_not_taken_for_a_plaintext_protocol() {
    for first in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"220 is not a method\r\n", b"0\r\n"] {
        assert!(super::opening(first, false).is_none(), "{:?}", String::from_utf8_lossy(first));
    }
    assert!(super::opening(b"HTTP/1.1 220 OK\r\n", true).is_none());
}
