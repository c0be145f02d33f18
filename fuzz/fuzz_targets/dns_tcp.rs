//! Any bytes as DNS over TCP (length-prefixed messages, several in flight), with gaps.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::dns_tcp::DnsTcp;
use podtap::reassemble::ConnHandler;

fuzz_target!(|data: &[u8]| {
    let info = common::info(53, false);
    let mut h = DnsTcp::new(&info);
    let mut out = Vec::new();
    common::drive(&mut h, &info, data, &mut out);
});
