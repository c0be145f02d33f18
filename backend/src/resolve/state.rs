//! `ClusterState`: the address book built from Kubernetes objects, and `resolve`, which turns an
//! address into an `Endpoint`. Lookups are hash-map hits on the hot path; building is not.
//! (Time-versioned history for IP reuse arrives with the kube-rs reflectors.)

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use podtap_shared::{Endpoint, EndpointKind, Name, Via, ViaKind};

#[derive(Clone, Debug)]
struct PodInfo {
    name: Name,
    namespace: Name,
    workload: Option<Name>,
    node: Option<Name>,
    /// (port, path) of the pod's HTTP liveness, readiness and startup probes.
    probes: Vec<(u16, String)>,
    /// The pod's controller (kind, name), to name its workload one level up once the controllers
    /// are known (`resolve_workloads`).
    owner: Option<(String, String)>,
    /// When the pod held its IP, in µs since the epoch: from when its kubelet started it (its
    /// `startTime`; its creation when there is none) until it finished, was deleted, or left the
    /// API server's store (`None`: still holds it).
    from_us: u64,
    until_us: Option<u64>,
    /// Being deleted, and still in the store: since when its deletion was asked. Its address may
    /// be let go any moment after; `until_us` is then only the deadline.
    terminating_since: Option<u64>,
}

/// Slack around a pod's lifetime: timestamps have one-second resolution and an IP is assigned
/// a moment after the pod object is created.
const OWNER_SLACK_US: u64 = 5_000_000;

fn micros(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> u64 {
    u64::try_from(t.0.as_microsecond()).unwrap_or(0)
}

/// When a pod stopped holding its IP, as far as the object says: finished (Succeeded or Failed:
/// its containers' last exit), or deleted (after its grace period).
fn ended_at(pod: &Pod) -> Option<u64> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        let finished = status
            .container_statuses
            .iter()
            .flatten()
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(micros))
            .max();
        // No exit time recorded: it held the IP no later than its creation says.
        return finished.or_else(|| pod.metadata.creation_timestamp.as_ref().map(micros)).or(Some(0));
    }
    // The deadline the API server set for it: the time of the request plus the grace period.
    pod.metadata.deletion_timestamp.as_ref().map(micros)
}

/// When a pod's deletion was asked: its deadline minus its grace period.
fn deletion_asked(pod: &Pod) -> Option<u64> {
    let deadline = pod.metadata.deletion_timestamp.as_ref().map(micros)?;
    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0).max(0) as u64;
    Some(deadline.saturating_sub(grace * 1_000_000))
}

/// A pod's end as its whole-second timestamp says, moved to when a watch saw it end if that is
/// within the same second: a container that exited at 10.4 s reads "10 s", and an address taken
/// over at 10.5 s would otherwise be the new pod's from 10.0 s.
fn within_its_second(until_us: u64, seen_us: Option<u64>) -> u64 {
    match seen_us {
        Some(seen) if until_us.is_multiple_of(1_000_000) => until_us.max(seen.min(until_us + 999_999)),
        _ => until_us,
    }
}

/// A Service as a request path: `ns/name` and how it was addressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    pub name: Name,
    pub namespace: Name,
    /// `ns/name`, made once: every request through the Service carries it in `via`.
    pub qualified: Name,
}

/// One address behind a Service (an EndpointSlice endpoint).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backend {
    pub ip: IpAddr,
    /// `ns/name` of the pod, when the slice names it.
    pub pod: Option<String>,
}

/// Everything known about the cluster's addresses.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// Every pod that held each IP (oldest first): an IP reused by a new pod keeps its old owner
    /// for traffic from before.
    pods: FxHashMap<IpAddr, Vec<PodInfo>>,
    /// ClusterIP, externalIPs and load-balancer ingress IPs + port → Service, and which of them.
    service_ports: FxHashMap<(IpAddr, u16), (ServiceRef, ViaKind)>,
    /// (namespace, kind, name) of a ReplicaSet or Job → its own controller (kind, name): a
    /// Deployment, a CronJob.
    controllers: FxHashMap<(String, String, String), (String, String)>,
    node_ports: FxHashMap<u16, ServiceRef>,
    /// A ClusterIP → `ns/name` of its Service (for a DNS answer that named it).
    cluster_ips: FxHashMap<IpAddr, Name>,
    nodes: FxHashMap<IpAddr, Name>,
    pod_cidrs: Vec<IpNet>,
    /// `ns/name` of a Service → its ready and not-ready backends from EndpointSlices.
    backends: BTreeMap<String, Vec<Backend>>,
    /// `ns/name` of a Service → backends its EndpointSlices no longer list, and when they left
    /// (a live watch keeps them for an hour): a request from before still went through it.
    former_backends: BTreeMap<String, Vec<(Backend, u64)>>,
    /// `ns/name` of every Service with `sessionAffinity: ClientIP`: kube-proxy sends each client
    /// address to one backend for as long as it keeps talking.
    client_ip_affinity: FxHashSet<Name>,
    /// Objects of kinds this module does not use.
    pub skipped_objects: usize,
    /// Namespaces the cluster has (from Namespace objects).
    pub namespaces: std::collections::BTreeSet<String>,
    /// How many objects were read; zero means no cluster state at all.
    pub objects: usize,
}

