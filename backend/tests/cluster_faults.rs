//! The API server failing podtap on the real cluster (`cargo xtask cluster up --nodes 2`, in both
//! kube-proxy modes): the seed's traffic while
//!
//! 1. the hub cannot reach the API server for its first 10 s (its kubeconfig points at a relay on
//!    its node that the test starts only then): records wait, and are named as of their time once
//!    the lists come;
//! 2. the API server stopped mid-run, etcd written to and compacted past every resourceVersion
//!    podtap holds, the API server started again: podtap's watches find their resourceVersion
//!    gone (`410 Gone`), list again, and say so;
//! 3. a pod restarts afterwards and its address passes to another pod.
//!
//! Names stay right throughout: every pod address in every record is the pod that held it at the
//! record's time (from a watch of the Pods), and every count equals the apps' logs (and, for
//! probes, the prober's: a probe a stopping pod never read is on the wire all the same).
//!
//! The test command runs it twice in iptables mode: with one hub, and (`PODTAP_LAB_BUS=1`) with
//! the agents on a bus and two hub replicas, each with its own reflectors through the same late,
//! then restarted, API server; the checks ask replica 0.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::lab_cluster::*;
use podtap_shared::ViaKind;

/// Where the hub's kubeconfig points, on lab-node-1: nothing listens there for 10 s.
const LATE_API: &str = "127.0.0.1:16443";

/// The admin kubeconfig with the server moved to `LATE_API`.
fn late_kubeconfig(c: &Cluster) -> PathBuf {
    let text = std::fs::read_to_string(c.dir.join("kubeconfig")).unwrap();
    assert!(text.contains("https://127.0.0.1:6443"), "the admin kubeconfig's server");
    let path = c.out.join("late.kubeconfig");
    std::fs::write(&path, text.replace("https://127.0.0.1:6443", &format!("https://{LATE_API}"))).unwrap();
    path
}

/// `lab-node relay` on lab-node-1 from `LATE_API` to the API server (through the cluster's unix
/// socket, as the nodes' own relays do).
fn open_the_way(c: &Cluster) -> common::Running {
    let relay = PathBuf::from(std::env::var("PODTAP_KUBECTL").unwrap()).with_file_name("lab-node");
    let args = [
        "relay".to_string(),
        format!("--listen=tcp:{LATE_API}"),
        format!("--to=unix:{}", c.dir.join("api.sock").display()),
    ];
    spawn_in("ptk-lab-node-1", &relay, &args, &[], &c.out.join("late-relay.err"))
}

/// The API server's pid, from `DIR/pids`.
fn apiserver_pid(dir: &Path) -> i32 {
    let pids = std::fs::read_to_string(dir.join("pids")).unwrap();
    pids.lines().find_map(|l| l.strip_prefix("kube-apiserver ")).unwrap().trim().parse().unwrap()
}

