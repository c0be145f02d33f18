//! The lab's real cluster (`cargo xtask cluster up --nodes 2`) as the cluster tests drive it:
//! kubectl with the admin kubeconfig, podtap's hub on lab-node-1 and an agent per node (each in
//! its node's network namespace), the seed's clients, and the truth — the apps' logs, and a watch
//! of the Pods that says which pod held which address when — with the checks every scenario on
//! it must pass.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use podtap_shared::record::{EndpointKind, Record, ViaKind};
use serde_json::Value;

use super::Running;

pub const TOKEN: &str = "seed-hub-token";
pub const HUB_NODE: &str = "lab-node-1";
pub const HUB_IP: &str = "192.168.77.11";
/// The wire between the lab's nodes (and its external client), as a capture filter names it.
const NODE_NET: &str = "net 192.168.77.0/24";
pub const HUB_API: &str = "127.0.0.1:18480";
pub const HUB_INGEST: u16 = 18481;
pub const NODE_PORT: u16 = 30007;
/// The bus (`nats-server`) on lab-node-1, and the API of the second hub replica beside the first.
pub const BUS_URL: &str = "nats://192.168.77.11:4222";
pub const REPLICA_API: &str = "127.0.0.1:18482";

pub struct Cluster {
    pub dir: PathBuf,
    pub kubectl: PathBuf,
    pub out: PathBuf,
    /// iptables or nftables
    pub mode: String,
}

impl Cluster {
    pub fn from_env(scenario: &str) -> Cluster {
        let dir = PathBuf::from(
            std::env::var("PODTAP_CLUSTER_DIR").expect("PODTAP_CLUSTER_DIR: run through `cargo xtask test`"),
        );
        let kubectl = PathBuf::from(std::env::var("PODTAP_KUBECTL").expect("PODTAP_KUBECTL: the built kubectl"));
        let mode = std::fs::read_to_string(dir.join("proxy-mode")).unwrap_or_default();
        // One per scenario and mode: the test command's next run in the other mode keeps this one.
        let bus = if on_bus() { "-bus" } else { "" };
        let out = dir.join(format!("{scenario}{bus}-{mode}"));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let c = Cluster { dir, kubectl, out, mode };
        // The apps' logs of an earlier scenario on this cluster are not this one's truth, once its
        // pods are gone: a pod still running writes on to a removed file, and a new Service's
        // selector takes it in (CI's run of 4e26e12: web pods a background delete left to the
        // garbage collector answered calls no log held). Every scenario deletes its own in the
        // foreground; a failed one's are left to the next run's own start.
        c.until_none_terminating();
        for e in std::fs::read_dir(c.dir.join("lab/logs")).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        c
    }

    /// Waits (`until`'s 90 s at most) until no pod in `default`, where every scenario runs, is
    /// being deleted: an earlier scenario's are gone.
    pub fn until_none_terminating(&self) {
        until("an earlier scenario's pods to go", || {
            let pods = self.kubectl_json(&["get", "pods", "-n", "default"]);
            pods["items"]
                .as_array()
                .is_none_or(|items| items.iter().all(|p| p["metadata"]["deletionTimestamp"].is_null()))
        });
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.arg(format!("--kubeconfig={}", self.dir.join("kubeconfig").display())).args(args);
        c
    }

    /// `kubectl ARGS` (its output), failing the test with kubectl's message.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("kubectl runs");
        assert!(out.status.success(), "kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kubectl_json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.kubectl(&[args, &["-o", "json"]].concat())).unwrap()
    }