impl ClusterState {
    /// True when no cluster objects were loaded (names cannot be known).
    pub fn is_empty(&self) -> bool {
        self.objects == 0
    }

    pub(super) fn add_pod(&mut self, pod: &Pod) {
        self.objects += 1;
        self.add_pod_until(pod, None, None);
    }

    /// A pod of a live watch: `ended_seen_us` is when the watch first showed it finished or
    /// deleting, which places its end within the second its whole-second timestamps give.
    pub(super) fn add_watched_pod(&mut self, pod: &Pod, ended_seen_us: Option<u64>) {
        self.objects += 1;
        self.add_pod_until(pod, None, ended_seen_us);
    }

    /// A pod no longer in the API server's store, gone at `removed_us`: kept so traffic from
    /// before still gets its name.
    pub(super) fn add_departed_pod(&mut self, pod: &Pod, removed_us: u64, ended_seen_us: Option<u64>) {
        self.add_pod_until(pod, Some(removed_us), ended_seen_us);
    }

    fn add_pod_until(&mut self, pod: &Pod, removed_us: Option<u64>, ended_seen_us: Option<u64>) {
        let meta = &pod.metadata;
        let (Some(name), Some(status)) = (&meta.name, &pod.status) else {
            return;
        };
        let spec = pod.spec.as_ref();
        if spec.and_then(|s| s.host_network).unwrap_or(false) {
            return; // shares the node's address: the node entry names it
        }
        let controller = controller_of(meta);
        let info = PodInfo {
            name: name.as_str().into(),
            namespace: meta.namespace.as_deref().unwrap_or("default").into(),
            workload: controller.map(|c| workload_of(pod, c).into()),
            owner: controller.map(|o| (o.kind.clone(), o.name.clone())),
            node: spec.and_then(|s| s.node_name.as_deref()).map(Name::from),
            probes: spec.map(http_probes).unwrap_or_default(),
            // kubelet sets startTime before it makes the pod's sandbox, so before the address is
            // the pod's: a pod created in the second its predecessor ended, but started in the
            // next, did not hold the address in the first.
            from_us: meta
                .creation_timestamp
                .as_ref()
                .map_or(0, micros)
                .max(status.start_time.as_ref().map_or(0, micros)),
            until_us: match (ended_at(pod), removed_us) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(|until| within_its_second(until, ended_seen_us)),
            terminating_since: if removed_us.is_none() { deletion_asked(pod) } else { None },
        };
        let mut ips: Vec<IpAddr> = status
            .pod_ips
            .iter()
            .flatten()
            .map(|p| p.ip.as_str())
            .chain(status.pod_ip.as_deref())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        ips.dedup();
        for ip in ips {
            let owners = self.pods.entry(ip).or_default();
            owners.push(info.clone());
            owners.sort_by_key(|o| o.from_us);
        }
    }

    /// The pod that held `ip` at `at` (µs since the epoch), or now when `at` is `None`: never a
    /// pod whose life did not include that moment.
    fn owner(&self, ip: IpAddr, at: Option<u64>) -> Option<&PodInfo> {
        let owners = self.pods.get(&ip)?;
        match at {
            None => owners.iter().rev().find(|o| o.until_us.is_none()),
            // An IP is released only when its pod is gone, so an owner whose life ended after
            // `t` held it then, whatever a newer pod's (second-resolution) creation time says.
            Some(t) => Self::strict_owner(owners, t)
                // An end read in whole seconds was up to a second later than it says, and an
                // address is taken only after its pod was made: of the pods that may have held it
                // then, the newest (a replacement's first connections come right after its
                // predecessor ended; the predecessor's own requests are named as of their
                // connection's opening).
                .or_else(|| {
                    owners
                        .iter()
                        .filter(|o| o.from_us <= t && o.until_us.is_none_or(|u| t < u + 1_000_000))
                        .max_by_key(|o| o.from_us)
                })
                .or_else(|| {
                    owners.iter().rev().find(|o| {
                        o.from_us.saturating_sub(OWNER_SLACK_US) <= t
                            && o.until_us.is_none_or(|u| t < u + OWNER_SLACK_US)
                    })
                }),
        }
    }

    /// The pod whose known life includes `t` (the one that ended first, when the records of two
    /// overlap): no slack for the resolution of timestamps.
    fn strict_owner(owners: &[PodInfo], t: u64) -> Option<&PodInfo> {
        owners
            .iter()
            .filter(|o| o.from_us <= t && o.until_us.is_none_or(|u| t < u))
            .min_by_key(|o| o.until_us.unwrap_or(u64::MAX))
    }

    /// Whether a pod's known life includes `at` for `ip` for sure: a name `resolve_at` gives only
    /// by the slack around whole-second timestamps may be one a newer pod, not reported yet, takes
    /// over.
    /// A pod being deleted may have let its address go already.
    pub fn held_at(&self, ip: IpAddr, at: u64) -> bool {
        self.pods
            .get(&ip)
            .and_then(|owners| Self::strict_owner(owners, at))
            .is_some_and(|o| o.terminating_since.is_none_or(|asked| at < asked))
    }

