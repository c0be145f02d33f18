//! Any bytes as an HTTP/1 conversation: the first byte picks where the client's bytes end, the
//! second how big each delivered piece is; both directions are fed interleaved, then closed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::dissect::http1::Http1;
use podtap::reassemble::{ConnHandler, ConnInfo, Dir};

fuzz_target!(|data: &[u8]| {
    let [split, piece, rest @ ..] = data else { return };
    let split = (*split as usize * rest.len()) / 256;
    let piece = (*piece as usize).max(1);
    let (up, down) = rest.split_at(split);
    let info = ConnInfo {
        id: 1,
        interface: 0,
        a: "10.0.0.1:1".parse().unwrap(),
        b: "10.0.0.2:80".parse().unwrap(),
        opener: Some(Dir::AtoB),
    };
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
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
