//! podtap against the lab's ground truth: for every interface, the exchanges found equal what the
//! servers (and clients) logged, with the right endpoints, paths, statuses, connections and via;
//! and, merged, every request appears once with the pod that served it, the real client and the
//! path it took.
//! One check, several inputs: the lab run shipped as the demo (always), and a fresh lab run on the
//! real kernel (`cargo xtask test` runs the lab as root and sets PODTAP_LAB_DIR) as dumpcap wrote
//! it, as `podtap capture` wrote it live, and as `podtap serve` captured it live and answers it.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use common::Records;
use podtap::aggregate::SummaryBuilder;
use podtap_shared::{EndpointKind, Record, ViaKind};
use serde_json::Value;

fn counts<'a>(items: impl Iterator<Item = String> + 'a) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

fn as_counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object().expect("object").iter().map(|(k, n)| (k.clone(), n.as_u64().expect("count"))).collect()
}

/// The HTTP records seen on one interface.
fn on<'a>(records: &'a [Record], iface: &str) -> Vec<&'a Record> {
    records.iter().filter(|r| r.interface.as_deref() == Some(iface) && r.http().is_some()).collect()
}

/// The DNS records seen on one interface.
fn dns_on<'a>(records: &'a [Record], iface: &str) -> Vec<&'a Record> {
    records.iter().filter(|r| r.interface.as_deref() == Some(iface) && r.dns().is_some()).collect()
}

/// What a pod served, by path and by status, against its server's log.
fn check_paths_and_statuses(served: &[&Record], t: &Value, pod: &str) {
    let paths = counts(served.iter().map(|r| r.http().unwrap().path.to_string()));
    assert_eq!(paths, as_counts(&t["by_path"]), "paths on {pod}");
    let statuses = counts(served.iter().map(|r| r.http().unwrap().status.unwrap().to_string()));
    assert_eq!(statuses, as_counts(&t["by_status"]), "statuses on {pod}");
}

/// A capture of the lab: clean counters, then the records of every interface against the truth,
/// then one record per request against the truth.
fn check_capture(dir: &Path, name: &str) {
    let (records, stats) = common::analyze_file(dir, name, Records::PerInterface);
    assert_eq!((stats.tcp.gaps, stats.resyncs, stats.unmatched_responses), (0, 0, 0), "{stats:?}");
    assert_eq!((stats.dns.malformed, stats.dns.unmatched_responses, stats.dns.timed_out), (0, 0, 0), "{stats:?}");
    // DNS over TCP and fragmented UDP answers, each seen on the client's and the DNS pod's veth.
    let dns = &common::ground_truth(dir)["dns"];
    let tcp = dns["by_transport"].get("tcp").and_then(Value::as_u64).unwrap_or(0);
    assert_eq!(stats.dns_over_tcp, 2 * tcp, "DNS over TCP");
    let fragmented = dns["fragmented_responses"].as_u64().unwrap_or(0);
    assert_eq!(stats.ip_fragments.reassembled, 2 * fragmented, "{:?}", stats.ip_fragments);
    assert_eq!(stats.ip_fragments.invalid, 0);
    check_each_interface(dir, &records);
    let (merged, _) = common::analyze_file(dir, name, Records::PerRequest);
    check_each_request_once(dir, &merged);
}

