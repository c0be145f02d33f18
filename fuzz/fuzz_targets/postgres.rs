//! Any bytes as a PostgreSQL session on port 5432, through the protocol dispatcher: opened by a
//! startup packet (the first control byte's low bit), else joined mid-stream; with gaps where the
//! input says (`common::drive`). Hostile lengths, cut messages and answers with no question must
//! cost the stream, never a panic or an allocation past the bytes given.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::any::AnyProtocol;
use podtap::reassemble::{ConnHandler, Dir};

/// psql's StartupMessage (user `app`, database `shop`).
const STARTUP: &[u8] = b"\0\0\0\x20\0\x03\0\0user\0app\0database\0shop\0\0";

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let joined = mode & 1 == 0;
    let info = common::info(5432, joined);
    let mut h = AnyProtocol::new(&info);
    let mut out = Vec::new();
    if !joined {
        h.on_data(&info, Dir::AtoB, 0, STARTUP, &mut out);
    }
    common::drive(&mut h, &info, rest, &mut out);
});
