//! Any bytes as a sequence of TCP segments on one address pair (direction, flags, sequence
//! offset, length from a 4-byte header each), into the reassembler with the HTTP/1 dissector.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::decode::{Segment, TcpFlags};
use podtap::dissect::http1::Http1;
use podtap::reassemble::{Limits, Reassembler};

fuzz_target!(|data: &[u8]| {
    let (a, b) = ("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    let mut r = Reassembler::<Http1>::new(Limits { pending_per_direction: 4096, ..Limits::default() });
    let mut out = Vec::new();
    let mut rest = data;
    let mut ts = 0;
    while let [ctl, off_hi, off_lo, len, tail @ ..] = rest {
        let len = (*len as usize).min(tail.len());
        let (payload, next) = tail.split_at(len);
        let flags = TcpFlags { syn: ctl & 1 != 0, ack: ctl & 2 != 0, fin: ctl & 4 != 0, rst: ctl & 8 != 0 };
        let (src, dst) = if ctl & 16 != 0 { (b, a) } else { (a, b) };
        let seq = u32::from_be_bytes([0, 0, *off_hi, *off_lo]).wrapping_add(u32::from(*ctl) << 24);
        ts += 1_000_000 * u64::from(ctl & 32 != 0) * 400; // sometimes long enough to go idle
        r.on_segment(&Segment { ts_us: ts, interface: 0, src, dst, seq, flags, payload, tunnel: None }, &mut out);
        r.sweep(ts, &mut out);
        rest = next;
    }
    r.finish(&mut out);
});
