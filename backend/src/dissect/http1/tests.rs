//! HTTP/1.x dissector tests on byte literals, fed through the `ConnHandler` interface exactly as
//! the reassembler feeds it.

use super::*;
fn info() -> ConnInfo {
    ConnInfo::test(7, 0, "10.0.0.1:40000", "10.0.0.2:80")
}

/// Feeds (direction, time, bytes) chunks, closes, and returns what came out.
fn run(chunks: &[(Dir, u64, &[u8])]) -> Vec<Dissected> {
    let info = info();
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    for (dir, ts, bytes) in chunks {
        h.on_data(&info, *dir, *ts, bytes, &mut out);
    }
    h.on_close(&info, 999, &mut out);
    out
}

fn exchanges(out: &[Dissected]) -> Vec<&Exchange> {
    out.iter().filter_map(|d| if let Dissected::Exchange(e) = d { Some(e.as_ref()) } else { None }).collect()
}

const C: Dir = Dir::AtoB;
const S: Dir = Dir::BtoA;

#[test]
fn one_request_one_response_with_latency_sizes_and_redaction() {
    let req = b"GET /users HTTP/1.1\r\nHost: web\r\nUser-Agent: curl/8.5.0\r\nAuthorization: Bearer s3cret\r\nX-Other: 1\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let out = run(&[(C, 100, req), (S, 350, resp)]);
    let ex = exchanges(&out);
    assert_eq!(ex.len(), 1);
    let e = ex[0];
    assert_eq!(
        (&*e.http().unwrap().method, e.http().unwrap().path.as_str(), e.http().unwrap().status),
        ("GET", "/users", Some(200))
    );
    assert_eq!((e.ts_us, e.response_ts_us), (100, Some(350)));
    assert_eq!((e.request_size, e.response_size), (req.len() as u64, resp.len() as u64));
    assert_eq!(e.client, "10.0.0.1:40000".parse().unwrap());
    assert_eq!(e.server, "10.0.0.2:80".parse().unwrap());
    assert_eq!(&e.http().unwrap().headers["authorization"], "[redacted]");
    assert_eq!(&e.http().unwrap().headers["user-agent"], "curl/8.5.0");
    assert!(!e.http().unwrap().headers.contains_key("x-other"));
    assert!(!format!("{out:?}").contains("s3cret"));
}

