//! `cargo xtask test`: every test, in the order that fails fastest. The lab and the browser test
//! run real processes: the lab needs root (network namespaces), the browser test Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{build, cargo, root, setup, status, step, target_dir};

pub fn all() -> Result<()> {
    let started = Instant::now();
    setup::for_tests()?;
    // The fuzz targets' nightly build (sanitizer coverage, its own target directory) shares no work
    // with the rest: it runs beside everything up to the lab at the lowest priority, on whatever
    // CPU the serial tails of the wasm link and the test build leave idle.
    let fuzz_build = FuzzBuild::start()?;
    step("cargo fmt --check");
    cargo(&["fmt", "--all", "--", "--check"]).context("run `cargo fmt --all`")?;
    // The app before the tests: `podtap` embeds `dist/`, so the test build then makes the binary
    // the lab and the browser tests run (built after it, `dist/` cost that binary a second link).
    build::frontend(false)?;
    lint_and_build()?;
    step("cargo test");
    status(linted(&mut cargo_command(&[&["test"], PACKAGES].concat()))?)?;
    status(linted(&mut cargo_command(&["test", "-p", "xtask"]))?)?;
    // The lab's tcpdump and the browser tests want the CPU to themselves.
    let fuzz_dir = fuzz_build.finish()?;
    lab()?;
    real_cluster()?;
    browser()?;
    fuzz_briefly(fuzz_dir)?;
    step("done: every test passed");
    eprintln!("\nxtask: every test passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// What `cargo clippy --workspace --all-targets -- -D warnings` checks, linted while it is
/// built for the tests (`linted`): every target of the workspace's crates, in test and non-test
/// form. A separate clippy pass checked ~400 dependencies once more (4 minutes of a fresh run).
fn lint_and_build() -> Result<()> {
    step("clippy -D warnings as the workspace's compiler: cargo test --all-targets --no-run");
    status(linted(&mut cargo_command(&[&["test"], PACKAGES, &["--all-targets", "--no-run"]].concat()))?)?;
    // The libraries as they ship (the tests built the frontend's only with cfg(test)); `--tests`
    // keeps the dev-dependencies' features, so no dependency is built again.
    step("clippy -D warnings: cargo build --lib --tests");
    status(linted(&mut cargo_command(&[&["build"], PACKAGES, &["--lib", "--tests"]].concat()))?)?;
    // Apart: with the rest, xtask's wasm-bindgen (walrus, wasmparser) was compiled a second time
    // with the features the others unify into it (2 CPU minutes); alone it reuses the build that
    // runs this command.
    step("clippy -D warnings: cargo build -p xtask");
    status(linted(&mut cargo_command(&["build", "-p", "xtask"]))?)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `target/debug/podtap` as the test build makes it. `cargo build -p podtap` would select other
/// dependency features and rebuild a hundred crates (a minute, a gigabyte) for the same binary.
fn build_podtap() -> Result<()> {
    status(linted(&mut cargo_command(&[&["test"], PACKAGES, &["--no-run"]].concat()))?)
}

/// The packages every cargo call of the test command builds, always the same: cargo unifies
/// dependencies' features over the packages it is given, and another set would rebuild them.
const PACKAGES: &[&str] = &["--workspace", "--exclude", "xtask"];

/// `cargo ARGS` in the workspace root, with this xtask's toolchain.
fn cargo_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args).current_dir(root());
    cmd
}

/// Clippy as the compiler of the workspace's own crates, as `cargo clippy` runs it
/// (`RUSTC_WORKSPACE_WRAPPER`, its arguments in `CLIPPY_ARGS`), with `-D warnings`: the test
/// build lints every target it compiles, and the lints need no second pass over ~400
/// dependencies in check mode (4 of a fresh CI run's 22 minutes). Dependencies are compiled by
/// rustc as ever. Every cargo call of the test command carries it, so none rebuilds the
/// workspace without it.
fn linted(cmd: &mut Command) -> Result<&mut Command> {
    let cargo = std::env::var_os("CARGO").map(PathBuf::from);
    let driver = match cargo.map(|c| c.with_file_name("clippy-driver")) {
        Some(d) if d.exists() => d,
        _ => which("clippy-driver").context("clippy is missing: `rustup component add clippy`")?,
    };
    Ok(cmd.env("RUSTC_WORKSPACE_WRAPPER", driver).env("CLIPPY_ARGS", "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"))
}

/// `name` on the `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.exists())
}

