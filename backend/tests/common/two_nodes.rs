//! The demo capture as if two nodes had seen it: its client pod's interface on one, every other
//! interface on the other, with a cluster file that lists both; and what must be equal however it
//! is cut (each record's shape, connections per serving pod). Used by the agent/hub and bus tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use podtap::capture::CaptureFile;
use podtap::capture::write::PcapngWriter;
use podtap_shared::Record;

const BIN: &str = env!("CARGO_BIN_EXE_podtap");
/// The demo's client pod interface: "another node" in these tests.
pub const CLIENT_VETH: &str = "veth2a7f6b13";

/// `file` cut into (the interfaces `take` picks, the others), as two pcapng files in `dir`.
pub fn split(file: &Path, take: impl Fn(&str) -> bool, dir: &Path) -> (PathBuf, PathBuf) {
    let capture = CaptureFile::open(file).unwrap();
    let paths = (dir.join("client-node.pcapng"), dir.join("lab-node.pcapng"));
    let mut writers = [&paths.0, &paths.1].map(|p| PcapngWriter::new(std::fs::File::create(p).unwrap()).unwrap());
    // Frame interface index → (writer, its index there).
    let mut map: Vec<Option<(usize, u32)>> = Vec::new();
    let mut frames = capture.frames();
    while let Some(frame) = frames.next() {
        let frame = frame.unwrap();
        for (i, iface) in frames.interfaces().iter().enumerate().skip(map.len()) {
            let name = iface.name.clone().unwrap_or_default();
            let w = if take(&name) { 0 } else { 1 };
            map.push(Some((w, writers[w].add_interface(&name, iface.link, 262_144).unwrap())));
            debug_assert_eq!(map.len(), i + 1);
        }
        let (w, index) = map[frame.interface as usize].unwrap();
        writers[w].write_packet(index, frame.ts_us * 1000, frame.data.len() as u32, frame.data).unwrap();
    }
    for w in &mut writers {
        w.flush().unwrap();
    }
    paths
}

/// A cluster file: the demo's, plus a second node for the client's half.
pub fn two_node_cluster(dir: &Path) -> PathBuf {
    let mut list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(super::demo_dir().join("cluster.json")).unwrap()).unwrap();
    list["items"].as_array_mut().unwrap().push(serde_json::json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "client-node"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.49.3"}]}
    }));
    let path = dir.join("cluster.json");
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
    path
}

/// What must be equal however the capture is cut: each record's time, kind, what was asked,
/// who asked, who answered, the way it went, whether it was a probe, how many copies were seen.
pub fn shape(r: &Record) -> String {
    let what = match &r.detail {
        podtap_shared::Detail::Http(h) => format!("{} {} {:?}", h.method, h.path, h.status),
        podtap_shared::Detail::Dns(d) => format!("{} {}", d.query, d.qtype),
        podtap_shared::Detail::Tcp(t) => format!("tcp {:?} {}/{}", t.close, r.request_size, r.response_size),
        other => format!("{other:?}"),
    };
    format!(
        "{} {} {} -> {} via {:?} {:?} probe={} obs={}",
        r.ts,
        what,
        r.src.map_id(),
        r.dst.map_id(),
        r.via.kind,
        r.via.service,
        r.probe,
        r.observations
    )
}

pub fn shapes(records: &[Record]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(shape(r)).or_insert(0) += 1;
    }
    m
}

/// Connections per serving pod (requests only): cutting must not split or join any.
pub fn connections(records: &[Record]) -> BTreeMap<String, usize> {
    let mut m: BTreeMap<String, std::collections::HashSet<u64>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.is_request()) {
        m.entry(r.dst.map_id()).or_default().insert(r.conn);
    }
    m.into_iter().map(|(k, v)| (k, v.len())).collect()
}

pub fn analyze(args: &[&str]) -> Vec<Record> {
    let out = Command::new(BIN).arg("analyze").args(args).args(["--format", "jsonl"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

pub fn whole() -> Vec<Record> {
    let demo = super::demo_dir();
    let (file, cluster) = (demo.join("capture.pcapng"), demo.join("cluster.json"));
    analyze(&[file.to_str().unwrap(), "--cluster", cluster.to_str().unwrap()])
}
