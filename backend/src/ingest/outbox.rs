//! The agent's outbox: encoded batches the hub has not acknowledged, oldest first, bounded in
//! bytes (`--buffer-mb`). Live capture never waits for it: when the hub has been away so long
//! that the bound is reached, the oldest batches go, and are counted. A replayed file waits
//! instead (`push_waiting`): nothing of it needs to be lost.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio_tungstenite::tungstenite::Bytes;

use super::wire::{self, AgentMessage, Batch};

/// One encoded batch.
#[derive(Clone)]
pub struct Sealed {
    pub seq: u64,
    pub bytes: Bytes,
    pub observations: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Sealed>,
    bytes: usize,
    next_seq: u64,
    dropped_batches: u64,
    dropped_observations: u64,
    /// The producer is done: the last batch is in.
    closed: bool,
}

/// What is waiting and what was lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub batches: u64,
    pub bytes: u64,
    pub dropped_batches: u64,
    pub dropped_observations: u64,
}

pub struct Outbox {
    state: Mutex<State>,
    limit: usize,
    /// Wakes the sender when a batch comes.
    pub ready: tokio::sync::Notify,
    /// Wakes a waiting producer when room is made.
    room: Condvar,
}

impl Outbox {
    /// An outbox that holds at most `limit` bytes of batches (at least one batch, whatever its
    /// size).
    pub fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(State { next_seq: 1, ..State::default() }),
            limit,
            ready: tokio::sync::Notify::new(),
            room: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seal(state: &mut State, mut batch: Batch) -> Sealed {
        batch.seq = state.next_seq;
        state.next_seq += 1;
        let observations = batch.items.len() as u64;
        let bytes = Bytes::from(wire::encode(&AgentMessage::Batch(batch)));
        Sealed { seq: state.next_seq - 1, bytes, observations }
    }

    /// Adds a batch; drops the oldest when over the bound. Never waits.
    pub fn push(&self, batch: Batch) {
        let mut s = self.lock();
        let sealed = Self::seal(&mut s, batch);
        s.bytes += sealed.bytes.len();
        s.queue.push_back(sealed);
        while s.bytes > self.limit && s.queue.len() > 1 {
            let old = s.queue.pop_front().expect("a batch");
            s.bytes -= old.bytes.len();
            s.dropped_batches += 1;
            s.dropped_observations += old.observations;
        }
        drop(s);
        self.ready.notify_one();
    }

    /// Adds a batch once there is room for it (a replay: the file can wait, the hub's copy
    /// should be whole).
    pub fn push_waiting(&self, batch: Batch) {
        let mut s = self.lock();
        let sealed = Self::seal(&mut s, batch);
        while !s.queue.is_empty() && s.bytes + sealed.bytes.len() > self.limit {
            s = self.room.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.bytes += sealed.bytes.len();
        s.queue.push_back(sealed);
        drop(s);
        self.ready.notify_one();
    }

    /// The hub has everything up to `seq`.
    pub fn ack(&self, seq: u64) {
        let mut s = self.lock();
        while s.queue.front().is_some_and(|b| b.seq <= seq) {
            let b = s.queue.pop_front().expect("a batch");
            s.bytes -= b.bytes.len();
        }
        drop(s);
        self.room.notify_all();
    }

    /// The batches after `seq`, oldest first.
    pub fn after(&self, seq: u64) -> Vec<Sealed> {
        self.lock().queue.iter().filter(|b| b.seq > seq).cloned().collect()
    }

    /// The producer has put in its last batch.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Closed, and every batch acknowledged.
    pub fn drained(&self) -> bool {
        let s = self.lock();
        s.closed && s.queue.is_empty()
    }

    pub fn stats(&self) -> OutboxStats {
        let s = self.lock();
        OutboxStats {
            batches: s.queue.len() as u64,
            bytes: s.bytes as u64,
            dropped_batches: s.dropped_batches,
            dropped_observations: s.dropped_observations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(items: usize) -> Batch {
        let ex = crate::ingest::wire::Observed {
            at_us: 1,
            exchange: crate::dissect::Exchange {
                conn: 1,
                opened_us: None,
                interface: 0,
                points: 1,
                tunnel: None,
                proxied: None,
                client: "10.0.0.1:1".parse().unwrap(),
                server: "10.0.0.2:2".parse().unwrap(),
                ts_us: 1,
                response_ts_us: None,
                end_us: None,
                request_size: 0,
                response_size: 0,
                seq: None,
                detail: podtap_shared::Detail::Http(Default::default()),
            },
            learn: false,
            place: 0,
        };
        Batch { items: vec![ex; items], ..Batch::default() }
    }

    #[test]
    fn numbers_batches_keeps_them_until_acknowledged_and_resends_after_any_point() {
        let o = Outbox::new(1 << 20);
        for _ in 0..3 {
            o.push(batch(1));
        }
        assert_eq!(o.after(0).iter().map(|b| b.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(o.after(1).iter().map(|b| b.seq).collect::<Vec<_>>(), [2, 3]);
        o.ack(2);
        assert_eq!(o.after(0).iter().map(|b| b.seq).collect::<Vec<_>>(), [3]);
        assert_eq!(o.stats().batches, 1);
        assert!(!o.drained());
        o.close();
        o.ack(3);
        assert!(o.drained());
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_what_it_lost() {
        let one = wire::encode(&AgentMessage::Batch(batch(10))).len();
        let o = Outbox::new(one * 3);
        for _ in 0..5 {
            o.push(batch(10));
        }
        let s = o.stats();
        assert_eq!((s.batches, s.dropped_batches, s.dropped_observations), (3, 2, 20));
        assert_eq!(o.after(0).first().map(|b| b.seq), Some(3));
    }
}
