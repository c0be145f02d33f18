//! `podtap agent`: the node's half. Live capture (or a replayed file) runs through an `Observer`
//! on its own thread into the outbox; a sender task keeps one WebSocket to the hub, sends what
//! the hub has not got, forgets what it acknowledges, answers its pings with this node's clock,
//! reports the node's counters, and answers the hub's requests for packets from the node's ring.
//! The capture never waits for the network.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::outbox::Outbox;
use super::wire::{self, AgentMessage, Batch, Hello, HubMessage, Observed, Report};
use crate::capture::live::{LiveCapture, LiveError};
use crate::capture::{CaptureFile, Frame};
use crate::dissect::Dissected;
use crate::engine::Observer;
use crate::feed::replay::now_us;
use crate::packets::PacketStore;

/// How the agent reaches its hub and who it is.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// `ws://HOST:PORT/api/v1/ingest`.
    pub url: String,
    pub token: Option<String>,
    pub node: String,
    /// The outbox bound.
    pub buffer_bytes: usize,
    /// Added to every timestamp and to the clock the agent reports (tests: a node whose clock
    /// is off).
    pub skew_us: i64,
    /// This node's packet ring, which the hub asks for exports.
    pub packets: Option<Arc<PacketStore>>,
    /// After a replay, stay connected (the hub may still ask for packets) until stopped.
    pub stay: bool,
}

/// The addresses the hub's (or the bus's) name stands for: the agent's own traffic to them is not
/// observed.
pub async fn hub_addresses(url: &str) -> Vec<std::net::SocketAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    match tokio::net::lookup_host(authority).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            tracing::warn!("cannot resolve the hub {authority} yet ({e}): its own traffic may be observed");
            Vec::new()
        }
    }
}

/// `--hub http://HOST:PORT` as the ingest WebSocket's URL.
pub fn ingest_url(hub: &str) -> Result<String, String> {
    let rest = hub.strip_prefix("http://").or_else(|| hub.strip_prefix("ws://"));
    let Some(rest) = rest else {
        return Err(format!(
            "--hub {hub}: give http://HOST:PORT (TLS between agent and hub is left to the network: a mesh or a \
             tunnel)"
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("--hub {hub}: no host"));
    }
    Ok(format!("ws://{authority}{}", wire::PATH))
}

/// Batches leave at least this often while there is traffic …
const BATCH_EVERY: Duration = Duration::from_millis(100);
/// … or when this many exchanges are waiting …
const BATCH_AT: usize = 512;
/// … and an empty one this often, so the hub knows capture time moves on.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// The longest a poll of the rings sleeps.
const POLL: Duration = Duration::from_millis(100);

/// The batch being filled.
struct Filling {
    batch: Batch,
    since: Instant,
}

impl Filling {
    fn new() -> Self {
        Self { batch: Batch::default(), since: Instant::now() }
    }

    /// Adds what the observer finished at capture time `at_us`.
    fn add(&mut self, items: Vec<Dissected>, at_us: u64) {
        let notes = &mut self.batch.notes;
        for d in items {
            match d {
                Dissected::Exchange(ex) => {
                    self.batch.items.push(Observed { at_us, exchange: *ex, learn: false, place: 0 })
                }
                Dissected::Learn(_) => {}
                Dissected::UnmatchedResponse => notes.unmatched_responses += 1,
                Dissected::OneWay => notes.one_way_responses += 1,
                Dissected::Resync => notes.resyncs += 1,
                Dissected::NotThisProtocol => notes.not_this_protocol += 1,
            }
        }
    }

    fn due(&self) -> bool {
        let age = self.since.elapsed();
        self.batch.items.len() >= BATCH_AT
            || (!self.batch.items.is_empty() && age >= BATCH_EVERY)
            || age >= HEARTBEAT_EVERY
    }

    fn take(&mut self, watermark_us: u64) -> Batch {
        self.since = Instant::now();
        let mut b = std::mem::take(&mut self.batch);
        b.watermark_us = watermark_us;
        b
    }
}

fn shifted(ts: u64, skew_us: i64) -> u64 {
    ts.saturating_add_signed(skew_us)
}

/// Live capture into `outbox` until `stop`; `report` gets the counters every second.
pub fn capture(
    mut live: LiveCapture,
    own: &[std::net::SocketAddr],
    outbox: &Outbox,
    report: &Mutex<Report>,
    stop: &AtomicBool,
    skew_us: i64,
    packets: Option<&PacketStore>,
) -> Result<(), LiveError> {
    let mut observer = Observer::default();
    for a in own {
        observer.ignore(*a);
    }
    let mut filling = Filling::new();
    let mut named = 0;
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        live.follow_changes()?;
        if live.interfaces().len() > named {
            for index in named..live.interfaces().len() {
                observer.declare(index as u32);
            }
            if let Some(p) = packets {
                for (index, i) in live.interfaces().iter().enumerate().skip(named) {
                    p.name_interface(index as u32, Some(i.name.clone()));
                }
            }
            named = live.interfaces().len();
            filling.batch.interfaces = Some(live.interfaces().iter().map(|i| Some(i.name.clone())).collect());
        }
        live.poll(POLL, |f| {
            let frame = Frame { ts_us: shifted(f.frame.ts_us, skew_us), ..f.frame };
            if let Some(p) = packets {
                p.add(&frame);
            }
            observer.on_frame(&frame);
            filling.add(observer.take_items(), frame.ts_us);
        })?;
        // Every ring is drained: nothing older than now is still on its way.
        let now = shifted(now_us(), skew_us);
        for gone in live.take_ended() {
            observer.end_interface(gone, now);
        }
        observer.idle(now);
        filling.add(observer.take_items(), now);
        if filling.due() {
            outbox.push(filling.take(now));
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            update_report(report, &mut live, &observer, outbox);
        }
    }
    // Stopping: what is open closes now, and the hub need wait for nothing more from this node.
    let now = shifted(now_us(), skew_us);
    filling.add(observer.finish(), now);
    outbox.push(filling.take(u64::MAX));
    update_report(report, &mut live, &observer, outbox);
    outbox.close();
    Ok(())
}

