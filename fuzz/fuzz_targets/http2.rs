//! Any bytes after the HTTP/2 preface, both directions, with gaps: frames, HPACK (its dynamic
//! table fed by whatever comes) and gRPC on top never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::Dissected;
use podtap::dissect::http2::{Http2, PREFACE};
use podtap::reassemble::{ConnHandler, ConnInfo, Dir};

/// HTTP/2 as the reassembler would drive it: the client opened the connection.
struct H2(Http2);

impl ConnHandler for H2 {
    type Output = Dissected;
    fn new(_: &ConnInfo) -> Self {
        H2(Http2::new(Dir::AtoB))
    }
    fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts: u64, data: &[u8], out: &mut Vec<Dissected>) {
        self.0.on_data(info, dir, ts, data, out);
    }
    fn on_gap(&mut self, info: &ConnInfo, dir: Dir, len: u64) {
        self.0.on_gap(info, dir, len);
    }
    fn on_close(&mut self, info: &ConnInfo, ts: u64, out: &mut Vec<Dissected>) {
        self.0.on_close(info, ts, out);
    }
}

fuzz_target!(|data: &[u8]| {
    let info = common::info(50051, false);
    let mut h = H2::new(&info);
    let mut out = Vec::new();
    h.on_data(&info, Dir::AtoB, 0, PREFACE, &mut out);
    common::drive(&mut h, &info, data, &mut out);
});
