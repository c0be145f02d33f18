//! MySQL/MariaDB sessions as the protocol pages show them, byte for byte, driven through the
//! connection dissector.

use podtap_shared::{Detail, SqlExchange};

use crate::dissect::{Dissected, Exchange};
use crate::reassemble::Dir;

const C: Dir = Dir::AtoB;
const S: Dir = Dir::BtoA;

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    [&[n as u8, (n >> 8) as u8, (n >> 16) as u8, seq][..], payload].concat()
}

/// MariaDB 10.11's Initial Handshake v10.
fn greeting() -> Vec<u8> {
    packet(
        0,
        &[
            &b"\x0a10.11.19-MariaDB-0+deb12u1\0\x05\0\0\0"[..],
            &[0x41; 8],
            &[0, 0xfe, 0xf7, 0x2d, 2, 0, 0xff, 0x81, 21],
            &[0; 10],
            &[0x42; 13],
            b"mysql_native_password\0",
        ]
        .concat(),
    )
}

/// PyMySQL's HandshakeResponse41: user `app`, database `shop`, a 20-byte scramble.
fn login(seq: u8, compress: bool) -> Vec<u8> {
    let mut caps: u32 = 0x0200 | 0x8000 | 0x0008 | 0x0001_0000 | 0x0008_0000;
    if compress {
        caps |= 0x20;
    }
    packet(
        seq,
        &[
            &caps.to_le_bytes()[..],
            &[0, 0, 0, 1, 45],
            &[0; 23],
            b"app\0",
            &[20],
            &[9; 20],
            b"shop\0",
            b"mysql_native_password\0",
        ]
        .concat(),
    )
}

fn ok(seq: u8, rows: u8) -> Vec<u8> {
    packet(seq, &[0, rows, 0, 2, 0, 0, 0])
}

fn error(seq: u8, code: u16, state: &str, message: &str) -> Vec<u8> {
    packet(seq, &[&[0xff][..], &code.to_le_bytes(), b"#", state.as_bytes(), message.as_bytes()].concat())
}

fn column(seq: u8, name: &str) -> Vec<u8> {
    let lenenc = |s: &str| [&[s.len() as u8][..], s.as_bytes()].concat();
    packet(
        seq,
        &[
            lenenc("def"),
            lenenc("shop"),
            lenenc("items"),
            lenenc("items"),
            lenenc(name),
            lenenc(name),
            vec![0x0c, 0x21, 0, 0, 1, 0, 0xfd, 0, 0, 0, 0, 0],
        ]
        .concat(),
    )
}

fn eof(seq: u8, status: u16) -> Vec<u8> {
    packet(seq, &[&[0xfe, 0, 0][..], &status.to_le_bytes()].concat())
}

fn text_row(seq: u8, value: &str) -> Vec<u8> {
    packet(seq, &[&[value.len() as u8][..], value.as_bytes()].concat())
}

fn query(sql: &str) -> Vec<u8> {
    packet(0, &[&[0x03][..], sql.as_bytes()].concat())
}

fn run(steps: &[(Dir, Vec<u8>)], syn: bool) -> (Vec<Exchange>, Vec<Dissected>) {
    let out = crate::dissect::conversation::converse(3306, syn, steps);
    let records = out
        .iter()
        .filter_map(|d| match d {
            Dissected::Exchange(e) if matches!(e.detail, Detail::Mysql(_)) => Some((**e).clone()),
            _ => None,
        })
        .collect();
    (records, out)
}

