//! The Kubernetes manifests in `deploy/kubernetes/` (a kustomize base) read as the official
//! types; the hub's ClusterRole grants exactly what its reflectors list and watch and the one
//! write that asks RBAC about people (create subjectaccessreviews), the viewers' exactly `get
//! traffic.podtap.io`, and nothing else is granted to anyone; the agent has no API access and
//! only CAP_NET_RAW; the hub meets Pod Security "restricted"; only agents reach the ingest port;
//! and every container's flags and environment are ones the binary takes.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::Value;

fn base() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// Every document of every file the kustomization lists.
fn documents() -> Vec<Value> {
    let k: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(base().join("kustomization.yaml")).unwrap()).unwrap();
    let files: Vec<String> =
        k["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(base())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(files.iter().cloned().collect::<BTreeSet<_>>(), on_disk, "every manifest is in the kustomization");
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(base().join(f)).unwrap();
            serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{f}: {e}"))
        })
        .collect()
}

fn all<T: serde::de::DeserializeOwned>(kind: &str) -> Vec<T> {
    documents()
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| serde_json::from_value(d).unwrap_or_else(|e| panic!("a valid {kind}: {e}")))
        .collect()
}

fn one<T: serde::de::DeserializeOwned>(kind: &str) -> T {
    let mut v = all::<T>(kind);
    assert_eq!(v.len(), 1, "one {kind}");
    v.remove(0)
}

#[test]
fn every_document_is_a_valid_object_of_its_kind() {
    let known = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "DaemonSet",
        "Service",
        "NetworkPolicy",
        "PersistentVolumeClaim",
    ];
    for d in documents() {
        let kind = d["kind"].as_str().unwrap().to_string();
        assert!(known.contains(&kind.as_str()), "unexpected {kind}");
    }
    let _: Vec<Namespace> = all("Namespace");
    let _: Vec<ServiceAccount> = all("ServiceAccount");
    let _: Service = one("Service");
    // Saved sessions survive a restart: the hub's data directory is on the claim.
    let claim: k8s_openapi::api::core::v1::PersistentVolumeClaim = one("PersistentVolumeClaim");
    let hub: k8s_openapi::api::apps::v1::Deployment = one("Deployment");
    let spec = hub.spec.unwrap().template.spec.unwrap();
    let volume = spec.volumes.unwrap().into_iter().find(|v| v.name == "data").expect("a data volume");
    assert_eq!(volume.persistent_volume_claim.unwrap().claim_name, claim.metadata.name.unwrap());
    let c = &spec.containers[0];
    let args = c.args.clone().unwrap();
    let dir = &args[args.iter().position(|a| a == "--data-dir").expect("--data-dir") + 1];
    assert!(c.volume_mounts.as_ref().unwrap().iter().any(|m| m.name == "data" && &m.mount_path == dir));
}

#[test]
fn only_the_hub_reads_the_api_and_only_what_its_reflectors_watch_and_asks_rbac() {
    let roles: Vec<ClusterRole> = all("ClusterRole");
    let named = |name: &str| roles.iter().find(|r| r.metadata.name.as_deref() == Some(name)).cloned().unwrap();
    assert_eq!(roles.len(), 2, "the hub's, and the one people are bound to");
    let mut rules = named("podtap-hub").rules.unwrap_or_default();
    // People's namespaces are asked of RBAC: create subjectaccessreviews, exactly.
    let review = rules.iter().position(|r| r.resources.iter().flatten().any(|x| x == "subjectaccessreviews"));
    let review = rules.remove(review.expect("the hub asks RBAC about people"));
    assert_eq!(
        (review.api_groups.unwrap(), review.resources.unwrap(), review.verbs),
        (
            vec!["authorization.k8s.io".to_string()],
            vec!["subjectaccessreviews".to_string()],
            vec!["create".to_string()]
        )
    );
    let viewer = named("podtap-traffic-viewer").rules.unwrap();
    assert_eq!(viewer.len(), 1);
    assert_eq!(
        (viewer[0].api_groups.clone().unwrap(), viewer[0].resources.clone().unwrap(), viewer[0].verbs.clone()),
        (vec!["podtap.io".to_string()], vec!["traffic".to_string()], vec!["get".to_string()])
    );
    // (API group, resource) of every reflector in resolve/watch.rs.
    let watched = [
        ("", "pods"),
        ("", "services"),
        ("", "nodes"),
        ("", "namespaces"),
        ("discovery.k8s.io", "endpointslices"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
    ];
    for (group, resource) in watched {
        let allowed = rules.iter().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && ["list", "watch"].iter().all(|v| r.verbs.iter().any(|x| x == v))
        });
        assert!(allowed, "list+watch on {group}/{resource}");
    }
    let granted: usize = rules.iter().map(|r| r.resources.as_ref().map_or(0, Vec::len)).sum();
    assert_eq!(granted, watched.len(), "read-only, and only what is watched");
    assert!(rules.iter().all(|r| r.verbs.iter().all(|v| ["get", "list", "watch"].contains(&v.as_str()))));
    let bindings: Vec<ClusterRoleBinding> = all("ClusterRoleBinding");
    let subjects: Vec<String> =
        bindings.iter().flat_map(|b| b.subjects.iter().flatten().map(|s| s.name.clone())).collect();
    assert_eq!(subjects, ["podtap-hub"], "the agent is bound to nothing");
    assert!(documents().iter().all(|d| d["kind"] != "RoleBinding"));
}

