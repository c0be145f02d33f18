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
            "usage: cargo xtask cluster up [--proxy-mode iptables|nftables] [--dir DIR] | down [--dir DIR] | status [--dir DIR] | kubectl ARGS…"
        ),
    }
}

/// `up`'s flags.
struct Options {
    dir: PathBuf,
    proxy_mode: String,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Options { dir: current_dir(), proxy_mode: "iptables".into() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().cloned().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--dir" => o.dir = absolute(Path::new(&value()?)),
                "--proxy-mode" => o.proxy_mode = value()?,
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

/// Where the built binaries are kept: `$XDG_CACHE_HOME` or `~/.cache`, then
/// `podtap/k8s-VERSION/bin`.
pub fn bin_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    cache.join("podtap").join(format!("k8s-{VERSION}")).join("bin")
}

/// Builds the tools into the cache unless every one is there (a build takes most of half an hour
/// on two cores the first time; Go's own cache makes a rebuild quick).
pub fn ensure_built() -> Result<PathBuf> {
    let bin = bin_dir();
    if TOOLS.iter().all(|(name, _)| bin.join(name).is_file()) {
        return Ok(bin);
    }
    let go = which_go().context(
        "building Kubernetes needs Go 1.26 (`go` on PATH or /usr/local/go/bin/go); Debian's golang is too old",
    )?;
    std::fs::create_dir_all(&bin)?;
    step(&format!("cluster: go build Kubernetes {VERSION} and etcd into {} (once; ~25 min on 2 cores)", bin.display()));
    let mut ldflags = String::from("-s -w");
    let minor = VERSION.split('.').nth(1).unwrap_or("0");
    for pkg in ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"] {
        ldflags += &format!(
            " -X {pkg}.gitVersion={VERSION} -X {pkg}.gitMajor=1 -X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
        );
    }
    // Into a staging directory first: an interrupted build leaves no half of the tools in the cache.
    let staging = bin.with_file_name("bin.partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let started = Instant::now();
    status(
        Command::new(go)
            .args(["build", "-ldflags", &ldflags, "-o"])
            .arg(format!("{}/", staging.display()))
            .args(TOOLS.iter().map(|(_, pkg)| *pkg))
            .current_dir(root().join("end2end/k8s"))
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-mod=mod -buildvcs=false"),
    )?;
    for (name, pkg) in TOOLS {
        // `go build` names a program after its package's last element, a major version aside
        // (etcd's server is `server`).
        let built = pkg.rsplit('/').find(|e| !(e.starts_with('v') && e[1..].parse::<u32>().is_ok())).unwrap_or(name);
        std::fs::rename(staging.join(built), bin.join(name)).with_context(|| format!("{built} was not built"))?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    eprintln!("cluster: built in {:.0} s", started.elapsed().as_secs_f64());
    Ok(bin)
}

fn which_go() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("go"))
        .chain([PathBuf::from("/usr/local/go/bin/go")])
        .find(|p| p.is_file())
}

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().context("openssl is needed")?;
    if !out.status.success() {
        bail!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A key and a certificate signed by the cluster's CA: `NAME.key`, `NAME.crt`.
fn leaf(dir: &Path, name: &str, subject: &str, ext: &str) -> Result<()> {
    let ext_file = dir.join(format!("{name}.ext"));
    std::fs::write(&ext_file, ext)?;
    openssl(dir, &["genrsa", "-out", &format!("{name}.key"), "2048"])?;
    openssl(dir, &["req", "-new", "-key", &format!("{name}.key"), "-subj", subject, "-out", &format!("{name}.csr")])?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

/// The CA, the API server's serving certificate, a client certificate per component and for
/// the admin, and the ServiceAccount signing key.
fn certificates(pki: &Path) -> Result<()> {
    std::fs::create_dir_all(pki)?;
    openssl(pki, &["genrsa", "-out", "ca.key", "2048"])?;
    openssl(
        pki,
        &["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=podtap-lab-ca", "-days", "30", "-out", "ca.crt"],
    )?;
    let client = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";
    let serving = format!(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,\
         DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:{FIRST_SERVICE_IP},IP:{ADVERTISE}\n"
    );
    leaf(pki, "apiserver", "/CN=kube-apiserver", &serving)?;
    leaf(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", client)?;
    leaf(pki, "admin", "/O=system:masters/CN=kubernetes-admin", client)?;
    leaf(pki, "controller-manager", "/CN=system:kube-controller-manager", client)?;
    leaf(pki, "scheduler", "/CN=system:kube-scheduler", client)?;
    leaf(pki, "kube-proxy", "/CN=system:kube-proxy", client)?;
    openssl(pki, &["genrsa", "-out", "sa.key", "2048"])?;
    openssl(pki, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])
}

/// A kubeconfig for `user` (its certificate in `pki`), talking to the API server on loopback.
fn kubeconfig(dir: &Path, pki: &Path, user: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{user}.kubeconfig"));
    let p = |f: &str| pki.join(f).display().to_string();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: podtap-lab\n  cluster:\n    server: https://127.0.0.1:{API_PORT}\n\
         \x20   certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate: {crt}\n\
         \x20   client-key: {key}\ncontexts:\n- name: podtap-lab\n  context:\n    cluster: podtap-lab\n    user: {user}\n\
         current-context: podtap-lab\n",
        ca = p("ca.crt"),
        crt = p(&format!("{user}.crt")),
        key = p(&format!("{user}.key")),
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Starts `bin/NAME ARGS` in its own process group, its output in `DIR/logs/NAME.log`, its pid
/// added to `DIR/pids`.
fn start(dir: &Path, bin: &Path, name: &str, args: &[String]) -> Result<()> {
    let log = std::fs::File::create(dir.join("logs").join(format!("{name}.log")))?;
    let mut cmd = Command::new(bin.join(name));
    cmd.args(args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().with_context(|| format!("cannot start {name}"))?;
    let mut pids = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
    pids += &format!("{name} {}\n", child.id());
    std::fs::write(dir.join("pids"), pids)?;
    Ok(())
}

/// Polls `ok` every 200 ms for up to `secs`; fails naming `what` and the log to read.
fn wait_for(what: &str, secs: u64, log: &Path, mut ok: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            bail!(
                "{what} did not come up in {secs} s; the end of {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// `up` into `dir` with kube-proxy in iptables mode (the test command's cluster).
pub fn up_at(dir: &Path) -> Result<()> {
    up(&Options { dir: dir.to_path_buf(), proxy_mode: "iptables".into() })
}

fn up(o: &Options) -> Result<()> {
    let started = Instant::now();
    let bin = ensure_built()?;
    if o.dir.join("pids").is_file() || !strays().is_empty() {
        step("cluster: a cluster is already up (or a crashed one left processes); taking it down first");
        down(&o.dir)?;
    }
    let dir = &o.dir;
    let pki = dir.join("pki");
    std::fs::create_dir_all(dir.join("logs"))?;
    std::fs::create_dir_all(target_dir())?;
    std::fs::write(target_dir().join("cluster.dir"), dir.display().to_string())?;
    step(&format!("cluster: certificates and kubeconfigs in {}", dir.display()));
    certificates(&pki)?;
    let admin = kubeconfig(dir, &pki, "admin")?;
    std::fs::copy(&admin, dir.join("kubeconfig"))?;
    let controller = kubeconfig(dir, &pki, "controller-manager")?;
    let scheduler = kubeconfig(dir, &pki, "scheduler")?;
    kubeconfig(dir, &pki, "kube-proxy")?;
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
    // kube-proxy is built; it runs on the lab's nodes, which are not part of this yet.
    eprintln!("cluster: kube-proxy ({} mode) is built but not started: no lab node yet", o.proxy_mode);
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

/// `kubectl ARGS` against the cluster in `dir`, its output discarded: whether it succeeded.
fn kubectl_quiet(dir: &Path, args: &[&str]) -> bool {
    Command::new(bin_dir().join("kubectl"))
        .arg(format!("--kubeconfig={}", dir.join("kubeconfig").display()))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `cargo xtask cluster kubectl ARGS…`: the built kubectl with the admin kubeconfig.
fn kubectl(dir: &Path, args: &[String]) -> Result<()> {
    let kubectl = bin_dir().join("kubectl");
    if !kubectl.is_file() {
        bail!("kubectl is not built yet: `cargo xtask cluster up` builds it");
    }
    status(Command::new(kubectl).arg(format!("--kubeconfig={}", dir.join("kubeconfig").display())).args(args))
}

/// The processes `up` started, from `DIR/pids`: (name, pid).
fn pids(dir: &Path) -> Vec<(String, i32)> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, pid) = l.split_once(' ')?;
            Some((name.to_string(), pid.trim().parse().ok()?))
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

/// Every process whose executable is one of the cache's binaries (a crashed `up` left them).
fn strays() -> Vec<i32> {
    let bin = bin_dir();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(&bin)))
        .collect()
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
    // Only what `up` made: a --dir that held anything else keeps it.
    for made in ["pki", "logs", "etcd"] {
        let _ = std::fs::remove_dir_all(dir.join(made));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("kubeconfig") || ["pids", "proxy-mode"].contains(&name.as_str()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
    let _ = std::fs::remove_file(target_dir().join("cluster.dir"));
    eprintln!("cluster: down ({} processes ended, {} removed)", targets.len(), dir.display());
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
