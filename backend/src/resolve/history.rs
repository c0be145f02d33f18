//! What a live watch remembers between two rebuilds of the cluster state: the pods that left the
//! store and when, when each pod was first seen ending, and the backends Services listed. Times
//! are taken as the watch's events arrive (`Stamps`), not at the next rebuild: a rebuild comes
//! at most every quarter second and later on a busy node, and the address of a deleted pod is
//! often another pod's within that (kubelet frees it before it confirms the deletion, and a
//! replacement on the same node takes the lowest free address).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Backend, ClusterState};

/// How long a pod that left keeps its name for traffic from before it left.
pub(super) const HISTORY: Duration = Duration::from_secs(3600);

pub(super) fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_else(|| format!("{:?}/{:?}", p.metadata.namespace, p.metadata.name))
}

/// Whether the pod has finished, or is being deleted.
fn ending(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
        || p.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
}

/// What the pod watch saw since the last rebuild, with when it saw it.
#[derive(Debug, Default)]
struct Seen {
    /// Pods deleted from the store, and when the event came.
    deleted: Vec<(Arc<Pod>, u64)>,
    /// Pods first seen ending (`ending`), by uid, and when.
    ending: FxHashMap<String, u64>,
}

/// The pod watch's events as they come, shared with the rebuild (`History::note` takes them).
#[derive(Clone, Debug, Default)]
pub(super) struct Stamps(Arc<Mutex<Seen>>);

