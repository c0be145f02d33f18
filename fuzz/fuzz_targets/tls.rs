//! Any bytes as a TLS connection's records, both directions, with gaps: every record read or
//! skipped, hellos, alerts and HelloRetryRequests never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::tls::Tls;
use podtap::reassemble::ConnHandler;

fuzz_target!(|data: &[u8]| {
    let info = common::info(443, false);
    let mut h = Tls::new(&info);
    let mut out = Vec::new();
    common::drive(&mut h, &info, data, &mut out);
});