    pub(super) fn add_service(&mut self, svc: &Service) {
        self.objects += 1;
        let (Some(name), Some(spec)) = (&svc.metadata.name, &svc.spec) else {
            return;
        };
        let namespace = svc.metadata.namespace.as_deref().unwrap_or("default");
        let r = ServiceRef {
            name: name.as_str().into(),
            namespace: namespace.into(),
            qualified: format!("{namespace}/{name}").into(),
        };
        let parse = |ips: &mut dyn Iterator<Item = &String>, via: ViaKind| -> Vec<(IpAddr, ViaKind)> {
            ips.filter_map(|ip| ip.parse().ok()).map(|ip| (ip, via)).collect()
        };
        if spec.session_affinity.as_deref() == Some("ClientIP") {
            self.client_ip_affinity.insert(r.qualified.clone());
        }
        let mut ips = parse(&mut spec.cluster_ips.iter().flatten().chain(spec.cluster_ip.iter()), ViaKind::ClusterIp);
        // externalIPs and a load balancer's ingress both bring traffic in from outside.
        ips.extend(parse(&mut spec.external_ips.iter().flatten(), ViaKind::LoadBalancer));
        let ingress =
            svc.status.iter().filter_map(|s| s.load_balancer.as_ref()).flat_map(|l| l.ingress.iter().flatten());
        ips.extend(parse(&mut ingress.filter_map(|i| i.ip.as_ref()), ViaKind::LoadBalancer));
        for port in spec.ports.iter().flatten() {
            let Ok(p) = u16::try_from(port.port) else {
                continue;
            };
            for (ip, via) in &ips {
                self.service_ports.entry((*ip, p)).or_insert_with(|| (r.clone(), *via));
                if *via == ViaKind::ClusterIp {
                    self.cluster_ips.entry(*ip).or_insert_with(|| r.qualified.clone());
                }
            }
            if let Some(np) = port.node_port.and_then(|n| u16::try_from(n).ok()) {
                self.node_ports.insert(np, r.clone());
            }
        }
    }

    /// A Namespace (metadata is enough).
    pub(super) fn add_namespace(&mut self, meta: &ObjectMeta) {
        self.objects += 1;
        if let Some(name) = &meta.name {
            self.namespaces.insert(name.clone());
        }
    }

    /// A ReplicaSet or Job (metadata is enough): remembers its controller, so pods it owns are
    /// named by the Deployment or CronJob above it.
    pub(super) fn add_controller(&mut self, kind: &str, meta: &ObjectMeta) {
        self.objects += 1;
        let (Some(name), Some(owner)) = (&meta.name, controller_of(meta)) else {
            return;
        };
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        self.controllers.insert((namespace, kind.to_string(), name.clone()), (owner.kind.clone(), owner.name.clone()));
    }

    /// Names every pod's workload by its controller's controller where that is known (a
    /// Deployment through its ReplicaSet, a CronJob through its Job); call once all objects are in.
    pub(super) fn resolve_workloads(&mut self) {
        if self.controllers.is_empty() {
            return;
        }
        for owners in self.pods.values_mut() {
            for pod in owners.iter_mut() {
                let Some((kind, name)) = &pod.owner else { continue };
                let key = (pod.namespace.to_string(), kind.clone(), name.clone());
                if let Some((top_kind, top_name)) = self.controllers.get(&key) {
                    pod.workload = Some(format!("{top_kind}/{top_name}").into());
                }
            }
        }
    }

    pub(super) fn add_node(&mut self, node: &Node) {
        self.objects += 1;
        let Some(name) = node.metadata.name.as_deref().map(Name::from) else {
            return;
        };
        for addr in node.status.iter().flat_map(|s| s.addresses.iter().flatten()) {
            if let Ok(ip) = addr.address.parse() {
                self.nodes.insert(ip, name.clone());
            }
        }
        // The first address of a node's pod CIDR is its bridge (cni0): traffic from the node
        // itself (kubelet probes, SNAT of NodePort traffic) carries it.
        let cidrs = node.spec.iter().flat_map(|s| s.pod_cidrs.iter().flatten().chain(s.pod_cidr.iter()));
        for cidr in cidrs.filter_map(|c| c.parse::<IpNet>().ok()) {
            if let Some(gw) = cidr.hosts().next() {
                self.nodes.insert(gw, name.clone());
            }
            if !self.pod_cidrs.contains(&cidr) {
                self.pod_cidrs.push(cidr);
            }
        }
    }

    pub(super) fn add_endpoint_slice(&mut self, slice: &EndpointSlice) {
        self.objects += 1;
        let labels = slice.metadata.labels.as_ref();
        let Some(service) = labels.and_then(|l| l.get("kubernetes.io/service-name")) else {
            return;
        };
        let ns = slice.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let list = self.backends.entry(format!("{ns}/{service}")).or_default();
        for ep in &slice.endpoints {
            let pod = ep.target_ref.as_ref().filter(|t| t.kind.as_deref() == Some("Pod")).and_then(|t| {
                let name = t.name.as_ref()?;
                Some(format!("{}/{name}", t.namespace.as_deref().unwrap_or(&ns)))
            });
            for ip in ep.addresses.iter().filter_map(|a| a.parse().ok()) {
                let b = Backend { ip, pod: pod.clone() };
                if !list.contains(&b) {
                    list.push(b);
                }
            }
        }
    }

