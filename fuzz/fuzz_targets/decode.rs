//! Any bytes as one frame of any link type podtap reads (the first byte picks Ethernet, Linux
//! cooked v1 or v2, raw IP, BSD NULL or LOOP), so VLAN tags and every tunnel (VXLAN, Geneve, IP in
//! IP, GRE, nested) are opened from fuzzed bytes; fragments go to the defragmenter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::capture::{Frame, LinkType};
use podtap::decode::defrag::Defragmenter;
use podtap::decode::{Decoded, decode};

fuzz_target!(|data: &[u8]| {
    let Some((kind, rest)) = data.split_first() else { return };
    let link = [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp, LinkType::Null, LinkType::Loop]
        [*kind as usize % 6];
    let mut defrag = Defragmenter::default();
    // The same bytes as a few frames in a row, so fragments can meet their siblings.
    for (i, chunk) in rest.chunks(rest.len().max(1).div_ceil(3)).enumerate() {
        let frame = Frame { ts_us: i as u64, interface: 0, link, data: chunk };
        if let Ok(Decoded::Fragment(l3)) = decode(&frame)
            && let Some(whole) = defrag.add(l3, 0, i as u64)
        {
            defrag.recycle(whole);
        }
    }
    defrag.sweep(u64::MAX);
});