fn sql(e: &Exchange) -> &SqlExchange {
    match &e.detail {
        Detail::Mysql(q) => q,
        other => panic!("not MySQL: {other:?}"),
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
fn login_queries_result_sets_in_both_eof_styles_and_an_error() {
    let steps = [
        (S, greeting()),
        (C, login(1, false)),
        (S, ok(2, 0)),
        (C, query("SELECT name FROM items WHERE id = 42")),
        // Classic: columns, EOF, rows, EOF.
        (
            S,
            [
                packet(1, &[1]),
                column(2, "name"),
                eof(3, 2),
                text_row(4, "secret-a"),
                text_row(5, "secret-b"),
                eof(6, 2),
            ]
            .concat(),
        ),
        (C, query("SELECT name FROM items")),
        // EOF deprecated: columns, rows, an OK with 0xFE as its header.
        (S, [packet(1, &[1]), column(2, "name"), text_row(3, "x"), packet(4, &[0xfe, 0, 0, 2, 0, 0, 0])].concat()),
        (C, query("INSERT INTO items VALUES (1, 'secret-c'), (2, 'secret-d')")),
        (S, ok(1, 2)),
        (C, query("SELECT * FROM secret_table")),
        (S, error(1, 1146, "42S02", "Table 'shop.secret_table' doesn't exist")),
        (C, packet(0, &[0x01])),
    ];
    let (records, out) = run(&steps, true);
    let got: Vec<(&str, Option<u64>, Option<&str>)> =
        records.iter().map(|r| (sql(r).operation.as_str(), sql(r).rows, sql(r).error.as_deref())).collect();
    assert_eq!(
        got,
        [
            ("LOGIN", Some(0), None),
            ("SELECT", Some(2), None),
            ("SELECT", Some(1), None),
            ("INSERT", Some(2), None),
            ("SELECT", None, Some("42S02"))
        ]
    );
    assert_eq!((sql(&records[0]).user.as_deref(), sql(&records[0]).database.as_deref()), (Some("app"), Some("shop")));
    assert_eq!(sql(&records[1]).statement.as_deref(), Some("SELECT name FROM items WHERE id = ?"));
    assert_eq!(sql(&records[4]).error_code, Some(1146));
    assert_eq!(records[4].detail.outcome().as_deref(), Some("42S02 (error 1146)"));
    assert!(records.iter().all(|r| r.response_ts_us.is_some()));
    assert_eq!(protocol(&out).as_deref(), Some("mysql"));
    let text = format!("{records:?}");
    for secret in ["secret-a", "secret-c", "secret_table' doesn't", "42)"] {
        assert!(!text.contains(secret), "{secret} left the node: {text}");
    }
}

#[test]
fn prepared_statements_by_id_and_multi_results() {
    let prepare = packet(0, &[&[0x16][..], b"SELECT name FROM items WHERE id = ?"].concat());
    // stmt id 7, 1 column, 1 parameter; a parameter and a column definition, each with its EOF.
    let prepared =
        [packet(1, &[0, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]), column(2, "?"), eof(3, 2), column(4, "name"), eof(5, 2)]
            .concat();
    let execute = packet(0, &[0x17, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 0, 42, 0, 0, 0]);
    let binary_rows =
        [packet(1, &[1]), column(2, "name"), eof(3, 2), packet(4, &[0, 0, 3, b'a', b'b', b'c']), eof(5, 2)].concat();
    let close = packet(0, &[0x19, 7, 0, 0, 0]);
    let multi = query("SELECT 1; UPDATE items SET name = 'x'");
    // A result set whose final EOF says more results exist, then an OK.
    let multi_answer = [packet(1, &[1]), column(2, "1"), eof(3, 2), text_row(4, "1"), eof(5, 0x0a), ok(6, 3)].concat();
    let steps = [
        (C, prepare),
        (S, prepared),
        (C, execute.clone()),
        (S, binary_rows),
        (C, close),
        (C, multi),
        (S, multi_answer),
        (C, execute),
    ];
    let (records, _) = run(&steps, false);
    let got: Vec<(&str, Option<&str>, Option<u64>, bool)> = records
        .iter()
        .map(|r| (sql(r).operation.as_str(), sql(r).prepared.as_deref(), sql(r).rows, r.response_ts_us.is_some()))
        .collect();
    assert_eq!(
        got,
        [
            ("PREPARE", Some("7"), None, true),
            ("SELECT", Some("7"), Some(1), true),
            ("CLOSE STMT", Some("7"), None, false),
            ("SELECT", None, Some(4), true),
            // Executed after its CLOSE, in a session joined mid-stream: the id alone.
            ("EXECUTE", Some("7"), None, false),
        ]
    );
    assert_eq!(sql(&records[1]).statement.as_deref(), Some("SELECT name FROM items WHERE id = ?"));
    assert_eq!(records[4].detail.request_line(), "EXECUTE 7 (statement: unknown)");
}

#[test]
fn an_ssl_request_hands_over_to_tls_and_compression_is_noted() {
    let ssl = packet(1, &[&(0x0200u32 | 0x0800 | 0x8000).to_le_bytes()[..], &[0, 0, 0, 1, 45], &[0; 23]].concat());
    let hello = crate::dissect::tls::tests::client_hello("db.example");
    let (_, out) = run(&[(S, greeting()), (C, ssl), (C, hello), (S, crate::dissect::tls::tests::server_hello())], true);
    let tls = out.iter().find_map(|d| match d {
        Dissected::Exchange(e) => match &e.detail {
            Detail::Tls(t) => Some(t.clone()),
            _ => None,
        },
        _ => None,
    });
    assert_eq!(tls.and_then(|t| t.upgraded_from).as_deref(), Some("mysql"));
    let (records, out) = run(&[(S, greeting()), (C, login(1, true)), (S, ok(2, 0)), (C, vec![9; 30])], true);
    assert_eq!(records.len(), 1, "the login; nothing read after compression began");
    assert_eq!(protocol(&out).as_deref(), Some("mysql (compressed)"));
}

#[test]
fn hostile_bytes_cost_their_stream_and_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let mut bytes = query("SELECT 1");
        for _ in 0..(seed % 300) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed as u8);
        }
        let _ = run(&[(S, greeting()), (C, bytes.clone()), (S, bytes[2..].to_vec()), (C, bytes)], true);
    }
}

