//! PostgreSQL (frontend/backend protocol v3): one record per simple query, per extended-protocol
//! `Execute` (with the `Parse` and `Bind` before it), per session startup, and per message that
//! failed on its own. PostgreSQL documentation, "Frontend/Backend Protocol": Message Flow
//! (protocol-flow.html: Start-up, Simple Query, Extended Query and its pipelining, COPY,
//! Asynchronous Operations, SSL and GSSAPI session encryption) and Message Formats
//! (protocol-message-formats.html).
//!
//! The server answers in order, so each answer belongs to the oldest message still waiting
//! (`items`). After an error in the extended protocol the server skips everything up to `Sync`;
//! the requests it skipped are counted on the one that failed, not recorded, since they never ran.
//! Statements are kept with their literals replaced by `?` (`sql::normalize`); bind parameters,
//! rows and error messages are never read. A session joined mid-stream (a pool's connection)
//! still yields records: a `Bind`/`Execute` of a statement whose `Parse` came before the capture
//! says `statement: unknown` with the statement's name.

mod answers;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use podtap_shared::{Detail, SqlExchange};

use super::sql::{first_word, normalize};
use super::{Dissected, Exchange, Timing};
use crate::reassemble::{ConnInfo, Dir};
use wire::{Cut, Framer, Message, be32, cstr, startup_params, text_prefix};
pub use wire::{First, first_packet, whole_messages};

/// Requests waiting for answers beyond which the oldest goes unanswered (a client whose server
/// side is never seen).
const MAX_WAITING: usize = 4096;
/// Prepared statements and portals remembered per session.
const MAX_NAMES: usize = 1024;

/// What a message from the client waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Startup,
    Query,
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Sync,
    Function,
}

/// A message from the client still waiting for its answer, and the request it is part of.
#[derive(Clone, Copy, Debug)]
struct Item {
    wait: Wait,
    unit: u64,
}

/// A request in the making: one record when it is done.
#[derive(Debug, Default)]
struct Unit {
    id: u64,
    ts_us: u64,
    seq: u32,
    request_size: u64,
    response_ts_us: Option<u64>,
    response_size: u64,
    sql: SqlExchange,
    /// Rows the completion tags counted, and the data rows seen (what a suspended portal gave).
    tag_rows: Option<u64>,
    data_rows: u64,
    /// Whether a completion tag named the operation.
    tagged: bool,
    /// Whether an `Execute` (or a query) is part of it: a `Parse` alone makes no record unless
    /// it failed.
    runs: bool,
    done: bool,
    /// A statement that was not there: dropped without a record.
    dropped: bool,
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Messages are read.
    Open,
    /// The client asked for SSL (or GSSAPI encryption): the server's next byte answers.
    EncryptionAsked { gss: bool },
    /// The server said yes to SSL: TLS from here on (`take_tls`).
    Tls,
    /// GSSAPI-encrypted, or out of step for good: nothing more is read.
    Opaque,
}

pub struct Postgres {
    client: Dir,
    front: Framer,
    back: Framer,
    phase: Phase,
    /// The session's user, database and application, when its startup was seen.
    session: (Option<String>, Option<String>, Option<String>),
    statements: FxHashMap<String, String>,
    /// Portal → the statement bound to it.
    portals: FxHashMap<String, String>,
    items: VecDeque<Item>,
    units: VecDeque<Unit>,
    next_unit: u64,
    /// The extended-protocol request being put together (messages since the last `Execute` or
    /// `Sync`).
    building: Option<u64>,
    /// A direction lost step (a gap): answers are not matched again until the server is ready
    /// for a new query.
    resync: bool,
    /// Where TLS begins in the server's last segment, after an `S` answer to SSLRequest.
    tls_at: Option<usize>,
    /// An extended-protocol request failed and the client's `Sync` has not come yet: the server
    /// skips every message until it does, even those the client sends after the error went out.
    /// The failed request, which counts them.
    skipping: Option<u64>,
}