fn update_report(report: &Mutex<Report>, live: &mut LiveCapture, observer: &Observer, outbox: &Outbox) {
    let stats = live.stats();
    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
    r.kernel_packets = stats.packets;
    r.kernel_drops = stats.drops;
    r.interfaces = stats.interfaces.iter().filter(|i| i.open).map(|i| i.name.clone()).collect();
    r.engine = observer.stats();
    fill_outbox(&mut r, outbox);
}

fn fill_outbox(r: &mut Report, outbox: &Outbox) {
    let o = outbox.stats();
    (r.buffered_batches, r.buffered_bytes, r.dropped_batches, r.dropped_observations) =
        (o.batches, o.bytes, o.dropped_batches, o.dropped_observations);
}

/// Replays capture files into `outbox`, as fast as the hub takes them (on the captures' own
/// time axis), or at capture speed with timestamps moved to now (`realtime`).
pub fn replay(
    files: &[CaptureFile],
    outbox: &Outbox,
    report: &Mutex<Report>,
    realtime: bool,
    skew_us: i64,
    packets: Option<&PacketStore>,
) {
    let mut observer = Observer::default();
    let mut filling = Filling::new();
    let mut watermark = 0;
    for file in files {
        let (start_wall, start_us) = (Instant::now(), now_us());
        let mut first = None;
        let mut frames = file.frames();
        while let Some(frame) = frames.next() {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("{e}");
                    break;
                }
            };
            if observer.sync_interfaces(&frames) {
                filling.batch.interfaces = Some(frames.interface_names());
                if let Some(p) = packets {
                    for (index, i) in frames.interfaces().iter().enumerate() {
                        p.name_interface(index as u32, i.name.clone());
                    }
                }
            }
            let mut ts = frame.ts_us;
            if realtime {
                let offset = ts.saturating_sub(*first.get_or_insert(ts));
                let due = start_wall + Duration::from_micros(offset);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                ts = start_us + offset;
            }
            let frame = Frame { ts_us: shifted(ts, skew_us), ..frame };
            if let Some(p) = packets {
                p.add(&frame);
            }
            observer.on_frame(&frame);
            filling.add(observer.take_items(), frame.ts_us);
            watermark = observer.watermark();
            if filling.due() {
                outbox.push_waiting(filling.take(watermark));
            }
        }
    }
    // The end: what is open closes now, and the hub need wait for nothing more from this node.
    filling.add(observer.finish(), watermark);
    outbox.push_waiting(filling.take(u64::MAX));
    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
    r.engine = observer.stats();
    fill_outbox(&mut r, outbox);
    drop(r);
    outbox.close();
}

/// How a connection to the hub ended.
enum End {
    /// Everything was sent and acknowledged after the producer finished.
    Drained,
    /// The hub said it will not take this agent.
    Refused(String),
}

