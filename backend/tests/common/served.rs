//! A podtap `serve` or `hub` as its tests see it from outside: its HTTP API over a real socket,
//! and the checks of a demo replay named from an API server (every pod named, balance exact).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `GET path` from a podtap on `addr`: the status code and the JSON body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Value)> {
    http_get_with(addr, path, &[])
}

/// `http_get` with request headers.
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Option<(u16, Value)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split(' ').nth(1)?.parse().ok()?;
    Some((code, serde_json::from_str(text.split("\r\n\r\n").nth(1)?).ok()?))
}

/// A podtap `serve` or `hub` listening where the kernel put it, and what it has logged.
pub struct Served {
    pub child: super::Running,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Starts `cmd` (a podtap `serve` or `hub`, without `--listen`) on a loopback port the kernel
/// picks as it binds, and reads which from its log (at most 60 s). A port chosen by the test and
/// freed for podtap to bind could be taken in between (an outgoing connection's, another test's);
/// this one is podtap's from the start.
pub fn start(cmd: &mut Command) -> Served {
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .env("PODTAP_LOG", "warn,podtap=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("podtap starts");
    let stderr = child.stderr.take().expect("its stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let kept = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("podtap serving http://").nth(1) {
                let addr: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
                let _ = tx.send(addr.parse::<SocketAddr>());
            }
            let mut log = kept.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let child = super::Running(child);
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(addr)) => addr,
        other => panic!("podtap did not say where it listens ({other:?}):\n{}", log.lock().unwrap()),
    };
    Served { child, addr, log, reader: Some(reader) }
}

impl Served {
    /// Ends it: everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.log.lock().unwrap().clone()
    }
}

/// A loopback port kept for a server that comes up late (or never) where a client already
/// points: bound, not listening, so every connection to it is refused and no other socket can bind
/// it, until `listen`. Below the kernel's ephemeral range, so no outgoing connection's own port is
/// it either (a client that keeps connecting to a free ephemeral port can even connect to itself:
/// TCP's simultaneous open). Fresh clone 18b lost a freed port to another bind; CI lost one to a
/// second test of the same binary that chose the same free port: held, it cannot be chosen twice.
pub struct Reserved(tokio::net::TcpSocket);

/// The first port below the ephemeral range that no socket holds, from where this process's id says
/// (two test binaries at once start apart), kept.
pub fn reserve() -> Reserved {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u16 = range.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(32768);
    let (from, span) = (10_000u16, low.saturating_sub(10_000).max(1));
    let start = std::process::id() as u16 % span;
    (0..span)
        .find_map(|i| {
            // No SO_REUSEADDR: a listener that sets it still cannot share the port.
            let socket = tokio::net::TcpSocket::new_v4().ok()?;
            socket.bind(SocketAddr::from(([127, 0, 0, 1], from + (start + i) % span))).ok()?;
            Some(Reserved(socket))
        })
        .expect("a free port below the ephemeral range")
}

impl Reserved {
    pub fn addr(&self) -> SocketAddr {
        self.0.local_addr().unwrap()
    }

    /// The server comes up: the same port, now accepting.
    pub fn listen(self) -> tokio::net::TcpListener {
        self.0.listen(1024).unwrap()
    }
}

/// Pods of the demo capture every named replay of it has on its map (by the end of the replay:
/// the gRPC calls come last).
const DEMO_PODS: &[&str] = &[
    "pod:default/curl-client",
    "pod:default/web-7d4b9c8f6-x2k9p",
    "pod:default/web-7d4b9c8f6-q8m3z",
    "pod:kube-system/coredns-5d78c9869d-7xkpl",
    "pod:default/greeter-6c8f9d7b5-m4t2w",
];

/// The pods on a map (`GET /api/v1/map`).
fn map_pods(map: &Value) -> Vec<&str> {
    let nodes = map["nodes"].as_array().map(Vec::as_slice).unwrap_or_default();
    nodes.iter().filter_map(|n| n["id"].as_str()).filter(|id| id.starts_with("pod:")).collect()
}

/// Once podtap on `addr` is ready and its balance of default/web holds every request its pods
/// logged (at most 30 s): its health, that balance and its map.
pub async fn named_and_exact(addr: SocketAddr, truth: &Value) -> Option<(Value, Value, Value)> {
    named_and_exact_within(addr, truth, Duration::from_secs(30)).await
}

/// `named_and_exact`, waiting up to `wait`.
pub async fn named_and_exact_within(addr: SocketAddr, truth: &Value, wait: Duration) -> Option<(Value, Value, Value)> {
    // Requests through default/web: what its pods logged, probes aside.
    let web_requests: u64 = truth["pods"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(pod, _)| pod.starts_with("default/web-"))
        .map(|(_, t)| t["requests"].as_u64().unwrap() - t["probe_requests"].as_u64().unwrap())
        .sum();
    let start = Instant::now();
    while start.elapsed() < wait {
        let health = http_get(addr, "/healthz");
        let balance = http_get(addr, "/api/v1/services/default/web/balance");
        if let (Some((200, h)), Some((200, b))) = (health, balance)
            && h["cluster"]["ready"] == true
            && b["requests"].as_u64() == Some(web_requests)
            && let Some((200, map)) = http_get(addr, "/api/v1/map")
            && DEMO_PODS.iter().all(|p| map_pods(&map).contains(p))
        {
            return Some((h, b, map));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Every pod the demo's servers logged is named on the map, nothing is left an address, and
/// each endpoint's requests and probes equal what it logged.
pub fn assert_names_and_balance(truth: &Value, health: &Value, balance: &Value, map: &Value) {
    assert_eq!(health["cluster"]["source"], "api");
    for e in balance["endpoints"].as_array().unwrap() {
        let t = &truth["pods"][e["pod"].as_str().unwrap()];
        assert_eq!(
            e["requests"].as_u64().unwrap() + e["probe_requests"].as_u64().unwrap(),
            t["requests"].as_u64().unwrap()
        );
    }
    let pods = map_pods(map);
    for expected in DEMO_PODS {
        assert!(pods.contains(expected), "{expected} on the map: {pods:?}");
    }
    assert!(
        !map["nodes"].as_array().unwrap().iter().any(|n| n["id"].as_str().unwrap().starts_with("ip:")),
        "every address named"
    );
}