/// Runs the lab into `out` (root only), with podtap's live capture beside dumpcap's.
fn run_lab(out: &Path) -> Result<()> {
    if !is_root() {
        bail!("the lab needs root (network namespaces and iptables): run `sudo cargo xtask test`");
    }
    build_podtap()?;
    let lab = || {
        Command::new("bash")
            .arg(root().join("end2end/lab/lab.sh"))
            .arg(out)
            .env("PODTAP", target_dir().join("debug/podtap"))
            .status()
            .context("cannot run end2end/lab/lab.sh")
    };
    // Exit 75: the lab's own tcpdump dropped packets (a loaded machine), not podtap: once more.
    let mut run = lab()?;
    if run.code() == Some(75) {
        step("lab: tcpdump (the lab's, not podtap) dropped packets; running the lab once more");
        run = lab()?;
    }
    if !run.success() {
        bail!("end2end/lab/lab.sh {} failed ({run})", out.display());
    }

    // Two nodes joined by VXLAN, the underlay captured: requests read inside the tunnel.
    status(Command::new("bash").arg(root().join("end2end/lab/vxlan.sh")).arg(out))
}

/// The database tier: real servers as pods behind Services (end2end/lab/tier.sh) and their
/// clients' pools (postgres.sh, redis.sh with two replicas, mysql.sh), a WebSocket session
/// (websocket.sh) and an Apache Kafka broker with Kafka's own clients (kafka.sh: its jars fetched
/// once from Maven Central into the cache).
fn run_db_lab(out: &Path) -> Result<()> {
    for script in ["postgres.sh", "redis.sh", "mysql.sh", "websocket.sh", "kafka.sh"] {
        let lab =
            || Command::new("bash").arg(root().join("end2end/lab").join(script)).arg(out).status().context(script);
        // Exit 75: the lab's own dumpcap dropped packets (a loaded machine), not podtap: once more.
        let mut run = lab()?;
        if run.code() == Some(75) {
            step(&format!("lab: dumpcap (the lab's, not podtap) dropped packets; running {script} once more"));
            run = lab()?;
        }
        if !run.success() {
            bail!("end2end/lab/{script} {} failed ({run})", out.display());
        }
    }
    Ok(())
}

/// The multi-node lab: an agent per node, one hub, and the faults (end2end/lab/nodes.sh).
fn run_nodes_lab(out: &Path) -> Result<()> {
    status(
        Command::new("bash")
            .arg(root().join("end2end/lab/nodes.sh"))
            .arg(out)
            .env("PODTAP", target_dir().join("debug/podtap")),
    )
}

/// A fresh lab run on the real kernel, then podtap's counts against the servers' logs.
fn lab() -> Result<()> {
    step("lab: real packets from network namespaces, kube-proxy iptables rules");
    let out = target_dir().join("lab-run");
    run_lab(&out)?;
    step("lab: two nodes, an agent on each, one hub, an agent and the hub restarted");
    let nodes = target_dir().join("lab-nodes");
    run_nodes_lab(&nodes)?;
    step(
        "lab: a real PostgreSQL, Redis, MariaDB and Kafka behind Services, their clients joined mid-stream; a WebSocket session",
    );
    let db = target_dir().join("lab-db");
    run_db_lab(&db)?;
    step("lab: podtap against the servers' ground truth");
    let tests = ["lab", "windows", "nodes_lab", "databases", "kafka", "live_gone"].map(|t| ["--test", t]).concat();
    status(
        linted(&mut cargo_command(&[&["test"], PACKAGES, &tests].concat()))?
            .args(["--", "--ignored"])
            .env("PODTAP_LAB_DIR", &out)
            .env("PODTAP_NODES_DIR", &nodes)
            .env("PODTAP_DB_DIR", &db),
    )
}