/// One record per request: what each pod served, each request once, with the real client and
/// the path it took.
fn check_each_request_once(dir: &Path, records: &[Record]) {
    let truth = common::ground_truth(dir);
    let http: Vec<&Record> = records.iter().filter(|r| r.http().is_some()).collect();
    let mut served = 0;
    for (pod, t) in truth["pods"].as_object().unwrap() {
        let mine: Vec<&Record> =
            http.iter().copied().filter(|r| r.dst.qualified_name().as_deref() == Some(pod.as_str())).collect();
        served += mine.len();
        assert_eq!(mine.len() as u64, t["requests"].as_u64().unwrap(), "requests served by {pod}");
        let conns: HashSet<u64> = mine.iter().filter(|r| !r.probe).map(|r| r.conn).collect();
        let probe_conns: HashSet<u64> = mine.iter().filter(|r| r.probe).map(|r| r.conn).collect();
        assert_eq!(
            (conns.len() + probe_conns.len()) as u64,
            t["connections"].as_u64().unwrap(),
            "connections to {pod}"
        );
        let probes: Vec<&&Record> = mine.iter().filter(|r| r.probe).collect();
        assert_eq!(probes.len() as u64, t["probe_requests"].as_u64().unwrap(), "probes to {pod}");
        assert!(
            probes
                .iter()
                .all(|r| r.via.kind == ViaKind::Direct && r.observations == 1 && r.src.kind == EndpointKind::Node)
        );
        check_paths_and_statuses(&mine, t, pod);
    }
    assert_eq!(served, http.len(), "every HTTP request was served by a lab pod");
    let via = |kind: ViaKind| http.iter().filter(move |r| r.via.kind == kind && !r.probe);
    let through =
        |service: &'static str| via(ViaKind::ClusterIp).filter(move |r| r.via.service.as_deref() == Some(service));
    // The client pod's requests: through the ClusterIP, seen before and after DNAT.
    let client = &truth["clients"]["client"];
    assert_eq!(through("default/web").count() as u64, client["requests"].as_u64().unwrap(), "via clusterIP");
    assert!(
        through("default/web")
            .all(|r| r.src.qualified_name().as_deref() == Some("default/curl-client") && r.observations == 2)
    );
    // web's calls to the api Service of namespace shop: from the web pods, answered by api pods.
    let upstream = &truth["upstream"];
    assert_eq!(through("shop/api").count() as u64, upstream["calls"].as_u64().unwrap(), "web → shop/api");
    assert!(through("shop/api").all(|r| r.src.workload.as_deref() == Some("Deployment/web")
        && r.dst.workload.as_deref() == Some("Deployment/api")
        && r.observations == 2));
    assert_eq!(
        via(ViaKind::ClusterIp).count(),
        through("default/web").count() + through("shop/api").count(),
        "no other Service"
    );
    let conns: HashSet<u64> = through("default/web").map(|r| r.conn).collect();
    assert_eq!(conns.len() as u64, client["connections"].as_u64().unwrap(), "the client's connections");
    // NodePort: the outside client's own address, not kube-proxy's SNAT address.
    let ext = &truth["clients"]["ext"];
    assert_eq!(via(ViaKind::NodePort).count() as u64, ext["requests"].as_u64().unwrap(), "via nodePort");
    assert!(via(ViaKind::NodePort).all(|r| r.src.ip.to_string() == "192.168.49.100"
        && r.src.kind == EndpointKind::External
        && r.via.service.as_deref() == Some("default/web")
        && r.observations == 2));
    assert!(http.iter().all(|r| r.probe || r.src.kind != EndpointKind::Node), "no SNAT address as a client");

    // DNS: each query once, to the kube-dns Service, answered by the CoreDNS pod.
    let dns: Vec<&Record> = records.iter().filter(|r| r.dns().is_some()).collect();
    assert_eq!(dns.len() as u64, truth["dns"]["queries"].as_u64().unwrap(), "DNS queries");
    assert!(dns.iter().all(|r| r.via.kind == ViaKind::ClusterIp
        && r.via.service.as_deref() == Some("kube-system/kube-dns")
        && r.dst.workload.as_deref() == Some("Deployment/coredns")
        && r.observations == 2));
    let rcodes = counts(dns.iter().map(|r| r.dns().unwrap().rcode.clone().unwrap_or_default()));
    assert_eq!(rcodes, as_counts(&truth["dns"]["by_rcode"]));

    // gRPC: each call once, through the greeter ClusterIP to its pod.
    let grpc = &truth["grpc"];
    let calls: Vec<&Record> = records.iter().filter(|r| r.grpc().is_some()).collect();
    assert_eq!(calls.len() as u64, grpc["calls"].as_u64().unwrap(), "gRPC calls");
    assert!(calls.iter().all(|r| r.via.service.as_deref() == Some("default/greeter")
        && r.dst.qualified_name().as_deref() == grpc["pod"].as_str()
        && r.observations == 2));
    let conns: HashSet<u64> = calls.iter().map(|r| r.conn).collect();
    assert_eq!(conns.len() as u64, grpc["connections"].as_u64().unwrap());
    assert_eq!(records.len(), http.len() + dns.len() + calls.len(), "nothing else found");

    // Per-Service balance (summary): requests + probes per endpoint equal the server logs.
    let mut summary = SummaryBuilder::default();
    records.iter().for_each(|r| summary.add(r));
    let summary = summary.build(&common::cluster(dir));
    let web = summary.services.iter().find(|s| s.service == "default/web").expect("default/web in summary");
    for e in &web.endpoints {
        let t = &truth["pods"][e.pod.as_deref().unwrap()];
        assert_eq!(e.requests + e.probe_requests, t["requests"].as_u64().unwrap());
        assert_eq!(e.probe_requests, t["probe_requests"].as_u64().unwrap());
    }
}

