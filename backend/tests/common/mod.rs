//! Shared by the integration tests: where the lab captures are, and one helper that runs a capture
//! through the engine the way `podtap analyze` does.
#![allow(dead_code)] // each test binary uses its own part

pub mod fake_api;
pub mod idp;
pub mod kafka_log;
pub mod lab_cluster;
pub mod packets;
pub mod router;
pub mod served;
pub mod server_logs;
pub mod two_nodes;

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

/// `nats-server` as `cargo xtask bus up` builds it (`PODTAP_NATS_SERVER` overrides).
pub fn nats_server() -> PathBuf {
    if let Some(p) = std::env::var_os("PODTAP_NATS_SERVER") {
        return p.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    let p = cache.join("podtap/nats-v2.15.3/nats-server");
    assert!(p.is_file(), "{} is missing: `cargo xtask setup` (or `cargo xtask bus up`) builds it", p.display());
    p
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

/// The same for any capture file of a lab directory: its requests (connections, `kind: "tcp"`,
/// left out; `analyze_everything` keeps them).
pub fn analyze_file(dir: &Path, name: &str, how: Records) -> (Vec<Record>, EngineStats) {
    let (all, stats) = analyze_everything(dir, name, how);
    (all.into_iter().filter(Record::is_request).collect(), stats)
}

/// Every record of a lab capture, requests and connections.
pub fn analyze_everything(dir: &Path, name: &str, how: Records) -> (Vec<Record>, EngineStats) {
    let file = CaptureFile::open(&dir.join(name)).expect("lab capture opens");
    let mut engine = Engine::new(cluster(dir));
    if how == Records::PerInterface {
        engine = engine.per_interface();
    }
    let mut records = Vec::new();
    engine.run_file(&file, |batch| records.append(batch)).expect("lab capture is whole");
    (records, engine.stats())
}

/// `file` through engines from `engine`: on one thread, then with the front half sharded over
/// one, two and three dissectors. Every record must be the same, in the same order, and every
/// counter; returns the one thread's records and counters.
pub fn sharded_alike(file: &CaptureFile, engine: impl Fn() -> Engine) -> (Vec<Record>, EngineStats) {
    let mut one = engine();
    let mut records = Vec::new();
    one.run_file_serially(file, |batch| records.append(batch), |_| {}).expect("the capture is whole");
    for shards in 1..=3 {
        let mut sharded = engine();
        let mut same = Vec::new();
        sharded.run_file_sharded(file, shards, |batch| same.append(batch), |_| {}).expect("the capture is whole");
        assert!(
            records == same,
            "{} over {shards} shards: {} records against {}",
            file.name(),
            same.len(),
            records.len()
        );
        assert_eq!(one.stats(), sharded.stats(), "{} over {shards} shards", file.name());
    }
    (records, one.stats())
}

/// Every record of a real server's lab capture (databases, Kafka: end2end/lab/tier.sh), named by
/// the tier's List `cluster`, requests and connections; the capture must be whole and every
/// stream in step.
pub fn analyze_in_step(pcap: &Path, cluster: &Path) -> Vec<Record> {
    let file = CaptureFile::open(pcap).expect("the capture opens");
    let cluster = Arc::new(load_files(&[cluster]).expect("the tier's List loads"));
    let (records, stats) = sharded_alike(&file, || Engine::new(cluster.clone()));
    assert_eq!((stats.tcp.gaps, stats.resyncs, stats.unmatched_responses), (0, 0, 0), "{stats:?}");
    records
}

/// The servers' own counts for a lab run.
pub fn ground_truth(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("ground-truth.json")).expect("ground-truth.json")).expect("JSON")
}

/// A capture format people bring, made from a lab pcapng (Ethernet frames on named interfaces).
#[derive(Clone, Copy, Debug)]
pub enum Reframe {
    /// Classic pcap, every interface merged into one (`mergecap -F pcap`).
    ClassicPcap,
    /// Classic pcap of Linux cooked v1 frames (`tcpdump -i any -y LINUX_SLL`): no interface at all.
    CookedV1,
    /// Linux cooked v2 (`tcpdump -i any`), with an interface index per frame but no names.
    CookedV2,
}

/// The lab capture `name` rewritten as `how`: the same frames, in the same order, with the
/// interface names (and, cooked, the Ethernet header) gone.
pub fn reframe(dir: &Path, name: &str, how: Reframe) -> CaptureFile {
    let file = CaptureFile::open(&dir.join(name)).expect("lab capture opens");
    let link: u32 = match how {
        Reframe::ClassicPcap => 1,
        Reframe::CookedV1 => 113,
        Reframe::CookedV2 => 276,
    };
    let mut out = Vec::new();
    out.extend(0xa1b2_c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0u8; 8]);
    out.extend(262_144u32.to_le_bytes());
    out.extend(link.to_le_bytes());
    for frame in file.frames() {
        let f = frame.expect("whole");
        let data = match how {
            Reframe::ClassicPcap => f.data.to_vec(),
            Reframe::CookedV1 => {
                // packet type (host), ARPHRD_ETHER, address length 6, the source MAC (8 bytes), protocol.
                let mut sll = vec![0, 0, 0, 1, 0, 6];
                sll.extend(&f.data[6..12]);
                sll.extend([0, 0]);
                sll.extend(&f.data[12..]);
                sll
            }
            Reframe::CookedV2 => {
                // protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length, address.
                let mut sll = f.data[12..14].to_vec();
                sll.extend([0, 0]);
                sll.extend((f.interface + 2).to_be_bytes());
                sll.extend([0, 1, 0, 6]);
                sll.extend(&f.data[6..12]);
                sll.extend([0, 0]);
                sll.extend(&f.data[14..]);
                sll
            }
        };
        out.extend(((f.ts_us / 1_000_000) as u32).to_le_bytes());
        out.extend(((f.ts_us % 1_000_000) as u32).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
    }
    CaptureFile::from_bytes(format!("{name} as {how:?}"), out).expect("a classic pcap")
}

/// Records of a capture already open (alike however many threads share its front half).
pub fn analyze_capture(dir: &Path, file: &CaptureFile) -> (Vec<Record>, EngineStats) {
    let cluster = cluster(dir);
    let (mut records, stats) = sharded_alike(file, || Engine::new(cluster.clone()));
    records.retain(Record::is_request);
    (records, stats)
}

/// A child process killed (and reaped) when dropped: a failing test leaves no podtap behind
/// holding the test runner's pipes.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
