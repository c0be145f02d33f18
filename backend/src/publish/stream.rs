//! `WS /api/v1/stream`: hello, cluster status, snapshot, then records, map and cluster updates as
//! they happen. The pump is
//! generic over `Sink`/`Stream` so tests can drive it with channels; the axum handler only adapts
//! a WebSocket to it. Anything the browser sends is ignored (a broken frame just ends the session).

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use podtap_shared::ServerMessage;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::hub::{Hub, to_json};

/// Records in the snapshot a new browser gets.
pub const SNAPSHOT_RECORDS: usize = 500;

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.on_upgrade(move |socket: WebSocket| async move {
        let (tx, rx) = socket.split();
        let tx = tx.with(|text: Arc<str>| async move { Ok::<_, axum::Error>(Message::Text(text.as_ref().into())) });
        let rx = rx.map(|m| m.map(|_| ()));
        pump(Box::pin(tx), rx, state.hub).await;
    })
}

/// Sends hello and snapshot, then forwards the hub until either side goes away.
pub async fn pump<S, R, E>(mut sink: S, incoming: R, hub: Hub)
where
    S: Sink<Arc<str>> + Unpin,
    R: Stream<Item = Result<(), E>>,
{
    let hello = ServerMessage::Hello { version: env!("CARGO_PKG_VERSION").into(), source: hub.source().into() };
    let (snapshot, mut rx) = hub.subscribe(SNAPSHOT_RECORDS);
    let cluster = hub.cluster_message();
    if sink.send(to_json(&hello)).await.is_err()
        || sink.send(to_json(&cluster)).await.is_err()
        || sink.send(to_json(&snapshot)).await.is_err()
    {
        return;
    }
    let mut incoming = std::pin::pin!(incoming);
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let text = match msg {
                    Ok(text) => text,
                    Err(RecvError::Lagged(skipped)) => to_json(&ServerMessage::Lagged { skipped }),
                    Err(RecvError::Closed) => return,
                };
                if sink.send(text).await.is_err() {
                    return;
                }
            }
            from_client = incoming.next() => match from_client {
                Some(Ok(())) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}
