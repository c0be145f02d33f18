//! PostgreSQL sessions as the protocol documentation's Message Flow describes them (and as psql,
//! libpq and psycopg write them), byte for byte, driven through the connection dissector.

use podtap_shared::{Detail, SqlExchange, TlsExchange};

use crate::dissect::any::AnyProtocol;
use crate::dissect::{Dissected, Exchange};
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

const C: Dir = Dir::AtoB;
const S: Dir = Dir::BtoA;

fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn z(s: &str) -> Vec<u8> {
    [s.as_bytes(), b"\0"].concat()
}

/// psql's StartupMessage for user `app`, database `shop`, application `psql`.
const STARTUP: &[u8] = b"\0\0\0\x36\0\x03\0\0user\0app\0database\0shop\0application_name\0psql\0\0";

/// AuthenticationOk, a ParameterStatus, BackendKeyData, ReadyForQuery (idle).
fn startup_answer() -> Vec<u8> {
    [
        &b"R\0\0\0\x08\0\0\0\0"[..],
        &msg(b'S', b"server_version\x0015.18\0"),
        &b"K\0\0\0\x0c\0\0\x30\x39\x12\x34\x56\x78"[..],
        READY,
    ]
    .concat()
}

const READY: &[u8] = b"Z\0\0\0\x05I";

fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &z(sql))
}
fn parse(name: &str, sql: &str) -> Vec<u8> {
    msg(b'P', &[z(name), z(sql), vec![0, 0]].concat())
}
/// A Bind with one text parameter (its value must never appear in a record).
fn bind(portal: &str, statement: &str, value: &str) -> Vec<u8> {
    let param = [&(value.len() as u32).to_be_bytes()[..], value.as_bytes()].concat();
    msg(b'B', &[z(portal), z(statement), vec![0, 0, 0, 1], param, vec![0, 0]].concat())
}
fn describe_portal() -> Vec<u8> {
    msg(b'D', b"P\0")
}
fn execute(portal: &str) -> Vec<u8> {
    msg(b'E', &[z(portal), vec![0, 0, 0, 0]].concat())
}
fn sync() -> Vec<u8> {
    msg(b'S', b"")
}
fn complete(tag: &str) -> Vec<u8> {
    msg(b'C', &z(tag))
}
fn row(value: &str) -> Vec<u8> {
    msg(b'D', &[&[0, 1][..], &(value.len() as u32).to_be_bytes(), value.as_bytes()].concat())
}
fn row_description() -> Vec<u8> {
    msg(b'T', b"\0\x01name\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0")
}
fn error(code: &str, message: &str) -> Vec<u8> {
    msg(b'E', &[b"SERROR\0VERROR\0C".to_vec(), z(code), b"M".to_vec(), z(message), vec![0]].concat())
}

/// The records of a conversation on a connection to port 5432 (the handshake seen when `syn`),
/// each step one segment at its own time; sequence numbers advance as a reassembler's do.
fn run(steps: &[(Dir, Vec<u8>)], syn: bool) -> (Vec<Exchange>, Vec<Dissected>) {
    let out = crate::dissect::conversation::converse(5432, syn, steps);
    let exchanges = out
        .iter()
        .filter_map(|d| match d {
            Dissected::Exchange(e) if !matches!(e.detail, Detail::Tcp(_)) => Some((**e).clone()),
            _ => None,
        })
        .collect();
    (exchanges, out)
}

fn sql(e: &Exchange) -> &SqlExchange {
    match &e.detail {
        Detail::Postgres(q) => q,
        other => panic!("not PostgreSQL: {other:?}"),
    }
}

fn protocol(out: &[Dissected]) -> Option<String> {
    out.iter().find_map(|d| match d {
        Dissected::Exchange(e) => match &e.detail {
            Detail::Tcp(t) => t.protocol.clone(),
            _ => None,
        },
        _ => None,
    })
}

