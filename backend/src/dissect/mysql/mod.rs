//! MySQL and MariaDB (the classic client/server protocol): one record per command — COM_QUERY,
//! COM_STMT_PREPARE, COM_STMT_EXECUTE and COM_STMT_CLOSE with their statement ids, COM_PING,
//! COM_INIT_DB and the rest — and one for the login. MySQL's "Client/Server Protocol" pages:
//! Connection Phase, Command Phase (COM_QUERY Response, COM_STMT_PREPARE Response, Binary Protocol
//! Resultset), OK/ERR/EOF packets; multi-result sets follow SERVER_MORE_RESULTS_EXISTS.
//!
//! Kept: the statement with its literals replaced by `?`, the rows a result set had or an OK
//! packet says were affected, an ERR's code and SQLSTATE (never its message), the login's user
//! and database. A result set is read without knowing whether the session deprecated EOF packets:
//! a five-byte EOF after the column definitions says it did not. An SSLRequest hands the
//! connection to TLS; negotiated compression is noted and the rest of the session is not read.

mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use podtap_shared::{Detail, SqlExchange};

use super::sql::{first_word, normalize};
use super::{Dissected, Exchange, Timing};
use crate::reassemble::{ConnInfo, Dir};
pub use wire::is_server_greeting;
use wire::{
    Framer, Packet, SERVER_MORE_RESULTS_EXISTS, SERVER_STATUS_CURSOR_EXISTS, eof_status, err, le16, le32, lenenc,
    login, ok,
};

/// Commands waiting beyond which the oldest goes unanswered.
const MAX_WAITING: usize = 1024;
/// Prepared statements remembered per session.
const MAX_STATEMENTS: usize = 1024;

/// Where the answer to the command at the front is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// Its first packet: OK, ERR, a column count, a PREPARE's OK.
    Start,
    /// Column (or parameter) definitions still to come, then what follows them.
    Definitions {
        left: u64,
        then: AfterDefs,
    },
    /// Just after a result set's column definitions: an EOF packet, or already a row.
    AfterColumns,
    Rows,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterDefs {
    /// A result set's rows.
    Rows,
    /// A PREPARE's parameter definitions, then its columns.
    PrepareColumns(u64),
    /// A PREPARE's answer is whole.
    Done,
}

#[derive(Debug)]
struct Unit {
    ts_us: u64,
    seq: u32,
    request_size: u64,
    response_ts_us: Option<u64>,
    response_size: u64,
    sql: SqlExchange,
    /// A COM_STMT_PREPARE's statement, kept for its id.
    preparing: Option<String>,
    /// The command gets no answer (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA).
    silent: bool,
    /// Its answer is whole.
    done: bool,
    answer: Answer,
    rows: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The server's greeting seen: the client's login comes next.
    Greeted,
    /// The login sent: the server's OK (or ERR) ends it.
    LoggingIn,
    Commands,
    /// SSLRequest sent: TLS from the client's next bytes (`take_tls`).
    Tls,
    /// Compression negotiated, or out of step: nothing more is read.
    Opaque,
}

pub struct Mysql {
    client: Dir,
    front: Framer,
    back: Framer,
    phase: Phase,
    compressed: bool,
    user: Option<String>,
    database: Option<String>,
    statements: FxHashMap<u32, String>,
    waiting: VecDeque<Unit>,
    tls: bool,
}

impl Mysql {
    /// `greeted`: the server's greeting was the first thing seen (the session from its start).
    pub fn new(client: Dir, greeted: bool) -> Self {
        Mysql {
            client,
            front: Framer::default(),
            back: Framer::default(),
            phase: if greeted { Phase::Greeted } else { Phase::Commands },
            compressed: false,
            user: None,
            database: None,
            statements: FxHashMap::default(),
            waiting: VecDeque::new(),
            tls: false,
        }
    }

    /// Whether the client asked for TLS (SSLRequest): the connection is TLS from here on.
    pub fn take_tls(&mut self) -> bool {
        std::mem::take(&mut self.tls)
    }

