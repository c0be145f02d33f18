//! The seed scenario of DESIGN.md on the real cluster (`cargo xtask cluster up --nodes 2`, run by
//! the test command in kube-proxy's iptables and nftables modes): `end2end/k8s/scenarios/seed.yaml`
//! applied with the built kubectl; its pods scheduled by kube-scheduler, run and probed (kubelet's
//! own prober) by the lab's nodes, balanced by the real kube-proxy. An outside client calls the
//! NodePort one connection per request; Jobs call the ClusterIP over one keep-alive connection; a
//! web pod is deleted mid-run, so an address is handed from one pod to another; the second Job's
//! node reports its pod's address 3 s after the pod began to talk. `podtap hub` (admin kubeconfig)
//! with one `podtap agent` per node watches it all, and capture files taken beside them on every
//! node (pcapng, its classic-pcap merge, `tcpdump -i any`) are analysed at the end.
//!
//! The truth is the apps' own logs and the API server's own objects: every pod address podtap
//! names is checked against the pod that held it at the record's time, from a watch of the Pods
//! kept for the whole run (`kubectl get pods --watch`). See `common::lab_cluster`.

mod common;

use std::sync::{Arc, Mutex};

use common::lab_cluster::*;
use podtap_shared::ViaKind;

#[test]
#[ignore = "needs the real cluster: cargo xtask test runs it after `cluster up --nodes 2`"]
fn the_seed_on_a_real_cluster_is_exact() {
    let c = Cluster::from_env("seed");
    let nodes = node_names(&c);
    let addresses = Arc::new(Mutex::new(Addresses::default()));
    let _watch = watch_pods(&c, addresses.clone());

    // podtap first, as a cluster has it before its workloads: the hub on lab-node-1 with the
    // admin kubeconfig, one agent per node following pod interfaces as they come.
    let _podtap = start_podtap(&c, &nodes, &c.dir.join("kubeconfig"));
    until("the hub's names listed", names_listed);
    // Beside the agents, capture files as users take them, analysed at the end.
    let captures = start_captures(&c, &nodes);

    // The seed: its pods' interfaces appear while podtap watches; every probe is seen.
    c.kubectl(&["apply", "-f", &repo().join("end2end/k8s/scenarios/seed.yaml").display().to_string()]);
    rollout(&c, "default", "web");

    // The outside client through the NodePort, the first Job through the ClusterIP.
    ext(&c, 1, 20);
    let client_1 = c.run_client("seed-client-1", HUB_NODE);
    // A web pod restarts: deleted, its replacement scheduled; the next Job on the deleted pod's
    // node takes the lowest free address of that node, one another pod held before. Its node
    // reports the pod's address 3 s after it started talking (a busy kubelet, a slow API
    // server): every request it made meanwhile must wait for the name, not go without it.
    let node = restart_a_web_pod(&c);
    ext(&c, 2, 20);
    let late = [(r#"report-after: "0s""#, r#"report-after: "3s""#)];
    let client_2 = c.run_job("seed-client", "seed-client-2", &node, &late);

    // A node that balances at the socket (Cilium's, Calico's eBPF kube-proxy replacement): the
    // client resolves web through the cluster DNS, and its own namespace translates the
    // ClusterIP at connect(). podtap counts those calls for web (`via: socketLB`); a pod that
    // calls a web pod's address without resolving anything stays `direct`.
    let web_ip = c.kubectl(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let dns = std::fs::read_to_string(repo().join("end2end/k8s/scenarios/dns.yaml")).unwrap();
    c.apply(&dns.replace("WEB_CLUSTER_IP", &web_ip));
    rollout(&c, "kube-system", "coredns");
    let backends = c.web_pods();
    let socket = c.run_job(
        "socket-lb-client",
        "socket-lb-client",
        HUB_NODE,
        &[("BACKEND_1", &backends[0].0), ("BACKEND_2", &backends[1].0)],
    );
    let other = nodes.iter().find(|n| n.as_str() != HUB_NODE).unwrap();
    let direct = c.run_job(
        "seed-client",
        "direct-client",
        other,
        &[("$(WEB_SERVICE_HOST)", &backends[1].0), ("$(WEB_SERVICE_PORT)", "3000")],
    );
    let clients = [
        ("seed-client-1", client_1.as_str(), ViaKind::ClusterIp),
        ("seed-client-2", client_2.as_str(), ViaKind::ClusterIp),
        ("socket-lb-client", socket.as_str(), ViaKind::SocketLb),
        ("direct-client", direct.as_str(), ViaKind::Direct),
    ];
    finish_and_check(&c, &addresses, &clients, 2, Some(captures));
    // Records waited for new pods' names (seed-client-2's for 3 s), and none waited in vain.
    let engine = &health().expect("the hub answers")["engine"];
    assert!(engine["late_named"].as_u64() > Some(0), "{}: no record waited for a name: {engine}", c.mode);
    assert_eq!(engine["late_unnamed"].as_u64(), Some(0), "{}: {engine}", c.mode);
    let dns_objects = repo().join("end2end/k8s/scenarios/dns.yaml").display().to_string();
    c.kubectl(&["delete", "-f", &dns_objects, "--wait=true"]);
}
