//! `cargo xtask bus up|down|status`: the bus podtap's agents and hub replicas meet on (NATS
//! JetStream), on loopback. `up` builds `nats-server` from its Go module into a cache outside
//! `target/` (once per version: about 20 s with a warm Go module cache, a minute or two cold),
//! starts it with JetStream in `DIR` (default `target/bus/`), waits until JetStream answers and
//! prints the URL agents and hubs take (`--bus URL`). `down` stops it and removes `DIR`.
//!
//! Owns the binary, the server process (its pid in `DIR/pid`) and its files; knows nothing of
//! podtap.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{status, step, target_dir};

/// The pinned release, from the Go module proxy.
pub const VERSION: &str = "v2.15.3";
const MODULE: &str = "github.com/nats-io/nats-server/v2";
/// Client and monitoring ports on 127.0.0.1.
const PORT: u16 = 4222;
const MONITOR_PORT: u16 = 8222;

/// `cargo xtask bus ARGS`.
pub fn main(args: &[String]) -> Result<()> {
    let (sub, rest) = args.split_first().map(|(s, r)| (s.as_str(), r)).unwrap_or(("", &[]));
    let dir = match rest {
        [flag, dir] if flag == "--dir" => PathBuf::from(dir),
        [] => target_dir().join("bus"),
        other => bail!("unknown arguments {other:?}: cargo xtask bus up|down|status [--dir DIR]"),
    };
    match sub {
        "up" => up(&dir).map(|url| println!("{url}")),
        "down" => down(&dir),
        "status" => {
            match running(&dir) {
                Some(pid) => println!("nats-server {VERSION} (pid {pid}) at {}", url()),
                None => println!("no bus runs from {}", dir.display()),
            }
            Ok(())
        }
        _ => bail!("cargo xtask bus up|down|status [--dir DIR]"),
    }
}

pub fn url() -> String {
    format!("nats://127.0.0.1:{PORT}")
}

/// Where the built server is kept: `$XDG_CACHE_HOME` or `~/.cache`, then `podtap/nats-VERSION`.
fn bin() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    cache.join("podtap").join(format!("nats-{VERSION}")).join("nats-server")
}

/// Builds `nats-server` into the cache unless it is there; its path.
pub fn ensure_built() -> Result<PathBuf> {
    let program = bin();
    if program.is_file() {
        return Ok(program);
    }
    let go =
        crate::cluster::which_go().context("building nats-server needs Go (`go` on PATH or /usr/local/go/bin/go)")?;
    let dir = program.parent().context("the cache has a directory")?;
    // Into a staging directory first: an interrupted build leaves nothing half-made in the cache.
    let staging = dir.with_file_name(format!("nats-{VERSION}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    step(&format!("bus: go install {MODULE}@{VERSION} into {}", dir.display()));
    let started = Instant::now();
    status(
        Command::new(go)
            .args(["install", "-ldflags", "-s -w", &format!("{MODULE}@{VERSION}")])
            .env("GOBIN", &staging)
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-buildvcs=false"),
    )?;
    std::fs::create_dir_all(dir)?;
    std::fs::rename(staging.join("nats-server"), &program).context("nats-server was not built")?;
    let _ = std::fs::remove_dir_all(&staging);
    eprintln!("bus: built in {:.0} s", started.elapsed().as_secs_f64());
    Ok(program)
}

/// Starts the server in `dir` unless it runs there already; the URL.
pub fn up(dir: &Path) -> Result<String> {
    if let Some(pid) = running(dir) {
        eprintln!("bus: nats-server already runs (pid {pid})");
        return Ok(url());
    }
    let program = ensure_built()?;
    // Another server on the ports would answer for this one.
    for port in [PORT, MONITOR_PORT] {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!(
                "127.0.0.1:{port} is taken (another nats-server? `cargo xtask bus status --dir DIR` of the dir it \
                 runs from, or `ss -ltnp`): not starting a second"
            );
        }
    }
    std::fs::create_dir_all(dir.join("store"))?;
    let log = dir.join("nats-server.log");
    let out = std::fs::File::create(&log)?;
    let mut cmd = Command::new(&program);
    cmd.args(["--jetstream", "--addr", "127.0.0.1", "--port", &PORT.to_string()])
        .args(["--http_port", &MONITOR_PORT.to_string(), "--server_name", "podtap-bus"])
        .arg("--store_dir")
        .arg(dir.join("store"))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("cannot start nats-server")?;
    std::fs::write(dir.join("pid"), child.id().to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // JetStream answers on the monitoring port once its store is ready.
    let ready = || {
        Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{MONITOR_PORT}/healthz?js-enabled-only=true")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    while !ready() {
        let exited = child.try_wait()?.is_some();
        if exited || Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = down(dir);
            let why = if exited { "exited" } else { "did not come up in 30 s" };
            bail!("nats-server {why}; its log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(url())
}

/// The server's pid, if it runs from `dir`.
fn running(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    exe.ends_with("nats-server").then_some(pid)
}

/// Stops the server and removes `dir`.
pub fn down(dir: &Path) -> Result<()> {
    if let Some(pid) = running(dir) {
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pid}")]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(dir).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if running(dir).is_some() {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}
