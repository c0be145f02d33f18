//! A hub replica on the bus: it merges its share of the partitions (`P % N == I`, `slot`), and a
//! peer's when that peer is away (`lease`); it reads every partition's records into its store
//! (`records::into_hub`), so it answers for the whole cluster; it shows on `/healthz` which
//! replica merges each partition and which nobody reads; it asks the agents for packets
//! (`packets`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use super::lease::{self, Holders};
use super::records;
use super::slot::Shared;
use super::{BusConfig, BusError, OBS};
use crate::feed::ClusterFeed;
use crate::feed::replay::now_us;
use crate::publish::Hub;

/// Runs replica `bus.replica` into `hub` until the process ends; returns once it has joined the
/// bus (its own share started when it was free).
pub async fn start(hub: Hub, cluster: ClusterFeed, bus: BusConfig, retention_us: u64) -> Result<(), BusError> {
    let (index, count) = bus.replica;
    let (client, js) = super::connect(&bus.url, &format!("podtap-hub {index}/{count}")).await?;
    super::streams(&js, &bus.url, bus.retention).await?;
    let packets = Arc::new(super::packets::BusPackets { client: client.clone(), hub: hub.clone() });
    hub.set_remote_packets(Arc::new(packets));
    let holders = Holders::default();
    tokio::spawn(watch_partitions(js.clone(), hub.clone(), bus.partitions, (index, count), holders.clone()));
    let since = now_us().saturating_sub(retention_us);
    tokio::spawn(records::into_hub(js.clone(), bus.url.clone(), hub.clone(), since));
    let (url, partitions, takeover) = (bus.url.clone(), bus.partitions, bus.takeover);
    let shared = Arc::new(Shared { client, js, hub, cluster, bus });
    lease::start(shared, takeover, holders).await?;
    let owned: Vec<u32> = (0..partitions).filter(|p| p % count == index).collect();
    tracing::info!("hub replica {index} of {count} on the bus at {url}: merging partitions {owned:?} of {partitions}");
    Ok(())
}

/// How long a partition may go unread while observations wait before it is shown as stalled:
/// agents send every partition a part at least every half second, so its replica reads it at
/// least that often.
const STALLED_AFTER: Duration = Duration::from_secs(5);

/// Every few seconds, every partition's consumer as the bus sees it, for `/healthz` and the
/// page: a partition nobody reads (its replica away) is named, with what waits on it.
async fn watch_partitions(
    js: jetstream::Context,
    hub: Hub,
    partitions: u32,
    (replica, replicas): (u32, u32),
    holders: Holders,
) {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    let mut answered = now_us();
    loop {
        every.tick().await;
        let now = now_us();
        let asked = tokio::time::timeout(Duration::from_secs(2), js.get_stream(OBS)).await;
        let Ok(Ok(stream)) = asked else {
            // The bus does not answer: said, and what was last seen of its partitions kept.
            let mut status = hub.bus().unwrap_or(podtap_shared::BusStatus { replica, replicas, ..Default::default() });
            status.unreachable_s = Some((now.saturating_sub(answered) as f64 / 1e6).round());
            hub.set_bus(status);
            continue;
        };
        answered = now;
        let mut status = podtap_shared::BusStatus { replica, replicas, ..Default::default() };
        let merged_by = holders.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for p in 0..partitions {
            let merged_by = merged_by.get(&(p % replicas)).copied();
            let Ok(info) = stream.consumer_info(format!("podtap-obs-{p}")).await else {
                // Its replica never started.
                status.partitions.push(podtap_shared::BusPartition {
                    partition: p,
                    replica: p % replicas,
                    waiting: 0,
                    stalled_s: Some(0.0),
                    merged_by,
                });
                continue;
            };
            let waiting = info.num_pending + info.num_ack_pending as u64;
            let read_us =
                info.delivered.last_active.map_or(0, |t| u64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(0));
            let idle = Duration::from_micros(now.saturating_sub(read_us));
            let stalled = (info.num_pending > 0 && idle >= STALLED_AFTER).then(|| idle.as_secs_f64().round());
            status.partitions.push(podtap_shared::BusPartition {
                partition: p,
                replica: p % replicas,
                waiting,
                stalled_s: stalled,
                merged_by,
            });
        }
        hub.set_bus(status);
    }
}
