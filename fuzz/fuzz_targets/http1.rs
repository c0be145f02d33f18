//! Any bytes as an HTTP/1.x connection, with gaps where the input says and joined mid-stream or
//! not: framing, lenient heads, resynchronisation and pairing never panic or hang.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::http1::Http1;
use podtap::reassemble::ConnHandler;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    let info = common::info(80, mode & 1 == 1);
    let mut h = Http1::new(&info);
    let mut out = Vec::new();
    common::drive(&mut h, &info, rest, &mut out);
});
