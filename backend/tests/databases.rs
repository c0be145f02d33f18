//! podtap against real servers (end2end/lab/postgres.sh, redis.sh, mysql.sh and websocket.sh, run
//! by the test command): every request the server logged is one record, on its connection, with
//! its operation and its error, connections joined mid-stream included; a WebSocket session is
//! one record of what each side sent — and none of the values the clients sent is in any record.
//! Each server is a pod behind a Service (end2end/lab/tier.sh): every record names the client
//! pod, the Service it went through and the pod that answered, and Redis' two replicas, one of
//! them pinned by sessionAffinity, are balanced as their own feeds say.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::server_logs::{Feed, Logged, general_log, logged, mysql, mysql_sessions, recorded, redis_monitor, sql};
use podtap::aggregate::balance::BalanceBuilder;
use podtap::resolve::load_files;
use podtap_shared::{Detail, Record, SqlExchange, ViaKind};

fn lab_dir() -> PathBuf {
    PathBuf::from(std::env::var("PODTAP_DB_DIR").expect("PODTAP_DB_DIR: run by `cargo xtask test` after the lab"))
}

/// The Execute messages a client sent after the one of the statement containing `marker`, up to
/// its next Sync, as tshark's PostgreSQL dissector reads the capture.
fn executes_after(marker: &str, pcap: &Path) -> u32 {
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(pcap)
        .args(["-d", "tcp.port==5432,pgsql", "-Y", "pgsql && tcp.dstport == 5432", "-T", "fields"])
        .args(["-e", "tcp.stream", "-e", "pgsql.type", "-e", "pgsql.query", "-E", "separator=|"])
        .output()
        .expect("tshark runs");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    let at = frames.iter().position(|f| f.get(2).is_some_and(|q| q.contains(marker))).expect("the statement");
    let stream = frames[at][0];
    let mut executes = 0;
    for f in frames[at..].iter().filter(|f| f[0] == stream) {
        let types: Vec<&str> = f[1].split(',').collect();
        executes += types.iter().filter(|t| **t == "Execute").count() as u32;
        if types.contains(&"Sync") {
            break;
        }
    }
    executes - 1
}

/// Every record of a lab's capture, requests and connections, as `podtap analyze` makes them with
/// the tier's List.
fn analyze(name: &str) -> Vec<Record> {
    let dir = lab_dir();
    common::analyze_in_step(&dir.join(name), &dir.join("db-cluster.json"))
}

/// Every record is the client pod's, through the Service, answered by one of its `servers` (the
/// pods of end2end/lab/db_tier.py), and seen on both sides of the node's rules: the client's veth
/// (to the ClusterIP) and the server's (to the pod).
fn behind_service(records: &[Record], client: &str, service: &str, servers: &[&str]) {
    assert!(!records.is_empty());
    for r in records {
        assert_eq!(r.src.qualified_name().as_deref(), Some(client), "{r:?}");
        assert_eq!((r.via.kind, r.via.service.as_deref()), (ViaKind::ClusterIp, Some(service)), "{r:?}");
        assert!(r.dst.qualified_name().is_some_and(|d| servers.contains(&d.as_str())), "{r:?}");
        assert_eq!(r.observations, 2, "the client's veth and the server's: {r:?}");
    }
}

