//! A fake Kubernetes API server for tests, talking real HTTP: list and watch (with
//! resourceVersion, bookmarks, `410 Gone` for versions it no longer has, and dropped watch
//! connections) for Pods, Services, EndpointSlices, Nodes, ReplicaSets, Jobs and Namespaces,
//! cluster-wide and per namespace (`/api/v1/namespaces/{ns}/pods`, …). RBAC as a real server
//! answers it: a collection can be forbidden (`403` with a Status), allowed only in some
//! namespaces (a Role, not a ClusterRole), or not served at all (`404`, an API group the server
//! does not have). Objects go through the k8s-openapi types and are serialised as the real
//! server would. No kube-apiserver can run here; this is the stand-in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Collection paths, as kube-rs asks for them with `Api::all`.
pub const PODS: &str = "/api/v1/pods";
pub const SERVICES: &str = "/api/v1/services";
pub const NODES: &str = "/api/v1/nodes";
pub const SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";
pub const REPLICA_SETS: &str = "/apis/apps/v1/replicasets";
pub const JOBS: &str = "/apis/batch/v1/jobs";
pub const NAMESPACES: &str = "/api/v1/namespaces";
const ALL: [&str; 7] = [PODS, SERVICES, NODES, SLICES, REPLICA_SETS, JOBS, NAMESPACES];

fn path_of(kind: &str) -> &'static str {
    match kind {
        "Pod" => PODS,
        "Service" => SERVICES,
        "Node" => NODES,
        "EndpointSlice" => SLICES,
        "ReplicaSet" => REPLICA_SETS,
        "Job" => JOBS,
        "Namespace" => NAMESPACES,
        other => panic!("the fake API serves no {other}"),
    }
}

/// The object as the official types make it: parsed into its k8s-openapi struct (a field of the
/// wrong shape fails the test here) and serialised back, as the real server would send it.
fn typed(obj: Value) -> Value {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(obj: Value) -> Value {
        serde_json::to_value(serde_json::from_value::<T>(obj).expect("a valid object")).unwrap()
    }
    match obj["kind"].as_str().unwrap_or("") {
        "Pod" => round::<Pod>(obj),
        "Service" => round::<Service>(obj),
        "Node" => round::<Node>(obj),
        "EndpointSlice" => round::<EndpointSlice>(obj),
        "ReplicaSet" => round::<ReplicaSet>(obj),
        "Job" => round::<Job>(obj),
        _ => round::<Namespace>(obj),
    }
}

/// The kind and apiVersion served at `path`.
fn kind_of(path: &str) -> (&'static str, &'static str) {
    match path {
        PODS => ("Pod", "v1"),
        SERVICES => ("Service", "v1"),
        NODES => ("Node", "v1"),
        SLICES => ("EndpointSlice", "discovery.k8s.io/v1"),
        REPLICA_SETS => ("ReplicaSet", "apps/v1"),
        JOBS => ("Job", "batch/v1"),
        _ => ("Namespace", "v1"),
    }
}

#[derive(Default)]
struct Store {
    rv: u64,
    /// path → name/namespace key → object.
    objects: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// Every change: (resourceVersion, path, event type, object).
    log: Vec<(u64, &'static str, &'static str, Value)>,
    /// Watches from a version below this are told `410 Gone`.
    oldest: u64,
    lists: BTreeMap<&'static str, usize>,
    /// Collections refused cluster-wide, with the namespaces where a Role still allows them.
    forbidden: BTreeMap<&'static str, Vec<String>>,
    /// Collections this server does not serve at all.
    missing: Vec<&'static str>,
}

