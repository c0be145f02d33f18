//! Downloads of a window, a selection or a session: JSON lines (the records as the API gives
//! them), HAR 1.2 (the HTTP and gRPC requests, for browser dev tools and HAR viewers), and pcapng
//! (the packets of the chosen connections, whole, with the interface and node in interface
//! comments and the connection and its pods in packet comments).

use std::collections::BTreeMap;
use std::io;

use podtap_shared::{Detail, Endpoint, Record};
use serde_json::{Value, json};

use crate::capture::write::PcapngWriter;
use crate::packets::{FlowKey, Found, Wanted, link_of};
use crate::timespec;

/// Margin around a connection's span for its handshake and last acknowledgements.
const SLACK_US: u64 = 1_000_000;

/// Whether a record's packets may leave: not when one side is hidden from the viewer (packets
/// carry that side's addresses, which the viewer may not see).
pub fn packets_shown(r: &Record) -> bool {
    !r.src.hidden && !r.dst.hidden
}

/// The connections among `records` whose packets are withheld (`packets_shown`).
pub fn withheld(records: &[Record]) -> u64 {
    let conns: std::collections::BTreeSet<u64> = records.iter().filter(|r| !packets_shown(r)).map(|r| r.conn).collect();
    conns.len() as u64
}

/// The flows (both legs of a rewritten connection) and spans of the records' connections,
/// of those whose packets may be shown.
pub fn flows(records: &[Record]) -> Vec<Wanted> {
    let mut spans: BTreeMap<(FlowKey, u64), (u64, u64)> = BTreeMap::new();
    for r in records.iter().filter(|r| packets_shown(r)) {
        let end = r.end_us.unwrap_or(r.ts + r.latency_us.unwrap_or(0)).max(r.ts);
        let starts = [Some(&r.src), r.proxy.as_deref(), r.snat.as_deref()];
        let ends = [Some(&r.dst), r.addressed.as_deref()];
        for a in starts.into_iter().flatten() {
            for b in ends.into_iter().flatten() {
                let span = spans.entry((FlowKey::new(socket(a), socket(b)), r.conn)).or_insert((r.ts, end));
                span.0 = span.0.min(r.ts);
                span.1 = span.1.max(end);
            }
        }
    }
    spans
        .into_iter()
        .map(|((flow, _), (from, to))| Wanted {
            flow,
            from_us: from.saturating_sub(SLACK_US),
            to_us: to.saturating_add(SLACK_US),
        })
        .collect()
}

fn socket(e: &Endpoint) -> std::net::SocketAddr {
    std::net::SocketAddr::new(e.ip, e.port)
}

/// One line per record, as `/api/v1/records` gives them.
pub fn jsonl(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        out.push_str(&serde_json::to_string(r).expect("records serialise"));
        out.push('\n');
    }
    out
}

fn endpoint_label(e: &Endpoint) -> String {
    match e.qualified_name() {
        Some(n) => format!("{n} ({}:{})", e.ip, e.port),
        None => format!("{}:{}", e.ip, e.port),
    }
}

/// The records' packets as a pcapng file: each interface named with its node in a comment, a
/// comment on every packet naming its connection.
pub fn pcapng(found: &Found, records: &[Record]) -> io::Result<Vec<u8>> {
    let frames = &found.frames;
    let mut about: BTreeMap<FlowKey, String> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.is_request()).chain(records.iter().filter(|r| r.is_request())) {
        let via = r.via.service.as_deref().map(|s| format!(" via {s}")).unwrap_or_default();
        let text = format!("podtap conn {}: {} → {}{via}", r.conn, endpoint_label(&r.src), endpoint_label(&r.dst));
        for w in flows(std::slice::from_ref(r)) {
            about.entry(w.flow).or_insert_with(|| text.clone());
        }
    }
    let mut w = PcapngWriter::new(Vec::new())?;
    // One pcapng interface per (interface, link) pair the frames use.
    let mut declared: BTreeMap<(u32, u16), u32> = BTreeMap::new();
    for f in frames {
        if let std::collections::btree_map::Entry::Vacant(slot) = declared.entry((f.interface, f.link)) {
            let iface = found.interfaces.get(f.interface as usize);
            let name = iface.and_then(|i| i.name.clone()).unwrap_or_else(|| format!("if{}", f.interface));
            let comment = match iface.and_then(|i| i.node.as_deref()) {
                Some(n) => format!("podtap: interface {name} on node {n}"),
                None => format!("podtap: interface {name}"),
            };
            slot.insert(w.add_interface_with(&name, link_of(f.link), 262_144, Some(&comment))?);
        }
    }
    for f in frames {
        let index = declared[&(f.interface, f.link)];
        let comment = about.get(&f.flow).map(String::as_str);
        w.write_packet_with(index, f.ts_us * 1000, f.data.len() as u32, &f.data, comment)?;
    }
    Ok(w.into_inner())
}

