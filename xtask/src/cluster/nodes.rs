//! The lab cluster's nodes: network namespaces on the real kernel, each running `lab-node agent`
//! (registers the Node, runs the pods bound to it, probes them with kubelet's prober) and the
//! real kube-proxy, joined by a bridge in a namespace of their own, with a client namespace
//! outside the cluster on the same wire. The root namespace gets no address and no link: the
//! nodes reach the API server (root loopback) through `lab-node relay` over a unix socket.
//!
//! ```text
//!   root: kube-apiserver 127.0.0.1:6443 <- relay <- DIR/api.sock
//!   ptk-wire: br0 ── ptk-lab-node-1: eth0 192.168.77.11, cni0 (pod CIDR .1), relay 127.0.0.1:6443,
//!            │                       lab-node agent, kube-proxy; pods ptk-p-UID8 on cni0
//!            ├──── ptk-lab-node-2: eth0 192.168.77.12 …
//!            └──── ptk-ext: eth0 192.168.77.100 (a client outside the cluster)
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::process::{start_in, wait_for};
use super::{CLUSTER_CIDR, kubectl_output, kubectl_quiet, pki};
use crate::root;

/// Every namespace the cluster makes is named `ptk-…`; `down` removes them all.
pub const PREFIX: &str = "ptk-";
const WIRE: &str = "ptk-wire";
pub const EXT: &str = "ptk-ext";
/// The image the nodes have (no registry): the lab's apps, `end2end/lab` at `/lab`, and the
/// cluster directory's `lab/logs` at `/lab/logs` (the apps' own logs, the ground truth).
pub const IMAGE: &str = "podtap-lab/app:1";

pub fn name(i: usize) -> String {
    format!("lab-node-{i}")
}

pub fn netns(node: &str) -> String {
    format!("{PREFIX}{node}")
}

pub fn node_ip(i: usize) -> String {
    format!("192.168.77.{}", 10 + i)
}

pub const EXT_IP: &str = "192.168.77.100";

/// The ClusterIP pods' resolv.conf names (kubelet's `clusterDNS`): a scenario that wants cluster
/// DNS makes the `kube-dns` Service with it.
pub const CLUSTER_DNS: &str = "10.96.0.10";

