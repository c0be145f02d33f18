//! HTTP/2 and gRPC from frames written out here, with header blocks from loona-hpack's encoder
//! (so the dynamic table is exercised exactly as a peer would use it).

use loona_hpack::Encoder;

use super::*;
fn info() -> ConnInfo {
    ConnInfo::test(4, 1, "10.244.0.5:50000", "10.244.0.9:50051")
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

fn headers(enc: &mut Encoder<'_>, stream: u32, flags: u8, fields: &[(&str, &str)]) -> Vec<u8> {
    let block = enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    frame(HEADERS, flags | END_HEADERS, stream, &block)
}

fn exchanges(out: &[Dissected]) -> Vec<&Exchange> {
    out.iter().filter_map(|d| if let Dissected::Exchange(e) = d { Some(&**e) } else { None }).collect()
}

/// Feeds `bytes` in pieces of `cut` bytes, each at its own timestamp.
fn feed(h: &mut Http2, dir: Dir, ts: u64, bytes: &[u8], cut: usize, out: &mut Vec<Dissected>) {
    for (i, piece) in bytes.chunks(cut).enumerate() {
        h.on_data(&info(), dir, ts + i as u64, piece, out);
    }
}

#[test]
fn grpc_calls_on_two_streams_answered_out_of_order_with_trailers() {
    let (mut client, mut server) = (Encoder::new(), Encoder::new());
    let mut c = PREFACE.to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[]));
    let call = |enc: &mut Encoder<'_>, stream, method: &str| {
        let mut b = headers(
            enc,
            stream,
            0,
            &[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", method),
                (":authority", "greeter.default:50051"),
                ("content-type", "application/grpc"),
                ("authorization", "Bearer s3cret"),
                ("te", "trailers"),
            ],
        );
        b.extend(frame(DATA, END_STREAM, stream, b"\0\0\0\0\x05hello"));
        b
    };
    c.extend(call(&mut client, 1, "/demo.Greeter/SayHello"));
    c.extend(call(&mut client, 3, "/demo.Greeter/Fail"));
    let mut s = frame(SETTINGS, 0, 0, &[]);
    s.extend(headers(&mut server, 3, 0, &[(":status", "200"), ("content-type", "application/grpc")]));
    s.extend(headers(&mut server, 3, END_STREAM, &[("grpc-status", "5"), ("grpc-message", "no such name")]));
    s.extend(headers(&mut server, 1, 0, &[(":status", "200"), ("content-type", "application/grpc")]));
    s.extend(frame(DATA, 0, 1, b"\0\0\0\0\x03bye"));
    s.extend(headers(&mut server, 1, END_STREAM, &[("grpc-status", "0")]));

    let mut h = Http2::new(Dir::AtoB);
    let mut out = Vec::new();
    feed(&mut h, Dir::AtoB, 100, &c, 7, &mut out);
    feed(&mut h, Dir::BtoA, 500, &s, 5, &mut out);
    let ex = exchanges(&out);
    assert_eq!(ex.len(), 2, "{out:?}");
    let Detail::Grpc(fail) = &ex[0].detail else { panic!("{:?}", ex[0].detail) };
    assert_eq!((fail.grpc_service.as_str(), fail.grpc_method.as_str()), ("demo.Greeter", "Fail"));
    assert_eq!(
        (fail.status, fail.grpc_status, fail.grpc_message.as_deref()),
        (Some(200), Some(5), Some("no such name"))
    );
    let Detail::Grpc(ok) = &ex[1].detail else { panic!() };
    assert_eq!((ok.grpc_method.as_str(), ok.grpc_status), ("SayHello", Some(0)));
    assert_eq!(ok.headers.get("authorization"), Some("[redacted]"));
    assert_eq!(ok.headers.get("host"), Some("greeter.default:50051"));
    assert_eq!(ex[1].client, "10.244.0.5:50000".parse().unwrap());
    assert_eq!((ex[1].conn, ex[1].interface), (4, 1));
    assert!(ex[1].response_ts_us.unwrap() >= 500 && ex[1].ts_us < 500);
    assert!(ex[1].response_size >= 8, "DATA bytes counted");
}

