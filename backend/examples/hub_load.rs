//! Many agents into one hub, measured: the records a `podtap hub` sustains with the merge, the
//! store and its rollups, its memory against what it keeps, and its CPU. Each simulated agent
//! replays the same capture's observations as its own node — its clients' ports moved so no two
//! agents' copies of a request look alike, its connection ids its own, every replay later than
//! the last — over the real ingest protocol, as fast as the hub takes them.
//!
//!   cargo run --release --example hub_load -- target/release/podtap AGENTS LOOPS MAX_RECORDS [BUS REPLICAS]
//!
//! With `BUS` (`nats://…`, a NATS JetStream server) the agents publish to it as `podtap agent
//! --bus` does (each batch cut into the bus's partitions, every part stored before the next
//! batch) and `REPLICAS` hubs (`--replica I/N`) merge it; each replica's own share, its CPU and
//! the bus server's are reported.
//!
//! With `HUB_LOAD_PAGES=N` in the environment, N pages watch the hub's live stream as it merges
//! (WebSocket `/api/v1/stream`, read and dropped): the cost of sending every record to them is
//! then in the figures.
//!
//! `cargo xtask bench-hub` runs it with the built-in demo capture; figures in BENCHMARKS.md.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use podtap::capture::CaptureFile;
use podtap::dissect::{Dissected, Exchange};
use podtap::engine::Observer;
use podtap::ingest::wire::{self, AgentMessage, Batch, Hello, Observed};
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A page on the hub's live stream: every message read, none looked at.
async fn page(listen: u16) {
    let url = format!("ws://127.0.0.1:{listen}/api/v1/stream");
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
        return println!("hub_load: a page could not open {url}");
    };
    while let Some(Ok(_)) = ws.next().await {}
}

/// Every observation of the capture, with the capture time it was finished at.
fn observe(file: &CaptureFile) -> Vec<(u64, Exchange)> {
    let mut observer = Observer::default();
    let mut out = Vec::new();
    let mut frames = file.frames();
    while let Some(Ok(frame)) = frames.next() {
        observer.sync_interfaces(&frames);
        observer.on_frame(&frame);
        for d in observer.take_items() {
            if let Dissected::Exchange(ex) = d {
                out.push((frame.ts_us, *ex));
            }
        }
    }
    let end = out.last().map_or(0, |(t, _)| *t);
    out.extend(observer.finish().into_iter().filter_map(|d| match d {
        Dissected::Exchange(ex) => Some((end, *ex)),
        _ => None,
    }));
    out
}

fn shift(ex: &Exchange, by: u64, conn: u64, agent: u16) -> Exchange {
    let mut e = ex.clone();
    let port = |p: u16| 1024 + ((u32::from(p) + u32::from(agent) * 7919) % 64_000) as u16;
    e.client.set_port(port(e.client.port()));
    e.ts_us += by;
    e.response_ts_us = e.response_ts_us.map(|t| t + by);
    e.end_us = e.end_us.map(|t| t + by);
    e.conn += conn;
    // Another connection's bytes: another sequence number (two copies with one would be taken for
    // one request whose source port conntrack changed).
    e.seq = e.seq.map(|s| s.wrapping_add(u32::from(agent) << 24).wrapping_add((conn >> 20) as u32 * 65_537));
    e
}

struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (resident KiB, CPU seconds) of a process.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().split(' ').next()?.parse().ok());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (rss.unwrap_or(0), (ticks(11) + ticks(12)) / 100.0)
}

fn records(port: u16) -> u64 {
    let out = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{port}/healthz")]).output();
    out.ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["records"].as_u64())
        .unwrap_or(0)
}

/// The batches of one simulated agent: the capture replayed `loops` times, each later than the
/// last, in chunks of 128 observations, then its end.
fn batches(observed: &[(u64, Exchange)], index: usize, loops: u64) -> impl Iterator<Item = Batch> + '_ {
    let span = observed.last().map_or(0, |(t, _)| *t) - observed.first().map_or(0, |(t, _)| *t);
    let period = span + 2_000_000;
    let chunks = (0..loops).flat_map(move |k| observed.chunks(128).map(move |c| (k, c)));
    chunks
        .enumerate()
        .map(move |(n, (k, chunk))| {
            let by = k * period;
            let items = chunk
                .iter()
                .map(|(at, ex)| Observed {
                    at_us: at + by,
                    exchange: shift(ex, by, k << 20, index as u16),
                    learn: false,
                    place: 0,
                })
                .collect();
            let watermark_us = chunk.last().map_or(0, |(t, _)| t + by);
            Batch { seq: n as u64 + 1, interfaces: None, items, notes: Default::default(), watermark_us }
        })
        .chain(std::iter::once(Batch { watermark_us: u64::MAX, ..Batch::default() }))
}

