//! Any bytes as one TCP connection's two directions, through the protocol dispatcher, so HTTP/1,
//! HTTP/2 (with HPACK), DNS over TCP and TLS (and the choice between them) are exercised. Control
//! bytes: the first picks where the client's bytes end, the second the piece size, the third how
//! the connection opens — plain, a TLS record header, the HTTP/2 preface, or on port 53 — so most
//! inputs reach each parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::dissect::any::AnyProtocol;
use podtap::reassemble::{ConnHandler, ConnInfo, ConnLife, Dir};

fuzz_target!(|data: &[u8]| {
    let [split, piece, mode, rest @ ..] = data else { return };
    let split = (*split as usize * rest.len()) / 256;
    let piece = (*piece as usize).max(1);
    let (up, down) = rest.split_at(split);
    let info = ConnInfo {
        id: 1,
        interface: 0,
        points: 1,
        tunnel: None,
        a: "10.0.0.1:1".parse().unwrap(),
        b: if mode % 4 == 3 { "10.0.0.2:53" } else { "10.0.0.2:443" }.parse().unwrap(),
        opener: Some(Dir::AtoB),
        life: ConnLife::new(0, true),
        seq: [0; 2],
        isn: None,
    };
    let mut h = AnyProtocol::new(&info);
    let mut out = Vec::new();
    match mode % 4 {
        1 => h.on_data(&info, Dir::AtoB, 0, &[0x16, 0x03, 0x01], &mut out),
        2 => h.on_data(&info, Dir::AtoB, 0, podtap::dissect::http2::PREFACE, &mut out),
        _ => {}
    }
    let (mut u, mut d) = (up.chunks(piece), down.chunks(piece));
    loop {
        let (a, b) = (u.next(), d.next());
        if a.is_none() && b.is_none() {
            break;
        }
        if let Some(a) = a {
            h.on_data(&info, Dir::AtoB, 1, a, &mut out);
        }
        if let Some(b) = b {
            h.on_data(&info, Dir::BtoA, 2, b, &mut out);
        }
    }
    h.on_close(&info, 3, &mut out);
});