#[test]
fn plain_http2_with_continuation_padding_and_a_reset_stream() {
    let (mut client, mut server) = (Encoder::new(), Encoder::new());
    let mut c = PREFACE.to_vec();
    // Stream 1: its header block split over HEADERS (padded, with priority) and CONTINUATION.
    let block = client.encode([(&b":method"[..], &b"GET"[..]), (b":path", b"/users"), (b":authority", b"api")]);
    let (first, second) = block.split_at(3);
    let mut padded = vec![2u8];
    padded.extend([0, 0, 0, 0, 16]); // priority: dependency 0, weight 16
    padded.extend(first);
    padded.extend([0, 0]);
    c.extend(frame(HEADERS, END_STREAM | PADDED | PRIORITY, 1, &padded));
    c.extend(frame(CONTINUATION, END_HEADERS, 1, second));
    // Stream 3: asked, then reset by the client before any answer.
    c.extend(headers(&mut client, 3, END_STREAM, &[(":method", "GET"), (":path", "/slow"), (":authority", "api")]));
    c.extend(frame(RST_STREAM, 0, 3, &8u32.to_be_bytes()));
    let mut s = headers(&mut server, 1, 0, &[(":status", "404")]);
    s.extend(frame(DATA, END_STREAM, 1, b"not found"));

    let mut h = Http2::new(Dir::AtoB);
    let mut out = Vec::new();
    feed(&mut h, Dir::AtoB, 10, &c, 1000, &mut out);
    feed(&mut h, Dir::BtoA, 20, &s, 1000, &mut out);
    let ex = exchanges(&out);
    assert_eq!(ex.len(), 2);
    let Detail::Http(slow) = &ex[0].detail else { panic!() };
    assert_eq!((slow.path.as_str(), slow.status), ("/slow", None));
    let Detail::Http(users) = &ex[1].detail else { panic!() };
    assert_eq!((&*users.method, users.path.as_str(), users.status), ("GET", "/users", Some(404)));
    assert_eq!(users.version.as_deref(), Some("HTTP/2"));
    assert_eq!(ex[1].response_size, block_len(&mut Encoder::new(), &[(":status", "404")]) + 9);
}

fn block_len(enc: &mut Encoder<'_>, fields: &[(&str, &str)]) -> u64 {
    enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).len() as u64
}

#[test]
fn not_a_preface_and_an_undecodable_block_give_up_cleanly() {
    let mut h = Http2::new(Dir::AtoB);
    let mut out = Vec::new();
    h.on_data(&info(), Dir::AtoB, 1, b"GET / HTTP/1.1\r\n\r\n", &mut out);
    assert!(matches!(out[..], [Dissected::NotThisProtocol]));

    let mut h = Http2::new(Dir::AtoB);
    let mut out = Vec::new();
    let mut c = PREFACE.to_vec();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0xff, 0xff, 0xff, 0xff])); // index far past any table
    c.extend(headers(&mut Encoder::new(), 3, END_STREAM, &[(":method", "GET"), (":path", "/")]));
    h.on_data(&info(), Dir::AtoB, 1, &c, &mut out);
    h.on_close(&info(), 2, &mut out);
    assert!(matches!(out[..], [Dissected::Resync]), "{out:?}");
}

#[test]
fn an_h2c_upgrade_answers_the_http1_request_on_stream_1() {
    let request = Upgraded {
        ts_us: 5,
        size: 80,
        http: HttpExchange { method: "GET".into(), path: "/up".into(), ..Default::default() },
    };
    let mut h = Http2::upgraded(Dir::AtoB, request);
    let mut out = Vec::new();
    let mut c = PREFACE.to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[]));
    h.on_data(&info(), Dir::AtoB, 6, &c, &mut out);
    let mut s = frame(SETTINGS, 0, 0, &[]);
    s.extend(headers(&mut Encoder::new(), 1, END_STREAM, &[(":status", "200")]));
    h.on_data(&info(), Dir::BtoA, 7, &s, &mut out);
    let ex = exchanges(&out);
    assert_eq!(ex.len(), 1);
    assert_eq!((ex[0].ts_us, ex[0].response_ts_us), (5, Some(7)));
    assert!(matches!(&ex[0].detail, Detail::Http(h) if h.path == "/up" && h.status == Some(200)));
}

#[test]
fn a_table_size_update_is_allowed_only_up_to_what_the_peer_announced() {
    // A dynamic table size update to 8192 (RFC 7541 §6.3: 001 prefix, 5-bit integer), then fields.
    let mut block = vec![0x3f, 0xe1, 0x3f];
    block.extend(Encoder::new().encode([(&b":method"[..], &b"GET"[..]), (b":path", b"/big")]));
    let mut c = PREFACE.to_vec();
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    let response = headers(&mut Encoder::new(), 1, END_STREAM, &[(":status", "204")]);
    let run = |announced: Option<u32>| {
        let mut h = Http2::new(Dir::AtoB);
        let mut out = Vec::new();
        if let Some(size) = announced {
            let mut settings = SETTINGS_HEADER_TABLE_SIZE.to_be_bytes().to_vec();
            settings.extend(size.to_be_bytes());
            h.on_data(&info(), Dir::BtoA, 1, &frame(SETTINGS, 0, 0, &settings), &mut out);
        }
        h.on_data(&info(), Dir::AtoB, 2, &c, &mut out);
        h.on_data(&info(), Dir::BtoA, 3, &response, &mut out);
        out
    };
    assert!(matches!(run(None)[..], [Dissected::Resync, ..]), "beyond the default 4096");
    assert_eq!(exchanges(&run(Some(8192))).len(), 1);
}