    /// Whether negotiated compression (or a stream out of step) hides the rest of the session.
    pub fn opaque(&self) -> bool {
        self.phase == Phase::Opaque
    }

    pub fn compressed(&self) -> bool {
        self.compressed
    }

    pub fn on_data(&mut self, info: &ConnInfo, dir: Dir, ts_us: u64, data: &[u8], out: &mut Vec<Dissected>) {
        if matches!(self.phase, Phase::Tls | Phase::Opaque) {
            return;
        }
        let from_client = dir == self.client;
        let framer = if from_client { &mut self.front } else { &mut self.back };
        let data_start = framer.offset();
        let mut packets = Vec::new();
        framer.feed(data, ts_us, &mut packets);
        let seq0 = info.seq[dir as usize];
        for p in packets {
            if from_client {
                let seq = seq0.wrapping_add(p.start.wrapping_sub(data_start) as u32);
                self.on_client(p, seq);
            } else {
                self.on_server(p, out);
            }
            if matches!(self.phase, Phase::Tls | Phase::Opaque) {
                break;
            }
        }
        self.emit(info, out);
    }

    pub fn on_gap(&mut self, dir: Dir, len: u64) {
        let framer = if dir == self.client { &mut self.front } else { &mut self.back };
        framer.reset(len);
        // Packets carry no marker to find the next one by: the session is not read further.
        self.phase = Phase::Opaque;
    }

    pub fn on_close(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        while let Some(u) = self.waiting.pop_front() {
            out.push(Dissected::Exchange(Box::new(self.exchange(info, u))));
        }
    }

    fn unit(&self, p: &Packet, seq: u32, operation: &str) -> Unit {
        Unit {
            ts_us: p.ts_us,
            seq,
            request_size: p.wire_len,
            response_ts_us: None,
            response_size: 0,
            sql: SqlExchange {
                operation: operation.to_string(),
                user: self.user.clone(),
                database: self.database.clone(),
                ..Default::default()
            },
            preparing: None,
            silent: false,
            done: false,
            answer: Answer::Start,
            rows: 0,
        }
    }

    fn on_client(&mut self, p: Packet, seq: u32) {
        match self.phase {
            Phase::Greeted => {
                let Some(l) = login(&p.payload) else {
                    self.phase = Phase::Opaque;
                    return;
                };
                if l.ssl {
                    self.phase = Phase::Tls;
                    self.tls = true;
                    return;
                }
                self.user = l.user;
                self.database = l.database;
                self.compressed = l.capabilities & wire::CLIENT_COMPRESS != 0;
                self.phase = Phase::LoggingIn;
                let u = self.unit(&p, seq, "LOGIN");
                self.waiting.push_back(u);
                return;
            }
            Phase::LoggingIn => {
                // An auth switch's or a plugin's answer: part of the login.
                if let Some(u) = self.waiting.back_mut() {
                    u.request_size += p.wire_len;
                }
                return;
            }
            _ => {}
        }
        // A packet that continues a command (LOCAL INFILE data, a long payload): its bytes.
        if p.seq != 0 {
            if let Some(u) = self.waiting.back_mut() {
                u.request_size += p.wire_len;
            }
            return;
        }
        let body = p.payload.get(1..).unwrap_or_default();
        let text = || normalize(&String::from_utf8_lossy(body));
        let mut u = match p.payload.first() {
            Some(0x01) => return, // COM_QUIT: no answer, no request
            Some(0x03) => {
                let statement = text();
                let mut u = self.unit(&p, seq, &first_word(&statement));
                u.sql.statement = Some(statement);
                u
            }
            Some(0x16) => {
                let statement = text();
                let mut u = self.unit(&p, seq, "PREPARE");
                u.sql.statement = Some(statement.clone());
                u.preparing = Some(statement);
                u
            }
            Some(0x17) => {
                let id = le32(&p.payload, 1).unwrap_or(0);
                let statement = self.statements.get(&id).cloned();
                let op = statement.as_deref().map(first_word).filter(|w| !w.is_empty()).unwrap_or("EXECUTE".into());
                let mut u = self.unit(&p, seq, &op);
                u.sql.statement = statement;
                u.sql.prepared = Some(id.to_string());
                u
            }
            Some(&c @ (0x18 | 0x19)) => {
                let id = le32(&p.payload, 1).unwrap_or(0);
                if c == 0x19 {
                    self.statements.remove(&id);
                }
                let mut u = self.unit(&p, seq, if c == 0x19 { "CLOSE STMT" } else { "SEND LONG DATA" });
                u.sql.prepared = Some(id.to_string());
                u.silent = true;
                u
            }
            Some(0x02) => {
                self.database = Some(String::from_utf8_lossy(body).chars().take(128).collect());
                self.unit(&p, seq, "INIT DB")
            }
            // COM_STMT_FETCH: binary rows of an open cursor and an EOF, no column definitions.
            Some(0x1c) => {
                let id = le32(&p.payload, 1).unwrap_or(0);
                let mut u = self.unit(&p, seq, "STMT FETCH");
                u.sql.statement = self.statements.get(&id).cloned();
                u.sql.prepared = Some(id.to_string());
                u.answer = Answer::Rows;
                u
            }
            Some(&c) => self.unit(&p, seq, command_name(c)),
            None => return,
        };
        if self.waiting.len() >= MAX_WAITING {
            u.silent = true;
        }
        self.waiting.push_back(u);
    }

