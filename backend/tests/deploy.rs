//! The Kubernetes manifests in `deploy/kubernetes/` read as the official types, and the ClusterRole
//! grants exactly what podtap's reflectors list and watch (so a new reflector without RBAC fails
//! here, not in someone's cluster).

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::rbac::v1::ClusterRole;
use serde_json::Value;

fn documents() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/podtap.yaml");
    serde_saphyr::from_multiple(&std::fs::read_to_string(path).expect("manifest")).expect("YAML")
}

fn of_kind(kind: &str) -> Value {
    documents().into_iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("a {kind} in the manifest"))
}

#[test]
fn the_cluster_role_allows_what_the_reflectors_watch_and_nothing_more() {
    let role: ClusterRole = serde_json::from_value(of_kind("ClusterRole")).expect("a valid ClusterRole");
    let rules = role.rules.unwrap_or_default();
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
}

#[test]
fn the_daemon_set_captures_on_pod_interfaces_with_only_net_raw_and_a_token() {
    let ds: DaemonSet = serde_json::from_value(of_kind("DaemonSet")).expect("a valid DaemonSet");
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true), "pod veths live in the host's network namespace");
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap_or_default();
    assert!(args.contains(&"--pod-interfaces".to_string()));
    let caps = c.security_context.as_ref().and_then(|s| s.capabilities.as_ref()).unwrap();
    assert_eq!(caps.add.as_deref(), Some(&["NET_RAW".to_string()][..]));
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    let env = c.env.clone().unwrap_or_default();
    assert!(
        env.iter().any(|e| e.name == "PODTAP_TOKEN" && e.value_from.is_some()),
        "listening beyond loopback needs a token"
    );
}
