//! `cargo xtask cluster up|down|status|kubectl`: a real Kubernetes control plane on this machine,
//! built from its Go modules (`end2end/k8s/go.mod`: one pinned release, its staging modules at
//! the matching versions) into a cache outside `target/` keyed by version, and run on loopback:
//! etcd, kube-apiserver (RBAC and the Node authorizer, PodSecurity and NodeRestriction admission,
//! ServiceAccount tokens), kube-controller-manager (EndpointSlices, node CIDRs, ServiceAccounts)
//! and kube-scheduler, with certificates made by `openssl` and an admin kubeconfig in `DIR`.
//!
//! Owns the binaries, the certificates, the processes and their logs; knows nothing of podtap.
//! Every process runs in its own process group and its pid is kept in `DIR/pids`; `down` ends
//! them and also any process still running a binary of the cache (a crashed `up`), then removes
//! `DIR`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod build;
mod nodes;
mod pki;
mod process;

pub use build::{bin_dir, ensure_built, which_go};
use process::{alive, pids, start, strays, wait_for};

use crate::{root, status, step, target_dir};

/// The pinned release: `end2end/k8s/go.mod` requires it and pins the staging modules to `STAGING`.
const VERSION: &str = "v1.37.2";
/// The tools `up` builds, as Go packages.
const TOOLS: &[(&str, &str)] = &[
    ("etcd", "go.etcd.io/etcd/server/v3"),
    ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
    ("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
    ("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy"),
    ("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
];
/// The API server's port on 127.0.0.1.
const API_PORT: u16 = 6443;
/// Service ClusterIPs, and the first of them (the `kubernetes` Service), in the serving cert.
const SERVICE_CIDR: &str = "10.96.0.0/16";
const FIRST_SERVICE_IP: &str = "10.96.0.1";
/// Pod addresses, a /24 per node from the controller-manager's node IPAM.
const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// What the `kubernetes` Service's EndpointSlice says the API server is at. The API server
/// listens on loopback only; it must advertise an address that is not loopback, and this one
/// (TEST-NET-1, RFC 5737) is routed nowhere: nothing in the lab calls the `kubernetes` Service.
const ADVERTISE: &str = "192.0.2.1";

/// `cargo xtask cluster ARGS`.
pub fn main(args: &[String]) -> Result<()> {
    let (sub, rest) = args.split_first().map(|(s, r)| (s.as_str(), r)).unwrap_or(("", &[]));
    match sub {
        "up" => up(&Options::parse(rest)?),
        "down" => down(&Options::parse(rest)?.dir),
        "status" => cluster_status(&Options::parse(rest)?.dir),
        "kubectl" => kubectl(&current_dir(), rest),
        _ => bail!(
            "usage: cargo xtask cluster up [--proxy-mode iptables|nftables] [--nodes N] [--dir DIR] | down [--dir DIR] | status [--dir DIR] | kubectl ARGS…"
        ),
    }
}

/// `up`'s flags.
struct Options {
    dir: PathBuf,
    proxy_mode: String,
    nodes: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Options { dir: current_dir(), proxy_mode: "iptables".into(), nodes: 1 };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().cloned().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--dir" => o.dir = absolute(Path::new(&value()?)),
                "--proxy-mode" => o.proxy_mode = value()?,
                "--nodes" => {
                    o.nodes = value()?.parse().ok().filter(|n| (1..=9).contains(n)).context("--nodes is 1 to 9")?
                }
                other => bail!("cluster: unknown flag {other}"),
            }
        }
        if !["iptables", "nftables"].contains(&o.proxy_mode.as_str()) {
            bail!("--proxy-mode is iptables or nftables (this kernel has no IPVS)");
        }
        Ok(o)
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().unwrap_or_else(|_| root()).join(p) }
}

/// The directory of the cluster `up` made last (`target/cluster.dir` says where), else the
/// default `target/cluster/`.
fn current_dir() -> PathBuf {
    std::fs::read_to_string(target_dir().join("cluster.dir"))
        .ok()
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| target_dir().join("cluster"))
}

/// `up` into `dir` with `nodes` lab nodes and kube-proxy in `proxy_mode` (the test command's clusters).
pub fn up_at(dir: &Path, proxy_mode: &str, nodes: usize) -> Result<()> {
    up(&Options { dir: dir.to_path_buf(), proxy_mode: proxy_mode.into(), nodes })
}

