//! `cargo xtask`: the few commands people run. Each installs what it needs first (wasm target,
//! Debian and npm packages), idempotently, so a fresh machine needs nothing by hand.
//!
//! - `build [--dev]`   the browser app into `dist/` (cargo for wasm32 + wasm-bindgen as a library)
//! - `run [ARGS…]`     build everything, then `podtap serve ARGS…` (no ARGS: the built-in demo)
//! - `test`            every test: fmt, clippy, unit and integration, the lab, the browser
//! - `demo`            regenerate the built-in demo capture with the lab (root)
//! - `bench [SECONDS]`  make a large capture with the lab (nginx + wrk) and time podtap against
//!   tcpdump and tshark on it (root; see BENCHMARKS.md)
//! - `bench-browser [SECONDS] [RATE|capture]`  the page in Chromium while `podtap serve --synthetic
//!   RATE` (1,000 pods) streams, or (`capture`) the synthetic cluster's capture is looped in real
//!   time through the engine: frame times, record-to-screen and server lag, JS heap (BENCHMARKS.md)
//! - `bench-map [SECONDS] [PODS] [PAIRS]`  the Service Map in Chromium on a synthetic cluster's
//!   capture and List (1,000 pods, 3,000 pairs unless told): first full map, layout, pan/zoom
//!   frames, update cost, JS heap
//! - `bench-protocols`  pgbench, redis-benchmark and mariadb-slap against real servers, captured;
//!   podtap's MB/s per protocol against tcpdump's read of the same file
//! - `bench-hub [AGENTS] [REPLAYS] [MAX_RECORDS] [REPLICAS]`  simulated agents into one `podtap
//!   hub`: records/s with merge and rollups, hub CPU and RSS (backend/examples/hub_load.rs); with
//!   REPLICAS, through the bus into that many hub replicas
//! - `fuzz [SECONDS]`   run every cargo-fuzz target for SECONDS each (nightly; default 60)
//! - `setup`           only install what the tests need
//! - `cluster up [--proxy-mode iptables|nftables] [--dir DIR] | down | status | kubectl ARGS…`
//!   a real Kubernetes control plane built from its Go modules (end2end/k8s), on loopback
//! - `bus up|down|status [--dir DIR]`  NATS JetStream built from its Go module, on loopback; `up`
//!   prints the URL for `podtap agent --bus` and `podtap hub --bus`

mod build;
mod bus;
mod cluster;
mod setup;
mod test;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask build [--dev] | run [podtap serve args…] | test | demo | bench [SECONDS] | bench-browser [SECONDS] [RATE|capture] | bench-map [SECONDS] [PODS] [PAIRS] | bench-protocols | bench-hub [AGENTS] [REPLAYS] [MAX_RECORDS] [REPLICAS] | fuzz [SECONDS] | setup | cluster up|down|status|kubectl … | bus up|down|status";

fn dispatch(args: &[String]) -> Result<()> {
    let Some((cmd, rest)) = args.split_first() else { bail!("no command given\n{USAGE}") };
    match cmd.as_str() {
        "build" => build::frontend(rest.iter().any(|a| a == "--dev")).map(|_| ()),
        "run" => run(rest),
        "test" => test::all(),
        "demo" => test::regenerate_demo(),
        "bench" => test::bench(rest.first().map(String::as_str).unwrap_or("18")),
        "bench-browser" => test::bench_browser(
            rest.first().map(String::as_str).unwrap_or("60"),
            rest.get(1).map(String::as_str).unwrap_or("20000"),
        ),
        "bench-hub" => test::bench_hub(rest),
        "bench-map" => test::bench_map(
            rest.first().map(String::as_str).unwrap_or("60"),
            rest.get(1).map(String::as_str).unwrap_or("1000"),
            rest.get(2).map(String::as_str).unwrap_or("3000"),
        ),
        "bench-protocols" => test::bench_protocols(),
        "setup" => setup::for_tests(),
        "cluster" => cluster::main(rest),
        "bus" => bus::main(rest),
        "fuzz" => test::fuzz(rest.first().map(String::as_str).unwrap_or("60"), true),
        "help" | "--help" | "-h" => {
            eprintln!("{USAGE}");
            Ok(())
        }
        // A typo in a script must fail it, not pass silently.
        other => bail!("unknown command `{other}`\n{USAGE}"),
    }
}

fn run(args: &[String]) -> Result<()> {
    build::frontend(false)?;
    cargo(&["build", "-p", "podtap"])?;
    let exe = target_dir().join("debug/podtap");
    let mut cmd = Command::new(exe);
    cmd.arg("serve").args(args).env("PODTAP_ASSETS", root().join("dist"));
    status(&mut cmd)
}

/// Where cargo builds: `CARGO_TARGET_DIR` (relative to the workspace when relative), else
/// `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_path_buf()
}

/// Runs a command to completion; a failure names the command.
pub fn status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("cannot start {shown}"))?;
    if !st.success() {
        bail!("{shown} failed ({st})");
    }
    Ok(())
}

/// `cargo ARGS` in the workspace root, with the same toolchain as this xtask.
pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(Command::new(cargo).args(args).current_dir(root()))
}

/// Prints a step header, so a long log shows where time went: with the seconds since the previous
/// header (what the previous step took) and since the first.
pub fn step(name: &str) {
    static TIMES: std::sync::Mutex<Option<(std::time::Instant, std::time::Instant)>> = std::sync::Mutex::new(None);
    let now = std::time::Instant::now();
    let mut times = TIMES.lock().unwrap_or_else(|e| e.into_inner());
    let (first, last) = times.get_or_insert((now, now));
    let (since_last, since_first) = (now - *last, now - *first);
    *last = now;
    eprintln!("\n=== xtask [+{:.0} s, {:.0} s in]: {name}", since_last.as_secs_f64(), since_first.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_or_no_command_fails_with_the_usage() {
        for args in [&["tset"][..], &[][..], &["cluster-up"][..]] {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let err = dispatch(&args).expect_err("must fail").to_string();
            assert!(err.contains("usage: cargo xtask"), "{err}");
        }
        assert!(dispatch(&["help".to_string()]).is_ok());
    }
}