fn status_text(code: u16) -> &'static str {
    axum::http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

/// The HTTP and gRPC requests as a HAR 1.2 log.
pub fn har(records: &[Record]) -> Value {
    let entries: Vec<Value> = records.iter().filter_map(entry).collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "podtap", "version": env!("CARGO_PKG_VERSION") },
            "pages": [],
            "entries": entries,
            "comment": "Captured by podtap from packets: bodies are not kept, secrets are redacted."
        }
    })
}

fn entry(r: &Record) -> Option<Value> {
    let (method, path, status, headers, version) = match &r.detail {
        Detail::Http(h) => (
            h.method.to_string(),
            h.path.to_string(),
            h.status,
            h.headers.clone(),
            h.version.clone().unwrap_or("HTTP/1.1".into()),
        ),
        Detail::Grpc(g) => {
            ("POST".to_string(), g.path.clone(), g.status, podtap_shared::Headers::new(), "HTTP/2".to_string())
        }
        _ => return None,
    };
    let host = headers.get("host").or(headers.get(":authority")).map(str::to_string).unwrap_or_else(|| {
        match r.addressed.as_deref() {
            Some(a) => format!("{}:{}", a.ip, a.port),
            None => format!("{}:{}", r.dst.ip, r.dst.port),
        }
    });
    let path = if path.starts_with('/') { path } else { format!("/{path}") };
    let url = format!("http://{host}{path}");
    let query: Vec<Value> = path
        .split_once('?')
        .map(|(_, q)| q.split('&').filter(|kv| !kv.is_empty()))
        .into_iter()
        .flatten()
        .map(|kv| {
            let (n, v) = kv.split_once('=').unwrap_or((kv, ""));
            json!({ "name": n, "value": v })
        })
        .collect();
    let header_list: Vec<Value> = headers.iter().map(|(n, v)| json!({ "name": n, "value": v })).collect();
    let wait_ms = r.latency_us.map_or(0.0, |us| us as f64 / 1000.0);
    let mut comment = format!(
        "podtap record {} on connection {}: {} → {}",
        r.id,
        r.conn,
        endpoint_label(&r.src),
        endpoint_label(&r.dst)
    );
    if let Some(svc) = r.via.service.as_deref() {
        comment.push_str(&format!(" via {svc}"));
    }
    if r.probe {
        comment.push_str(" (probe)");
    }
    Some(json!({
        "startedDateTime": timespec::format_time(r.ts),
        "time": wait_ms,
        "request": {
            "method": method,
            "url": url,
            "httpVersion": version,
            "cookies": [],
            "headers": header_list,
            "queryString": query,
            "headersSize": -1,
            "bodySize": r.request_size,
        },
        "response": {
            // 0: no response was seen (HAR's convention for a request without one).
            "status": status.unwrap_or(0),
            "statusText": status.map(status_text).unwrap_or(""),
            "httpVersion": version,
            "cookies": [],
            "headers": [],
            "content": { "size": r.response_size, "mimeType": "" },
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": if status.is_some() { r.response_size as i64 } else { -1 },
        },
        "cache": {},
        "timings": { "send": 0, "wait": wait_ms, "receive": 0 },
        "serverIPAddress": r.dst.ip.to_string(),
        "connection": r.conn.to_string(),
        "comment": comment,
    }))
}
