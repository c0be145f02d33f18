//! Several nodes, one hub: the lab capture cut in two as if the client pod sat on another node
//! (its veth's packets in one file, every other interface's in the other) must give the records
//! the whole capture gives — a request seen before DNAT on one node and after it on the other
//! is one record — through `analyze FILE@NODE…` and through two `podtap agent`s and one
//! `podtap hub` over real sockets. The protocol's refusals are checked on the wire.

mod common;

use common::two_nodes::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podtap_shared::Record;

const BIN: &str = env!("CARGO_BIN_EXE_podtap");

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podtap-agents-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn captures_of_two_nodes_merge_into_the_records_of_one() {
    let dir = tmp("analyze");
    let (client, lab) = split(&common::demo_dir().join("capture.pcapng"), |n| n == CLIENT_VETH, &dir);
    let cluster = two_node_cluster(&dir);
    let cut = analyze(&[
        &format!("{}@client-node", client.display()),
        &format!("{}@lab-node", lab.display()),
        "--cluster",
        cluster.to_str().unwrap(),
    ]);
    let whole = whole();
    assert_eq!(shapes(&cut), shapes(&whole));
    assert_eq!(connections(&cut), connections(&whole));
    // The client's requests were seen on both nodes, and say so.
    let crossed = cut.iter().filter(|r| r.nodes.len() == 2).count();
    let from_client =
        whole.iter().filter(|r| r.src.name.as_deref() == Some("curl-client") && r.observations >= 2).count();
    assert!(from_client > 100, "{from_client}");
    assert_eq!(crossed, from_client);
    std::fs::remove_dir_all(dir).unwrap();
}

use common::Running;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn hub(cluster: &Path, token: Option<&str>) -> (Running, u16, u16) {
    hub_named(Command::new(BIN).args(["hub", "--cluster"]).arg(cluster), token)
}

