//! Names that come late. A pod talks within milliseconds of starting, and its kubelet reports the
//! pod's address to the API server only after the container started, so a record can be made
//! before the cluster state knows who holds an address in a pod network. With a live cluster
//! state, such a record waits as it leaves the merge: it is named again whenever the state
//! changes, and goes as soon as its addresses are named, or when it has waited `wait_us` of the
//! capture's time (then with what is known). Addresses outside every pod network (nodes, the
//! outside world) never wait, and nothing waits when the state does not change (files).
//! Pure: the caller says what time it is.

use std::collections::VecDeque;

use podtap_shared::{Detail, EndpointKind, Record, Via, ViaKind};

use crate::resolve::ClusterState;

/// How long a record waits for a pod's name with a live cluster state: kubelet reports a started
/// pod's address within a second or two even on a busy node, and an API server that answers late
/// delays its watch events by a few seconds more.
pub const LIVE_WAIT_US: u64 = 10_000_000;

/// The most records that wait at once; past it the oldest goes with what is known.
const MAX_WAITING: usize = 100_000;

/// Counters of the wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LateStats {
    /// Records that waited and were named when the state came.
    pub named_late: u64,
    /// Records that waited their whole time (or for room) and went without a name.
    pub wait_expired: u64,
}

/// Records waiting for the cluster state to name a pod address.
#[derive(Debug, Default)]
pub struct LateNames {
    /// How long a record may wait (capture time); `None`: records never wait.
    wait_us: Option<u64>,
    /// (capture time the wait ends, record), oldest first.
    waiting: VecDeque<(u64, Record)>,
    /// The state changed since the waiting records were last named.
    stale: bool,
    /// The newest capture time seen.
    now_us: u64,
    pub stats: LateStats,
}

impl LateNames {
    /// Records whose pod addresses are not named yet wait up to `wait_us` from now on.
    pub fn wait_up_to(&mut self, wait_us: u64) {
        self.wait_us = Some(wait_us);
    }

    /// Whether records wait at all.
    pub fn enabled(&self) -> bool {
        self.wait_us.is_some()
    }

    /// The cluster state changed: the waiting records are named again at the next `release`.
    pub fn changed(&mut self) {
        self.stale |= !self.waiting.is_empty();
    }

    /// Capture time has reached `now_us`.
    pub fn advance(&mut self, now_us: u64) {
        self.now_us = self.now_us.max(now_us);
    }

    /// How many records wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Names `r` again and says whether it must wait (an address in a pod network no pod is known
    /// to hold at the record's time).
    pub fn must_wait(&self, r: &mut Record, cluster: &ClusterState) -> bool {
        self.enabled() && !rename(r, cluster)
    }

    /// Makes `r` wait (see `must_wait`).
    pub fn park(&mut self, r: Record) {
        let until = self.now_us.saturating_add(self.wait_us.unwrap_or(0));
        self.waiting.push_back((until, r));
    }

    /// Appends to `out` every waiting record that is named now, has waited long enough, or must
    /// make room; each is named with `cluster` as it goes. `all`: every one (the input ended).
    pub fn release(&mut self, cluster: &ClusterState, all: bool, out: &mut Vec<Record>) {
        if std::mem::take(&mut self.stale) {
            for (until, mut r) in std::mem::take(&mut self.waiting) {
                if rename(&mut r, cluster) {
                    self.stats.named_late += 1;
                    out.push(r);
                } else {
                    self.waiting.push_back((until, r));
                }
            }
        }
        while let Some((until, _)) = self.waiting.front() {
            if !(all || *until <= self.now_us || self.waiting.len() > MAX_WAITING) {
                break;
            }
            let Some((_, mut r)) = self.waiting.pop_front() else { break };
            if rename(&mut r, cluster) {
                self.stats.named_late += 1;
            } else {
                self.stats.wait_expired += 1;
            }
            out.push(r);
        }
    }

    /// The start of the oldest waiting record: the observations before it have all left.
    pub fn waiting_since(&self) -> Option<u64> {
        self.waiting.iter().map(|(_, r)| r.ts).min()
    }
}