/// A real Kubernetes (`cargo xtask cluster up --nodes 2`: the control plane built from its Go
/// modules once and cached outside `target/`, two lab nodes running pods, the real kube-proxy),
/// once in each kube-proxy mode: the seed (cluster_seed.rs: the hub and agents, capture files in
/// three formats, a window), the API server's faults (cluster_faults.rs) and podtap's own agent
/// and hub killed and started again (cluster_outages.rs), the database tier — a Redis pool
/// kube-proxy pins to one replica, PostgreSQL, MariaDB and a Kafka broker (cluster_databases.rs) —
/// in both; the seed again with two hub replicas on a bus, one killed mid-run and its share taken
/// over (cluster_bus.rs), the API server's faults and podtap's outages again with two replicas on
/// a bus, and podtap under the deployment's
/// RBAC and a one-Role user (real_cluster.rs) in iptables mode.
/// The cluster is taken down after each, whatever happened.
fn real_cluster() -> Result<()> {
    let dir = target_dir().join("cluster");
    // The deployment's RBAC once: it does not depend on the mode.
    let both = [
        (
            "iptables",
            &[
                "cluster_seed",
                "cluster_bus",
                "cluster_faults",
                "cluster_faults:bus",
                "cluster_outages",
                "cluster_outages:bus",
                "cluster_databases",
                "real_cluster",
            ][..],
        ),
        ("nftables", &["cluster_seed", "cluster_faults", "cluster_outages", "cluster_databases"][..]),
    ];
    for (mode, tests) in both {
        step(&format!("cluster: a real Kubernetes from its Go modules, kube-proxy in {mode} mode"));
        crate::cluster::up_at(&dir, mode, 2)?;
        let mut tested = Ok(());
        for entry in tests {
            // `TEST:bus`: the scenario again with two hub replicas on a bus.
            let (test, bus) = entry.split_once(':').map_or((*entry, false), |(t, _)| (t, true));
            let how = if bus { ", two hub replicas on a bus" } else { "" };
            step(&format!("cluster ({mode}): backend/tests/{test}.rs{how}"));
            tested = status(
                linted(&mut cargo_command(&[&["test"], PACKAGES, &["--test", test]].concat()))?
                    .args(["--", "--ignored"])
                    .env("PODTAP_CLUSTER_DIR", &dir)
                    .env("PODTAP_LAB_BUS", if bus { "1" } else { "0" })
                    .env("PODTAP_KUBECTL", crate::cluster::bin_dir().join("kubectl")),
            );
            if tested.is_err() {
                break;
            }
        }
        let down = crate::cluster::down(&dir);
        tested.and(down)?;
    }
    Ok(())
}

/// Playwright (playwright-core) driving Debian's Chromium against `podtap serve`.
fn browser() -> Result<()> {
    step("browser: Playwright + Chromium against podtap serve");
    build_podtap()?;
    status(
        Command::new("node")
            // Two files at a time: each starts its own podtap on a free port and its own Chromium
            // profile; two cores keep both busy.
            .args(["--test", "--test-concurrency=2", "--test-reporter=spec", "tests/"])
            .env("PODTAP_BIN", target_dir().join("debug/podtap"))
            .env("PODTAP_ASSETS", root().join("dist"))
            .env("PODTAP_LAB_DIR", target_dir().join("lab-run"))
            .env("PODTAP_DB_DIR", target_dir().join("lab-db"))
            .current_dir(root().join("end2end")),
    )
}