/// One record per observation: what each interface saw.
fn check_each_interface(dir: &Path, records: &[Record]) {
    let truth = common::ground_truth(dir);
    let http: Vec<&Record> = records.iter().filter(|r| r.http().is_some()).collect();
    assert!(http.iter().all(|r| r.http().is_some_and(|h| h.status.is_some())), "every request answered");

    // The server pods' own veths: exactly what each server logged.
    let mut expected_total = 0;
    for (pod, t) in truth["pods"].as_object().unwrap() {
        // What the pod served (its veth also carries the calls it makes itself).
        let ip = t["ip"].as_str().unwrap();
        let seen: Vec<&Record> =
            on(records, t["interface"].as_str().unwrap()).into_iter().filter(|r| r.dst.ip.to_string() == ip).collect();
        let n = t["requests"].as_u64().unwrap();
        expected_total += n;
        assert_eq!(seen.len() as u64, n, "requests on {pod}'s veth");
        assert!(seen.iter().all(|r| r.dst.qualified_name().as_deref() == Some(pod.as_str())), "dst is {pod}");
        let conns: HashSet<u64> = seen.iter().map(|r| r.conn).collect();
        assert_eq!(conns.len() as u64, t["connections"].as_u64().unwrap(), "connections to {pod}");
        assert_eq!(
            seen.iter().filter(|r| r.probe).count() as u64,
            t["probe_requests"].as_u64().unwrap(),
            "probes to {pod}"
        );
        assert!(
            seen.iter().filter(|r| r.probe).all(|r| r.via.kind == ViaKind::Direct && r.src.kind == EndpointKind::Node)
        );
        check_paths_and_statuses(&seen, t, pod);
        assert_eq!(counts(seen.iter().map(|r| r.src.ip.to_string())), as_counts(&t["by_peer"]), "peers of {pod}");
    }

    // The client pod's veth: every request it made, addressed to the ClusterIP.
    let client = &truth["clients"]["client"];
    let seen = on(records, truth["client_interface"].as_str().unwrap());
    assert_eq!(seen.len() as u64, client["requests"].as_u64().unwrap(), "client requests");
    assert!(seen.iter().all(|r| r.via.kind == ViaKind::ClusterIp && r.via.service.as_deref() == Some("default/web")));
    assert!(seen.iter().all(|r| r.src.qualified_name().as_deref() == Some("default/curl-client")));
    let conns: HashSet<u64> = seen.iter().map(|r| r.conn).collect();
    assert_eq!(conns.len() as u64, client["connections"].as_u64().unwrap(), "keep-alive + per-request + pipelined");
    let statuses = counts(seen.iter().map(|r| r.http().unwrap().status.unwrap().to_string()));
    assert_eq!(statuses, as_counts(&client["by_status"]));
    assert_eq!(
        counts(seen.iter().map(|r| r.http().unwrap().path.to_string())),
        as_counts(&client["by_path"]),
        "client paths"
    );
    expected_total += seen.len() as u64;

    // The node's external interface: the NodePort requests, from the real external address.
    let ext = &truth["clients"]["ext"];
    let seen = on(records, truth["node_interface"].as_str().unwrap());
    assert_eq!(seen.len() as u64, ext["requests"].as_u64().unwrap(), "NodePort requests");
    assert!(seen.iter().all(|r| r.via.kind == ViaKind::NodePort && r.src.kind == EndpointKind::External));
    assert!(seen.iter().all(|r| r.src.ip.to_string() == "192.168.49.100" && r.dst.map_id() == "service:default/web"));
    expected_total += seen.len() as u64;

    // web's calls to shop/api, on web's own veths, addressed to the api ClusterIP.
    let upstream = &truth["upstream"];
    let calls: Vec<&Record> = upstream["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| on(records, i.as_str().unwrap()))
        .filter(|r| r.dst.kind == EndpointKind::Service)
        .collect();
    assert_eq!(calls.len() as u64, upstream["calls"].as_u64().unwrap(), "web's calls on its veths");
    assert!(calls.iter().all(|r| r.via.service.as_deref() == Some("shop/api")));
    expected_total += calls.len() as u64;

    assert_eq!(http.len() as u64, expected_total, "no HTTP exchange found that nobody logged");

    // DNS: every query the server logged, seen on the client's veth (to the kube-dns ClusterIP)
    // and on the CoreDNS pod's veth (to the pod), each with its type and answer code.
    let dns = &truth["dns"];
    let client_side = dns_on(records, truth["client_interface"].as_str().unwrap());
    let server_side = dns_on(records, truth["dns_interface"].as_str().unwrap());
    for (side, seen) in [("client", &client_side), ("server", &server_side)] {
        assert_eq!(seen.len() as u64, dns["queries"].as_u64().unwrap(), "DNS queries on the {side} side");
        assert_eq!(counts(seen.iter().map(|r| r.dns().unwrap().qtype.clone())), as_counts(&dns["by_qtype"]), "{side}");
        let rcodes = counts(seen.iter().map(|r| r.dns().unwrap().rcode.clone().unwrap_or_default()));
        assert_eq!(rcodes, as_counts(&dns["by_rcode"]), "{side}");
    }
    assert!(
        client_side
            .iter()
            .all(|r| r.dst.map_id() == "service:kube-system/kube-dns" && r.via.kind == ViaKind::ClusterIp)
    );
    assert!(server_side.iter().all(|r| r.dst.workload.as_deref() == Some("Deployment/coredns")));
    let web = client_side.iter().filter(|r| r.dns().unwrap().query == "web.default.svc.cluster.local");
    assert!(web.filter(|r| r.dns().unwrap().qtype == "A").all(|r| r.dns().unwrap().answers == ["10.96.12.34"]));
    // gRPC over h2c: every call the server logged, on its veth (to the pod) and on the client's
    // (to the greeter ClusterIP), with method and grpc-status; one HTTP/2 connection per channel.
    let grpc = &truth["grpc"];
    let grpc_on = |iface: &str| -> Vec<&Record> {
        records.iter().filter(|r| r.interface.as_deref() == Some(iface) && r.grpc().is_some()).collect()
    };
    let pod_side = grpc_on(grpc["interface"].as_str().unwrap());
    let client_grpc = grpc_on(truth["client_interface"].as_str().unwrap());
    for (side, seen) in [("server", &pod_side), ("client", &client_grpc)] {
        assert_eq!(seen.len() as u64, grpc["calls"].as_u64().unwrap(), "gRPC calls on the {side} side");
        let methods = counts(seen.iter().map(|r| r.grpc().unwrap().grpc_method.clone()));
        assert_eq!(methods, as_counts(&grpc["by_method"]), "{side}");
        let codes = counts(seen.iter().map(|r| r.grpc().unwrap().grpc_status.expect("trailers seen").to_string()));
        assert_eq!(codes, as_counts(&grpc["by_code"]), "{side}");
        let conns: HashSet<u64> = seen.iter().map(|r| r.conn).collect();
        assert_eq!(conns.len() as u64, grpc["connections"].as_u64().unwrap(), "{side}");
        assert!(seen.iter().all(|r| r.grpc().unwrap().grpc_service == "demo.Greeter" && r.latency_us.is_some()));
    }
    assert!(pod_side.iter().all(|r| r.dst.qualified_name().as_deref() == grpc["pod"].as_str()));
    assert!(
        client_grpc
            .iter()
            .all(|r| r.via.kind == ViaKind::ClusterIp && r.via.service.as_deref() == Some("default/greeter"))
    );
    let grpc_total = pod_side.len() + client_grpc.len();
    assert_eq!(records.len(), http.len() + client_side.len() + server_side.len() + grpc_total, "nothing else found");
}

#[test]
fn the_shipped_lab_capture_matches_its_ground_truth() {
    check_capture(&common::demo_dir(), "capture.pcapng");
}

/// The same run without interface names: each request once, the same pods, via and clients.
fn check_format(dir: &Path, file: &podtap::capture::CaptureFile) {
    let (records, stats) = common::analyze_capture(dir, file);
    assert_eq!((stats.tcp.gaps, stats.resyncs, stats.unmatched_responses), (0, 0, 0), "{}: {stats:?}", file.name());
    assert_eq!((stats.dns.unmatched_responses, stats.dns.timed_out), (0, 0), "{}: {stats:?}", file.name());
    check_each_request_once(dir, &records);
}

#[test]
fn the_shipped_lab_capture_without_interface_names_gives_the_same_records() {
    use common::Reframe;
    let dir = common::demo_dir();
    for how in [Reframe::ClassicPcap, Reframe::CookedV1, Reframe::CookedV2] {
        check_format(&dir, &common::reframe(&dir, "capture.pcapng", how));
    }
}

#[test]
#[ignore = "needs a fresh lab run: `cargo xtask test` runs the lab as root and sets PODTAP_LAB_DIR"]
fn a_fresh_lab_run_in_every_capture_format_matches_its_ground_truth() {
    // mergecap -F pcap of dumpcap's capture, and `tcpdump -i any` (cooked v1 and v2) beside it,
    // which also sees every routed packet a second time on cni0.
    let dir = std::env::var("PODTAP_LAB_DIR").expect("PODTAP_LAB_DIR names a lab output directory");
    let dir = Path::new(&dir);
    for name in ["capture-classic.pcap", "any-linux_sll.pcap", "any-linux_sll2.pcap"] {
        let file = podtap::capture::CaptureFile::open(&dir.join(name)).expect("lab capture opens");
        check_format(dir, &file);
    }
}

#[test]
#[ignore = "needs a fresh lab run: `cargo xtask test` runs the lab as root and sets PODTAP_LAB_DIR"]
fn a_fresh_lab_run_matches_its_ground_truth() {
    let dir = std::env::var("PODTAP_LAB_DIR").expect("PODTAP_LAB_DIR names a lab output directory");
    check_capture(Path::new(&dir), "capture.pcapng");
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).expect("JSON")
}