#[test]
fn http1_upgrade_to_h2c_through_the_dispatcher_reports_each_request_once() {
    use crate::dissect::any::AnyProtocol;
    use crate::reassemble::ConnHandler;
    let mut conn = AnyProtocol::new(&info());
    let mut out = Vec::new();
    let upgrade = b"GET /up HTTP/1.1\r\nHost: api\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    conn.on_data(&info(), Dir::AtoB, 1, upgrade, &mut out);
    let mut server = Encoder::new();
    // The 101 and the first HTTP/2 frames in one segment.
    let mut s = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    s.extend(frame(SETTINGS, 0, 0, &[]));
    s.extend(headers(&mut server, 1, 0, &[(":status", "200")]));
    s.extend(frame(DATA, END_STREAM, 1, b"up!"));
    conn.on_data(&info(), Dir::BtoA, 2, &s, &mut out);
    let mut c = PREFACE.to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[]));
    c.extend(headers(&mut Encoder::new(), 3, END_STREAM, &[(":method", "GET"), (":path", "/next")]));
    conn.on_data(&info(), Dir::AtoB, 3, &c, &mut out);
    conn.on_data(&info(), Dir::BtoA, 4, &headers(&mut server, 3, END_STREAM, &[(":status", "204")]), &mut out);
    let got: Vec<_> = exchanges(&out)
        .iter()
        .map(|e| match &e.detail {
            Detail::Http(h) => (h.path.clone(), h.status, h.version.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    let h2 = Some("HTTP/2".to_string());
    assert_eq!(got, [("/up".into(), Some(200), h2.clone()), ("/next".into(), Some(204), h2)]);
}

#[test]
fn a_server_that_speaks_first_is_recognised_by_its_settings() {
    use crate::dissect::any::AnyProtocol;
    use crate::reassemble::ConnHandler;
    let mut conn = AnyProtocol::new(&info());
    let mut out = Vec::new();
    // grpc-core servers send SETTINGS at accept, before the client's preface arrives.
    let mut settings = 4u16.to_be_bytes().to_vec(); // SETTINGS_INITIAL_WINDOW_SIZE
    settings.extend(65535u32.to_be_bytes());
    conn.on_data(&info(), Dir::BtoA, 1, &frame(SETTINGS, 0, 0, &settings), &mut out);
    let mut c = PREFACE.to_vec();
    c.extend(headers(&mut Encoder::new(), 1, END_STREAM, &[(":method", "GET"), (":path", "/first")]));
    conn.on_data(&info(), Dir::AtoB, 2, &c, &mut out);
    conn.on_data(&info(), Dir::BtoA, 3, &headers(&mut Encoder::new(), 1, END_STREAM, &[(":status", "200")]), &mut out);
    assert_eq!(exchanges(&out).len(), 1, "{out:?}");
    assert_eq!(exchanges(&out)[0].client, "10.244.0.5:50000".parse().unwrap());
}

/// One plain HTTP/2 GET and its 200, as (direction, bytes) chunks: client first.
pub(crate) fn get_request_conversation() -> Vec<(Dir, Vec<u8>)> {
    let (mut client, mut server) = (Encoder::new(), Encoder::new());
    let mut c = PREFACE.to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[]));
    let fields = [(":method", "GET"), (":scheme", "http"), (":path", "/h2"), (":authority", "web")];
    c.extend(headers(&mut client, 1, END_STREAM, &fields));
    let mut s = frame(SETTINGS, 0, 0, &[]);
    s.extend(headers(&mut server, 1, END_STREAM, &[(":status", "200")]));
    vec![(Dir::AtoB, c), (Dir::BtoA, s)]
}

#[test]
fn a_stream_carries_its_headers_frames_sequence_number_however_the_bytes_are_cut() {
    // The bus's join key: both sides of a rewrite see the same bytes at the same sequence
    // numbers, so a stream is known by where its HEADERS frame began.
    let (mut client, mut server) = (Encoder::new(), Encoder::new());
    let mut c = PREFACE.to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[]));
    let fields = [(":method", "POST"), (":scheme", "http"), (":path", "/demo.Greeter/SayHello")];
    let first = c.len() as u32;
    c.extend(headers(&mut client, 1, 0, &[&fields[..], &[("content-type", "application/grpc")]].concat()));
    c.extend(frame(DATA, END_STREAM, 1, b"\0\0\0\0\x05hello"));
    let second = c.len() as u32;
    c.extend(headers(&mut client, 3, END_STREAM, &fields));
    let mut s = frame(SETTINGS, 0, 0, &[]);
    for stream in [1, 3] {
        s.extend(headers(&mut server, stream, END_STREAM, &[(":status", "200"), ("grpc-status", "0")]));
    }
    for cut in [1, 5, 9, 64, 4096] {
        let mut h = Http2::new(Dir::AtoB);
        let mut info = info();
        info.seq = [0xffff_fff0, 77]; // wrapping past 2^32 on the way
        let mut out = Vec::new();
        for piece in c.chunks(cut) {
            h.on_data(&info, Dir::AtoB, 1, piece, &mut out);
            info.seq[0] = info.seq[0].wrapping_add(piece.len() as u32);
        }
        h.on_data(&info, Dir::BtoA, 2, &s, &mut out);
        let seqs: Vec<Option<u32>> = exchanges(&out).iter().map(|e| e.seq).collect();
        let want = [first, second].map(|at| Some(0xffff_fff0u32.wrapping_add(at)));
        assert_eq!(seqs, want, "cut every {cut} bytes");
    }
}
