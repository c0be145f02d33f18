//! Any bytes after the HTTP/2 preface, both directions, with gaps: frames, HPACK (its dynamic
//! table fed by whatever comes) and gRPC on top never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::http2::{Http2, PREFACE};
use podtap::reassemble::{ConnHandler, Dir};

fuzz_target!(|data: &[u8]| {
    let info = common::info(50051, false);
    let mut h = Http2::new(Dir::AtoB);
    let mut out = Vec::new();
    h.on_data(&info, Dir::AtoB, 0, PREFACE, &mut out);
    common::drive(&mut h, &info, data, &mut out);
});
