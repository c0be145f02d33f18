//! Any bytes as a run of IPv4 and IPv6 fragments (each prefixed by a length byte): overlapping,
//! out of order, oversized or lying about their offsets, they are put together or dropped,
//! never a panic or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::decode::defrag::Defragmenter;

fuzz_target!(|data: &[u8]| {
    let mut defrag = Defragmenter::default();
    let mut rest = data;
    let mut t = 0;
    while let Some((len, tail)) = rest.split_first() {
        let len = (*len as usize).min(tail.len());
        let (packet, next) = tail.split_at(len);
        t += 1;
        if let Some(whole) = defrag.add(packet, (t % 2) as u32, t) {
            defrag.recycle(whole);
        }
        rest = next;
    }
    defrag.sweep(u64::MAX);
});
