//! A synthetic cluster as a user would bring it: a capture and the cluster's List. 1,000 pods in
//! 50 namespaces on 8 nodes, 250 Deployments (4 replicas each, through their ReplicaSets) behind
//! their Services, and 3,000 caller → callee pairs, each one keep-alive HTTP connection through
//! the callee's ClusterIP — seen on the caller's side (to the ClusterIP) and on the callee's (to
//! the pod, after kube-proxy's DNAT), as two interfaces of one pcapng. Also `truth.json`: the
//! requests each pod served and each workload, which the map must show.
//!
//! `cargo run --release -p podtap --example synth_cluster -- DIR [PODS] [PAIRS] [SECONDS]`: the
//! pairs' connections start over SECONDS (default 60; 40,000 pairs over 10 s offer ~20k requests/s).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use etherparse::PacketBuilder;
use podtap::capture::LinkType;
use podtap::capture::write::PcapngWriter;
use serde_json::{Value, json};

const NAMESPACES: u32 = 50;
const NODES: u32 = 8;
/// 2026-12-01T00:00:00Z, in ns.
const T0_NS: u64 = 1_796_083_200_000_000_000;

/// Pod `p`'s address: its node's `10.244.N.0/24` for the first 250 on each node (the 1,000-pod
/// cluster's), then `10.244.N+8.0/24`, `10.244.N+16.0/24`… (the node's further pod ranges).
fn pod_ip(p: u32) -> Ipv4Addr {
    let (node, i) = (p % NODES, p / NODES);
    Ipv4Addr::new(10, 244, (node + NODES * (i / 250)) as u8, (i % 250 + 2) as u8)
}

/// Node `n`'s pod ranges for `pods` pods.
fn pod_cidrs(n: u32, pods: u32) -> Vec<String> {
    let ranges = pods.div_ceil(NODES).div_ceil(250).max(1);
    (0..ranges).map(|r| format!("10.244.{}.0/24", n + NODES * r)).collect()
}

struct Pod {
    name: String,
    ns: String,
    app: u32,
    ip: Ipv4Addr,
    node: u32,
}

fn pod(p: u32) -> Pod {
    let app = p / 4;
    Pod {
        name: format!("app-{app}-5d9f7c6b8-{:05x}", p.wrapping_mul(40_503) & 0xfffff),
        ns: format!("ns-{}", app % NAMESPACES),
        app,
        ip: pod_ip(p),
        node: p % NODES,
    }
}

fn service_ip(app: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 96, (app / 250) as u8, (app % 250 + 1) as u8)
}

