//! Balance against the lab's cluster (backend/demo/cluster.json): default/web is backed by
//! web-7d4b9c8f6-x2k9p (10.244.0.11) and web-7d4b9c8f6-q8m3z (10.244.0.12).

use podtap_shared::{Endpoint, Via, ViaKind};

use super::*;
use crate::resolve::load_files;

fn cluster() -> ClusterState {
    load_files(&[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cluster.json")]).unwrap()
}

const X2K9P: [u8; 4] = [10, 244, 0, 11];
const Q8M3Z: [u8; 4] = [10, 244, 0, 12];

fn request(cluster: &ClusterState, conn: u64, pod: [u8; 4]) -> Record {
    let mut r = Record::test();
    r.conn = conn;
    r.src = cluster.resolve_source([10, 244, 0, 20].into(), 40000);
    r.dst = cluster.resolve(pod.into(), 3000);
    r.via = Via { kind: ViaKind::ClusterIp, service: Some("default/web".into()) };
    r
}

fn probe(cluster: &ClusterState, pod: [u8; 4]) -> Record {
    let mut r = request(cluster, 999, pod);
    r.probe = true;
    r.via = Via { kind: ViaKind::Direct, service: None };
    r.src = Endpoint::unknown([10, 244, 0, 1].into(), 50000);
    r
}

#[test]
fn one_keep_alive_connection_is_named_as_the_cause() {
    let c = cluster();
    let mut b = BalanceBuilder::default();
    (0..50).for_each(|_| b.add(&request(&c, 1, X2K9P)));
    (0..65).for_each(|i| b.add(&request(&c, 100 + i, if i % 2 == 0 { X2K9P } else { Q8M3Z })));
    (0..3).for_each(|_| b.add(&probe(&c, X2K9P)));
    b.add(&probe(&c, Q8M3Z));
    let web = b.balance("default/web", &c).unwrap();
    assert_eq!((web.requests, web.connections, web.probe_requests), (115, 66, 4));
    let x = &web.endpoints[0];
    assert_eq!(x.pod.as_deref(), Some("default/web-7d4b9c8f6-x2k9p"));
    assert_eq!((x.requests, x.connections, x.probe_requests), (83, 34, 3));
    assert_eq!((x.share_of_requests, x.share_of_connections, x.requests_per_connection), (0.722, 0.515, Some(2.441)));
    assert_eq!(web.skew, 0.443);
    assert_eq!(
        web.cause.as_deref(),
        Some("1 keep-alive connection from default/curl-client carried 50 of 115 requests to web-7d4b9c8f6-x2k9p")
    );
}

#[test]
fn even_spreads_have_no_cause_and_few_connections_blame_kube_proxys_dice() {
    let c = cluster();
    let mut even = BalanceBuilder::default();
    (0..40).for_each(|i| even.add(&request(&c, i, if i % 2 == 0 { X2K9P } else { Q8M3Z })));
    let web = even.balance("default/web", &c).unwrap();
    assert_eq!((web.skew, web.cause), (0.0, None));

    let mut dice = BalanceBuilder::default();
    (0..8).for_each(|i| dice.add(&request(&c, i, if i < 7 { X2K9P } else { Q8M3Z })));
    let web = dice.balance("default/web", &c).unwrap();
    assert_eq!(web.skew, 0.75);
    assert_eq!(
        web.cause.as_deref(),
        Some(
            "web-7d4b9c8f6-x2k9p got 7 of 8 connections: kube-proxy picks a backend per connection, at random, \
             so a few connections spread unevenly"
        )
    );
}

#[test]
fn idle_backends_are_listed_and_unknown_services_are_none() {
    let c = cluster();
    let b = BalanceBuilder::default();
    let web = b.balance("default/web", &c).unwrap();
    assert_eq!(web.endpoints.len(), 2);
    assert!(web.endpoints.iter().all(|e| e.requests == 0 && e.share_of_requests == 0.0));
    assert!(b.balance("default/nope", &c).is_none());
    let all: Vec<String> = b.build(&c).into_iter().map(|s| s.service).collect();
    assert_eq!(all, ["default/greeter", "default/web", "kube-system/kube-dns", "shop/api"]);
}

#[test]
fn a_pod_that_took_over_a_gone_pods_address_has_its_own_row() {
    // web-7d4b9c8f6-x2k9p restarted: its replacement took 10.244.0.11 (a CNI hands out the lowest
    // free address). Each pod keeps its own requests, connections and probes.
    let c = cluster();
    let mut b = BalanceBuilder::default();
    (0..5).for_each(|i| b.add(&request(&c, i, X2K9P)));
    b.add(&probe(&c, X2K9P));
    let successor = |mut r: Record| {
        r.dst.name = Some("web-7d4b9c8f6-new01".into());
        r
    };
    (0..3).for_each(|i| b.add(&successor(request(&c, 10 + i, X2K9P))));
    (0..2).for_each(|_| b.add(&successor(probe(&c, X2K9P))));
    let web = b.balance("default/web", &c).unwrap();
    let row = |pod: &str| web.endpoints.iter().find(|e| e.pod.as_deref() == Some(pod)).expect(pod);
    let old = row("default/web-7d4b9c8f6-x2k9p");
    assert_eq!((old.requests, old.connections, old.probe_requests), (5, 5, 1));
    let new = row("default/web-7d4b9c8f6-new01");
    assert_eq!((new.ip, new.requests, new.connections, new.probe_requests), (X2K9P.into(), 3, 3, 2));
    assert_eq!((web.requests, web.connections, web.probe_requests), (8, 8, 3));
}

/// A client's pool of connections, all to one pod: the cause names the pool, and kube-proxy's
/// `sessionAffinity: ClientIP` when the Service has it.
#[test]
fn a_pool_on_one_pod_is_named_with_the_services_affinity() {
    let pooled = |c: &ClusterState| {
        let mut b = BalanceBuilder::default();
        // Four pooled connections, all to x2k9p, 20 requests each; another client's two
        // connections, one to each pod, 5 requests each.
        (0..80).for_each(|i| b.add(&request(c, 1 + i % 4, X2K9P)));
        let other = |conn, pod| {
            let mut r = request(c, conn, pod);
            r.src = c.resolve_source([10, 244, 0, 21].into(), 40000);
            r
        };
        (0..5).for_each(|_| b.add(&other(10, X2K9P)));
        (0..5).for_each(|_| b.add(&other(11, Q8M3Z)));
        b.balance("default/web", c).unwrap()
    };
    let web = pooled(&cluster());
    assert_eq!((web.requests, web.connections), (90, 6));
    let client = "default/curl-client";
    assert_eq!(
        web.cause.as_deref(),
        Some(&*format!(
            "the 4 pooled connections from {client} all went to web-7d4b9c8f6-x2k9p and carried 80 of 90 requests: \
             kube-proxy picks a backend per connection, and a pool opened once keeps the backends it got"
        ))
    );

    // The same Service with sessionAffinity: ClientIP.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cluster.json");
    let mut list: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let items = list["items"].as_array_mut().unwrap();
    let web_service = items
        .iter_mut()
        .find(|i| i["kind"] == "Service" && i["metadata"]["name"] == "web" && i["metadata"]["namespace"] == "default")
        .unwrap();
    web_service["spec"]["sessionAffinity"] = "ClientIP".into();
    let dir = std::env::temp_dir().join(format!("podtap-balance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cluster.json");
    std::fs::write(&file, list.to_string()).unwrap();
    let sticky = load_files(&[file]).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(sticky.client_ip_affinity("default/web") && !cluster().client_ip_affinity("default/web"));
    assert_eq!(
        pooled(&sticky).cause.as_deref(),
        Some(&*format!(
            "the 4 pooled connections from {client} all went to web-7d4b9c8f6-x2k9p and carried 80 of 90 requests: \
             the Service's sessionAffinity: ClientIP sends every connection from one client address to the same pod"
        ))
    );
}