/// The hub benchmark: simulated agents replaying the demo as their own nodes into a release
/// `podtap hub`, as fast as it takes them (backend/examples/hub_load.rs).
pub fn bench_hub(args: &[String]) -> Result<()> {
    step("bench-hub: cargo build --release -p podtap --example hub_load");
    cargo(&["build", "--release", "-p", "podtap", "--bin", "podtap", "--example", "hub_load"])?;
    let agents = args.first().map_or("8", String::as_str);
    let replays = args.get(1).map_or("200", String::as_str);
    let max_records = args.get(2).map_or("1000000", String::as_str);
    let mut cmd = Command::new(target_dir().join("release/examples/hub_load"));
    cmd.args([target_dir().join("release/podtap").to_str().unwrap_or_default(), agents, replays, max_records])
        // As deploy/Dockerfile sets it: mimalloc keeps freed pages a second before returning
        // them, instead of zeroing fresh ones for every batch (BENCHMARKS.md).
        .env("MIMALLOC_PURGE_DELAY", "1000");
    // With REPLICAS: a fresh bus, the agents publishing to it, that many hub replicas.
    let Some(replicas) = args.get(3) else {
        step(&format!("bench-hub: {agents} agents, {replays} replays each, --max-records {max_records}"));
        return status(&mut cmd);
    };
    let dir = target_dir().join("bench-bus");
    crate::bus::down(&dir)?;
    let url = crate::bus::up(&dir)?;
    let pid = std::fs::read_to_string(dir.join("pid"))?;
    step(&format!("bench-hub: {agents} agents on the bus, {replicas} hub replicas, {replays} replays each"));
    let ran = status(cmd.args([url.as_str(), replicas]).env("HUB_LOAD_BUS_PID", pid.trim()));
    crate::bus::down(&dir)?;
    ran
}

/// The browser benchmark: a release podtap serving a synthetic 1,000-pod cluster at `rate`
/// records/s, the page open in Chromium for `secs` seconds (end2end/bench/browser.mjs).
pub fn bench_browser(secs: &str, rate: &str) -> Result<()> {
    setup::for_tests()?;
    step("bench-browser: cargo build --release -p podtap (and the synthetic cluster), the app in release");
    cargo(&["build", "--release", "-p", "podtap", "--bin", "podtap", "--example", "synth_cluster"])?;
    crate::build::frontend(false)?;
    // `capture`: a synthetic 1,000-pod cluster's capture through the whole engine, in real time:
    // 40,000 pairs' connections starting over 10 s offer about 20,000 requests/s.
    let source = match rate {
        "capture" => {
            let dir = target_dir().join("synth-load");
            let synth = target_dir().join("release/examples/synth_cluster");
            status(Command::new(synth).arg(&dir).args(["1000", "40000", "10"]))?;
            step(&format!(
                "bench-browser: {secs} s of a synthetic cluster's capture (~20k requests/s), looped in real time"
            ));
            dir.to_string_lossy().into_owned()
        }
        rate => {
            step(&format!("bench-browser: {secs} s at {rate} records/s"));
            rate.to_string()
        }
    };
    status(
        Command::new("node")
            .args(["bench/browser.mjs", secs, &source])
            .env("PODTAP_BIN", target_dir().join("release/podtap"))
            .env("PODTAP_ASSETS", root().join("dist"))
            .current_dir(root().join("end2end")),
    )
}