fn meta(name: &str, ns: Option<&str>) -> Value {
    // FNV-1a of the namespace and name: a stable, distinct uid.
    let h = ns
        .unwrap_or("")
        .bytes()
        .chain([b'/'])
        .chain(name.bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let uid = format!("{:08x}-0000-4000-8000-{:012x}", h >> 32, h & 0xffff_ffff_ffff);
    let mut m =
        json!({ "name": name, "uid": uid, "resourceVersion": "1000", "creationTimestamp": "2026-12-01T00:00:00Z" });
    if let Some(ns) = ns {
        m["namespace"] = ns.into();
    }
    m
}

fn list(pods: &[Pod], apps: u32) -> Value {
    let mut items = Vec::new();
    for n in 0..NAMESPACES {
        items.push(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": meta(&format!("ns-{n}"), None) }));
    }
    for n in 0..NODES {
        items.push(json!({ "apiVersion": "v1", "kind": "Node", "metadata": meta(&format!("node-{n}"), None),
            "spec": { "podCIDR": format!("10.244.{n}.0/24"), "podCIDRs": pod_cidrs(n, pods.len() as u32) },
            "status": { "addresses": [{ "type": "InternalIP", "address": format!("192.168.50.{}", n + 2) }] } }));
    }
    for p in pods {
        let mut m = meta(&p.name, Some(&p.ns));
        m["labels"] = json!({ "app": format!("app-{}", p.app), "pod-template-hash": "5d9f7c6b8" });
        m["ownerReferences"] = json!([{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("app-{}-5d9f7c6b8", p.app), "uid": "00000000-0000-4000-8000-000000000001", "controller": true }]);
        items.push(json!({ "apiVersion": "v1", "kind": "Pod", "metadata": m,
            "spec": { "nodeName": format!("node-{}", p.node), "containers": [{ "name": "app", "image": "synthetic/app:1", "ports": [{ "containerPort": 8080, "protocol": "TCP" }] }] },
            "status": { "phase": "Running", "hostIP": format!("192.168.50.{}", p.node + 2), "podIP": p.ip.to_string(), "podIPs": [{ "ip": p.ip.to_string() }] } }));
    }
    for app in 0..apps {
        let ns = format!("ns-{}", app % NAMESPACES);
        let name = format!("app-{app}");
        let mut rs = meta(&format!("{name}-5d9f7c6b8"), Some(&ns));
        rs["ownerReferences"] = json!([{ "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": "00000000-0000-4000-8000-000000000002", "controller": true }]);
        items.push(json!({ "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": rs, "spec": { "selector": { "matchLabels": {} } } }));
        items.push(json!({ "apiVersion": "v1", "kind": "Service", "metadata": meta(&name, Some(&ns)),
            "spec": { "type": "ClusterIP", "clusterIP": service_ip(app).to_string(), "clusterIPs": [service_ip(app).to_string()],
                "ports": [{ "name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP" }], "selector": { "app": name } } }));
        let mut slice = meta(&format!("{name}-abcde"), Some(&ns));
        slice["labels"] = json!({ "kubernetes.io/service-name": name });
        let endpoints: Vec<Value> = pods
            .iter()
            .filter(|p| p.app == app)
            .map(|p| json!({ "addresses": [p.ip.to_string()], "conditions": { "ready": true }, "nodeName": format!("node-{}", p.node),
                "targetRef": { "kind": "Pod", "name": p.name, "namespace": p.ns } }))
            .collect();
        items.push(json!({ "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": slice, "addressType": "IPv4",
            "endpoints": endpoints, "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }] }));
    }
    json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "" }, "items": items })
}

/// One TCP segment, on one side of the DNAT.
struct Side {
    iface: u32,
    dst: Ipv4Addr,
    dst_port: u16,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "synthetic-cluster".into()));
    let pods_n: u32 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let pairs: u32 = args.next().map_or(Ok(3000), |a| a.parse())?;
    let spread_ns: u64 = args.next().map_or(Ok(60), |a| a.parse::<u64>())? * 1_000_000_000;
    std::fs::create_dir_all(&dir)?;
    let pods: Vec<Pod> = (0..pods_n).map(pod).collect();
    let apps = pods_n / 4;
    std::fs::write(dir.join("cluster.json"), serde_json::to_vec(&list(&pods, apps))?)?;

    let mut w = PcapngWriter::new(BufWriter::new(File::create(dir.join("capture.pcapng"))?))?;
    let client_if = w.add_interface("callers", LinkType::Ethernet, 65_535)?;
    let server_if = w.add_interface("callees", LinkType::Ethernet, 65_535)?;
    let mut served: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_workload: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0u64;
    // Every frame, then written in time order, as a capture has them.
    let mut frames: Vec<(u64, u32, Vec<u8>)> = Vec::new();
    for i in 0..pairs {
        let (from, to) = (i % pods_n, (i.wrapping_mul(2_654_435_761) >> 7) % pods_n);
        let (c, t) = (&pods[from as usize], &pods[to as usize]);
        let requests = 3 + i % 5;
        let port = 20_000 + i as u16;
        // Spread over the seconds asked; a request every 150 ms on the connection.
        let start = T0_NS + u64::from(i) * spread_ns / u64::from(pairs);
        let sides = [
            Side { iface: client_if, dst: service_ip(t.app), dst_port: 80 },
            Side { iface: server_if, dst: t.ip, dst_port: 8080 },
        ];
        let (mut cs, mut ss) = (1_000u32, 5_000u32);
        let mut segs: Vec<(u64, bool, u8, Vec<u8>)> =
            vec![(0, true, 0x02, vec![]), (60_000, false, 0x12, vec![]), (120_000, true, 0x10, vec![])];
        for k in 0..requests {
            let at = 200_000 + u64::from(k) * 150_000_000;
            let status = if (i + k) % 97 == 0 { "500 Internal Server Error" } else { "200 OK" };
            let req = format!("GET /items/{k} HTTP/1.1\r\nHost: app-{}.{}\r\nUser-Agent: synth\r\n\r\n", t.app, t.ns);
            let body = format!("item {k} from {}\n", t.name);
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
                body.len()
            );
            segs.push((at, true, 0x18, req.into_bytes()));
            segs.push((at + 900_000 + u64::from(i % 13) * 400_000, false, 0x18, resp.into_bytes()));
        }
        let end = 200_000 + u64::from(requests) * 150_000_000;
        segs.push((end, true, 0x11, vec![]));
        segs.push((end + 60_000, false, 0x11, vec![]));
        segs.push((end + 120_000, true, 0x10, vec![]));
        for (dt, from_client, flags, payload) in segs {
            for (n, side) in sides.iter().enumerate() {
                let (src, dst, sp, dp) = if from_client {
                    (c.ip, side.dst, port, side.dst_port)
                } else {
                    (side.dst, c.ip, side.dst_port, port)
                };
                let (seq, ack) = if from_client { (cs, ss) } else { (ss, cs) };
                let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                    .ipv4(src.octets(), dst.octets(), 64)
                    .tcp(sp, dp, seq, 64_000);
                let b = match flags {
                    0x02 => b.syn(),
                    0x12 => b.syn().ack(ack),
                    0x11 => b.fin().ack(ack),
                    0x18 => b.psh().ack(ack),
                    _ => b.ack(ack),
                };
                let mut out = Vec::with_capacity(80 + payload.len());
                b.write(&mut out, &payload)?;
                // The callee's side sees each segment 20 µs after the caller's (or before, back).
                let shift = if (n == 1) == from_client { 20_000 } else { 0 };
                frames.push((start + dt + shift, side.iface, out));
            }
            let len = payload.len() as u32 + u32::from(flags & 0x03 != 0);
            if from_client {
                cs = cs.wrapping_add(len);
            } else {
                ss = ss.wrapping_add(len);
            }
        }
        *served.entry(format!("{}/{}", t.ns, t.name)).or_default() += u64::from(requests);
        *by_workload.entry(format!("workload:{}/Deployment/app-{}", t.ns, t.app)).or_default() += u64::from(requests);
        total += u64::from(requests);
    }
    frames.sort_by_key(|f| (f.0, f.1));
    for (ts, iface, data) in &frames {
        w.write_packet(*iface, *ts, data.len() as u32, data)?;
    }
    w.flush()?;
    let frames = frames.len();
    std::fs::write(
        dir.join("truth.json"),
        serde_json::to_vec_pretty(
            &json!({ "pods": pods_n, "pairs": pairs, "requests": total, "frames": frames, "served": served, "workloads": by_workload }),
        )?,
    )?;
    eprintln!("synth_cluster: {} — {pods_n} pods, {pairs} pairs, {total} requests, {frames} frames", dir.display());
    Ok(())
}
