//! Live capture keeps the last packets of an interface that goes away: a pod deleted right after
//! its last request takes its veth along, and the kernel hands a TPACKET_V3 block to the reader
//! only when it is full or its timeout passed. `podtap capture` on one end of a veth pair in a
//! network namespace the test makes; frames sent on the other end, and the pair deleted at once
//! (in the same process, microseconds later): every frame must be in the file. And what was seen
//! only on that interface is finished when it goes: a request to a pod deleted before it answered
//! is a record at once (no response), not after the five-minute idle timeout. Needs root (run by
//! the test command in its lab step).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podtap::capture::CaptureFile;

/// The namespace, deleted however the test ends (its processes first).
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    assert!(Command::new("ip").args(args).status().expect("ip runs").success(), "ip {}", args.join(" "));
}

/// Sends `n` IPv4/UDP frames out of `va` with a packet socket, then deletes the pair.
const SEND_AND_DELETE: &str = r#"
import os, socket, struct, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("va", 0))
payload = b"podtap-gone"
udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                 bytes([10, 252, 0, 1]), bytes([10, 252, 0, 2])) + udp
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip
for _ in range(n):
    s.send(frame)
os.system("ip link del va")
"#;

#[test]
#[ignore = "needs root: cargo xtask test runs it in the lab step"]
fn the_last_frames_of_an_interface_that_goes_away_are_kept() {
    let ns = Namespace(format!("ptl-gone-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    ip(&["-n", &ns.0, "link", "set", "va", "up"]);
    ip(&["-n", &ns.0, "link", "set", "vb", "up"]);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&ns.0);
    std::fs::create_dir_all(&dir).unwrap();
    let (file, log) = (dir.join("gone.pcapng"), dir.join("capture.err"));
    let capture = Command::new("ip")
        .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_podtap"), "capture", "-i", "vb", "-w"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("podtap capture");
    let capture = common::Running(capture);
    let start = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("capturing on vb") {
        assert!(start.elapsed() < Duration::from_secs(30), "podtap capture did not start: {log:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    const FRAMES: usize = 20;
    let sent = Command::new("ip")
        .args(["netns", "exec", &ns.0, "python3", "-c", SEND_AND_DELETE, &FRAMES.to_string()])
        .status()
        .expect("python3 runs");
    assert!(sent.success());
    // Until podtap says the interface is gone, and a little more than its linger after that.
    let start = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("stopped capturing on vb") {
        assert!(start.elapsed() < Duration::from_secs(10), "podtap did not see vb go");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(Command::new("kill").args(["-INT", &capture.0.id().to_string()]).status().unwrap().success());
    let start = Instant::now();
    let mut capture = capture;
    while capture.0.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "podtap capture did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Ours: the link's own (IPv6 neighbour discovery on a new link) are not counted.
    let file = CaptureFile::open(&file).expect("the capture file");
    let frames =
        file.frames().filter(|f| f.as_ref().is_ok_and(|f| f.data.windows(11).any(|w| w == b"podtap-gone"))).count();
    assert_eq!(frames, FRAMES, "every frame sent before the interface went ({log:?})");
}

/// In the client's namespace: connects to the server, sends one request, says so, and waits.
const ASK_AND_WAIT: &str = r#"
import socket, sys, time
s = socket.create_connection(("10.252.1.2", 8080))
s.sendall(b"GET /never-answered HTTP/1.1\r\nHost: gone\r\n\r\n")
print("sent", flush=True)
time.sleep(600)
"#;

/// In the server's namespace: accepts, reads, never answers.
const ACCEPT_AND_HOLD: &str = r#"
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.252.1.2", 8080))
s.listen()
print("listening", flush=True)
held = [s.accept()]
time.sleep(600)
"#;

/// `GET PATH` on podtap's API inside namespace `ns`, as JSON (None while it does not answer).
fn api(ns: &str, port: u16, path: &str) -> Option<serde_json::Value> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sf", "--max-time", "5", &format!("http://127.0.0.1:{port}{path}")])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it in the lab step"]
fn a_request_on_an_interface_that_goes_away_is_a_record_at_once() {
    let tag = std::process::id();
    let (client, server) = (Namespace(format!("ptl-gc-{tag}")), Namespace(format!("ptl-gs-{tag}")));
    ip(&["netns", "add", &client.0]);
    ip(&["netns", "add", &server.0]);
    ip(&["-n", &client.0, "link", "set", "lo", "up"]);
    ip(&["-n", &client.0, "link", "add", "vgone", "type", "veth", "peer", "name", "eth0", "netns", &server.0]);
    ip(&["-n", &client.0, "addr", "add", "10.252.1.1/24", "dev", "vgone"]);
    ip(&["-n", &server.0, "addr", "add", "10.252.1.2/24", "dev", "eth0"]);
    ip(&["-n", &client.0, "link", "set", "vgone", "up"]);
    ip(&["-n", &server.0, "link", "set", "eth0", "up"]);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&client.0);
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("cluster.json");
    std::fs::write(&empty, r#"{"kind":"List","apiVersion":"v1","items":[]}"#).unwrap();
    let log = dir.join("serve.err");
    let port = 18000 + (tag % 1000) as u16;
    let serve = Command::new("ip")
        .args(["netns", "exec", &client.0, env!("CARGO_BIN_EXE_podtap"), "serve", "-i", "vgone*", "--cluster"])
        .arg(&empty)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("podtap serve");
    let _serve = common::Running(serve);
    until("podtap capturing on vgone", Duration::from_secs(30), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("capturing on vgone")
    });
    until("podtap's API", Duration::from_secs(30), || api(&client.0, port, "/healthz").is_some());
    let spawn_py = |ns: &str, script: &str| {
        Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .map(common::Running)
            .expect("python3 runs")
    };
    let first_line = |p: &mut common::Running| {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(p.0.stdout.as_mut().unwrap()), &mut line).unwrap();
        line
    };
    let mut holder = spawn_py(&server.0, ACCEPT_AND_HOLD);
    assert_eq!(first_line(&mut holder).trim(), "listening");
    let mut asker = spawn_py(&client.0, ASK_AND_WAIT);
    assert_eq!(first_line(&mut asker).trim(), "sent");
    let http = || {
        api(&client.0, port, "/api/v1/records?kind=all&limit=100").map_or(Vec::new(), |p| {
            p["records"].as_array().unwrap().iter().filter(|r| r["kind"] == "http").cloned().collect::<Vec<_>>()
        })
    };
    // The request is on the wire, unanswered: no record while its connection may still answer.
    assert!(http().is_empty(), "an open request is not a record yet");
    // The server's pod goes, and its veth with it.
    ip(&["-n", &server.0, "link", "del", "eth0"]);
    until("podtap to see vgone go", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("stopped capturing on vgone")
    });
    // Within seconds, not the idle timeout's five minutes.
    until("the unanswered request as a record", Duration::from_secs(20), || !http().is_empty());
    let records = http();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["path"], "/never-answered", "{r}");
    assert!(r["status"].is_null(), "no response: {r}");
    let health = api(&client.0, port, "/healthz").expect("/healthz");
    assert_eq!(health["engine"]["tcp"]["interface_gone"], 1, "{}", health["engine"]);
}
