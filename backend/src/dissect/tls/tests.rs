//! TLS hello tests on hand-built bytes (RFC 8446 §4.1.2, §4.1.3, §4.2; RFC 6066 §3; RFC 7301 §3.1).

use super::*;

fn u16b(v: usize) -> [u8; 2] {
    (v as u16).to_be_bytes()
}

fn ext(kind: u16, body: &[u8]) -> Vec<u8> {
    [&kind.to_be_bytes()[..], &u16b(body.len()), body].concat()
}

/// A handshake message of `kind` wrapped in one TLS 1.0-versioned record, as clients send it.
fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len();
    let hs = [&[kind, (len >> 16) as u8, (len >> 8) as u8, len as u8][..], body].concat();
    [&[0x16, 0x03, 0x01][..], &u16b(hs.len()), &hs].concat()
}

pub(crate) fn client_hello(sni: &str) -> Vec<u8> {
    let name = [&[0u8][..], &u16b(sni.len()), sni.as_bytes()].concat();
    let sni_ext = ext(0, &[&u16b(name.len())[..], &name].concat());
    let protos = [&[2u8][..], b"h2", &[8], b"http/1.1"].concat();
    let alpn_ext = ext(16, &[&u16b(protos.len())[..], &protos].concat());
    let versions_ext = ext(43, &[4, 0x03, 0x04, 0x03, 0x03]);
    let exts = [sni_ext, alpn_ext, versions_ext].concat();
    let body =
        [&[0x03, 0x03][..], &[7u8; 32], &[0], &u16b(2), &[0x13, 0x01], &[1, 0], &u16b(exts.len()), &exts].concat();
    record(1, &body)
}

pub(crate) fn server_hello() -> Vec<u8> {
    let protos = [&[2u8][..], b"h2"].concat();
    let exts = [ext(43, &[0x03, 0x04]), ext(16, &[&u16b(protos.len())[..], &protos].concat())].concat();
    let body = [&[0x03, 0x03][..], &[9u8; 32], &[0], &[0x13, 0x01], &[0], &u16b(exts.len()), &exts].concat();
    record(2, &body)
}
fn info() -> ConnInfo {
    ConnInfo::test(4, 0, "10.0.0.1:40000", "10.0.0.2:443")
}

