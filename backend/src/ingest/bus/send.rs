//! The agent's side of the bus: every batch of the outbox is cut by the join key into one part
//! per partition (an empty part still carries the capture time reached, which the hubs wait
//! on), published to `podtap.obs.P` with an id the bus drops a second copy of, and forgotten
//! once the bus has stored every part. Counters go to `podtap.report.NODE` every second. While
//! the bus is away the outbox keeps what it can (`--buffer-mb`), as it does for a hub.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::watch;

use super::key::route;
use super::{BusConfig, Counters, Envelope, HELLO_SUBJECT};
use crate::feed::replay::now_us;
use crate::ingest::agent::AgentOptions;
use crate::ingest::outbox::Outbox;
use crate::ingest::wire::{self, AgentMessage, Batch, Hello, Report};

/// How far apart two agent instances' connection ids start: far more connections than one run
/// opens, and room for 2^19 runs under JavaScript's exact integers.
const CONN_STRIDE_BITS: u32 = 34;

/// Keeps publishing the outbox to the bus until it is drained (the capture stopped and the bus
/// has everything) or `stop` has been set for 5 s with the bus away.
pub async fn send(
    bus: BusConfig,
    options: AgentOptions,
    outbox: Arc<Outbox>,
    report: Arc<Mutex<Report>>,
    wall_clock: bool,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let hello = Hello::of_this_run(&options.node, wall_clock);
    let (client, js) = super::connect(&bus.url, &format!("podtap-agent {}", options.node)).await?;
    // Ids of this instance's connections, unique among every agent's on the bus: the sequence
    // number the bus gives its announcement.
    let number = loop {
        let announced = async {
            super::streams(&js, &bus.url, bus.retention).await?;
            let ack = js.publish(HELLO_SUBJECT, wire::encode(&hello).into()).await?.await?;
            anyhow::Ok(ack.sequence)
        };
        match announced.await {
            Ok(seq) => break seq % (1 << (53 - CONN_STRIDE_BITS)) + 1,
            Err(e) => {
                tracing::warn!("bus {}: {e:#}; retrying in 1 s", bus.url);
                if *stop.borrow() {
                    anyhow::bail!("stopped before the bus at {} answered", bus.url);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!("publishing to the bus at {} ({} partitions) as agent {number}", bus.url, bus.partitions);
    let answering = tokio::spawn(super::packets::answer(client.clone(), options.node.clone(), options.packets.clone()));
    let _stop_answering = AbortOnDrop(answering);
    let conn_base = number << CONN_STRIDE_BITS;
    let mut reports = tokio::time::interval(Duration::from_secs(1));
    let mut sent = 0;
    let mut stopped_at: Option<tokio::time::Instant> = None;
    loop {
        let mut failed = false;
        for b in outbox.after(sent) {
            let batch = match wire::decode_agent(&b.bytes) {
                Ok(AgentMessage::Batch(batch)) => batch,
                Ok(_) | Err(_) => {
                    // The outbox holds only batches this process encoded.
                    tracing::error!("the outbox held something other than a batch");
                    outbox.ack(b.seq);
                    sent = b.seq;
                    continue;
                }
            };
            match publish(&js, &bus, &hello, conn_base, batch, options.skew_us).await {
                Ok(()) => {
                    outbox.ack(b.seq);
                    sent = b.seq;
                }
                Err(e) => {
                    tracing::warn!("bus {}: {e:#}; retrying in 1 s", bus.url);
                    failed = true;
                    break;
                }
            }
        }
        let stopping = *stop.borrow();
        if outbox.drained() && (!options.stay || stopping) {
            counters(&client, &hello, &report, &outbox, options.skew_us).await;
            let _ = client.flush().await;
            return Ok(());
        }
        if stopping {
            let since = *stopped_at.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= Duration::from_secs(5) {
                let s = outbox.stats();
                anyhow::bail!(
                    "stopped with the bus unreachable: {} batches ({} bytes) were never delivered",
                    s.batches,
                    s.bytes
                );
            }
        }
        let pause = if failed { Duration::from_secs(1) } else { Duration::from_secs(3600) };
        tokio::select! {
            () = outbox.ready.notified(), if !failed => {}
            () = tokio::time::sleep(pause) => {}
            _ = stop.changed(), if !stopping => {}
            _ = reports.tick() => counters(&client, &hello, &report, &outbox, options.skew_us).await,
        }
    }
}

/// Ends a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Publishes one batch as one part per partition and waits until the bus has stored them all
/// (`conn_base` is added to its connection ids; the hub benchmark publishes as agents do).
pub async fn publish(
    js: &jetstream::Context,
    bus: &BusConfig,
    hello: &Hello,
    conn_base: u64,
    batch: Batch,
    skew_us: i64,
) -> anyhow::Result<()> {
    let n = bus.partitions.max(1);
    let mut parts: Vec<Batch> = (0..n)
        .map(|p| Batch {
            seq: batch.seq,
            interfaces: batch.interfaces.clone(),
            items: Vec::new(),
            // The notes are counted once, by the replica that owns partition 0.
            notes: if p == 0 { batch.notes } else { Default::default() },
            watermark_us: batch.watermark_us,
        })
        .collect();
    for (place, mut o) in batch.items.into_iter().enumerate() {
        o.exchange.conn += conn_base;
        o.place = place as u32;
        let r = route(&o.exchange, n);
        if r.everywhere {
            for (p, part) in parts.iter_mut().enumerate() {
                if p as u32 != r.partition {
                    let mut copy = o.clone();
                    copy.learn = true;
                    part.items.push(copy);
                }
            }
        }
        parts[r.partition as usize].items.push(o);
    }
    let sent_us = now_us().saturating_add_signed(skew_us);
    let mut acks = Vec::with_capacity(parts.len());
    for (p, part) in parts.into_iter().enumerate() {
        let envelope = Envelope { hello: hello.clone(), sent_us, batch: part };
        let message = jetstream::message::PublishMessage::build()
            .payload(wire::encode(&envelope).into())
            .message_id(format!("{:x}-{}-{p}", hello.instance, batch.seq));
        acks.push(js.send_publish(super::obs_subject(p as u32), message).await?);
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

/// The agent's counters now, for every hub.
async fn counters(client: &async_nats::Client, hello: &Hello, report: &Mutex<Report>, outbox: &Outbox, skew_us: i64) {
    let report = {
        let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
        r.agent_us = now_us().saturating_add_signed(skew_us);
        let o = outbox.stats();
        (r.buffered_batches, r.buffered_bytes, r.dropped_batches, r.dropped_observations) =
            (o.batches, o.bytes, o.dropped_batches, o.dropped_observations);
        r.clone()
    };
    let message = wire::encode(&Counters { hello: hello.clone(), report });
    if let Err(e) = client.publish(super::report_subject(&hello.node), message.into()).await {
        tracing::debug!("counters not sent: {e}");
    }
}