    /// `kubectl apply` of YAML text.
    pub fn apply(&self, yaml: &str) {
        let mut child = self.command(&["apply", "-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), yaml.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "kubectl apply");
    }

    /// The lab's logs (the apps', as pods write them under /lab/logs).
    pub fn logs(&self) -> PathBuf {
        self.dir.join("lab/logs")
    }

    /// A seed-client Job pinned to `node`, named `name`, logging to `/lab/logs/NAME.log`.
    pub fn run_client(&self, name: &str, node: &str) -> String {
        self.run_job("seed-client", name, node, &[])
    }

    /// The Job of `end2end/k8s/scenarios/TEMPLATE.yaml` (named TEMPLATE, logging to
    /// `/lab/logs/TEMPLATE.log`, on node `NODE`) as `name` on `node`, with `more` replaced too;
    /// waits for it to complete and returns its pod's name.
    pub fn run_job(&self, template: &str, name: &str, node: &str, more: &[(&str, &str)]) -> String {
        let path = repo().join(format!("end2end/k8s/scenarios/{template}.yaml"));
        let mut yaml = std::fs::read_to_string(path)
            .unwrap()
            .replace(&format!("name: {template}\n"), &format!("name: {name}\n"))
            .replace(&format!("{template}.log"), &format!("{name}.log"))
            .replace("hostname: NODE", &format!("hostname: {node}"));
        for (from, to) in more {
            yaml = yaml.replace(from, to);
        }
        self.apply(&yaml);
        self.kubectl(&["wait", "--for=condition=Complete", &format!("job/{name}"), "--timeout=90s"]);
        let pods = self.kubectl_json(&["get", "pods", "-l", &format!("job-name={name}")]);
        pods["items"][0]["metadata"]["name"].as_str().unwrap().to_string()
    }

    /// The addresses of web's pods now, by node.
    pub fn web_pods(&self) -> Vec<(String, String)> {
        let web = self.kubectl_json(&["get", "pods", "-l", "app=web"]);
        let items = web["items"].as_array().unwrap().iter();
        items
            .map(|p| {
                (
                    p["status"]["podIP"].as_str().unwrap().to_string(),
                    p["spec"]["nodeName"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// Whether a record's `via` is the way a client's calls went. A call straight to a pod on the
/// client's own node may be `unknown` rather than `direct`: its connection's first request can be
/// decided from the server's veth before the client's copy of its packets is read (a known limit,
/// issue 22's note); it is never counted through a Service.
fn same_way(seen: ViaKind, went: ViaKind) -> bool {
    seen == went || (went == ViaKind::Direct && seen == ViaKind::Unknown)
}

/// `kubectl rollout status` of a Deployment, then until every node's kube-proxy has written each
/// of its pods' addresses into its rules (iptables or nftables): Ready pods are not yet reachable
/// through a Service until kube-proxy's next sync.
pub fn rollout(c: &Cluster, namespace: &str, deployment: &str) {
    c.kubectl(&["rollout", "status", "-n", namespace, &format!("deployment/{deployment}"), "--timeout=90s"]);
    let spec = c.kubectl_json(&["get", "deployment", "-n", namespace, deployment]);
    let selector: Vec<String> = spec["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    let pods = c.kubectl_json(&["get", "pods", "-n", namespace, "-l", &selector.join(",")]);
    let ips: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect();
    let rules = |ns: &str| {
        let (program, args): (&str, &[&str]) = match c.mode.as_str() {
            "nftables" => ("nft", &["list", "table", "ip", "kube-proxy"]),
            _ => ("iptables-save", &["-t", "nat"]),
        };
        let out = Command::new("ip").args(["netns", "exec", ns, program]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Exactly the rollout's pods: a pod deleted before it (a restart) must be out of the rules
    // too, or a connection may still be sent to its address, where nobody answers.
    let port = spec["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"].as_u64().unwrap();
    let wanted: BTreeSet<String> = ips.iter().map(|ip| format!("{ip}:{port}")).collect();
    for node in node_names(c) {
        let ns = format!("ptk-{node}");
        until(&format!("kube-proxy on {node} routing to exactly {deployment}'s pods {wanted:?}"), || {
            endpoints_in(&rules(&ns), port) == wanted
        });
    }
    // The EndpointSlices as they are now: with those of later rollouts, every backend a Service
    // had during the run (`cluster_list`).
    let slices = c.kubectl(&["get", "endpointslices", "-A", "-o", "json"]);
    std::fs::write(c.out.join(format!("slices-{}.json", now_us())), slices).unwrap();
}

/// A cluster List for `podtap analyze --cluster`, from the API server's own objects: every pod
/// the watch showed (deleted ones as they went), every EndpointSlice `rollout` saw, and the
/// Services, nodes, ReplicaSets and Jobs now.
pub fn cluster_list(c: &Cluster, addresses: &Addresses) -> PathBuf {
    let mut items: Vec<Value> = addresses.pods.values().cloned().collect();
    let now = c.kubectl_json(&["get", "services,nodes,replicasets,jobs,namespaces", "-A"]);
    items.extend(now["items"].as_array().unwrap().iter().cloned());
    for e in std::fs::read_dir(&c.out).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("slices-") {
            let list: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            items.extend(list["items"].as_array().unwrap().iter().cloned());
        }
    }
    let path = c.out.join("cluster.json");
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    std::fs::write(&path, list.to_string()).unwrap();
    path
}

/// Capture files taken on every node while a scenario runs, the ways users take them:
/// `podtap capture` (pcapng, every pod interface and eth0, as the agents capture), the same as
/// one classic pcap (`mergecap -F pcap`: interface names gone), and `tcpdump -i any` (Linux
/// cooked v2: every packet once per interface it crossed; the hub's and the API server's traffic
/// filtered out, as a user leaves out what is not theirs). The filter names whole conversations,
/// never a bare port: a NodePort call's SNAT'd leg (node address → pod) takes a random source
/// port (kube-proxy masquerades `fully-random`), and one took 6443, the API server's.
/// The API server (through the node's relay) and the hub's API are on loopback; agents reach
/// the hub's ingest from one node's address to another's.
pub struct Captures {
    running: Vec<Running>,
    nodes: Vec<String>,
    out: PathBuf,
}

pub fn start_captures(c: &Cluster, nodes: &[String]) -> Captures {
    let podtap = PathBuf::from(env!("CARGO_BIN_EXE_podtap"));
    let mut running = Vec::new();
    for node in nodes {
        let (ns, file) = (format!("ptk-{node}"), |name: &str| c.out.join(name).display().to_string());
        let err = c.out.join(format!("capture-{node}.err"));
        let args = ["capture", "--pod-interfaces", "-i", "eth0", "-w", &file(&format!("capture-{node}.pcapng"))];
        running.push(spawn_in(&ns, &podtap, &args.map(String::from), &[], &err));
        until("podtap capture on eth0", || {
            std::fs::read_to_string(&err).is_ok_and(|t| t.contains("capturing on eth0 "))
        });
        let dump_err = c.out.join(format!("any-{node}.err"));
        let filter = format!("not (host 127.0.0.1 or (tcp port {HUB_INGEST} and src {NODE_NET} and dst {NODE_NET}))");
        let args = ["-i", "any", "-y", "LINUX_SLL2", "-U", "-w", &file(&format!("any-{node}.pcap")), &filter];
        running.push(spawn_in(&ns, Path::new("/usr/bin/tcpdump"), &args.map(String::from), &[], &dump_err));
        until("tcpdump -i any", || std::fs::read_to_string(&dump_err).is_ok_and(|t| t.contains("listening on any")));
    }
    Captures { running, nodes: nodes.to_vec(), out: c.out.clone() }
}

impl Captures {
    /// Stops every capture (SIGTERM: the files end cleanly) and returns, per format, its files as
    /// `FILE@NODE` arguments for `podtap analyze`.
    pub fn stop(self) -> Vec<(&'static str, Vec<String>)> {
        for r in &self.running {
            let _ = Command::new("kill").args(["-TERM", &r.0.id().to_string()]).status();
        }
        for mut r in self.running {
            let _ = r.0.wait();
        }
        let at = |name: String, node: &str| format!("{}@{node}", self.out.join(name).display());
        for node in &self.nodes {
            let (ng, classic) =
                (self.out.join(format!("capture-{node}.pcapng")), self.out.join(format!("capture-{node}.pcap")));
            let ok = Command::new("mergecap").arg("-F").arg("pcap").arg("-w").arg(&classic).arg(&ng).status().unwrap();
            assert!(ok.success(), "mergecap -F pcap {}", ng.display());
        }
        let each = |f: &dyn Fn(&str) -> String| self.nodes.iter().map(|n| at(f(n), n)).collect::<Vec<_>>();
        vec![
            ("pcapng", each(&|n| format!("capture-{n}.pcapng"))),
            ("classic pcap", each(&|n| format!("capture-{n}.pcap"))),
            ("tcpdump -i any", each(&|n| format!("any-{n}.pcap"))),
        ]
    }
}

/// `podtap analyze --format jsonl` of `files` (`FILE@NODE`) named with `cluster`: its records.
pub fn analyze_files(files: &[String], cluster: &Path) -> Vec<Record> {
    let out = Command::new(env!("CARGO_BIN_EXE_podtap"))
        .args(["analyze", "--format", "jsonl", "--progress", "never"])
        .args(files)
        .arg("--cluster")
        .arg(cluster)
        .output()
        .unwrap();
    assert!(out.status.success(), "podtap analyze {files:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Every `IP:PORT` a kube-proxy ruleset sends connections to for target port `port`: iptables'
/// `--to-destination IP:PORT`, nftables' `dnat to IP:PORT` and its maps' `IP . PORT`.
fn endpoints_in(rules: &str, port: u64) -> BTreeSet<String> {
    let port = port.to_string();
    let tokens: Vec<&str> = rules
        .split(|ch: char| ch.is_whitespace() || matches!(ch, ',' | '{' | '}' | ';' | '"'))
        .filter(|t| !t.is_empty())
        .collect();
    let is_ip = |t: &str| t.parse::<std::net::Ipv4Addr>().is_ok();
    let mut out = BTreeSet::new();
    for (i, t) in tokens.iter().enumerate() {
        if let Some((ip, p)) = t.rsplit_once(':')
            && p == port
            && is_ip(ip)
        {
            out.insert(t.to_string());
        } else if is_ip(t) && tokens.get(i + 1) == Some(&".") && tokens.get(i + 2) == Some(&port.as_str()) {
            out.insert(format!("{t}:{port}"));
        }
    }
    out
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// `ip netns exec NS PROGRAM ARGS`, its error output in `OUT/LOG`.
pub fn spawn_in(ns: &str, program: &Path, args: &[String], env: &[(&str, &Path)], log: &Path) -> Running {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program).args(args).stdout(Stdio::null());
    c.stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        c.env(k, v);
    }
    Running(c.spawn().expect("ip netns exec"))
}

/// Waits (up to 90 s) for `ok`, failing with `what`.
pub fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(90), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The hub's records (`kind=all`) once `count` of them reaches `want` and the hub's total held
/// still between two looks 0.3 s apart (a condition, not a sleep). After 60 s it fails, saying how
/// many of `what` it had, the last page written to OUT/hub-records.json.
pub fn hub_page_when(c: &Cluster, what: &str, want: usize, count: impl Fn(&Value) -> usize) -> Value {
    let (mut last, start) = (None, Instant::now());
    loop {
        let page = hub("/api/v1/records?limit=10000&kind=all");
        let have = page.as_ref().map_or(0, &count);
        let total = page.as_ref().and_then(|p| p["total"].as_u64());
        match page {
            Some(p) if have >= want && last == total => return p,
            Some(p) if start.elapsed() > Duration::from_secs(60) => {
                std::fs::write(c.out.join("hub-records.json"), p.to_string()).unwrap();
            }
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(60) {
            panic!("after 60 s the hub holds {have} {what} (wanted {want})");
        }
        last = total;
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// GET on the hub's API (it listens on the loopback of the hub's node): the JSON of a 2xx answer.
pub fn hub(path: &str) -> Option<Value> {
    hub_get(path, true)
}

/// GET on the hub's API; `ok_only`: nothing unless the status is 2xx.
fn hub_get(path: &str, ok_only: bool) -> Option<Value> {
    hub_at(HUB_API, path, ok_only)
}

/// GET on the API of the hub at `api` on lab-node-1 (a replica's: `REPLICA_API`).
pub fn hub_at(api: &str, path: &str, ok_only: bool) -> Option<Value> {
    let out = Command::new("ip")
        .args(["netns", "exec", "ptk-lab-node-1", "curl", if ok_only { "-sf" } else { "-s" }, "--max-time", "5", "-H"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .arg(format!("http://{api}{path}"))
        .output()
        .ok()?;
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

/// Every pod address the API server gave, as a watch saw it: (address, ns/name, from, to) in
/// microseconds; `to` is when the pod finished or was deleted (u64::MAX while it runs).
/// With the last state of every pod the watch showed (a deleted pod's as it went), by uid: the
/// pods of a cluster List for `podtap analyze`.
#[derive(Default)]
pub struct Addresses {
    pub held: Vec<(String, String, u64, u64)>,
    pub pods: BTreeMap<String, Value>,
}

impl Addresses {
    pub fn see(&mut self, kind: &str, pod: &Value, at: u64) {
        if let Some(uid) = pod["metadata"]["uid"].as_str() {
            self.pods.insert(uid.to_string(), pod.clone());
        }
        let name =
            format!("{}/{}", pod["metadata"]["namespace"].as_str().unwrap(), pod["metadata"]["name"].as_str().unwrap());
        let ip = pod["status"]["podIP"].as_str().unwrap_or("").to_string();
        let over =
            kind == "DELETED" || ["Succeeded", "Failed"].contains(&pod["status"]["phase"].as_str().unwrap_or(""));
        let open = self.held.iter_mut().find(|h| h.1 == name && h.3 == u64::MAX);
        match open {
            Some(h) if over || h.0 != ip => h.3 = at,
            Some(_) => return,
            None => {}
        }
        if !ip.is_empty() && !over {
            // A pod holds its address from its start, which its node may report seconds later
            // (kubelet's `startTime`, whole seconds): not before the address's last holder let
            // it go.
            let started = pod["status"]["startTime"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
            let freed = self.held.iter().filter(|h| h.0 == ip).map(|h| h.3).max().unwrap_or(0);
            let from = started.map_or(at, |t| (t.as_microsecond() as u64).max(freed).min(at));
            self.held.push((ip, name, from, u64::MAX));
        }
    }

    /// The pod that held `ip` at `t`.
    pub fn holder(&self, ip: &str, t: u64) -> Option<&str> {
        self.held.iter().find(|h| h.0 == ip && h.2 <= t && t < h.3).map(|h| h.1.as_str())
    }

    /// The pods a List's whole-second timestamps allow as holders of `ip` at `t`: every holder
    /// whose time, widened to whole seconds, includes it.
    pub fn holders_in_second(&self, ip: &str, t: u64) -> Vec<&str> {
        let floor = |us: u64| us / 1_000_000 * 1_000_000;
        self.held
            .iter()
            .filter(|h| h.0 == ip && floor(h.2) <= t && (h.3 == u64::MAX || t < floor(h.3) + 1_000_000))
            .map(|h| h.1.as_str())
            .collect()
    }

    /// Addresses held by more than one pod over the run.
    pub fn reused(&self) -> Vec<String> {
        let mut by_ip: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
        for h in &self.held {
            by_ip.entry(&h.0).or_default().insert(&h.1);
        }
        by_ip.into_iter().filter(|(_, pods)| pods.len() > 1).map(|(ip, pods)| format!("{ip}: {pods:?}")).collect()
    }
}

/// `kubectl get pods -A --watch` for the whole run, each event stamped when it arrived; started
/// again when it ends (the API server restarted: it lists everything anew, which changes nothing
/// in `Addresses`). Stopped on drop.
pub struct PodWatch {
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn watch_pods(c: &Cluster, into: Arc<Mutex<Addresses>>) -> PodWatch {
    let (stop, child) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(None)));
    let mut command = c.command(&["get", "pods", "-A", "--watch", "--output-watch-events", "-o", "json"]);
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let (s, ch) = (stop.clone(), child.clone());
    std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            let Ok(mut kubectl) = command.spawn() else { return };
            let stdout = kubectl.stdout.take().unwrap();
            *ch.lock().unwrap() = Some(kubectl);
            for event in serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>() {
                let Ok(event) = event else { break };
                into.lock().unwrap().see(event["type"].as_str().unwrap_or(""), &event["object"], now_us());
            }
            if let Some(mut k) = ch.lock().unwrap().take() {
                let _ = k.wait();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    PodWatch { stop, child }
}

/// Each JSON line of `LOGS/NAME*.log`, by file name.
pub fn log_lines(dir: &Path, prefix: &str) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_prefix(prefix).and_then(|r| r.strip_suffix(".log")) {
            let text = std::fs::read_to_string(e.path()).unwrap();
            out.insert(stem.to_string(), text.lines().map(|l| serde_json::from_str(l).unwrap()).collect());
        }
    }
    out
}

/// A log line's socket (its `ip` and `port` fields) as a key.
fn socket(ip: &Value, port: &Value) -> (String, u64) {
    (ip.as_str().unwrap_or("").to_string(), port.as_u64().unwrap_or(0))
}

/// What the web pods served, by pod (`web-STEM.log`'s stem): every line their app logged, and
/// every probe a node's prober wrote whole to one of them that got no answer and no app logged —
/// a stopping pod's, never read. The wire carries its request, so podtap shows it: for probes
/// the truth is the prober's own log (`probes-NODE.log`, kubelet's prober in lab-node), which
/// must hold every probe the apps logged.
pub fn web_truth(c: &Cluster) -> BTreeMap<String, Vec<Value>> {
    // The probers keep probing: a probe an app has just logged is in its prober's log once the
    // answer is back (fresh clone 21b read them in between). Until every one is, 10 s at most.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut web, probes) = loop {
        let web = log_lines(&c.logs(), "web-");
        let probes: Vec<Value> = log_lines(&c.logs(), "probes-").into_values().flatten().collect();
        let unlogged = web.iter().find_map(|(stem, lines)| unsent_probe(stem, lines, &probes).map(|l| (stem, l)));
        match unlogged {
            None => break (web, probes),
            Some(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(200))
            }
            Some((stem, l)) => panic!(
                "web-{stem} logged a probe from {:?} the probers did not log: {l}",
                socket(&l["peer_ip"], &l["peer_port"])
            ),
        }
    };
    for p in &probes {
        let Some(stem) = p["pod"].as_str().and_then(|s| s.strip_prefix("default/web-")) else { continue };
        if p["wrote"] != true || p["answered"] == true {
            continue;
        }
        let peer = socket(&p["local_ip"], &p["local_port"]);
        let lines = web.entry(stem.to_string()).or_default();
        if !lines.iter().any(|l| socket(&l["peer_ip"], &l["peer_port"]) == peer) {
            eprintln!("{}: a probe written to web-{stem} and never answered: {p}", c.mode);
            lines.push(serde_json::json!({
                "ts": p["ts"], "user_agent": "kube-probe/ (unanswered)", "peer_ip": peer.0, "peer_port": peer.1,
            }));
        }
    }
    web
}

/// The first probe web pod `stem` logged (`lines`) that no prober's line accounts for. A probe is
/// the prober's by its socket (`local_ip:local_port` = the app's peer) — or, when conntrack gave
/// it another source port on the way, by pod, address and the nearest time (under a second). A
/// NodePort call masqueraded to the node's bridge address with a `random-fully` port holds a
/// conntrack entry whose reply would clash with a probe from that same port, so the probe leaves
/// with another (a fresh clone's app logged a probe from port 1306). Each prober's line accounts
/// for one probe.
pub fn unsent_probe<'a>(stem: &str, lines: &'a [Value], probes: &[Value]) -> Option<&'a Value> {
    let pod = format!("default/web-{stem}");
    let mine: Vec<&Value> = probes.iter().filter(|p| p["pod"] == pod.as_str()).collect();
    let by_socket: HashSet<(String, u64)> = mine.iter().map(|p| socket(&p["local_ip"], &p["local_port"])).collect();
    let peers: HashSet<(String, u64)> = lines.iter().map(|l| socket(&l["peer_ip"], &l["peer_port"])).collect();
    // The prober's lines whose socket the app never logged: those a port change may hide.
    let mut moved: Vec<&Value> =
        mine.iter().copied().filter(|p| !peers.contains(&socket(&p["local_ip"], &p["local_port"]))).collect();
    let probe = |l: &&Value| l["user_agent"].as_str().unwrap_or("").starts_with("kube-probe/");
    lines.iter().filter(probe).find(|l| {
        if by_socket.contains(&socket(&l["peer_ip"], &l["peer_port"])) {
            return false;
        }
        let at = l["ts"].as_f64().unwrap_or(0.0);
        let gap = |p: &Value| (p["ts"].as_f64().unwrap_or(f64::MAX) - at).abs();
        let nearest = (0..moved.len())
            .filter(|&i| moved[i]["local_ip"] == l["peer_ip"] && gap(moved[i]) < 1.0)
            .min_by(|&a, &b| gap(moved[a]).total_cmp(&gap(moved[b])));
        match nearest {
            Some(i) => {
                moved.remove(i);
                false
            }
            None => true,
        }
    })
}

/// The hub (on lab-node-1, with `kubeconfig`) and one agent per node, each following pod
/// interfaces and eth0; waits until every agent is capturing and connected. On the bus
/// (`PODTAP_LAB_BUS`): the bus, two hub replicas (replica 0 is `hub`, on `HUB_API`, its errors in
/// `hub.err`) and agents publishing to it.
pub struct Podtap {
    pub hub: Running,
    pub agents: Vec<Running>,
    /// On the bus: the bus and the second replica.
    pub rest: Vec<Running>,
}

/// Whether the scenario runs with two hub replicas on a bus (`PODTAP_LAB_BUS=1`, which the test
/// command sets for a second run of `cluster_faults.rs` and `cluster_outages.rs`).
pub fn on_bus() -> bool {
    std::env::var_os("PODTAP_LAB_BUS").is_some_and(|v| v == "1")
}

pub fn node_names(c: &Cluster) -> Vec<String> {
    let nodes = c.kubectl_json(&["get", "nodes"]);
    let names: Vec<String> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.len() >= 2, "the cluster scenarios need two lab nodes: {names:?}");
    names
}

pub fn start_podtap(c: &Cluster, nodes: &[String], kubeconfig: &Path) -> Podtap {
    if on_bus() {
        let bus = start_bus(c);
        let hub = start_replica(c, kubeconfig, 0, "hub.err");
        let second = start_replica(c, kubeconfig, 1, "hub-1.err");
        let agents = nodes.iter().map(|node| start_bus_agent(c, node, &format!("agent-{node}.err"))).collect();
        until("every agent publishing", || agents_connected() == nodes.len());
        return Podtap { hub, agents, rest: vec![bus, second] };
    }
    let hub = start_hub(c, kubeconfig, "hub.err");
    let agents = nodes.iter().map(|node| start_agent(c, node, &format!("agent-{node}.err"))).collect();
    until("every agent connected", || agents_connected() == nodes.len());
    Podtap { hub, agents, rest: Vec::new() }
}

/// `podtap hub` on lab-node-1 (its errors in OUT/LOG), once it listens.
pub fn start_hub(c: &Cluster, kubeconfig: &Path, log: &str) -> Running {
    let podtap = PathBuf::from(env!("CARGO_BIN_EXE_podtap"));
    let s = |v: &str| v.to_string();
    let hub_err = c.out.join(log);
    let hub = spawn_in(
        "ptk-lab-node-1",
        &podtap,
        &[s("hub"), s("--listen"), s(HUB_API), s("--ingest"), format!("{HUB_IP}:{HUB_INGEST}"), s("--token"), s(TOKEN)],
        &[("KUBECONFIG", kubeconfig)],
        &hub_err,
    );
    until("the hub", || std::fs::read_to_string(&hub_err).is_ok_and(|t| t.contains("agents connect to")));
    hub
}

/// `podtap agent` on `node` following pod interfaces and eth0 (its errors in OUT/LOG), once it
/// captures on eth0.
pub fn start_agent(c: &Cluster, node: &str, log: &str) -> Running {
    let to = ["--hub".to_string(), format!("http://{HUB_IP}:{HUB_INGEST}"), "--token".into(), TOKEN.into()];
    agent_to(c, node, log, &to)
}

/// The bus on lab-node-1 (`nats-server` with JetStream, its store under OUT), once it answers.
pub fn start_bus(c: &Cluster) -> Running {
    let store = c.out.join("bus");
    let log = c.out.join("bus.log");
    let args = ["--jetstream", "--addr", HUB_IP, "--port", "4222", "--store_dir"].map(String::from);
    let args = [&args[..], &[store.display().to_string(), "--log".into(), log.display().to_string()]].concat();
    let bus = spawn_in("ptk-lab-node-1", &super::nats_server(), &args, &[], &c.out.join("bus.err"));
    until("the bus", || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Server is ready")));
    bus
}

/// Hub replica `index` of 2 on the bus, on lab-node-1 (replica 0 answers on `HUB_API`, 1 on
/// `REPLICA_API`), its errors in OUT/LOG, once it serves.
pub fn start_replica(c: &Cluster, kubeconfig: &Path, index: u32, log: &str) -> Running {
    let podtap = PathBuf::from(env!("CARGO_BIN_EXE_podtap"));
    let api = if index == 0 { HUB_API } else { REPLICA_API };
    let args = ["hub", "--listen", api, "--token", TOKEN, "--bus", BUS_URL, "--replica", &format!("{index}/2")];
    let err = c.out.join(log);
    let hub = spawn_in("ptk-lab-node-1", &podtap, &args.map(String::from), &[("KUBECONFIG", kubeconfig)], &err);
    until("the hub replica", || std::fs::read_to_string(&err).is_ok_and(|t| t.contains("podtap serving")));
    hub
}

/// `podtap agent --bus` on `node`, as `start_agent`.
pub fn start_bus_agent(c: &Cluster, node: &str, log: &str) -> Running {
    agent_to(c, node, log, &["--bus".into(), BUS_URL.into()])
}

fn agent_to(c: &Cluster, node: &str, log: &str, to: &[String]) -> Running {
    let podtap = PathBuf::from(env!("CARGO_BIN_EXE_podtap"));
    let s = |v: &str| v.to_string();
    let args = [&[s("agent")], to, &[s("--node"), s(node), s("--pod-interfaces"), s("-i"), s("eth0")]].concat();
    let err = c.out.join(log);
    let agent = spawn_in(&format!("ptk-{node}"), &podtap, &args, &[], &err);
    until("the agent capturing", || std::fs::read_to_string(&err).is_ok_and(|t| t.contains("capturing on eth0 ")));
    agent
}

/// How many agents the hub says are connected now (0 while it does not answer).
pub fn agents_connected() -> usize {
    health().map_or(0, |h| h["agents"].as_array().map_or(0, |a| a.iter().filter(|a| a["connected"] == true).count()))
}

pub fn health() -> Option<Value> {
    hub_get("/healthz", false)
}

/// The hub is serving with every kind listed.
pub fn names_listed() -> bool {
    health().is_some_and(|h| h["status"] == "ok" && h["cluster"]["missing"].as_array().is_none_or(|m| m.is_empty()))
}

/// The outside client: `count` requests to the NodePort on lab-node-1, one connection each,
/// logged to `OUT/ext-N.log`. Returns the running client.
pub fn ext_client(c: &Cluster, n: u32, count: u32) -> Child {
    Command::new("ip")
        .args(["netns", "exec", "ptk-ext", "python3"])
        .arg(repo().join("end2end/lab/apps/client.py"))
        .arg(c.out.join(format!("ext-{n}.log")))
        .args([HUB_IP, &NODE_PORT.to_string(), "per-request", &count.to_string(), "0.05", "external"])
        .spawn()
        .unwrap()
}

pub fn ext(c: &Cluster, n: u32, count: u32) {
    assert!(ext_client(c, n, count).wait().unwrap().success(), "the outside client");
}

/// Deletes a web pod (one on lab-node-1 if there is one) and waits for its replacement: the
/// node of the deleted pod, where the next pod takes an address another pod held.
pub fn restart_a_web_pod(c: &Cluster) -> String {
    let web = c.kubectl_json(&["get", "pods", "-l", "app=web"]);
    let items = web["items"].as_array().unwrap();
    let victim = items.iter().find(|p| p["spec"]["nodeName"] == HUB_NODE).unwrap_or(&items[0]);
    let name = victim["metadata"]["name"].as_str().unwrap().to_string();
    let node = victim["spec"]["nodeName"].as_str().unwrap().to_string();
    c.kubectl(&["delete", "pod", &name, "--wait=true", "--timeout=90s"]);
    rollout(c, "default", "web");
    node
}

/// Releases the status report the node holds for Job `job`'s pod (`report-after: hold`) once the
/// hub shows a record waiting for a pod's name: the pod's calls reached the hub before its
/// address did, whatever the timing of the run. On the bus, either replica may merge them.
pub fn release_when_waiting(c: &Cluster, job: &str) {
    let waiting = |api| hub_at(api, "/healthz", false).is_some_and(|h| h["engine"]["waiting_names"].as_u64() > Some(0));
    until("a record at the hub waiting for a new pod's name", || waiting(HUB_API) || waiting(REPLICA_API));
    let selector = format!("job-name={job}");
    let pod = c.kubectl(&["get", "pods", "-l", &selector, "-o", "jsonpath={.items[0].metadata.name}"]);
    c.kubectl(&["annotate", "pod", pod.trim(), "lab.podtap.io/report=now"]);
}

/// The seed scenario's traffic (DESIGN.md, `end2end/k8s/scenarios/seed.yaml`): the outside
/// client through the NodePort and a Job through the ClusterIP; `mid` (a fault: a podtap process
/// killed); a web pod restarted, so an address passes to another pod; the outside client again and
/// a Job whose node holds its pod's address until the hub shows a record waiting for it; a
/// socket-level balancer's client and a direct one. The Jobs: (Job, its pod, the way its calls went).
pub fn seed(c: &Cluster, nodes: &[String], mid: impl FnOnce()) -> [(&'static str, String, ViaKind); 5] {
    // The seed: its pods' interfaces appear while podtap watches; every probe is seen.
    c.kubectl(&["apply", "-f", &repo().join("end2end/k8s/scenarios/seed.yaml").display().to_string()]);
    rollout(c, "default", "web");

    // The outside client through the NodePort, the first Job through the ClusterIP.
    ext(c, 1, 20);
    let client_1 = c.run_client("seed-client-1", HUB_NODE);
    mid();
    // A web pod restarts: deleted, its replacement scheduled; the next Job on the deleted pod's
    // node takes the lowest free address of that node, one another pod held before. Its node
    // holds the pod's address back (a busy kubelet, a slow API server) until the hub shows a
    // record waiting for a pod's name: every request the pod made meanwhile must wait for the
    // name, not go without it. A condition, not a clock: a report 3 s late came before any
    // call had left the merge in fresh clone 29c (a call across nodes waits there 6 s), and
    // none waited. A record waits at most 10 s (`late::LIVE_WAIT_US`); the release took 1–3 s
    // in session 30's runs.
    let node = restart_a_web_pod(c);
    ext(c, 2, 20);
    let late = [(r#"report-after: "0s""#, r#"report-after: "hold""#)];
    let client_2 = std::thread::scope(|s| {
        s.spawn(|| release_when_waiting(c, "seed-client-2"));
        c.run_job("seed-client", "seed-client-2", &node, &late)
    });

    // A node that balances at the socket (Cilium's, Calico's eBPF kube-proxy replacement): the
    // client resolves web through the cluster DNS, and its own namespace translates the
    // ClusterIP at connect(). podtap counts those calls for web (`via: socketLB`); a pod that
    // calls a web pod's address without resolving anything stays `direct`.
    let web_ip = c.kubectl(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let dns = std::fs::read_to_string(repo().join("end2end/k8s/scenarios/dns.yaml")).unwrap();
    c.apply(&dns.replace("WEB_CLUSTER_IP", &web_ip));
    rollout(c, "kube-system", "coredns");
    let backends = c.web_pods();
    let socket = c.run_job(
        "socket-lb-client",
        "socket-lb-client",
        HUB_NODE,
        &[("BACKEND_1", &backends[0].0), ("BACKEND_2", &backends[1].0)],
    );
    let other = nodes.iter().find(|n| n.as_str() != HUB_NODE).unwrap();
    let direct = c.run_job(
        "seed-client",
        "direct-client",
        other,
        &[("$(WEB_SERVICE_HOST)", &backends[1].0), ("$(WEB_SERVICE_PORT)", "3000")],
    );
    // Calls through the ClusterIP whose source port conntrack moves on the way: each from a port
    // the client had just used, empty, straight to each web pod (client.py's `moved`). The pod
    // sees another port than the client's node; podtap must still make one record of each.
    let moved = c.run_job(
        "seed-client",
        "moved-client",
        other,
        &[
            (r#""keepalive", "30""#, r#""moved", "10""#),
            (r#""seed-client"]"#, &format!(r#""moved-client", "{}", "{}"]"#, backends[0].0, backends[1].0)),
        ],
    );
    assert_all_moved(c, "moved-client", &moved);
    [
        ("seed-client-1", client_1, ViaKind::ClusterIp),
        ("seed-client-2", client_2, ViaKind::ClusterIp),
        ("socket-lb-client", socket, ViaKind::SocketLb),
        ("direct-client", direct, ViaKind::Direct),
        ("moved-client", moved, ViaKind::ClusterIp),
    ]
}

/// That conntrack gave every call of `job` (pod `pod`) another source port: no web pod logged a
/// call of it (its user agent: client.py's MOVED_AGENT) with a port its client logged (else the
/// scenario does not show what it is for).
fn assert_all_moved(c: &Cluster, job: &str, pod: &str) {
    let ip = c.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
    let ports: HashSet<u64> = log_lines(&c.logs(), "")[job].iter().map(|l| l["local_port"].as_u64().unwrap()).collect();
    let web = log_lines(&c.logs(), "web-");
    let from_client: Vec<u64> = web
        .values()
        .flatten()
        .filter(|w| w["peer_ip"] == ip.as_str() && w["user_agent"] == "podtap-lab-moved/1")
        .filter_map(|w| w["peer_port"].as_u64())
        .collect();
    assert_eq!(from_client.len(), ports.len(), "{}: {job}'s calls at the web pods: {from_client:?}", c.mode);
    let kept: Vec<&u64> = from_client.iter().filter(|p| ports.contains(p)).collect();
    assert!(kept.is_empty(), "{}: conntrack kept {job}'s source ports {kept:?} (logged {ports:?})", c.mode);
}

/// The seed's Jobs as `finish_and_check` takes them.
pub fn jobs<'a>(clients: &'a [(&'static str, String, ViaKind)]) -> Vec<(&'static str, &'a str, ViaKind)> {
    clients.iter().map(|(job, pod, via)| (*job, pod.as_str(), *via)).collect()
}

/// The end of a scenario: web goes (its probes with it, so the logs are final), the hub is
/// waited for until it holds every logged request, and everything podtap says is checked
/// against the truth — the hub's records and balance, a window of them, and, with `captures`,
/// `podtap analyze` of each format's files named from the API server's objects. `clients`: (Job,
/// its pod, the way its calls went); `ext_runs`: how many outside runs were logged.
pub fn finish_and_check(
    c: &Cluster,
    addresses: &Mutex<Addresses>,
    clients: &[(&str, &str, ViaKind)],
    ext_runs: u32,
    captures: Option<Captures>,
) {
    let mode = &c.mode;
    c.kubectl(&["delete", "deployment", "web", "--cascade=foreground", "--wait=true", "--timeout=90s"]);
    until("web's pods gone", || {
        c.kubectl_json(&["get", "pods", "-l", "app=web"])["items"].as_array().is_some_and(|a| a.is_empty())
    });
    let web_logs = web_truth(c);
    let logged: usize = web_logs.values().map(Vec::len).sum();
    let http = |p: &Value| p["records"].as_array().unwrap().iter().filter(|r| r["kind"] == "http").count();
    let what = format!("{mode}: HTTP records of the {logged} requests the web pods logged");
    let page = hub_page_when(c, &what, logged, http);
    let balance = hub("/api/v1/services/default/web/balance").unwrap();
    std::fs::write(c.out.join("hub-records.json"), page.to_string()).unwrap();
    std::fs::write(c.out.join("hub-balance.json"), balance.to_string()).unwrap();
    let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap();
    let addresses = addresses.lock().unwrap();
    std::fs::write(c.out.join("addresses.json"), serde_json::to_string(&addresses.held).unwrap()).unwrap();
    let what = format!("{mode}, the hub");
    let truth = Truth { c, addresses: &addresses, clients, ext_runs, web: &web_logs };
    check_records(&truth, &records, Some(&balance), &what, false);
    check_a_window(c, clients);
    if let Some(captures) = captures {
        let list = cluster_list(c, &addresses);
        for (format, files) in captures.stop() {
            let records: Vec<Record> =
                analyze_files(&files, &list).into_iter().filter(|r| r.dst.port != HUB_INGEST).collect();
            let what = format!("{mode}, {format} files");
            check_records(&truth, &records, None, &what, true);
        }
    }
    let jobs: Vec<&str> = clients.iter().map(|(j, _, _)| *j).collect();
    c.kubectl(&[&["delete", "job", "--wait=true"], &jobs[..]].concat());
    c.kubectl(&["delete", "service", "web"]);
}

/// A window of the hub's records, chosen from the truth: the first client's run, a second either
/// side. The hub answers exactly the records of the whole run that started in it (`from`
/// inclusive, `to` not), and every call that client logged is among them. Records of the window
/// may still come after every request is in (a connection's when it closes, a late probe's: a
/// fresh clone's window had one the whole run fetched before it lacked), so the whole run is
/// fetched between two equal answers for the window, until the three agree (30 s at most).
fn check_a_window(c: &Cluster, clients: &[(&str, &str, ViaKind)]) {
    let (job, pod, _) = clients[0];
    let logs = log_lines(&c.logs(), "");
    let times: Vec<u64> = logs[job].iter().map(|l| (l["ts"].as_f64().unwrap() * 1e6) as u64).collect();
    let (from, to) = (times.iter().min().unwrap() - 1_000_000, times.iter().max().unwrap() + 1_000_000);
    let fetch = |path: &str| -> Vec<Record> {
        serde_json::from_value(hub(path).expect("the hub's records")["records"].clone()).unwrap()
    };
    let ids = |rs: &[Record]| rs.iter().filter(|r| from <= r.ts && r.ts < to).map(|r| r.id).collect::<BTreeSet<u64>>();
    let in_window = format!("/api/v1/records?limit=10000&kind=all&from={from}&to={to}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let window = loop {
        let before = ids(&fetch(&in_window));
        let whole = ids(&fetch("/api/v1/records?limit=10000&kind=all"));
        let window = fetch(&in_window);
        let after = ids(&window);
        if (before == after && after == whole) || Instant::now() > deadline {
            assert_eq!(after, whole, "{}: the window {from}..{to}", c.mode);
            assert_eq!(
                window.len(),
                after.len(),
                "{}: the window {from}..{to} has only records that began in it",
                c.mode
            );
            break window;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let calls = window
        .iter()
        .filter(|r| r.http().is_some() && !r.probe && r.src.qualified_name() == Some(format!("default/{pod}")))
        .count();
    assert_eq!(calls, times.len(), "{}: {pod}'s calls in the window of its run", c.mode);
}

/// What a scenario's records are checked against: the apps' logs (under the cluster's lab dir)
/// with the probers' (`web_truth`),
/// the Pod watch's addresses, the Jobs (Job, its pod, the way its calls went) and how many
/// outside runs were logged.
#[derive(Clone, Copy)]
struct Truth<'a> {
    c: &'a Cluster,
    addresses: &'a Addresses,
    clients: &'a [(&'a str, &'a str, ViaKind)],
    ext_runs: u32,
    /// What the web pods served: `web_truth`.
    web: &'a BTreeMap<String, Vec<Value>>,
}

/// Everything `records` (the hub's, or `podtap analyze`'s of capture files: `what`) says, against
/// the truth; `balance`: the hub's balance view of web.
fn check_records(truth: &Truth, records: &[Record], balance: Option<&Value>, what: &str, whole_seconds: bool) {
    let Truth { c, addresses, clients, ext_runs, web: web_logs } = *truth;
    let mode = what;
    let logged: usize = web_logs.values().map(Vec::len).sum();
    let http: Vec<&Record> = records.iter().filter(|r| r.http().is_some()).collect();

    // What a side of a record counts as: podtap's name. From files named with a List
    // (`whole_seconds`), whose pods' times are whole seconds, a name the List allows in the
    // second an address changed hands counts as the pod that really held it then.
    let settled_by_second = std::cell::Cell::new(0);
    let counted = |e: &podtap_shared::record::Endpoint, t: u64| -> Option<String> {
        let (named, ip) = (e.qualified_name(), e.ip.to_string());
        match addresses.holder(&ip, t) {
            Some(h)
                if whole_seconds
                    && named.as_deref() != Some(h)
                    && named.as_deref().is_some_and(|n| addresses.holders_in_second(&ip, t).contains(&n)) =>
            {
                settled_by_second.set(settled_by_second.get() + 1);
                Some(h.to_string())
            }
            _ => named,
        }
    };

    // An address changed hands at least once (the restart), and podtap named each side of every
    // record after the pod that held the address then.
    let reused = addresses.reused();
    assert!(!reused.is_empty(), "no pod address was reused: {:?}", addresses.held);
    for r in records {
        for (side, e) in [("src", &r.src), ("dst", &r.dst)] {
            if let Some(holder) = addresses.holder(&e.ip.to_string(), r.ts) {
                let named = counted(e, r.ts);
                assert_eq!(named.as_deref(), Some(holder), "{mode}: {side} of record {} at {}", r.id, r.ts);
            }
        }
    }
    let ambiguous = settled_by_second.get();

    // Per web pod: every request and connection it logged, probes apart, once.
    // What there is, by client, server, way and observations: a request made two records shows
    // as a pair of rows with one observation each.
    let kinds = || {
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for r in &http {
            let name = |e: &podtap_shared::record::Endpoint| e.qualified_name().unwrap_or_else(|| e.ip.to_string());
            let key = format!(
                "{} → {} {:?} obs {} snat {}",
                name(&r.src),
                name(&r.dst),
                r.via.kind,
                r.observations,
                r.snat.is_some()
            );
            *kinds.entry(key).or_default() += 1;
        }
        kinds
    };
    if http.len() != logged {
        panic!("{mode}: {} HTTP records, {logged} requests the web pods logged: {:#?}", http.len(), kinds());
    }
    // The calls that did not go through web (a pod calling a pod's address): not in its balance.
    let job_logs = log_lines(&c.logs(), "");
    let held_by = |pod: &str| addresses.held.iter().find(|h| h.1 == format!("default/{pod}")).map(|h| h.0.clone());
    let direct: HashSet<(String, u64)> = clients
        .iter()
        .filter(|(_, _, kind)| *kind == ViaKind::Direct)
        .flat_map(|(job, pod, _)| {
            let ip = held_by(pod).expect("the direct client's address");
            job_logs[*job].iter().map(move |l| (ip.clone(), l["local_port"].as_u64().unwrap()))
        })
        .collect();
    for (stem, lines) in web_logs {
        let pod = format!("default/web-{stem}");
        let mine: Vec<&&Record> =
            http.iter().filter(|r| counted(&r.dst, r.ts).as_deref() == Some(pod.as_str())).collect();
        assert_eq!(mine.len(), lines.len(), "{mode}: requests served by {pod}");
        let is_probe = |l: &Value| l["user_agent"].as_str().unwrap_or("").starts_with("kube-probe/");
        let probes = lines.iter().filter(|l| is_probe(l)).count();
        let conns: HashSet<u64> = lines.iter().filter(|l| !is_probe(l)).map(|l| l["conn"].as_u64().unwrap()).collect();
        let probe_records: Vec<&&&Record> = mine.iter().filter(|r| r.probe).collect();
        assert_eq!(probe_records.len(), probes, "{mode}: probes of {pod}");
        // Probes go from the pod's own node straight to it, never through the Service.
        assert!(
            probe_records.iter().all(|r| r.via.kind == ViaKind::Direct && r.src.kind == EndpointKind::Node),
            "{mode}: a probe of {pod} not direct from its node"
        );
        let record_conns: HashSet<u64> = mine.iter().filter(|r| !r.probe).map(|r| r.conn).collect();
        assert_eq!(record_conns.len(), conns.len(), "{mode}: connections to {pod}");
        // The balance view: the same, per pod (a pod gone that never served through the Service,
        // probed only, has no row).
        let Some(balance) = balance else { continue };
        let row = balance["endpoints"].as_array().unwrap().iter().find(|e| e["pod"] == pod.as_str());
        let served = |l: &&Value| {
            let peer = (l["peer_ip"].as_str().unwrap().to_string(), l["peer_port"].as_u64().unwrap());
            !is_probe(l) && !direct.contains(&peer)
        };
        let through: Vec<&Value> = lines.iter().filter(served).collect();
        let through_conns: HashSet<u64> = through.iter().map(|l| l["conn"].as_u64().unwrap()).collect();
        let Some(row) = row else {
            assert!(through.is_empty(), "{mode}: {pod} missing from the balance view: {balance}");
            continue;
        };
        let requests = row["requests"].as_u64().unwrap() as usize;
        assert_eq!(requests, through.len(), "{mode}: balance requests {row}: {:#?}", kinds());
        assert_eq!(row["probe_requests"].as_u64().unwrap() as usize, probes, "{mode}: balance probes {row}");
        assert_eq!(
            row["connections"].as_u64().unwrap() as usize,
            through_conns.len(),
            "{mode}: balance connections {row}"
        );
    }

    // Through which door: the outside client's calls via the NodePort; the Jobs' via the
    // ClusterIP, or the socket-level balancer, or straight to a pod's address, from the Job's pod
    // (named as of then, though its address went to another pod).
    let via = |kind: ViaKind| http.iter().filter(move |r| !r.probe && r.via.kind == kind);
    let ext_logged = (1..=ext_runs)
        .map(|n| std::fs::read_to_string(c.out.join(format!("ext-{n}.log"))).unwrap().lines().count())
        .sum::<usize>();
    assert_eq!(via(ViaKind::NodePort).count(), ext_logged, "{mode}: via the NodePort");
    assert!(via(ViaKind::NodePort).all(|r| r.via.service.as_deref() == Some("default/web")));
    for (job, pod, kind) in clients {
        let from: Vec<_> =
            http.iter().filter(|r| !r.probe && counted(&r.src, r.ts) == Some(format!("default/{pod}"))).collect();
        assert_eq!(from.len(), job_logs[*job].len(), "{mode}: {pod}'s calls");
        let service = (*kind != ViaKind::Direct).then_some("default/web");
        assert!(
            from.iter().all(|r| same_way(r.via.kind, *kind) && r.via.service.as_deref() == service),
            "{mode}: {pod}'s calls all {kind:?} through {service:?}"
        );
    }
    for kind in [ViaKind::ClusterIp, ViaKind::SocketLb, ViaKind::Direct] {
        let logged: usize = clients.iter().filter(|(_, _, k)| *k == kind).map(|(job, _, _)| job_logs[*job].len()).sum();
        let seen = http.iter().filter(|r| !r.probe && same_way(r.via.kind, kind)).count();
        assert_eq!(seen, logged, "{mode}: requests {kind:?}, and no other path");
    }
    eprintln!(
        "{} ({mode}): {} requests exact; addresses reused: {reused:?}; names the List's whole seconds allowed: {ambiguous}",
        c.out.display(),
        http.len()
    );
}

#[test]
fn kube_proxy_endpoints_are_read_from_both_rulesets() {
    let iptables = "-A KUBE-SEP-X -p tcp -m comment --comment \"default/web:http\" -m tcp -j DNAT --to-destination 10.244.0.2:3000\n\
        -A KUBE-SEP-Y -p tcp -j DNAT --to-destination 192.0.2.1:6443";
    let nft = "meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.0.2 . 3000, 1 : 10.244.1.2 . 3000 }\n\
        meta l4proto tcp dnat to 10.244.1.3:3000";
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(endpoints_in(iptables, 3000), set(&["10.244.0.2:3000"]));
    assert_eq!(endpoints_in(nft, 3000), set(&["10.244.0.2:3000", "10.244.1.2:3000", "10.244.1.3:3000"]));
}
