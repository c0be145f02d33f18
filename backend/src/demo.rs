//! The built-in demo: a capture made by the lab (`end2end/lab/lab.sh`) and the cluster List that
//! describes it, compiled into the binary so `podtap serve` shows live traffic with no cluster.
//! Regenerate with `cargo xtask demo` (root; see README).

use crate::capture::CaptureFile;
use crate::resolve::{ClusterState, parse_list};

/// The lab capture: every pod veth and the node's eth0 of one lab run.
pub const CAPTURE: &[u8] = include_bytes!("../demo/capture.pcapng");
/// The `kubectl get … -o json`-style List of the lab cluster.
pub const CLUSTER: &[u8] = include_bytes!("../demo/cluster.json");
/// The servers' own counts for that run (what podtap must find).
pub const GROUND_TRUTH: &[u8] = include_bytes!("../demo/ground-truth.json");

/// The demo capture, ready to read.
pub fn capture() -> CaptureFile {
    CaptureFile::from_bytes("built-in demo", CAPTURE.to_vec()).expect("the shipped demo is a pcapng file")
}

/// The demo cluster state.
pub fn cluster() -> ClusterState {
    let mut state = ClusterState::default();
    parse_list("built-in demo cluster", CLUSTER, &mut state).expect("the shipped demo cluster parses");
    state
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_demo_loads_and_is_small() {
        assert!(super::CAPTURE.len() < 2 * 1024 * 1024);
        assert!(super::capture().frames().count() > 1000);
        assert!(!super::cluster().is_empty());
    }
}
