//! Shared by the integration tests: where the lab captures are, and one helper that runs a capture
//! through the engine the way `podtap analyze` does.
#![allow(dead_code)] // each test binary uses its own part

pub mod fake_api;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use podtap::capture::CaptureFile;
use podtap::engine::{Engine, EngineStats};
use podtap::resolve::{ClusterState, load_files};
use podtap_shared::Record;

/// The lab run shipped as the built-in demo: `capture.pcapng`, `cluster.json`, `ground-truth.json`.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("demo")
}

/// A lab directory's cluster state.
pub fn cluster(dir: &Path) -> Arc<ClusterState> {
    Arc::new(load_files(&[dir.join("cluster.json")]).expect("lab cluster.json loads"))
}

/// Every record of a lab capture (one per request), in the order the engine produced them, and
/// its counters.
pub fn analyze(dir: &Path) -> (Vec<Record>, EngineStats) {
    analyze_file(dir, "capture.pcapng", Records::PerRequest)
}

/// How records are made: one per request (observations merged) or one per observation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Records {
    PerRequest,
    PerInterface,
}

/// The same for any capture file of a lab directory.
pub fn analyze_file(dir: &Path, name: &str, how: Records) -> (Vec<Record>, EngineStats) {
    let file = CaptureFile::open(&dir.join(name)).expect("lab capture opens");
    let mut engine = Engine::new(cluster(dir));
    if how == Records::PerInterface {
        engine = engine.per_interface();
    }
    let mut records = Vec::new();
    engine.run_file(&file, |batch| records.append(batch)).expect("lab capture is whole");
    (records, engine.stats())
}

/// The servers' own counts for a lab run.
pub fn ground_truth(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("ground-truth.json")).expect("ground-truth.json")).expect("JSON")
}
