//! The hub's ingest endpoint: `WS /api/v1/ingest` on the `--ingest` address, one connection per
//! agent. It checks the bearer token (constant time) and the protocol version, then hands every
//! message to the join thread and sends back what it answers, pinging every second for the
//! clock offset. A message it cannot read closes the connection with a reason: the agent sends
//! again from the last acknowledged batch, so nothing is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{mpsc, oneshot};

use super::fetch::PacketFetch;
use super::join::{Event, Reply};
use super::wire::{self, AgentMessage, HubMessage};
use crate::feed::replay::now_us;

/// What the ingest handlers share.
#[derive(Clone)]
pub struct IngestState {
    pub events: mpsc::Sender<Event>,
    pub token: Option<Arc<str>>,
    slots: Arc<AtomicU64>,
    /// The capture time the merge has reached (`join::run`).
    merged: Arc<AtomicU64>,
    /// Exports' requests for the agents' packets.
    pub fetch: Option<Arc<PacketFetch>>,
}

impl IngestState {
    pub fn new(events: mpsc::Sender<Event>, merged: Arc<AtomicU64>, token: Option<Arc<str>>) -> Self {
        Self { events, token, slots: Arc::new(AtomicU64::new(1)), merged, fetch: None }
    }

    /// Exports may ask the connected agents for packets through `fetch`.
    pub fn with_fetch(mut self, fetch: Arc<PacketFetch>) -> Self {
        self.fetch = Some(fetch);
        self
    }

    /// Holds an agent's next batch back while its last one (`ahead_us`) is far ahead of what the
    /// merge has reached: an agent that runs ahead of the others (an overloaded hub reads
    /// sockets unevenly) waits in its own buffer, and the merge's state stays bounded. The
    /// agent the merge waits for is never held; no batch waits longer than `LEAD_WAIT`.
    async fn pace(&self, ahead_us: u64) {
        let start = std::time::Instant::now();
        loop {
            let merged = self.merged.load(Ordering::Relaxed);
            if merged == 0 || merged == u64::MAX || ahead_us <= merged.saturating_add(LEAD_US) {
                return;
            }
            if start.elapsed() >= LEAD_WAIT {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// How far (capture time) one agent's batches may run ahead of the merge.
const LEAD_US: u64 = 3_000_000;
/// The longest one batch is held back for it.
const LEAD_WAIT: Duration = Duration::from_secs(5);

/// The ingest router (its own listener, so a NetworkPolicy can open it to agents alone).
pub fn router(state: IngestState) -> Router {
    Router::new().route(wire::PATH, get(upgrade)).with_state(state)
}

/// Agents' messages are batches of at most a few hundred exchanges; anything far bigger is not
/// an agent.
const MAX_MESSAGE: usize = 64 << 20;

async fn upgrade(ws: WebSocketUpgrade, State(state): State<IngestState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.token {
        let bearer =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !bearer.is_some_and(|b| crate::access::link::same_secret(b, token)) {
            return (StatusCode::UNAUTHORIZED, "a valid agent token is required: Authorization: Bearer TOKEN\n")
                .into_response();
        }
    }
    ws.max_message_size(MAX_MESSAGE).on_upgrade(move |socket| connection(socket, state))
}

fn close(reason: &str) -> Message {
    // A close reason is at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code: 1008, reason: reason[..end].to_string().into() }))
}

async fn connection(mut socket: WebSocket, state: IngestState) {
    let slot = state.slots.fetch_add(1, Ordering::Relaxed);
    let hello = match tokio::time::timeout(Duration::from_secs(10), socket.recv()).await {
        Ok(Some(Ok(Message::Binary(b)))) => match wire::decode_agent(&b) {
            Ok(AgentMessage::Hello(h)) => h,
            Ok(_) => {
                let _ = socket.send(close("the first message must be a hello")).await;
                return;
            }
            Err(e) => {
                tracing::warn!("ingest: {e}");
                let _ = socket.send(close("unreadable hello: a different podtap version?")).await;
                return;
            }
        },
        _ => return,
    };
    if hello.protocol != wire::PROTOCOL {
        let reason = wire::mismatch(&hello);
        tracing::error!("{reason}");
        let refused = HubMessage::Refused { reason: reason.clone() };
        let _ = socket.send(Message::Binary(wire::encode(&refused).into())).await;
        let _ = socket.send(close("protocol version mismatch")).await;
        let event = Event::Refused { node: hello.node, version: hello.version, reason };
        let _ = state.events.send(event).await;
        return;
    }
    let node = hello.node.clone();
    let (reply, mut replies) = mpsc::unbounded_channel();
    let (have_tx, have_rx) = oneshot::channel();
    if let Some(fetch) = &state.fetch {
        fetch.register(slot, &node, reply.clone());
    }
    let unregister = |state: &IngestState| {
        if let Some(fetch) = &state.fetch {
            fetch.unregister(slot);
        }
    };
    if state
        .events
        .send(Event::Connected { slot, hello, reply: Reply::Agent(reply), have: have_tx, partition: 0 })
        .await
        .is_err()
    {
        unregister(&state);
        return;
    }
    let Ok(have) = have_rx.await else {
        unregister(&state);
        return;
    };
    let welcome = HubMessage::Welcome { protocol: wire::PROTOCOL, version: env!("CARGO_PKG_VERSION").into(), have };
    if socket.send(Message::Binary(wire::encode(&welcome).into())).await.is_err() {
        unregister(&state);
        let _ = state.events.send(Event::Disconnected { slot }).await;
        return;
    }
    tracing::info!("agent on {node} connected (it has sent batches up to {have} before)");
    let mut pings = tokio::time::interval(Duration::from_secs(1));
    // The capture time of the last batch forwarded.
    let mut sent_to = 0u64;
    let why = loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let event = match wire::decode_agent(&b) {
                        Ok(AgentMessage::Batch(batch)) => {
                            state.pace(sent_to).await;
                            if batch.watermark_us != u64::MAX {
                                sent_to = sent_to.max(batch.watermark_us);
                            }
                            Event::Batch { slot, batch }
                        }
                        Ok(AgentMessage::Report(report)) => Event::Report { slot, report },
                        Ok(AgentMessage::Pong { hub_us, agent_us }) => Event::Pong { slot, hub_us, agent_us, back_us: now_us() },
                        Ok(AgentMessage::Packets { request, found }) => {
                            if let Some(fetch) = &state.fetch {
                                fetch.answer(slot, request, found);
                            }
                            continue;
                        }
                        Ok(AgentMessage::Hello(_)) => {
                            let _ = socket.send(close("a second hello")).await;
                            break "sent a second hello".to_string();
                        }
                        Err(e) => {
                            let _ = socket.send(close("unreadable message")).await;
                            break e.to_string();
                        }
                    };
                    if state.events.send(event).await.is_err() {
                        break "the hub is stopping".into();
                    }
                }
                Some(Ok(Message::Close(_))) | None => break "disconnected".into(),
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
            },
            reply = replies.recv() => {
                let Some(reply) = reply else { break "the hub is stopping".into() };
                if socket.send(Message::Binary(wire::encode(&reply).into())).await.is_err() {
                    break "the connection broke".into();
                }
            }
            _ = pings.tick() => {
                let ping = HubMessage::Ping { hub_us: now_us() };
                if socket.send(Message::Binary(wire::encode(&ping).into())).await.is_err() {
                    break "the connection broke".into();
                }
            }
        }
    };
    tracing::info!("agent on {node}: {why}");
    unregister(&state);
    let _ = state.events.send(Event::Disconnected { slot }).await;
}