impl Postgres {
    /// A session whose client sends in `client`'s direction; `from_start`: its startup packet is
    /// the first thing the client sends (the handshake was seen).
    pub fn new(client: Dir, from_start: bool) -> Self {
        Postgres {
            client,
            front: if from_start { Framer::client() } else { Framer::default() },
            back: Framer::default(),
            phase: Phase::Open,
            session: (None, None, None),
            statements: FxHashMap::default(),
            portals: FxHashMap::default(),
            items: VecDeque::new(),
            units: VecDeque::new(),
            next_unit: 0,
            building: None,
            resync: false,
            tls_at: None,
            skipping: None,
        }
    }

    /// Where TLS began in the data just given, once the server agreed to SSL.
    pub fn take_tls(&mut self) -> Option<usize> {
        self.tls_at.take()
    }

    /// Whether GSSAPI encryption (or a stream out of step) hides the rest of the session.
    pub fn opaque(&self) -> bool {
        self.phase == Phase::Opaque
    }

    pub fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        let from_client = dir == self.client;
        let mut data = data;
        match self.phase {
            Phase::Tls | Phase::Opaque => return,
            Phase::EncryptionAsked { gss } if !from_client => {
                let Some((&answer, rest)) = data.split_first() else { return };
                self.answer_unit(ts_us, 1);
                match (answer, gss) {
                    (b'S', false) => {
                        self.finish_encryption("SSL");
                        self.phase = Phase::Tls;
                        self.tls_at = Some(1);
                        self.emit(info, out);
                        return;
                    }
                    (b'G', true) => {
                        self.finish_encryption("GSSENC");
                        self.phase = Phase::Opaque;
                        self.emit(info, out);
                        return;
                    }
                    _ => {
                        // Refused: the client goes on in the clear with its startup packet.
                        self.finish_encryption("");
                        self.phase = Phase::Open;
                        self.front.untyped_first = true;
                        data = rest;
                    }
                }
                self.emit(info, out);
            }
            _ => {}
        }
        if data.is_empty() {
            return;
        }
        let framer = if from_client { &mut self.front } else { &mut self.back };
        let data_start = framer.offset();
        let mut cuts = Vec::new();
        let keep = if from_client { keep_front } else { keep_back };
        framer.feed(data, ts_us, keep, &mut cuts);
        let seq0 = info.seq[dir as usize];
        for cut in cuts {
            match cut {
                Cut::Message(m) => {
                    let seq = seq0.wrapping_add(m.start.wrapping_sub(data_start) as u32);
                    if from_client {
                        self.on_front(m, seq);
                    } else {
                        self.on_back(m, out);
                    }
                }
                Cut::Broken => {
                    out.push(Dissected::Resync);
                    self.lose_step();
                    break;
                }
            }
        }
        if self.phase == Phase::Open && self.units.len() > MAX_WAITING {
            self.give_up_oldest();
        }
        self.emit(info, out);
    }

    pub fn on_gap(&mut self, dir: Dir, len: u64) {
        let framer = if dir == self.client { &mut self.front } else { &mut self.back };
        framer.reset(len);
        self.lose_step();
    }

    /// The connection ended: what still waits goes out unanswered (or as far as it was answered).
    pub fn on_close(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        for u in &mut self.units {
            u.done = true;
            u.dropped |= !u.runs && u.sql.error.is_none();
        }
        self.items.clear();
        self.emit(info, out);
    }

    /// A gap: the requests in flight go out as far as they were answered, and answers are not
    /// matched again until the server says it is ready for a new query.
    fn lose_step(&mut self) {
        for u in &mut self.units {
            u.done = true;
            u.dropped |= !u.runs && u.sql.error.is_none();
        }
        self.items.clear();
        self.building = None;
        self.resync = true;
    }

    fn give_up_oldest(&mut self) {
        if let Some(u) = self.units.front_mut() {
            u.done = true;
            let id = u.id;
            self.items.retain(|i| i.unit != id);
        }
    }

    fn new_unit(&mut self, ts_us: u64, seq: u32, operation: &str) -> u64 {
        let id = self.next_unit;
        self.next_unit += 1;
        let (user, database, application) = self.session.clone();
        let sql = SqlExchange { operation: operation.to_string(), user, database, application, ..Default::default() };
        self.units.push_back(Unit { id, ts_us, seq, sql, ..Default::default() });
        id
    }

    fn unit(&mut self, id: u64) -> Option<&mut Unit> {
        self.units.iter_mut().find(|u| u.id == id)
    }

    /// The request being put together from extended-protocol messages, begun by this one if none is.
    fn building(&mut self, m: &Message, seq: u32) -> u64 {
        match self.building {
            Some(id) if self.units.iter().any(|u| u.id == id) => id,
            _ => {
                let id = self.new_unit(m.ts_us, seq, "");
                self.building = Some(id);
                id
            }
        }
    }

    fn on_front(&mut self, m: Message, seq: u32) {
        if self.resync {
            // Out of step: the client's messages are not matched until the server is ready.
            return;
        }
        let size = m.wire_len as u64;
        if let Some(failed) = self.skipping {
            match m.kind {
                b'S' => {
                    // The Sync the server waited for: its ReadyForQuery answers nothing more.
                    self.skipping = None;
                    self.items.push_back(Item { wait: Wait::Sync, unit: u64::MAX });
                    if let Some(u) = self.unit(failed) {
                        u.done = true;
                    }
                }
                b'E' => {
                    if let Some(u) = self.unit(failed) {
                        u.sql.skipped += 1;
                    }
                }
                _ => {}
            }
            return;
        }
        let (unit, wait) = match m.kind {
            0 => match be32(&m.body, 0) {
                Some(wire::SSL_REQUEST) => {
                    self.phase = Phase::EncryptionAsked { gss: false };
                    (self.new_unit(m.ts_us, seq, "SSL"), None)
                }
                Some(wire::GSSENC_REQUEST) => {
                    self.phase = Phase::EncryptionAsked { gss: true };
                    (self.new_unit(m.ts_us, seq, "GSSENC"), None)
                }
                Some(wire::CANCEL_REQUEST) => {
                    let id = self.new_unit(m.ts_us, seq, "CANCEL");
                    if let Some(u) = self.unit(id) {
                        u.runs = true;
                        u.done = true;
                    }
                    (id, None)
                }
                _ => {
                    self.session = startup_params(&m.body);
                    let id = self.new_unit(m.ts_us, seq, "STARTUP");
                    (id, Some(Wait::Startup))
                }
            },
            b'Q' => {
                let statement = normalize(&text_prefix(&m.body, 0));
                let id = self.new_unit(m.ts_us, seq, &first_word(&statement));
                self.building = None;
                if let Some(u) = self.unit(id) {
                    u.sql.statement = Some(statement);
                }
                (id, Some(Wait::Query))
            }
            b'F' => {
                let id = self.new_unit(m.ts_us, seq, "FUNCTION CALL");
                (id, Some(Wait::Function))
            }
            b'P' => {
                let id = self.building(&m, seq);
                let name = cstr(&m.body, 0).map(|(n, _)| n.to_string()).unwrap_or_default();
                let at = cstr(&m.body, 0).map_or(m.body.len(), |(_, next)| next);
                let statement = normalize(&text_prefix(&m.body, at));
                if self.statements.len() < MAX_NAMES || self.statements.contains_key(&name) {
                    self.statements.insert(name.clone(), statement.clone());
                }
                if let Some(u) = self.unit(id) {
                    u.sql.statement = Some(statement);
                    u.sql.prepared = (!name.is_empty()).then_some(name);
                }
                (id, Some(Wait::Parse))
            }
            b'B' => {
                let id = self.building(&m, seq);
                let (portal, next) = cstr(&m.body, 0).map(|(p, n)| (p.to_string(), n)).unwrap_or_default();
                let statement = cstr(&m.body, next).map(|(s, _)| s.to_string()).unwrap_or_default();
                if self.portals.len() < MAX_NAMES || self.portals.contains_key(&portal) {
                    self.portals.insert(portal, statement.clone());
                }
                self.name_statement(id, &statement);
                (id, Some(Wait::Bind))
            }
            b'D' => (self.building(&m, seq), Some(Wait::Describe)),
            b'C' => {
                let id = self.building(&m, seq);
                if let (Some(b'S'), Some((name, _))) = (m.body.first(), cstr(&m.body, 1)) {
                    self.statements.remove(name);
                }
                (id, Some(Wait::Close))
            }
            b'E' => {
                let id = self.building(&m, seq);
                self.building = None;
                let portal = cstr(&m.body, 0).map(|(p, _)| p.to_string()).unwrap_or_default();
                if let Some(statement) = self.portals.get(&portal).cloned() {
                    self.name_statement(id, &statement);
                }
                if let Some(u) = self.unit(id) {
                    u.runs = true;
                    if u.sql.statement.is_none() && u.sql.prepared.is_none() {
                        u.sql.prepared = Some(portal);
                    }
                }
                (id, Some(Wait::Execute))
            }
            b'S' => {
                // Sync ends a pipeline step: the request being put together (a Parse alone, say)
                // is answered by its ReadyForQuery.
                let id = self.building.take().unwrap_or_else(|| self.units.back().map_or(u64::MAX, |u| u.id));
                (id, Some(Wait::Sync))
            }
            // COPY data from the client, Flush, Terminate, password and SASL messages: bytes of the
            // request they follow.
            _ => (self.units.back().map_or(u64::MAX, |u| u.id), None),
        };
        if let Some(u) = self.unit(unit) {
            u.request_size += size;
            // A query, a function call, a session's startup: a request, answered or not.
            u.runs |= matches!(wait, Some(Wait::Query | Wait::Function | Wait::Startup));
        }
        if let Some(wait) = wait {
            self.items.push_back(Item { wait, unit });
        }
    }

    /// What the request knows of its statement from a name: the text, when its `Parse` was
    /// seen, else the name alone (`statement: unknown`).
    fn name_statement(&mut self, id: u64, statement: &str) {
        let text = self.statements.get(statement).cloned();
        if let Some(u) = self.unit(id)
            && u.sql.statement.is_none()
        {
            u.sql.statement = text;
            u.sql.prepared = Some(statement.to_string()).filter(|s| !s.is_empty() || u.sql.statement.is_none());
        }
    }

    /// Done requests at the front, in order, as exchanges.
    fn emit(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        while self.units.front().is_some_and(|u| u.done) {
            let u = self.units.pop_front().expect("a done request");
            if u.dropped || !u.runs && u.sql.error.is_none() {
                continue;
            }
            out.push(Dissected::Exchange(Box::new(self.exchange(info, u))));
        }
    }

    fn exchange(&self, info: &ConnInfo, mut u: Unit) -> Exchange {
        u.sql.rows = u.tag_rows.or((u.data_rows > 0).then_some(u.data_rows));
        if u.sql.operation.is_empty() {
            u.sql.operation = match u.sql.statement.as_deref().map(first_word) {
                Some(w) if !w.is_empty() => w,
                _ => "EXECUTE".into(),
            };
        }
        let timing = Timing {
            ts_us: u.ts_us,
            response_ts_us: u.response_ts_us,
            request_size: u.request_size,
            response_size: u.response_size,
        };
        let mut ex = Exchange::on(info, info.endpoints(self.client), timing, Detail::Postgres(u.sql));
        ex.seq = Some(u.seq);
        ex
    }
}

/// How much of a client's message is read: the startup packet, a query's or a Parse's statement,
/// the names that begin Bind, Execute and Close (two names of at most 63 bytes each: never Bind's
/// parameters).
fn keep_front(kind: u8) -> usize {
    match kind {
        0 | b'Q' | b'P' => wire::MAX_KEPT,
        b'B' | b'E' | b'C' => 2 * 64,
        _ => 0,
    }
}

/// How much of a server's message is read: completion tags, and errors (for their SQLSTATE,
/// which comes early; the message and detail are never kept past this node).
fn keep_back(kind: u8) -> usize {
    match kind {
        b'C' => 64,
        b'E' => 1024,
        _ => 0,
    }
}