/// Runs `ip ARGS`, failing with its message.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("iproute2 is needed")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The wire, `count` nodes, the outside client; every node's agent and kube-proxy started, and
/// waited for until its Node is Ready with a pod CIDR and kube-proxy is healthy.
pub fn up(dir: &Path, bin: &Path, lab_node: &Path, proxy_mode: &str, count: usize) -> Result<()> {
    let sock = dir.join("api.sock");
    if sock.as_os_str().len() > 100 {
        bail!("{}: too long for a unix socket; use a shorter --dir", sock.display());
    }
    let s = |v: &str| v.to_string();
    start_in(
        dir,
        None,
        "relay",
        lab_node,
        &[s("relay"), format!("--listen=unix:{}", sock.display()), s("--to=tcp:127.0.0.1:6443")],
    )?;
    ip(&["netns", "add", WIRE])?;
    ip(&["-n", WIRE, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", WIRE, "link", "set", "br0", "up"])?;
    let logs = dir.join("lab/logs");
    std::fs::create_dir_all(&logs)?;
    let lab = root().join("end2end/lab");
    for i in 1..=count {
        let node = name(i);
        let ns = netns(&node);
        plug(&ns, &format!("ptk-w{i}"), &node_ip(i))?;
        for (key, value) in [("net.ipv4.ip_forward", "1"), ("net.bridge.bridge-nf-call-iptables", "1")] {
            crate::status(Command::new("ip").args(["netns", "exec", &ns, "sysctl", "-qw", &format!("{key}={value}")]))?;
        }
        start_in(
            dir,
            Some(&ns),
            &format!("relay-{node}"),
            lab_node,
            &[s("relay"), s("--listen=tcp:127.0.0.1:6443"), format!("--to=unix:{}", sock.display())],
        )?;
        let kubeconfig = pki::kubeconfig(dir, &dir.join("pki"), &node)?;
        start_in(
            dir,
            Some(&ns),
            &node,
            lab_node,
            &[
                s("agent"),
                format!("--name={node}"),
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--node-ip={}", node_ip(i)),
                format!("--state={}", dir.join("nodes").join(&node).display()),
                format!("--image={IMAGE}"),
                format!("--cluster-dns={CLUSTER_DNS}"),
                format!("--path=/lab/logs={}", logs.display()),
                format!("--probe-log={}", logs.join(format!("probes-{node}.log")).display()),
                format!("--path=/lab={}", lab.display()),
            ],
        )?;
        let config = proxy_config(dir, &node, proxy_mode)?;
        start_in(
            dir,
            Some(&ns),
            &format!("kube-proxy-{node}"),
            &bin.join("kube-proxy"),
            &[format!("--config={}", config.display())],
        )?;
    }
    plug(EXT, "ptk-wext", EXT_IP)?;
    for i in 1..=count {
        let node = name(i);
        let log = dir.join("logs").join(format!("{node}.log"));
        wait_for(&format!("node {node}"), 60, &log, || {
            kubectl_quiet(dir, &["wait", "--for=condition=Ready", "--timeout=1s", &format!("node/{node}")])
        })?;
        let ns = netns(&node);
        let log = dir.join("logs").join(format!("kube-proxy-{node}.log"));
        wait_for(&format!("kube-proxy on {node}"), 60, &log, || {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "curl",
                    "-sf",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "1",
                    "http://127.0.0.1:10256/healthz",
                ])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })?;
    }
    // Each node routes the others' pod CIDRs to them (as flannel's host-gw backend does).
    let cidrs: Vec<String> = (1..=count)
        .map(|i| kubectl_output(dir, &["get", "node", &name(i), "-o", "jsonpath={.spec.podCIDR}"]))
        .collect::<Result<_>>()?;
    for i in 1..=count {
        for (j, cidr) in cidrs.iter().enumerate().filter(|(j, _)| j + 1 != i) {
            ip(&["-n", &netns(&name(i)), "route", "replace", cidr, "via", &node_ip(j + 1)])?;
        }
    }
    Ok(())
}

/// A namespace `ns` (made if missing) with `eth0` at `addr`/24, its peer `wire_end` on the wire's
/// bridge.
fn plug(ns: &str, wire_end: &str, addr: &str) -> Result<()> {
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    ip(&["-n", WIRE, "link", "add", wire_end, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
    ip(&["-n", WIRE, "link", "set", wire_end, "master", "br0", "up"])?;
    ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
    ip(&["-n", ns, "link", "set", "eth0", "up"])
}

/// kube-proxy's configuration for `node` (as hack/local-up-cluster.sh and kind write it: the
/// conntrack sysctls are global, so kube-proxy in a namespace must leave them alone).
fn proxy_config(dir: &Path, node: &str, mode: &str) -> Result<PathBuf> {
    let path = dir.join(format!("kube-proxy-{node}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
             clientConnection:\n  kubeconfig: {kc}\nhostnameOverride: {node}\nmode: {mode}\n\
             clusterCIDR: {CLUSTER_CIDR}\nhealthzBindAddress: 127.0.0.1:10256\nmetricsBindAddress: 127.0.0.1:10249\n\
             conntrack:\n  maxPerCore: 0\n  tcpEstablishedTimeout: 0s\n  tcpCloseWaitTimeout: 0s\n",
            kc = dir.join("kube-proxy.kubeconfig").display()
        ),
    )?;
    Ok(path)
}

/// The namespaces a cluster made (`ptk-*`), pods' included.
fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(String::from)
        .collect()
}

/// Whether namespaces of a cluster are still here (one that is up, or one whose run was killed).
pub fn left_behind() -> bool {
    !namespaces().is_empty()
}

/// Removes every `ptk-*` namespace, ending what still runs in one (the processes `up` started
/// are ended before this).
pub fn down() -> usize {
    let all = namespaces();
    for ns in &all {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
    }
    all.len()
}