    fn on_server(&mut self, p: Packet, out: &mut Vec<Dissected>) {
        if self.phase == Phase::Greeted {
            return; // the greeting itself
        }
        let phase = self.phase;
        let Some(u) = self.waiting.iter_mut().find(|u| !u.silent && !u.done) else {
            // A PREPARE's closing EOF where EOFs were not deprecated, or an answer to a command
            // sent before the capture began.
            if eof_status(&p.payload).is_none() {
                out.push(Dissected::UnmatchedResponse);
            }
            return;
        };
        u.response_ts_us.get_or_insert(p.ts_us);
        u.response_size += p.wire_len;
        let first = p.payload.first().copied();
        let short_fe = first == Some(0xfe) && p.len < wire::MAX_PAYLOAD;
        let mut done = false;
        match u.answer {
            Answer::Start => match first {
                Some(0xff) => {
                    let (code, state) = err(&p.payload);
                    u.sql.error = Some(state.unwrap_or_else(|| "HY000".into()));
                    u.sql.error_code = code;
                    done = true;
                }
                Some(0x00) if u.preparing.is_some() => {
                    let id = le32(&p.payload, 1).unwrap_or(0);
                    let columns = u64::from(le16(&p.payload, 5).unwrap_or(0));
                    let params = u64::from(le16(&p.payload, 7).unwrap_or(0));
                    if let Some(statement) = u.preparing.take()
                        && (self.statements.len() < MAX_STATEMENTS || self.statements.contains_key(&id))
                    {
                        self.statements.insert(id, statement);
                    }
                    u.sql.prepared = Some(id.to_string());
                    u.answer = match (params, columns) {
                        (0, 0) => {
                            done = true;
                            Answer::Start
                        }
                        (0, c) => Answer::Definitions { left: c, then: AfterDefs::Done },
                        (n, c) => Answer::Definitions { left: n, then: AfterDefs::PrepareColumns(c) },
                    };
                }
                Some(0x00) | Some(0xfe) => {
                    let (rows, status) = ok(&p.payload);
                    u.sql.rows = Some(u.sql.rows.unwrap_or(0) + rows);
                    done = status & SERVER_MORE_RESULTS_EXISTS == 0;
                }
                // LOCAL INFILE: the client sends the file, then the server's OK or ERR.
                Some(0xfb) => {}
                _ => match lenenc(&p.payload, 0) {
                    Some((n, _)) if n > 0 => u.answer = Answer::Definitions { left: n, then: AfterDefs::Rows },
                    _ => done = true,
                },
            },
            Answer::Definitions { left, then } => {
                // An EOF between a PREPARE's parameters and columns (EOFs not deprecated).
                if eof_status(&p.payload).is_some() && matches!(then, AfterDefs::PrepareColumns(_)) && left == 0 {
                    return;
                }
                let left = left - 1;
                u.answer = match (left, then) {
                    (0, AfterDefs::Rows) => Answer::AfterColumns,
                    (0, AfterDefs::PrepareColumns(0)) => {
                        done = true;
                        Answer::Start
                    }
                    (0, AfterDefs::PrepareColumns(c)) => Answer::Definitions { left: c, then: AfterDefs::Done },
                    (0, AfterDefs::Done) => {
                        done = true;
                        Answer::Start
                    }
                    (n, then) => Answer::Definitions { left: n, then },
                };
            }
            // A cursor was opened (COM_STMT_EXECUTE with a cursor type): no rows follow the
            // columns' EOF; COM_STMT_FETCH asks for them.
            Answer::AfterColumns if eof_status(&p.payload).is_some_and(|s| s & SERVER_STATUS_CURSOR_EXISTS != 0) => {
                u.sql.rows = Some(0);
                done = true;
            }
            Answer::AfterColumns if eof_status(&p.payload).is_some() => u.answer = Answer::Rows,
            Answer::AfterColumns | Answer::Rows => {
                if first == Some(0xff) {
                    let (code, state) = err(&p.payload);
                    u.sql.error = Some(state.unwrap_or_else(|| "HY000".into()));
                    u.sql.error_code = code;
                    done = true;
                } else if short_fe && (p.len == 5 || p.len >= 7) {
                    let status = eof_status(&p.payload).unwrap_or_else(|| ok(&p.payload).1);
                    u.sql.rows = Some(u.sql.rows.unwrap_or(0) + u.rows);
                    u.rows = 0;
                    if status & SERVER_MORE_RESULTS_EXISTS != 0 {
                        u.answer = Answer::Start;
                    } else {
                        done = true;
                    }
                } else {
                    u.rows += 1;
                    u.answer = Answer::Rows;
                }
            }
        }
        if done {
            u.done = true;
            if phase == Phase::LoggingIn {
                let failed = u.sql.error.is_some();
                self.phase = if self.compressed && !failed { Phase::Opaque } else { Phase::Commands };
            }
        }
    }

