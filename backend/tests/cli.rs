//! The `podtap` binary as users and scripts meet it: the `analyze` output contracts of DESIGN.md,
//! and one clear sentence (never a panic) for bad input, with everything readable still reported.

mod common;

use std::process::{Command, Output};

fn podtap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podtap")).args(args).env("PODTAP_LOG", "warn").output().expect("podtap runs")
}

fn demo(name: &str) -> String {
    common::demo_dir().join(name).display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn jsonl_has_every_contract_field_on_every_line() {
    let out = podtap(&["analyze", &demo("capture.pcapng"), "--cluster", &demo("cluster.json"), "--format", "jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let http: Vec<&serde_json::Value> = lines.iter().filter(|r| r["kind"] == "http").collect();
    let dns: Vec<&serde_json::Value> = lines.iter().filter(|r| r["kind"] == "dns").collect();
    let grpc: Vec<&serde_json::Value> = lines.iter().filter(|r| r["kind"] == "grpc").collect();
    // One record per request (what the lab's servers logged: HTTP requests, DNS queries and gRPC
    // calls); `--per-interface` gives one per observation.
    let truth = common::ground_truth(&common::demo_dir());
    let served: u64 = truth["pods"].as_object().unwrap().values().map(|p| p["requests"].as_u64().unwrap()).sum();
    let expected = (served as usize, truth["dns"]["queries"].as_u64().unwrap() as usize, 34);
    assert_eq!((http.len(), dns.len(), grpc.len()), expected);
    assert_eq!(lines.iter().filter(|r| r["kind"] != "tcp").count(), 442);
    // One `tcp` record per connection: each pod's equal what its server logged.
    let tcp: Vec<&serde_json::Value> = lines.iter().filter(|r| r["kind"] == "tcp").collect();
    for (pod, logged) in truth["pods"].as_object().unwrap() {
        let seen = tcp
            .iter()
            .filter(|r| {
                format!("{}/{}", r["dst"]["namespace"].as_str().unwrap_or(""), r["dst"]["name"].as_str().unwrap_or(""))
                    == *pod
            })
            .count();
        assert_eq!(seen as u64, logged["connections"].as_u64().unwrap(), "connections of {pod}");
    }
    for r in &tcp {
        for key in
            ["ts", "end_us", "conn", "src", "dst", "via", "close", "handshake", "retransmissions", "gaps", "requests"]
        {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
    }
    for r in lines.iter().filter(|r| r["kind"] != "tcp") {
        assert!(r["end_us"].as_u64().unwrap() >= r["ts"].as_u64().unwrap(), "a request ends after it starts: {r}");
    }
    for r in &grpc {
        for key in
            ["ts", "conn", "src", "dst", "via", "path", "grpc_service", "grpc_method", "grpc_status", "latency_us"]
        {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
    }
    for r in &dns {
        for key in ["ts", "conn", "src", "dst", "via", "query", "qtype", "rcode", "latency_us"] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
    }
    for r in &http {
        for key in [
            "kind",
            "ts",
            "conn",
            "src",
            "dst",
            "via",
            "probe",
            "observations",
            "method",
            "path",
            "status",
            "latency_us",
        ] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        for side in ["src", "dst"] {
            for key in ["ip", "port", "kind"] {
                assert!(r[side].get(key).is_some(), "missing {side}.{key} in {r}");
            }
        }
        assert!(r["via"].get("kind").is_some() && r["via"].get("service").is_some());
        let expected = if r["probe"] == true { 1 } else { 2 }; // probes cross only the pod's veth
        assert_eq!(r["observations"], expected, "{r}");
    }
    let named = lines
        .iter()
        .filter(|r| r["dst"]["kind"] == "pod")
        .all(|r| r["dst"]["name"].is_string() && r["dst"]["namespace"].is_string());
    assert!(named);
    assert!(!lines.iter().any(|r| r.to_string().contains("lab-secret-token")), "Authorization is redacted");
    assert!(lines.iter().any(|r| r["headers"]["authorization"] == "[redacted]"));
}

#[test]
fn per_interface_gives_one_record_per_observation() {
    let args = ["analyze", &demo("capture.pcapng"), "--cluster", &demo("cluster.json"), "--format", "jsonl"];
    let merged = podtap(&args);
    let per_interface = podtap(&[&args[..], &["--per-interface"]].concat());
    let count = |o: &Output| String::from_utf8_lossy(&o.stdout).lines().count();
    // Requests and connections (442 + 129 merged; 834 + 208 observations).
    assert_eq!((count(&merged), count(&per_interface)), (571, 1042));
    let sum: u64 = String::from_utf8_lossy(&merged.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["observations"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 1042, "every observation is in exactly one record");
}

#[test]
fn summary_matches_its_snapshot() {
    let out = podtap(&["analyze", &demo("capture.pcapng"), "--cluster", &demo("cluster.json"), "--format", "summary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("demo_summary", summary);
    assert!(
        stderr(&out).contains("418 HTTP exchanges, 348 DNS queries (6 over TCP), 0 TLS handshakes, 68 gRPC calls"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_table_is_for_people() {
    let out = podtap(&["analyze", &demo("capture.pcapng"), "--cluster", &demo("cluster.json")]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("TIME"));
    assert!(text.lines().any(|l| l.contains("GET") && l.contains("/health") && l.ends_with("(probe)")));
    assert!(text.lines().any(|l| l.contains("DNS")
        && l.contains("AAAA web.default.default.svc.cluster.local")
        && l.contains("NXDOMAIN")));
    assert!(text.lines().any(|l| l.contains(" gRPC ") && l.contains(" demo.Greeter/Fail ") && l.contains("NOT_FOUND")));
    assert_eq!(text.lines().count(), 443);
}

#[test]
fn a_garbage_file_is_one_clear_sentence() {
    let dir = std::env::temp_dir().join(format!("podtap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pcap");
    std::fs::write(&garbage, b"<html>not a capture</html>").unwrap();
    let out = podtap(&["analyze", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("garbage.pcap: not a pcap or pcapng file (starts with 0x3c68746d)"), "{err}");
    assert!(!err.contains("panicked"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_truncated_capture_reports_everything_before_the_cut() {
    let dir = std::env::temp_dir().join(format!("podtap-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let whole = std::fs::read(demo("capture.pcapng")).unwrap();
    let cut = dir.join("cut.pcapng");
    std::fs::write(&cut, &whole[..whole.len() / 2 + 3]).unwrap();
    let out = podtap(&["analyze", cut.to_str().unwrap(), "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let found = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(found > 100 && found < 580, "the exchanges before the cut, got {found}");
    let err = stderr(&out);
    assert!(err.contains("cut.pcapng: damaged at byte") && err.contains("packets before it were read"), "{err}");
    assert!(!err.contains("panicked"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_files_and_bad_cluster_files_are_named() {
    let out = podtap(&["analyze", "/nonexistent/x.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/x.pcap"), "{}", stderr(&out));
    let out = podtap(&["analyze", &demo("capture.pcapng"), "--cluster", &demo("capture.pcapng")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is neither JSON nor YAML"), "{}", stderr(&out));
}

#[test]
fn serve_refuses_an_open_listener_without_a_token() {
    let out = podtap(&["serve", "--listen", "0.0.0.0:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("refusing to listen on 0.0.0.0:1 without --token"), "{}", stderr(&out));
}

#[test]
fn progress_is_plain_lines_when_forced_off_a_terminal_and_absent_by_default() {
    let capture = demo("capture.pcapng");
    let forced = podtap(&["analyze", &capture, "--format", "summary", "--progress", "always"]);
    assert!(forced.status.success());
    let err = stderr(&forced);
    assert!(err.lines().any(|l| l.starts_with("podtap: ") && l.contains("capture.pcapng: 100% (")), "{err}");
    let quiet = podtap(&["analyze", &capture, "--format", "summary"]);
    assert!(!stderr(&quiet).contains("100%"), "no bar when stderr is not a terminal");
    assert_eq!(forced.stdout, quiet.stdout, "progress never touches the output");
}

#[test]
fn capture_needs_something_to_capture_and_names_a_missing_interface() {
    let out = podtap(&["capture", "-w", "/dev/null"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing to capture on: give --interface NAME or --pod-interfaces"),
        "{}",
        stderr(&out)
    );
    let out = podtap(&["capture", "-i", "podtap-none0", "-w", "/dev/null"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no interface named podtap-none0"), "{}", stderr(&out));
}

#[test]
fn from_and_to_limit_every_format_to_a_window() {
    let args = ["analyze", &demo("capture.pcapng"), "--cluster", &demo("cluster.json"), "--format", "jsonl"];
    let all = podtap(&args);
    let ts: Vec<u64> = String::from_utf8_lossy(&all.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["ts"].as_u64().unwrap())
        .collect();
    let mut sorted = ts.clone();
    sorted.sort_unstable();
    let (from, to) = (sorted[100].to_string(), sorted[300].to_string());
    let window = [&args[..], &["--from", &from, "--to", &to]].concat();
    let cut = podtap(&window);
    assert!(cut.status.success(), "{}", stderr(&cut));
    let inside: Vec<u64> = String::from_utf8_lossy(&cut.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["ts"].as_u64().unwrap())
        .collect();
    assert_eq!(inside.len(), ts.iter().filter(|t| (sorted[100]..=sorted[300]).contains(*t)).count());
    // The summary of the same window counts those connections only.
    let summary = [&args[..5], &["summary", "--from", &from, "--to", &to]].concat();
    let out = podtap(&summary);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tcp_inside = String::from_utf8_lossy(&cut.stdout).lines().filter(|l| l.contains(r#""kind":"tcp""#)).count();
    assert_eq!(s["tcp"]["connections"].as_u64(), Some(tcp_inside as u64));
    // A time podtap cannot read is one sentence.
    let bad = podtap(&[&args[..], &["--from", "yesterday"]].concat());
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("`yesterday` is not a time"), "{}", stderr(&bad));
}

/// A PostgreSQL simple query with literals, and the server's answer (protocol v3, "Simple Query").
fn postgres_query_pcap(dir: &std::path::Path) -> String {
    let message = |tag: u8, body: &[u8]| [&[tag][..], &(body.len() as u32 + 4).to_be_bytes(), body].concat();
    let query = message(b'Q', b"SELECT * FROM users WHERE email = 'ann@example.com' AND id = 42\0");
    let answer = [message(b'C', b"SELECT 0\0"), message(b'Z', b"I")].concat();
    let frames: Vec<Vec<u8>> =
        common::packets::http_conversation(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 5432), &query, &answer)
            .iter()
            .map(|ip| common::packets::ethernet(0x0800, ip))
            .collect();
    let path = dir.join("query.pcap");
    std::fs::write(&path, common::packets::pcap_bytes(1, &frames)).unwrap();
    path.display().to_string()
}

#[test]
fn sql_literals_stay_on_the_node_unless_asked_for() {
    let dir = std::env::temp_dir().join(format!("podtap-cli-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = postgres_query_pcap(&dir);
    let statement = |args: &[&str]| {
        let out = podtap(args);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        let record = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["kind"] == "postgres");
        record.expect("a postgres record")["statement"].as_str().unwrap().to_string()
    };
    assert_eq!(statement(&["analyze", &file, "--format", "jsonl"]), "SELECT * FROM users WHERE email = ? AND id = ?");
    assert_eq!(
        statement(&["analyze", &file, "--format", "jsonl", "--keep-sql-literals"]),
        "SELECT * FROM users WHERE email = 'ann@example.com' AND id = 42"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
