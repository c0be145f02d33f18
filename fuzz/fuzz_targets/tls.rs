//! Any bytes as a TLS connection's two directions (first byte: where the client's bytes end;
//! second: piece size), through the protocol dispatcher so TLS detection is exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::dissect::any::AnyProtocol;
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
        b: "10.0.0.2:443".parse().unwrap(),
        opener: Some(Dir::AtoB),
    };
    let mut h = AnyProtocol::new(&info);
    let mut out = Vec::new();
    // A handshake record header first, so most inputs reach the TLS parser.
    h.on_data(&info, Dir::AtoB, 0, &[0x16, 0x03, 0x01], &mut out);
    for a in up.chunks(piece) {
        h.on_data(&info, Dir::AtoB, 1, a, &mut out);
    }
    for b in down.chunks(piece) {
        h.on_data(&info, Dir::BtoA, 2, b, &mut out);
    }
    h.on_close(&info, 3, &mut out);
});
