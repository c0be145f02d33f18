//! Map ids at every level of the Service Map, and which records an edge between two of them
//! holds. The browser folds pods into workloads and namespaces, and external peers into address
//! blocks; the filter's `edge:SOURCE>TARGET` term finds exactly the requests one folded edge
//! counts, so a click on any edge lists its requests and the numbers agree.
//!
//! Ids: `namespace:ns`, `workload:ns/Kind/name` (the controlling workload, e.g.
//! `workload:shop/Deployment/api`), `external:api.example.com` (every address DNS gave that name),
//! `external:203.0.113.0/24` (a block of unnamed ones; a single peer keeps `external:IP`), beside the map's own `pod:ns/name`, `service:ns/name`, `node:name`, `ip:IP`.

use std::net::IpAddr;

use crate::{Endpoint, EndpointKind, Record};

/// The id of a workload's box.
pub fn workload_id(namespace: &str, workload: &str) -> String {
    format!("workload:{namespace}/{workload}")
}

/// The id of a namespace's box.
pub fn namespace_id(namespace: &str) -> String {
    format!("namespace:{namespace}")
}

/// The address block an external peer is grouped in: a /24 for IPv4, a /48 for IPv6.
pub fn external_block(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("external:{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("external:{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// The box an external peer folds into: the name a DNS answer (or a TLS handshake's SNI) gave its
/// address, `external:api.example.com`, else its address block.
pub fn external_group(ip: IpAddr, name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() && n.parse::<IpAddr>().is_err() => format!("external:{n}"),
        _ => external_block(ip),
    }
}

/// One end of a record's edge: an endpoint, or the Service it went through.
#[derive(Clone, Copy, Debug)]
pub enum Side<'a> {
    Endpoint(&'a Endpoint),
    Service(&'a str),
    /// A Kafka topic, on the broker that carried the request (`crate::topic`).
    Topic(&'a Endpoint, &'a str),
}

/// The edges a record counts on, as the map counts it (`MapBuilder::path`): through a Service to
/// a pod, source → Service and Service → pod; otherwise source → destination; and a Kafka
/// Produce's client → topic, a Fetch's topic → client.
pub fn legs(r: &Record) -> impl Iterator<Item = (Side<'_>, Side<'_>)> {
    let service = r.via.service.as_deref().filter(|_| r.dst.kind == EndpointKind::Pod);
    let (first, second) = match service {
        Some(s) => ((Side::Endpoint(&r.src), Side::Service(s)), Some((Side::Service(s), Side::Endpoint(&r.dst)))),
        None => ((Side::Endpoint(&r.src), Side::Endpoint(&r.dst)), None),
    };
    let topics = crate::topic::flows(r).into_iter().flat_map(move |(flow, names)| {
        names.into_iter().map(move |name| {
            let (client, topic) = (Side::Endpoint(&r.src), Side::Topic(&r.dst, name));
            match flow {
                crate::topic::Flow::Into => (client, topic),
                crate::topic::Flow::OutOf => (topic, client),
            }
        })
    });
    std::iter::once(first).chain(second).chain(topics)
}

/// Whether the box `id` (at any level; `*` is every box) holds `side`.
pub fn covers(id: &str, side: Side<'_>) -> bool {
    if id == "*" {
        return true;
    }
    let Some((kind, rest)) = id.split_once(':') else { return false };
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match side {
        Side::Topic(broker, name) => kind == "topic" && same(id, &crate::topic::topic_id(broker, name)),
        Side::Service(qualified) => match kind {
            "service" => same(rest, qualified),
            "namespace" => qualified.split_once('/').is_some_and(|(ns, _)| same(ns, rest)),
            _ => false,
        },
        Side::Endpoint(e) => {
            if same(id, &e.map_id()) {
                return true;
            }
            match (kind, e.namespace.as_deref()) {
                ("namespace", Some(ns)) => {
                    same(rest, ns) && matches!(e.kind, EndpointKind::Pod | EndpointKind::Service)
                }
                ("workload", Some(ns)) => e.workload.as_deref().is_some_and(|w| same(id, &workload_id(ns, w))),
                ("external", _) => {
                    e.kind == EndpointKind::External && same(id, &external_group(e.ip, e.name.as_deref()))
                }
                _ => false,
            }
        }
    }
}

/// Whether `r` counts on the edge `source → target` (ids at any level).
pub fn on_edge(r: &Record, source: &str, target: &str) -> bool {
    legs(r).any(|(s, t)| covers(source, s) && covers(target, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Via, ViaKind};

    fn through_service() -> Record {
        let mut r = Record::test();
        r.src = Endpoint {
            kind: EndpointKind::Pod,
            name: Some("web-1".into()),
            namespace: Some("default".into()),
            workload: Some("Deployment/web".into()),
            ..r.src
        };
        r.dst = Endpoint {
            kind: EndpointKind::Pod,
            name: Some("api-2".into()),
            namespace: Some("shop".into()),
            workload: Some("Deployment/api".into()),
            ..r.dst
        };
        r.via = Via { kind: ViaKind::ClusterIp, service: Some("shop/api".into()) };
        r
    }

    #[test]
    fn a_request_through_a_service_is_on_both_its_legs_at_every_level() {
        let r = through_service();
        assert!(on_edge(&r, "pod:default/web-1", "service:shop/api"));
        assert!(on_edge(&r, "workload:default/Deployment/web", "service:shop/api"));
        assert!(on_edge(&r, "namespace:default", "namespace:shop"));
        assert!(on_edge(&r, "service:shop/api", "workload:shop/Deployment/api"));
        assert!(on_edge(&r, "service:shop/api", "pod:shop/api-2"));
        // The Service folds into its namespace: inside it, Service → pod.
        assert!(on_edge(&r, "namespace:shop", "namespace:shop"));
        // Not on a direct edge it never took, nor on the other direction.
        assert!(!on_edge(&r, "pod:default/web-1", "pod:shop/api-2"));
        assert!(!on_edge(&r, "service:shop/api", "workload:default/Deployment/web"));
        assert!(!on_edge(&r, "workload:shop/Deployment/api", "service:shop/api"));
        // `*`: everything into a box, on the leg that reaches it.
        assert!(on_edge(&r, "*", "pod:shop/api-2") && on_edge(&r, "*", "service:shop/api"));
        assert!(!on_edge(&r, "*", "pod:default/web-1"));
    }

    #[test]
    fn external_peers_fold_into_their_block() {
        let mut r = Record::test();
        r.src.kind = EndpointKind::External;
        r.src.ip = [203, 0, 113, 9].into();
        assert_eq!(external_block(r.src.ip), "external:203.0.113.0/24");
        assert!(on_edge(&r, "external:203.0.113.0/24", &r.dst.map_id()));
        assert!(on_edge(&r, "external:203.0.113.9", &r.dst.map_id()));
        assert!(!on_edge(&r, "external:203.0.114.0/24", &r.dst.map_id()));
        assert_eq!(external_block("2001:db8:1:2::5".parse().unwrap()), "external:2001:db8:1::/48");
    }

    #[test]
    fn a_named_external_peer_folds_into_its_name_and_not_its_block() {
        let mut r = Record::test();
        r.dst.kind = EndpointKind::External;
        r.dst.ip = [203, 0, 113, 9].into();
        r.dst.name = Some("api.example.com".into());
        let src = r.src.map_id();
        assert_eq!(external_group(r.dst.ip, r.dst.name.as_deref()), "external:api.example.com");
        assert!(on_edge(&r, &src, "external:api.example.com"));
        assert!(on_edge(&r, &src, "external:203.0.113.9"), "its own box still holds it");
        assert!(!on_edge(&r, &src, "external:203.0.113.0/24"), "the block's box does not");
        // A name that is an address is no name.
        assert_eq!(external_group(r.dst.ip, Some("203.0.113.9")), "external:203.0.113.0/24");
    }
}