    /// Answered (and silent) commands at the front, in order, as exchanges.
    fn emit(&mut self, info: &ConnInfo, out: &mut Vec<Dissected>) {
        while self.waiting.front().is_some_and(|u| u.done || u.silent) {
            let u = self.waiting.pop_front().expect("a finished command");
            out.push(Dissected::Exchange(Box::new(self.exchange(info, u))));
        }
    }

    fn exchange(&self, info: &ConnInfo, u: Unit) -> Exchange {
        let timing = Timing {
            ts_us: u.ts_us,
            response_ts_us: u.response_ts_us,
            request_size: u.request_size,
            response_size: u.response_size,
        };
        let mut ex = Exchange::on(info, info.endpoints(self.client), timing, Detail::Mysql(u.sql));
        ex.seq = Some(u.seq);
        ex
    }
}

/// The other commands' names (COM_…, without the prefix).
fn command_name(c: u8) -> &'static str {
    match c {
        0x04 => "FIELD LIST",
        0x05 => "CREATE DB",
        0x06 => "DROP DB",
        0x08 => "SHUTDOWN",
        0x09 => "STATISTICS",
        0x0d => "DEBUG",
        0x0e => "PING",
        0x11 => "CHANGE USER",
        0x1a => "STMT RESET",
        0x1b => "SET OPTION",
        0x1c => "STMT FETCH",
        0x1f => "RESET CONNECTION",
        _ => "COMMAND",
    }
}
