//! The server's side of a PostgreSQL session: each message answers the oldest client message
//! still waiting (`items`), as the protocol's Message Flow has the server answer in order; an
//! ErrorResponse in the extended protocol makes the server skip to `Sync`, and what it skipped is
//! counted on the request that failed.

use super::wire::{Message, command_tag, error_code};
use super::{Item, Postgres, Wait};
use crate::dissect::Dissected;

impl Postgres {
    pub(super) fn on_back(&mut self, m: Message, out: &mut Vec<Dissected>) {
        if self.resync {
            // Back in step once the server is ready for a new query, and nothing of the client's
            // waits (whatever it sent meanwhile was not read).
            if m.kind == b'Z' && m.wire_len == 6 {
                self.resync = false;
            }
            return;
        }
        let size = m.wire_len as u64;
        let Some(&front) = self.items.front() else {
            match m.kind {
                // Not answers: notices, notifications, parameter changes arrive at any time.
                b'N' | b'A' | b'S' => {}
                _ => out.push(Dissected::UnmatchedResponse),
            }
            return;
        };
        // A request's answer ends with it: an Execute's with its completion, not the Sync's
        // ReadyForQuery after it (however the segments fell).
        if let Some(u) = self.unit(front.unit)
            && !u.done
        {
            u.response_ts_us.get_or_insert(m.ts_us);
            u.response_size += size;
        }
        match (m.kind, front.wait) {
            (b'1', Wait::Parse) | (b'2', Wait::Bind) | (b'3', Wait::Close) => {
                self.items.pop_front();
            }
            (b'T' | b'n', Wait::Describe) => {
                self.items.pop_front();
            }
            (b'D', _) => {
                if let Some(u) = self.unit(front.unit) {
                    u.data_rows += 1;
                }
            }
            (b'C' | b'I' | b's', Wait::Execute | Wait::Query) => {
                let (operation, rows) = match m.kind {
                    b'C' => command_tag(&m.body),
                    b'I' => ("EMPTY".to_string(), None),
                    _ => (String::new(), None),
                };
                if let Some(u) = self.unit(front.unit) {
                    // A simple query of several statements: the first one's command, every one's
                    // rows.
                    if !operation.is_empty() && !u.tagged {
                        u.sql.operation = operation;
                        u.tagged = true;
                    }
                    if let Some(n) = rows {
                        u.tag_rows = Some(u.tag_rows.unwrap_or(0) + n);
                    }
                    u.runs = true;
                    u.done |= front.wait == Wait::Execute;
                }
                if front.wait == Wait::Execute {
                    self.items.pop_front();
                }
            }
            (b'E', wait) => self.failed(front, wait, &m.body),
            (b'N', _) => {
                if let Some(u) = self.unit(front.unit) {
                    u.sql.notices += 1;
                }
            }
            (b'Z', Wait::Sync | Wait::Query | Wait::Startup | Wait::Function) => {
                self.items.pop_front();
                if let Some(u) = self.unit(front.unit) {
                    u.done = true;
                    u.runs |= front.wait != Wait::Sync;
                    // A Parse, Bind or Describe with no Execute, answered: nothing ran.
                    u.dropped |= front.wait == Wait::Sync && !u.runs && u.sql.error.is_none();
                }
            }
            (b'V', Wait::Function) => {
                if let Some(u) = self.unit(front.unit) {
                    u.runs = true;
                }
            }
            // Startup's authentication and parameters, a query's row descriptions, COPY: part of
            // the answer, read for its bytes.
            _ => {}
        }
    }

    /// An ErrorResponse for the message at the front: its request failed. After an error in the
    /// extended protocol the server skips every message until `Sync`: those requests never ran,
    /// and are counted on this one.
    fn failed(&mut self, front: Item, wait: Wait, body: &[u8]) {
        let code = error_code(body);
        if let Some(u) = self.unit(front.unit) {
            u.sql.error.get_or_insert_with(|| code.unwrap_or_else(|| "?????".into()));
            u.runs |= wait != Wait::Sync;
        }
        match wait {
            // The answer goes on to its ReadyForQuery (or, for a startup, the server closes).
            Wait::Query | Wait::Function | Wait::Startup | Wait::Sync => {
                if wait == Wait::Startup
                    && let Some(u) = self.unit(front.unit)
                {
                    u.done = true;
                }
            }
            _ => {
                // Every message queued up to the Sync is skipped: the requests they began go
                // (an Execute among them is counted), the failed one stays.
                let (mut drained, mut n) = (Vec::new(), 0u32);
                while let Some(item) = self.items.front().copied() {
                    if item.wait == Wait::Sync {
                        break;
                    }
                    self.items.pop_front();
                    if item.unit != front.unit {
                        drained.push(item.unit);
                        n += u32::from(item.wait == Wait::Execute);
                    }
                }
                self.units.retain(|u| !drained.contains(&u.id));
                let sync_sent = self.items.front().is_some();
                if let Some(u) = self.unit(front.unit) {
                    u.sql.skipped += n;
                    // Done once its Sync is sent: until then it counts what the server skips.
                    u.done = sync_sent;
                }
                match self.items.front_mut() {
                    // The Sync's own ReadyForQuery still comes; it ends nothing more.
                    Some(sync) => sync.unit = u64::MAX,
                    None => {
                        self.skipping = Some(front.unit);
                        self.building = None;
                    }
                }
            }
        }
    }

    /// SSLRequest or GSSENCRequest answered: its request is done, and the session goes on
    /// encrypted (`how`), or, refused, in the clear (`""`: no record for a refusal).
    pub(super) fn finish_encryption(&mut self, how: &str) {
        if let Some(u) = self.units.back_mut() {
            u.done = true;
            u.runs = !how.is_empty();
        }
    }

    /// The server's first byte answering the request at the back (SSLRequest's `S`/`N`).
    pub(super) fn answer_unit(&mut self, ts_us: u64, size: u64) {
        if let Some(u) = self.units.back_mut() {
            u.response_ts_us.get_or_insert(ts_us);
            u.response_size += size;
        }
    }
}