    /// The cluster's nodes by name, sorted.
    pub fn node_names(&self) -> Vec<Name> {
        let mut names: Vec<Name> = self.nodes.values().cloned().collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Every namespace the state knows of: from Namespace objects, pods and Services (what RBAC
    /// is asked about, one by one, for a person it does not allow cluster-wide).
    pub fn known_namespaces(&self) -> std::collections::BTreeSet<String> {
        let mut all = self.namespaces.clone();
        all.extend(self.pods.values().flatten().map(|p| p.namespace.to_string()));
        all.extend(self.backends.keys().filter_map(|s| s.split_once('/')).map(|(ns, _)| ns.to_string()));
        all
    }

    /// Every Service with EndpointSlices, `ns/name` → backends, sorted by name.
    pub fn service_backends(&self) -> impl Iterator<Item = (&str, &[Backend])> {
        self.backends.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Whether the Service `ns/name` has `sessionAffinity: ClientIP`.
    pub fn client_ip_affinity(&self, service: &str) -> bool {
        self.client_ip_affinity.contains(service)
    }

    /// The state a saved session keeps: every Service's backends as they are now (names are in
    /// the records already).
    pub fn backends_snapshot(&self) -> BTreeMap<String, Vec<Backend>> {
        self.backends.clone()
    }

    /// A state holding only Services' backends, as a saved session restores it.
    pub fn from_backends(backends: BTreeMap<String, Vec<Backend>>) -> Self {
        Self { objects: backends.len(), backends, ..Self::default() }
    }

    /// Whether a request to `ip:port` for `path` is what one of the pod's HTTP probes asks for
    /// (the query string aside).
    pub fn is_probe(&self, ip: IpAddr, port: u16, path: &str, at: Option<u64>) -> bool {
        let path = path.split('?').next().unwrap_or(path);
        self.owner(ip, at).is_some_and(|p| p.probes.iter().any(|(p_port, p_path)| *p_port == port && p_path == path))
    }

    /// `ns/name` of the Service whose ClusterIP `ip` is.
    pub fn service_of_cluster_ip(&self, ip: IpAddr) -> Option<&Name> {
        self.cluster_ips.get(&ip)
    }

    /// Whether `ip` is in a node's pod network (a pod's address, or one a pod may yet be given).
    pub fn in_pod_network(&self, ip: IpAddr) -> bool {
        self.pod_cidrs.iter().any(|c| c.contains(&ip))
    }

    /// Whether `ip` is an endpoint of Service `ns/name`.
    pub fn is_backend(&self, service: &str, ip: IpAddr) -> bool {
        self.backends.get(service).is_some_and(|b| b.iter().any(|b| b.ip == ip))
    }

    /// Whether `ip` was a backend of `service` at `at_us`: it is one, or it was one until after
    /// then. A record leaves the merge a second or more after its request, and its Service's
    /// pods may have gone meanwhile (a scenario's end deletes them: fresh clone 25a's socket-level
    /// calls were counted direct).
    pub fn was_backend(&self, service: &str, ip: IpAddr, at_us: u64) -> bool {
        self.is_backend(service, ip)
            || self.former_backends.get(service).is_some_and(|b| b.iter().any(|(b, gone)| b.ip == ip && *gone > at_us))
    }

    /// A backend `service`'s EndpointSlices listed until `gone_us`.
    pub(crate) fn add_former_backend(&mut self, service: &str, backend: Backend, gone_us: u64) {
        self.former_backends.entry(service.to_string()).or_default().push((backend, gone_us));
    }

    /// What `ip:port` is now, as the destination of a request.
    pub fn resolve(&self, ip: IpAddr, port: u16) -> Endpoint {
        self.lookup(ip, port, true, None)
    }

    /// What `ip:port` was at `at_us` (µs since the epoch), as the destination of a request.
    pub fn resolve_at(&self, ip: IpAddr, port: u16, at_us: u64) -> Endpoint {
        self.lookup(ip, port, true, Some(at_us))
    }

    /// What `ip` was at `at_us`, as the source of a request (see `resolve_source`).
    pub fn resolve_source_at(&self, ip: IpAddr, port: u16, at_us: u64) -> Endpoint {
        self.lookup(ip, port, false, Some(at_us))
    }

    /// What `ip` is, as the source of a request: never a Service (requests do not come from a
    /// Service address, and an ephemeral port that equals a NodePort means nothing).
    pub fn resolve_source(&self, ip: IpAddr, port: u16) -> Endpoint {
        self.lookup(ip, port, false, None)
    }

    fn lookup(&self, ip: IpAddr, port: u16, as_destination: bool, at: Option<u64>) -> Endpoint {
        let mut ep = Endpoint::unknown(ip, port);
        // A pod's address is the pod's, whatever else it is: the Service is looked for only when
        // no pod holds the address (most destinations are pods).
        let service = || if as_destination { self.service(ip, port) } else { None };
        if let Some(pod) = self.owner(ip, at) {
            ep.kind = EndpointKind::Pod;
            ep.name = Some(pod.name.clone());
            ep.namespace = Some(pod.namespace.clone());
            ep.workload = pod.workload.clone();
            ep.node = pod.node.clone();
        } else if let Some(svc) = service() {
            ep.kind = EndpointKind::Service;
            ep.name = Some(svc.name.clone());
            ep.namespace = Some(svc.namespace.clone());
            ep.node = self.nodes.get(&ip).cloned();
        } else if let Some(node) = self.nodes.get(&ip) {
            ep.kind = EndpointKind::Node;
            ep.name = Some(node.clone());
            ep.node = Some(node.clone());
        } else if !self.is_empty() && !self.in_pod_network(ip) {
            ep.kind = EndpointKind::External;
        }
        ep
    }

    /// The Service addressed as `ip:port`: a ClusterIP/externalIP port, or a node's NodePort.
    fn service(&self, ip: IpAddr, port: u16) -> Option<&ServiceRef> {
        self.service_ports
            .get(&(ip, port))
            .map(|(s, _)| s)
            .or_else(|| self.nodes.contains_key(&ip).then(|| self.node_ports.get(&port)).flatten())
    }

    /// How a request to `ip:port` was addressed, as far as this one address tells.
    pub fn via(&self, ip: IpAddr, port: u16) -> Via {
        if let Some((svc, kind)) = self.service_ports.get(&(ip, port)) {
            Via { kind: *kind, service: Some(svc.qualified.clone()) }
        } else if let Some(svc) = self.nodes.contains_key(&ip).then(|| self.node_ports.get(&port)).flatten() {
            Via { kind: ViaKind::NodePort, service: Some(svc.qualified.clone()) }
        } else {
            Via::UNKNOWN
        }
    }
}

/// The HTTP probes of a pod's containers: `httpGet` port (a number, or a container port's name)
/// and path (`/` when unset).
fn http_probes(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<(u16, String)> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let mut out = Vec::new();
    for c in &spec.containers {
        for probe in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe].into_iter().flatten() {
            let Some(get) = &probe.http_get else { continue };
            let port = match &get.port {
                IntOrString::Int(n) => u16::try_from(*n).ok(),
                IntOrString::String(name) => c
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| u16::try_from(p.container_port).ok()),
            };
            if let Some(port) = port {
                let path = get.path.clone().unwrap_or_else(|| "/".into());
                if !out.contains(&(port, path.clone())) {
                    out.push((port, path));
                }
            }
        }
    }
    out
}

/// The owner reference that controls an object (its ReplicaSet, Job, Deployment, …).
fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().flatten().find(|o| o.controller == Some(true))
}