#[test]
fn keep_alive_and_pipelining_pair_in_order_across_split_segments() {
    let out = run(&[
        (C, 1, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nPOST /c HTTP/1.1\r\nContent-Length: 3\r\n\r\nx"),
        (C, 2, b"yz"),
        (S, 3, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\nContent-Len"),
        (S, 4, b"gth: 0\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n!"),
    ]);
    let ex = exchanges(&out);
    let got: Vec<_> = ex.iter().map(|e| (e.http().unwrap().path.as_str(), e.http().unwrap().status)).collect();
    assert_eq!(got, vec![("/a", Some(200)), ("/b", Some(404)), ("/c", Some(201))]);
    assert_eq!(ex[2].request_size, b"POST /c HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz".len() as u64);
    assert!(ex.iter().all(|e| e.conn == 7));
}

#[test]
fn chunked_response_with_trailers_and_a_100_continue() {
    let out = run(&[
        (C, 1, b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
        (S, 2, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (C, 3, b"hi"),
        (S, 4, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"),
        (C, 5, b"GET /next HTTP/1.1\r\n\r\n"),
        (S, 6, b"HTTP/1.1 204 No Content\r\n\r\n"),
    ]);
    let got: Vec<_> = exchanges(&out)
        .iter()
        .map(|e| (e.http().unwrap().path.clone(), e.http().unwrap().status, e.response_ts_us))
        .collect();
    assert_eq!(got, vec![("/up".into(), Some(200), Some(4)), ("/next".into(), Some(204), Some(6))]);
}

#[test]
fn chunk_lines_split_across_segments_wait_for_the_rest() {
    // Found by the segmentation property: a split inside "4\r\n" or the chunk's CRLF used to spin.
    let out = run(&[
        (C, 1, b"GET /c HTTP/1.1\r\n\r\n"),
        (S, 2, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r"),
        (S, 3, b"\nwiki\r"),
        (S, 4, b"\n0\r\n"),
        (S, 5, b"\r\n"),
    ]);
    let ex = exchanges(&out);
    assert_eq!((ex.len(), ex[0].http().unwrap().status, ex[0].response_size), (1, Some(200), 61));
}

#[test]
fn head_and_304_have_no_body_even_with_a_content_length() {
    let out = run(&[
        (C, 1, b"HEAD /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n"),
        (
            S,
            2,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
        ),
    ]);
    let got: Vec<_> = exchanges(&out).iter().map(|e| e.http().unwrap().status).collect();
    assert_eq!(got, vec![Some(200), Some(304)]);
}

#[test]
fn a_response_without_length_ends_at_close_and_an_unanswered_request_has_no_status() {
    let out = run(&[(C, 1, b"GET /a HTTP/1.0\r\n\r\n"), (S, 2, b"HTTP/1.0 200 OK\r\n\r\nbody until close")]);
    let ex = exchanges(&out);
    assert_eq!(
        (ex[0].http().unwrap().status, ex[0].response_size),
        (Some(200), b"HTTP/1.0 200 OK\r\n\r\nbody until close".len() as u64)
    );
    let out = run(&[(C, 1, b"GET /lost HTTP/1.1\r\n\r\n")]);
    let ex = exchanges(&out);
    assert_eq!(
        (ex[0].http().unwrap().path.as_str(), ex[0].http().unwrap().status, ex[0].response_ts_us),
        ("/lost", None, None)
    );
}

#[test]
fn websocket_upgrade_ends_http_parsing() {
    let out = run(&[
        (C, 1, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        (S, 2, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
        (C, 3, b"\x81\x85garbage-frames"),
    ]);
    let ex = exchanges(&out);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].http().unwrap().status, Some(101));
    assert!(!out.contains(&Dissected::Resync));
}

#[test]
fn detection_is_by_content_and_a_response_first_stream_still_pairs() {
    let out = run(&[(C, 1, b"\x16\x03\x01\x02\x00 tls hello")]);
    assert_eq!(out, vec![Dissected::NotThisProtocol]);
    // Server bytes first (capture started mid-connection): the response has no request to pair.
    let out = run(&[
        (S, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        (C, 2, b"GET /after HTTP/1.1\r\n\r\n"),
        (S, 3, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(out[0], Dissected::OneWay, "its request came before the capture");
    assert_eq!(exchanges(&out)[0].http().unwrap().path, "/after");
}

#[test]
fn after_a_gap_parsing_resumes_at_the_next_request() {
    let info = info();
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    h.on_data(&info, C, 1, b"GET /one HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234", &mut out);
    h.on_gap(&info, C, 5);
    h.on_data(&info, C, 2, b"ly lost tail\r\nGET /two HTTP/1.1\r\n\r\n", &mut out);
    h.on_data(
        &info,
        S,
        3,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        &mut out,
    );
    h.on_close(&info, 4, &mut out);
    let paths: Vec<_> = exchanges(&out).iter().map(|e| e.http().unwrap().path.clone()).collect();
    assert_eq!(paths, vec!["/one", "/two"]);
    assert!(out.contains(&Dissected::Resync));
}

#[test]
fn hostile_input_never_panics() {
    let nasty: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n",
        b"GET \xff\xfe HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: \x00\x01\r\n\r\n",
        &[b'G'; 70_000],
    ];
    for n in nasty {
        let _ =
            run(&[(C, 1, n), (S, 2, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n")]);
    }
}

mod properties {
    //! However a conversation is split into segments, the same exchanges come out.
    use super::*;
    use proptest::prelude::*;

    /// One request/response pair: path number, request body size, response body size, chunked.
    type Pair = (u8, usize, usize, bool);

    fn conversation(pairs: &[Pair]) -> (Vec<u8>, Vec<u8>) {
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for (i, (path, req_body, resp_body, chunked)) in pairs.iter().enumerate() {
            up.extend(format!("POST /p{path} HTTP/1.1\r\nHost: h\r\nContent-Length: {req_body}\r\n\r\n").as_bytes());
            up.extend(std::iter::repeat_n(b'q', *req_body));
            let status = 200 + (i % 3) as u16;
            if *chunked {
                down.extend(format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes());
                for part in [resp_body / 2, resp_body - resp_body / 2] {
                    if part > 0 {
                        down.extend(format!("{part:x}\r\n").as_bytes());
                        down.extend(std::iter::repeat_n(b'r', part));
                        down.extend(b"\r\n");
                    }
                }
                down.extend(b"0\r\n\r\n");
            } else {
                down.extend(format!("HTTP/1.1 {status} X\r\nContent-Length: {resp_body}\r\n\r\n").as_bytes());
                down.extend(std::iter::repeat_n(b'r', *resp_body));
            }
        }
        (up, down)
    }

    fn split(data: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
        cuts.retain(|c| *c > 0 && *c < data.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut bounds = vec![0];
        bounds.extend(cuts);
        bounds.push(data.len());
        bounds.windows(2).map(|w| &data[w[0]..w[1]]).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn any_segmentation_gives_the_same_exchanges(
            pairs in proptest::collection::vec((0u8..20, 0usize..300, 0usize..300, any::<bool>()), 1..12),
            up_cuts in proptest::collection::vec(0usize..8000, 0..60),
            down_cuts in proptest::collection::vec(0usize..8000, 0..60),
        ) {
            let (up, down) = conversation(&pairs);
            let info = info();
            let mut h = Http1::new(&info);
            let mut out = Vec::new();
            // All requests first (pipelining), then all responses, in arbitrary pieces.
            for (i, piece) in split(&up, up_cuts).into_iter().enumerate() {
                h.on_data(&info, C, i as u64, piece, &mut out);
            }
            for (i, piece) in split(&down, down_cuts).into_iter().enumerate() {
                h.on_data(&info, S, 1000 + i as u64, piece, &mut out);
            }
            h.on_close(&info, 9999, &mut out);
            let got: Vec<(String, Option<u16>)> =
                exchanges(&out).iter().map(|e| (e.http().unwrap().path.to_string(), e.http().unwrap().status)).collect();
            let want: Vec<(String, Option<u16>)> =
                pairs.iter().enumerate().map(|(i, p)| (format!("/p{}", p.0), Some(200 + (i % 3) as u16))).collect();
            prop_assert_eq!(got, want);
            prop_assert!(!out.contains(&Dissected::Resync));
        }
    }
}

/// Paths and statuses of what came out, in order.
fn outcomes(out: &[Dissected]) -> Vec<(String, Option<u16>)> {
    exchanges(out).iter().map(|e| (e.http().unwrap().path.to_string(), e.http().unwrap().status)).collect()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: web\r\n\r\n").into_bytes()
}

fn ok(status: u16, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

#[test]
fn a_lost_request_never_moves_a_status_onto_another_request() {
    // keep-alive, one request at a time, 1,000 of them; request 500's segment was never captured
    // (its response was). tshark pairs 999; so must we, with each status its own.
    let info = info();
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    for i in 0..1000u64 {
        let status = 200 + (i % 5) as u16;
        if i == 500 {
            h.on_gap(&info, C, get(&format!("/{i}")).len() as u64);
        } else {
            h.on_data(&info, C, i * 10, &get(&format!("/{i}")), &mut out);
        }
        h.on_data(&info, S, i * 10 + 5, &ok(status, "x"), &mut out);
    }
    h.on_close(&info, 99_999, &mut out);
    let got = outcomes(&out);
    assert_eq!(got.len(), 999);
    for (path, status) in &got {
        let i: u64 = path[1..].parse().unwrap();
        assert_eq!(*status, Some(200 + (i % 5) as u16), "{path}");
    }
    assert_eq!(out.iter().filter(|d| **d == Dissected::UnmatchedResponse).count(), 1, "the lost request's answer");
    assert!(exchanges(&out).iter().all(|e| e.http().unwrap().paired.is_none()), "one at a time: certain");
}

#[test]
fn a_lost_response_leaves_its_request_unanswered_not_the_next_one_shifted() {
    let info = info();
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    h.on_data(&info, C, 10, &get("/a.gif"), &mut out);
    h.on_gap(&info, S, 40); // /a.gif's 200 lost
    h.on_data(&info, C, 30, &get("/missing"), &mut out);
    h.on_data(&info, S, 35, &ok(404, ""), &mut out);
    h.on_data(&info, C, 50, &get("/b"), &mut out);
    h.on_data(&info, S, 55, &ok(200, "ok"), &mut out);
    h.on_close(&info, 99, &mut out);
    let mut got = outcomes(&out);
    got.sort();
    assert_eq!(got, [("/a.gif".into(), None), ("/b".into(), Some(200)), ("/missing".into(), Some(404))]);
    let latency = exchanges(&out).iter().find(|e| e.http().unwrap().path == "/missing").map(|e| e.response_ts_us);
    assert_eq!(latency, Some(Some(35)), "timed from its own request");
}

#[test]
fn a_response_whose_body_was_lost_keeps_its_status_and_the_next_one_pairs() {
    let info = info();
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    h.on_data(&info, C, 1, &get("/big"), &mut out);
    h.on_data(&info, S, 2, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nxxxx", &mut out);
    h.on_gap(&info, S, 90_000);
    h.on_data(&info, S, 3, &[b'y'; 9_996], &mut out);
    h.on_data(&info, C, 4, &get("/next"), &mut out);
    h.on_data(&info, S, 5, &ok(201, ""), &mut out);
    h.on_close(&info, 9, &mut out);
    assert_eq!(outcomes(&out), [("/big".into(), Some(200)), ("/next".into(), Some(201))]);
}

#[test]
fn a_capture_that_starts_mid_response_reads_on_from_the_next_message() {
    // Joined mid-stream: the first server bytes are the end of a body, the client's first are
    // the tail of a request body.
    let info = ConnInfo { opener: None, ..info() };
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    h.on_data(&info, S, 1, b"the end of some body</html>", &mut out);
    h.on_data(&info, C, 2, b"ame=x&y=z", &mut out);
    for i in 0..5u64 {
        h.on_data(&info, C, 10 + i * 10, &get(&format!("/{i}")), &mut out);
        h.on_data(&info, S, 15 + i * 10, &ok(200, "ok"), &mut out);
    }
    h.on_close(&info, 99, &mut out);
    assert_eq!(outcomes(&out).len(), 5);
    assert!(outcomes(&out).iter().all(|(_, s)| *s == Some(200)));
    assert!(!out.contains(&Dissected::NotThisProtocol));
}

#[test]
fn a_capture_that_starts_with_a_keep_alive_byte_loses_nothing() {
    let info = ConnInfo { opener: None, ..info() };
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    h.on_data(&info, C, 1, b"\n", &mut out); // TCP keep-alive: one old byte
    h.on_data(&info, S, 2, b"\x00", &mut out);
    h.on_data(&info, C, 3, &get("/first"), &mut out);
    h.on_data(&info, S, 4, &ok(200, ""), &mut out);
    h.on_close(&info, 9, &mut out);
    assert_eq!(outcomes(&out), [("/first".into(), Some(200))]);
}

#[test]
fn any_method_token_is_a_request() {
    let out = run(&[
        (C, 1, b"PROPFIND /dav/ HTTP/1.1\r\nDepth: 1\r\n\r\n"),
        (S, 2, b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 0\r\n\r\n"),
        (C, 3, b"MKCOL /dav/new HTTP/1.1\r\n\r\n"),
        (S, 4, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        (C, 5, b"X-PURGE /cache HTTP/1.1\r\n\r\n"),
        (S, 6, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    let methods: Vec<_> = exchanges(&out).iter().map(|e| e.http().unwrap().method.clone()).collect();
    assert_eq!(methods, ["PROPFIND", "MKCOL", "X-PURGE"]);
    assert_eq!(outcomes(&out).iter().map(|o| o.1.unwrap()).collect::<Vec<_>>(), [207, 201, 200]);
}

#[test]
fn heads_a_server_might_still_take_are_reported_and_flagged() {
    let out = run(&[
        (C, 1, b"GET  /double-space HTTP/1.1\r\nHost: web\r\n\r\n"),
        (S, 2, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        (C, 3, b"GET /odd-name HTTP/1.1\r\nX(Bad)Name: 1\r\nUser-Agent: curl/8\r\n\r\n"),
        (S, 4, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        (C, 5, b"POST /nul HTTP/1.1\r\nX-Nul: a\x00b\r\nContent-Length: 2\r\n\r\nhi"),
        (S, 6, b"HTTP/1.1 201 OK\r\nContent-Length: 0\r\n\r\n"),
        (C, 7, b"GET /clean HTTP/1.1\r\n\r\n"),
        (S, 8, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    let ex = exchanges(&out);
    let got: Vec<_> =
        ex.iter().map(|e| (e.http().unwrap().path.as_str(), e.http().unwrap().malformed.is_some())).collect();
    assert_eq!(got, [("/double-space", true), ("/odd-name", true), ("/nul", true), ("/clean", false)]);
    assert_eq!(&ex[1].http().unwrap().headers["user-agent"], "curl/8", "the rest of a lenient head is read");
    assert_eq!(ex[2].request_size, b"POST /nul HTTP/1.1\r\nX-Nul: a\x00b\r\nContent-Length: 2\r\n\r\nhi".len() as u64);
    assert!(ex.iter().all(|e| e.http().unwrap().status.is_some()));
}

#[test]
fn a_pipelining_connection_with_a_gap_says_its_pairing_is_uncertain() {
    let info = info();
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    h.on_data(&info, C, 1, &[get("/a"), get("/b")].concat(), &mut out);
    h.on_data(&info, S, 2, &ok(200, ""), &mut out);
    h.on_gap(&info, C, 30); // a third pipelined request lost
    h.on_data(&info, C, 3, &get("/d"), &mut out);
    h.on_data(&info, S, 4, &[ok(201, ""), ok(202, "")].concat(), &mut out);
    h.on_close(&info, 9, &mut out);
    let ex = exchanges(&out);
    assert_eq!(ex[0].http().unwrap().paired, None, "before the gap: sure");
    assert!(ex.iter().skip(1).any(|e| e.http().unwrap().paired.as_deref() == Some("uncertain")), "{out:?}");
}

#[test]
fn connect_hands_the_tunnel_on() {
    let info = info();
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    h.on_data(&info, C, 1, b"CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n\x16\x03\x01", &mut out);
    h.on_data(&info, S, 2, b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x03", &mut out);
    let tunnel = h.take_tunnel().expect("a tunnel");
    assert_eq!(
        (tunnel[C as usize].as_slice(), tunnel[S as usize].as_slice()),
        (&b"\x16\x03\x01"[..], &b"\x16\x03\x03"[..])
    );
    assert_eq!(outcomes(&out), [("api.example:443".into(), Some(200))]);
}

#[test]
fn each_request_carries_the_sequence_number_of_its_first_byte() {
    // Pipelined, the second head split across segments (so it is parsed from held bytes), on a
    // connection whose client sequence numbers wrap past 2^32.
    let first = b"GET /a HTTP/1.1\r\nHost: web\r\n\r\n";
    let second = b"GET /b HTTP/1.1\r\nHost: web\r\n\r\n";
    let isn = u32::MAX - 10;
    let mut info = info();
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    let mut sent = 0u32;
    for part in [&[&first[..], &second[..8]].concat()[..], &second[8..]] {
        info.seq[C as usize] = isn.wrapping_add(sent);
        h.on_data(&info, C, 100, part, &mut out);
        sent += part.len() as u32;
    }
    info.seq[S as usize] = 5;
    h.on_data(
        &info,
        S,
        200,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        &mut out,
    );
    let seqs: Vec<Option<u32>> = exchanges(&out).iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [Some(isn), Some(isn.wrapping_add(first.len() as u32))]);
}