impl Stamps {
    /// Notes one event of the pod watch at `now`. `relisting`: the watch lists again after it
    /// had listed once (an `InitApply` then is news; the first list's are not: a pod already
    /// ending then ended some time before).
    pub(super) fn event(&self, event: &watcher::Event<Pod>, relisting: bool, now: u64) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Delete(p) => seen.deleted.push((Arc::new(p.clone()), now)),
            watcher::Event::Apply(p) if ending(p) => {
                seen.ending.entry(uid(p)).or_insert(now);
            }
            watcher::Event::InitApply(p) if relisting && ending(p) => {
                seen.ending.entry(uid(p)).or_insert(now);
            }
            _ => {}
        }
    }

    fn take(&self) -> Seen {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Pods that left the store, and when: so an IP a new pod takes over keeps the old owner's name
/// for traffic captured before (the failure of tools that only know the present).
/// Also when each pod was first seen finished or deleting: its timestamps say only the second.
#[derive(Default)]
pub(super) struct History {
    known: FxHashMap<String, Arc<Pod>>,
    departed: Vec<(Arc<Pod>, u64)>,
    ended_seen: FxHashMap<String, u64>,
    /// Every Service's backends (`ns/name`, address) at the last rebuild, and those that left
    /// since, with when: so a record that leaves the merge after its Service's pod went still
    /// went through it.
    backends: FxHashMap<(String, std::net::IpAddr), Backend>,
    former_backends: Vec<(String, Backend, u64)>,
}

impl History {
    /// The store holds `current` at `now`; `stamps` has what the watch saw since the last call,
    /// and when. A pod that left with no event seen (a list after `410 Gone`) left by `now`.
    pub(super) fn note(&mut self, current: &[Arc<Pod>], stamps: &Stamps, now: u64) {
        let Seen { deleted, ending: ending_seen } = stamps.take();
        let now_known: FxHashMap<String, Arc<Pod>> = current.iter().map(|p| (uid(p), p.clone())).collect();
        for (id, at) in ending_seen {
            self.ended_seen.entry(id).or_insert(at);
        }
        // A pod the watch deleted, whether a rebuild knew it or not (made and deleted between two).
        let mut deleted: FxHashMap<String, (Arc<Pod>, u64)> =
            deleted.into_iter().map(|(p, at)| (uid(&p), (p, at))).collect();
        for (id, pod) in self.known.drain() {
            if !now_known.contains_key(&id) {
                let gone = deleted.remove(&id).map_or(now, |(_, at)| at.min(now));
                self.ended_seen.entry(id).or_insert(gone);
                self.departed.push((pod, gone));
            }
        }
        for (id, (pod, gone)) in deleted {
            if !now_known.contains_key(&id) {
                self.ended_seen.entry(id).or_insert(gone);
                self.departed.push((pod, gone.min(now)));
            }
        }
        // A pod seen ending later was stamped as its event came (`Stamps::event`); one already
        // ending in the first list ended some time before it, so it has no stamp.
        self.known = now_known;
        let horizon = now.saturating_sub(HISTORY.as_micros() as u64);
        self.departed.retain(|(_, gone)| *gone >= horizon);
        if self.ended_seen.len() > self.known.len() + self.departed.len() {
            let departed: FxHashSet<String> = self.departed.iter().map(|(p, _)| uid(p)).collect();
            let known = &self.known;
            self.ended_seen.retain(|id, _| known.contains_key(id) || departed.contains(id));
        }
    }

    /// Notes the backends `state` lists now, and adds those that left (within `HISTORY`) to it.
    pub(super) fn note_backends(&mut self, state: &mut ClusterState, now: u64) {
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

    pub(super) fn ended_seen(&self, p: &Pod) -> Option<u64> {
        self.ended_seen.get(&uid(p)).copied()
    }

    /// The cluster state of the pods: those in the store (`current`, as `note` saw them) and those
    /// that left within `HISTORY`.
    pub(super) fn add_pods(&self, current: &[Arc<Pod>], state: &mut ClusterState) {
        current.iter().for_each(|p| state.add_watched_pod(p, self.ended_seen(p)));
        self.departed.iter().for_each(|(p, gone)| state.add_departed_pod(p, *gone, self.ended_seen(p)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

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

    /// Pod `name` (uid `name`) on node n1 at `ip`, started at second `started` of 2027-01-01;
    /// `deleting`: its deletion asked then, with 30 s of grace.
    fn pod(name: &str, ip: &str, started: u32, deleting: Option<u32>) -> Arc<Pod> {
        let at = |s: u32| format!("2027-01-01T00:00:{s:02}Z");
        let mut meta = serde_json::json!({"name": name, "namespace": "default", "uid": name,
            "creationTimestamp": at(started)});
        if let Some(d) = deleting {
            meta["deletionTimestamp"] = at(d + 30).into();
            meta["deletionGracePeriodSeconds"] = 30.into();
        }
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": meta,
                "spec": {"nodeName": "n1", "containers": []},
                "status": {"podIP": ip, "phase": "Running", "startTime": at(started)},
            }))
            .unwrap(),
        )
    }

    /// 2027-01-01T00:00:00Z in µs.
    const T0: u64 = 1_798_761_600_000_000;

    fn state_of(history: &History, current: &[Arc<Pod>]) -> ClusterState {
        let mut state = ClusterState::default();
        history.add_pods(current, &mut state);
        state
    }

    /// The fresh-clone failure of 50fcc17 (`cluster_faults`, two hub replicas): a web pod deleted,
    /// its replacement on the same node took its address, and the replacement's first probe came
    /// before the next rebuild. Stamped at the rebuild, the old pod "held" the address until
    /// then, and the probe went out with its name.
    #[test]
    fn a_deleted_pod_lets_its_address_go_when_the_event_came_not_at_the_next_rebuild() {
        let ip: std::net::IpAddr = "10.244.0.5".parse().unwrap();
        let (old, new) = (pod("old", "10.244.0.5", 1, None), pod("new", "10.244.0.5", 20, None));
        let (stamps, mut history) = (Stamps::default(), History::default());
        history.note(std::slice::from_ref(&old), &stamps, T0 + 2_000_000);
        let deleting = pod("old", "10.244.0.5", 1, Some(20));
        stamps.event(&watcher::Event::Apply((*deleting).clone()), false, T0 + 20_100_000);
        history.note(std::slice::from_ref(&deleting), &stamps, T0 + 20_300_000);
        // Gone at 20.4 s; the replacement (started in second 20) answers at 20.5 s; the watch's
        // next rebuild is at 20.8 s.
        stamps.event(&watcher::Event::Delete((*deleting).clone()), false, T0 + 20_400_000);
        history.note(std::slice::from_ref(&new), &stamps, T0 + 20_800_000);
        let state = state_of(&history, std::slice::from_ref(&new));
        let at = |us: u64| state.resolve_at(ip, 3000, T0 + us).qualified_name();
        assert_eq!(at(20_500_000).as_deref(), Some("default/new"));
        assert!(state.held_at(ip, T0 + 20_500_000));
        assert_eq!(at(20_300_000).as_deref(), Some("default/old"), "before the deletion came");
        assert_eq!(at(10_000_000).as_deref(), Some("default/old"));
    }

    /// A pod already deleting in the first list has no time it was seen ending, at any later
    /// rebuild (its end is what its timestamps say); one seen ending later has its event's time.
    #[test]
    fn only_an_ending_the_watch_saw_happen_is_stamped() {
        let (stamps, mut history) = (Stamps::default(), History::default());
        let (before, later) = (pod("before", "10.244.0.9", 1, Some(3)), pod("later", "10.244.0.10", 1, None));
        for p in [&before, &later] {
            stamps.event(&watcher::Event::InitApply((**p).clone()), false, T0 + 40_000_000);
        }
        history.note(&[before.clone(), later.clone()], &stamps, T0 + 40_100_000);
        let ending = pod("later", "10.244.0.10", 1, Some(20));
        stamps.event(&watcher::Event::Apply((*ending).clone()), false, T0 + 50_200_000);
        for now in [50_300_000, 50_600_000] {
            history.note(&[before.clone(), ending.clone()], &stamps, T0 + now);
        }
        assert_eq!(history.ended_seen(&before), None, "ended before podtap looked");
        assert_eq!(history.ended_seen(&ending), Some(T0 + 50_200_000));
    }

    /// A pod made and deleted between two rebuilds (a Job's short pod) keeps its name for its
    /// traffic; a pod gone from a list after `410 Gone`, with no event, left by the rebuild.
    #[test]
    fn a_pod_no_rebuild_saw_keeps_its_name_and_a_relist_leaves_at_the_rebuild() {
        let (stamps, mut history) = (Stamps::default(), History::default());
        let (brief, lost) = (pod("brief", "10.244.0.7", 5, None), pod("lost", "10.244.0.8", 1, None));
        history.note(std::slice::from_ref(&lost), &stamps, T0 + 2_000_000);
        stamps.event(&watcher::Event::Delete((*brief).clone()), false, T0 + 6_000_000);
        history.note(&[], &stamps, T0 + 9_000_000);
        let state = state_of(&history, &[]);
        let name = |ip: &str, s: u64| state.resolve_at(ip.parse().unwrap(), 80, T0 + s).qualified_name();
        assert_eq!(name("10.244.0.7", 5_500_000).as_deref(), Some("default/brief"));
        assert!(state.held_at("10.244.0.7".parse().unwrap(), T0 + 5_500_000));
        assert!(!state.held_at("10.244.0.7".parse().unwrap(), T0 + 6_500_000), "gone when the event came");
        assert!(state.held_at("10.244.0.8".parse().unwrap(), T0 + 8_500_000), "left by the rebuild, no sooner");
        assert!(!state.held_at("10.244.0.8".parse().unwrap(), T0 + 9_500_000));
    }
}