/// Names the record's pod and unnamed endpoints again with `cluster` as of the record's time; true
/// when every one is settled: not in a pod network, or a pod whose known life includes that time
/// (a name found only by the slack around whole-second timestamps may be one a newer pod takes
/// over, once its node reports it).
pub fn rename(r: &mut Record, cluster: &ClusterState) -> bool {
    let mut settled = true;
    if matches!(r.src.kind, EndpointKind::Unknown | EndpointKind::Pod) {
        r.src = cluster.resolve_source_at(r.src.ip, r.src.port, r.ts);
        settled &= sure(&r.src, r.ts, cluster);
    }
    if matches!(r.dst.kind, EndpointKind::Unknown | EndpointKind::Pod) {
        let was = r.dst.kind;
        r.dst = cluster.resolve_at(r.dst.ip, r.dst.port, r.ts);
        settled &= sure(&r.dst, r.ts, cluster);
        let node_to_pod = matches!(r.detail, Detail::Tcp(_)) && r.src.kind == EndpointKind::Node;
        if was == EndpointKind::Unknown
            && r.via.kind == ViaKind::Unknown
            && addressed_to_pod(r.probe, r.observations > 1 || node_to_pod, &r.dst)
        {
            r.via = Via { kind: ViaKind::Direct, service: None };
        }
    }
    settled
}

/// Whether what `ep` is named at `at` can no longer change as the cluster state catches up.
fn sure(ep: &podtap_shared::Endpoint, at: u64, cluster: &ClusterState) -> bool {
    match ep.kind {
        EndpointKind::Pod => cluster.held_at(ep.ip, at),
        EndpointKind::Unknown => !cluster.in_pod_network(ep.ip),
        _ => true,
    }
}