/// One write to etcd beside Kubernetes' keys (so its newest revision is newer than anything a
/// watch has seen), then a compaction to that revision (through etcd's JSON gateway): every
/// resourceVersion a watch could resume from is gone.
fn compact_etcd() -> u64 {
    let post = |path: &str, body: &str| {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "10", "-X", "POST", "-d", body])
            .arg(format!("http://127.0.0.1:2379{path}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "etcd {path}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // key "/podtap-lab/compaction", value "1"
    let put = post("/v3/kv/put", r#"{"key": "L3BvZHRhcC1sYWIvY29tcGFjdGlvbg==", "value": "MQ=="}"#);
    let revision: u64 = put["header"]["revision"].as_str().unwrap().parse().unwrap();
    post("/v3/kv/compaction", &format!(r#"{{"revision": "{revision}", "physical": true}}"#));
    revision
}

/// How long the API server may take to stop before it is killed.
const APISERVER_GRACE: Duration = Duration::from_secs(10);

/// Ends the API server, runs `meanwhile`, and starts it again with the same command line (its log
/// appended to, its pid written back for `cluster down`); returns once it is ready.
#[expect(clippy::zombie_processes, reason = "the API server outlives this test: `cluster down` ends it")]
fn restart_apiserver<T>(c: &Cluster, meanwhile: impl FnOnce() -> T) -> T {
    let pid = apiserver_pid(&c.dir);
    let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // Gone, or a zombie: `cargo xtask test` started it and reaps it only when that run ends.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
    };
    // As kubelet stops a static pod: SIGTERM, then SIGKILL after a grace period. Left alone, the
    // API server drains a request in flight for up to a minute (its `--request-timeout`), and an
    // outage that long has the node lifecycle controller mark every node and pod NotReady: a
    // fault of its own, not this one.
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let asked = Instant::now();
    while !gone() && asked.elapsed() < APISERVER_GRACE {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !gone() {
        eprintln!("faults: the API server still draining after {APISERVER_GRACE:?}: SIGKILL");
        assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    }
    until("the API server gone", gone);
    let done = meanwhile();
    let log = std::fs::OpenOptions::new().append(true).open(c.dir.join("logs/kube-apiserver.log")).unwrap();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().unwrap();
    let pids = std::fs::read_to_string(c.dir.join("pids")).unwrap();
    let pids = pids.replace(&format!("kube-apiserver {pid}\n"), &format!("kube-apiserver {}\n", child.id()));
    std::fs::write(c.dir.join("pids"), pids).unwrap();
    until("the API server ready again", || {
        c.command(&["get", "--raw", "/readyz"]).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success()
    });
    done
}

#[test]
#[ignore = "needs the real cluster: cargo xtask test runs it after `cluster up --nodes 2`"]
fn names_stay_right_while_the_api_server_is_late_restarted_and_compacted() {
    let c = Cluster::from_env("faults");
    let nodes = node_names(&c);
    let addresses = Arc::new(Mutex::new(Addresses::default()));
    let _watch = watch_pods(&c, addresses.clone());

    // 1. The hub starts with no way to the API server; its agents capture from the start.
    let started = Instant::now();
    let _podtap = start_podtap(&c, &nodes, &late_kubeconfig(&c));
    let captures = start_captures(&c, &nodes);
    c.kubectl(&["apply", "-f", &repo().join("end2end/k8s/scenarios/seed.yaml").display().to_string()]);
    rollout(&c, "default", "web");
    ext(&c, 1, 20);
    // The scenario's 10 s, not a wait for anything: the API server stays out of reach until then.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    let h = health().expect("the hub answers without the API server");
    assert_eq!(h["status"], "starting", "no names yet: {h}");
    assert!(h["records"].as_u64().unwrap_or(0) == 0, "records are held until names come: {h}");
    let _relay = open_the_way(&c);
    until("the hub's names listed, 10 s late", names_listed);

    // 2. Mid-run, with the outside client calling: etcd compacted, the API server restarted.
    let hub_err = c.out.join("hub.err");
    let relisted = |what: &str| std::fs::read_to_string(&hub_err).unwrap_or_default().matches(what).count();
    let before = relisted("listed again");
    let pods_before = relisted("pods: listed again");
    let mut calling = ext_client(&c, 2, 60);
    // While it is down, etcd moves past every resourceVersion podtap's watches hold and forgets
    // them: resuming, each is told 410 Gone.
    let revision = restart_apiserver(&c, compact_etcd);
    assert!(calling.wait().unwrap().success(), "the outside client through the restart");
    until("podtap's watches listing again after 410 Gone", || relisted("listed again") > before);
    until("the hub's names listed again", names_listed);
    // The pod restart comes after podtap's pods are listed again. (A pod whose address passes to
    // another while the watch is away is a fault podtap does not name exactly yet: it learns the
    // old pod's end only at the relist, so the new pod's first connections in that gap keep the
    // old name. README, "Not there".)
    until("podtap's pods listed again", || relisted("pods: listed again") > pods_before);

    // 3. Then a pod restarts, a Job calls the ClusterIP from an address another pod held.
    let node = restart_a_web_pod(&c);
    ext(&c, 3, 20);
    let client = c.run_client("faults-client-1", &node);
    finish_and_check(&c, &addresses, &[("faults-client-1", &client, ViaKind::ClusterIp)], 3, Some(captures));
    eprintln!(
        "faults: etcd compacted at revision {revision}; {} watches listed again",
        relisted("listed again") - before
    );
}
