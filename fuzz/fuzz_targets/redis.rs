//! Any bytes as a Redis connection on port 6379, through the protocol dispatcher: opened by a
//! command (the first control byte's low bit), else joined mid-stream; with gaps where the input
//! says (`common::drive`). Hostile lengths and nesting, cut values and replies with no command
//! must cost the stream, never a panic or an allocation past the bytes given.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::any::AnyProtocol;
use podtap::reassemble::{ConnHandler, Dir};

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let joined = mode & 1 == 0;
    let info = common::info(6379, joined);
    let mut h = AnyProtocol::new(&info);
    let mut out = Vec::new();
    if !joined {
        h.on_data(&info, Dir::AtoB, 0, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", &mut out);
    }
    common::drive(&mut h, &info, rest, &mut out);
});