/// The map benchmark: a synthetic cluster's capture and List (backend/examples/synth_cluster.rs:
/// `pods` pods, `pairs` caller → callee pairs) replayed by a release podtap, the map in Chromium
/// (end2end/bench/map.mjs).
pub fn bench_map(secs: &str, pods: &str, pairs: &str) -> Result<()> {
    setup::for_tests()?;
    step("bench-map: cargo build --release -p podtap (and the synthetic cluster), the app in release");
    cargo(&["build", "--release", "-p", "podtap", "--bin", "podtap", "--example", "synth_cluster"])?;
    crate::build::frontend(false)?;
    let dir = target_dir().join(if pods == "1000" && pairs == "3000" {
        "synth-cluster".to_string()
    } else {
        format!("synth-cluster-{pods}-{pairs}")
    });
    status(Command::new(target_dir().join("release/examples/synth_cluster")).arg(&dir).args([pods, pairs]))?;
    step(&format!("bench-map: first full map, levels, pan and zoom; then {secs} s live"));
    status(
        Command::new("node")
            .args(["bench/map.mjs", dir.to_str().unwrap_or_default(), secs])
            .env("PODTAP_BIN", target_dir().join("release/podtap"))
            .env("PODTAP_ASSETS", root().join("dist"))
            .current_dir(root().join("end2end")),
    )
}

/// Regenerates the built-in demo from a fresh lab run.
pub fn regenerate_demo() -> Result<()> {
    let out = target_dir().join("lab-demo");
    run_lab(&out)?;
    let demo = root().join("backend/demo");
    for f in ["capture.pcapng", "cluster.json", "ground-truth.json"] {
        std::fs::copy(out.join(f), demo.join(f)).with_context(|| format!("copying {f}"))?;
    }
    eprintln!("xtask: backend/demo updated; rebuild podtap to embed it");
    Ok(())
}

/// The file benchmark: a large lab capture (nginx + wrk through the ClusterIP, `secs` per phase),
/// then bench.py's interleaved timings of podtap, tcpdump and tshark on it.
pub fn bench(secs: &str) -> Result<()> {
    setup::for_bench()?;
    if !is_root() {
        bail!("the benchmark capture needs root (network namespaces): run `sudo cargo xtask bench`");
    }
    let out = target_dir().join("bench");
    step("bench: cargo build --release -p podtap");
    cargo(&["build", "--release", "-p", "podtap"])?;
    step(&format!("bench: capture ({secs} s keep-alive + {secs} s new connection per request), podtap live beside"));
    status(
        Command::new("bash")
            .arg(root().join("end2end/lab/bench-capture.sh"))
            .arg(&out)
            .arg(secs)
            .env("PODTAP", target_dir().join("release/podtap")),
    )?;
    step("bench: podtap vs tcpdump vs tshark");
    status(
        Command::new("python3")
            .arg(root().join("end2end/bench/bench.py"))
            .arg(&out)
            .arg(target_dir().join("release/podtap"))
            .args(["--runs", "5"]),
    )
}

/// The per-protocol benchmark: each database's own load generator against its real server
/// (end2end/lab/bench-db.sh: pgbench, redis-benchmark, mariadb-slap), then protocols.py's
/// interleaved timings of podtap and tcpdump on each capture — and on HTTP's, when `cargo xtask
/// bench` made one.
pub fn bench_protocols() -> Result<()> {
    setup::for_tests()?;
    if !is_root() {
        bail!("the benchmark captures need root (network namespaces): run `sudo cargo xtask bench-protocols`");
    }
    let out = target_dir().join("bench-db");
    step("bench-protocols: cargo build --release -p podtap");
    cargo(&["build", "--release", "-p", "podtap"])?;
    step(
        "bench-protocols: captures of pgbench, redis-benchmark, mariadb-slap and Kafka's perf tools against real servers",
    );
    status(Command::new("bash").arg(root().join("end2end/lab/bench-db.sh")).arg(&out))?;
    step("bench-protocols: podtap vs tcpdump per protocol");
    let mut bench = Command::new("python3");
    bench.arg(root().join("end2end/bench/protocols.py")).arg(&out).arg(target_dir().join("release/podtap"));
    let http = target_dir().join("bench/capture.pcapng");
    if http.exists() {
        bench.arg("--http").arg(http);
    }
    status(&mut bench)
}