#[test]
#[ignore = "needs the PostgreSQL lab: cargo xtask test runs it after end2end/lab/postgres.sh"]
fn every_request_postgres_logged_is_one_record_with_its_operation_and_sqlstate() {
    let dir = lab_dir();
    let truth = logged(&dir.join("logs/postgres.log"));
    assert_eq!(truth.keys().collect::<Vec<_>>(), ["a", "b", "c"], "each session's mark in the log");
    let records = analyze("postgres.pcapng");
    behind_service(&records, "shop/orders-6c9f7d8b5-q7w2x", "data/postgres", &["data/postgres-0"]);
    let seen = recorded(&records);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["a", "b", "c"], "each session's mark in the capture");
    for (mark, logged) in &truth {
        let mine = &seen[mark];
        let got: Vec<Logged> =
            mine.iter().map(|r| (sql(r).unwrap().operation.clone(), sql(r).unwrap().error.clone())).collect();
        assert_eq!(&got, logged, "session {mark}: every logged request, in order, with its SQLSTATE");
        for r in mine {
            assert!(r.latency_us.is_some(), "answered: {r:?}");
            assert_eq!(r.dst.port, 5432);
        }
    }
    // Joined mid-stream: `a`'s statement was prepared before the capture began.
    let a = &seen["a"];
    let unknown: Vec<&&Record> = a.iter().filter(|r| sql(r).unwrap().statement.is_none()).collect();
    assert_eq!(unknown.len(), 20, "a's executions of a statement whose Parse came before the capture");
    assert!(unknown.iter().all(|r| r.detail.request_line() == "SELECT _pg3_0 (statement: unknown)"));
    // b's sixth INSERT onwards: psycopg prepared it, in the capture this time.
    let b = &seen["b"];
    let inserts: Vec<&SqlExchange> = b.iter().filter_map(|r| sql(r)).filter(|q| q.operation == "INSERT").collect();
    assert_eq!(inserts.len(), 10);
    assert!(inserts.iter().all(|q| q.statement.as_deref() == Some("INSERT INTO items (id, name) VALUES ($1, $2)")));
    assert!(inserts.iter().all(|q| q.rows == Some(1)));
    // c's pipeline that failed: the two requests the server skipped are counted on the failure.
    let c = &seen["c"];
    let failed: Vec<&SqlExchange> = c.iter().filter_map(|r| sql(r)).filter(|q| q.error.is_some()).collect();
    assert_eq!(failed.len(), 1);
    // How many of the pipeline's later requests the client still sent before its Sync depends on
    // when psycopg read the error (it stops sending then): Wireshark's own PostgreSQL dissector
    // says how many were on the wire.
    let skipped = executes_after("missing_in_pipeline", &dir.join("postgres.pcapng"));
    assert_eq!((failed[0].error.as_deref(), failed[0].skipped), (Some("42P01"), skipped));
    let copy = c.iter().filter_map(|r| sql(r)).find(|q| q.operation == "COPY").expect("the COPY");
    assert_eq!(copy.rows, Some(5));
    // What the client sent as values is nowhere in what podtap made of it.
    let text = serde_json::to_string(&records).unwrap();
    for secret in ["secret-name", "copied-secret", "renamed", "inline-secret"] {
        assert!(!text.contains(secret), "`{secret}` left the node");
    }
}

