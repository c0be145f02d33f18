//! pcapng exports over the bus: packets stay on the nodes, in each agent's packet ring, as with a
//! hub (`ingest::fetch`). A hub replica asks every agent it knows on `podtap.packets.NODE` (NATS
//! request and reply, not kept), with the spans moved to the agent's clock; the agent answers on
//! the request's inbox in parts of at most `PART` bytes (the bus carries 1 MiB a message), the
//! first saying how many. An agent that does not answer in time is reported as packets missing,
//! never waited for.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::ingest::wire;
use crate::packets::{Found, PacketStore, Wanted};
use crate::publish::Hub;
use crate::store::RemotePackets;

/// How long a hub waits for a node's packets.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// An agent not heard from for this long is not asked.
const HEARD_US: u64 = 10_000_000;
/// The largest part of an answer.
const PART: usize = 768 * 1024;

fn subject(node: &str) -> String {
    format!("podtap.packets.{}", node.replace(['.', '*', '>', ' '], "_"))
}

/// The agent's side: answers every request for this node's packets from its ring (`None`: it
/// keeps none), until the connection closes.
pub async fn answer(client: async_nats::Client, node: String, packets: Option<Arc<PacketStore>>) {
    let Ok(mut requests) = client.subscribe(subject(&node)).await else {
        tracing::warn!("cannot take requests for packets on the bus");
        return;
    };
    while let Some(m) = requests.next().await {
        let Some(reply) = m.reply else { continue };
        let found = match (rmp_serde::from_slice::<Vec<Wanted>>(&m.payload), packets.clone()) {
            (Ok(wanted), Some(store)) => tokio::task::spawn_blocking(move || store.found(&wanted, None))
                .await
                .ok()
                .and_then(|r| r.map_err(|e| tracing::warn!("reading this node's packets: {e}")).ok()),
            (Err(e), _) => {
                tracing::warn!("an unreadable request for packets: {e}");
                None
            }
            (Ok(_), None) => None,
        };
        for payload in cut(&wire::encode(&found), PART) {
            if let Err(e) = client.publish(reply.clone(), payload.into()).await {
                tracing::warn!("sending packets: {e}");
                break;
            }
        }
    }
}

/// An answer in messages of at most `part` bytes (and 4), the first starting with how many.
fn cut(bytes: &[u8], part: usize) -> Vec<Vec<u8>> {
    let parts: Vec<&[u8]> = if bytes.is_empty() { vec![&[][..]] } else { bytes.chunks(part).collect() };
    let count = parts.len() as u32;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| if i == 0 { [&count.to_be_bytes()[..], p].concat() } else { p.to_vec() })
        .collect()
}

/// The answer `cut` made, from its messages as they come (`None`: one is missing).
fn paste(mut next: impl FnMut() -> Option<Vec<u8>>) -> Result<Vec<u8>, &'static str> {
    let first = next().ok_or("no answer")?;
    let (count, rest) = first.split_at_checked(4).ok_or("a short answer")?;
    let count = u32::from_be_bytes(count.try_into().map_err(|_| "a short answer")?);
    let mut bytes = rest.to_vec();
    for _ in 1..count {
        bytes.extend_from_slice(&next().ok_or("a part missing")?);
    }
    Ok(bytes)
}

/// The hub's side: the export's way to every agent on the bus.
pub struct BusPackets {
    pub client: async_nats::Client,
    pub hub: Hub,
}

impl BusPackets {
    /// One node's packets of `wanted` (its clock), or why not.
    async fn ask(&self, node: &str, wanted: &[Wanted]) -> Result<Option<Found>, String> {
        let inbox = self.client.new_inbox();
        let mut answers = self.client.subscribe(inbox.clone()).await.map_err(|e| e.to_string())?;
        self.client
            .publish_with_reply(subject(node), inbox, wire::encode(wanted).into())
            .await
            .map_err(|e| e.to_string())?;
        let gather = async {
            // The parts come in order on the one inbox; gathered first, then put together.
            let first = answers.next().await.ok_or("no answer")?;
            let count = first.payload.get(..4).map_or(1, |c| u32::from_be_bytes(c.try_into().unwrap_or([0, 0, 0, 1])));
            let mut messages = vec![first.payload.to_vec()];
            for _ in 1..count {
                messages.push(answers.next().await.ok_or("a part missing")?.payload.to_vec());
            }
            let mut messages = messages.into_iter();
            let bytes = paste(|| messages.next())?;
            rmp_serde::from_slice::<Option<Found>>(&bytes).map_err(|e| e.to_string())
        };
        tokio::time::timeout(ANSWER_WAIT, gather).await.map_err(|_| "no answer in time".to_string())?
    }

    async fn gather(self: Arc<Self>, wanted: Vec<Wanted>) -> Option<Found> {
        let agents = self.hub.agents().map(|(a, _)| a).unwrap_or_default();
        let mut asked = std::collections::BTreeSet::new();
        // Every node whose agent was heard from lately (its counters come every second, after
        // its capture too), at once.
        let now = crate::feed::replay::now_us();
        let heard = |a: &&podtap_shared::AgentStatus| now.saturating_sub(a.last_seen_us) < HEARD_US;
        let answers = agents.iter().filter(heard).filter(|a| asked.insert(a.node.clone())).map(|a| {
            let offset = a.clock_offset_ms.map_or(0, |ms| (ms * 1000.0) as i64);
            let theirs: Vec<Wanted> = wanted.iter().map(|w| w.on_clock(offset)).collect();
            let this = self.clone();
            async move { (a, offset, this.ask(&a.node, &theirs).await) }
        });
        let answers = futures_util::future::join_all(answers).await;
        let mut parts = Vec::new();
        let (mut kept_anywhere, mut missing) = (false, false);
        for (a, offset, answer) in answers {
            match answer {
                Ok(Some(mut found)) => {
                    kept_anywhere = true;
                    for i in &mut found.interfaces {
                        i.node = Some(a.node.clone());
                    }
                    parts.push(found.shift(-offset));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("the agent on {} did not send its packets: {e}", a.node);
                    missing = true;
                }
            }
        }
        let mut all = Found::merge(parts);
        all.aged_out |= missing;
        (kept_anywhere || missing).then_some(all)
    }
}

impl RemotePackets for Arc<BusPackets> {
    fn fetch(&self, wanted: Vec<Wanted>) -> std::pin::Pin<Box<dyn Future<Output = Option<Found>> + Send>> {
        Box::pin(self.clone().gather(wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_cut_in_parts_is_put_back_together() {
        let bytes: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        for part in [1, 7, 1000, 2500, 4000] {
            let parts = cut(&bytes, part);
            assert_eq!(parts.len(), bytes.len().div_ceil(part));
            assert!(parts.iter().skip(1).all(|p| p.len() <= part));
            let mut it = parts.into_iter();
            assert_eq!(paste(|| it.next()).unwrap(), bytes, "parts of {part}");
        }
        let mut empty = cut(&[], 10).into_iter();
        assert_eq!(paste(|| empty.next()).unwrap(), Vec::<u8>::new());
        let mut short = cut(&bytes, 1000).into_iter().take(2);
        assert_eq!(paste(|| short.next()), Err("a part missing"));
    }
}