#[test]
#[ignore = "needs a fresh lab run with PODTAP set: `cargo xtask test` does both"]
fn podtap_live_capture_of_a_fresh_lab_run_matches_its_ground_truth() {
    let dir = std::env::var("PODTAP_LAB_DIR").expect("PODTAP_LAB_DIR names a lab output directory");
    let dir = Path::new(&dir);
    // `podtap capture --pod-interfaces -i eth0`, started before the client pod existed.
    check_capture(dir, "live.pcapng");
    let err = std::fs::read_to_string(dir.join("logs/podtap-capture.err")).expect("podtap capture's stderr");
    let last = err.lines().last().expect("a final line");
    assert!(last.starts_with("captured ") && last.ends_with(" on 9 interfaces, 0 dropped"), "{last}");

    // `podtap serve --pod-interfaces -i eth0`: the records its API holds, and its kernel counters;
    // named from the lab's cluster file, and from an API server that answered 5 s late.
    check_serve(dir, "serve");
    check_serve(dir, "serve-late");
    let late = json(&dir.join("serve-late-health.json"));
    assert_eq!((late["cluster"]["source"].as_str(), late["cluster"]["ready"].as_bool()), (Some("api"), Some(true)));
    assert_eq!(late["cluster"]["missing"], serde_json::json!([]), "{late}");
    let log = std::fs::read_to_string(dir.join("logs/podtap-serve-late.err")).expect("its log");
    assert!(log.contains("exchanges held until the cluster state came"), "records came before the lists:\n{log}");
}