fn tls_of(out: &[Dissected]) -> Vec<(&Exchange, &TlsExchange)> {
    out.iter()
        .filter_map(|d| match d {
            Dissected::Exchange(e) => match &e.detail {
                Detail::Tls(t) => Some((e.as_ref(), t)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn client_and_server_hello_give_sni_alpn_and_the_real_version() {
    let info = info();
    let mut t = Tls::new(&info);
    let mut out = Vec::new();
    let ch = client_hello("web.default.svc.cluster.local");
    assert!(looks_like_tls(&ch));
    t.on_data(&info, Dir::AtoB, 100, &ch[..20], &mut out); // split across segments
    t.on_data(&info, Dir::AtoB, 101, &ch[20..], &mut out);
    t.on_data(&info, Dir::BtoA, 900, &server_hello(), &mut out);
    t.on_data(&info, Dir::AtoB, 950, b"\x17\x03\x03\x00\x05encrypted", &mut out);
    t.on_close(&info, 999, &mut out);
    let found = tls_of(&out);
    assert_eq!(found.len(), 1);
    let (e, tls) = found[0];
    assert_eq!(tls.sni.as_deref(), Some("web.default.svc.cluster.local"));
    assert_eq!((tls.alpn.clone(), tls.version.as_deref()), (vec!["h2".to_string()], Some("TLS1.3")));
    assert_eq!((e.ts_us, e.response_ts_us, e.client.port(), e.server.port()), (100, Some(900), 40000, 443));
}

#[test]
fn a_hello_nobody_answered_is_reported_at_close_with_the_offer() {
    let info = info();
    let mut t = Tls::new(&info);
    let mut out = Vec::new();
    t.on_data(&info, Dir::AtoB, 1, &client_hello("api"), &mut out);
    t.on_close(&info, 2, &mut out);
    let (_, tls) = tls_of(&out)[0];
    assert_eq!((tls.version.as_deref(), tls.alpn.len()), (None, 2));
}

#[test]
fn garbage_after_a_handshake_byte_is_not_a_panic() {
    let info = info();
    let mut t = Tls::new(&info);
    let mut out = Vec::new();
    t.on_data(&info, Dir::AtoB, 1, b"\x16\x03\x01\x00\x04\xff\xff\xff\xff", &mut out);
    t.on_data(&info, Dir::AtoB, 2, &[0x16; 20_000], &mut out);
    t.on_close(&info, 3, &mut out);
    assert!(tls_of(&out).is_empty());
}

/// A record of another content type (20 ChangeCipherSpec, 21 alert, 23 application data).
fn plain(kind: u8, body: &[u8]) -> Vec<u8> {
    [&[kind, 0x03, 0x03][..], &u16b(body.len()), body].concat()
}

fn hello_retry_request() -> Vec<u8> {
    let exts = [ext(43, &[0x03, 0x04]), ext(51, &[0x00, 0x1d])].concat();
    let body = [&[0x03, 0x03][..], &HELLO_RETRY_REQUEST, &[0], &[0x13, 0x01], &[0], &u16b(exts.len()), &exts].concat();
    record(2, &body)
}

fn handshake(chunks: &[(Dir, u64, Vec<u8>)]) -> Vec<Dissected> {
    let info = info();
    let mut t = Tls::new(&info);
    let mut out = Vec::new();
    for (dir, ts, bytes) in chunks {
        t.on_data(&info, *dir, *ts, bytes, &mut out);
    }
    t.on_close(&info, 999, &mut out);
    out
}

#[test]
fn every_record_of_a_segment_is_read_alerts_and_0rtt_included() {
    // The client's hello with 0-RTT data behind it in one segment; the server's hello behind a
    // warning alert and a ChangeCipherSpec, then encrypted records, in one segment.
    let early = [client_hello("api"), plain(23, b"early data, encrypted")].concat();
    let answer = [plain(21, &[1, 0]), plain(20, &[1]), server_hello(), plain(23, &[0xaa; 40])].concat();
    let out = handshake(&[(Dir::AtoB, 1, early), (Dir::BtoA, 2, answer)]);
    let found = tls_of(&out);
    assert_eq!(found.len(), 1, "{out:?}");
    assert_eq!((found[0].1.version.as_deref(), found[0].1.alert.as_deref()), (Some("TLS1.3"), None));
    assert!(!out.contains(&Dissected::Resync));
}

#[test]
fn a_hello_retry_request_and_the_second_hello_are_one_handshake() {
    let out = handshake(&[
        (Dir::AtoB, 1, client_hello("api")),
        (Dir::BtoA, 2, [hello_retry_request(), plain(20, &[1])].concat()),
        (Dir::AtoB, 3, [plain(20, &[1]), client_hello("api")].concat()),
        (Dir::BtoA, 4, server_hello()),
    ]);
    let found = tls_of(&out);
    assert_eq!(found.len(), 1, "{out:?}");
    let (e, tls) = found[0];
    assert_eq!((e.ts_us, e.response_ts_us, tls.version.as_deref()), (1, Some(4), Some("TLS1.3")));
}

#[test]
fn a_fatal_alert_instead_of_the_servers_hello_is_a_failed_handshake() {
    let out = handshake(&[(Dir::AtoB, 1, client_hello("old")), (Dir::BtoA, 2, plain(21, &[2, 70]))]);
    let found = tls_of(&out);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].1.version.as_deref(), found[0].1.alert.as_deref()), (None, Some("protocol_version")));
}

/// A ServerHello of `version` in the layout TLS 1.0–1.2 and SSL 3.0 use (RFC 5246 §7.4.1.3;
/// RFC 6101 §5.6.1.3, which has no extensions), with `exts` when some.
fn legacy_server_hello(version: [u8; 2], exts: Option<Vec<u8>>) -> Vec<u8> {
    let tail = exts.map_or_else(Vec::new, |e| [&u16b(e.len())[..], &e].concat());
    let body = [&version[..], &[5u8; 32], &[0], &[0x00, 0x0a], &[0], &tail].concat();
    record(2, &body)
}

#[test]
fn an_sslv2_compatible_client_hello_and_an_ssl3_answer_are_a_handshake() {
    // RFC 5246 Appendix E.2: two-byte header (high bit set, length 28), msg_type 1, version 3.0,
    // cipher_spec_length 3, session_id_length 0, challenge_length 16, one V2CipherSpec, challenge.
    let v2 =
        [&[0x80, 28, 0x01, 0x03, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x0a][..], &[3u8; 16]].concat();
    assert!(looks_like_tls(&v2));
    let out = handshake(&[(Dir::AtoB, 1, v2), (Dir::BtoA, 2, legacy_server_hello([3, 0], None))]);
    let found = tls_of(&out);
    assert_eq!(found.len(), 1, "{out:?}");
    let (e, tls) = found[0];
    assert_eq!((tls.sni.as_deref(), tls.version.as_deref()), (None, Some("SSL3.0")));
    assert_eq!((e.ts_us, e.response_ts_us, e.request_size), (1, Some(2), 30));
    // Not every byte with the high bit set is a hello.
    assert!(!looks_like_tls(&[0x80, 28, 0x02, 0x03, 0x00]) && !looks_like_tls(&[0x80, 2, 0x01, 0x03, 0x00]));
}

#[test]
fn the_drafts_of_tls_1_3_are_named_by_their_numbers() {
    // Draft 18: its own layout (version first, no session id), as tls-parser reads it.
    let draft = |minor: u8| {
        let body = [&[0x7f, minor][..], &[6u8; 32], &[0x13, 0x01], &u16b(0)].concat();
        record(2, &body)
    };
    // Drafts 22 and later: the final layout, the draft's number in supported_versions.
    let draft23 = legacy_server_hello([3, 3], Some(ext(43, &[0x7f, 23])));
    for (server, name) in [(draft(18), "TLS1.3-draft-18"), (draft(21), "TLS1.3-draft-21"), (draft23, "TLS1.3-draft-23")]
    {
        let out = handshake(&[(Dir::AtoB, 1, client_hello("draft.example")), (Dir::BtoA, 2, server)]);
        let found = tls_of(&out);
        assert_eq!(found.len(), 1, "{name}: {out:?}");
        assert_eq!(found[0].1.version.as_deref(), Some(name));
    }
    assert_eq!(version_name(TlsVersion(0xfb17)), "TLS1.3-draft-23-fb");
}