/// Every cargo-fuzz target under `fuzz/`: a parser each (file readers, link types and tunnels,
/// defragmentation, HTTP/1, HTTP/2 + HPACK + gRPC, DNS over UDP and TCP, TLS, PROXY protocol,
/// PostgreSQL, MySQL, Redis, Kafka, WebSocket),
/// reassembly, the protocol dispatcher and the merger.
const FUZZ_TARGETS: &[&str] = &[
    "capture_file",
    "ingest",
    "decode",
    "defrag",
    "reassembly",
    "tcp_dissectors",
    "http1",
    "http2",
    "tls",
    "dns",
    "dns_tcp",
    "postgres",
    "mysql",
    "redis",
    "kafka",
    "websocket",
    "proxy",
    "merger",
    "query",
];

/// Whether rustup has a nightly toolchain (sanitizer coverage needs one).
fn have_nightly() -> Result<bool> {
    let toolchains = Command::new("rustup").args(["toolchain", "list"]).output().context("rustup is needed")?;
    Ok(String::from_utf8_lossy(&toolchains.stdout).contains("nightly"))
}

/// Installs the nightly toolchain (minimal profile) when rustup lacks it: a new machine has
/// only what the project installs.
fn ensure_nightly() -> Result<()> {
    if !have_nightly()? {
        step("rustup toolchain install nightly --profile minimal");
        status(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))
            .context("the fuzz targets need a nightly toolchain")?;
    }
    Ok(())
}

