//! The database servers' own logs as the ground truth — PostgreSQL's (`log_statement=all`,
//! `log_line_prefix='%m [%p] %e '`), MariaDB's general log and Redis' MONITOR feed — and a capture's records grouped the
//! same way: by the session's mark (`SELECT 1 AS mark_NAME`, each client connection's first
//! statement once the capture runs).

use std::collections::BTreeMap;
use std::path::Path;

use podtap_shared::{Detail, Record, SqlExchange};

/// One request as PostgreSQL's log shows it: its command (the statement's first word) and its
/// SQLSTATE when it failed.
pub type Logged = (String, Option<String>);

/// A server process's session as its log shows it: its mark, its requests, and the statement of
/// the last one (which an ERROR's STATEMENT may name).
pub type Session = (Option<String>, Vec<Logged>, Option<String>);

/// The requests of each session, from its `SELECT 1 AS mark_<name>` on, by the mark's name, from
/// the server's log (`log_statement=all`, `log_line_prefix='%m [%p] %e '`). A logged `statement:`
/// or `execute …:` line is a request; an `ERROR` whose `STATEMENT` is the last request's fails
/// it, and one with another statement (an error at Parse or Bind, before anything was executed)
/// is a request of its own.
pub fn logged(log: &Path) -> BTreeMap<String, Vec<Logged>> {
    let text = std::fs::read_to_string(log).expect("the server's log");
    let mut by_pid: BTreeMap<String, Session> = BTreeMap::new();
    let mut pending_error: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        // "2026-12-05 22:53:33.499 UTC [13283] 00000 LOG:  statement: SELECT 1 AS mark_a"
        let Some((_, rest)) = line.split_once(" [") else { continue };
        let Some((pid, rest)) = rest.split_once("] ") else { continue };
        let Some((sqlstate, message)) = rest.split_once(' ') else { continue };
        let entry = by_pid.entry(pid.to_string()).or_default();
        let (mark, requests, last) = entry;
        let request = message
            .strip_prefix("LOG:  statement: ")
            .or_else(|| message.strip_prefix("LOG:  execute ").and_then(|m| m.split_once(": ").map(|(_, s)| s)));
        if let Some(statement) = request {
            if let Some(name) = statement.strip_prefix("SELECT 1 AS mark_") {
                *mark = Some(name.to_string());
            }
            if mark.is_some() {
                requests.push((first_word(statement), None));
                *last = Some(statement.to_string());
            }
        } else if message.starts_with("ERROR:  ") && mark.is_some() {
            pending_error.insert(pid.to_string(), sqlstate.to_string());
        } else if let Some(statement) = message.strip_prefix("STATEMENT:  ")
            && let Some(code) = pending_error.remove(pid)
        {
            match requests.last_mut() {
                Some(r) if last.as_deref() == Some(statement) && r.1.is_none() => r.1 = Some(code),
                _ => requests.push((first_word(statement), Some(code))),
            }
            *last = None;
        }
    }
    by_pid.into_values().filter_map(|(mark, requests, _)| Some((mark?, requests))).collect()
}

pub fn first_word(statement: &str) -> String {
    statement.split_whitespace().next().unwrap_or("").to_ascii_uppercase()
}

/// A record's PostgreSQL exchange.
pub fn sql(r: &Record) -> Option<&SqlExchange> {
    match &r.detail {
        Detail::Postgres(q) => Some(q),
        _ => None,
    }
}

/// The capture's PostgreSQL records, per connection, by the mark each connection's session ran.
pub fn recorded(records: &[Record]) -> BTreeMap<String, Vec<&Record>> {
    let mut by_conn: BTreeMap<u64, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| sql(r).is_some()) {
        by_conn.entry(r.conn).or_default().push(r);
    }
    by_conn
        .into_values()
        .filter_map(|rs| {
            let statement = |r: &&Record| sql(r).and_then(|q| q.statement.clone()).unwrap_or_default();
            let mark =
                rs.iter().map(statement).find_map(|s| s.strip_prefix("SELECT ? AS mark_").map(str::to_string))?;
            Some((mark, rs))
        })
        .collect()
}

/// A server thread's mark and its commands.
pub type Thread = (Option<String>, Vec<(String, String)>);

