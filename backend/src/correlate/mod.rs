//! Stage 6, correlate: a dissected exchange + cluster state → a `Record` with named endpoints, the
//! path it took and whether it was a kubelet probe. Pure: no IO, no clock.
//! `merge` then makes one record of the observations of one request on several interfaces;
//! `socket_lb` counts a call a socket-level load balancer translated before the wire for its
//! Service; `late` names again what left before the cluster state knew a new pod's address.

mod due;
pub mod late;
pub mod merge;
pub mod socket_lb;

use podtap_shared::{EndpointKind, Name, Record, Via, ViaKind};

use crate::dissect::Exchange;
use crate::resolve::ClusterState;

/// The User-Agent prefix every kubelet HTTP probe sends.
const PROBE_AGENT: &str = "kube-probe/";

/// Turns one exchange into a record.
pub fn record(ex: Exchange, id: u64, interface: Option<&Name>, cluster: &ClusterState) -> Record {
    // Named as they were when the request was made: an IP a new pod took over later keeps the
    // old owner's name for traffic from before.
    // Behind a PROXY protocol header the real client is the one it names; the peer that sent it
    // (a load balancer, an ingress) is kept as `proxy`.
    // No address changes hands while a connection lasts (a pod's sockets die with it), so its
    // ends are named as of its opening: a request made in the second its client pod ended, and
    // another pod took the address over, is the old pod's though the timestamps say only the
    // second.
    let at = ex.opened_us.map_or(ex.ts_us, |o| o.min(ex.ts_us));
    let client = ex.proxied.as_deref().copied().unwrap_or(ex.client);
    let src = cluster.resolve_source_at(client.ip(), client.port(), at);
    let proxy = ex.proxied.as_ref().map(|_| Box::new(cluster.resolve_source_at(ex.client.ip(), ex.client.port(), at)));
    // A kubelet probe: its User-Agent, or — when a probe sets its own — a request from the node
    // for exactly the port and path of one of the pod's httpGet probes.
    let probe = ex.http().is_some_and(|h| {
        h.headers.get("user-agent").is_some_and(|ua| ua.starts_with(PROBE_AGENT))
            || (src.kind == EndpointKind::Node
                && cluster.is_probe(ex.server.ip(), ex.server.port(), &h.path, Some(ex.ts_us)))
    });
    let dst = cluster.resolve_at(ex.server.ip(), ex.server.port(), at);
    let mut via = cluster.via(ex.server.ip(), ex.server.port());
    // Kubelet probes the pod IP itself; a connection seen unrewritten on several interfaces (both
    // pods' veths) was addressed to the pod.
    // So does a node talking to a pod's own address (the connections of kubelet's probes).
    let node_to_pod = matches!(ex.detail, podtap_shared::Detail::Tcp(_)) && src.kind == EndpointKind::Node;
    if via.kind == ViaKind::Unknown && late::addressed_to_pod(probe, ex.points > 1 || node_to_pod, &dst) {
        via = Via { kind: ViaKind::Direct, service: None };
    }
    Record {
        id,
        ts: ex.ts_us,
        conn: ex.conn,
        src,
        dst,
        via,
        probe,
        observations: u32::from(ex.points.max(1)),
        interface: interface.cloned(),
        nodes: Vec::new(),
        tunnel: ex.tunnel,
        proxy,
        addressed: None,
        snat: None,
        latency_us: ex.response_ts_us.map(|r| r.saturating_sub(ex.ts_us)),
        end_us: match &ex.detail {
            // A connection still open has no end yet.
            podtap_shared::Detail::Tcp(_) => ex.end_us,
            _ => Some(ex.end_us.unwrap_or(0).max(ex.ts_us).max(ex.response_ts_us.unwrap_or(0))),
        },
        request_size: ex.request_size,
        response_size: ex.response_size,
        seq: ex.seq,
        detail: ex.detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podtap_shared::{Detail, EndpointKind, HttpExchange};

    /// 2027-01-15: after the lab pods were created.
    const LAB_TIME: u64 = 1_800_000_000_000_000;

    fn exchange(ua: &str) -> Exchange {
        let mut http =
            HttpExchange { method: "GET".into(), path: "/health".into(), status: Some(200), ..Default::default() };
        http.headers.insert("user-agent", ua);
        Exchange {
            conn: 3,
            opened_us: None,
            interface: 0,
            points: 1,
            tunnel: None,
            proxied: None,
            client: "10.0.0.1:1".parse().unwrap(),
            server: "10.0.0.2:2".parse().unwrap(),
            ts_us: LAB_TIME,
            response_ts_us: Some(LAB_TIME + 750),
            end_us: None,
            request_size: 10,
            response_size: 20,
            seq: None,
            detail: Detail::Http(http),
        }
    }

    #[test]
    fn probes_are_flagged_and_direct() {
        let r = record(exchange("kube-probe/1.31"), 9, Some(&"veth1".into()), &ClusterState::default());
        assert!(r.probe);
        assert_eq!(r.via.kind, ViaKind::Direct);
        assert_eq!((r.id, r.conn, r.latency_us, r.interface.as_deref()), (9, 3, Some(750), Some("veth1")));
        assert_eq!(r.src.kind, EndpointKind::Unknown);
        let r = record(exchange("curl/8"), 9, None, &ClusterState::default());
        assert!(!r.probe);
        assert_eq!(r.via.kind, ViaKind::Unknown);
    }

    #[test]
    fn a_probe_with_its_own_user_agent_is_known_by_the_pod_spec() {
        // The lab's web pods probe /health on 3000; the node's bridge address is 10.244.0.1.
        let cluster =
            crate::resolve::load_files(&[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cluster.json")])
                .unwrap();
        let at = |client: &str, path: &str| {
            let mut ex = exchange("healthcheck/1.0");
            ex.client = client.parse().unwrap();
            ex.server = "10.244.0.11:3000".parse().unwrap();
            let Detail::Http(h) = &mut ex.detail else { unreachable!() };
            h.path = path.into();
            record(ex, 1, None, &cluster)
        };
        let r = at("10.244.0.1:50000", "/health");
        assert!(r.probe && r.via.kind == ViaKind::Direct);
        assert!(!at("10.244.0.20:50000", "/health").probe, "a pod asking /health is no probe");
        assert!(!at("10.244.0.1:50000", "/users").probe, "the node asking another path is no probe");
    }
}