fn up(o: &Options) -> Result<()> {
    let started = Instant::now();
    let bin = ensure_built()?;
    let lab_node = build::ensure_lab_node()?;
    // A run that was killed (CI's time limit, a machine's shutdown) leaves its namespaces and
    // perhaps its processes behind, with its pid file in another checkout's directory.
    if o.dir.join("pids").is_file() || !strays().is_empty() || nodes::left_behind() {
        step("cluster: a cluster is already up (or a killed one left processes or namespaces); taking it down first");
        down(&o.dir)?;
    }
    let dir = &o.dir;
    let pki = dir.join("pki");
    std::fs::create_dir_all(dir.join("logs"))?;
    std::fs::create_dir_all(target_dir())?;
    std::fs::write(target_dir().join("cluster.dir"), dir.display().to_string())?;
    step(&format!("cluster: certificates and kubeconfigs in {}", dir.display()));
    let node_names: Vec<String> = (1..=o.nodes).map(nodes::name).collect();
    pki::certificates(&pki, &node_names)?;
    let admin = pki::kubeconfig(dir, &pki, "admin")?;
    std::fs::copy(&admin, dir.join("kubeconfig"))?;
    let controller = pki::kubeconfig(dir, &pki, "controller-manager")?;
    let scheduler = pki::kubeconfig(dir, &pki, "scheduler")?;
    pki::kubeconfig(dir, &pki, "kube-proxy")?;
    std::fs::write(dir.join("proxy-mode"), &o.proxy_mode)?;
    let p = |f: &str| pki.join(f).display().to_string();
    let s = |v: &str| v.to_string();

    step("cluster: etcd on 127.0.0.1:2379");
    let etcd_url = "http://127.0.0.1:2379";
    start(
        dir,
        &bin,
        "etcd",
        &[
            s("--name=lab"),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            s("--listen-peer-urls=http://127.0.0.1:2380"),
            s("--initial-advertise-peer-urls=http://127.0.0.1:2380"),
            s("--initial-cluster=lab=http://127.0.0.1:2380"),
            s("--listen-metrics-urls=http://127.0.0.1:2381"),
        ],
    )?;
    wait_for("etcd", 30, &dir.join("logs/etcd.log"), || http_ok("http://127.0.0.1:2381/health"))?;

    step(&format!("cluster: kube-apiserver on 127.0.0.1:{API_PORT} (RBAC, Node, PodSecurity, NodeRestriction)"));
    start(
        dir,
        &bin,
        "kube-apiserver",
        &[
            format!("--etcd-servers={etcd_url}"),
            s("--bind-address=127.0.0.1"),
            format!("--secure-port={API_PORT}"),
            format!("--advertise-address={ADVERTISE}"),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            s("--authorization-mode=Node,RBAC"),
            s("--enable-admission-plugins=NodeRestriction"),
            format!("--client-ca-file={}", p("ca.crt")),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--kubelet-client-certificate={}", p("apiserver-kubelet-client.crt")),
            format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            s("--service-account-issuer=https://kubernetes.default.svc"),
            s("--service-account-lookup=true"),
            s("--allow-privileged=true"),
            s("--profiling=false"),
        ],
    )?;
    let log = dir.join("logs/kube-apiserver.log");
    wait_for("kube-apiserver", 120, &log, || kubectl_quiet(dir, &["get", "--raw", "/readyz"]))?;

    step("cluster: kube-controller-manager and kube-scheduler");
    let kc = controller.display().to_string();
    start(
        dir,
        &bin,
        "kube-controller-manager",
        &[
            format!("--kubeconfig={kc}"),
            format!("--authentication-kubeconfig={kc}"),
            format!("--authorization-kubeconfig={kc}"),
            s("--bind-address=127.0.0.1"),
            s("--leader-elect=false"),
            s("--controllers=*"),
            s("--use-service-account-credentials=true"),
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--root-ca-file={}", p("ca.crt")),
            format!("--cluster-signing-cert-file={}", p("ca.crt")),
            format!("--cluster-signing-key-file={}", p("ca.key")),
            s("--allocate-node-cidrs=true"),
            format!("--cluster-cidr={CLUSTER_CIDR}"),
            s("--node-cidr-mask-size=24"),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        ],
    )?;
    let ks = scheduler.display().to_string();
    start(
        dir,
        &bin,
        "kube-scheduler",
        &[
            format!("--kubeconfig={ks}"),
            format!("--authentication-kubeconfig={ks}"),
            format!("--authorization-kubeconfig={ks}"),
            s("--bind-address=127.0.0.1"),
            s("--leader-elect=false"),
        ],
    )?;
    // The ServiceAccount controller's first act: `default` in `default`. Pods need it.
    wait_for("kube-controller-manager", 60, &dir.join("logs/kube-controller-manager.log"), || {
        kubectl_quiet(dir, &["get", "serviceaccount", "default", "-n", "default"])
    })?;
    step(&format!("cluster: {} lab node(s) with lab-node and kube-proxy ({} mode)", o.nodes, o.proxy_mode));
    nodes::up(dir, &bin, &lab_node, &o.proxy_mode, o.nodes)?;
    eprintln!(
        "cluster: up in {:.0} s; admin kubeconfig {} (`cargo xtask cluster kubectl get all -A`)",
        started.elapsed().as_secs_f64(),
        dir.join("kubeconfig").display()
    );
    Ok(())
}

