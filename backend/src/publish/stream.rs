//! `WS /api/v1/stream`, protocol 2 (`podtap_shared::stream` documents it): hello, cluster status
//! and a snapshot; then the records matching the browser's subscription, sampled when there are
//! more than it asked for, a map delta and its Service's balance once a second. The pump is
//! generic over `Sink`/`Stream` so tests drive it with channels; the axum handler only adapts a
//! WebSocket to it. A message the server cannot read gets an `error` reply and changes nothing.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use podtap_shared::stream::{DEFAULT_MAX_RATE, PROTOCOL};
use podtap_shared::{Balance, ClientMessage, Filter, MapBuilder, MapEdge, MapNode, MapStats, Record, ServerMessage};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::api::Scoped;
use super::auth::Presented;
use super::hub::{Hub, Published, to_json};
use crate::access::{Refusal, Sight};
use crate::store::{Lens, Window};

/// Records (requests and connections) in the snapshot a new browser gets.
pub const SNAPSHOT_RECORDS: usize = 2_000;
/// How the agents message starts on the wire (`ServerMessage::Agents`).
const AGENTS_TAG: &str = r#"{"type":"agents""#;
/// How often map deltas, balance and notices go out.
const TICK: Duration = Duration::from_secs(1);
/// Edges in one map delta at most (a busier second's go in several).
const MAP_DELTA_EDGES: usize = 300;

/// The upgrade; a live link's filter (`restrict`) holds for every subscription on the socket,
/// and what the viewer sees is decided again every `RECHECK` while it stays open.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    scoped: Option<Extension<Scoped>>,
    presented: Option<Extension<Presented>>,
) -> Response {
    let (restrict, sight) = match scoped {
        Some(Extension(s)) => (s.restrict, s.sight),
        None => (None, Arc::new(Sight::All)),
    };
    let recheck: Option<Recheck> = presented.map(|Extension(p)| {
        let state = state.clone();
        Arc::new(move || {
            let (p, state) = (p.clone(), state.clone());
            Box::pin(async move { p.grant_now(&state).await.map(|g| g.sight()) }) as Rechecking
        }) as Recheck
    });
    ws.on_upgrade(move |socket: WebSocket| async move {
        let (tx, rx) = socket.split();
        let tx = tx.with(|text: Arc<str>| async move { Ok::<_, axum::Error>(Message::Text(text.as_ref().into())) });
        let rx = rx.filter_map(|m| async move {
            match m {
                Ok(Message::Text(t)) => Some(Ok(Some(t.to_string()))),
                Ok(Message::Close(_)) => None,
                Ok(_) => Some(Ok(None)),
                Err(e) => Some(Err(e)),
            }
        });
        pump(Box::pin(tx), rx, state.hub, Viewer { restrict, sight, recheck }).await;
    })
}

/// What a stream's viewer sees now, or why they no longer may.
pub type Rechecking = Pin<Box<dyn Future<Output = Result<Sight, Refusal>> + Send>>;
pub type Recheck = Arc<dyn Fn() -> Rechecking + Send + Sync>;

/// How often an open stream's viewer is decided again (RBAC answers are cached as long).
const RECHECK: Duration = crate::access::decide::REVIEW_TTL;

/// Who the stream is for: a live link's filter, which holds for every subscription on the
/// socket, the namespaces the viewer sees, and how to decide that again.
#[derive(Clone)]
pub struct Viewer {
    pub restrict: Option<Arc<str>>,
    pub sight: Arc<Sight>,
    pub recheck: Option<Recheck>,
}

/// One browser's subscription and what it has been sent.
struct Session {
    sight: Arc<Sight>,
    filter: Filter,
    /// The filter as the browser wrote it: a subscription with the same one needs no snapshot.
    filter_text: String,
    service: Option<String>,
    max_rate: u64,
    /// Batches up to this one were in the last snapshot.
    seq: u64,
    /// The map's numbers as last sent; `fresh` counts matching records since.
    map: MapStats,
    fresh: MapBuilder,
    balance: Option<Balance>,
    sample: Sample,
}