#[derive(Clone)]
pub struct FakeApi {
    store: Arc<Mutex<Store>>,
    /// Live events (path, JSON line); a `None` path ends every open watch.
    tx: broadcast::Sender<(Option<&'static str>, String)>,
    pub addr: SocketAddr,
}

fn key(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// The path of a namespaced collection: `/api/v1/namespaces/{ns}/pods` for `/api/v1/pods`.
fn in_namespace(path: &str, ns: &str) -> String {
    let (prefix, plural) = path.rsplit_once('/').expect("a collection path");
    format!("{prefix}/namespaces/{ns}/{plural}")
}

/// A Status as the API server sends it with an error code.
fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    let code = axum::http::StatusCode::from_u16(code).unwrap();
    (code, axum::Json(body)).into_response()
}

#[derive(serde::Deserialize)]
struct WatchQuery {
    watch: Option<bool>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

impl FakeApi {
    /// Serves `objects` (any of the four kinds, with apiVersion and kind) on 127.0.0.1.
    pub async fn start(objects: impl IntoIterator<Item = Value>) -> FakeApi {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), objects).await
    }

    /// `start` on `listener` (a server that comes up late where a kubeconfig already points:
    /// `served::Reserved::listen`).
    pub async fn start_on(listener: tokio::net::TcpListener, objects: impl IntoIterator<Item = Value>) -> FakeApi {
        let (tx, _) = broadcast::channel(4096);
        let api = FakeApi { store: Arc::default(), tx, addr: listener.local_addr().unwrap() };
        for o in objects {
            api.apply("ADDED", o);
        }
        let app = ALL.into_iter().fold(Router::new(), |r, path| {
            let r = r.route(
                path,
                axum::routing::get(move |s: State<FakeApi>, q: Query<WatchQuery>| serve(s, q, path, None)),
            );
            if matches!(path, NODES | NAMESPACES) {
                return r; // cluster-scoped kinds
            }
            let namespaced = in_namespace(path, "{ns}");
            r.route(
                &namespaced,
                axum::routing::get(move |s: State<FakeApi>, q: Query<WatchQuery>, ns: axum::extract::Path<String>| {
                    serve(s, q, path, Some(ns.0))
                }),
            )
        });
        tokio::spawn(axum::serve(listener, app.with_state(api.clone())).into_future());
        api
    }

    fn apply(&self, kind: &'static str, obj: Value) {
        let path = path_of(obj["kind"].as_str().expect("objects carry their kind"));
        let mut obj = typed(obj);
        let mut s = self.store.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if kind == "DELETED" {
            s.objects.entry(path).or_default().remove(&key(&obj));
        } else {
            s.objects.entry(path).or_default().insert(key(&obj), obj.clone());
        }
        s.log.push((rv, path, kind, obj.clone()));
        let line = json!({"type": kind, "object": obj}).to_string();
        let _ = self.tx.send((Some(path), line));
    }

    pub fn add(&self, obj: Value) {
        self.apply("ADDED", obj);
    }

    pub fn delete(&self, obj: Value) {
        self.apply("DELETED", obj);
    }

    /// A bookmark on every open watch: the version moves on, nothing changes.
    pub fn bookmark(&self) {
        let rv = self.store.lock().unwrap().rv;
        for path in ALL {
            let (kind, api) = kind_of(path);
            let line = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api,
                "metadata": {"resourceVersion": rv.to_string()}}});
            let _ = self.tx.send((Some(path), line.to_string()));
        }
    }

    /// Closes every open watch connection, as a restarting API server or a load balancer does.
    pub fn drop_watches(&self) {
        let _ = self.tx.send((None, String::new()));
    }

    /// Forgets the change log (compaction): a watch resuming from an older version gets `410 Gone`
    /// and must list again. Open watches are dropped.
    pub fn compact(&self) {
        let mut s = self.store.lock().unwrap();
        s.oldest = s.rv + 1;
        s.log.clear();
        drop(s);
        self.drop_watches();
    }

    /// Refuses `path` cluster-wide (403), allowing it only in `namespaces` (none: nowhere).
    pub fn forbid(&self, path: &'static str, namespaces: &[&str]) {
        let allowed = namespaces.iter().map(|n| n.to_string()).collect();
        self.store.lock().unwrap().forbidden.insert(path, allowed);
    }

    /// Serves `path` no more (404), as a server without that API group.
    pub fn remove_api(&self, path: &'static str) {
        self.store.lock().unwrap().missing.push(path);
    }

    /// How many times `path` was listed.
    pub fn lists(&self, path: &str) -> usize {
        self.store.lock().unwrap().lists.get(path).copied().unwrap_or(0)
    }
}