#[test]
#[ignore = "needs the Redis lab: cargo xtask test runs it after end2end/lab/redis.sh"]
fn every_command_redis_ran_is_one_record_with_its_key_and_reply() {
    let dir = lab_dir();
    // Each replica's own feed; kube-proxy's affinity sent every connection to one of them.
    let replicas = ["data/redis-5f6d7c8b9-h2j4k", "data/redis-5f6d7c8b9-t6v8w"];
    let feeds: BTreeMap<&str, Feed> = replicas
        .iter()
        .map(|p| (*p, redis_monitor(&dir.join(format!("logs/{}-monitor.log", &p[5..])), "10.251.1.1")))
        .collect();
    let busy: Vec<&str> = feeds.iter().filter(|(_, f)| !f.is_empty()).map(|(p, _)| *p).collect();
    assert_eq!(busy.len(), 1, "sessionAffinity: ClientIP sends the client's connections to one replica: {feeds:?}");
    let (busy, idle) = (busy[0], replicas.into_iter().find(|p| *p != busy[0]).unwrap());
    let feed = &feeds[busy];
    let all = analyze("redis.pcapng");
    behind_service(&all, "shop/cart-7b8c9d6f5-k3m9p", "data/redis", &[busy]);
    let mut by_port: BTreeMap<u16, Vec<&Record>> = BTreeMap::new();
    for r in all.iter().filter(|r| r.redis().is_some()) {
        by_port.entry(r.src.port).or_default().push(r);
    }
    // A connection's commands from the capture's start: those from its mark on, or all of them
    // when the capture saw it open.
    let opened: Vec<u16> = all.iter().filter(|r| r.tcp().is_some_and(|t| t.handshake)).map(|r| r.src.port).collect();
    let mut compared = 0;
    for (port, commands) in feed {
        let from =
            match commands.iter().position(|(c, k)| c == "GET" && k.as_deref().is_some_and(|k| k.starts_with("mark:")))
            {
                Some(at) => at,
                None if opened.contains(port) => 0,
                None => continue,
            };
        let want = &commands[from..];
        let got: Vec<(String, Option<String>)> = by_port
            .get(port)
            .map(|rs| rs.iter().map(|r| r.redis().unwrap()).map(|x| (x.command.clone(), x.key.clone())).collect())
            .unwrap_or_default();
        assert_eq!(&got, want, "connection from port {port}: every command the server ran, in order");
        compared += want.len();
        for r in &by_port[port] {
            assert!(r.latency_us.is_some(), "answered: {r:?}");
        }
    }
    assert_eq!(compared, all.iter().filter(|r| r.redis().is_some()).count(), "no record the feed does not have");
    assert!(compared >= 60, "the scenario's commands: {compared}");
    // The two errors the client provoked, by their prefixes; MULTI's commands queued.
    let errors: Vec<(&str, &str)> =
        all.iter().filter_map(Record::redis).filter_map(|x| Some((x.command.as_str(), x.error.as_deref()?))).collect();
    assert_eq!(errors, [("LPUSH", "WRONGTYPE"), ("INCRBY", "ERR")]);
    let queued: Vec<&str> =
        all.iter().filter_map(Record::redis).filter(|x| x.queued).map(|x| x.command.as_str()).collect();
    assert_eq!(queued, ["INCRBY", "EXPIRE", "GET"]);
    // The subscriber's messages are not records; its SUBSCRIBE and UNSUBSCRIBE are.
    let sub: Vec<&str> = all
        .iter()
        .filter_map(Record::redis)
        .filter(|x| x.command.ends_with("SUBSCRIBE"))
        .map(|x| x.command.as_str())
        .collect();
    assert_eq!(sub, ["SUBSCRIBE", "UNSUBSCRIBE"]);
    // The balance: every request and connection on the busy replica, the idle one named with
    // nothing, and the cause said.
    let mut balance = BalanceBuilder::default();
    all.iter().for_each(|r| balance.add(r));
    let cluster = load_files(&[dir.join("db-cluster.json")]).unwrap();
    let b = balance.balance("data/redis", &cluster).expect("redis's balance");
    let row = |pod: &str| b.endpoints.iter().find(|e| e.pod.as_deref() == Some(pod)).expect("a row per replica");
    let connections = by_port.len() as u64;
    assert_eq!((row(busy).requests, row(busy).connections), (compared as u64, connections), "{b:?}");
    assert_eq!((row(idle).requests, row(idle).connections), (0, 0), "{b:?}");
    assert_eq!(b.skew, 1.0);
    let cause = b.cause.as_deref().expect("a cause for the skew");
    assert!(
        cause.contains(&format!("went to {}", &busy[5..])) && cause.contains("sessionAffinity: ClientIP"),
        "{cause}"
    );
    let text = serde_json::to_string(&all).unwrap();
    for secret in ["secret-value", "secret-message", "secret-item"] {
        assert!(!text.contains(secret), "`{secret}` left the node");
    }
}

