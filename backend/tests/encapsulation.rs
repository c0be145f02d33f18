//! Link types and tunnels, from packets built here with etherparse: one HTTP exchange in BSD
//! loopback captures (NULL, LOOP) and inside VXLAN, Geneve, IP in IP (all four ways) and GRE, each
//! found with its inner addresses and its tunnel; and a link type podtap does not read, said so.

mod common;

use common::packets::{ethernet, http_conversation, pcap};
use etherparse::{IpNumber, PacketBuilder};
use podtap::capture::CaptureFile;
use podtap::engine::Engine;
use podtap::resolve::ClusterState;
use podtap_shared::{Record, TunnelKind};
use std::sync::Arc;

const CLIENT: ([u8; 4], u16) = ([10, 244, 1, 5], 40000);
const SERVER: ([u8; 4], u16) = ([10, 244, 2, 7], 8080);

/// One TCP connection's packets (IPv4 with TCP, no link header): handshake, GET, 200, close.
fn conversation() -> Vec<Vec<u8>> {
    let req = b"GET /through-the-tunnel HTTP/1.1\r\nHost: api\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    http_conversation(CLIENT, SERVER, req, resp)
}

/// The same IPv4 packet as IPv6 (addresses mapped into 2001:db8::/96), for 4in6 and 6in6.
fn as_ipv6(v4: &[u8]) -> Vec<u8> {
    let (ip, _) = etherparse::Ipv4Slice::from_slice(v4).map(|s| (s, ())).unwrap();
    let tcp = etherparse::TcpSlice::from_slice(ip.payload().payload).unwrap();
    let map = |a: [u8; 4]| {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b[12..].copy_from_slice(&a);
        b
    };
    let mut b = PacketBuilder::ipv6(map(ip.header().source()), map(ip.header().destination()), 64).tcp(
        tcp.source_port(),
        tcp.destination_port(),
        tcp.sequence_number(),
        tcp.window_size(),
    );
    if tcp.syn() {
        b = b.syn();
    }
    if tcp.fin() {
        b = b.fin();
    }
    if tcp.ack() {
        b = b.ack(tcp.acknowledgment_number());
    }
    let mut out = Vec::new();
    b.write(&mut out, tcp.payload()).unwrap();
    out
}

const NODE_A: [u8; 4] = [192, 168, 49, 2];
const NODE_B: [u8; 4] = [192, 168, 49, 3];

/// An outer IPv4 packet between the nodes carrying `payload` as `protocol`, in Ethernet.
fn outer_ip(protocol: IpNumber, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 3], [2, 0, 0, 0, 0, 4])
        .ipv4(NODE_A, NODE_B, 64)
        .write(&mut out, protocol, payload)
        .unwrap();
    out
}

fn outer_udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 3], [2, 0, 0, 0, 0, 4])
        .ipv4(NODE_A, NODE_B, 64)
        .udp(51000, dst_port)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn records(file: &CaptureFile) -> (Vec<Record>, podtap::engine::EngineStats) {
    // Sharded by connection, a tunnel's packets land with their inner connection's.
    let (mut out, stats) = common::sharded_alike(file, || Engine::new(Arc::new(ClusterState::default())));
    out.retain(Record::is_request);
    (out, stats)
}

/// The one exchange of `file`: GET /through-the-tunnel → 200 between the inner addresses.
fn the_exchange(file: &CaptureFile) -> Record {
    let (records, stats) = records(file);
    assert_eq!(records.len(), 1, "{records:?} {stats:?}");
    let r = records.into_iter().next().unwrap();
    let h = r.http().expect("HTTP");
    assert_eq!((h.path.as_str(), h.status), ("/through-the-tunnel", Some(200)));
    assert_eq!((r.src.port, r.dst.port), (CLIENT.1, SERVER.1));
    r
}

#[test]
fn bsd_loopback_captures_null_and_loop() {
    // NULL: AF_INET in host order (little-endian here); LOOP: AF_INET6 (30, as macOS) in network order.
    let null: Vec<Vec<u8>> = conversation().iter().map(|p| [&2u32.to_le_bytes()[..], p].concat()).collect();
    let r = the_exchange(&pcap(0, &null));
    assert_eq!(r.src.ip.to_string(), "10.244.1.5");
    let lo: Vec<Vec<u8>> = conversation().iter().map(|p| [&30u32.to_be_bytes()[..], &as_ipv6(p)].concat()).collect();
    let r = the_exchange(&pcap(108, &lo));
    assert_eq!(r.src.ip.to_string(), "2001:db8::af4:105");
    assert!(r.tunnel.is_none());
}