#[test]
fn a_session_startup_simple_queries_and_an_error() {
    let steps = [
        (C, STARTUP.to_vec()),
        (S, startup_answer()),
        (C, query("SELECT name FROM users WHERE email = 'bob@example.com' AND id > 41")),
        (S, [row_description(), row("bob"), row("ann"), complete("SELECT 2"), READY.to_vec()].concat()),
        (C, query("SELECT * FROM secret_table")),
        (S, [error("42P01", "relation \"secret_table\" does not exist"), READY.to_vec()].concat()),
        (C, query("BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (2), (3); COMMIT")),
        (
            S,
            [complete("BEGIN"), complete("INSERT 0 1"), complete("INSERT 0 2"), complete("COMMIT"), READY.to_vec()]
                .concat(),
        ),
        (C, msg(b'X', b"")),
    ];
    let (records, out) = run(&steps, true);
    assert_eq!(records.len(), 4, "{records:#?}");
    let startup = sql(&records[0]);
    assert_eq!(
        (startup.operation.as_str(), startup.user.as_deref(), startup.database.as_deref()),
        ("STARTUP", Some("app"), Some("shop"))
    );
    assert_eq!(startup.application.as_deref(), Some("psql"));
    assert_eq!((records[0].ts_us, records[0].response_ts_us), (10, Some(11)));

    let select = sql(&records[1]);
    assert_eq!(select.operation, "SELECT");
    assert_eq!(select.statement.as_deref(), Some("SELECT name FROM users WHERE email = ? AND id > ?"));
    assert_eq!((select.rows, select.error.as_deref()), (Some(2), None));
    assert_eq!(select.user.as_deref(), Some("app"), "every request carries its session");
    assert_eq!((records[1].ts_us, records[1].response_ts_us), (12, Some(13)));
    assert_eq!(records[1].seq, Some(1000 + STARTUP.len() as u32), "the query's first byte");

    let failed = sql(&records[2]);
    assert_eq!((failed.operation.as_str(), failed.error.as_deref()), ("SELECT", Some("42P01")));
    let several = sql(&records[3]);
    assert_eq!((several.operation.as_str(), several.rows), ("BEGIN", Some(3)), "first command, every row");
    assert_eq!(protocol(&out).as_deref(), Some("postgres"));
    // Literals, values and error messages stay on the node.
    let text = format!("{records:?}");
    for secret in ["bob@example.com", "bob", "ann", "does not exist", "41"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn the_extended_protocol_pipelined_one_record_per_execute() {
    let client = [
        parse("s1", "SELECT * FROM orders WHERE id = $1"),
        bind("", "s1", "4711"),
        describe_portal(),
        execute(""),
        parse("", "INSERT INTO audit VALUES ($1, now())"),
        bind("", "", "secret-value"),
        execute(""),
        sync(),
    ]
    .concat();
    let server = [
        b"1\0\0\0\x04".to_vec(),
        b"2\0\0\0\x04".to_vec(),
        row_description(),
        row("x"),
        row("y"),
        complete("SELECT 2"),
        b"1\0\0\0\x042\0\0\0\x04".to_vec(),
        complete("INSERT 0 1"),
        READY.to_vec(),
    ]
    .concat();
    let steps = [(C, STARTUP.to_vec()), (S, startup_answer()), (C, client.clone()), (S, server)];
    let (records, _) = run(&steps, true);
    assert_eq!(records.len(), 3, "{records:#?}");
    let (select, insert) = (sql(&records[1]), sql(&records[2]));
    assert_eq!(select.statement.as_deref(), Some("SELECT * FROM orders WHERE id = $1"));
    assert_eq!((select.operation.as_str(), select.rows, select.prepared.as_deref()), ("SELECT", Some(2), Some("s1")));
    assert_eq!((insert.operation.as_str(), insert.rows, insert.prepared.as_deref()), ("INSERT", Some(1), None));
    // Each request begins at its own first message: the second at the second Parse.
    let second = parse("s1", "SELECT * FROM orders WHERE id = $1").len()
        + bind("", "s1", "4711").len()
        + describe_portal().len()
        + execute("").len();
    let base = 1000 + STARTUP.len() as u32;
    assert_eq!((records[1].seq, records[2].seq), (Some(base), Some(base + second as u32)));
    assert_eq!(records[1].request_size + records[2].request_size, client.len() as u64);
    let text = format!("{records:?}");
    assert!(!text.contains("4711") && !text.contains("secret-value"), "bind parameters leaked: {text}");
}

#[test]
fn after_an_error_the_server_skips_to_sync_and_the_skipped_are_counted_not_recorded() {
    let client = [
        bind("", "", "1"),
        execute(""),
        sync(),
        parse("", "SELEC oops"),
        bind("", "", "1"),
        execute(""),
        parse("", "SELECT 1"),
        bind("", "", "1"),
        execute(""),
        sync(),
        query("SELECT 2"),
    ]
    .concat();
    let server = [
        b"2\0\0\0\x04".to_vec(),
        complete("UPDATE 3"),
        READY.to_vec(),
        error("42601", "syntax error at or near \"SELEC\""),
        READY.to_vec(),
        row("2"),
        complete("SELECT 1"),
        READY.to_vec(),
    ]
    .concat();
    // Joined mid-stream: no startup, and the first statement's Parse came before the capture.
    let (records, _) = run(&[(C, client), (S, server)], false);
    assert_eq!(records.len(), 3, "{records:#?}");
    let unknown = sql(&records[0]);
    assert_eq!((unknown.operation.as_str(), unknown.rows, unknown.statement.as_deref()), ("UPDATE", Some(3), None));
    assert_eq!(unknown.prepared.as_deref(), Some(""), "the unnamed statement, unknown");
    assert_eq!(records[0].detail.request_line(), "UPDATE (unnamed) (statement: unknown)");
    assert_eq!(unknown.user, None, "no startup seen");
    let failed = sql(&records[1]);
    assert_eq!((failed.error.as_deref(), failed.skipped, failed.operation.as_str()), (Some("42601"), 1, "SELEC"));
    assert_eq!(failed.statement.as_deref(), Some("SELEC oops"));
    assert_eq!(sql(&records[2]).statement.as_deref(), Some("SELECT ?"), "back in step after Sync");
}

#[test]
fn a_pool_joined_mid_stream_names_its_prepared_statements() {
    // A named statement prepared before the capture: Bind/Execute only.
    let client = [bind("", "stmt_get_user", "9"), execute(""), sync()].concat();
    let server = [b"2\0\0\0\x04".to_vec(), row("x"), complete("SELECT 1"), READY.to_vec()].concat();
    // The server's answer is seen first (its segment began the capture), then the next request.
    let (records, _) = run(&[(S, server.clone()), (C, client.clone()), (S, server)], false);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].detail.request_line(), "SELECT stmt_get_user (statement: unknown)");
    assert_eq!(records[0].client.port(), 40000, "the side that sent Bind is the client");
}