/// Per-second sampling: at most `max_rate` records a second, spread over the second by a stride
/// learned from the previous one.
#[derive(Default)]
struct Sample {
    second: u64,
    matched: u64,
    shown: u64,
    stride: u64,
    /// Whether the current second's notice went out already.
    noticed: bool,
}

impl Sample {
    /// Whether the next matching record (at wall second `now_s`) is sent.
    fn take(&mut self, now_s: u64, max_rate: u64) -> (bool, Option<ServerMessage>) {
        let mut notice = None;
        if now_s != self.second {
            notice = self.notice();
            self.stride = self.matched.div_ceil(max_rate.max(1)).max(1);
            (self.second, self.matched, self.shown, self.noticed) = (now_s, 0, 0, false);
        }
        self.matched += 1;
        let send = self.shown < max_rate && (self.matched - 1).is_multiple_of(self.stride);
        self.shown += u64::from(send);
        (send, notice)
    }

    /// The notice for a finished second that was sampled, once.
    fn notice(&mut self) -> Option<ServerMessage> {
        if std::mem::replace(&mut self.noticed, true) {
            return None;
        }
        (self.matched > self.shown).then(|| ServerMessage::Sampled {
            second: self.second * 1_000_000,
            shown: self.shown,
            matched: self.matched,
        })
    }
}

/// A second's map changes as messages of at most `MAP_DELTA_EDGES` edges (the new nodes in the
/// first): a browser reads a message in one go, and thousands of edges in one took it 20–30 ms,
/// more than a frame, every second.
fn map_deltas(nodes: Vec<MapNode>, edges: Vec<MapEdge>) -> Vec<ServerMessage> {
    let mut nodes = Some(nodes);
    let mut out: Vec<ServerMessage> = edges
        .chunks(MAP_DELTA_EDGES)
        .map(|part| ServerMessage::MapDelta { nodes: nodes.take().unwrap_or_default(), edges: part.to_vec() })
        .collect();
    if let Some(nodes) = nodes.filter(|n| !n.is_empty()) {
        out.push(ServerMessage::MapDelta { nodes, edges: Vec::new() });
    }
    out
}

fn wall_second() -> u64 {
    crate::feed::replay::now_us() / 1_000_000
}

impl Session {
    fn new(
        hub: &Hub,
        sight: Arc<Sight>,
        filter: Filter,
        filter_text: String,
        service: Option<String>,
        max_rate: u64,
    ) -> (Self, ServerMessage) {
        let sub = hub.subscribe(Lens::new(&filter, &sight), &filter_text, SNAPSHOT_RECORDS);
        let session = Session {
            sight,
            filter,
            filter_text,
            service,
            max_rate,
            seq: sub.seq,
            map: sub.map,
            fresh: MapBuilder::new(),
            balance: None,
            sample: Sample::default(),
        };
        (session, sub.snapshot)
    }

    /// The records of a batch this browser is sent (all that match, or a sample), and a notice
    /// when the previous second was sampled.
    fn take(&mut self, batch: &Published) -> (Vec<Record>, Option<ServerMessage>) {
        if batch.seq <= self.seq {
            return (Vec::new(), None); // already in the snapshot
        }
        let mut out = Vec::new();
        let mut notice = None;
        let now = wall_second();
        let lens = Lens::new(&self.filter, &self.sight);
        for r in batch.records.iter().filter_map(|r| lens.show(r)) {
            self.fresh.add(&r);
            let (send, n) = self.sample.take(now, self.max_rate);
            notice = notice.or(n);
            if send {
                out.push(r.into_owned());
            }
        }
        (out, notice)
    }