/// One simulated agent publishing to the bus: every part of a batch stored before the next.
async fn bus_agent(
    bus: podtap::ingest::bus::BusConfig,
    index: usize,
    node: String,
    observed: std::sync::Arc<Vec<(u64, Exchange)>>,
    loops: u64,
    step: std::sync::Arc<tokio::sync::Barrier>,
) {
    let (_client, js) = podtap::ingest::bus::connect(&bus.url, "hub_load").await.expect("the bus");
    let hello = Hello {
        protocol: wire::PROTOCOL,
        version: env!("CARGO_PKG_VERSION").into(),
        node,
        instance: index as u64 + 1,
        wall_clock: false,
    };
    let mut last_seq = 0;
    for mut batch in batches(&observed, index, loops) {
        step.wait().await;
        if batch.watermark_us == u64::MAX {
            batch.seq = last_seq + 1;
        }
        last_seq = batch.seq;
        let conn_base = (index as u64 + 1) << 34;
        podtap::ingest::bus::send::publish(&js, &bus, &hello, conn_base, batch, 0).await.expect("published");
    }
}

/// One simulated agent. Agents move through capture time in step (a barrier every batch), as live
/// agents do on the wall clock: the hub merges up to the slowest one's time.
async fn agent(
    url: String,
    index: usize,
    node: String,
    observed: std::sync::Arc<Vec<(u64, Exchange)>>,
    loops: u64,
    step: std::sync::Arc<tokio::sync::Barrier>,
) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("the hub's ingest");
    let hello = Hello {
        protocol: wire::PROTOCOL,
        version: env!("CARGO_PKG_VERSION").into(),
        node,
        instance: index as u64 + 1,
        wall_clock: false,
    };
    ws.send(Message::Binary(wire::encode(&AgentMessage::Hello(hello)).into())).await.unwrap();
    let _welcome = ws.next().await;
    let (mut tx, mut rx) = ws.split();
    // Acknowledgements and pings are read and dropped.
    tokio::spawn(async move { while rx.next().await.is_some() {} });
    let mut last_seq = 0;
    for mut batch in batches(&observed, index, loops) {
        if batch.watermark_us == u64::MAX {
            batch.seq = last_seq + 1;
        } else {
            step.wait().await;
        }
        last_seq = batch.seq;
        tx.send(Message::Binary(wire::encode(&AgentMessage::Batch(batch)).into())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let podtap = args.get(1).expect("usage: hub_load PODTAP [AGENTS] [LOOPS] [MAX_RECORDS]").clone();
    let agents: u64 = args.get(2).map_or(8, |a| a.parse().unwrap());
    let loops: u64 = args.get(3).map_or(40, |a| a.parse().unwrap());
    let max_records = args.get(4).cloned().unwrap_or_else(|| "1000000".into());
    let bus = args.get(5).cloned();
    let replicas: u32 = args.get(6).map_or(1, |a| a.parse().unwrap());
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo");
    let file = CaptureFile::open(&demo.join("capture.pcapng")).unwrap();
    let observed = std::sync::Arc::new(observe(&file));
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (listen, ingest) = (free(), free());
    let hub_at = |listen: u16, replica: u32| {
        let mut cmd = Command::new(&podtap);
        cmd.args(["hub", "--capture-clock", "--retention", "1h", "--max-records", &max_records, "--cluster"])
            .arg(demo.join("cluster.json"))
            .args(["--listen", &format!("127.0.0.1:{listen}"), "--ingest", &format!("127.0.0.1:{ingest}")]);
        if let Some(url) = &bus {
            cmd.args(["--bus", url, "--replica", &format!("{replica}/{replicas}")]);
        }
        Proc { child: cmd.env("PODTAP_LOG", "warn").stderr(Stdio::inherit()).spawn().unwrap() }
    };
    let mut hubs = vec![hub_at(listen, 0)];
    for r in 1..replicas {
        hubs.push(hub_at(free(), r));
    }
    let pid = hubs[0].child.id();
    let serving = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    while !serving(if bus.is_some() { listen } else { ingest }) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The bus server's own cost, when the caller says which process it is.
    let bus_pid: Option<u32> = std::env::var("HUB_LOAD_BUS_PID").ok().and_then(|p| p.parse().ok());
    let pids: Vec<u32> = hubs.iter().map(|h| h.child.id()).collect();
    let cpus = |pids: &[u32]| pids.iter().map(|p| usage(*p).1).collect::<Vec<f64>>();
    let (hub_cpu0, bus_cpu0) = (cpus(&pids), bus_pid.map_or(0.0, |p| usage(p).1));
    let total = observed.len() as u64 * loops * agents;
    println!(
        "hub_load: {agents} agents × {loops} replays of {} observations = {total} observations, --max-records {max_records}",
        observed.len()
    );
    let pages: usize = std::env::var("HUB_LOAD_PAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    for _ in 0..pages {
        tokio::spawn(page(listen));
    }
    if pages > 0 {
        println!("hub_load: {pages} pages on the hub's live stream");
    }
    let (rss0, cpu0) = usage(pid);
    let url = format!("ws://127.0.0.1:{ingest}{}", wire::PATH);
    let start = Instant::now();
    let step = std::sync::Arc::new(tokio::sync::Barrier::new(agents as usize));
    for i in 0..agents as usize {
        // The cluster knows one node: the first agent is it, so the hub need not wait for it.
        let node = if i == 0 { "lab-node".to_string() } else { format!("sim-{i}") };
        match &bus {
            Some(url) => {
                let config = podtap::ingest::bus::BusConfig {
                    url: url.clone(),
                    partitions: 8,
                    replica: (0, 1),
                    retention: Duration::from_secs(3600),
                    takeover: None,
                };
                tokio::spawn(bus_agent(config, i, node, observed.clone(), loops, step.clone()));
            }
            None => {
                tokio::spawn(agent(url.clone(), i, node, observed.clone(), loops, step.clone()));
            }
        }
    }
    let (mut last, mut still, mut peak) = (0, 0, rss0);
    let mut done_at = start;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = tokio::task::spawn_blocking(move || records(listen)).await.unwrap();
        let (rss, cpu) = usage(pid);
        peak = peak.max(rss);
        println!(
            "  {:>5.1} s  {:>9} records  {:>8.0} records/s  RSS {:>5} MiB  hub CPU {:>5.1} s",
            start.elapsed().as_secs_f64(),
            n,
            (n - last) as f64,
            rss / 1024,
            cpu - cpu0
        );
        if n == last && n > 0 {
            still += 1;
            if still >= 3 {
                break;
            }
        } else {
            (still, done_at) = (0, Instant::now());
        }
        last = n;
    }
    let (_, cpu) = usage(pid);
    let secs = done_at.duration_since(start).as_secs_f64();
    if bus.is_some() {
        let hub_cpu: Vec<f64> = cpus(&pids).iter().zip(&hub_cpu0).map(|(a, b)| a - b).collect();
        let bus_cpu = bus_pid.map_or(0.0, |p| usage(p).1) - bus_cpu0;
        println!(
            "hub_load: {replicas} replicas on the bus, CPU s each: {:?} ({:.2} cores in all); the bus server {:.1} s \
             ({:.2} cores); the simulated agents {:.1} s",
            hub_cpu.iter().map(|c| (c * 10.0).round() / 10.0).collect::<Vec<_>>(),
            hub_cpu.iter().sum::<f64>() / secs,
            bus_cpu,
            bus_cpu / secs,
            usage(std::process::id()).1
        );
    }
    println!(
        "hub_load: {last} records from {total} observations in {secs:.1} s: {:.0} records/s ({:.0} observations/s), \
         hub CPU {:.1} s ({:.2} cores), peak RSS {} MiB",
        last as f64 / secs,
        total as f64 / secs,
        cpu - cpu0,
        (cpu - cpu0) / secs,
        peak / 1024
    );
}