/// Whether a request no Service address carried was addressed to the pod itself: a kubelet probe,
/// or one seen unrewritten on several interfaces (both pods' veths) or from the node, to a pod.
pub fn addressed_to_pod(probe: bool, unrewritten: bool, dst: &podtap_shared::Endpoint) -> bool {
    probe || (unrewritten && dst.kind == EndpointKind::Pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with nothing in it yet.
    fn placeholder() -> Record {
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        Record {
            id: 0,
            ts: 0,
            conn: 0,
            src: podtap_shared::Endpoint::unknown(ip, 0),
            dst: podtap_shared::Endpoint::unknown(ip, 0),
            via: Via::UNKNOWN,
            probe: false,
            observations: 0,
            interface: None,
            nodes: Vec::new(),
            tunnel: None,
            proxy: None,
            addressed: None,
            snat: None,
            latency_us: None,
            end_us: None,
            request_size: 0,
            response_size: 0,
            seq: None,
            detail: Detail::Http(Default::default()),
        }
    }

    /// A cluster of one node (pod CIDR 10.244.0.0/24) with pod `default/a` at 10.244.0.5, and,
    /// when `b`, pod `default/b` at 10.244.0.6 too.
    fn cluster(b: bool) -> ClusterState {
        let pod = |name: &str, ip: &str| {
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default",
                "creationTimestamp":"2020-01-01T00:00:00Z"}},"spec":{{"nodeName":"n1","containers":[]}},
                "status":{{"podIP":"{ip}","phase":"Running"}}}}"#
            )
        };
        let mut items = vec![
            r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},"spec":{"podCIDR":"10.244.0.0/24"},
              "status":{"addresses":[{"type":"InternalIP","address":"192.168.1.10"}]}}"#
                .to_string(),
            pod("a", "10.244.0.5"),
        ];
        if b {
            items.push(pod("b", "10.244.0.6"));
        }
        let list = format!(r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#, items.join(","));
        let mut state = ClusterState::default();
        crate::resolve::parse_list("test", list.as_bytes(), &mut state).unwrap();
        state
    }

    /// A request from `src` to `dst` at 2024 (after the pods were created), seen on two veths.
    fn record(src: &str, dst: &str, cluster: &ClusterState) -> Record {
        let mut r = placeholder();
        r.ts = 1_700_000_000_000_000;
        r.observations = 2;
        r.src = cluster.resolve_source_at(src.parse().unwrap(), 40000, r.ts);
        r.dst = cluster.resolve_at(dst.parse().unwrap(), 8080, r.ts);
        r
    }

    #[test]
    fn a_pod_named_after_its_first_request_names_the_record_that_waited() {
        let before = cluster(false);
        let mut late = LateNames::default();
        late.wait_up_to(10_000_000);
        late.advance(1_700_000_000_500_000);
        let mut r = record("10.244.0.5", "10.244.0.6", &before);
        assert!(late.must_wait(&mut r, &before), "10.244.0.6 is in the pod network and nobody's yet");
        assert_eq!(r.src.name.as_deref(), Some("a"));
        late.park(r);
        let mut out = Vec::new();
        late.release(&before, false, &mut out);
        assert!(out.is_empty(), "nothing changed and the wait is not over");
        let after = cluster(true);
        late.changed();
        late.release(&after, false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dst.name.as_deref(), Some("b"));
        assert_eq!(out[0].via.kind, ViaKind::Direct, "seen unrewritten on both veths: addressed to the pod");
        assert_eq!(late.stats, LateStats { named_late: 1, wait_expired: 0 });
    }

    #[test]
    fn a_record_waits_at_most_its_time_and_addresses_outside_pod_networks_never_wait() {
        let state = cluster(false);
        let mut late = LateNames::default();
        let mut r = record("10.244.0.5", "10.244.0.9", &state);
        assert!(!late.must_wait(&mut r, &state), "no waiting unless asked (files)");
        late.wait_up_to(10_000_000);
        let mut outside = record("10.244.0.5", "203.0.113.7", &state);
        assert!(!late.must_wait(&mut outside, &state));
        assert_eq!(outside.dst.kind, EndpointKind::External);
        late.advance(100);
        assert!(late.must_wait(&mut r, &state));
        late.park(r);
        assert_eq!(late.waiting_since(), Some(1_700_000_000_000_000));
        let mut out = Vec::new();
        late.advance(10_000_099);
        late.release(&state, false, &mut out);
        assert!(out.is_empty());
        late.advance(10_000_100);
        late.release(&state, false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dst.kind, EndpointKind::Unknown);
        assert_eq!(late.stats.wait_expired, 1);
        assert!(late.is_empty() && late.waiting_since().is_none());
    }

    #[test]
    fn a_name_found_only_by_the_slack_around_timestamps_waits_for_the_address_s_next_pod() {
        // Job pod `old` held 10.244.0.8 and finished at 2024-01-01T00:00:10Z; a pod created in
        // that same second took the address over, and its node has not reported it yet.
        let list = |new: bool| {
            let mut items = vec![
                r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},"spec":{"podCIDR":"10.244.0.0/24"}}"#
                    .to_string(),
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"old","namespace":"default",
                  "creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"nodeName":"n1","containers":[]},
                  "status":{"podIP":"10.244.0.8","phase":"Succeeded","containerStatuses":[{"name":"c","image":"i",
                  "imageID":"","ready":false,"restartCount":0,
                  "state":{"terminated":{"exitCode":0,"finishedAt":"2024-01-01T00:00:10Z"}}}]}}"#
                    .to_string(),
            ];
            if new {
                items.push(
                    r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"new","namespace":"default",
                      "creationTimestamp":"2024-01-01T00:00:10Z"},"spec":{"nodeName":"n1","containers":[]},
                      "status":{"podIP":"10.244.0.8","phase":"Running"}}"#
                        .to_string(),
                );
            }
            let list = format!(r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#, items.join(","));
            let mut state = ClusterState::default();
            crate::resolve::parse_list("test", list.as_bytes(), &mut state).unwrap();
            state
        };
        let (before, after) = (list(false), list(true));
        let at = 1_704_067_211_500_000; // 00:00:11.5
        let mut late = LateNames::default();
        late.wait_up_to(LIVE_WAIT_US);
        let mut r = placeholder();
        r.ts = at;
        r.src = before.resolve_source_at("10.244.0.8".parse().unwrap(), 40000, at);
        assert_eq!(r.src.name.as_deref(), Some("old"), "within the slack, the old pod's name");
        assert!(late.must_wait(&mut r, &before), "but only by the slack: it waits");
        late.park(r);
        late.changed();
        let mut out = Vec::new();
        late.release(&after, false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].src.name.as_deref(), Some("new"));
    }

    #[test]
    fn the_end_of_input_lets_every_record_go() {
        let state = cluster(false);
        let mut late = LateNames::default();
        late.wait_up_to(10_000_000);
        for _ in 0..3 {
            let mut r = record("10.244.0.7", "10.244.0.5", &state);
            assert!(late.must_wait(&mut r, &state));
            late.park(r);
        }
        let mut out = Vec::new();
        late.release(&state, true, &mut out);
        assert_eq!((out.len(), late.len()), (3, 0));
    }
}
