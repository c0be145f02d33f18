//! Building the lab cluster's programs from `end2end/k8s/go.mod` into a cache outside `target/`:
//! the Kubernetes release and etcd once per version, `lab-node` (the repo's own node agent,
//! `end2end/k8s/node`) again whenever its sources change.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use super::{TOOLS, VERSION};
use crate::{root, status, step};

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
    step(&format!("cluster: go build Kubernetes {VERSION} and etcd into {} (once; ~15 min on 2 cores)", bin.display()));
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

pub fn which_go() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("go"))
        .chain([PathBuf::from("/usr/local/go/bin/go")])
        .find(|p| p.is_file())
}

/// `bin/lab-node`, built when its sources (or the module's go.mod/go.sum) differ from the
/// build's: their hash is kept in `bin/lab-node.sources`.
pub fn ensure_lab_node() -> Result<PathBuf> {
    let bin = bin_dir();
    let module = root().join("end2end/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(module.join("node"))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "go"))
        .chain([module.join("go.mod"), module.join("go.sum")])
        .collect();
    files.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        f.file_name().hash(&mut h);
        std::fs::read(f)?.hash(&mut h);
    }
    let key = format!("{:016x}", h.finish());
    let program = bin.join("lab-node");
    let stamp = bin.join("lab-node.sources");
    if program.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|k| k == key) {
        return Ok(program);
    }
    let go = which_go().context("building lab-node needs Go 1.26")?;
    std::fs::create_dir_all(&bin)?;
    step("cluster: go build lab-node (end2end/k8s/node)");
    let minor = VERSION.split('.').nth(1).unwrap_or("0");
    // kubelet's prober says `kube-probe/MAJOR.MINOR` from these.
    let ldflags = format!(
        "-s -w -X k8s.io/component-base/version.gitVersion={VERSION} -X k8s.io/component-base/version.gitMajor=1 \
         -X k8s.io/component-base/version.gitMinor={minor}"
    );
    status(
        Command::new(go)
            .args(["build", "-ldflags", &ldflags, "-o"])
            .arg(&program)
            .arg("./node")
            .current_dir(&module)
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-mod=mod -buildvcs=false"),
    )?;
    std::fs::write(stamp, key)?;
    Ok(program)
}
