//! The live connection: one WebSocket to `/api/v1/stream`, reconnecting with backoff, feeding
//! reactive state. Only this module touches the socket; views read `Live`'s signals.

use std::time::Duration;

use leptos::prelude::*;
use podtap_shared::{MissingKind, Record, ServerMessage, ServiceMap};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// Records kept in the browser for the request list.
pub const KEEP_RECORDS: usize = 2000;

/// Connection state, for the status pill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Live,
    /// Closed; retrying in the given seconds.
    Retrying(u32),
}

/// Reactive state fed by the stream. `Copy`: signals are handles.
#[derive(Clone, Copy)]
pub struct Live {
    pub status: RwSignal<Status>,
    pub source: RwSignal<String>,
    /// In `Record::time_order`, oldest first, at most `KEEP_RECORDS`.
    pub records: RwSignal<Vec<Record>>,
    pub map: RwSignal<ServiceMap>,
    /// Records the server could not send this browser because it fell behind.
    pub skipped: RwSignal<u64>,
    /// Messages that could not be read (a newer server, a broken frame).
    pub bad_messages: RwSignal<u64>,
    /// Kubernetes kinds the server could not list, and what each costs.
    pub missing: RwSignal<Vec<MissingKind>>,
}

impl Live {
    pub fn new() -> Self {
        Self {
            status: RwSignal::new(Status::Connecting),
            source: RwSignal::new(String::new()),
            records: RwSignal::new(Vec::new()),
            map: RwSignal::new(ServiceMap::default()),
            skipped: RwSignal::new(0),
            bad_messages: RwSignal::new(0),
            missing: RwSignal::new(Vec::new()),
        }
    }

    /// Applies one server message.
    pub fn apply(&self, msg: ServerMessage) {
        match msg {
            ServerMessage::Hello { source, .. } => self.source.set(source),
            ServerMessage::Snapshot { records, map } => {
                self.records.set(in_time_order(Vec::new(), records));
                self.map.set(map);
            }
            ServerMessage::Records { records } => self.records.update(|all| {
                *all = in_time_order(std::mem::take(all), records);
            }),
            ServerMessage::Map { map } => self.map.set(map),
            ServerMessage::Lagged { skipped } => self.skipped.update(|s| *s += skipped),
            ServerMessage::Cluster { missing, .. } => self.missing.set(missing),
        }
    }
}

/// Adds `new` to `all` (already in `Record::time_order`) by request time, keeping the newest
/// `KEEP_RECORDS`: in arrival order a probe would stand a second below newer requests.
fn in_time_order(mut all: Vec<Record>, new: Vec<Record>) -> Vec<Record> {
    for r in new {
        // Almost always at or near the end: the search is short and so is the shift.
        let at = all.partition_point(|o| o.time_order() <= r.time_order());
        all.insert(at, r);
    }
    let excess = all.len().saturating_sub(KEEP_RECORDS);
    all.drain(..excess);
    all
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

fn stream_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    let host = location.host().ok()?;
    let token = crate::url_state::param("token").map(|t| format!("?token={t}")).unwrap_or_default();
    Some(format!("{scheme}://{host}/api/v1/stream{token}"))
}

/// Opens the stream and keeps it open: after a close it retries after 1, 2, 4 … 10 seconds.
pub fn connect(live: Live, attempt: u32) {
    let Some(url) = stream_url() else { return };
    let Ok(ws) = WebSocket::new(&url) else {
        retry(live, attempt);
        return;
    };
    live.status.set(Status::Connecting);

    let on_open = Closure::<dyn FnMut()>::new(move || live.status.set(Status::Live));
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    on_open.forget();

    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        match e.data().as_string().map(|t| serde_json::from_str::<ServerMessage>(&t)) {
            Some(Ok(msg)) => live.apply(msg),
            _ => live.bad_messages.update(|n| *n += 1),
        }
    });
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();

    let was_live = move || live.status.get_untracked() == Status::Live;
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
        retry(live, if was_live() { 0 } else { attempt + 1 });
    });
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    on_close.forget();
}

fn retry(live: Live, attempt: u32) {
    let secs = (1u32 << attempt.min(4)).min(10);
    live.status.set(Status::Retrying(secs));
    set_timeout(move || connect(live, attempt), Duration::from_secs(u64::from(secs)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: u64, ts: u64) -> Record {
        Record { id, ts, ..Record::test() }
    }

    #[test]
    fn records_are_kept_in_request_time_order_whatever_order_they_arrive_in() {
        // A merged request (id 2) arrives before a probe from a second earlier (id 1).
        let all = in_time_order(Vec::new(), vec![at(2, 2_000_000), at(3, 2_500_000)]);
        let all = in_time_order(all, vec![at(1, 1_000_000), at(4, 2_400_000)]);
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 4, 3]);
        // The oldest by time leave first when the list is full.
        let many: Vec<Record> = (0..KEEP_RECORDS as u64 + 5).map(|i| at(10 + i, 3_000_000 + i)).collect();
        let all = in_time_order(all, many);
        assert_eq!(all.len(), KEEP_RECORDS);
        assert_eq!(all[0].id, 15);
        assert!(all.windows(2).all(|w| w[0].time_order() <= w[1].time_order()));
    }
}