#[test]
fn local_infile_and_a_cursor_fetch_are_one_request_each() {
    // LOAD DATA LOCAL INFILE ("COM_QUERY Response", LOCAL INFILE Request): the server asks for
    // the file (0xFB and its name), the client sends it and an empty packet, the server says OK.
    let load = query("LOAD DATA LOCAL INFILE '/tmp/secret.csv' INTO TABLE items");
    let file = [packet(2, b"1,secret-row\n"), packet(3, b"")].concat();
    // A prepared statement run with a cursor, then COM_STMT_FETCH of two rows: binary rows and
    // an EOF, no column definitions ("COM_STMT_FETCH Response").
    let execute = packet(0, &[0x17, 9, 0, 0, 0, 1, 1, 0, 0, 0]);
    let opened = [packet(1, &[1]), column(2, "name"), eof(3, 0x0042)].concat();
    let fetch = packet(0, &[0x1c, 9, 0, 0, 0, 2, 0, 0, 0]);
    let rows = [packet(1, &[0, 0, 1, b'a']), packet(2, &[0, 0, 1, b'b']), eof(3, 0x0042)].concat();
    let steps = [
        (C, load),
        (S, packet(1, &[&[0xfb][..], b"/tmp/secret.csv"].concat())),
        (C, file),
        (S, ok(4, 1)),
        (C, execute),
        (S, opened),
        (C, fetch),
        (S, rows),
        (C, query("SELECT 1")),
        (S, [packet(1, &[1]), column(2, "1"), eof(3, 2), text_row(4, "1"), eof(5, 2)].concat()),
    ];
    let (records, out) = run(&steps, false);
    let got: Vec<(&str, Option<u64>, bool)> =
        records.iter().map(|r| (sql(r).operation.as_str(), sql(r).rows, r.response_ts_us.is_some())).collect();
    assert_eq!(
        got,
        [("LOAD", Some(1), true), ("EXECUTE", Some(0), true), ("STMT FETCH", Some(2), true), ("SELECT", Some(1), true)]
    );
    assert!(!out.iter().any(|d| matches!(d, Dissected::UnmatchedResponse)), "{out:?}");
    // The file's bytes count with the request; its content is not in the record.
    assert!(records[0].request_size > 60, "{}", records[0].request_size);
    assert!(!format!("{:?}", records[0].detail).contains("secret-row"));
}
