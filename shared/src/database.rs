//! Database exchanges (`kind: "postgres"`, `"mysql"`, `"redis"`): one request and what came back;
//! and WebSocket connections (`kind: "websocket"`), which carry messages rather than requests. What may carry a user's data never appears here: statements are kept with their literals
//! replaced by `?` (on the node, before anything leaves it), bind parameters and rows' values are
//! never read, and an error is its SQLSTATE, not its message (which quotes values).

use serde::{Deserialize, Serialize};

/// One SQL request: a simple query, an extended-protocol `Execute` (with the `Parse` and `Bind`
/// before it), a session's startup, or a message that failed on its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlExchange {
    /// The command: the server's completion tag without its counts (`SELECT`, `INSERT`,
    /// `CREATE TABLE`), else the statement's first words, or `STARTUP`, `PARSE`, `COPY`.
    pub operation: String,
    /// The statement with its literals replaced by `?`, bounded; `None` when it was never seen (a
    /// prepared statement whose `Parse` came before the capture: `prepared` names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// The prepared statement's name, when it had one (`""` is the unnamed statement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepared: Option<String>,
    /// Rows the server said it returned or changed (the completion tag's count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The SQLSTATE of the error that ended it (`42P01`), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// MySQL's own error number beside it (`1146`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    /// The database and user the session started with, when its startup was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The client's `application_name`, when its startup was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Notices and warnings the server sent while it ran.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub notices: u32,
    /// Messages of the same pipeline the server skipped after this one failed (until `Sync`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl SqlExchange {
    /// What was asked, in one line: `SELECT * FROM t WHERE id = ?`, `EXECUTE s1 (statement
    /// unknown)`, `STARTUP app@shop`.
    pub fn request_line(&self) -> String {
        match (&self.statement, &self.prepared) {
            (Some(s), _) => s.clone(),
            (None, Some(name)) => {
                let name = if name.is_empty() { "(unnamed)" } else { name };
                format!("{} {name} (statement: unknown)", self.operation)
            }
            (None, None) => match (&self.user, &self.database) {
                (Some(u), Some(d)) if self.operation == "STARTUP" => format!("STARTUP {u}@{d}"),
                _ => self.operation.clone(),
            },
        }
    }

    /// What came back: the SQLSTATE and its condition's name when it failed, else `OK` and the
    /// rows.
    pub fn outcome(&self) -> String {
        match (&self.error, self.rows) {
            (Some(code), _) => match self.error_code {
                Some(n) => format!("{code} (error {n})"),
                None => format!("{code} {}", sqlstate_name(code)),
            },
            (None, Some(rows)) => format!("OK {rows} rows"),
            (None, None) => "OK".to_string(),
        }
    }
}

/// One Redis command (RESP2 or RESP3) and its reply. Never a value: the command, its first key
/// (bounded), and what kind of reply came back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisExchange {
    /// The command, upper-case, with its subcommand for container commands (`CLIENT SETNAME`).
    pub command: String,
    /// Its first key, when it has one (at most 128 bytes; never for `AUTH`, `HELLO`, `ECHO`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What came back: `simple`, `bulk`, `nil`, `integer`, `array`, `map`, `set`, `boolean`,
    /// `double`, `error`, …; `none` when the client asked for no reply (`CLIENT REPLY OFF|SKIP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The error's prefix (`ERR`, `WRONGTYPE`, `MOVED`, `ASK`, `NOAUTH`), when it failed; its
    /// message stays on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Inside `MULTI … EXEC`: the reply was `QUEUED`, the command ran at `EXEC`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
}

impl RedisExchange {
    pub fn request_line(&self) -> String {
        match &self.key {
            Some(k) => format!("{} {k}", self.command),
            None => self.command.clone(),
        }
    }

    pub fn outcome(&self) -> Option<String> {
        match (&self.error, &self.reply) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(r)) => Some(r.clone()),
            (None, None) => None,
        }
    }
}

/// A WebSocket connection after its HTTP/1.1 upgrade (RFC 6455): one record per connection, what
/// each side sent by kind and size, and how it closed. Never a message's payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSocketExchange {
    /// The subprotocol the server chose (`Sec-WebSocket-Protocol`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subprotocol: Option<String>,
    /// The extensions it agreed to (`permessage-deflate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<String>,
    /// What the client sent, and what the server sent.
    pub client: WebSocketSide,
    pub server: WebSocketSide,
    /// The close frame's status code and reason (at most 123 bytes), and which side sent it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
}

