//! Cluster state from the API server: one kube-rs reflector per kind (Pods, Services,
//! EndpointSlices, Nodes; ReplicaSets and Jobs as metadata only, for workload names; Namespaces as
//! metadata), each a list + watch that kube-rs keeps alive — bookmarks, a relist on
//! `410 Gone`, and the default backoff after a dropped connection. Managed fields are stripped as
//! objects arrive. Whenever a store changes, a new `ClusterState` is built from all the stores
//! (at most every `REBUILD_EVERY`), with the pods that left in the last hour and when they left,
//! and handed to `on_change`; the first once every watch has listed or been refused by the server
//! (403, 404), or when the wait for that is over: a refused connection, a timeout or a 5xx is no
//! answer, and names handed out before the server answers would be missing for good.
//!
//! Partial permissions are normal: a kind the user may not list cluster-wide (403) is watched
//! in each namespace of `Scope` instead (a Role's namespaces; by default the kubeconfig
//! context's), a kind refused there too, or not served at all (404), keeps retrying with
//! backoff while the rest is named; `access` says what is missing and what that costs.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::config::KubeConfigOptions;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, Resource, ResourceExt};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::access::{Access, Refusal};
use super::{Backend, ClusterState};

/// The shortest time between two rebuilds: a burst of events makes one new state.
const REBUILD_EVERY: Duration = Duration::from_millis(250);
/// How long a pod that left keeps its name for traffic from before it left.
const HISTORY: Duration = Duration::from_secs(3600);

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Pods that left the store, and when: so an IP a new pod takes over keeps the old owner's name
/// for traffic captured before (the failure of tools that only know the present).
/// Also when each pod was first seen finished or deleting: its timestamps say only the second.
#[derive(Default)]
struct History {
    known: FxHashMap<String, Arc<Pod>>,
    departed: Vec<(Arc<Pod>, u64)>,
    ended_seen: FxHashMap<String, u64>,
    /// The first list is in.
    listed: bool,
    /// Every Service's backends (`ns/name`, address) at the last rebuild, and those that left
    /// since, with when: so a record that leaves the merge after its Service's pod went still
    /// went through it.
    backends: FxHashMap<(String, std::net::IpAddr), Backend>,
    former_backends: Vec<(String, Backend, u64)>,
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_else(|| format!("{:?}/{:?}", p.metadata.namespace, p.metadata.name))
}

/// Whether the pod has finished, or is being deleted.
fn ending(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
        || p.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
}

impl History {
    fn note(&mut self, current: &[Arc<Pod>], now: u64) {
        let now_known: FxHashMap<String, Arc<Pod>> = current.iter().map(|p| (uid(p), p.clone())).collect();
        for (uid, pod) in self.known.drain() {
            if !now_known.contains_key(&uid) {
                self.ended_seen.entry(uid).or_insert(now);
                self.departed.push((pod, now));
            }
        }
        // Pods that had ended before the first list ended at some time before now, not now.
        if self.listed {
            for (uid, pod) in &now_known {
                if ending(pod) {
                    self.ended_seen.entry(uid.clone()).or_insert(now);
                }
            }
        }
        self.listed = true;
        self.known = now_known;
        let horizon = now.saturating_sub(HISTORY.as_micros() as u64);
        self.departed.retain(|(_, gone)| *gone >= horizon);
        if self.ended_seen.len() > self.known.len() + self.departed.len() {
            let departed: rustc_hash::FxHashSet<String> = self.departed.iter().map(|(p, _)| uid(p)).collect();
            let known = &self.known;
            self.ended_seen.retain(|id, _| known.contains_key(id) || departed.contains(id));
        }
    }

    /// Notes the backends `state` lists now, and adds those that left (within `HISTORY`) to it.
    fn note_backends(&mut self, state: &mut ClusterState, now: u64) {
        let mut now_listed: FxHashMap<(String, std::net::IpAddr), Backend> = FxHashMap::default();
        for (service, backends) in state.service_backends() {
            for b in backends {
                now_listed.insert((service.to_string(), b.ip), b.clone());
            }
        }
        for (key, backend) in self.backends.drain() {
            if !now_listed.contains_key(&key) {
                self.former_backends.push((key.0, backend, now));
            }
        }
        self.backends = now_listed;
        let horizon = now.saturating_sub(HISTORY.as_micros() as u64);
        self.former_backends.retain(|(_, _, gone)| *gone >= horizon);
        for (service, backend, gone) in &self.former_backends {
            state.add_former_backend(service, backend.clone(), *gone);
        }
    }