/// Each connection's commands as MariaDB's general log shows them, by the connection's mark:
/// `(kind, first word)` — `QUERY`/`PREPARE`/`EXECUTE`/`CLOSE`, and a query's first word. The log
/// has no failed Prepare (MariaDB logs a statement it could parse).
pub fn general_log(log: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let text = std::fs::read_to_string(log).expect("the general log");
    let mut by_thread: BTreeMap<String, Thread> = BTreeMap::new();
    for line in text.lines() {
        // "261205 23:18:06\t     5 Prepare\tSELECT 1 AS mark_a", or without the time.
        let Some((head, argument)) = line.split_once('\t').and_then(|(_, rest)| rest.rsplit_once('\t')).or_else(|| {
            let rest = line.trim_start_matches('\t');
            rest.split_once('\t')
        }) else {
            continue;
        };
        let mut words = head.split_whitespace();
        let (Some(thread), Some(command)) = (words.next(), words.next()) else { continue };
        let command = match (command, words.next()) {
            ("Close", Some("stmt")) => "CLOSE",
            ("Query", _) => "QUERY",
            ("Prepare", _) => "PREPARE",
            ("Execute", _) => "EXECUTE",
            _ => continue,
        };
        let (mark, commands) = by_thread.entry(thread.to_string()).or_default();
        if let Some(name) = argument.strip_prefix("SELECT 1 AS mark_") {
            mark.get_or_insert(name.to_string());
        }
        if mark.is_some() {
            let word = if command == "QUERY" { first_word(argument) } else { String::new() };
            commands.push((command.to_string(), word));
        }
    }
    by_thread.into_values().filter_map(|(mark, commands)| Some((mark?, commands))).collect()
}

/// A record's MariaDB exchange.
pub fn mysql(r: &Record) -> Option<&SqlExchange> {
    match &r.detail {
        Detail::Mysql(q) => Some(q),
        _ => None,
    }
}

/// A MariaDB session as a capture shows it: the commands the server ran (`general_log`'s form),
/// and its records from the mark on.
pub type MysqlSession<'a> = (Vec<(String, String)>, Vec<&'a Record>);

/// A capture's MariaDB records by their connection's mark, from the mark on: the commands the
/// server ran as `general_log` has them (a Prepare that failed is not in it), and the records.
pub fn mysql_sessions(all: &[Record]) -> BTreeMap<String, MysqlSession<'_>> {
    let mut by_conn: BTreeMap<u64, Vec<&Record>> = BTreeMap::new();
    for r in all.iter().filter(|r| mysql(r).is_some()) {
        by_conn.entry(r.conn).or_default().push(r);
    }
    let kind = |q: &SqlExchange| match q.operation.as_str() {
        "PREPARE" => ("PREPARE".to_string(), String::new()),
        "CLOSE STMT" => ("CLOSE".to_string(), String::new()),
        _ if q.prepared.is_some() => ("EXECUTE".to_string(), String::new()),
        op => ("QUERY".to_string(), op.to_string()),
    };
    let mut seen = BTreeMap::new();
    for records in by_conn.values() {
        let mark =
            records.iter().filter_map(|r| mysql(r)?.statement.as_deref()?.strip_prefix("SELECT ? AS mark_")).next();
        let Some(mark) = mark else { continue };
        let from = records
            .iter()
            .position(|r| mysql(r).and_then(|q| q.statement.as_deref()).is_some_and(|s| s.contains("mark_")))
            .unwrap();
        // The log shows what ran: a Prepare that failed is not in it.
        let ran: Vec<(String, String)> =
            records[from..].iter().filter_map(|r| mysql(r)).filter(|q| q.error.is_none()).map(kind).collect();
        seen.insert(mark.to_string(), (ran, records[from..].to_vec()));
    }
    seen
}

/// Redis commands by the client's port: (command, first key).
pub type Feed = BTreeMap<u16, Vec<(String, Option<String>)>>;

/// The commands Redis' MONITOR feed shows from `client`'s address, by the client's port:
/// `1733440412.123456 [0 10.251.1.1:47746] "GET" "mark:a"`.
pub fn redis_monitor(feed: &Path, client: &str) -> Feed {
    let text = std::fs::read_to_string(feed).expect("a MONITOR feed");
    let mut by_port = Feed::new();
    for line in text.lines() {
        let Some((from, args)) = line.split_once("] ") else { continue };
        let Some(port) = from.rsplit_once(&format!(" {client}:")).and_then(|(_, p)| p.parse().ok()) else {
            continue;
        };
        let words: Vec<&str> = args.split('"').skip(1).step_by(2).collect();
        let command = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
        let key = match command.as_str() {
            "PING" | "MULTI" | "EXEC" => None,
            _ => words.get(1).map(|k| k.to_string()),
        };
        by_port.entry(port).or_default().push((command, key));
    }
    by_port
}