/// The controlling workload as the pod alone tells, from its controller `owner`: a ReplicaSet
/// that carries the pod-template-hash is a Deployment's (`resolve_workloads` knows better when
/// ReplicaSets and Jobs were loaded).
fn workload_of(pod: &Pod, owner: &OwnerReference) -> String {
    if owner.kind == "ReplicaSet" {
        let hash = pod.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash"));
        if let Some(deployment) = hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))) {
            return format!("Deployment/{deployment}");
        }
    }
    format!("{}/{}", owner.kind, owner.name)
}

#[cfg(test)]
mod tests {
    use super::super::parse_list;
    use super::*;

    const LIST: &str = r#"{"apiVersion":"v1","kind":"List","items":[
      {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-7d4b9c8f6-x2k9p","namespace":"default",
        "labels":{"pod-template-hash":"7d4b9c8f6"},
        "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d4b9c8f6","uid":"u","controller":true}]},
       "spec":{"nodeName":"n1","containers":[{"name":"web"}]},"status":{"podIP":"10.244.0.11"}},
      {"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},
       "spec":{"type":"NodePort","clusterIP":"10.96.12.34","ports":[{"port":80,"targetPort":3000,"nodePort":30007}]}},
      {"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},"spec":{"podCIDR":"10.244.0.0/24"},
       "status":{"addresses":[{"type":"InternalIP","address":"192.168.49.2"}]}},
      {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}]}"#;

    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        parse_list("test", LIST.as_bytes(), &mut s).unwrap();
        s
    }

    #[test]
    fn pods_services_nodes_and_the_outside() {
        let s = state();
        let pod = s.resolve("10.244.0.11".parse().unwrap(), 3000);
        assert_eq!((pod.kind, pod.map_id()), (EndpointKind::Pod, "pod:default/web-7d4b9c8f6-x2k9p".into()));
        assert_eq!(pod.workload.as_deref(), Some("Deployment/web"));
        assert_eq!(s.resolve("10.96.12.34".parse().unwrap(), 80).map_id(), "service:default/web");
        assert_eq!(s.resolve("192.168.49.2".parse().unwrap(), 30007).map_id(), "service:default/web");
        assert_eq!(s.resolve("192.168.49.2".parse().unwrap(), 22).map_id(), "node:n1");
        assert_eq!(s.resolve_source("192.168.49.2".parse().unwrap(), 30007).map_id(), "node:n1");
        assert_eq!(s.resolve("10.244.0.1".parse().unwrap(), 5000).map_id(), "node:n1");
        assert_eq!(s.resolve("192.168.49.100".parse().unwrap(), 5000).kind, EndpointKind::External);
        assert_eq!(s.resolve("10.244.0.99".parse().unwrap(), 1).kind, EndpointKind::Unknown);
        assert_eq!(s.skipped_objects, 1);
    }

    #[test]
    fn http_probes_come_from_the_pod_spec_with_named_ports() {
        let list = r#"{"apiVersion":"v1","kind":"List","items":[
          {"apiVersion":"v1","kind":"Pod","metadata":{"name":"api-1","namespace":"shop"},
           "spec":{"containers":[{"name":"api","ports":[{"name":"http","containerPort":8080}],
             "livenessProbe":{"httpGet":{"path":"/livez","port":"http","scheme":"HTTP"}},
             "readinessProbe":{"httpGet":{"path":"/readyz","port":9090}},
             "startupProbe":{"tcpSocket":{"port":8080}}}]},
           "status":{"podIP":"10.244.1.5"}}]}"#;
        let mut s = ClusterState::default();
        parse_list("test", list.as_bytes(), &mut s).unwrap();
        let ip = "10.244.1.5".parse().unwrap();
        assert!(s.is_probe(ip, 8080, "/livez", None));
        assert!(s.is_probe(ip, 9090, "/readyz?verbose", None));
        assert!(!s.is_probe(ip, 8080, "/readyz", None), "the readiness probe is on 9090");
        assert!(!s.is_probe(ip, 8080, "/", None), "a tcpSocket probe has no path");
        assert!(!s.is_probe("10.244.1.6".parse().unwrap(), 8080, "/livez", None));
    }

    #[test]
    fn an_ip_taken_over_by_a_new_pod_keeps_the_old_name_for_traffic_from_before() {
        // A Job's pod that finished at 10:00:30 still lists its IP; the new pod got it at 10:05.
        let list = r#"{"apiVersion":"v1","kind":"List","items":[
          {"apiVersion":"v1","kind":"Pod","metadata":{"name":"migrate-x1","namespace":"shop",
             "creationTimestamp":"2026-11-27T10:00:00Z"},
           "spec":{"containers":[{"name":"m"}]},
           "status":{"phase":"Succeeded","podIP":"10.244.1.9",
             "containerStatuses":[{"name":"m","image":"i","imageID":"","ready":false,"restartCount":0,
               "state":{"terminated":{"exitCode":0,"finishedAt":"2026-11-27T10:00:30Z"}}}]}},
          {"apiVersion":"v1","kind":"Pod","metadata":{"name":"api-7","namespace":"shop",
             "creationTimestamp":"2026-11-27T10:05:00Z"},
           "spec":{"containers":[{"name":"api"}]},"status":{"phase":"Running","podIP":"10.244.1.9"}}]}"#;
        let mut s = ClusterState::default();
        parse_list("test", list.as_bytes(), &mut s).unwrap();
        let ip = "10.244.1.9".parse().unwrap();
        let at = |hh_mm_ss: &str| {
            let t: k8s_openapi::jiff::Timestamp = format!("2026-11-27T{hh_mm_ss}Z").parse().unwrap();
            s.resolve_at(ip, 80, t.as_microsecond() as u64).qualified_name()
        };
        assert_eq!(at("10:00:10").as_deref(), Some("shop/migrate-x1"));
        assert_eq!(at("10:02:00"), None, "between owners the address is nobody's");
        assert_eq!(at("10:06:00").as_deref(), Some("shop/api-7"));
        assert_eq!(s.resolve(ip, 80).qualified_name().as_deref(), Some("shop/api-7"), "now: the running pod");
        assert_eq!(at("09:00:00"), None, "before either pod existed");
    }

    #[test]
    fn workloads_come_from_the_controllers_controller_and_load_balancers_from_ingress() {
        let list = r#"{"apiVersion":"v1","kind":"List","items":[
          {"apiVersion":"v1","kind":"Pod","metadata":{"name":"nightly-29012345-abcde","namespace":"ops",
             "ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"nightly-29012345","uid":"j","controller":true}]},
           "spec":{"containers":[{"name":"c"}]},"status":{"phase":"Running","podIP":"10.244.2.7"}},
          {"apiVersion":"v1","kind":"Pod","metadata":{"name":"front-x","namespace":"ops",
             "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"front-legacy","uid":"r","controller":true}]},
           "spec":{"containers":[{"name":"c"}]},"status":{"phase":"Running","podIP":"10.244.2.8"}},
          {"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"nightly-29012345","namespace":"ops",
             "ownerReferences":[{"apiVersion":"batch/v1","kind":"CronJob","name":"nightly","uid":"c","controller":true}]}},
          {"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"front-legacy","namespace":"ops",
             "ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"front","uid":"d","controller":true}]}},
          {"apiVersion":"v1","kind":"Service","metadata":{"name":"front","namespace":"ops"},
           "spec":{"type":"LoadBalancer","clusterIP":"10.96.40.40","externalIPs":["198.51.100.7"],
                   "ports":[{"port":443,"targetPort":8443}]},
           "status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.10"}]}}}]}"#;
        let mut s = ClusterState::default();
        parse_list("test", list.as_bytes(), &mut s).unwrap();
        let workload = |ip: &str| s.resolve(ip.parse().unwrap(), 80).workload;
        assert_eq!(workload("10.244.2.7").as_deref(), Some("CronJob/nightly"));
        assert_eq!(workload("10.244.2.8").as_deref(), Some("Deployment/front"), "no pod-template-hash needed");
        let via = |ip: &str| s.via(ip.parse().unwrap(), 443);
        assert_eq!(via("10.96.40.40").kind, ViaKind::ClusterIp);
        assert_eq!(via("203.0.113.10"), Via { kind: ViaKind::LoadBalancer, service: Some("ops/front".into()) });
        assert_eq!(via("198.51.100.7").kind, ViaKind::LoadBalancer);
        assert_eq!(s.resolve("203.0.113.10".parse().unwrap(), 443).map_id(), "service:ops/front");
    }

    #[test]
    fn via_says_how_the_service_was_addressed() {
        let s = state();
        assert_eq!(
            s.via("10.96.12.34".parse().unwrap(), 80),
            Via { kind: ViaKind::ClusterIp, service: Some("default/web".into()) }
        );
        assert_eq!(s.via("192.168.49.2".parse().unwrap(), 30007).kind, ViaKind::NodePort);
        assert_eq!(s.via("10.244.0.11".parse().unwrap(), 3000), Via::UNKNOWN);
    }

    #[test]
    fn without_cluster_state_nothing_is_called_external() {
        let s = ClusterState::default();
        assert_eq!(s.resolve("8.8.8.8".parse().unwrap(), 53).kind, EndpointKind::Unknown);
    }

    #[test]
    fn yaml_lists_in_several_documents_read_like_json() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cluster.json");
        let json = std::fs::read(&path).unwrap();
        let list: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let items = list["items"].as_array().unwrap();
        let (first, rest) = items.split_at(items.len() / 2);
        let doc = |items: &[serde_json::Value]| {
            serde_saphyr::to_string(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})).unwrap()
        };
        let yaml = format!("{}---\n{}", doc(first), doc(rest));
        let (mut from_json, mut from_yaml) = (ClusterState::default(), ClusterState::default());
        parse_list("c.json", &json, &mut from_json).unwrap();
        parse_list("c.yaml", yaml.as_bytes(), &mut from_yaml).unwrap();
        assert_eq!(from_yaml.objects, from_json.objects);
        for ip in ["10.244.0.11", "10.244.0.20", "10.96.12.34", "10.244.0.14", "192.168.49.2"] {
            let ip = ip.parse().unwrap();
            assert_eq!(from_yaml.resolve(ip, 80), from_json.resolve(ip, 80));
        }
        let err = parse_list("bad.yaml", b"items: [unclosed", &mut ClusterState::default()).unwrap_err();
        assert!(err.to_string().starts_with("cluster file bad.yaml is neither JSON nor YAML"), "{err}");
    }

    #[test]
    fn a_broken_item_is_named_in_the_error() {
        let bad = r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":"nope"}}]}"#;
        let err = parse_list("f.json", bad.as_bytes(), &mut ClusterState::default()).unwrap_err().to_string();
        assert!(err.starts_with("cluster file f.json: item 0 (Pod p) is not a valid Pod"), "{err}");
        let err = parse_list("g.json", b"{not json", &mut ClusterState::default()).unwrap_err().to_string();
        assert!(err.contains("is not JSON"), "{err}");
        let err = parse_list("h.txt", b"not json", &mut ClusterState::default()).unwrap_err().to_string();
        assert!(err.contains("is neither JSON nor YAML (a document is text, not a List or an object)"), "{err}");
    }

    #[test]
    fn a_watch_places_a_pods_end_within_its_whole_second() {
        let pod = |json: &str| serde_json::from_str::<Pod>(json).unwrap();
        // `old` exited at 10.4 s (its finishedAt reads 10 s; the watch showed it at 10.42 s);
        // `new`, created in that same second, took its address over.
        let old = pod(r#"{"metadata":{"name":"old","namespace":"d","creationTimestamp":"2024-01-01T00:00:00Z"},
            "spec":{"containers":[]},"status":{"podIP":"10.244.0.8","phase":"Succeeded","containerStatuses":[
            {"name":"c","image":"i","imageID":"","ready":false,"restartCount":0,
             "state":{"terminated":{"exitCode":0,"finishedAt":"2024-01-01T00:00:10Z"}}}]}}"#);
        let new = pod(r#"{"metadata":{"name":"new","namespace":"d","creationTimestamp":"2024-01-01T00:00:10Z"},
            "spec":{"containers":[]},"status":{"podIP":"10.244.0.8","phase":"Running"}}"#);
        let t10 = 1_704_067_210_000_000;
        let name_at = |s: &ClusterState, t: u64| s.resolve_at("10.244.0.8".parse().unwrap(), 80, t).name;
        let mut watched = ClusterState::default();
        watched.add_watched_pod(&old, Some(t10 + 420_000));
        watched.add_watched_pod(&new, None);
        assert_eq!(name_at(&watched, t10 + 200_000).as_deref(), Some("old"));
        assert_eq!(name_at(&watched, t10 + 500_000).as_deref(), Some("new"));
        // From a file, the second is all there is: the new pod's from its start.
        let mut listed = ClusterState::default();
        listed.add_pod(&old);
        listed.add_pod(&new);
        assert_eq!(name_at(&listed, t10 + 200_000).as_deref(), Some("new"));
        // A watch that saw the end late (a slow API server) moves it no further than the second.
        assert_eq!(within_its_second(t10, Some(t10 + 7_000_000)), t10 + 999_999);
        assert_eq!(within_its_second(t10 + 5, Some(t10 + 7_000_000)), t10 + 5);
    }

    #[test]
    fn a_pod_being_deleted_is_named_but_not_for_sure_after_the_deletion_was_asked() {
        // Deleted at 00:00:10 with 30 s of grace: its deadline reads 00:00:40.
        let pod = serde_json::from_str::<Pod>(
            r#"{"metadata":{"name":"web","namespace":"d","creationTimestamp":"2024-01-01T00:00:00Z",
                "deletionTimestamp":"2024-01-01T00:00:40Z","deletionGracePeriodSeconds":30},
                "spec":{"containers":[]},"status":{"podIP":"10.244.0.8","phase":"Running"}}"#,
        )
        .unwrap();
        let mut s = ClusterState::default();
        s.add_watched_pod(&pod, None);
        let (ip, t0) = ("10.244.0.8".parse().unwrap(), 1_704_067_200_000_000);
        assert!(s.held_at(ip, t0 + 5_000_000));
        assert!(!s.held_at(ip, t0 + 12_000_000), "its address may be another pod's by now");
        assert_eq!(s.resolve_at(ip, 80, t0 + 12_000_000).name.as_deref(), Some("web"));
        assert_ne!(s.resolve_at(ip, 80, t0 + 46_000_000).kind, EndpointKind::Pod, "past its deadline");
    }

    #[test]
    fn a_pod_that_ended_in_a_second_keeps_its_address_for_that_second_unless_a_newer_pod_was_made() {
        // `old` finished at 00:00:34.x (reads "34"); `new` was created at 00:00:36 with its address.
        let pod = |json: &str| serde_json::from_str::<Pod>(json).unwrap();
        let old = pod(r#"{"metadata":{"name":"old","namespace":"d","creationTimestamp":"2024-01-01T00:00:32Z"},
            "spec":{"containers":[]},"status":{"podIP":"10.244.1.3","phase":"Succeeded","containerStatuses":[
            {"name":"c","image":"i","imageID":"","ready":false,"restartCount":0,
             "state":{"terminated":{"exitCode":0,"finishedAt":"2024-01-01T00:00:34Z"}}}]}}"#);
        let new = pod(r#"{"metadata":{"name":"new","namespace":"d","creationTimestamp":"2024-01-01T00:00:36Z"},
            "spec":{"containers":[]},"status":{"podIP":"10.244.1.3","phase":"Running"}}"#);
        let mut s = ClusterState::default();
        s.add_pod(&old);
        s.add_pod(&new);
        let t0 = 1_704_067_200_000_000;
        let name_at = |t: u64| s.resolve_at("10.244.1.3".parse().unwrap(), 80, t0 + t).name;
        assert_eq!(name_at(34_045_000).as_deref(), Some("old"));
        assert_eq!(name_at(35_500_000).as_deref(), Some("new"), "past the old pod's second, within the slack");
        assert_eq!(name_at(36_100_000).as_deref(), Some("new"));
        // A replacement made in the second its predecessor ended has the address from then on.
        let quick = pod(r#"{"metadata":{"name":"quick","namespace":"d","creationTimestamp":"2024-01-01T00:00:34Z"},
            "spec":{"containers":[]},"status":{"podIP":"10.244.1.3","phase":"Running"}}"#);
        let mut s = ClusterState::default();
        s.add_pod(&old);
        s.add_pod(&quick);
        assert_eq!(s.resolve_at("10.244.1.3".parse().unwrap(), 80, t0 + 34_500_000).name.as_deref(), Some("quick"));
        // Made in that second but started by its kubelet in the next: not yet (found by the real
        // cluster's faults test: a web pod deleted at 55 s, its replacement created at 55 s and
        // started at 56 s, a request to the old one at 55.4 s).
        let started_later = pod(
            r#"{"metadata":{"name":"later","namespace":"d","creationTimestamp":"2024-01-01T00:00:34Z"},
            "spec":{"containers":[]},"status":{"podIP":"10.244.1.3","phase":"Running","startTime":"2024-01-01T00:00:35Z"}}"#,
        );
        let mut s = ClusterState::default();
        s.add_pod(&old);
        s.add_pod(&started_later);
        let name_at = |t: u64| s.resolve_at("10.244.1.3".parse().unwrap(), 80, t0 + t).name;
        assert_eq!(name_at(34_500_000).as_deref(), Some("old"));
        assert_eq!(name_at(35_100_000).as_deref(), Some("later"));
    }
}