#[test]
#[ignore = "needs the MariaDB lab: cargo xtask test runs it after end2end/lab/mysql.sh"]
fn every_command_mariadb_logged_is_one_record_and_prepared_statements_keep_their_ids() {
    let dir = lab_dir();
    let truth = general_log(&dir.join("logs/mysql-general.log"));
    assert_eq!(truth.keys().collect::<Vec<_>>(), ["a", "b"], "each session's mark in the log");
    let all = analyze("mysql.pcapng");
    behind_service(&all, "shop/billing-5d7e8f9a6-r4s5t", "data/mariadb", &["data/mariadb-0"]);
    let seen = mysql_sessions(&all);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["a", "b"], "each session's mark in the capture");
    for (mark, logged) in &truth {
        assert_eq!(&seen[mark].0, logged, "session {mark}: every logged command, in order");
    }
    // The statement prepared before the capture: executed by its id, its text unknown; the one
    // prepared after: its text on every execution and its close.
    let a = &seen["a"].1;
    let unknown: Vec<&SqlExchange> = a
        .iter()
        .filter_map(|r| mysql(r))
        .filter(|q| q.prepared.is_some() && q.statement.is_none() && q.operation == "EXECUTE")
        .collect();
    assert_eq!(unknown.len(), 10);
    assert!(unknown.iter().all(|q| q.rows == Some(1)));
    let update = a.iter().filter_map(|r| mysql(r)).find(|q| q.operation == "UPDATE").expect("the prepared UPDATE");
    assert_eq!(update.statement.as_deref(), Some("UPDATE items SET name = ? WHERE id = ?"));
    let errors: Vec<(&str, Option<u16>)> =
        all.iter().filter_map(mysql).filter_map(|q| Some((q.error.as_deref()?, q.error_code))).collect();
    assert_eq!(errors, [("42S02", Some(1146)), ("42000", Some(1064))], "a missing table, a syntax error");
    for r in a.iter().chain(seen["b"].1.iter()) {
        let closing = mysql(r).is_some_and(|q| q.operation == "CLOSE STMT");
        assert_eq!(r.latency_us.is_some(), !closing, "answered unless a COM_STMT_CLOSE: {r:?}");
    }
    let text = serde_json::to_string(&all).unwrap();
    for secret in ["secret-name", "secret-renamed"] {
        assert!(!text.contains(secret), "`{secret}` left the node");
    }
}

#[test]
#[ignore = "needs the WebSocket lab: cargo xtask test runs it after end2end/lab/websocket.sh"]
fn a_websocket_session_is_one_record_with_what_each_side_sent_and_how_it_closed() {
    let dir = lab_dir();
    let log = std::fs::read_to_string(dir.join("logs/websocket-server.log")).expect("the server's log");
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let count = |key: &str, kind: &str| lines.iter().filter(|l| l[key] == kind).count() as u64;
    let size =
        |key: &str| lines.iter().filter(|l| l.get(key).is_some()).map(|l| l["size"].as_u64().unwrap()).sum::<u64>();
    let close = lines.iter().find(|l| l.get("close_code").is_some()).expect("the close the server got");
    let all = analyze("websocket.pcapng");
    behind_service(&all, "shop/chat-client-8f9a6b7c5-x5y6z", "shop/chat", &["shop/chat-6a7b8c9d4-m1n2p"]);
    let ws: Vec<&podtap_shared::WebSocketExchange> = all
        .iter()
        .filter_map(|r| match &r.detail {
            Detail::Websocket(w) => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(ws.len(), 1, "one record for the one session");
    let w = ws[0];
    assert_eq!(w.subprotocol.as_deref(), Some("chat"));
    assert_eq!(
        (w.client.text, w.client.binary),
        (count("received", "text"), count("received", "binary")),
        "what the server received"
    );
    assert_eq!(
        (w.server.text, w.server.binary),
        (count("sent", "text"), count("sent", "binary")),
        "what the server sent"
    );
    // Payload bytes: the messages, and the ping's, pong's and close's own.
    assert!(w.client.bytes >= size("received") && w.client.bytes <= size("received") + 4 + 125 + 125, "{w:?}");
    assert_eq!((w.client.ping, w.server.pong), (1, 1));
    assert_eq!(w.close_code, close["close_code"].as_u64().map(|c| c as u16));
    assert_eq!(w.close_reason.as_deref(), close["close_reason"].as_str());
    assert_eq!(w.closed_by.as_deref(), Some("client"));
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("secret-"), "a message's payload left the node");
}