/// A hub (`cmd`, with where its names come from), on free ports, once it listens for agents.
fn hub_named(cmd: &mut Command, token: Option<&str>) -> (Running, u16, u16) {
    let (listen, ingest) = (free_port(), free_port());
    cmd.arg("--capture-clock");
    cmd.args(["--listen", &format!("127.0.0.1:{listen}"), "--ingest", &format!("127.0.0.1:{ingest}")]);
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let child = Running(cmd.stderr(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", ingest)).is_err() {
        assert!(Instant::now() < deadline, "the hub never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, listen, ingest)
}

/// `/healthz` once `ready` holds (the hub publishes agents' status every half second), at most 10 s.
fn wait_health(port: u16, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("curl")
            .args(["-s", "-H", "Authorization: Bearer s3cret", &format!("http://127.0.0.1:{port}/healthz")])
            .output()
            .unwrap();
        let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if ready(&health) || Instant::now() > deadline {
            return health;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The demo capture cut in two, a hub with the token, and an agent replaying each half as its node
/// (with `extra` flags): the cluster file, the hub's listen port, the agents and the hub.
fn two_nodes(dir: &Path, extra: &[&str], stderr: fn() -> Stdio) -> (PathBuf, u16, Vec<Child>, Running) {
    let (client, lab) = split(&common::demo_dir().join("capture.pcapng"), |n| n == CLIENT_VETH, dir);
    let cluster = two_node_cluster(dir);
    let (hub, listen, ingest) = hub(&cluster, Some("s3cret"));
    let hub_url = format!("http://127.0.0.1:{ingest}");
    let agents = [(&client, "client-node"), (&lab, "lab-node")]
        .into_iter()
        .map(|(file, node)| {
            Command::new(BIN)
                .args(["agent", "--hub", &hub_url, "--node", node])
                .args(extra)
                .arg("--pcap")
                .arg(file)
                .env("PODTAP_TOKEN", "s3cret")
                .stderr(stderr())
                .spawn()
                .unwrap()
        })
        .collect();
    (cluster, listen, agents, hub)
}

#[test]
fn two_agents_and_a_hub_give_the_records_of_the_whole_capture() {
    let dir = tmp("hub");
    let (_cluster, listen, agents, _hub) = two_nodes(&dir, &[], Stdio::piped);
    for a in agents {
        let out = a.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let auth = |path: &str| {
        let out = Command::new("curl")
            .args(["-sf", "-H", "Authorization: Bearer s3cret", &format!("http://127.0.0.1:{listen}{path}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET {path}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let page = auth("/api/v1/records?limit=10000&kind=all");
    let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap();
    let whole = whole();
    assert_eq!(shapes(&records), shapes(&whole));
    assert_eq!(connections(&records), connections(&whole));
    let health = wait_health(listen, |h| {
        h["agents"].as_array().is_some_and(|a| a.iter().all(|a| a["sessions"] == 1 && a["connected"] == false))
    });
    let agents = health["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{agents:?}");
    for a in agents {
        assert_eq!(a["dropped_batches"], 0);
        assert!(a["observations"].as_u64().unwrap() > 0, "{a}");
    }
    // Grafana's service graph reads the same requests from /metrics.
    let out = Command::new("curl")
        .args(["-sf", "-H", "Authorization: Bearer s3cret", &format!("http://127.0.0.1:{listen}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let served = |server: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("traces_service_graph_request_total{") && l.contains(&format!("server=\"{server}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let web =
        whole.iter().filter(|r| r.is_request() && !r.probe && r.dst.workload.as_deref() == Some("Deployment/web"));
    assert_eq!(served("default/web"), web.count() as u64, "{text}");
    assert!(text.contains("podtap_agent_connected{node=\"lab-node\"} 0"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_whose_api_server_answers_5_s_late_names_all_its_agents_sent() {
    let dir = tmp("late-api");
    let (client, lab) = split(&common::demo_dir().join("capture.pcapng"), |n| n == CLIENT_VETH, &dir);
    let objects: serde_json::Value = serde_json::from_slice(&std::fs::read(two_node_cluster(&dir)).unwrap()).unwrap();
    let api_port = common::served::reserve();
    let kubeconfig = dir.join("kubeconfig");
    common::fake_api::kubeconfig_for(api_port.addr(), &kubeconfig);
    let (_hub, listen, ingest) =
        hub_named(Command::new(BIN).arg("hub").env("KUBECONFIG", &kubeconfig).env("PODTAP_LOG", "warn"), None);
    let hub_url = format!("http://127.0.0.1:{ingest}");
    let agents: Vec<Running> = [(&client, "client-node"), (&lab, "lab-node")]
        .into_iter()
        .map(|(file, node)| {
            let mut agent = Command::new(BIN);
            agent.args(["agent", "--hub", &hub_url, "--node", node]).arg("--pcap").arg(file);
            Running(agent.stderr(Stdio::null()).spawn().unwrap())
        })
        .collect();
    let get = |path: &str| -> (u16, serde_json::Value) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", &format!("http://127.0.0.1:{listen}{path}")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.parse().unwrap_or(0), serde_json::from_str(body).unwrap_or_default())
    };
    // The agents connect and send at once; the hub holds what they send.
    let deadline = Instant::now() + Duration::from_secs(20);
    let connected = |h: &serde_json::Value| {
        h["agents"].as_array().map_or(0, |a| a.iter().filter(|a| a["connected"] == true).count())
    };
    while connected(&get("/healthz").1) < 2 {
        assert!(Instant::now() < deadline, "the agents never connected: {}", get("/healthz").1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The scenario: the API server comes up 5 s after the hub.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (code, health) = get("/healthz");
    assert_eq!((code, health["records"].as_u64()), (503, Some(0)), "held, not named without names: {health}");
    let _api =
        common::fake_api::FakeApi::start_on(api_port.listen(), objects["items"].as_array().unwrap().clone()).await;
    // Then: every record of the whole capture, named as the whole capture's analysis names it.
    let whole = whole();
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let page = get("/api/v1/records?limit=10000&kind=all").1;
        let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap_or_default();
        if shapes(&records) == shapes(&whole) {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "the hub never named all it held: {} of {} records",
            records.len(),
            whole.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(connections(&records), connections(&whole));
    // The balance: each web pod's requests and probes as its server logged them.
    let truth = common::ground_truth(&common::demo_dir());
    let (code, balance) = get("/api/v1/services/default/web/balance");
    assert_eq!(code, 200, "{balance}");
    for e in balance["endpoints"].as_array().unwrap() {
        let t = &truth["pods"][e["pod"].as_str().unwrap()];
        let served = e["requests"].as_u64().unwrap() + e["probe_requests"].as_u64().unwrap();
        assert_eq!(served, t["requests"].as_u64().unwrap(), "{e}");
    }
    assert_eq!(get("/healthz").0, 200);
    drop(agents);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_hub_exports_the_packets_its_agents_keep() {
    let dir = tmp("export");
    // Agents that stay connected after their replay: their packet rings stay to be asked.
    let (cluster, listen, agents, _hub) = two_nodes(&dir, &["--stay"], Stdio::null);
    let _agents: Vec<Running> = agents.into_iter().map(Running).collect();
    let get = |path: &str, out: Option<&Path>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sf", "-H", "Authorization: Bearer s3cret", &format!("http://127.0.0.1:{listen}{path}")]);
        if let Some(file) = out {
            cmd.arg("-o").arg(file);
        }
        cmd.output().unwrap()
    };
    let whole = whole();
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let out = get("/api/v1/records?limit=10000&kind=all", None);
        let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let records: Vec<Record> = serde_json::from_value(page["records"].clone()).unwrap_or_default();
        if shapes(&records) == shapes(&whole) {
            break records;
        }
        assert!(Instant::now() < deadline, "the hub never merged the whole capture");
        std::thread::sleep(Duration::from_millis(300));
    };
    let file = dir.join("export.pcapng");
    let out = get("/api/v1/export?format=pcapng", Some(&file));
    assert!(out.status.success(), "the export: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&file).unwrap();
    for node in ["client-node", "lab-node"] {
        let said = format!("on node {node}");
        assert!(bytes.windows(said.len()).any(|w| w == said.as_bytes()), "an interface of {node}");
    }
    // Read back as one capture: the same requests the hub merged from both nodes.
    let again = analyze(&[file.to_str().unwrap(), "--cluster", cluster.to_str().unwrap()]);
    assert_eq!(shapes(&again), shapes(&records));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_agent_without_the_token_is_turned_away_and_says_why() {
    let dir = tmp("token");
    let cluster = two_node_cluster(&dir);
    let (_hub, listen, ingest) = hub(&cluster, Some("s3cret"));
    let mut agent = Running(
        Command::new(BIN)
            .args(["agent", "--hub", &format!("http://127.0.0.1:{ingest}"), "--node", "n1", "--token", "wrong"])
            .arg("--pcap")
            .arg(common::demo_dir().join("capture.pcapng"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Its log, until it says why (at most 20 s): not a fixed sleep that a slow machine outlasts.
    let (lines, said) = std::sync::mpsc::channel();
    let stderr = agent.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut err = String::new();
    while !err.contains("401") {
        let left = deadline.saturating_duration_since(Instant::now());
        match said.recv_timeout(left) {
            Ok(line) => err += &(line + "\n"),
            Err(_) => panic!("the agent never said it was refused (401):\n{err}"),
        }
    }
    let _ = agent.0.kill();
    let health = wait_health(listen, |h| h["agents"].is_array());
    assert_eq!(health["records"], 0);
    // The cluster's nodes are listed, none connected.
    let agents = health["agents"].as_array().unwrap();
    assert!(agents.iter().all(|a| a["connected"] == false && a["sessions"] == 0), "{agents:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_agent_of_another_protocol_version_is_refused_in_a_sentence() {
    use futures_util::{SinkExt, StreamExt};
    use podtap::ingest::wire::{self, AgentMessage, Hello, HubMessage};
    use tokio_tungstenite::tungstenite::Message;

    let dir = tmp("version");
    let cluster = two_node_cluster(&dir);
    let (_hub, listen, ingest) = hub(&cluster, None);
    let url = format!("ws://127.0.0.1:{ingest}{}", wire::PATH);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let hello = Hello {
        protocol: wire::PROTOCOL + 1,
        version: "9.9.9".into(),
        node: "lab-node".into(),
        instance: 1,
        wall_clock: true,
    };
    ws.send(Message::Binary(wire::encode(&AgentMessage::Hello(hello)).into())).await.unwrap();
    let Some(Ok(Message::Binary(b))) = ws.next().await else { panic!("an answer") };
    let HubMessage::Refused { reason } = wire::decode_hub(&b).unwrap() else { panic!("refused") };
    assert!(reason.contains("the agent is newer") && reason.contains("9.9.9"), "{reason}");
    // Garbage after a hello closes the connection with a reason, and the hub goes on.
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    ws.send(Message::Binary(b"\xc1\xc1\xc1".to_vec().into())).await.unwrap();
    let closed = ws.next().await;
    assert!(matches!(closed, Some(Ok(Message::Close(Some(_))))), "{closed:?}");
    let refused = |h: &serde_json::Value| {
        h["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["node"] == "lab-node" && a["refused"].is_string())
            .cloned()
    };
    let health = tokio::task::spawn_blocking(move || wait_health(listen, |h| refused(h).is_some())).await.unwrap();
    let lab = refused(&health).unwrap();
    assert!(lab["refused"].as_str().unwrap().contains("protocol"), "{lab}");
    std::fs::remove_dir_all(dir).unwrap();
}
