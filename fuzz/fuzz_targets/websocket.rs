//! Any bytes as a WebSocket session after its HTTP/1.1 upgrade, through the protocol dispatcher,
//! with gaps where the input says (`common::drive`): hostile lengths (64-bit), reserved opcodes,
//! cut headers and close frames must cost the stream, never a panic or an allocation.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::any::AnyProtocol;
use podtap::reassemble::{ConnHandler, Dir};

const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
const SWITCHED: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let info = common::info(8080, false);
    let mut h = AnyProtocol::new(&info);
    let mut out = Vec::new();
    h.on_data(&info, Dir::AtoB, 0, UPGRADE, &mut out);
    h.on_data(&info, Dir::BtoA, 1, SWITCHED, &mut out);
    common::drive(&mut h, &info, data, &mut out);
});