/// One live `podtap serve` of the lab run (`NAME-records.json`, `-balance`, `-health`): every
/// connection and request the servers logged, each once, the balance exact, no drop.
fn check_serve(dir: &Path, name: &str) {
    let page = json(&dir.join(format!("{name}-records.json")));
    let mut records: Vec<Record> = serde_json::from_value(page["records"].clone()).expect("records");
    assert_eq!(page["total"].as_u64(), Some(records.len() as u64), "nothing fell out of retention");
    // Requests and connections (`kind=all`): one connection record per connection a server logged
    // and closed. (web keeps its keep-alive connections to api open while serve runs: their
    // records come when they close.)
    let truth = common::ground_truth(dir);
    for (pod, t) in truth["pods"].as_object().expect("pods") {
        let conns =
            records.iter().filter(|r| !r.is_request() && r.dst.qualified_name().as_deref() == Some(pod)).count();
        let logged = t["connections"].as_u64().unwrap();
        if pod.starts_with("default/") {
            assert_eq!(conns as u64, logged, "{name}: connection records of {pod}");
        } else {
            assert!(
                conns as u64 <= logged && logged - (conns as u64) <= 2,
                "connection records of {pod}: {conns} of {logged}"
            );
        }
    }
    records.retain(Record::is_request);
    check_each_request_once(dir, &records);
    // Its balance API: per pod, requests plus probes equal what each server logged.
    let balance = json(&dir.join(format!("{name}-balance.json")));
    for e in balance["endpoints"].as_array().expect("endpoints") {
        let t = &truth["pods"][e["pod"].as_str().expect("pod named")];
        let served = e["requests"].as_u64().unwrap() + e["probe_requests"].as_u64().unwrap();
        assert_eq!(served, t["requests"].as_u64().unwrap(), "{name}: {e}");
        assert_eq!(
            e["connections"].as_u64().unwrap() + e["probe_requests"].as_u64().unwrap(),
            t["connections"].as_u64().unwrap(),
            "{e}"
        );
    }
    let health = json(&dir.join(format!("{name}-health.json")));
    let capture = &health["capture"];
    assert_eq!(capture["drops"], 0, "{capture}");
    let interfaces = capture["interfaces"].as_array().expect("interfaces");
    let client = truth_str(dir, "client_interface");
    assert!(interfaces.iter().any(|i| i["name"] == client.as_str() && i["open"] == false), "{capture}");
    assert_eq!(interfaces.iter().filter(|i| i["open"] == true).count(), 8, "{capture}");
}

