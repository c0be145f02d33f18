//! The hub's side of a pcapng export: packets stay on the nodes, in each agent's packet ring.
//! An export asks every connected agent over its connection for the flows it wants (the spans
//! moved to that agent's clock by its offset), waits a few seconds for the answers, and merges
//! them, each frame's time moved back to the hub's clock and each interface named with its node.
//! An agent that does not answer in time is reported as packets missing, never waited for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::wire::HubMessage;
use crate::packets::{Found, Wanted};
use crate::publish::Hub;
use crate::store::RemotePackets;

/// How long an export waits for the agents' answers.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

struct Agent {
    node: String,
    tx: mpsc::UnboundedSender<HubMessage>,
}

type Pending = HashMap<(u64, u64), oneshot::Sender<Option<Found>>>;

/// The connected agents and the answers awaited.
pub struct PacketFetch {
    hub: Hub,
    next: AtomicU64,
    agents: Mutex<HashMap<u64, Agent>>,
    pending: Mutex<Pending>,
}

impl PacketFetch {
    pub fn new(hub: Hub) -> Arc<Self> {
        Arc::new(Self { hub, next: AtomicU64::new(1), agents: Mutex::default(), pending: Mutex::default() })
    }

    /// An agent connected on `slot`; `tx` reaches its socket.
    pub fn register(&self, slot: u64, node: &str, tx: mpsc::UnboundedSender<HubMessage>) {
        self.agents.lock().unwrap_or_else(|e| e.into_inner()).insert(slot, Agent { node: node.to_string(), tx });
    }

    pub fn unregister(&self, slot: u64) {
        self.agents.lock().unwrap_or_else(|e| e.into_inner()).remove(&slot);
        // Its unanswered requests end now (their senders drop).
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).retain(|(_, s), _| *s != slot);
    }

    /// The agent on `slot` answered `request`.
    pub fn answer(&self, slot: u64, request: u64, found: Option<Found>) {
        if let Some(tx) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&(request, slot)) {
            let _ = tx.send(found);
        }
    }

    /// Each node's clock minus the hub's, in µs, as the join thread estimates it.
    fn offsets(&self) -> HashMap<String, i64> {
        let agents = self.hub.agents().map(|(a, _)| a).unwrap_or_default();
        agents.into_iter().filter_map(|a| Some((a.node, (a.clock_offset_ms? * 1000.0) as i64))).collect()
    }

    async fn gather(self: Arc<Self>, wanted: Vec<Wanted>) -> Option<Found> {
        let request = self.next.fetch_add(1, Ordering::Relaxed);
        let offsets = self.offsets();
        let mut waiting = Vec::new();
        {
            let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (slot, agent) in agents.iter() {
                let offset = offsets.get(&agent.node).copied().unwrap_or(0);
                let theirs = wanted.iter().map(|w| w.on_clock(offset)).collect();
                let (tx, rx) = oneshot::channel();
                if agent.tx.send(HubMessage::Packets { request, wanted: theirs }).is_ok() {
                    pending.insert((request, *slot), tx);
                    waiting.push((agent.node.clone(), offset, rx));
                }
            }
        }
        if waiting.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        let mut kept_anywhere = false;
        let mut missing = false;
        for (node, offset, rx) in waiting {
            match tokio::time::timeout(ANSWER_WAIT, rx).await {
                Ok(Ok(Some(mut found))) => {
                    kept_anywhere = true;
                    for i in &mut found.interfaces {
                        i.node = Some(node.clone());
                    }
                    parts.push(found.shift(-offset));
                }
                Ok(Ok(None)) => {} // keeps no packets
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!("the agent on {node} did not send its packets in time");
                    missing = true;
                }
            }
        }
        let mut all = Found::merge(parts);
        all.aged_out |= missing;
        (kept_anywhere || missing).then_some(all)
    }
}

/// The export's way to the agents.
pub struct Remote(pub Arc<PacketFetch>);

impl RemotePackets for Remote {
    fn fetch(&self, wanted: Vec<Wanted>) -> std::pin::Pin<Box<dyn Future<Output = Option<Found>> + Send>> {
        Box::pin(self.0.clone().gather(wanted))
    }
}
