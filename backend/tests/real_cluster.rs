//! podtap against a real Kubernetes API server: `cargo xtask cluster up` (kube-apiserver, etcd,
//! kube-controller-manager and kube-scheduler built from their Go modules) runs before these, and
//! the test command sets PODTAP_CLUSTER_DIR. The demo capture's cluster is made through the API —
//! namespaces, its node (kept Ready by a heartbeat, as a kubelet would), Services with their
//! ClusterIPs, pods bound to the node and reported Running and Ready with their IPs — and the
//! EndpointSlices are the real controller's. Then `podtap serve --pcap` with the admin kubeconfig
//! names every pod and serves exact balance; the hub's manifests go in with the built kubectl
//! (`apply -k deploy/kubernetes`) under PodSecurity "restricted", and `podtap hub` with its own
//! ServiceAccount's token (TokenRequest) lists every kind it needs under the real authorizer, and
//! may do nothing more.
//!
//! Pods here are API objects only: no kubelet runs them (the demo capture is their traffic).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::served;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

fn cluster_dir() -> PathBuf {
    PathBuf::from(std::env::var("PODTAP_CLUSTER_DIR").expect("PODTAP_CLUSTER_DIR: run through `cargo xtask test`"))
}

fn kubectl() -> PathBuf {
    PathBuf::from(std::env::var("PODTAP_KUBECTL").expect("PODTAP_KUBECTL: the built kubectl"))
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let config = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Polls `ok` every 200 ms for up to 60 s.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut ok: impl FnMut() -> F) {
    let start = Instant::now();
    while !ok().await {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An object of the demo's List as a client creates it: no server-set metadata, no owners (the
/// demo's Deployments are not made here), no status.
fn as_created(mut o: Value) -> (Value, Value) {
    let status = o.as_object_mut().unwrap().remove("status").unwrap_or(Value::Null);
    let meta = o["metadata"].as_object_mut().unwrap();
    for k in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "ownerReferences", "generation"] {
        meta.remove(k);
    }
    (o, status)
}

async fn create<K>(api: &Api<K>, obj: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(obj).unwrap();
    // Made by an earlier run of this test against the same cluster: kept.
    if let Some(name) = typed.meta().name.as_deref()
        && let Some(there) = api.get_opt(name).await.unwrap()
    {
        return there;
    }
    match api.create(&PostParams::default(), &typed).await {
        Ok(k) => k,
        Err(kube::Error::Api(e)) if e.code == 409 => typed,
        Err(e) => panic!("creating {typed:?}: {e}"),
    }
}

/// The node's Ready condition, now: what a kubelet's status update says.
fn node_ready() -> Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "the lab's heartbeat", "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
}