    fn ended_seen(&self, p: &Pod) -> Option<u64> {
        self.ended_seen.get(&uid(p)).copied()
    }
}

/// Why the API server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot read the Kubernetes config: {0}")]
    Config(String),
    #[error("cannot make a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// A client from the kubeconfig (`KUBECONFIG`, several paths merged, or ~/.kube/config; `context`
/// picks one) or, inside a pod, the in-cluster service account.
pub async fn client(context: Option<&str>) -> Result<Client, WatchError> {
    let config = match context {
        Some(c) => {
            let options = KubeConfigOptions { context: Some(c.to_string()), ..KubeConfigOptions::default() };
            Config::from_kubeconfig(&options).await.map_err(|e| WatchError::Config(e.to_string()))?
        }
        None => Config::infer().await.map_err(|e| WatchError::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(WatchError::Client)
}

/// Where to look when a kind may not be listed cluster-wide: the namespaces a Role may allow.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Namespaces to watch one by one when a cluster-wide list is forbidden (empty: the
    /// kubeconfig context's namespace).
    pub namespaces: Vec<String>,
}

/// Starts the reflectors on the current tokio runtime; `on_change` gets every new state, the
/// first once every watch has an answer — listed, or refused by the server (403, 404) and
/// retrying with backoff — so a user who may not list one kind still gets names for the rest;
/// or, when some watch still has none after `wait` (the server refuses connections, times out or
/// answers 5xx), with what there is then, saying what is missing. What could not be listed is in
/// the returned `Access`.
pub fn start(
    client: Client,
    scope: Scope,
    wait: Duration,
    on_change: impl Fn(Arc<ClusterState>) + Send + Sync + 'static,
) -> Arc<Access> {
    let namespaces =
        if scope.namespaces.is_empty() { vec![client.default_namespace().to_string()] } else { scope.namespaces };
    let w = Watches { client, access: Arc::default(), changed: Arc::new(Notify::new()), namespaces };
    let pods = w.reflect::<Pod>(Some(Api::namespaced));
    let services = w.reflect::<Service>(Some(Api::namespaced));
    let slices = w.reflect::<EndpointSlice>(Some(Api::namespaced));
    let nodes = w.reflect::<Node>(None);
    // Only their owners matter: `Api<PartialObjectMeta<_>>` asks for metadata alone.
    let replica_sets = w.reflect::<PartialObjectMeta<ReplicaSet>>(Some(Api::namespaced));
    let jobs = w.reflect::<PartialObjectMeta<Job>>(Some(Api::namespaced));
    let namespaces = w.reflect::<PartialObjectMeta<Namespace>>(None);
    let Watches { access, changed, .. } = w;
    let status = access.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + wait;
        while !access.settled() {
            if tokio::time::timeout_at(deadline, changed.notified()).await.is_err() {
                tracing::warn!(
                    "no answer from the API server after {wait:?} for {}; serving without those names until it answers",
                    access.unanswered().join(", ")
                );
                break;
            }
        }
        match access.missing().as_slice() {
            [] => tracing::info!("cluster state from the API server: ready"),
            missing => {
                let kinds: Vec<&str> = missing.iter().map(|m| m.kind.as_str()).collect();
                tracing::warn!("cluster state from the API server: ready without all of {}", kinds.join(", "));
            }
        }
        let mut history = History::default();
        loop {
            let mut state = ClusterState::default();
            let current = pods.state();
            history.note(&current, now_us());
            current.iter().for_each(|p| state.add_watched_pod(p, history.ended_seen(p)));
            history.departed.iter().for_each(|(p, gone)| state.add_departed_pod(p, *gone, history.ended_seen(p)));
            services.state().iter().for_each(|s| state.add_service(s));
            slices.state().iter().for_each(|s| state.add_endpoint_slice(s));
            history.note_backends(&mut state, now_us());
            nodes.state().iter().for_each(|n| state.add_node(n));
            replica_sets.state().iter().for_each(|r| state.add_controller("ReplicaSet", &r.metadata));
            jobs.state().iter().for_each(|j| state.add_controller("Job", &j.metadata));
            namespaces.state().iter().for_each(|n| state.add_namespace(&n.metadata));
            state.resolve_workloads();
            on_change(Arc::new(state));
            tokio::time::sleep(REBUILD_EVERY).await;
            changed.notified().await;
        }
    });
    status
}

/// What every reflector shares.
struct Watches {
    client: Client,
    access: Arc<Access>,
    /// Woken by every event: the rebuild waits on it.
    changed: Arc<Notify>,
    /// Where a namespaced kind is watched when it may not be listed cluster-wide.
    namespaces: Vec<String>,
}