fn truth_str(dir: &Path, key: &str) -> String {
    common::ground_truth(dir)[key].as_str().expect("string").to_string()
}

#[test]
fn merging_survives_interfaces_delivered_seconds_apart() {
    // Live rings are drained one after another: under load one interface's frames reach the
    // engine well after another's of the same moment. Replay the shipped capture that way —
    // each interface's frames in turn, 3 s of capture time at a time — and every request must
    // still come out once.
    use podtap::capture::CaptureFile;
    use podtap::engine::Engine;
    let dir = common::demo_dir();
    let file = CaptureFile::open(&dir.join("capture.pcapng")).unwrap();
    let mut frames: Vec<_> = file.frames().map(|f| f.unwrap()).collect();
    let start = frames[0].ts_us;
    let slice = |ts: u64| (ts - start) / 3_000_000;
    frames.sort_by_key(|f| (slice(f.ts_us), f.interface, f.ts_us));
    let mut engine = Engine::new(common::cluster(&dir));
    let mut walk = file.frames();
    while walk.next().is_some() {}
    let names: Vec<Option<String>> = walk.interfaces().iter().map(|i| i.name.clone()).collect();
    for (i, name) in names.into_iter().enumerate() {
        engine.name_interface(i as u32, name);
    }
    let mut records = Vec::new();
    for f in &frames {
        engine.on_frame(f, &mut records);
    }
    engine.finish(&mut records);
    let (in_order, _) = common::analyze_everything(&dir, "capture.pcapng", common::Records::PerRequest);
    assert_eq!(records.len(), in_order.len(), "one record per request and per connection, as in capture order");
    assert!(records.iter().filter(|r| !r.probe && r.is_request()).all(|r| r.observations == 2));
    let connections = |rs: &[podtap_shared::Record]| rs.iter().filter(|r| !r.is_request()).count();
    assert_eq!(connections(&records), connections(&in_order));
}

