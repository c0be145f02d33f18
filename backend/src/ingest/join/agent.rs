//! One agent instance as the join thread knows it: its parts (one per connection's stream of
//! batches: the WebSocket's one, or each bus partition this hub owns), each with the batches it
//! applied, how far its capture time has come and what is not acknowledged yet; its clock offset
//! and the status shown on `/healthz`.

use std::collections::VecDeque;

use podtap_shared::AgentStatus;
use tokio::sync::mpsc;

use super::GRACE_US;
use crate::ingest::wire::HubMessage;

/// Where a part's acknowledgements go.
pub enum Reply {
    /// Over the agent's WebSocket.
    Agent(mpsc::UnboundedSender<HubMessage>),
    /// To the bus (`Outlet::Bus`), after the records before them: the bus forgets the batch.
    Bus,
}

/// One stream of batches of an agent.
pub struct Part {
    /// The connection (or bus partition consumer) it arrives on.
    pub slot: u64,
    pub reply: Option<Reply>,
    /// The last batch applied.
    pub have: u64,
    /// Capture time it has reached (corrected), `u64::MAX` once its input ended.
    pub watermark: u64,
    /// Its last real capture time, for a finished replay.
    pub last_time: u64,
    /// When its last batch came (wall clock).
    pub last_batch_us: u64,
    /// Batches not yet acknowledged: (seq, watermark).
    pub unacked: VecDeque<(u64, u64)>,
    /// Batches come but not applied: their other parts (other partitions) are not here yet.
    pub queue: VecDeque<crate::ingest::wire::Batch>,
}

impl Part {
    pub fn new(slot: u64, now: u64) -> Self {
        Part {
            slot,
            reply: None,
            have: 0,
            watermark: 0,
            last_time: 0,
            last_batch_us: now,
            unacked: VecDeque::new(),
            queue: VecDeque::new(),
        }
    }

    /// Whether its capture time still holds the merge back.
    pub fn holds(&self, now: u64) -> bool {
        self.watermark != u64::MAX
            // Connected and sending, or gone only lately (it may come back with its buffer).
            && now.saturating_sub(self.last_batch_us) < GRACE_US
    }
}

/// One agent instance (one run of `podtap agent`).
pub struct Agent {
    pub node: String,
    pub instance: u64,
    pub wall_clock: bool,
    /// Its batches come over the bus (its parts are partitions; it never connects here).
    pub bus: bool,
    pub origin: usize,
    /// Its parts, by bus partition (a WebSocket agent has one, partition 0).
    pub parts: Vec<(u32, Part)>,
    /// The WebSocket connection, while there is one.
    pub connected: Option<u64>,
    /// (round trip, offset) samples, µs.
    pub samples: VecDeque<(u64, i64)>,
    /// Over the bus: its clock minus the bus's when each batch was stored (the bus's time is
    /// later by the way there): the largest is the best estimate.
    pub stamps: VecDeque<i64>,
    pub status: AgentStatus,
}

/// Round-trip samples (and bus stamps) kept for the clock offset.
pub const SAMPLES: usize = 16;

impl Agent {
    /// Its clock minus the hub's: from the sample with the shortest round trip, or the bus's
    /// stamp with the shortest way.
    pub fn offset_us(&self) -> i64 {
        if !self.wall_clock {
            return 0;
        }
        if let Some(best) = self.stamps.iter().max() {
            return *best;
        }
        self.samples.iter().min_by_key(|(rtt, _)| *rtt).map_or(0, |(_, o)| *o)
    }

    pub fn fix(&self, t: u64) -> u64 {
        t.saturating_add_signed(-self.offset_us())
    }

    pub fn stamp(&mut self, agent_us: u64, bus_us: u64) {
        self.stamps.push_back(agent_us as i64 - bus_us as i64);
        if self.stamps.len() > SAMPLES {
            self.stamps.pop_front();
        }
        self.status.clock_offset_ms = self.wall_clock.then(|| self.offset_us() as f64 / 1000.0);
    }

    /// The part of partition `partition`, made if new.
    pub fn part(&mut self, partition: u32, slot: u64, now: u64) -> &mut Part {
        let at = match self.parts.iter().position(|(p, _)| *p == partition) {
            Some(at) => at,
            None => {
                self.parts.push((partition, Part::new(slot, now)));
                self.parts.len() - 1
            }
        };
        &mut self.parts[at].1
    }

    /// The capture time its parts have all reached, when one still holds the merge back.
    pub fn holding(&self, now: u64) -> Option<u64> {
        self.parts.iter().filter(|(_, p)| p.holds(now)).map(|(_, p)| p.watermark).min()
    }

    /// The capture time its slowest part has reached (`u64::MAX`: all ended).
    pub fn watermark(&self) -> u64 {
        self.parts.iter().map(|(_, p)| p.watermark).min().unwrap_or(0)
    }

    /// When its last batch came on any part.
    pub fn last_batch_us(&self) -> u64 {
        self.parts.iter().map(|(_, p)| p.last_batch_us).max().unwrap_or(0)
    }
}
