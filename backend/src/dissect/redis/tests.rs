//! Redis conversations as the protocol spec and the command pages show them, byte for byte,
//! driven through the connection dissector.

use podtap_shared::{Detail, RedisExchange};

use crate::dissect::{Dissected, Exchange};
use crate::reassemble::Dir;

const C: Dir = Dir::AtoB;
const S: Dir = Dir::BtoA;

/// A command as clients send it: an array of bulk strings.
fn cmd(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn run(steps: &[(Dir, Vec<u8>)]) -> Vec<Exchange> {
    run_on(steps, true)
}

/// `syn`: the connection's handshake was seen (else it was joined mid-stream).
fn run_on(steps: &[(Dir, Vec<u8>)], syn: bool) -> Vec<Exchange> {
    crate::dissect::conversation::converse(6379, syn, steps)
        .into_iter()
        .filter_map(|d| match d {
            Dissected::Exchange(e) if matches!(e.detail, Detail::Redis(_)) => Some(*e),
            _ => None,
        })
        .collect()
}

fn redis(e: &Exchange) -> &RedisExchange {
    match &e.detail {
        Detail::Redis(r) => r,
        other => panic!("not Redis: {other:?}"),
    }
}

/// (command, key, reply, error) of each record.
type Summary = (String, Option<String>, Option<String>, Option<String>);

fn summary(records: &[Exchange]) -> Vec<Summary> {
    records
        .iter()
        .map(|r| {
            let x = redis(r);
            (x.command.clone(), x.key.clone(), x.reply.clone(), x.error.clone())
        })
        .collect()
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn a_pipeline_is_paired_in_order_and_keeps_no_value() {
    let client = [
        cmd(&["AUTH", "app", "hunter2"]),
        cmd(&["SET", "user:42", "secret value"]),
        cmd(&["GET", "user:42"]),
        cmd(&["GET", "missing"]),
        cmd(&["LPUSH", "list", "a", "b"]),
        cmd(&["client", "setname", "worker-7"]),
        cmd(&["INCR", "user:42"]),
    ]
    .concat();
    let server: &[u8] =
        b"+OK\r\n+OK\r\n$12\r\nsecret value\r\n$-1\r\n:2\r\n+OK\r\n-ERR value is not an integer or out of range\r\n";
    let records = run(&[(C, client.clone()), (S, server.to_vec())]);
    assert_eq!(
        summary(&records),
        [
            (s("AUTH"), None, Some(s("simple")), None),
            (s("SET"), Some(s("user:42")), Some(s("simple")), None),
            (s("GET"), Some(s("user:42")), Some(s("bulk")), None),
            (s("GET"), Some(s("missing")), Some(s("nil")), None),
            (s("LPUSH"), Some(s("list")), Some(s("integer")), None),
            (s("CLIENT SETNAME"), None, Some(s("simple")), None),
            (s("INCR"), Some(s("user:42")), Some(s("error")), Some(s("ERR"))),
        ]
    );
    assert_eq!(records.iter().map(|r| r.request_size).sum::<u64>(), client.len() as u64);
    assert_eq!(records.iter().map(|r| r.response_size).sum::<u64>(), server.len() as u64);
    assert_eq!(records[1].seq, Some(1000 + cmd(&["AUTH", "app", "hunter2"]).len() as u32));
    let text = format!("{records:?}");
    for secret in ["hunter2", "secret value", "worker-7", "not an integer"] {
        assert!(!text.contains(secret), "{secret} left the node: {text}");
    }
}

#[test]
fn multi_exec_queues_and_errors_name_their_prefix() {
    let steps = [
        (C, [cmd(&["MULTI"]), cmd(&["INCR", "a"]), cmd(&["GET", "b"]), cmd(&["EXEC"])].concat()),
        (S, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n$1\r\nx\r\n".to_vec()),
        (C, cmd(&["GET", "k"])),
        (S, b"-MOVED 3999 127.0.0.1:6381\r\n".to_vec()),
        (C, cmd(&["LPOP", "k"])),
        (S, b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n".to_vec()),
    ];
    let records = run(&steps);
    let queued: Vec<bool> = records.iter().map(|r| redis(r).queued).collect();
    assert_eq!(queued, [false, true, true, false, false, false]);
    assert_eq!(redis(&records[3]).reply.as_deref(), Some("array"));
    assert_eq!(redis(&records[4]).error.as_deref(), Some("MOVED"));
    assert_eq!(redis(&records[5]).error.as_deref(), Some("WRONGTYPE"));
}

#[test]
fn client_reply_off_and_skip_get_no_reply_and_wait_for_none() {
    let steps = [
        (C, [cmd(&["CLIENT", "REPLY", "SKIP"]), cmd(&["SET", "a", "1"]), cmd(&["GET", "a"])].concat()),
        (S, b"$1\r\n1\r\n".to_vec()),
        (C, [cmd(&["CLIENT", "REPLY", "OFF"]), cmd(&["SET", "b", "2"]), cmd(&["CLIENT", "REPLY", "ON"])].concat()),
        (S, b"+OK\r\n".to_vec()),
        (C, cmd(&["GET", "b"])),
        (S, b"$1\r\n2\r\n".to_vec()),
    ];
    let records = run(&steps);
    assert_eq!(
        summary(&records).into_iter().map(|(c, k, r, _)| (c, k, r)).collect::<Vec<_>>(),
        [
            (s("CLIENT REPLY"), None, Some(s("none"))),
            (s("SET"), Some(s("a")), Some(s("none"))),
            (s("GET"), Some(s("a")), Some(s("bulk"))),
            (s("CLIENT REPLY"), None, Some(s("none"))),
            (s("SET"), Some(s("b")), Some(s("none"))),
            (s("CLIENT REPLY"), None, Some(s("simple"))),
            (s("GET"), Some(s("b")), Some(s("bulk"))),
        ]
    );
    let record = |i: usize| podtap_shared::Record {
        latency_us: None,
        detail: records[i].detail.clone(),
        ..podtap_shared::Record::test()
    };
    assert!(!record(1).is_error(), "no reply asked, none is no error");
}

#[test]
fn pub_sub_confirmations_are_replies_and_messages_and_pushes_are_not() {
    let steps = [
        (C, cmd(&["SUBSCRIBE", "news", "alerts"])),
        (
            S,
            [
                &b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"[..],
                b"*3\r\n$9\r\nsubscribe\r\n$6\r\nalerts\r\n:2\r\n",
                b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$6\r\nsecret\r\n",
            ]
            .concat(),
        ),
        (C, cmd(&["PING"])),
        (S, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n".to_vec()),
        // RESP3: a push between a command and its reply.
        (C, [cmd(&["HELLO", "3"]), cmd(&["GET", "x"])].concat()),
        (S, b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n_\r\n".to_vec()),
    ];
    let records = run(&steps);
    assert_eq!(
        summary(&records).into_iter().map(|(c, k, r, _)| (c, k, r)).collect::<Vec<_>>(),
        [
            (s("SUBSCRIBE"), Some(s("news")), Some(s("array"))),
            (s("PING"), None, Some(s("array"))),
            (s("HELLO"), None, Some(s("map"))),
            (s("GET"), Some(s("x")), Some(s("nil"))),
        ]
    );
}

#[test]
fn a_connection_joined_mid_reply_waits_for_the_next_command() {
    // The capture began inside a reply; the next command is read from its first byte.
    let steps = [(S, b"lue\r\n+OK\r\n".to_vec()), (C, cmd(&["GET", "k"])), (S, b"$1\r\nv\r\n".to_vec())];
    let records = run_on(&steps, false);
    assert_eq!(summary(&records), [(s("GET"), Some(s("k")), Some(s("bulk")), None)]);
    assert_eq!(records[0].client.port(), 40000);
}

#[test]
fn hostile_bytes_cost_their_stream_and_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        let mut bytes = cmd(&["SET", "k", "v"]);
        for _ in 0..(seed % 300) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed as u8);
        }
        let _ = run(&[(C, bytes.clone()), (S, bytes[3..].to_vec()), (C, bytes)]);
    }
}
