//! The seed scenario of DESIGN.md on the real cluster (`cargo xtask cluster up --nodes 2`, run by
//! the test command in kube-proxy's iptables and nftables modes): `end2end/k8s/scenarios/seed.yaml`
//! applied with the built kubectl; its pods scheduled by kube-scheduler, run and probed (kubelet's
//! own prober) by the lab's nodes, balanced by the real kube-proxy. An outside client calls the
//! NodePort one connection per request; Jobs call the ClusterIP over one keep-alive connection; a
//! web pod is deleted mid-run, so an address is handed from one pod to another. `podtap hub` (admin
//! kubeconfig) with one `podtap agent` per node watches it all.
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

    // The seed: its pods' interfaces appear while podtap watches; every probe is seen.
    c.kubectl(&["apply", "-f", &repo().join("end2end/k8s/scenarios/seed.yaml").display().to_string()]);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=90s"]);

    // The outside client through the NodePort, the first Job through the ClusterIP.
    ext(&c, 1, 20);
    let client_1 = c.run_client("seed-client-1", HUB_NODE);
    // A web pod restarts: deleted, its replacement scheduled; the next Job on the deleted pod's
    // node takes the lowest free address of that node, one another pod held before.
    let node = restart_a_web_pod(&c);
    ext(&c, 2, 20);
    let client_2 = c.run_client("seed-client-2", &node);
    finish_and_check(&c, &addresses, &[("seed-client-1", &client_1), ("seed-client-2", &client_2)], 2);
}
