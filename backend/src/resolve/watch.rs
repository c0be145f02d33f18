//! Cluster state from the API server: one kube-rs reflector per kind (Pods, Services,
//! EndpointSlices, Nodes; ReplicaSets and Jobs as metadata only, for workload names; Namespaces as
//! metadata), each a list + watch that kube-rs keeps alive — bookmarks, a relist on
//! `410 Gone`, and the default backoff after a dropped connection. Managed fields are stripped as
//! objects arrive. Whenever a store changes, a new `ClusterState` is built from all the stores
//! (at most every `REBUILD_EVERY`), with the pods that left in the last hour and when their
//! events came (`history`), and handed to `on_change`; the first once every watch has listed or
//! been refused by the server (403, 404), or when the wait for that is over: a refused
//! connection, a timeout or a 5xx is no answer, and names handed out before the server answers
//! would be missing for good.
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
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::ClusterState;
use super::access::{Access, Refusal};
use super::history::{History, Stamps, now_us};

/// The shortest time between two rebuilds: a burst of events makes one new state.
const REBUILD_EVERY: Duration = Duration::from_millis(250);
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
    let stamps = Stamps::default();
    let stamp: OnEvent<Pod> = {
        let stamps = stamps.clone();
        Arc::new(move |event, relisting| stamps.event(event, relisting, now_us()))
    };
    let pods = w.reflect::<Pod>(Some(Api::namespaced), Some(stamp));
    let services = w.reflect::<Service>(Some(Api::namespaced), None);
    let slices = w.reflect::<EndpointSlice>(Some(Api::namespaced), None);
    let nodes = w.reflect::<Node>(None, None);
    // Only their owners matter: `Api<PartialObjectMeta<_>>` asks for metadata alone.
    let replica_sets = w.reflect::<PartialObjectMeta<ReplicaSet>>(Some(Api::namespaced), None);
    let jobs = w.reflect::<PartialObjectMeta<Job>>(Some(Api::namespaced), None);
    let namespaces = w.reflect::<PartialObjectMeta<Namespace>>(None, None);
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
            history.note(&current, &stamps, now_us());
            history.add_pods(&current, &mut state);
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

/// Called with each event of a watch as it comes, and whether the watch is listing again after
/// its first list.
type OnEvent<K> = Arc<dyn Fn(&watcher::Event<K>, bool) + Send + Sync>;

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
    /// `namespaces`, each with its own store. `on_event` sees every event.
    fn reflect<K>(&self, in_namespace: Option<fn(Client, &str) -> Api<K>>, on_event: Option<OnEvent<K>>) -> Stores<K>
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
            let cluster_wide = Api::<K>::all(client.clone());
            let hooks = Hooks { access: &access, changed: &changed, on_event: on_event.as_ref() };
            let forbidden = watch_into(cluster_wide, kind, None, &all, hooks, !narrow_to.is_empty()).await;
            if !forbidden {
                return;
            }
            access.narrowed(kind, &narrow_to);
            changed.notify_one();
            tracing::info!("{kind}: not allowed cluster-wide; watching namespaces {} instead", narrow_to.join(", "));
            for ns in narrow_to {
                let api = in_namespace.expect("namespaced kinds only")(client.clone(), &ns);
                let (all, access, changed, on_event) = (all.clone(), access.clone(), changed.clone(), on_event.clone());
                tokio::spawn(async move {
                    let hooks = Hooks { access: &access, changed: &changed, on_event: on_event.as_ref() };
                    watch_into(api, kind, Some(&ns), &all, hooks, false).await
                });
            }
        });
        stores
    }
}

/// Who hears of a watch's events: `access` of its answers, `changed` of every event, `on_event`
/// of each event itself.
struct Hooks<'a, K> {
    access: &'a Access,
    changed: &'a Notify,
    on_event: Option<&'a OnEvent<K>>,
}

/// Lists and watches `api` into a new store added to `stores`, reporting to `hooks`, for as long
/// as the reflector runs. With `stop_if_forbidden`, returns `true` at a 403 before the first list
/// (the caller watches namespace by namespace instead).
async fn watch_into<K>(
    api: Api<K>,
    kind: &'static str,
    scope: Option<&str>,
    stores: &Arc<std::sync::Mutex<Vec<Store<K>>>>,
    hooks: Hooks<'_, K>,
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
    let Hooks { access, changed, on_event } = hooks;
    let mut listed = false;
    while let Some(event) = stream.next().await {
        if let (Some(hear), Ok(event)) = (on_event, &event) {
            hear(event, listed);
        }
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