/// Installs cargo-fuzz when missing and seeds the capture corpus with the demo.
fn prepare_fuzz() -> Result<PathBuf> {
    if Command::new("cargo").args(["fuzz", "--version"]).output().map_or(true, |o| !o.status.success()) {
        step("cargo install cargo-fuzz --locked");
        status(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let dir = root().join("fuzz");
    let seeds = dir.join("corpus/capture_file");
    std::fs::create_dir_all(&seeds)?;
    std::fs::copy(root().join("backend/demo/capture.pcapng"), seeds.join("demo.pcapng"))?;
    Ok(dir)
}

/// `cargo +nightly fuzz build PROFILE…` in `dir`.
fn fuzz_build_command(dir: &Path, profile: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["+nightly", "fuzz", "build"]).args(profile).current_dir(dir);
    cmd
}

/// Runs every fuzz target for `secs` seconds (already built with `profile`), one per core at a
/// time: libFuzzer runs on one thread. Each run's output goes to `target/fuzz-logs/TARGET.log`;
/// a failure shows the end of it.
fn run_fuzz_targets(dir: &Path, secs: &str, profile: &[&str]) -> Result<()> {
    let logs = target_dir().join("fuzz-logs");
    std::fs::create_dir_all(&logs)?;
    let at_once = std::thread::available_parallelism().map_or(1, usize::from).min(FUZZ_TARGETS.len());
    step(&format!(
        "fuzz: {} targets for {secs} s each, {at_once} at a time (logs: {})",
        FUZZ_TARGETS.len(),
        logs.display()
    ));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..at_once {
            scope.spawn(|| {
                while let Some(target) = FUZZ_TARGETS.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    let log = logs.join(format!("{target}.log"));
                    let outcome = fuzz_one(dir, target, secs, profile, &log);
                    match &outcome {
                        Ok(()) => eprintln!("xtask: fuzz {target}: no crash in {secs} s"),
                        Err(e) => eprintln!("xtask: fuzz {target}: {e:#}"),
                    }
                    if outcome.is_err() {
                        failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((*target, log));
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (target, log) in &failed {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("\n--- the end of {target}'s run ({}):", log.display());
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
    }
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|(t, _)| *t).collect();
        bail!("fuzzing found a crash in {}: the input is under fuzz/artifacts/", names.join(", "));
    }
    Ok(())
}

/// One fuzz target for `secs` seconds, its output into `log`.
fn fuzz_one(dir: &Path, target: &str, secs: &str, profile: &[&str], log: &Path) -> Result<()> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let st = Command::new("cargo")
        .args(["+nightly", "fuzz", "run"])
        .args(profile)
        .args([target, "--"])
        .arg(format!("-max_total_time={secs}"))
        .arg("-rss_limit_mb=4096")
        .current_dir(dir)
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("cannot start cargo +nightly fuzz run")?;
    if !st.success() {
        bail!("failed ({st})");
    }
    Ok(())
}

/// Runs every fuzz target for `secs` seconds, optimised (`-O`) or as a quicker-to-build dev
/// build (`--dev`, with debug assertions). Needs the nightly toolchain; installs cargo-fuzz when
/// missing. A crash fails the run and leaves its input under `fuzz/artifacts/TARGET/`.
pub fn fuzz(secs: &str, optimised: bool) -> Result<()> {
    let profile = [if optimised { "-O" } else { "--dev" }];
    ensure_nightly()?;
    let dir = prepare_fuzz()?;
    step(&format!("cargo +nightly fuzz build {}", profile[0]));
    status(&mut fuzz_build_command(&dir, &profile))?;
    run_fuzz_targets(&dir, secs, &profile)
}

/// The test command's fuzz build, started in the background (`nice -n 19`, its output in
/// `target/fuzz-build.log`), the nightly toolchain installed first when missing. Dropped
/// unfinished (a step before the lab failed), it stops the build.
struct FuzzBuild(Option<(PathBuf, PathBuf, std::process::Child)>);

/// A dev build without AddressSanitizer: a few seconds per target are a smoke test, not a search
/// (the targets are safe Rust; `cargo xtask fuzz` searches with it). A clean dev build takes half
/// the time of an optimised one, and one without the sanitizer instruments no dependency for it.
const BRIEF_PROFILE: [&str; 3] = ["--dev", "--sanitizer", "none"];

impl FuzzBuild {
    fn start() -> Result<Self> {
        ensure_nightly()?;
        let dir = prepare_fuzz()?;
        let log_path = target_dir().join("fuzz-build.log");
        std::fs::create_dir_all(target_dir())?;
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let build = fuzz_build_command(&dir, &BRIEF_PROFILE);
        let mut cmd = Command::new("nice");
        cmd.arg("-n19").arg(build.get_program()).args(build.get_args()).current_dir(&dir);
        // Its own process group, so that stopping it stops its compilers too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.stdout(log.try_clone()?).stderr(log);
        step(&format!(
            "cargo +nightly fuzz build {}: in the background (log: {})",
            BRIEF_PROFILE.join(" "),
            log_path.display()
        ));
        let child = cmd.spawn().context("cannot start cargo +nightly fuzz build")?;
        Ok(Self(Some((dir, log_path, child))))
    }

    /// Waits for the build (a failure shows the end of its log); the fuzz directory.
    fn finish(mut self) -> Result<PathBuf> {
        let (dir, log_path, mut child) = self.0.take().context("the fuzz build was already waited for")?;
        step("cargo +nightly fuzz build: waiting for the background build");
        let st = child.wait().context("waiting for cargo +nightly fuzz build")?;
        if !st.success() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            bail!(
                "cargo +nightly fuzz build {} failed ({st}); its log: {}",
                BRIEF_PROFILE.join(" "),
                log_path.display()
            );
        }
        Ok(dir)
    }
}

impl Drop for FuzzBuild {
    fn drop(&mut self) {
        // The whole group: cargo and the compilers it started.
        if let Some((_, _, mut child)) = self.0.take() {
            let _ = Command::new("kill").arg("-KILL").arg(format!("-{}", child.id())).status();
            let _ = child.wait();
        }
    }
}

/// The test command's fuzzing: every target briefly. (`cargo xtask fuzz SECONDS` runs them for
/// longer.)
fn fuzz_briefly(dir: PathBuf) -> Result<()> {
    run_fuzz_targets(&dir, "4", &BRIEF_PROFILE)
}
