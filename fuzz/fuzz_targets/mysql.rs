//! Any bytes as a MySQL or MariaDB session on port 3306, through the protocol dispatcher: opened
//! by a server greeting (the first control byte's low bit), else joined mid-stream; with gaps
//! where the input says (`common::drive`). Hostile lengths, cut packets and answers with no
//! command must cost the stream, never a panic or an allocation past the bytes given.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::any::AnyProtocol;
use podtap::reassemble::{ConnHandler, Dir};

/// A MariaDB server's Initial Handshake v10.
const GREETING: &[u8] = b"\x55\x00\x00\x00\x0a10.11.19-MariaDB\0\x05\0\0\0AAAAAAAA\0\xfe\xf7\x2d\x02\0\xff\x81\x15\0\0\0\0\0\0\0\0\0\0BBBBBBBBBBBBB\0mysql_native_password\0";

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let joined = mode & 1 == 0;
    let info = common::info(3306, joined);
    let mut h = AnyProtocol::new(&info);
    let mut out = Vec::new();
    if !joined {
        h.on_data(&info, Dir::BtoA, 0, GREETING, &mut out);
    }
    common::drive(&mut h, &info, rest, &mut out);
});