/// The stores of one kind: one cluster-wide, or one per namespace a Role allows.
struct Stores<K: Resource<DynamicType = ()> + 'static>(Arc<std::sync::Mutex<Vec<Store<K>>>>);

impl<K: Resource<DynamicType = ()> + Clone + 'static> Stores<K> {
    fn state(&self) -> Vec<Arc<K>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().flat_map(|s| s.state()).collect()
    }
}

impl Watches {
    /// One kind's reflector on its own task. A namespaced kind (`in_namespace` makes its `Api`
    /// for one namespace) forbidden cluster-wide is watched again in each namespace of
    /// `namespaces`, each with its own store.
    fn reflect<K>(&self, in_namespace: Option<fn(Client, &str) -> Api<K>>) -> Stores<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let stores = Stores(Arc::default());
        let kind: &'static str = Box::leak(K::plural(&()).into_owned().into_boxed_str());
        self.access.expect(kind, None);
        let (client, access, changed) = (self.client.clone(), self.access.clone(), self.changed.clone());
        let narrow_to = if in_namespace.is_some() { self.namespaces.clone() } else { Vec::new() };
        let all = stores.0.clone();
        tokio::spawn(async move {
            let forbidden =
                watch_into(Api::<K>::all(client.clone()), kind, None, &all, &access, &changed, !narrow_to.is_empty())
                    .await;
            if !forbidden {
                return;
            }
            access.narrowed(kind, &narrow_to);
            changed.notify_one();
            tracing::info!("{kind}: not allowed cluster-wide; watching namespaces {} instead", narrow_to.join(", "));
            for ns in narrow_to {
                let api = in_namespace.expect("namespaced kinds only")(client.clone(), &ns);
                let (all, access, changed) = (all.clone(), access.clone(), changed.clone());
                tokio::spawn(async move { watch_into(api, kind, Some(&ns), &all, &access, &changed, false).await });
            }
        });
        stores
    }
}

/// Lists and watches `api` into a new store added to `stores`, reporting to `access`, for as long
/// as the reflector runs. With `stop_if_forbidden`, returns `true` at a 403 before the first list
/// (the caller watches namespace by namespace instead).
async fn watch_into<K>(
    api: Api<K>,
    kind: &'static str,
    scope: Option<&str>,
    stores: &Arc<std::sync::Mutex<Vec<Store<K>>>>,
    access: &Access,
    changed: &Notify,
    stop_if_forbidden: bool,
) -> bool
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    stores.lock().unwrap_or_else(|e| e.into_inner()).push(reader);
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let mut listed = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::InitDone) => {
                if listed {
                    // kube-rs lists again only when resuming the watch was refused: its
                    // resourceVersion is older than the server keeps (410 Gone).
                    tracing::info!("{kind}: listed again (the watch's resourceVersion had expired: 410 Gone)");
                }
                listed = true;
                access.listed(kind, scope);
                changed.notify_one();
            }
            Ok(_) => changed.notify_one(),
            Err(e) => {
                let why = Refusal::of(&e);
                if stop_if_forbidden && !listed && why == Refusal::Forbidden {
                    return true;
                }
                access.refused(kind, scope, why);
                changed.notify_one();
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(ips: &[&str]) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": ips.iter().map(|ip| serde_json::json!({"addresses": [ip]})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn a_backend_that_left_its_service_is_kept_with_when_it_left_for_an_hour() {
        let mut history = History::default();
        let rebuild = |history: &mut History, ips: &[&str], now: u64| {
            let mut state = ClusterState::default();
            state.add_endpoint_slice(&slice(ips));
            history.note_backends(&mut state, now);
            state
        };
        let t = 1_800_000_000_000_000;
        rebuild(&mut history, &["10.244.0.11", "10.244.0.12"], t);
        let state = rebuild(&mut history, &["10.244.0.11"], t + 5_000_000);
        let gone: std::net::IpAddr = "10.244.0.12".parse().unwrap();
        assert!(!state.is_backend("default/web", gone));
        assert!(state.was_backend("default/web", gone, t + 4_000_000), "before it left");
        assert!(!state.was_backend("default/web", gone, t + 6_000_000), "after it left");
        // Kept through later rebuilds, for an hour.
        let state = rebuild(&mut history, &["10.244.0.11"], t + 60_000_000);
        assert!(state.was_backend("default/web", gone, t + 4_000_000));
        let state = rebuild(&mut history, &["10.244.0.11"], t + 5_000_000 + HISTORY.as_micros() as u64 + 1);
        assert!(!state.was_backend("default/web", gone, t + 4_000_000));
    }
}
