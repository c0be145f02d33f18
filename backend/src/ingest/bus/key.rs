//! The join key: which partition of the bus an observation goes to, computed by each agent from
//! what it saw alone. Both observations of one request — before kube-proxy's DNAT on the
//! client's node and after it on the server's, through a NodePort and its SNAT, or through a
//! socket-level balancer — must land on one partition, so the key is made only of what no
//! rewrite touches and what the merge (`correlate::merge`) requires equal:
//!
//! - a TCP request whose dissector knows the sequence number of its first byte (HTTP/1, an
//!   HTTP/2 or gRPC stream's HEADERS frame, Redis, PostgreSQL, MySQL, Kafka): that number. NAT
//!   rewrites addresses and ports, never sequence numbers, and the merge pairs only equal ones;
//!   they are random per connection, so probes, one client's keep-alive connection and in-node
//!   traffic spread over every partition;
//! - anything else: what was asked (`merge::identity`: a DNS question, a TLS server name, a
//!   connection's byte counts), which the merge requires equal too.
//!
//! DNS answers and TLS server names also name addresses for every other request (external
//! names, socket-level balancing), so they go to every partition: merged on their own one,
//! only learned from on the others.

use std::hash::{Hash, Hasher};

use podtap_shared::{Detail, Record};
use rustc_hash::FxHasher;

use crate::dissect::Exchange;

/// Where an observation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The partition whose hub merges it.
    pub partition: u32,
    /// Every other partition learns names from it.
    pub everywhere: bool,
}

/// The route of `ex` among `partitions`.
pub fn route(ex: &Exchange, partitions: u32) -> Route {
    let partition = partition_of(&ex.detail, ex.seq, (ex.request_size, ex.response_size), partitions);
    Route { partition, everywhere: matches!(ex.detail, Detail::Dns(_) | Detail::Tls(_)) }
}

/// The partition a merged record came from: its observations' (they agree on every part of
/// the key).
pub fn route_record(r: &Record, partitions: u32) -> u32 {
    partition_of(&r.detail, r.seq, (r.request_size, r.response_size), partitions)
}

fn partition_of(detail: &Detail, seq: Option<u32>, (request, response): (u64, u64), partitions: u32) -> u32 {
    let mut h = FxHasher::default();
    match (detail, seq) {
        (
            Detail::Http(_)
            | Detail::Grpc(_)
            | Detail::Redis(_)
            | Detail::Postgres(_)
            | Detail::Mysql(_)
            | Detail::Kafka(_),
            Some(seq),
        ) => seq.hash(&mut h),
        _ => crate::correlate::merge::identity_of(detail, request, response).hash(&mut h),
    }
    // FxHash's low bits are weak for small integers: fold the high half in.
    let hash = h.finish();
    ((hash ^ (hash >> 32)) % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use podtap_shared::{DnsExchange, HttpExchange, TcpClose, TcpConnection};

    fn http(client: &str, server: &str, seq: u32) -> Exchange {
        let http = HttpExchange { method: "GET".into(), path: "/health".into(), ..Default::default() };
        let mut ex = Exchange::test(Detail::Http(http));
        (ex.client, ex.server, ex.seq) = (client.parse().unwrap(), server.parse().unwrap(), Some(seq));
        ex
    }

    #[test]
    fn both_sides_of_a_rewrite_go_to_one_partition() {
        // Before DNAT (to the ClusterIP), after it (at the pod), and behind a NodePort's SNAT
        // (every address and port changed): the same bytes, the same partition.
        let seen = [
            http("10.244.1.5:40000", "10.96.0.10:80", 777),
            http("10.244.1.5:40000", "10.244.2.7:3000", 777),
            http("192.168.49.2:61000", "10.244.2.7:3000", 777),
        ];
        let routes: Vec<Route> = seen.iter().map(|e| route(e, 16)).collect();
        assert!(routes.windows(2).all(|w| w[0] == w[1]), "{routes:?}");
        let conn = TcpConnection {
            handshake: true,
            close: TcpClose::Fin,
            rtt_us: None,
            retransmissions: 0,
            gaps: 0,
            protocol: None,
            requests: 0,
            likely: None,
        };
        let mut tcp = Exchange::test(Detail::Tcp(conn));
        (tcp.request_size, tcp.response_size) = (120, 4000);
        let mut nat = tcp.clone();
        (nat.client, nat.seq) = ("192.168.49.2:61000".parse().unwrap(), None);
        assert_eq!(route(&tcp, 16), route(&nat, 16), "a connection seen from its SYN on one side only");
    }

    #[test]
    fn probes_spread_over_every_partition() {
        // One path, one pod, many connections: the sequence numbers differ, and so do the partitions.
        let mut used = [0u32; 8];
        let mut seq = 0x1234_5678u32;
        for port in 0..800u16 {
            seq = seq.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            used[route(&http(&format!("10.244.0.1:{}", 30000 + port), "10.244.0.9:3000", seq), 8).partition
                as usize] += 1;
        }
        assert!(used.iter().all(|n| (60..=140).contains(n)), "{used:?}");
    }

    #[test]
    fn dns_answers_are_learned_everywhere() {
        let dns = Exchange::test(Detail::Dns(DnsExchange { query: "web.shop.svc".into(), ..Default::default() }));
        let r = route(&dns, 4);
        assert!(r.everywhere && r.partition < 4);
        assert!(!route(&http("10.0.0.1:1", "10.0.0.2:2", 1), 4).everywhere);
        assert_eq!(route(&dns, 1).partition, 0);
    }
}
