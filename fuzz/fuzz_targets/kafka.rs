//! Any bytes as a Kafka connection on port 9092, through the protocol dispatcher: opened by an
//! ApiVersions request, else joined mid-stream. Half the inputs are raw streams
//! (`common::drive`, gaps included); the other half are cut into frames whose sizes are right, so
//! every request and response decoder (any API key and version the input names) meets hostile
//! bodies. Counts that claim more elements than bytes, cut frames and responses nobody asked for
//! must cost the stream, never a panic or an allocation past the bytes given.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::any::AnyProtocol;
use podtap::reassemble::{ConnHandler, Dir};

/// ApiVersions v3 as `kafka-broker-api-versions.sh` sends it.
const OPENING: &[u8] = b"\x00\x00\x00\x2b\x00\x12\x00\x03\x00\x00\x00\x00\x00\x07admin-1\x00\
\x12apache-kafka-java\x063.3.1\x00";

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let joined = mode & 1 == 0;
    let info = common::info(9092, joined);
    let mut h = AnyProtocol::new(&info);
    let mut out = Vec::new();
    if !joined {
        h.on_data(&info, Dir::AtoB, 0, OPENING, &mut out);
    }
    if mode & 2 == 0 {
        common::drive(&mut h, &info, rest, &mut out);
        return;
    }
    // Frames: [direction and length byte][that many bytes], each sent with its right size.
    let mut input = rest;
    let mut t = 1;
    while let [head, more @ ..] = input {
        let len = usize::from(head >> 1).min(more.len());
        let dir = if head & 1 == 0 { Dir::AtoB } else { Dir::BtoA };
        let mut frame = (len as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&more[..len]);
        h.on_data(&info, dir, t, &frame, &mut out);
        input = &more[len..];
        t += 1;
    }
    h.on_close(&info, u64::MAX / 2, &mut out);
});
