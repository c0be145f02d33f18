//! Live capture keeps the last packets of an interface that goes away: a pod deleted right after
//! its last request takes its veth along, and the kernel hands a TPACKET_V3 block to the reader
//! only when it is full or its timeout passed. `podtap capture` on one end of a veth pair in a
//! network namespace the test makes; frames sent on the other end, and the pair deleted at once
//! (in the same process, microseconds later): every frame must be in the file. Needs root (run by
//! the test command in its lab step).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podtap::capture::CaptureFile;

/// The namespace, deleted however the test ends.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
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