/// One side's messages by kind, and their payload bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WebSocketSide {
    pub text: u64,
    pub binary: u64,
    pub ping: u64,
    pub pong: u64,
    pub close: u64,
    pub bytes: u64,
}

impl WebSocketExchange {
    pub fn request_line(&self) -> String {
        let (c, s) = (&self.client, &self.server);
        let protocol = self.subprotocol.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
        format!("WebSocket{protocol}: {} ↑ {} ↓ messages", c.text + c.binary, s.text + s.binary)
    }

    pub fn outcome(&self) -> Option<String> {
        self.close_code.map(|c| match &self.close_reason {
            Some(r) if !r.is_empty() => format!("closed {c} {r}"),
            _ => format!("closed {c}"),
        })
    }
}

/// The condition name of a SQLSTATE (PostgreSQL's Appendix A, the codes a client most often
/// meets), else its class's name (the first two characters).
pub fn sqlstate_name(code: &str) -> &'static str {
    const CODES: &[(&str, &str)] = &[
        ("23502", "not_null_violation"),
        ("23503", "foreign_key_violation"),
        ("23505", "unique_violation"),
        ("23514", "check_violation"),
        ("22P02", "invalid_text_representation"),
        ("22012", "division_by_zero"),
        ("25P02", "in_failed_sql_transaction"),
        ("28P01", "invalid_password"),
        ("28000", "invalid_authorization_specification"),
        ("3D000", "invalid_catalog_name"),
        ("40001", "serialization_failure"),
        ("40P01", "deadlock_detected"),
        ("42601", "syntax_error"),
        ("42501", "insufficient_privilege"),
        ("42P01", "undefined_table"),
        ("42703", "undefined_column"),
        ("42883", "undefined_function"),
        ("42P07", "duplicate_table"),
        ("53300", "too_many_connections"),
        ("57014", "query_canceled"),
        ("57P01", "admin_shutdown"),
    ];
    const CLASSES: &[(&str, &str)] = &[
        ("08", "connection_exception"),
        ("0A", "feature_not_supported"),
        ("21", "cardinality_violation"),
        ("22", "data_exception"),
        ("23", "integrity_constraint_violation"),
        ("25", "invalid_transaction_state"),
        ("26", "invalid_sql_statement_name"),
        ("28", "invalid_authorization_specification"),
        ("34", "invalid_cursor_name"),
        ("3D", "invalid_catalog_name"),
        ("40", "transaction_rollback"),
        ("42", "syntax_error_or_access_rule_violation"),
        ("53", "insufficient_resources"),
        ("54", "program_limit_exceeded"),
        ("55", "object_not_in_prerequisite_state"),
        ("57", "operator_intervention"),
        ("58", "system_error"),
        ("XX", "internal_error"),
    ];
    if let Some((_, name)) = CODES.iter().find(|(c, _)| *c == code) {
        return name;
    }
    let class = code.get(..2).unwrap_or("");
    CLASSES.iter().find(|(c, _)| *c == class).map_or("error", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlstate_is_named_by_its_code_else_its_class() {
        assert_eq!(sqlstate_name("42P01"), "undefined_table");
        assert_eq!(sqlstate_name("23P01"), "integrity_constraint_violation");
        assert_eq!(sqlstate_name("ZZ999"), "error");
        assert_eq!(sqlstate_name(""), "error");
    }

    #[test]
    fn a_statement_never_seen_is_said_to_be_unknown() {
        let ex = SqlExchange { operation: "EXECUTE".into(), prepared: Some("s1".into()), ..Default::default() };
        assert_eq!(ex.request_line(), "EXECUTE s1 (statement: unknown)");
        let startup = SqlExchange {
            operation: "STARTUP".into(),
            user: Some("app".into()),
            database: Some("shop".into()),
            ..Default::default()
        };
        assert_eq!(startup.request_line(), "STARTUP app@shop");
        let failed = SqlExchange { operation: "SELECT".into(), error: Some("42P01".into()), ..Default::default() };
        assert_eq!(failed.outcome(), "42P01 undefined_table");
    }
}