/// The demo's objects made through the API; a task keeps its node Ready while the test runs.
async fn make_demo_cluster(client: &kube::Client) -> tokio::task::JoinHandle<()> {
    let list: Value = serde_json::from_slice(&std::fs::read(common::demo_dir().join("cluster.json")).unwrap()).unwrap();
    let items = list["items"].as_array().unwrap();
    let of = |kind: &'static str| items.iter().filter(move |o| o["kind"] == kind).cloned().map(as_created);
    for (ns, _) in of("Namespace") {
        create(&Api::<Namespace>::all(client.clone()), ns).await;
    }
    for (node, status) in of("Node") {
        let name = node["metadata"]["name"].as_str().unwrap().to_string();
        create(&Api::<Node>::all(client.clone()), node).await;
        let nodes = Api::<Node>::all(client.clone());
        nodes.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await.unwrap();
        nodes.patch_status(&name, &PatchParams::default(), &Patch::Strategic(node_ready())).await.unwrap();
    }
    for (svc, _) in of("Service") {
        let ns = svc["metadata"]["namespace"].as_str().unwrap().to_string();
        create(&Api::<Service>::namespaced(client.clone(), &ns), svc).await;
    }
    for (pod, status) in of("Pod") {
        let ns = pod["metadata"]["namespace"].as_str().unwrap().to_string();
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        // The ServiceAccount admission wants the namespace's `default` account, which the
        // controller-manager makes just after the namespace.
        let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
        until("the default ServiceAccount", || async { accounts.get_opt("default").await.ok().flatten().is_some() })
            .await;
        let pods = Api::<Pod>::namespaced(client.clone(), &ns);
        create(&pods, pod).await;
        let ip = status["podIP"].clone();
        let ready = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "hostIP": status["hostIP"], "conditions": [
                {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"},
                {"type": "Initialized", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(ready))
            .await
            .unwrap_or_else(|e| panic!("pod {ns}/{name} status: {e}"));
    }
    let nodes: Vec<String> = of("Node").map(|(n, _)| n["metadata"]["name"].as_str().unwrap().to_string()).collect();
    let c = client.clone();
    tokio::spawn(async move {
        let api = Api::<Node>::all(c);
        loop {
            for n in &nodes {
                let _ = api.patch_status(n, &PatchParams::default(), &Patch::Strategic(node_ready())).await;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    })
}

/// `kubectl ARGS` with `kubeconfig`: its output, or its error.
fn run_kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let out =
        Command::new(kubectl()).arg(format!("--kubeconfig={}", kubeconfig.display())).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() { Ok(text) } else { Err(text) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask cluster up`: `cargo xtask test` runs it and sets PODTAP_CLUSTER_DIR"]
async fn podtap_names_the_demo_from_a_real_api_server_and_the_hub_needs_exactly_its_rbac() {
    let dir = cluster_dir();
    let admin = dir.join("kubeconfig");
    let client = client(&admin).await;
    let heartbeat = make_demo_cluster(&client).await;

    // The real EndpointSlice controller: every Service with its ready pods.
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default");
    until("web's EndpointSlice with both replicas ready", || async {
        let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await.unwrap();
        let ready = list
            .items
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true));
        ready.count() == 2
    })
    .await;

    // `podtap serve --pcap` with the admin kubeconfig, replayed as if live: the pods were made
    // just now, and a pod names no traffic from before it existed (names are as of each
    // record's time), so the capture's time moves to now.
    let truth = common::ground_truth(&common::demo_dir());
    let serve = podtap(
        &["serve", "--pcap", &common::demo_dir().join("capture.pcapng").display().to_string(), "--realtime"],
        &admin,
    );
    // The capture lasts about 25 s.
    let seen = served::named_and_exact_within(serve.addr, &truth, Duration::from_secs(90)).await;
    serve.stop();
    let (health, balance, map) = seen.expect("podtap named the demo from the real API server");
    served::assert_names_and_balance(&truth, &health, &balance, &map);
    assert_eq!(health["cluster"]["missing"], json!([]), "{health}");

    // The manifests, applied as a user would, into namespaces that enforce "restricted" (the hub)
    // and "privileged" (the agents): the real admission lets the hub's pod in.
    run_kubectl(&admin, &["apply", "-k", &repo().join("deploy/kubernetes").display().to_string()])
        .unwrap_or_else(|e| panic!("kubectl apply -k deploy/kubernetes: {e}"));
    let hub_pods = Api::<Pod>::namespaced(client.clone(), "podtap");
    until("the hub's pod, admitted under PodSecurity restricted", || async {
        !hub_pods.list(&ListParams::default()).await.unwrap().items.is_empty()
    })
    .await;
    // …and refuses a privileged one there.
    let privileged = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged", "namespace": "podtap"},
        "spec": {"containers": [{"name": "c", "image": "podtap", "securityContext": {"privileged": true}}]}});
    let refused = hub_pods.create(&PostParams::default(), &serde_json::from_value(privileged).unwrap()).await;
    match refused {
        Err(kube::Error::Api(e)) => assert!(e.message.contains("violates PodSecurity \"restricted"), "{}", e.message),
        other => panic!("a privileged pod in podtap: {other:?}"),
    }

    // Past one hub: the overlay's bus and hub replicas (StatefulSets) admitted the same way, with
    // not a warning from PodSecurity "restricted" about their pod templates (the agents' namespace
    // warns at "baseline", as for the base).
    let overlay = repo().join("deploy/overlays/bus").display().to_string();
    let applied = run_kubectl(&admin, &["apply", "-k", &overlay]).unwrap_or_else(|e| panic!("apply -k {overlay}: {e}"));
    assert!(!applied.contains("PodSecurity \"restricted"), "{applied}");
    for pod in ["podtap-hub-0", "podtap-hub-1", "podtap-bus-0"] {
        until(&format!("{pod}, admitted under PodSecurity restricted"), || async {
            hub_pods.get_opt(pod).await.unwrap().is_some()
        })
        .await;
    }

    // The hub with its own ServiceAccount's token, as it runs in the cluster.
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), "podtap");
    let token: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    let token = accounts.create_token_request("podtap-hub", &PostParams::default(), &token).await.unwrap();
    let sa_config = token_kubeconfig(&dir, "podtap-hub", &token.status.expect("a token").token, None);
    let hub = podtap(&["hub", "--ingest", "127.0.0.1:0"], &sa_config);
    let health = ready(hub.addr, "the hub ready with its ServiceAccount").await;
    hub.stop();
    assert_eq!(health["cluster"]["missing"], json!([]), "every kind listed under its RBAC: {health}");
    assert!(health["cluster"]["objects"].as_u64().unwrap() > 0, "{health}");
    // Read-only, and no Secret: what the authorizer says the token may not do.
    for (verb, what) in [("list", "secrets"), ("create", "pods"), ("delete", "pods"), ("update", "services")] {
        let can = run_kubectl(&sa_config, &["auth", "can-i", verb, what, "-A"]);
        assert!(can.is_err(), "the hub's token may {verb} {what}: {can:?}");
    }
    for what in ["pods", "services", "nodes", "endpointslices.discovery.k8s.io", "replicasets.apps", "jobs.batch"] {
        assert!(run_kubectl(&sa_config, &["auth", "can-i", "watch", what, "-A"]).is_ok(), "watch {what}");
    }
    a_user_with_one_namespaced_role(&client, &dir).await;
    people_see_what_rbac_grants(&client, &sa_config).await;
    heartbeat.abort();
    // Leave the cluster as it was for a run after this one.
    let _ = run_kubectl(&admin, &["delete", "-k", &overlay, "--wait=false"]);
    let _ =
        run_kubectl(&admin, &["delete", "-k", &repo().join("deploy/kubernetes").display().to_string(), "--wait=false"]);
    let _ = Api::<Pod>::namespaced(client.clone(), "default")
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
}

/// A kubeconfig for the lab's API server with a bearer token, in `namespace` when given.
fn token_kubeconfig(dir: &Path, user: &str, token: &str, namespace: Option<&str>) -> PathBuf {
    let admin_text = std::fs::read_to_string(dir.join("kubeconfig")).unwrap();
    let ca = admin_text.lines().find_map(|l| l.trim().strip_prefix("certificate-authority: ")).unwrap().to_string();
    let namespace = namespace.map(|n| format!("\n    namespace: {n}")).unwrap_or_default();
    let path = dir.join(format!("{user}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: https://127.0.0.1:6443\n    \
             certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: lab\n  \
             context:\n    cluster: lab\n    user: {user}{namespace}\ncurrent-context: lab\n"
        ),
    )
    .unwrap();
    path
}

/// A user whose only grant is a Role in namespace `shop` (a ServiceAccount there, its token):
/// `podtap serve --namespace shop` starts, names shop's pods, and says in `/healthz` what it could
/// not list — nodes (cluster-scoped: forbidden) and every other namespace.
async fn a_user_with_one_namespaced_role(client: &kube::Client, dir: &Path) {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let ns = "shop";
    create(
        &Api::<ServiceAccount>::namespaced(client.clone(), ns),
        json!({"metadata": {"name": "viewer", "namespace": ns}}),
    )
    .await;
    let read = json!(["get", "list", "watch"]);
    create(
        &Api::<Role>::namespaced(client.clone(), ns),
        json!({"metadata": {"name": "traffic-viewer", "namespace": ns}, "rules": [
            {"apiGroups": [""], "resources": ["pods", "services"], "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
            {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": read},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": read}]}),
    )
    .await;
    create(
        &Api::<RoleBinding>::namespaced(client.clone(), ns),
        json!({"metadata": {"name": "traffic-viewer", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "traffic-viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": ns}]}),
    )
    .await;
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    let token = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request("viewer", &PostParams::default(), &request)
        .await
        .unwrap();
    let config = token_kubeconfig(dir, "shop-viewer", &token.status.expect("a token").token, Some(ns));
    assert!(run_kubectl(&config, &["auth", "can-i", "list", "pods", "-n", "default"]).is_err(), "one namespace only");

    let capture = common::demo_dir().join("capture.pcapng").display().to_string();
    let serve = podtap(&["serve", "--pcap", &capture, "--realtime"], &config);
    let health = ready(serve.addr, "serve ready under one Role").await;
    let missing = health["cluster"]["missing"].as_array().cloned().unwrap_or_default();
    let reason =
        |kind: &str| missing.iter().find(|m| m["kind"] == kind).map(|m| m["reason"].as_str().unwrap().to_string());
    assert!(reason("nodes").is_some_and(|r| r.contains("403")), "nodes are forbidden to it, and said so: {health}");
    assert!(reason("pods").is_some_and(|r| r.contains("shop")), "pods listed only in shop, and said so: {health}");
    // shop's pods are named from its own lists; default's are not (it may not see them).
    until("a request to a shop pod, named", || {
        let page = served::http_get(serve.addr, "/api/v1/records?limit=10000");
        let records = page.map(|(_, v)| v["records"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
        let shop = records.iter().any(|r| r["dst"]["namespace"] == "shop" && r["dst"]["name"].is_string());
        let default_named = records.iter().any(|r| r["dst"]["namespace"] == "default" && r["dst"]["kind"] == "pod");
        assert!(!default_named, "a pod of default named by a user who may not list them");
        async move { shop }
    })
    .await;
    serve.stop();
}

/// People signed in through a trusted proxy see the namespaces RBAC grants them: the hub (with
/// its own ServiceAccount, whose only write is `create subjectaccessreviews`) asks the real
/// authorizer whether they may `get traffic.podtap.io` — alice by a RoleBinding in shop, the
/// group team-default by one in default, the group traffic-all by a ClusterRoleBinding, carol by
/// nothing. Removing alice's RoleBinding ends what her open stream shows within the cache's time.
async fn people_see_what_rbac_grants(client: &kube::Client, hub_config: &Path) {
    use futures_util::StreamExt;
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    assert!(
        run_kubectl(hub_config, &["auth", "can-i", "create", "subjectaccessreviews.authorization.k8s.io"]).is_ok(),
        "the hub may ask RBAC"
    );
    let role = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "podtap-traffic-viewer"});
    let binding = |ns: &str, name: &str, kind: &str, subject: &str| {
        json!({"metadata": {"name": name, "namespace": ns}, "roleRef": role,
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}]})
    };
    let shop_bindings = Api::<RoleBinding>::namespaced(client.clone(), "shop");
    create(&shop_bindings, binding("shop", "alice-traffic", "User", "alice")).await;
    let default_bindings = Api::<RoleBinding>::namespaced(client.clone(), "default");
    create(&default_bindings, binding("default", "team-default-traffic", "Group", "team-default")).await;
    let everywhere = Api::<ClusterRoleBinding>::all(client.clone());
    let mut all = binding("", "traffic-all", "Group", "traffic-all");
    all["metadata"].as_object_mut().unwrap().remove("namespace");
    create(&everywhere, all).await;

    let capture = common::demo_dir().join("capture.pcapng").display().to_string();
    let proxy = ["--auth-proxy-user-header", "X-Forwarded-User", "--auth-proxy-groups-header", "X-Forwarded-Groups"];
    let mut args = vec!["serve", "--pcap", &capture, "--realtime", "--token", "admin-s3cret"];
    args.extend(proxy);
    args.extend(["--auth-proxy-from", "127.0.0.1/32"]);
    let serve = podtap(&args, hub_config);
    ready(serve.addr, "serve with people, under the hub's RBAC").await;
    let addr = serve.addr;
    let as_ = move |user: &'static str, groups: &'static str, path: &str| {
        served::http_get_with(addr, path, &[("X-Forwarded-User", user), ("X-Forwarded-Groups", groups)])
            .unwrap_or_else(|| panic!("{path} as {user}"))
            .1
    };
    until("alice's records", || {
        let n = as_("alice", "", "/api/v1/records?limit=10000")["records"].as_array().map_or(0, Vec::len);
        async move { n > 20 }
    })
    .await;
    for (user, groups, namespaces) in [
        ("alice", "", json!(["shop"])),
        ("dave", "team-default", json!(["default"])),
        ("erin", "traffic-all", Value::Null),
        ("carol", "", json!([])),
    ] {
        let me = as_(user, groups, "/api/v1/whoami");
        assert_eq!(me["namespaces"], namespaces, "{user}: {me}");
        let why = me["why"].to_string();
        assert!(namespaces == json!([]) || why.contains("RBAC allows get traffic.podtap.io"), "{user}: {me}");
        assert!(why.contains("RoleBinding") || why.contains("ClusterRoleBinding") || namespaces == json!([]), "{me}");
    }
    let records = as_("alice", "", "/api/v1/records?limit=10000&kind=all")["records"].as_array().cloned().unwrap();
    for r in &records {
        let ns = |side: &str| r[side]["namespace"].as_str().map(str::to_string);
        assert!(ns("src").as_deref() == Some("shop") || ns("dst").as_deref() == Some("shop"), "alice sees {r}");
        for side in ["src", "dst"] {
            if ns(side).as_deref() != Some("shop") {
                assert_eq!(r[side]["hidden"], true, "{r}");
                assert!(r[side]["name"].is_null() && r[side]["ip"] == "0.0.0.0", "{r}");
            }
        }
    }
    assert!(as_("carol", "", "/api/v1/records?limit=10000")["records"].as_array().unwrap().is_empty());

    // Alice's stream, open while her RoleBinding goes: it starts again from an empty snapshot.
    let mut req = format!("ws://{addr}/api/v1/stream").into_client_request().unwrap();
    req.headers_mut().insert("x-forwarded-user", "alice".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut snapshots = 0;
    let revoked_at = loop {
        let text = match ws.next().await.expect("open").expect("a frame") {
            tokio_tungstenite::tungstenite::Message::Text(t) => t.to_string(),
            _ => continue,
        };
        let m: Value = serde_json::from_str(&text).unwrap();
        if m["type"] == "snapshot" {
            snapshots += 1;
            assert!(!m["records"].as_array().unwrap().is_empty(), "alice's first snapshot");
            shop_bindings.delete("alice-traffic", &DeleteParams::default()).await.unwrap();
            break Instant::now();
        }
    };
    let emptied = tokio::time::timeout(Duration::from_secs(45), async {
        loop {
            let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = ws.next().await else { continue };
            let m: Value = serde_json::from_str(&t).unwrap();
            if m["type"] == "snapshot" && m["records"].as_array().unwrap().is_empty() {
                return;
            }
            if m["type"] == "records" {
                let shown = m["records"].as_array().unwrap().len();
                assert!(revoked_at.elapsed() < Duration::from_secs(25), "{shown} records after the binding went");
            }
        }
    })
    .await;
    assert!(emptied.is_ok() && snapshots == 1, "the stream followed the RoleBinding's removal");
    assert_eq!(as_("alice", "", "/api/v1/whoami")["namespaces"], json!([]));
    serve.stop();
    let _ = default_bindings.delete("team-default-traffic", &DeleteParams::default()).await;
    let _ = everywhere.delete("traffic-all", &DeleteParams::default()).await;
}

/// A podtap with `kubeconfig`, listening where the kernel put it.
fn podtap(args: &[&str], kubeconfig: &Path) -> served::Served {
    served::start(Command::new(env!("CARGO_BIN_EXE_podtap")).args(args).env("KUBECONFIG", kubeconfig))
}

/// Until `/healthz` at `addr` answers 200: its body.
async fn ready(addr: std::net::SocketAddr, what: &str) -> Value {
    let mut health = Value::Null;
    until(what, || {
        let h = served::http_get(addr, "/healthz");
        let ok = matches!(&h, Some((200, _)));
        if let Some((_, v)) = h {
            health = v;
        }
        async move { ok }
    })
    .await;
    health
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}
