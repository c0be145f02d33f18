//! What people and browsers send the hub: filter text, times and durations, stream messages.
//! Any bytes give a value or one error, never a panic; a filter that parses matches a record
//! without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::timespec::{parse_duration_us, parse_time};
use podtap_shared::{ClientMessage, Filter, Record};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(f) = Filter::parse(text) {
        let _ = f.matches(&Record::test());
    }
    let _ = parse_time(text, 1_795_000_000_000_000);
    let _ = parse_duration_us(text);
    let _ = serde_json::from_str::<ClientMessage>(text);
    let _ = podtap::store::Cursor::parse(text);
});