fn pod<T>(spec: Option<T>, template: impl Fn(T) -> Option<PodSpec>) -> PodSpec {
    template(spec.unwrap()).unwrap()
}

#[test]
fn the_agent_captures_with_only_net_raw_and_no_api_access() {
    let ds: DaemonSet = one("DaemonSet");
    let pod = pod(ds.spec, |s| s.template.spec);
    assert_eq!(pod.host_network, Some(true), "pod veths live in the host's network namespace");
    assert_eq!(pod.automount_service_account_token, Some(false), "no API token in the agent");
    let sa: ServiceAccount = all::<ServiceAccount>("ServiceAccount")
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some("podtap-agent"))
        .unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));
    let c = &pod.containers[0];
    let caps = c.security_context.as_ref().and_then(|s| s.capabilities.as_ref()).unwrap();
    assert_eq!(caps.add.as_deref(), Some(&["NET_RAW".to_string()][..]));
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!((sc.allow_privilege_escalation, sc.read_only_root_filesystem), (Some(false), Some(true)));
    assert!(sc.privileged.is_none_or(|p| !p));
    assert!(c.resources.as_ref().and_then(|r| r.limits.as_ref()).is_some_and(|l| l.contains_key("memory")));
}

#[test]
fn the_hub_meets_pod_security_restricted() {
    let d: Deployment = one("Deployment");
    restricted(&pod(d.spec, |s| s.template.spec));
    let namespaces: Vec<Namespace> = all("Namespace");
    let hub_ns = namespaces.iter().find(|n| n.metadata.name.as_deref() == Some("podtap")).unwrap();
    let labels = hub_ns.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("pod-security.kubernetes.io/enforce").map(String::as_str), Some("restricted"));
}

/// What Pod Security "restricted" asks of a pod, and a memory limit on every container.
fn restricted(pod: &PodSpec) {
    assert!(pod.host_network.is_none_or(|h| !h));
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()), Some("RuntimeDefault"));
    for c in &pod.containers {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert!(caps.add.is_none());
        assert!(c.resources.as_ref().and_then(|r| r.limits.as_ref()).is_some_and(|l| l.contains_key("memory")));
    }
}

#[test]
fn only_agents_reach_the_ingest_port() {
    let policy: NetworkPolicy = one("NetworkPolicy");
    let spec = policy.spec.unwrap();
    let rules = spec.ingress.unwrap_or_default();
    let ingest: Vec<_> = rules
        .iter()
        .filter(|r| {
            r.ports
                .iter()
                .flatten()
                .any(|p| p.port == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9091)))
        })
        .collect();
    assert_eq!(ingest.len(), 1);
    let from = ingest[0].from.clone().unwrap_or_default();
    assert!(!from.is_empty(), "the ingest port is not open to all");
    for peer in from {
        let labels = peer.pod_selector.and_then(|s| s.match_labels).unwrap_or_default();
        assert_eq!(labels.get("app.kubernetes.io/component").map(String::as_str), Some("agent"));
    }
}

/// The environment variables a subcommand reads.
fn env_names(sub: &str) -> BTreeSet<String> {
    let cmd = podtap::cli::Args::command();
    let sub = cmd.find_subcommand(sub).unwrap().clone();
    sub.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect()
}

