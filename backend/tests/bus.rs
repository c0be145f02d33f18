//! Past one hub: the demo capture cut in two as if its client pod sat on another node, replayed
//! by two `podtap agent --bus` into a real NATS JetStream (`nats-server`, built from its Go
//! module by `cargo xtask bus up`/`setup`), merged by two `podtap hub --bus --replica I/2`. Each
//! hub must give the records the whole capture gives — a request seen before DNAT on one node
//! and after it on the other is one record, though each replica merges only its partitions —
//! and the same records as the other hub, ids included. Then the same with one replica killed
//! (SIGKILL) mid-replay — the other names its partitions as unread on `/healthz` — and started
//! again: nothing lost, nothing counted twice. And with takeover: the killed replica's share is
//! merged by its peer until it returns, and handed back then, exact at every step.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Running;
use common::two_nodes::*;
use podtap_shared::Record;

const BIN: &str = env!("CARGO_BIN_EXE_podtap");

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podtap-bus-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A JetStream server of its own on a port the kernel picks, its store in `dir`; its URL.
fn bus(dir: &Path) -> (Running, String) {
    let log = dir.join("nats.log");
    let child = Command::new(common::nats_server())
        .args(["--jetstream", "--addr", "127.0.0.1", "--port", "-1", "--store_dir"])
        .arg(dir.join("store"))
        .args(["--log"])
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let port = text
            .lines()
            .find_map(|l| l.split("Listening for client connections on 127.0.0.1:").nth(1))
            .map(|p| p.trim().to_string());
        if let Some(port) = port
            && text.contains("Server is ready")
        {
            return (running, format!("nats://127.0.0.1:{port}"));
        }
        assert!(Instant::now() < deadline, "nats-server did not start: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Hub replica `replica` on `url`; its log in `dir/hub-I.log`; (process, listen address).
fn hub(dir: &Path, cluster: &Path, url: &str, replica: &str, extra: &[&str]) -> (Running, String) {
    let log = dir.join(format!("hub-{}.log", replica.replace('/', "of")));
    let mut cmd = Command::new(BIN);
    cmd.args(["hub", "--cluster"]).arg(cluster);
    cmd.args(["--bus", url, "--replica", replica, "--listen", "127.0.0.1:0", "--token", "s3cret"]);
    cmd.args(extra).env("RUST_LOG", "info");
    let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
    let child = Running(cmd.stdout(Stdio::null()).stderr(out).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = std::fs::read_to_string(&log).unwrap_or_default().len();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text[seen..].lines().find_map(|l| l.split("podtap serving http://").nth(1)) {
            return (child, addr.trim().to_string());
        }
        assert!(Instant::now() < deadline, "hub {replica} did not start: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agents(url: &str, client: &Path, lab: &Path, extra: &[&str]) -> Vec<Child> {
    [(client, "client-node"), (lab, "lab-node")]
        .into_iter()
        .map(|(file, node)| {
            let packets = if extra.contains(&"--stay") { "16" } else { "0" };
            Command::new(BIN)
                .args(["agent", "--bus", url, "--node", node, "--packet-retention-mb", packets])
                .args(extra)
                .arg("--pcap")
                .arg(file)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn records(addr: &str) -> Vec<Record> {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Authorization: Bearer s3cret",
            &format!("http://{addr}/api/v1/records?limit=10000&kind=all"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "GET records from {addr}");
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(page["records"].clone()).unwrap()
}

/// `addr`'s records once there are `n` of them and they stay so for a second (at most 60 s).
fn settled(addr: &str, n: usize) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = records(addr);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = records(addr);
        if (now.len() >= n && now.len() == last.len()) || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// The partitions `addr`'s `/healthz` picks out with `pick`, once `done` holds of them (at most
/// 60 s).
fn partitions_until(addr: &str, pick: impl Fn(&serde_json::Value) -> bool, done: impl Fn(&[u32]) -> bool) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("curl")
            .args(["-s", "-H", "Authorization: Bearer s3cret", &format!("http://{addr}/healthz")])
            .output()
            .unwrap();
        let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let picked: Vec<u32> = health["bus"]["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| pick(p))
            .map(|p| p["partition"].as_u64().unwrap() as u32)
            .collect();
        if done(&picked) || Instant::now() > deadline {
            return picked;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The partitions nobody reads while observations wait on them, once `done` holds of them.
fn stalled_until(addr: &str, done: impl Fn(&[u32]) -> bool) -> Vec<u32> {
    partitions_until(addr, |p| p["stalled_s"].is_number() && p["waiting"].as_u64() > Some(0), done)
}

/// The partitions replica `replica` merges, once `done` holds of them.
fn merged_by_until(addr: &str, replica: u64, done: impl Fn(&[u32]) -> bool) -> Vec<u32> {
    partitions_until(addr, |p| p["merged_by"].as_u64() == Some(replica), done)
}

/// Stops `running` (the bus last: it writes its store into `dir` until it stops), then removes
/// `dir`.
fn clean_up(dir: &Path, running: Vec<Running>) {
    drop(running);
    std::fs::remove_dir_all(dir).unwrap();
}

fn wait_agents(agents: Vec<Child>) {
    for a in agents {
        let out = a.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Fails with the entries two counts differ in (at most 20), not both maps whole.
fn same(what: &str, got: &BTreeMap<String, usize>, want: &BTreeMap<String, usize>) {
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| format!("{:>3} got, {:>3} wanted: {k}", got.get(k).unwrap_or(&0), want.get(k).unwrap_or(&0)))
        .collect();
    assert!(
        diff.is_empty(),
        "{what}: {} differ:\n{}",
        diff.len(),
        diff.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Shapes without the time (a realtime replay moves it to now).
fn timeless(records: &[Record]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        let s = shape(r);
        *m.entry(s.split_once(' ').map_or(s.clone(), |(_, rest)| rest.to_string())).or_insert(0) += 1;
    }
    m
}

#[test]
fn two_hub_replicas_on_a_bus_give_the_records_of_the_whole_capture() {
    let dir = tmp("replicas");
    let (client, lab) = split(&common::demo_dir().join("capture.pcapng"), |n| n == CLIENT_VETH, &dir);
    let cluster = two_node_cluster(&dir);
    let (bus_server, url) = bus(&dir);
    let (h0, a0) = hub(&dir, &cluster, &url, "0/2", &["--capture-clock"]);
    let (h1, a1) = hub(&dir, &cluster, &url, "1/2", &["--capture-clock"]);
    wait_agents(agents(&url, &client, &lab, &[]));
    let whole = whole();
    let (r0, r1) = (settled(&a0, whole.len()), settled(&a1, whole.len()));
    same("records", &shapes(&r0), &shapes(&whole));
    assert_eq!(connections(&r0), connections(&whole));
    // Any hub answers for the whole cluster: the same records, the same ids.
    let ids = |rs: &[Record]| rs.iter().map(|r| (r.id, shape(r))).collect::<BTreeMap<_, _>>();
    assert_eq!(ids(&r0), ids(&r1));
    // Each replica merged only its share, and each share had requests in it.
    for log in ["hub-0of2.log", "hub-1of2.log"] {
        let text = std::fs::read_to_string(dir.join(log)).unwrap();
        assert!(text.contains("merging partitions"), "{text}");
    }
    let crossed = r0.iter().filter(|r| r.nodes.len() == 2).count();
    assert!(crossed > 100, "{crossed}");
    clean_up(&dir, vec![h0, h1, bus_server]);
}

#[test]
fn a_replica_killed_mid_replay_and_started_again_loses_nothing_and_repeats_nothing() {
    let dir = tmp("kill");
    let (client, lab) = split(&common::demo_dir().join("capture.pcapng"), |n| n == CLIENT_VETH, &dir);
    let cluster = two_node_cluster(&dir);
    let (bus_server, url) = bus(&dir);
    // No takeover: replica 1's share waits for it.
    let off = ["--bus-takeover-after", "off"];
    let (h0, a0) = hub(&dir, &cluster, &url, "0/2", &off);
    let (h1, _) = hub(&dir, &cluster, &url, "1/2", &off);
    // At capture speed (26 s), as if live: the kill lands while both replicas merge.
    let running = agents(&url, &client, &lab, &["--realtime"]);
    let log1 = dir.join("hub-1of2.log");
    let merged_some = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&log1).unwrap_or_default().matches("records").count() == 0
        && records(&a0).len() < 200
        && Instant::now() < merged_some
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = records(&a0).len();
    drop(h1); // SIGKILL
    // The other replica says so: replica 1's partitions unread, what waits on them.
    let away = stalled_until(&a0, |s| s == [1, 3, 5, 7]);
    assert_eq!(away, [1, 3, 5, 7], "replica 0's /healthz names replica 1's partitions");
    let (h1, a1) = hub(&dir, &cluster, &url, "1/2", &off);
    wait_agents(running);
    let whole = whole();
    let (r0, r1) = (settled(&a0, whole.len()), settled(&a1, whole.len()));
    assert!(before > 0 && before < whole.len(), "the kill came mid-replay: {before} of {}", whole.len());
    same("records", &timeless(&r0), &timeless(&whole));
    assert_eq!(connections(&r0), connections(&whole));
    same("the restarted replica's records", &timeless(&r1), &timeless(&whole));
    let text = std::fs::read_to_string(&log1).unwrap();
    assert!(text.contains("resuming from"), "{text}");
    assert_eq!(stalled_until(&a0, <[u32]>::is_empty), Vec::<u32>::new(), "every partition read again");
    clean_up(&dir, vec![h0, h1, bus_server]);
}

#[test]
fn a_killed_replicas_share_is_taken_over_by_its_peer_and_handed_back_when_it_returns() {
    let dir = tmp("takeover");
    let (client, lab) = split(&common::demo_dir().join("capture.pcapng"), |n| n == CLIENT_VETH, &dir);
    let cluster = two_node_cluster(&dir);
    let (bus_server, url) = bus(&dir);
    let soon = ["--bus-takeover-after", "5s"];
    let (h0, a0) = hub(&dir, &cluster, &url, "0/2", &soon);
    let (h1, _) = hub(&dir, &cluster, &url, "1/2", &soon);
    let theirs = |s: &[u32]| s == [1, 3, 5, 7];
    assert_eq!(merged_by_until(&a0, 1, theirs), [1, 3, 5, 7], "replica 1 merges its share");
    let running = agents(&url, &client, &lab, &["--realtime"]);
    let merged_some = Instant::now() + Duration::from_secs(30);
    while records(&a0).len() < 200 && Instant::now() < merged_some {
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = records(&a0).len();
    drop(h1); // SIGKILL
    // Replica 0 takes replica 1's share over (its lease not renewed), while the replay goes on.
    assert_eq!(merged_by_until(&a0, 0, |s: &[u32]| s.len() == 8), (0..8).collect::<Vec<_>>(), "replica 0 merges all");
    let log0 = std::fs::read_to_string(dir.join("hub-0of2.log")).unwrap();
    assert!(log0.contains("replica 0 takes its share of the partitions over"), "{log0}");
    wait_agents(running);
    let whole = whole();
    assert!(before > 0 && before < whole.len(), "the kill came mid-replay: {before} of {}", whole.len());
    // Nothing lost, though replica 1 never came back.
    let r0 = settled(&a0, whole.len());
    same("records merged without replica 1", &timeless(&r0), &timeless(&whole));
    assert_eq!(connections(&r0), connections(&whole));
    // Replica 1 returns: replica 0 hands its share back, and it resumes where replica 0 stopped.
    let (h1, a1) = hub(&dir, &cluster, &url, "1/2", &soon);
    assert_eq!(merged_by_until(&a0, 1, theirs), [1, 3, 5, 7], "the share is handed back");
    let log0 = std::fs::read_to_string(dir.join("hub-0of2.log")).unwrap();
    assert!(log0.contains("handed back"), "{log0}");
    same("the returned replica's records", &timeless(&settled(&a1, whole.len())), &timeless(&whole));
    // The capture again, after the hand back: each share merged by one replica only (replica 0
    // no longer merging replica 1's would count its requests twice).
    wait_agents(agents(&url, &client, &lab, &["--realtime"]));
    let twice: BTreeMap<String, usize> = timeless(&whole).into_iter().map(|(k, n)| (k, 2 * n)).collect();
    same("replica 0, two replays", &timeless(&settled(&a0, 2 * whole.len())), &twice);
    same("replica 1, two replays", &timeless(&settled(&a1, 2 * whole.len())), &twice);
    clean_up(&dir, vec![h0, h1, bus_server]);
}

#[test]
fn an_export_from_either_replica_has_the_packets_the_agents_keep() {
    let dir = tmp("export");
    let (client, lab) = split(&common::demo_dir().join("capture.pcapng"), |n| n == CLIENT_VETH, &dir);
    let cluster = two_node_cluster(&dir);
    let (bus_server, url) = bus(&dir);
    let (h0, _a0) = hub(&dir, &cluster, &url, "0/2", &["--capture-clock"]);
    let (h1, a1) = hub(&dir, &cluster, &url, "1/2", &["--capture-clock"]);
    // Agents that stay after their replay: their packet rings stay to be asked, over the bus.
    let staying: Vec<Running> = agents(&url, &client, &lab, &["--stay"]).into_iter().map(Running).collect();
    let whole = whole();
    let records = settled(&a1, whole.len());
    same("records", &shapes(&records), &shapes(&whole));
    let file = dir.join("export.pcapng");
    let out = Command::new("curl")
        .args(["-sf", "-H", "Authorization: Bearer s3cret", &format!("http://{a1}/api/v1/export?format=pcapng")])
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "the export: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&file).unwrap();
    for node in ["client-node", "lab-node"] {
        let said = format!("on node {node}");
        assert!(bytes.windows(said.len()).any(|w| w == said.as_bytes()), "an interface of {node}");
    }
    // Read back as one capture: the same requests the replicas merged from both nodes.
    let again = analyze(&[file.to_str().unwrap(), "--cluster", cluster.to_str().unwrap()]);
    same("the export's records", &shapes(&again), &shapes(&records));
    clean_up(&dir, staying.into_iter().chain([h0, h1, bus_server]).collect());
}

#[test]
fn a_sign_in_kept_on_the_bus_is_known_to_every_replica_and_never_in_the_clear() {
    use podtap::access::link::LinkKeys;
    use podtap::access::signin::{SignIn, SignIns};
    use podtap::ingest::bus::kept::{Kept, SIGNINS as BUCKET};
    type BusSignIns = Kept<SignIn>;

    let dir = tmp("signins");
    let (bus_server, url) = bus(&dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in = rt.enter();
    let keys = || LinkKeys::new(["the-link-key-all-replicas-share"]).unwrap();
    let (a, b) =
        rt.block_on(async { (BusSignIns::start(&url, &keys()).await, BusSignIns::start(&url, &keys()).await) });
    let (a, b) = (a.unwrap(), b.unwrap());
    let other = rt.block_on(BusSignIns::start(&url, &LinkKeys::new(["another-replicas-own-key"]).unwrap())).unwrap();
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let s = SignIn {
        id: "cookie-value-7f3a".into(),
        user: "alice".into(),
        groups: vec!["team-a".into()],
        created_s: 10,
        seen_s: 20,
        token_expires_s: 30,
        refresh_token: Some("refresh-secret-91c2".into()),
    };
    // Signed in at replica A: replica B knows it, refresh token and all.
    a.put(&s).unwrap();
    until("replica B sees the sign-in", &|| b.get(&s.id).unwrap().is_some());
    assert_eq!(b.get(&s.id).unwrap(), Some(s.clone()));
    assert_eq!(b.all().unwrap(), std::slice::from_ref(&s));
    // The bus holds neither the id (a cookie) nor the refresh token in the clear.
    let raw: Vec<(String, Vec<u8>)> = rt.block_on(async {
        let client = async_nats::connect(&url).await.unwrap();
        let kv = async_nats::jetstream::new(client).get_key_value(BUCKET).await.unwrap();
        let mut keys = kv.keys().await.unwrap();
        let mut out = Vec::new();
        while let Some(k) = futures_util::StreamExt::next(&mut keys).await {
            let k = k.unwrap();
            out.push((k.clone(), kv.get(&k).await.unwrap().unwrap().to_vec()));
        }
        out
    });
    assert_eq!(raw.len(), 1);
    for secret in ["cookie-value-7f3a", "refresh-secret-91c2", "alice"] {
        let (key, value) = &raw[0];
        assert!(!key.contains(secret), "{secret} in the key");
        assert!(!value.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} on the bus");
    }
    // A replica given other link keys cannot open it (and says so in its log); one whose keys
    // rotated (a new one first, the old one after) still does.
    let rotated = ["a-newer-key-put-first", "the-link-key-all-replicas-share"];
    let rotated = rt.block_on(BusSignIns::start(&url, &LinkKeys::new(rotated).unwrap())).unwrap();
    until("the replica with rotated keys sees the sign-in", &|| rotated.get(&s.id).unwrap().is_some());
    assert_eq!(other.get(&s.id).unwrap(), None);
    // Renewed at B (the last use moves on): A has it; signed out at A: gone at B too.
    let seen = SignIn { seen_s: 25, ..s.clone() };
    b.put(&seen).unwrap();
    until("replica A sees the renewal", &|| a.get(&s.id).unwrap().is_some_and(|x| x.seen_s == 25));
    assert!(a.delete(&s.id).unwrap());
    until("replica B sees the sign-out", &|| b.get(&s.id).unwrap().is_none());
    assert!(b.all().unwrap().is_empty());
    until("so does the one with rotated keys", &|| rotated.get(&s.id).unwrap().is_none());
    drop((a, b, other, rotated, _in));
    drop(rt);
    clean_up(&dir, vec![bus_server]);
}

/// `curl` of `path` at `addr` (with the admin token when `admin`, a `method`, a JSON `body`):
/// (status, body).
fn call(addr: &str, method: &str, path: &str, admin: bool, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    if admin {
        cmd.args(["-H", "Authorization: Bearer s3cret"]);
    }
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", body]);
    }
    let out = cmd.arg(format!("http://{addr}{path}")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.to_string())
}

/// `addr`'s answer to `path` once `done` holds of it (at most 20 s).
fn call_until(addr: &str, path: &str, admin: bool, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = call(addr, "GET", path, admin, None);
        if done(status, &body) || Instant::now() > deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_session_saved_at_one_replica_opens_at_the_other_and_goes_from_both() {
    let dir = tmp("sessions");
    let (client, lab) = split(&common::demo_dir().join("capture.pcapng"), |n| n == CLIENT_VETH, &dir);
    let cluster = two_node_cluster(&dir);
    let (bus_server, url) = bus(&dir);
    let key = ["--link-key", "the-link-key-all-replicas-share", "--capture-clock"];
    let (h0, a0) = hub(&dir, &cluster, &url, "0/2", &key);
    let (h1, a1) = hub(&dir, &cluster, &url, "1/2", &key);
    wait_agents(agents(&url, &client, &lab, &[]));
    let whole = whole();
    settled(&a0, whole.len());
    // Saved at replica 0, with every record of the capture.
    let (status, saved) = call(&a0, "POST", "/api/v1/sessions", true, Some(r#"{"title":"both nodes"}"#));
    assert_eq!(status, 201, "{saved}");
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    let link = saved["url"].as_str().unwrap();
    let id = link.strip_prefix("/s/").unwrap().split_once('?').unwrap().0;
    let q = format!("session={id}&{}", link.split_once('?').unwrap().1);
    // Replica 1 lists it and opens it through its link: the same records.
    let (_, listed) = call_until(&a1, "/api/v1/sessions", true, |_, b| b.contains(id));
    assert!(listed.contains("both nodes"), "{listed}");
    let path = format!("/api/v1/sessions/{id}/records?kind=all&limit=10000&from=0&{q}");
    let (status, body) = call(&a1, "GET", &path, false, None);
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap();
    same("the session at replica 1", &shapes(&records), &shapes(&whole));
    // Deleted at replica 1: gone from replica 0's list, and its link refused there.
    assert_eq!(call(&a1, "DELETE", &format!("/api/v1/sessions/{id}"), true, None).0, 204);
    let (_, listed) = call_until(&a0, "/api/v1/sessions", true, |_, b| !b.contains(id));
    assert!(!listed.contains(id), "{listed}");
    assert_ne!(call(&a0, "GET", &path, false, None).0, 200);
    clean_up(&dir, vec![h0, h1, bus_server]);
}

#[test]
fn a_live_link_made_at_one_replica_opens_at_the_other_and_its_revocation_holds_at_both() {
    let dir = tmp("links");
    let cluster = two_node_cluster(&dir);
    let (bus_server, url) = bus(&dir);
    let key = ["--link-key", "the-link-key-all-replicas-share"];
    let (h0, a0) = hub(&dir, &cluster, &url, "0/2", &key);
    let (h1, a1) = hub(&dir, &cluster, &url, "1/2", &key);
    let (status, made) = call(&a0, "POST", "/api/v1/links", true, Some(r#"{"filter":"ns:shop","ttl_s":600}"#));
    assert_eq!(status, 201, "{made}");
    let made: serde_json::Value = serde_json::from_str(&made).unwrap();
    let (id, link) = (made["id"].as_str().unwrap(), made["url"].as_str().unwrap());
    let q = format!("link={id}&{}", link.split_once('?').unwrap().1);
    // Within moments replica 1 knows it: the link opens there, narrowed to its filter.
    let opened = call_until(&a1, &format!("/api/v1/access?{q}"), false, |status, _| status == 200);
    assert_eq!(opened.0, 200, "the link at replica 1: {}", opened.1);
    assert!(opened.1.contains("ns:shop"), "{}", opened.1);
    assert_eq!(call(&a1, "GET", link, false, None).0, 200, "the link's page at replica 1");
    let listed = call(&a1, "GET", "/api/v1/links", true, None).1;
    assert!(listed.contains(id), "replica 1 lists it: {listed}");
    // Revoked at replica 1: refused at replica 0 too, as revoked.
    assert_eq!(call(&a1, "DELETE", &format!("/api/v1/links/{id}"), true, None).0, 204);
    let refused = call_until(&a0, &format!("/api/v1/map?{q}"), false, |status, _| status == 403);
    assert_eq!(refused.0, 403, "{}", refused.1);
    assert!(refused.1.contains("revoked"), "{}", refused.1);
    assert_eq!(call(&a0, "GET", "/api/v1/links", true, None).1.trim(), "[]");
    // The bus stopped: each hub says so on `/healthz`, not the last thing it saw.
    drop(bus_server);
    let (_, health) = call_until(&a0, "/healthz", true, |_, b| b.contains("unreachable_s"));
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert!(health["bus"]["unreachable_s"].is_number(), "{health}");
    clean_up(&dir, vec![h0, h1]);
}
