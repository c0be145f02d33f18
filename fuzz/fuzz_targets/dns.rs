//! Any bytes as a DNS message, parsed alone and fed to the tracker as a query and as a response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::decode::Datagram;
use podtap::dissect::dns::{DnsTracker, parse};

fuzz_target!(|data: &[u8]| {
    let _ = parse(data);
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    let mut ids = || 1;
    let q = Datagram {
        ts_us: 1,
        interface: 0,
        src: "10.0.0.1:5000".parse().unwrap(),
        dst: "10.0.0.2:53".parse().unwrap(),
        payload: data,
        tunnel: None,
    };
    let r = Datagram { ts_us: 2, src: q.dst, dst: q.src, ..q };
    t.on_datagram(&q, &mut ids, &mut out);
    t.on_datagram(&r, &mut ids, &mut out);
    t.finish(&mut out);
});
