//! Any bytes as one TCP connection's two directions, through the protocol dispatcher, so both
//! HTTP/1 and TLS (and the choice between them) are exercised. Control bytes: the first picks
//! where the client's bytes end, the second the piece size, the third whether the client opens
//! with a TLS handshake record header (so most inputs also reach the TLS parser).
#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::dissect::any::AnyProtocol;
use podtap::reassemble::{ConnHandler, ConnInfo, Dir};

fuzz_target!(|data: &[u8]| {
    let [split, piece, tls, rest @ ..] = data else { return };
    let split = (*split as usize * rest.len()) / 256;
    let piece = (*piece as usize).max(1);
    let (up, down) = rest.split_at(split);
    let info = ConnInfo {
        id: 1,
        interface: 0,
        a: "10.0.0.1:1".parse().unwrap(),
        b: "10.0.0.2:443".parse().unwrap(),
        opener: Some(Dir::AtoB),
    };
    let mut h = AnyProtocol::new(&info);
    let mut out = Vec::new();
    if tls & 1 == 1 {
        h.on_data(&info, Dir::AtoB, 0, &[0x16, 0x03, 0x01], &mut out);
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