#[test]
#[ignore = "needs a fresh lab run: `cargo xtask test` runs end2end/lab/vxlan.sh as root and sets PODTAP_LAB_DIR"]
fn requests_between_nodes_over_vxlan_are_read_inside_the_tunnel() {
    // Two namespace-built nodes joined by a kernel VXLAN device; the underlay captured on node A.
    let dir = std::env::var("PODTAP_LAB_DIR").expect("PODTAP_LAB_DIR names a lab output directory");
    let dir = Path::new(&dir);
    let truth = json(&dir.join("vxlan-truth.json"));
    let file = podtap::capture::CaptureFile::open(&dir.join("vxlan.pcap")).expect("the underlay capture");
    let no_cluster = || podtap::engine::Engine::new(std::sync::Arc::new(podtap::resolve::ClusterState::default()));
    let (records, _) = common::sharded_alike(&file, no_cluster);
    let http: Vec<&Record> = records.iter().filter(|r| r.http().is_some()).collect();
    assert_eq!(http.len() as u64, truth["requests"].as_u64().unwrap(), "every request the server logged");
    let conns: HashSet<u64> = http.iter().map(|r| r.conn).collect();
    assert_eq!(conns.len() as u64, truth["connections"].as_u64().unwrap());
    let statuses = counts(http.iter().map(|r| r.http().unwrap().status.unwrap().to_string()));
    assert_eq!(statuses, as_counts(&truth["by_status"]));
    for r in &http {
        let t = r.tunnel.as_deref().expect("seen inside the tunnel");
        assert_eq!((t.kind, t.vni), (podtap_shared::TunnelKind::Vxlan, Some(42)));
        let outer = [t.outer_src.to_string(), t.outer_dst.to_string()];
        assert!(outer.contains(&"192.168.60.1".to_string()) && outer.contains(&"192.168.60.2".to_string()));
        assert_eq!(format!("{}:{}", r.dst.ip, r.dst.port), truth["server"].as_str().unwrap());
    }
}

#[test]
fn every_way_of_running_a_file_gives_the_same_records() {
    // Frame by frame, batched on one thread, the front half (read, decode, reassemble, dissect)
    // on its own thread, and the front half sharded by connection over one to three threads: not
    // a single record may differ — same ids, same merges, same order — on every format, merged
    // and per interface. (The shipped capture has DNS over TCP and fragmented DNS answers.)
    use common::Reframe;
    use podtap::engine::Engine;
    let dir = common::demo_dir();
    let files = [
        podtap::capture::CaptureFile::open(&dir.join("capture.pcapng")).unwrap(),
        common::reframe(&dir, "capture.pcapng", Reframe::ClassicPcap),
        common::reframe(&dir, "capture.pcapng", Reframe::CookedV1),
    ];
    for file in &files {
        for per_interface in [false, true] {
            let engine = || {
                let e = Engine::new(common::cluster(&dir));
                if per_interface { e.per_interface() } else { e }
            };
            // Frame by frame, as live capture feeds it (connections numbered as a file's runs
            // number them): the reference for the batched runs.
            let mut e0 = engine().numbered_by_frame();
            let mut by_frame = Vec::new();
            let mut frames = file.frames();
            while let Some(frame) = frames.next() {
                e0.sync_interfaces(&frames);
                e0.on_frame(&frame.unwrap(), &mut by_frame);
            }
            e0.finish(&mut by_frame);
            let (one, one_stats) = common::sharded_alike(file, engine);
            let mut two = Vec::new();
            let mut e2 = engine();
            e2.run_file_on(file, 2, |b| two.append(b), |_| {}).unwrap();
            assert_eq!(by_frame, one, "{} per_interface={per_interface}", file.name());
            assert_eq!(one, two, "{} per_interface={per_interface}", file.name());
            assert_eq!(e0.stats(), one_stats);
            assert_eq!(one_stats, e2.stats());
        }
    }
}