#[test]
fn ssl_request_answered_yes_is_tls_and_no_goes_on_in_the_clear() {
    let ssl = b"\0\0\0\x08\x04\xd2\x16\x2f".to_vec();
    let hello = crate::dissect::tls::tests::client_hello("db.example");
    let (records, out) =
        run(&[(C, ssl.clone()), (S, b"S".to_vec()), (C, hello), (S, crate::dissect::tls::tests::server_hello())], true);
    assert_eq!(sql(&records[0]).operation, "SSL", "{records:#?}");
    let tls: Vec<&TlsExchange> = out
        .iter()
        .filter_map(|d| match d {
            Dissected::Exchange(e) => match &e.detail {
                Detail::Tls(t) => Some(t),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(tls.len(), 1);
    assert_eq!((tls[0].sni.as_deref(), tls[0].upgraded_from.as_deref()), (Some("db.example"), Some("postgres")));

    let (records, _) = run(
        &[(C, ssl), (S, b"N".to_vec()), (C, STARTUP.to_vec()), (S, startup_answer()), (C, query("SELECT 1"))],
        true,
    );
    let ops: Vec<&str> = records.iter().map(|r| sql(r).operation.as_str()).collect();
    assert_eq!(ops, ["STARTUP", "SELECT"], "a refusal is no record; the session goes on");
    assert_eq!(records[1].response_ts_us, None, "the last query went unanswered");
    let (records, out) =
        run(&[(C, b"\0\0\0\x08\x04\xd2\x16\x30".to_vec()), (S, b"G".to_vec()), (C, vec![1; 40])], true);
    assert_eq!(sql(&records[0]).operation, "GSSENC");
    assert_eq!(protocol(&out).as_deref(), Some("postgres (encrypted)"));
}

#[test]
fn copy_in_is_one_request_with_its_data() {
    let copy_data = [msg(b'd', b"1\tsecret\n"), msg(b'd', b"2\tsecret\n"), msg(b'c', b"")].concat();
    let steps = [
        (C, query("COPY items FROM STDIN")),
        (S, msg(b'G', b"\0\0\x02\0\0\0\0")),
        (C, copy_data.clone()),
        (S, [complete("COPY 2"), READY.to_vec()].concat()),
    ];
    let (records, _) = run(&steps, false);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!((sql(&records[0]).operation.as_str(), sql(&records[0]).rows), ("COPY", Some(2)));
    assert_eq!(records[0].request_size, (query("COPY items FROM STDIN").len() + copy_data.len()) as u64);
}

#[test]
fn any_cut_into_segments_gives_the_same_records() {
    let client = [
        STARTUP.to_vec(),
        query("SELECT 1"),
        parse("p", "SELECT $1"),
        bind("", "p", "v"),
        execute(""),
        sync(),
        msg(b'N', b""),
    ]
    .concat();
    let server = [
        startup_answer(),
        msg(b'N', b"SNOTICE\0C00000\0Mhello\0\0"),
        row("1"),
        complete("SELECT 1"),
        READY.to_vec(),
        b"1\0\0\0\x042\0\0\0\x04".to_vec(),
        row("v"),
        complete("SELECT 1"),
        READY.to_vec(),
    ]
    .concat();
    let whole = run(&[(C, client.clone()), (S, server.clone())], true).0;
    assert_eq!(whole.len(), 3);
    assert_eq!(sql(&whole[1]).notices, 1);
    let strip = |rs: Vec<Exchange>| {
        rs.into_iter().map(|r| (sql(&r).clone(), r.request_size, r.response_size)).collect::<Vec<_>>()
    };
    let want = strip(whole);
    // From the startup packet's head on: the first segment of a session carries at least that.
    for cut in 8..client.len().max(server.len()) {
        let (c, s) = (cut.min(client.len()), cut.min(server.len()));
        let steps = [
            (C, client[..c].to_vec()),
            (C, client[c..].to_vec()),
            (S, server[..s].to_vec()),
            (S, server[s..].to_vec()),
        ];
        let steps: Vec<_> = steps.into_iter().filter(|(_, b)| !b.is_empty()).collect();
        assert_eq!(strip(run(&steps, true).0), want, "cut at {cut}");
    }
}

#[test]
fn a_gap_costs_the_requests_in_flight_and_the_session_comes_back_in_step() {
    let mut info = ConnInfo::test(1, 0, "10.0.0.1:40000", "10.0.0.2:5432");
    let mut p = AnyProtocol::new(&info);
    let mut out = Vec::new();
    p.on_data(&info, C, 1, &query("SELECT a FROM t"), &mut out);
    p.on_data(&info, S, 2, &row("1")[..3], &mut out);
    p.on_gap(&info, S, 500);
    // The answer's end, in step again at a message, then the next query.
    p.on_data(&info, S, 3, &[complete("SELECT 9"), READY.to_vec()].concat(), &mut out);
    p.on_data(&info, C, 4, &query("SELECT b FROM t"), &mut out);
    p.on_data(&info, S, 5, &[complete("SELECT 0"), READY.to_vec()].concat(), &mut out);
    info.life.close = podtap_shared::TcpClose::Fin;
    p.on_close(&info, 6, &mut out);
    let records: Vec<&Exchange> = out
        .iter()
        .filter_map(|d| match d {
            Dissected::Exchange(e) if matches!(e.detail, Detail::Postgres(_)) => Some(&**e),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!((sql(records[0]).rows, sql(records[0]).operation.as_str()), (None, "SELECT"), "cut short by the gap");
    assert_eq!(sql(records[1]).statement.as_deref(), Some("SELECT b FROM t"));
    assert_eq!((sql(records[1]).rows, records[1].response_ts_us), (Some(0), Some(5)));
}

#[test]
fn hostile_bytes_cost_their_stream_and_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let mut bytes = [STARTUP.to_vec(), query("SELECT 1")].concat();
        let n = (seed % 200) as usize;
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed as u8);
        }
        let (_, out) = run(&[(C, bytes.clone()), (S, bytes[8..].to_vec()), (C, bytes)], true);
        assert!(out.iter().any(|d| matches!(d, Dissected::Exchange(e) if matches!(e.detail, Detail::Tcp(_)))));
    }
}

#[test]
fn a_cancel_request_is_a_request_that_gets_no_answer() {
    let (records, _) = run(&[(C, b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\x30\x39\x12\x34\x56\x78".to_vec())], true);
    assert_eq!(sql(&records[0]).operation, "CANCEL");
    assert_eq!(records[0].response_ts_us, None);
}