    /// Once a second: the edges that changed, the Service's balance when it changed, and the
    /// notice of a sampled second that has ended.
    fn tick(&mut self, hub: &Hub) -> Vec<ServerMessage> {
        let mut out = Vec::new();
        let fresh = self.fresh.take_stats();
        if !fresh.edges.is_empty() {
            let new_nodes: Vec<_> = fresh
                .nodes
                .iter()
                .filter(|(id, _)| !self.map.nodes.contains_key(*id))
                .map(|(_, n)| n.clone())
                .collect();
            let touched = self.map.merge(&fresh);
            let edges = touched.iter().filter_map(|k| self.map.edge(k)).collect();
            out.extend(map_deltas(new_nodes, edges));
        }
        if let Some(service) = &self.service {
            let balance = hub.balance(service, Window::ALL, &self.sight);
            if balance != self.balance {
                if let Some(b) = &balance {
                    out.push(ServerMessage::Balance { balance: b.clone() });
                }
                self.balance = balance;
            }
        }
        if self.sample.second != wall_second() {
            out.extend(self.sample.notice());
        }
        out
    }
}

/// Sends hello, cluster and snapshot, then the subscription's stream, until either side goes away.
/// Every record, map number and balance is what the viewer sees; with a live link's filter every
/// subscription is narrowed by it, and a Service's balance is sent only when some request through
/// it passes it.
pub async fn pump<S, R, E>(mut sink: S, incoming: R, hub: Hub, viewer: Viewer)
where
    S: Sink<Arc<str>> + Unpin,
    R: Stream<Item = Result<Option<String>, E>>,
{
    let hello = ServerMessage::Hello {
        version: env!("CARGO_PKG_VERSION").into(),
        source: hub.source().into(),
        protocol: PROTOCOL,
        clock: hub.clock(),
    };
    let Viewer { restrict, mut sight, recheck } = viewer;
    let mut rechecked = tokio::time::Instant::now();
    let mut feed = hub.feed(sight.clone());
    let narrowed = |text: &str| Filter::parse(&super::api::narrowed(restrict.as_deref(), text));
    let start = narrowed("").unwrap_or_default();
    let (mut session, snapshot) =
        Session::new(&hub, sight.clone(), start, String::new(), None, u64::from(DEFAULT_MAX_RATE));
    let cluster = hub.cluster_message();
    // The agents' counts are of every namespace's traffic: a viewer of some gets none.
    let agents = hub.agents_message().filter(|_| sight.is_all());
    for msg in [Some(hello), Some(cluster), agents, Some(snapshot)].into_iter().flatten() {
        if sink.send(to_json(&msg)).await.is_err() {
            return;
        }
    }
    let mut incoming = std::pin::pin!(incoming);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let out: Vec<Arc<str>> = tokio::select! {
            batch = feed.records.recv() => {
                let Some(batch) = batch else { return };
                let (records, notice) = session.take(&batch);
                let mut out: Vec<Arc<str>> = notice.iter().map(to_json).collect();
                if !records.is_empty() {
                    out.push(to_json(&ServerMessage::Records { records }));
                }
                out
            }
            control = feed.control.recv() => match control {
                Ok(text) if !sight.is_all() && text.starts_with(AGENTS_TAG) => Vec::new(),
                Ok(text) => vec![text],
                Err(RecvError::Lagged(_)) => {
                    let agents = hub.agents_message().filter(|_| sight.is_all());
                    std::iter::once(hub.cluster_message()).chain(agents).map(|m| to_json(&m)).collect()
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if let Some(recheck) = recheck.as_ref().filter(|_| rechecked.elapsed() >= RECHECK) {
                    rechecked = tokio::time::Instant::now();
                    match recheck().await {
                        Err(refusal) => {
                            let message = format!("this stream ended: {refusal}");
                            let _ = sink.send(to_json(&ServerMessage::Error { message })).await;
                            return;
                        }
                        // What the viewer sees changed: start again from a snapshot of it.
                        Ok(now) if now != *sight => {
                            sight = Arc::new(now);
                            let filter = narrowed(&session.filter_text).unwrap_or_default();
                            let (text, service, rate) = (session.filter_text.clone(), session.service.clone(), session.max_rate);
                            let (next, snapshot) = Session::new(&hub, sight.clone(), filter, text, service, rate);
                            session = next;
                            if sink.send(to_json(&snapshot)).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
                let mut out: Vec<Arc<str>> = session.tick(&hub).iter().map(to_json).collect();
                let skipped = feed.skipped.swap(0, Ordering::Relaxed);
                if skipped > 0 {
                    out.push(to_json(&ServerMessage::Lagged { skipped }));
                }
                out
            }
            from_client = incoming.next() => match from_client {
                Some(Ok(Some(text))) => match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Subscribe { filter, service, max_rate }) => match narrowed(&filter) {
                        Ok(parsed) => {
                            let service = service.filter(|s| super::api::service_visible(&hub, restrict.as_deref(), &sight, s));
                            let rate = u64::from(max_rate.unwrap_or(DEFAULT_MAX_RATE).clamp(1, 100_000));
                            if filter == session.filter_text {
                                // The browser's first subscription is usually the filter it was
                                // already sent (the empty one, on connecting): no second
                                // snapshot; the Service's balance comes with the next tick.
                                if session.service != service {
                                    session.balance = None;
                                }
                                (session.service, session.max_rate) = (service, rate);
                                Vec::new()
                            } else {
                                let (next, snapshot) = Session::new(&hub, sight.clone(), parsed, filter, service, rate);
                                session = next;
                                vec![to_json(&snapshot)]
                            }
                        }
                        Err(e) => vec![to_json(&ServerMessage::Error { message: format!("filter: {e}") })],
                    },
                    Err(e) => vec![to_json(&ServerMessage::Error { message: format!("unreadable message: {e}") })],
                },
                Some(Ok(None)) => Vec::new(),
                Some(Err(_)) | None => return,
            },
        };
        for text in out {
            if sink.send(text).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_message_starts_with_its_tag() {
        let text = to_json(&ServerMessage::Agents { agents: Vec::new() });
        assert!(text.starts_with(AGENTS_TAG), "{text}");
    }

    #[test]
    fn a_busy_seconds_map_changes_go_in_parts_the_new_nodes_first() {
        let edge = |i: usize| -> MapEdge {
            serde_json::from_value(serde_json::json!({"source": format!("a{i}"), "target": "b", "requests": 1,
                "connections": 1, "errors": 0, "probe_requests": 0, "bytes": 0, "p50_ms": null, "p95_ms": null,
                "p99_ms": null}))
            .unwrap()
        };
        let node = |id: &str| -> MapNode {
            serde_json::from_value(serde_json::json!({"id": id, "kind": "pod", "label": id})).unwrap()
        };
        let parts = map_deltas(vec![node("a0"), node("b")], (0..MAP_DELTA_EDGES * 2 + 1).map(edge).collect());
        let sizes: Vec<(usize, usize)> = parts
            .iter()
            .map(|m| match m {
                ServerMessage::MapDelta { nodes, edges } => (nodes.len(), edges.len()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sizes, [(2, MAP_DELTA_EDGES), (0, MAP_DELTA_EDGES), (0, 1)]);
        assert!(map_deltas(Vec::new(), Vec::new()).is_empty());
        assert_eq!(map_deltas(vec![node("c")], Vec::new()).len(), 1, "new nodes without edges still go");
    }

    #[test]
    fn sampling_sends_at_most_the_rate_spread_over_the_second_and_says_so() {
        let mut s = Sample::default();
        let sent: u64 = (0..10_000).map(|_| u64::from(s.take(1, 100).0)).sum();
        assert_eq!(sent, 100, "the first second: the first 100");
        // The next second learned the stride: every 100th record, still at most 100.
        let (first, notice) = s.take(2, 100);
        assert!(first);
        assert_eq!(notice, Some(ServerMessage::Sampled { second: 1_000_000, shown: 100, matched: 10_000 }));
        let sent: u64 = (1..10_000).map(|_| u64::from(s.take(2, 100).0)).sum::<u64>() + 1;
        assert_eq!(sent, 100);
        // A quiet second is not sampled and gets no notice.
        let (_, notice) = s.take(3, 100);
        assert!(notice.is_some(), "second 2 was sampled");
        let (_, notice) = s.take(4, 100);
        assert_eq!(notice, None);
    }
}
