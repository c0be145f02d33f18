//! Any bytes as a stream of observations for the merger (each 8 bytes: client, destination,
//! path, time step, kind and TCP sequence number (or none) chosen from small sets, so partners
//! exist): every observation comes out exactly once, merged or alone, whatever the order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podtap::correlate::merge::Merger;
use podtap::resolve::ClusterState;
use podtap_shared::{Detail, Endpoint, EndpointKind, HttpExchange, Record, Via, ViaKind};

fn endpoint(ip: [u8; 4], port: u16, kind: EndpointKind) -> Endpoint {
    Endpoint { kind, ..Endpoint::unknown(ip.into(), port) }
}

fuzz_target!(|data: &[u8]| {
    let cluster = ClusterState::default();
    let mut merger = Merger::default();
    let mut out = Vec::new();
    let (mut pushed, mut now) = (0u64, 0u64);
    for (i, b) in data.chunks_exact(8).enumerate() {
        now += u64::from(b[3]) * 10_000;
        let src = endpoint([10, 0, 0, b[0] % 4], 40000 + u16::from(b[1] % 4), [EndpointKind::Pod, EndpointKind::Node, EndpointKind::External][b[6] as usize % 3]);
        let dst_kind = [EndpointKind::Service, EndpointKind::Pod][b[2] as usize % 2];
        let dst = endpoint([10, 96, 0, b[2] % 3], 80 + u16::from(b[2] % 2), dst_kind);
        let via = match b[7] % 4 {
            0 => Via { kind: ViaKind::ClusterIp, service: Some("default/web".into()) },
            1 => Via { kind: ViaKind::NodePort, service: Some("default/web".into()) },
            _ => Via::UNKNOWN,
        };
        let http = HttpExchange { method: "GET".into(), path: format!("/{}", b[4] % 3).into(), ..Default::default() };
        let record = Record {
            id: i as u64 + 1,
            ts: now,
            conn: u64::from(b[5] % 8),
            src,
            dst,
            via,
            probe: b[7] & 0x80 != 0,
            seq: (b[5] & 0x40 != 0).then_some(u32::from(b[5] >> 6)),
            detail: Detail::Http(http),
            ..Record::test()
        };
        pushed += 1;
        merger.push(Box::new(record), now, &cluster, &mut out);
        merger.flush_due(now, &mut out);
    }
    merger.flush_all(&mut out);
    let observations: u64 = out.iter().map(|r| u64::from(r.observations)).sum();
    assert_eq!(observations, pushed, "every observation comes out once");
});
