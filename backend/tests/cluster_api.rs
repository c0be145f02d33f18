//! Cluster state from an API server: kube-rs reflectors against the fake API server (real HTTP,
//! list + watch), through pod churn with an IP taken over by a new pod, bookmarks, dropped watch
//! connections and a `410 Gone` that forces a relist; then `podtap serve --pcap --context fake`
//! with a two-file KUBECONFIG pointing at the fake server names every pod and serves exact
//! balance numbers.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_api::{self, FakeApi, PODS};
use common::served;
use podtap::resolve::ClusterState;
use podtap::resolve::watch;
use serde_json::{Value, json};

/// The newest state the reflectors built.
type Latest = Arc<Mutex<Option<Arc<ClusterState>>>>;

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

fn name_of(latest: &Latest, ip: &str) -> Option<String> {
    let state = latest.lock().unwrap().clone()?;
    state.resolve(ip.parse().unwrap(), 3000).qualified_name()
}

fn pod(name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                     "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
        "spec": {"nodeName": "lab-node", "containers": [{"name": "web", "image": "lab/app:1"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflectors_follow_churn_bookmarks_dropped_watches_and_410() {
    let api = FakeApi::start(fake_api::lab_objects(&common::demo_dir())).await;
    let config = kube::Config::new(format!("http://{}", api.addr).parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let latest: Latest = Arc::default();
    let sink = latest.clone();
    watch::start(client, watch::Scope::default(), Duration::from_secs(30), move |s| *sink.lock().unwrap() = Some(s));
    until("the first full state", || latest.lock().unwrap().is_some()).await;
    assert_eq!(name_of(&latest, "10.244.0.11").as_deref(), Some("default/web-7d4b9c8f6-x2k9p"));
    let objects = latest.lock().unwrap().clone().unwrap().objects;
    assert_eq!(objects, fake_api::lab_objects(&common::demo_dir()).len());

    // Churn: the pod goes, a new one gets its IP. The old name must not stick to the address.
    let old = fake_api::lab_objects(&common::demo_dir())
        .into_iter()
        .find(|o| o["metadata"]["name"] == "web-7d4b9c8f6-x2k9p")
        .unwrap();
    let before_delete = now_us();
    api.delete(old);
    until("the deleted pod to be gone", || name_of(&latest, "10.244.0.11").is_none()).await;
    let mut new_pod = pod("web-7d4b9c8f6-n3w0p", "10.244.0.11");
    new_pod["metadata"]["creationTimestamp"] = json!(k8s_openapi::jiff::Timestamp::now().to_string());
    api.add(new_pod);
    until("the new owner of 10.244.0.11", || {
        name_of(&latest, "10.244.0.11").as_deref() == Some("default/web-7d4b9c8f6-n3w0p")
    })
    .await;
    // Both owners resolve right: traffic from before the deletion keeps the old name.
    let state = latest.lock().unwrap().clone().unwrap();
    let ip = "10.244.0.11".parse().unwrap();
    let old_name = state.resolve_at(ip, 3000, before_delete).qualified_name();
    assert_eq!(old_name.as_deref(), Some("default/web-7d4b9c8f6-x2k9p"));
    let new_name = state.resolve_at(ip, 3000, now_us() + 10_000_000).qualified_name();
    assert_eq!(new_name.as_deref(), Some("default/web-7d4b9c8f6-n3w0p"));

    // Namespaces are watched too (metadata only).
    api.add(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    until("the namespace", || latest.lock().unwrap().as_ref().is_some_and(|s| s.namespaces.contains("shop"))).await;

    // Bookmarks move the version and change nothing; a dropped watch resumes where it was.
    api.bookmark();
    api.drop_watches();
    api.add(pod("web-7d4b9c8f6-after", "10.244.0.31"));
    until("a pod added after the watch dropped", || name_of(&latest, "10.244.0.31").is_some()).await;
    assert_eq!(api.lists(PODS), 1, "a dropped watch resumes without a new list");

    // Compaction: resuming from the old version gets 410 Gone, and the reflector lists again.
    api.compact();
    api.add(pod("web-7d4b9c8f6-relist", "10.244.0.32"));
    until("a relist after 410 Gone", || api.lists(PODS) >= 2).await;
    until("the pod only a relist shows", || name_of(&latest, "10.244.0.32").is_some()).await;
    assert_eq!(name_of(&latest, "10.244.0.11").as_deref(), Some("default/web-7d4b9c8f6-n3w0p"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_kubeconfig_names_every_pod_and_serves_exact_balance() {
    let dir = common::demo_dir();
    let truth = common::ground_truth(&dir);
    let api = FakeApi::start(fake_api::lab_objects(&dir)).await;
    // KUBECONFIG with two files, as kubectl merges them: the first one's current context points
    // at nothing; `--context fake` picks the fake server from the second.
    let tmp = std::env::temp_dir().join(format!("podtap-kubeconfig-{}", std::process::id()));
    let other = std::env::temp_dir().join(format!("podtap-kubeconfig-other-{}", std::process::id()));
    fake_api::kubeconfig(&api, &tmp);
    std::fs::write(
        &other,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: elsewhere\n  cluster:\n    server: http://127.0.0.1:9\n\
         users:\n- name: nobody\n  user: {}\ncontexts:\n- name: elsewhere\n  context:\n    cluster: elsewhere\n\
             user: nobody\ncurrent-context: elsewhere\n",
    )
    .unwrap();
    let kubeconfig = std::env::join_paths([&other, &tmp]).unwrap();
    let podtap = served::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_podtap"))
            .args(["serve", "--pcap", &dir.join("capture.pcapng").display().to_string()])
            .args(["--context", "fake"])
            .env("KUBECONFIG", &kubeconfig),
    );
    let seen = served::named_and_exact(podtap.addr, &truth).await;
    podtap.stop();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(&other);
    let (health, balance, map) = seen.expect("podtap named the replay from the fake API server");
    served::assert_names_and_balance(&truth, &health, &balance, &map);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_waits_for_an_api_server_that_answers_5_s_late_and_names_every_pod() {
    let dir = common::demo_dir();
    let truth = common::ground_truth(&dir);
    let api_port = served::reserve();
    let kubeconfig = std::env::temp_dir().join(format!("podtap-kubeconfig-late-{}", std::process::id()));
    fake_api::kubeconfig_for(api_port.addr(), &kubeconfig);
    let podtap = served::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_podtap"))
            .args(["serve", "--pcap", &dir.join("capture.pcapng").display().to_string()])
            .env("KUBECONFIG", &kubeconfig),
    );
    let addr = podtap.addr;
    // Serving at once, but not ready: every connection to the API server is refused.
    until("podtap listening", || served::http_get(addr, "/healthz").is_some()).await;
    let (code, health) = served::http_get(addr, "/healthz").unwrap();
    assert_eq!((code, health["status"].as_str()), (503, Some("starting")), "{health}");
    // The scenario: the API server comes up 5 s after podtap. Meanwhile nothing is replayed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (code, health) = served::http_get(addr, "/healthz").unwrap();
    assert_eq!((code, health["records"].as_u64()), (503, Some(0)), "the replay waits: {health}");
    let missing = health["cluster"]["missing"].as_array().unwrap();
    assert!(
        missing.iter().any(|m| m["kind"] == "pods" && m["reason"].as_str().unwrap().starts_with("failing: ")),
        "says what it lacks and why: {health}"
    );
    let _api = FakeApi::start_on(api_port.listen(), fake_api::lab_objects(&dir)).await;
    let seen = served::named_and_exact(addr, &truth).await;
    let log = podtap.stop();
    let _ = std::fs::remove_file(&kubeconfig);
    let (health, balance, map) = seen.unwrap_or_else(|| panic!("podtap named the late replay:\n{log}"));
    served::assert_names_and_balance(&truth, &health, &balance, &map);
    assert!(health["cluster"]["missing"].as_array().unwrap().is_empty(), "{health}");
    assert!(!log.contains("ready without"), "nothing was given up on:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_never_answers_is_waited_for_api_wait_then_served_without() {
    let dir = common::demo_dir();
    let kubeconfig = std::env::temp_dir().join(format!("podtap-kubeconfig-never-{}", std::process::id()));
    // Held to the end: nothing ever answers there.
    let api_port = served::reserve();
    fake_api::kubeconfig_for(api_port.addr(), &kubeconfig);
    let podtap = served::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_podtap"))
            .args(["serve", "--pcap", &dir.join("capture.pcapng").display().to_string()])
            .args(["--api-wait", "2s"])
            .env("KUBECONFIG", &kubeconfig),
    );
    let addr = podtap.addr;
    // After the wait: ready, the replay served without names, and what is missing said.
    let mut health = Value::Null;
    until("podtap serving without the API server", || {
        match served::http_get(addr, "/healthz") {
            Some((200, h)) if h["records"].as_u64().unwrap_or(0) > 0 => health = h,
            _ => return false,
        }
        true
    })
    .await;
    let log = podtap.stop();
    let _ = std::fs::remove_file(&kubeconfig);
    let kinds: Vec<&str> =
        health["cluster"]["missing"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 7, "every kind is missing: {health}");
    assert!(log.contains("no answer from the API server after 2s for "), "{log}");
}

/// Reflectors against `api`, as `serve` starts them: the newest state and what could be listed.
async fn watch_fake(api: &FakeApi, namespaces: &[&str]) -> (Latest, Arc<podtap::resolve::access::Access>) {
    let config = kube::Config::new(format!("http://{}", api.addr).parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let latest: Latest = Arc::default();
    let sink = latest.clone();
    let scope = watch::Scope { namespaces: namespaces.iter().map(|n| n.to_string()).collect() };
    let access = watch::start(client, scope, Duration::from_secs(30), move |s| *sink.lock().unwrap() = Some(s));
    until("a first state despite what is refused", || latest.lock().unwrap().is_some()).await;
    (latest, access)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_the_user_may_not_list_costs_only_its_own_names() {
    let api = FakeApi::start(fake_api::lab_objects(&common::demo_dir())).await;
    api.forbid(fake_api::JOBS, &[]);
    let (latest, access) = watch_fake(&api, &["default"]).await;
    // Everything else is named at once: pods, and their Deployments through ReplicaSets.
    assert_eq!(name_of(&latest, "10.244.0.11").as_deref(), Some("default/web-7d4b9c8f6-x2k9p"));
    let state = latest.lock().unwrap().clone().unwrap();
    let web = state.resolve("10.244.0.11".parse().unwrap(), 3000);
    assert_eq!(web.workload.as_deref(), Some("Deployment/web"));
    let missing = access.missing();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!((missing[0].kind.as_str(), missing[0].reason.as_str()), ("jobs", "forbidden (403)"));
    assert!(missing[0].effect.contains("Jobs"), "{}", missing[0].effect);
    // Retried with backoff, not every second: a handful of lists in a few seconds.
    let before = api.lists(fake_api::JOBS);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let retries = api.lists(fake_api::JOBS) - before;
    assert!(retries <= 3, "{retries} lists of jobs in 3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_the_server_does_not_serve_is_reported_and_the_rest_named() {
    let api = FakeApi::start(fake_api::lab_objects(&common::demo_dir())).await;
    api.remove_api(fake_api::JOBS);
    api.remove_api(fake_api::NAMESPACES);
    let (latest, access) = watch_fake(&api, &[]).await;
    assert_eq!(name_of(&latest, "10.244.0.20").as_deref(), Some("default/curl-client"));
    let reasons: Vec<(String, String)> = access.missing().into_iter().map(|m| (m.kind, m.reason)).collect();
    let not_served = "not served by this API server (404)".to_string();
    assert_eq!(reasons, [("jobs".into(), not_served.clone()), ("namespaces".into(), not_served)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_scoped_user_gets_names_in_its_namespaces() {
    let api = FakeApi::start(fake_api::lab_objects(&common::demo_dir())).await;
    // A Role in default and shop, no ClusterRole: every namespaced kind is refused cluster-wide,
    // and nodes and namespaces (cluster-scoped) everywhere.
    for path in [fake_api::PODS, fake_api::SERVICES, fake_api::SLICES, fake_api::REPLICA_SETS, fake_api::JOBS] {
        api.forbid(path, &["default", "shop"]);
    }
    api.forbid(fake_api::NODES, &[]);
    api.forbid(fake_api::NAMESPACES, &[]);
    let (latest, access) = watch_fake(&api, &["default", "shop"]).await;
    until("pods of both namespaces", || {
        name_of(&latest, "10.244.0.11").is_some() && name_of(&latest, "10.244.0.14").is_some()
    })
    .await;
    assert_eq!(name_of(&latest, "10.244.0.11").as_deref(), Some("default/web-7d4b9c8f6-x2k9p"));
    let api_pod = name_of(&latest, "10.244.0.14").unwrap();
    assert!(api_pod.starts_with("shop/api-"), "{api_pod}");
    // kube-system was not granted: CoreDNS stays an address.
    let coredns_ip = fake_api::lab_objects(&common::demo_dir())
        .into_iter()
        .find(|o| o["kind"] == "Pod" && o["metadata"]["namespace"] == "kube-system")
        .map(|o| o["status"]["podIP"].as_str().unwrap().to_string())
        .unwrap();
    assert_eq!(name_of(&latest, &coredns_ip), None);
    let missing = access.missing();
    let pods = missing.iter().find(|m| m.kind == "pods").unwrap();
    assert_eq!(pods.reason, "forbidden cluster-wide; listed only in namespaces default, shop");
    assert!(missing.iter().any(|m| m.kind == "nodes" && m.reason == "forbidden (403)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_under_partial_rbac_starts_and_says_what_it_misses() {
    let dir = common::demo_dir();
    let api = FakeApi::start(fake_api::lab_objects(&dir)).await;
    api.forbid(fake_api::JOBS, &[]);
    let kubeconfig = std::env::temp_dir().join(format!("podtap-kubeconfig-rbac-{}", std::process::id()));
    fake_api::kubeconfig(&api, &kubeconfig);
    let podtap = served::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_podtap"))
            .args(["serve", "--pcap", &dir.join("capture.pcapng").display().to_string()])
            .env("KUBECONFIG", &kubeconfig),
    );
    let addr = podtap.addr;
    let start = Instant::now();
    let mut health = None;
    while start.elapsed() < Duration::from_secs(20) {
        if let Some((200, h)) = served::http_get(addr, "/healthz") {
            health = Some(h);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few retries of jobs, counted by the server: each could have logged again.
    let lists = api.lists(fake_api::JOBS);
    until("two more lists of jobs", || api.lists(fake_api::JOBS) >= lists + 2).await;
    let log = podtap.stop();
    let _ = std::fs::remove_file(&kubeconfig);
    let health = health.expect("serve started and is ready under partial RBAC");
    assert_eq!(health["cluster"]["missing"][0]["kind"], "jobs", "{health}");
    assert_eq!(health["cluster"]["missing"][0]["reason"], "forbidden (403)");
    assert_eq!(log.matches("cannot list jobs").count(), 1, "logged once, not at every retry:\n{log}");
}