fn check_container(c: &Container, sub: &str) {
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some(sub));
    // As the kubelet expands `$(POD_INDEX)`: the second replica.
    let expanded = args.iter().map(|a| a.replace("$(POD_INDEX)", "1"));
    let parsed = podtap::cli::Args::try_parse_from(std::iter::once("podtap".to_string()).chain(expanded));
    let parsed = parsed.unwrap_or_else(|e| panic!("{sub} {args:?}: {e}"));
    let known = env_names(sub);
    for e in c.env.iter().flatten() {
        // A variable the arguments name (`$(POD_INDEX)`) is Kubernetes', not the binary's.
        let in_args = args.iter().any(|a| a.contains(&format!("$({})", e.name)));
        assert!(in_args || known.contains(&e.name), "{sub} does not read {}: it reads {known:?}", e.name);
    }
    // With the token the manifests give it, the flags validate as the binary would take them.
    match parsed.command {
        Some(podtap::cli::Command::Hub(mut h)) => {
            h.token = Some("t".into());
            h.validate().unwrap();
        }
        Some(podtap::cli::Command::Agent(mut a)) => {
            (a.token, a.node) = (Some("t".into()), Some("n1".into()));
            a.validate().unwrap();
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_container_s_flags_and_environment_are_the_binary_s() {
    let ds: DaemonSet = one("DaemonSet");
    check_container(&pod(ds.spec, |s| s.template.spec).containers[0], "agent");
    let d: Deployment = one("Deployment");
    check_container(&pod(d.spec, |s| s.template.spec).containers[0], "hub");
}

/// The overlay past one hub (`deploy/overlays/bus`): its own documents.
fn overlay() -> Vec<Value> {
    let dir = base().join("../overlays/bus");
    ["bus.yaml", "hub-replicas.yaml"]
        .iter()
        .flat_map(|f| serde_saphyr::from_multiple::<Value>(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap())
        .collect()
}

#[test]
fn the_overlay_s_bus_and_hub_replicas_meet_restricted_and_take_their_flags() {
    let sets: Vec<StatefulSet> = overlay()
        .into_iter()
        .filter(|d| d["kind"] == "StatefulSet")
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    let by = |name: &str| sets.iter().find(|s| s.metadata.name.as_deref() == Some(name)).unwrap().clone();
    let bus = pod(by("podtap-bus").spec, |s| s.template.spec);
    restricted(&bus);
    assert_eq!(bus.automount_service_account_token, Some(false), "the bus needs no API access");
    let hubs = by("podtap-hub").spec.unwrap();
    let replicas = hubs.replicas.unwrap();
    let hub = hubs.template.spec.unwrap();
    restricted(&hub);
    assert_eq!(hub.service_account_name.as_deref(), Some("podtap-hub"), "the base's RBAC, no more");
    let c = &hub.containers[0];
    check_container(c, "hub");
    let args = c.args.clone().unwrap();
    let replica = &args[args.iter().position(|a| a == "--replica").unwrap() + 1];
    assert_eq!(replica, &format!("$(POD_INDEX)/{replicas}"), "as many replicas as the StatefulSet runs");
    // The agents' arguments the overlay patches in.
    let k: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(base().join("../overlays/bus/kustomization.yaml")).unwrap())
            .unwrap();
    let patch = k["patches"].as_array().unwrap().iter().find(|p| p["target"]["kind"] == "DaemonSet").unwrap();
    let ops: Value = serde_saphyr::from_str(patch["patch"].as_str().unwrap()).unwrap();
    let mut agent: Container = one::<DaemonSet>("DaemonSet").spec.unwrap().template.spec.unwrap().containers[0].clone();
    agent.args = serde_json::from_value(ops[0]["value"].clone()).unwrap();
    check_container(&agent, "agent");
    // Only agents and hubs reach the bus.
    let policy: NetworkPolicy = overlay()
        .into_iter()
        .find(|d| d["kind"] == "NetworkPolicy")
        .map(|d| serde_json::from_value(d).unwrap())
        .unwrap();
    for rule in policy.spec.unwrap().ingress.unwrap() {
        for peer in rule.from.unwrap() {
            let labels = peer.pod_selector.and_then(|s| s.match_labels).unwrap_or_default();
            let component = labels.get("app.kubernetes.io/component").map(String::as_str);
            assert!(matches!(component, Some("agent" | "hub")), "{component:?}");
        }
    }
}