/// Whether `url` answers 200 (curl).
fn http_ok(url: &str) -> bool {
    Command::new("curl").args(["-sf", "-o", "/dev/null", "--max-time", "2", url]).status().is_ok_and(|s| s.success())
}

/// The built kubectl with the admin kubeconfig of the cluster in `dir`, `args` given.
fn kubectl_command<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(bin_dir().join("kubectl"));
    cmd.arg(format!("--kubeconfig={}", dir.join("kubeconfig").display())).args(args);
    cmd
}

/// `kubectl ARGS` against the cluster in `dir`, its output discarded: whether it succeeded.
fn kubectl_quiet(dir: &Path, args: &[&str]) -> bool {
    kubectl_command(dir, args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// `kubectl ARGS` against the cluster in `dir`: its output.
fn kubectl_output(dir: &Path, args: &[&str]) -> Result<String> {
    let out = kubectl_command(dir, args).output()?;
    if !out.status.success() {
        bail!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cargo xtask cluster kubectl ARGS…`: the built kubectl with the admin kubeconfig.
fn kubectl(dir: &Path, args: &[String]) -> Result<()> {
    if !bin_dir().join("kubectl").is_file() {
        bail!("kubectl is not built yet: `cargo xtask cluster up` builds it");
    }
    status(&mut kubectl_command(dir, args))
}

/// Ends every process of the cluster in `dir` (and any a crash left running the cache's binaries)
/// and removes what `up` made there.
pub fn down(dir: &Path) -> Result<()> {
    let mut targets: Vec<i32> = pids(dir).into_iter().map(|(_, pid)| pid).collect();
    targets.extend(strays());
    targets.sort_unstable();
    targets.dedup();
    for pid in &targets {
        // The process group first (its children), then the process.
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).stderr(Stdio::null()).status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while targets.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in targets.iter().filter(|p| alive(**p)) {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    let namespaces = nodes::down();
    // The components' logs (the API server, the controllers, each node's lab-node and kube-proxy)
    // are kept, as the last cluster's, for a run that failed: `target/cluster-logs`.
    let kept = target_dir().join("cluster-logs");
    if dir.join("logs").is_dir() {
        let _ = std::fs::remove_dir_all(&kept);
        let _ = std::fs::rename(dir.join("logs"), &kept);
    }
    // Only what `up` made: a --dir that held anything else keeps it.
    for made in ["pki", "logs", "etcd", "nodes", "lab"] {
        let _ = std::fs::remove_dir_all(dir.join(made));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let proxy_config = name.starts_with("kube-proxy-") && name.ends_with(".yaml");
            if name.ends_with("kubeconfig")
                || proxy_config
                || ["pids", "proxy-mode", "api.sock"].contains(&name.as_str())
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
    let _ = std::fs::remove_file(target_dir().join("cluster.dir"));
    eprintln!(
        "cluster: down ({} processes ended, {namespaces} network namespaces and {} removed; its components' logs in {})",
        targets.len(),
        dir.display(),
        kept.display()
    );
    Ok(())
}

fn cluster_status(dir: &Path) -> Result<()> {
    let running = pids(dir);
    if running.is_empty() {
        println!("no cluster in {}", dir.display());
        return Ok(());
    }
    for (name, pid) in &running {
        println!("{name:<24} pid {pid:<8} {}", if alive(*pid) { "running" } else { "not running" });
    }
    let ready = kubectl_quiet(dir, &["get", "--raw", "/readyz"]);
    println!(
        "api server {}: {}",
        format_args!("https://127.0.0.1:{API_PORT}"),
        if ready { "ready" } else { "not ready" }
    );
    println!("kubeconfig {}", dir.join("kubeconfig").display());
    if !ready || running.iter().any(|(_, p)| !alive(*p)) {
        bail!("the cluster in {} is not whole", dir.display());
    }
    Ok(())
}
