//! External peers named by what the traffic said: a pod asks DNS for `api.partner.example`, gets
//! two addresses, and calls both; a third address nobody resolved, called by its address, stays
//! an address; a fourth nobody resolved here, called by a host name, is named by it. From packets
//! built here with etherparse, through the whole engine with the demo's cluster state; then the
//! map's label and the folded box (`external:NAME`) that the filter's `edge:` term agrees with.

mod common;

use common::packets::{ethernet, http_conversation, pcap};
use etherparse::PacketBuilder;
use podtap::engine::Engine;
use podtap_shared::group::{external_group, on_edge};
use podtap_shared::{EndpointKind, MapBuilder, Record};

const NAME: &str = "api.partner.example";
const ANSWERS: [[u8; 4]; 2] = [[203, 0, 113, 10], [198, 51, 100, 20]];
const UNNAMED: [u8; 4] = [192, 0, 2, 99];
/// Resolved before the capture began: only its requests' `Host` names it.
const BY_HOST: ([u8; 4], &str) = ([192, 0, 2, 150], "legacy.partner.example");
const KUBE_DNS: ([u8; 4], u16) = ([10, 96, 0, 10], 53);

/// The first pod of the demo's cluster file, and its address.
fn a_pod() -> [u8; 4] {
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::demo_dir().join("cluster.json")).unwrap()).unwrap();
    let ip = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "Pod")
        .find_map(|o| o["status"]["podIP"].as_str())
        .expect("a pod with an address");
    ip.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A DNS query for `NAME` (A), or its answer with both addresses.
fn dns(answer: bool) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, if answer { 0x81 } else { 0x01 }, if answer { 0x80 } else { 0x00 }, 0, 1];
    m.extend([0, if answer { ANSWERS.len() as u8 } else { 0 }, 0, 0, 0, 0]);
    for label in NAME.split('.') {
        m.push(label.len() as u8);
        m.extend(label.as_bytes());
    }
    m.extend([0, 0, 1, 0, 1]);
    if answer {
        for ip in ANSWERS {
            m.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend(ip);
        }
    }
    m
}

/// One TCP connection from `client` to `server`:80, in Ethernet: handshake, GET (to `host`), 200,
/// close.
fn conversation(client: ([u8; 4], u16), server: [u8; 4], host: &str) -> Vec<Vec<u8>> {
    let req = format!("GET /pay HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    http_conversation(client, (server, 80), req.as_bytes(), resp).iter().map(|p| ethernet(0x0800, p)).collect()
}

#[test]
fn addresses_a_dns_answer_gave_are_named_by_it_and_fold_into_one_box() {
    let pod = a_pod();
    let mut frames = vec![udp((pod, 41000), KUBE_DNS, &dns(false)), udp(KUBE_DNS, (pod, 41000), &dns(true))];
    for (k, ip) in ANSWERS.iter().enumerate() {
        frames.extend(conversation((pod, 42000 + k as u16), *ip, NAME));
    }
    frames.extend(conversation((pod, 42010), UNNAMED, "192.0.2.99"));
    frames.extend(conversation((pod, 42011), BY_HOST.0, BY_HOST.1));
    let mut engine = Engine::new(common::cluster(&common::demo_dir()));
    let mut records = Vec::new();
    engine.run_file(&pcap(1, &frames), |b| records.append(b)).unwrap();
    let calls: Vec<&Record> = records.iter().filter(|r| r.http().is_some()).collect();
    assert_eq!(calls.len(), 4, "{records:#?}");
    let mut map = MapBuilder::new();
    for r in &records {
        map.add(r);
    }
    let map = map.build();
    for r in &calls {
        assert_eq!(r.dst.kind, EndpointKind::External, "{r:?}");
        let name = if ANSWERS.iter().any(|a| r.dst.ip == std::net::IpAddr::from(*a)) {
            Some(NAME)
        } else if r.dst.ip == std::net::IpAddr::from(BY_HOST.0) {
            Some(BY_HOST.1)
        } else {
            None
        };
        assert_eq!(r.dst.name.as_deref(), name, "{}", r.dst.ip);
        let node = map.nodes.iter().find(|n| n.id == r.dst.map_id()).unwrap();
        assert_eq!(node.label, name.map_or_else(|| r.dst.ip.to_string(), str::to_string));
        let group = external_group(r.dst.ip, r.dst.name.as_deref());
        assert_eq!(group, name.map_or_else(|| "external:192.0.2.0/24".to_string(), |n| format!("external:{n}")));
        assert!(on_edge(r, &r.src.map_id(), &group));
    }
    // The map's box for the name holds exactly the two calls to its addresses.
    let into_name = calls.iter().filter(|r| on_edge(r, "*", &format!("external:{NAME}"))).count();
    assert_eq!(into_name, 2);
}
