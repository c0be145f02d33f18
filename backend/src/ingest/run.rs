//! `podtap agent` from start to stop: the observing thread (live capture or a replay) and the
//! sender, until a signal (live) or the end of the files with everything acknowledged (replay).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::sync::watch;

use super::agent::{self, AgentOptions};
use super::outbox::Outbox;
use super::wire::Report;
use crate::capture::CaptureFile;
use crate::capture::live::LiveCapture;
use crate::cli::{AgentConfig, AgentSource};

/// How long a stopping agent waits for the hub to take its last batches.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the agent; `shutdown` resolves at SIGTERM or Ctrl-C.
pub async fn agent(config: AgentConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let options = AgentOptions {
        url: config.url.clone(),
        token: config.token.clone(),
        node: config.node.clone(),
        buffer_bytes: config.buffer_bytes,
        skew_us: config.skew_us,
        packets: crate::share::packet_store(&config.packets)?,
        stay: config.stay,
    };
    let outbox = Arc::new(Outbox::new(config.buffer_bytes));
    let report = Arc::new(Mutex::new(Report::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let (stopping, stopped) = watch::channel(false);
    let (wall_clock, producer) = match config.source {
        AgentSource::Live { selection, ring } => {
            let live = LiveCapture::open(selection, ring)?;
            let own = agent::hub_addresses(&config.url).await;
            let (o, r, s, skew) = (outbox.clone(), report.clone(), stop.clone(), config.skew_us);
            let packets = options.packets.clone();
            let t = std::thread::Builder::new().name("capture".into()).spawn(move || {
                let result = agent::capture(live, &own, &o, &r, &s, skew, packets.as_deref());
                o.close();
                result.map_err(anyhow::Error::from)
            })?;
            (true, t)
        }
        AgentSource::Files { files, realtime } => {
            let captures = files
                .iter()
                .map(|f| CaptureFile::open(f).with_context(|| format!("cannot replay {}", f.display())))
                .collect::<Result<Vec<_>, _>>()?;
            let (o, r, skew) = (outbox.clone(), report.clone(), config.skew_us);
            let packets = options.packets.clone();
            let t = std::thread::Builder::new().name("replay".into()).spawn(move || {
                agent::replay(&captures, &o, &r, realtime, skew, packets.as_deref());
                Ok(())
            })?;
            (realtime, t)
        }
    };
    tracing::info!("podtap agent on node {} sending to {}", config.node, config.url);
    let sender = match config.bus.clone() {
        Some(bus) => tokio::spawn(super::bus::send::send(bus, options, outbox.clone(), report, wall_clock, stopped)),
        None => tokio::spawn(agent::send(options, outbox.clone(), report, wall_clock, stopped)),
    };
    tokio::pin!(shutdown);
    tokio::pin!(sender);
    let sent = tokio::select! {
        () = &mut shutdown => {
            stop.store(true, Ordering::Relaxed);
            let _ = stopping.send(true);
            // The last batches and their acknowledgement, within reason.
            match tokio::time::timeout(STOP_WAIT, &mut sender).await {
                Ok(sent) => sent,
                Err(_) => {
                    sender.abort();
                    let s = outbox.stats();
                    tracing::warn!(
                        "stopped before the hub acknowledged {} batches ({} bytes)",
                        s.batches,
                        s.bytes
                    );
                    Ok(Ok(()))
                }
            }
        }
        result = &mut sender => result,
    };
    stop.store(true, Ordering::Relaxed);
    let produced = producer.join().map_err(|_| anyhow::anyhow!("the observing thread panicked"))?;
    let stats = outbox.stats();
    if stats.dropped_batches > 0 {
        tracing::warn!(
            "{} batches ({} observations) were dropped while the hub was unreachable (--buffer-mb)",
            stats.dropped_batches,
            stats.dropped_observations
        );
    }
    produced?;
    sent.context("the sender stopped")?
}
