//! The seed scenario of DESIGN.md on the real cluster (`cargo xtask cluster up --nodes 2`, run by
//! the test command in kube-proxy's iptables and nftables modes): `end2end/k8s/scenarios/seed.yaml`
//! applied with the built kubectl; its pods scheduled by kube-scheduler, run and probed (kubelet's
//! own prober) by the lab's nodes, balanced by the real kube-proxy. An outside client calls the
//! NodePort one connection per request; Jobs call the ClusterIP over one keep-alive connection; a
//! web pod is deleted mid-run, so an address is handed from one pod to another; the second Job's
//! node reports its pod's address 9 s after the pod's container started; a last Job's calls through the
//! ClusterIP each get another source port from conntrack on the way (`moved-client`). `podtap hub` (admin kubeconfig)
//! with one `podtap agent` per node watches it all, and capture files taken beside them on every
//! node (pcapng, its classic-pcap merge, `tcpdump -i any`) are analysed at the end.
//!
//! The truth is the apps' own logs and the API server's own objects: every pod address podtap
//! names is checked against the pod that held it at the record's time, from a watch of the Pods
//! kept for the whole run (`kubectl get pods --watch`). See `common::lab_cluster`.

mod common;

use std::sync::{Arc, Mutex};

use common::lab_cluster::*;

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

    let clients = seed(&c, &nodes, || {});
    finish_and_check(&c, &addresses, &jobs(&clients), 2, Some(captures));
    // Records waited for new pods' names (seed-client-2's until the test released its address),
    // and none waited in vain.
    let engine = &health().expect("the hub answers")["engine"];
    assert!(engine["late_named"].as_u64() > Some(0), "{}: no record waited for a name: {engine}", c.mode);
    assert_eq!(engine["late_unnamed"].as_u64(), Some(0), "{}: {engine}", c.mode);
    let dns_objects = repo().join("end2end/k8s/scenarios/dns.yaml").display().to_string();
    c.kubectl(&["delete", "-f", &dns_objects, "--wait=true"]);
}
