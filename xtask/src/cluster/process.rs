//! The lab cluster's processes: started in their own process groups (in a node's network
//! namespace when asked) with their output in `DIR/logs`, their pids kept in `DIR/pids`, and
//! found again after a crash by their executable (one of the cache's binaries).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::build::bin_dir;

/// Starts `bin/NAME ARGS` in its own process group, its output in `DIR/logs/NAME.log`, its pid
/// added to `DIR/pids`.
pub fn start(dir: &Path, bin: &Path, name: &str, args: &[String]) -> Result<()> {
    start_in(dir, None, name, &bin.join(name), args)
}

/// Starts `program ARGS` as `name` (its log `DIR/logs/NAME.log`), inside the network namespace
/// `netns` when one is given: `nsenter --net`, which execs the program (its pid is the program's)
/// and, unlike `ip netns exec`, keeps the root's mount namespace, where the node's agent must
/// mount the pods' namespaces for all to see.
pub fn start_in(dir: &Path, netns: Option<&str>, name: &str, program: &Path, args: &[String]) -> Result<()> {
    let log = std::fs::File::create(dir.join("logs").join(format!("{name}.log")))?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("--").arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().with_context(|| format!("cannot start {name}"))?;
    let mut pids = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
    pids += &format!("{name} {}\n", child.id());
    std::fs::write(dir.join("pids"), pids)?;
    Ok(())
}

/// Polls `ok` every 200 ms for up to `secs`; fails naming `what` and the log to read.
pub fn wait_for(what: &str, secs: u64, log: &Path, mut ok: impl FnMut() -> bool) -> Result<()> {
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

/// The processes `up` started, from `DIR/pids`: (name, pid).
pub fn pids(dir: &Path) -> Vec<(String, i32)> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, pid) = l.split_once(' ')?;
            Some((name.to_string(), pid.trim().parse().ok()?))
        })
        .collect()
}

pub fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

/// Every process whose executable is one of the cache's binaries (a crashed `up` left them).
pub fn strays() -> Vec<i32> {
    let bin = bin_dir();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(&bin)))
        .collect()
}
