//! Cluster state from the API server: one kube-rs reflector per kind (Pods, Services,
//! EndpointSlices, Nodes; ReplicaSets and Jobs as metadata only, for workload names; Namespaces as
//! metadata), each a list + watch that kube-rs keeps alive — bookmarks, a relist on
//! `410 Gone`, and the default backoff after a dropped connection. Managed fields are stripped as
//! objects arrive. Whenever a store changes, a new `ClusterState` is built from all four stores
//! (at most every `REBUILD_EVERY`), with the pods that left in the last hour and when they left,
//! and handed to `on_change`; readiness turns true once every store has had its first list.

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

use super::ClusterState;

/// The shortest time between two rebuilds: a burst of events makes one new state.
const REBUILD_EVERY: Duration = Duration::from_millis(250);
/// How long a pod that left keeps its name for traffic from before it left.
const HISTORY: Duration = Duration::from_secs(3600);

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Pods that left the store, and when: so an IP a new pod takes over keeps the old owner's name
/// for traffic captured before (the failure of tools that only know the present).
#[derive(Default)]
struct History {
    known: FxHashMap<String, Arc<Pod>>,
    departed: Vec<(Arc<Pod>, u64)>,
}

impl History {
    fn note(&mut self, current: &[Arc<Pod>], now: u64) {
        let id = |p: &Pod| {
            p.metadata.uid.clone().unwrap_or_else(|| format!("{:?}/{:?}", p.metadata.namespace, p.metadata.name))
        };
        let now_known: FxHashMap<String, Arc<Pod>> = current.iter().map(|p| (id(p), p.clone())).collect();
        for (uid, pod) in self.known.drain() {
            if !now_known.contains_key(&uid) {
                self.departed.push((pod, now));
            }
        }
        self.known = now_known;
        let horizon = now.saturating_sub(HISTORY.as_micros() as u64);
        self.departed.retain(|(_, gone)| *gone >= horizon);
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

/// Starts the reflectors on the current tokio runtime; `on_change` gets every new state, the
/// first once every reflector has listed its kind (so its first call means "ready").
pub fn start(client: Client, on_change: impl Fn(Arc<ClusterState>) + Send + Sync + 'static) {
    let changed = Arc::new(Notify::new());
    let pods = reflect::<Pod>(&client, &changed);
    let services = reflect::<Service>(&client, &changed);
    let slices = reflect::<EndpointSlice>(&client, &changed);
    let nodes = reflect::<Node>(&client, &changed);
    // Only their owners matter: `Api<PartialObjectMeta<_>>` asks for metadata alone.
    let replica_sets = reflect::<PartialObjectMeta<ReplicaSet>>(&client, &changed);
    let jobs = reflect::<PartialObjectMeta<Job>>(&client, &changed);
    let namespaces = reflect::<PartialObjectMeta<Namespace>>(&client, &changed);
    tokio::spawn(async move {
        for ready in [pods.wait_until_ready().await, services.wait_until_ready().await] {
            if ready.is_err() {
                return;
            }
        }
        let _ = slices.wait_until_ready().await;
        let _ = nodes.wait_until_ready().await;
        let _ = replica_sets.wait_until_ready().await;
        let _ = jobs.wait_until_ready().await;
        let _ = namespaces.wait_until_ready().await;
        tracing::info!("cluster state from the API server: ready");
        let mut history = History::default();
        loop {
            let mut state = ClusterState::default();
            let current = pods.state();
            history.note(&current, now_us());
            current.iter().for_each(|p| state.add_pod(p));
            history.departed.iter().for_each(|(p, gone)| state.add_departed_pod(p, *gone));
            services.state().iter().for_each(|s| state.add_service(s));
            slices.state().iter().for_each(|s| state.add_endpoint_slice(s));
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
}

/// One kind's reflector, driven on its own task; every event wakes the rebuild.
fn reflect<K>(client: &Client, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer);
    let changed = changed.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                // The backoff retries; say what went wrong once per failure.
                Err(e) => tracing::warn!("watching {}: {e}", K::plural(&())),
            }
        }
    });
    reader
}
