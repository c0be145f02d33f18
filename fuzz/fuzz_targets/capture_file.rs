//! Any bytes as a capture file, through the whole engine: no panic, no hang.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use podtap::capture::CaptureFile;
use podtap::engine::Engine;
use podtap::resolve::ClusterState;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = CaptureFile::from_bytes("fuzz", data.to_vec()) {
        let mut engine = Engine::new(Arc::new(ClusterState::default()));
        let _ = engine.run_file(&file, |records| records.clear());
    }
});