#[test]
fn vxlan_and_geneve_between_nodes() {
    for (port, kind) in [(4789, TunnelKind::Vxlan), (8472, TunnelKind::Vxlan)] {
        let frames: Vec<Vec<u8>> = conversation()
            .iter()
            .map(|p| outer_udp(port, &[&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &ethernet(0x0800, p)].concat()))
            .collect();
        let t = the_exchange(&pcap(1, &frames)).tunnel.expect("seen in a tunnel");
        assert_eq!((t.kind, t.vni), (kind, Some(1)), "port {port}");
        assert_eq!((t.outer_src.to_string(), t.outer_dst.to_string()), ("192.168.49.2".into(), "192.168.49.3".into()));
    }
    // Geneve with one option word, carrying Ethernet; then carrying IP directly.
    let geneve = |proto: u16, inner: &[u8]| {
        [&[0x01, 0][..], &proto.to_be_bytes(), &[0, 0, 42, 0], &[0, 0x01, 0x01, 0], inner].concat()
    };
    let frames: Vec<Vec<u8>> =
        conversation().iter().map(|p| outer_udp(6081, &geneve(0x6558, &ethernet(0x0800, p)))).collect();
    let t = the_exchange(&pcap(1, &frames)).tunnel.unwrap();
    assert_eq!((t.kind, t.vni), (TunnelKind::Geneve, Some(42)));
    let frames: Vec<Vec<u8>> = conversation().iter().map(|p| outer_udp(6081, &geneve(0x0800, p))).collect();
    assert_eq!(the_exchange(&pcap(1, &frames)).tunnel.unwrap().kind, TunnelKind::Geneve);
}

#[test]
fn ip_in_ip_every_way_and_gre() {
    // 4in4 (Calico IPIP), 6in4.
    let frames: Vec<Vec<u8>> = conversation().iter().map(|p| outer_ip(IpNumber::IPV4, p)).collect();
    assert_eq!(the_exchange(&pcap(1, &frames)).tunnel.unwrap().kind, TunnelKind::Ipip);
    let frames: Vec<Vec<u8>> = conversation().iter().map(|p| outer_ip(IpNumber::IPV6, &as_ipv6(p))).collect();
    let r = the_exchange(&pcap(1, &frames));
    assert_eq!((r.tunnel.unwrap().kind, r.dst.ip.is_ipv6()), (TunnelKind::Ipip, true));
    // 4in6 and 6in6, as raw IP captures.
    let outer6 = |next: IpNumber, inner: &[u8]| {
        let mut out = Vec::new();
        PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64).write(&mut out, next, inner).unwrap();
        out
    };
    let frames: Vec<Vec<u8>> = conversation().iter().map(|p| outer6(IpNumber::IPV4, p)).collect();
    let t = the_exchange(&pcap(101, &frames)).tunnel.unwrap();
    assert_eq!((t.kind, t.outer_src.to_string()), (TunnelKind::Ipip, "fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd".into()));
    let frames: Vec<Vec<u8>> = conversation().iter().map(|p| outer6(IpNumber::IPV6, &as_ipv6(p))).collect();
    assert!(the_exchange(&pcap(101, &frames)).tunnel.is_some());
    // GRE with a key, carrying IPv4; and carrying Ethernet (transparent bridging).
    let gre = |proto: u16, inner: &[u8]| [&[0x20, 0][..], &proto.to_be_bytes(), &[0, 0, 0, 9], inner].concat();
    let frames: Vec<Vec<u8>> = conversation().iter().map(|p| outer_ip(IpNumber::GRE, &gre(0x0800, p))).collect();
    let t = the_exchange(&pcap(1, &frames)).tunnel.unwrap();
    assert_eq!((t.kind, t.vni), (TunnelKind::Gre, Some(9)));
    let frames: Vec<Vec<u8>> =
        conversation().iter().map(|p| outer_ip(IpNumber::GRE, &gre(0x6558, &ethernet(0x0800, p)))).collect();
    assert_eq!(the_exchange(&pcap(1, &frames)).tunnel.unwrap().kind, TunnelKind::Gre);
}

#[test]
fn a_link_type_podtap_does_not_read_is_said_plainly() {
    let frames: Vec<Vec<u8>> = conversation();
    let (records, stats) = records(&pcap(239, &frames));
    assert!(records.is_empty());
    let lines = podtap::analyze::unsupported_lines(&stats);
    assert_eq!(lines, ["podtap: 6 frames of link type 239 (NFLOG) skipped: not supported"]);
}
