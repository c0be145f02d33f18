//! Any bytes as the start of a connection that may carry a PROXY protocol header (the first
//! control byte picks none, v1's "PROXY " or v2's signature as a prefix), through the protocol
//! dispatcher that takes the header off.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::any::AnyProtocol;
use podtap::dissect::proxy;
use podtap::reassemble::ConnHandler;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    let prefix: &[u8] = match mode % 3 {
        1 => b"PROXY ",
        2 => b"\r\n\r\n\0\r\nQUIT\n",
        _ => b"",
    };
    let whole = [prefix, rest].concat();
    let _ = proxy::parse(&whole);
    let info = common::info(80, false);
    let mut h = AnyProtocol::new(&info);
    let mut out = Vec::new();
    // All of it from the client first, as a load balancer sends it, then the fuzzer's split.
    h.on_data(&info, podtap::reassemble::Dir::AtoB, 0, &whole[..whole.len().min(64)], &mut out);
    common::drive(&mut h, &info, &whole[whole.len().min(64)..], &mut out);
});