/// Keeps the agent connected to its hub until the outbox is drained (the capture stopped and the
/// hub has everything) or `stop` has been set for `grace` (the hub is away: what is left is lost,
/// and said so).
pub async fn send(
    options: AgentOptions,
    outbox: Arc<Outbox>,
    report: Arc<Mutex<Report>>,
    wall_clock: bool,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let hello = Hello::of_this_run(&options.node, wall_clock);
    let hello = Bytes::from(wire::encode(&AgentMessage::Hello(hello)));
    let mut backoff = Duration::from_millis(200);
    let mut stopped_at: Option<Instant> = None;
    let mut connected_once = false;
    loop {
        match session(&options, &outbox, &report, hello.clone(), &mut connected_once, &mut stop).await {
            Ok(End::Drained) => return Ok(()),
            Ok(End::Refused(reason)) => {
                tracing::error!("the hub refused this agent: {reason}");
                backoff = Duration::from_secs(30);
            }
            Err(e) => {
                if connected_once {
                    backoff = Duration::from_millis(200);
                    connected_once = false;
                }
                tracing::warn!("hub {}: {e:#}; retrying in {:.1} s", options.url, backoff.as_secs_f64());
            }
        }
        if *stop.borrow() {
            let since = *stopped_at.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(5) {
                let s = outbox.stats();
                anyhow::bail!(
                    "stopped with the hub unreachable: {} batches ({} bytes) were never delivered",
                    s.batches,
                    s.bytes
                );
            }
        }
        // Jitter, so a hub that restarts is not met by every agent at once.
        let jitter = Duration::from_millis(now_us() % 100);
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            _ = stop.changed() => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn session(
    options: &AgentOptions,
    outbox: &Outbox,
    report: &Mutex<Report>,
    hello: Bytes,
    connected: &mut bool,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<End> {
    let mut request = options.url.as_str().into_client_request()?;
    if let Some(t) = &options.token {
        request.headers_mut().insert(axum::http::header::AUTHORIZATION, format!("Bearer {t}").parse()?);
    }
    let (ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| anyhow::anyhow!("no answer in 10 s"))??;
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::Binary(hello)).await?;
    let first = tokio::time::timeout(Duration::from_secs(10), rx.next())
        .await
        .map_err(|_| anyhow::anyhow!("no welcome in 10 s"))?;
    let mut sent = match first {
        Some(Ok(Message::Binary(b))) => match wire::decode_hub(&b)? {
            HubMessage::Welcome { have, version, .. } => {
                tracing::info!(
                    "connected to the hub at {} (podtap {version}); it has batches up to {have}",
                    options.url
                );
                have
            }
            HubMessage::Refused { reason } => return Ok(End::Refused(reason)),
            other => anyhow::bail!("the hub began with {other:?} instead of a welcome"),
        },
        Some(Ok(Message::Close(frame))) => {
            anyhow::bail!("the hub closed the connection: {}", frame.map(|f| f.reason.to_string()).unwrap_or_default())
        }
        Some(Ok(other)) => anyhow::bail!("the hub began with a {} message", kind(&other)),
        Some(Err(e)) => return Err(e.into()),
        None => anyhow::bail!("the hub closed the connection"),
    };
    *connected = true;
    outbox.ack(sent);
    let mut reports = tokio::time::interval(Duration::from_secs(1));
    loop {
        for b in outbox.after(sent) {
            tx.send(Message::Binary(b.bytes)).await?;
            sent = b.seq;
        }
        let stopping = *stop.borrow();
        if outbox.drained() && (!options.stay || stopping) {
            // The last counters, then goodbye.
            let _ = tx.send(Message::Binary(report_message(report, outbox, options.skew_us))).await;
            let _ = tx.send(Message::Close(None)).await;
            return Ok(End::Drained);
        }
        tokio::select! {
            () = outbox.ready.notified() => {}
            _ = stop.changed(), if options.stay && !stopping => {}
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => match wire::decode_hub(&b)? {
                    HubMessage::Ack { seq } => outbox.ack(seq),
                    HubMessage::Ping { hub_us } => {
                        let pong = AgentMessage::Pong { hub_us, agent_us: shifted(now_us(), options.skew_us) };
                        tx.send(Message::Binary(wire::encode(&pong).into())).await?;
                    }
                    HubMessage::Packets { request, wanted } => {
                        let found = match options.packets.clone() {
                            Some(store) => tokio::task::spawn_blocking(move || store.found(&wanted, None))
                                .await?
                                .map_err(|e| tracing::warn!("reading this node's packets: {e}"))
                                .ok(),
                            None => None,
                        };
                        let answer = AgentMessage::Packets { request, found };
                        tx.send(Message::Binary(wire::encode(&answer).into())).await?;
                    }
                    other => tracing::debug!("ignoring {other:?} from the hub"),
                },
                Some(Ok(Message::Close(_))) | None => anyhow::bail!("the hub closed the connection"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            },
            _ = reports.tick() => {
                tx.send(Message::Binary(report_message(report, outbox, options.skew_us))).await?;
            }
        }
    }
}

/// The agent's counters now, encoded.
fn report_message(report: &Mutex<Report>, outbox: &Outbox, skew_us: i64) -> Bytes {
    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
    r.agent_us = shifted(now_us(), skew_us);
    fill_outbox(&mut r, outbox);
    wire::encode(&AgentMessage::Report(Box::new(r.clone()))).into()
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) | Message::Pong(_) => "ping",
        Message::Close(_) => "close",
        Message::Frame(_) => "raw",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_address_becomes_its_ingest_socket() {
        assert_eq!(ingest_url("http://hub.podtap:9091").unwrap(), "ws://hub.podtap:9091/api/v1/ingest");
        assert_eq!(ingest_url("http://127.0.0.1:9091/").unwrap(), "ws://127.0.0.1:9091/api/v1/ingest");
        assert!(ingest_url("https://hub:9091").unwrap_err().contains("http://HOST:PORT"));
        assert!(ingest_url("http://").is_err());
    }
}
