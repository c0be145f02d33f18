//! `serve --pcap FILE --loop`: every pass is the capture again, on a time axis that moves to now
//! and keeps going forward, with the same records (probes included) and ids that never repeat.

mod common;

use std::collections::{BTreeMap, HashSet};

use podtap::capture::CaptureFile;
use podtap::feed::{fixed, replay};
use podtap::publish::Hub;
use podtap_shared::{Filter, Record};

/// What a pass gave, in a form two passes can be compared by: per (src, dst, request, outcome,
/// probe), how many.
fn shape(records: &[&Record]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        let key = format!(
            "{} → {} {} {:?} probe={}",
            r.src.map_id(),
            r.dst.map_id(),
            r.detail.request_line(),
            r.detail.outcome(),
            r.probe
        );
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

#[test]
fn a_looped_replay_moves_to_now_and_gives_every_pass_the_same_records() {
    let dir = common::demo_dir();
    let file = CaptureFile::open(&dir.join("capture.pcapng")).unwrap();
    let (once, _) = common::analyze(&dir);
    let hub = Hub::new("loop test", 1_000_000);
    let started = podtap::feed::replay::now_us();
    let pacing = replay::Pacing { realtime: false, looped: true };
    let errors = replay::run_passes(&[file], fixed(common::cluster(&dir)), &hub, pacing, Some(3));
    assert!(errors.is_empty(), "{errors:?}");
    let all = hub.recent(1_000_000, &Filter::default());
    assert_eq!(all.len(), 3 * once.len(), "three passes, each the whole capture");
    let ids: HashSet<u64> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), all.len(), "ids never repeat across passes");
    assert!(all.iter().all(|r| r.ts >= started), "timestamps moved to now");

    // Ids keep counting, pass after pass: split by them, and each pass lies after the last in time.
    let mut by_id: Vec<&Record> = all.iter().collect();
    by_id.sort_by_key(|r| r.id);
    let passes: Vec<&[&Record]> = by_id.chunks(once.len()).collect();
    for w in passes.windows(2) {
        let end = w[0].iter().map(|r| r.ts).max().unwrap();
        assert!(w[1].iter().all(|r| r.ts > end), "a pass starts after the one before has ended");
    }
    let expected = shape(&once.iter().collect::<Vec<_>>());
    for (i, pass) in passes.iter().enumerate() {
        assert_eq!(shape(pass), expected, "pass {}", i + 1);
        assert!(pass.iter().any(|r| r.probe), "pass {} has its probes", i + 1);
    }
}
