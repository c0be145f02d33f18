//! Installs what the tests need and the machine lacks: Debian packages (Chromium for the browser
//! test; dumpcap, iproute2, iptables and python3-grpcio for the lab; PostgreSQL 15, psycopg, Redis,
//! redis-py, MariaDB, DBD::MariaDB and websockets for its real servers; a JDK and Maven, which
//! fetches Apache Kafka's jars from Maven Central) and npm packages
//! (playwright-core; har-validator for the HAR 1.2 schema). Each is checked first, so running it
//! again costs a few milliseconds.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{build, root, status, step};

/// (command that must exist — or, with arguments, a check that must pass — and the Debian package
/// that provides it)
const DEBIAN: &[(&str, &str)] = &[
    ("chromium", "chromium"),
    ("dumpcap", "tshark"),
    ("tshark", "tshark"),
    ("tcpdump", "tcpdump"),
    ("iptables-restore", "iptables"),
    ("ip", "iproute2"),
    ("python3", "python3"),
    // The tests' HTTP checks, and the real cluster's certificates.
    ("curl", "curl"),
    ("openssl", "openssl"),
    // kube-proxy's nftables mode runs `nft`; the lab nodes' processes enter their namespaces
    // with `nsenter`.
    ("nft", "nftables"),
    ("nsenter", "util-linux"),
    // The lab's gRPC pods run on Debian's Python, whatever python3 comes first on PATH.
    ("/usr/bin/python3 -c 'import grpc'", "python3-grpcio"),
    // The database tier: real servers, and real clients with connection pools.
    ("/usr/lib/postgresql/15/bin/postgres", "postgresql-15"),
    ("/usr/bin/python3 -c 'import psycopg'", "python3-psycopg"),
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("/usr/bin/python3 -c 'import redis'", "python3-redis"),
    ("mariadbd", "mariadb-server"),
    ("perl -MDBD::MariaDB -e1", "libdbd-mariadb-perl"),
    ("/usr/bin/python3 -c 'import websockets'", "python3-websockets"),
    // Apache Kafka (its jars from Maven Central, end2end/lab/kafka.sh) runs on a JDK 17.
    ("javac", "openjdk-17-jdk-headless"),
    ("mvn", "maven"),
];

/// What the benchmark adds: a web server and a load generator.
const BENCH: &[(&str, &str)] = &[("nginx", "nginx-light"), ("wrk", "wrk")];

fn have(cmd: &str) -> bool {
    let check = if cmd.contains(' ') { format!("{cmd} 2>/dev/null") } else { format!("command -v {cmd}") };
    Command::new("sh").args(["-c", &check]).output().is_ok_and(|o| o.status.success())
}

/// Everything `cargo xtask test` uses.
pub fn for_tests() -> Result<()> {
    check_disk()?;
    build::ensure_wasm_target()?;
    debian(DEBIAN)?;
    let e2e = root().join("end2end");
    // Every dependency package.json names, installed (a new one since the last `npm ci` too).
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(e2e.join("package.json"))?)?;
    let wanted: Vec<&str> =
        manifest["dependencies"].as_object().map(|d| d.keys().map(String::as_str).collect()).unwrap_or_default();
    let installed = wanted.iter().all(|p| e2e.join("node_modules").join(p).join("package.json").is_file());
    if !installed {
        step(&format!("npm ci (end2end: {})", wanted.join(", ")));
        status(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&e2e))?;
    }
    // The bus the hub-replica tests run on (backend/tests/bus.rs), from its Go module.
    crate::bus::ensure_built()?;
    Ok(())
}

/// A clean build of everything the tests use takes about 2.5 GB under `target/`. Says so up front rather
/// than letting rustc fail half-way with "No space left on device".
fn check_disk() -> Result<()> {
    const NEEDED_GB: u64 = 8;
    let out = Command::new("df").args(["-Pk"]).arg(root()).output().context("running df")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(free_kb) = text.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok()) else {
        return Ok(()); // df's output is not what we expect: let the build find out.
    };
    let free_gb = free_kb / (1024 * 1024);
    if free_gb < NEEDED_GB {
        bail!("only {free_gb} GB free under {}: the tests need about {NEEDED_GB} GB to build", root().display());
    }
    Ok(())
}

/// Everything `cargo xtask bench` uses.
pub fn for_bench() -> Result<()> {
    debian(DEBIAN)?;
    debian(BENCH)
}

/// Installs the Debian packages whose commands are missing.
fn debian(wanted: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = wanted.iter().filter(|(cmd, _)| !have(cmd)).map(|(_, pkg)| *pkg).collect();
    missing.dedup();
    if !missing.is_empty() {
        if !have("apt-get") {
            bail!("missing {} and no apt-get to install them with", missing.join(", "));
        }
        step(&format!("apt-get install {}", missing.join(" ")));
        status(Command::new("apt-get").args(["update", "-qq"]))?;
        status(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    Ok(())
}