async fn serve(
    State(api): State<FakeApi>,
    Query(q): Query<WatchQuery>,
    path: &'static str,
    ns: Option<String>,
) -> Response {
    let from: u64 = q.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    let (kind, version) = kind_of(path);
    {
        let mut s = api.store.lock().unwrap();
        if s.missing.contains(&path) {
            return status(404, "NotFound", "the server could not find the requested resource".into());
        }
        if let Some(allowed) = s.forbidden.get(path)
            && !ns.as_ref().is_some_and(|n| allowed.contains(n))
        {
            *s.lists.entry(path).or_default() += usize::from(q.watch != Some(true));
            let plural = path.rsplit('/').next().unwrap();
            let scope = ns.as_ref().map_or("at the cluster scope".to_string(), |n| format!("in the namespace \"{n}\""));
            let message = format!("{plural} is forbidden: User \"tester\" cannot list resource \"{plural}\" {scope}");
            return status(403, "Forbidden", message);
        }
    }
    let mine = |o: &Value| ns.as_ref().is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n.as_str()));
    if q.watch != Some(true) {
        let mut s = api.store.lock().unwrap();
        *s.lists.entry(path).or_default() += 1;
        let items: Vec<Value> =
            s.objects.get(path).map(|m| m.values().filter(|o| mine(o)).cloned().collect()).unwrap_or_default();
        let list = json!({"apiVersion": version, "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": s.rv.to_string()}, "items": items});
        return axum::Json(list).into_response();
    }
    let rx = api.tx.subscribe();
    let s = api.store.lock().unwrap();
    let mut first: Vec<String> = Vec::new();
    let expired = from != 0 && from < s.oldest;
    if expired {
        first.push(
            json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "code": 410, "reason": "Expired", "message": format!("too old resource version: {from}")}})
            .to_string(),
        );
    } else {
        first.extend(
            s.log
                .iter()
                .filter(|(rv, p, _, o)| *rv > from && *p == path && mine(o))
                .map(|(_, _, t, o)| json!({"type": t, "object": o}).to_string()),
        );
    }
    drop(s);
    let backlog = futures_util::stream::iter(first.into_iter().map(|l| Ok::<_, std::io::Error>(l + "\n")));
    let live = tokio_stream_of(rx, path, ns);
    let body = if expired { Body::from_stream(backlog) } else { Body::from_stream(backlog.chain(live)) };
    Response::builder().header("content-type", "application/json").body(body).unwrap()
}

/// The live events of one collection until the watches are dropped.
fn tokio_stream_of(
    rx: broadcast::Receiver<(Option<&'static str>, String)>,
    path: &'static str,
    ns: Option<String>,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::unfold(rx, move |mut rx| {
        let ns = ns.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok((Some(p), line)) if p == path => {
                        let event: Value = serde_json::from_str(&line).unwrap();
                        let theirs = event["object"]["metadata"]["namespace"].as_str();
                        if ns.is_none() || event["type"] == "BOOKMARK" || theirs == ns.as_deref() {
                            return Some((Ok(line + "\n"), rx));
                        }
                    }
                    Ok((Some(_), _)) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Ok((None, _)) | Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    })
}

/// The objects of a lab List (`backend/demo/cluster.json`).
pub fn lab_objects(dir: &std::path::Path) -> Vec<Value> {
    let list: Value = serde_json::from_slice(&std::fs::read(dir.join("cluster.json")).unwrap()).unwrap();
    list["items"].as_array().unwrap().clone()
}

/// A kubeconfig that points at the fake server.
pub fn kubeconfig(api: &FakeApi, path: &std::path::Path) {
    kubeconfig_for(api.addr, path)
}

/// A kubeconfig that points at `addr`, where a fake server may start later.
pub fn kubeconfig_for(addr: std::net::SocketAddr, path: &std::path::Path) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
         users:\n- name: tester\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n\
         current-context: fake\n",
        addr
    );
    std::fs::write(path, text).unwrap();
}
