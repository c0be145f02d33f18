//! What podtap may list, kind by kind: each watch (a kind cluster-wide, or in one namespace when
//! only a Role allows it) reports whether it has listed or was refused, and this module turns
//! that into readiness ("every watch has an answer"), one log line per new refusal instead of
//! one per retry, and the list of missing kinds with what each costs, for `/healthz` and the UI.
//! Knows nothing of the objects themselves.

use std::collections::BTreeMap;
use std::sync::Mutex;

use podtap_shared::MissingKind;

/// Why a watch has nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 403: the user may not list this kind here.
    Forbidden,
    /// 404: the API server does not serve this kind (its API group is missing).
    NotServed,
    /// Anything else the server or the network said; the watch keeps retrying.
    Failing(String),
}

impl Refusal {
    /// From a reflector's error.
    pub fn of(e: &kube::runtime::watcher::Error) -> Self {
        use kube::runtime::watcher::Error as W;
        let status = match e {
            W::InitialListFailed(kube::Error::Api(s))
            | W::WatchStartFailed(kube::Error::Api(s))
            | W::WatchFailed(kube::Error::Api(s)) => Some(s.code),
            W::WatchError(s) => Some(s.code),
            _ => None,
        };
        match status {
            Some(403) => Refusal::Forbidden,
            Some(404) => Refusal::NotServed,
            _ => Refusal::Failing(e.to_string()),
        }
    }

    fn words(&self) -> String {
        match self {
            Refusal::Forbidden => "forbidden (403)".into(),
            Refusal::NotServed => "not served by this API server (404)".into(),
            Refusal::Failing(e) => format!("failing: {e}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Pending,
    Listed,
    Refused(Refusal),
}

impl Answer {
    /// Listed, or refused by the server itself: waiting longer would change nothing.
    fn is_final(&self) -> bool {
        matches!(self, Answer::Listed | Answer::Refused(Refusal::Forbidden | Refusal::NotServed))
    }
}

/// The watches of every kind: kind → scope (`None`: cluster-wide) → answer.
#[derive(Default)]
pub struct Access {
    watches: Mutex<BTreeMap<&'static str, BTreeMap<Option<String>, Answer>>>,
}

/// What a user loses without `kind`.
fn effect(kind: &str) -> &'static str {
    match kind {
        "pods" => "addresses of pods are shown without names",
        "services" => "traffic to a ClusterIP or NodePort shows an address, not its Service",
        "endpointslices" => {
            "a Service's replicas are unknown: no replica balance, NodePort requests not followed to their pod"
        }
        "nodes" => "traffic from nodes (kubelet probes, SNAT) shows addresses, not node names",
        "replicasets" => "pods of Deployments are grouped by ReplicaSet, not by Deployment",
        "jobs" => "no workload names for Jobs: pods of CronJobs are grouped by Job",
        "namespaces" => "namespaces are known only from the objects in them",
        _ => "fewer names",
    }
}

impl Access {
    /// A watch starts: it has no answer yet.
    pub fn expect(&self, kind: &'static str, scope: Option<&str>) {
        self.lock().entry(kind).or_default().entry(scope.map(str::to_string)).or_insert(Answer::Pending);
    }

    /// A watch has listed its kind.
    pub fn listed(&self, kind: &'static str, scope: Option<&str>) {
        self.lock().entry(kind).or_default().insert(scope.map(str::to_string), Answer::Listed);
    }

    /// A watch failed. Logged once per new reason, not at every retry; a watch that had listed
    /// keeps what it has (a dropped watch resumes by itself).
    pub fn refused(&self, kind: &'static str, scope: Option<&str>, why: Refusal) {
        let mut w = self.lock();
        let answer = w.entry(kind).or_default().entry(scope.map(str::to_string)).or_insert(Answer::Pending);
        if *answer == Answer::Listed {
            tracing::debug!("watching {kind}: {}", why.words());
            return;
        }
        if *answer != Answer::Refused(why.clone()) {
            let at = scope.map_or("cluster-wide".to_string(), |n| format!("in namespace {n}"));
            tracing::warn!("cannot list {kind} {at}: {}; retrying with backoff ({})", why.words(), effect(kind));
            *answer = Answer::Refused(why);
        }
    }

    /// A cluster-wide watch given up for per-namespace ones.
    pub fn narrowed(&self, kind: &'static str, namespaces: &[String]) {
        let mut w = self.lock();
        let scopes = w.entry(kind).or_default();
        scopes.insert(None, Answer::Refused(Refusal::Forbidden));
        for n in namespaces {
            scopes.entry(Some(n.clone())).or_insert(Answer::Pending);
        }
    }

    /// Every watch has an answer: listed, or refused by the server (403, 404). A refused
    /// connection, a timeout or a 5xx is no answer: the server may be starting, and names
    /// handed out now would be missing for good from what is named with them.
    pub fn settled(&self) -> bool {
        self.lock().values().flat_map(|s| s.values()).all(Answer::is_final)
    }

    /// The watches with no answer yet, as `kind (why)` for a log line.
    pub fn unanswered(&self) -> Vec<String> {
        let w = self.lock();
        let mut out = Vec::new();
        for (kind, scopes) in w.iter() {
            for (scope, answer) in scopes.iter().filter(|(_, a)| !a.is_final()) {
                let at = scope.as_ref().map_or(String::new(), |n| format!(" in {n}"));
                let why = match answer {
                    Answer::Refused(r) => r.words(),
                    _ => "no answer yet".into(),
                };
                out.push(format!("{kind}{at} ({why})"));
            }
        }
        out
    }

    /// The kinds not listed everywhere, with why and what it costs.
    pub fn missing(&self) -> Vec<MissingKind> {
        let w = self.lock();
        let mut out = Vec::new();
        for (kind, scopes) in w.iter() {
            let listed: Vec<&str> =
                scopes.iter().filter(|(_, a)| **a == Answer::Listed).filter_map(|(s, _)| s.as_deref()).collect();
            if scopes.get(&None) == Some(&Answer::Listed) {
                continue;
            }
            let reason = if !listed.is_empty() {
                format!("forbidden cluster-wide; listed only in namespaces {}", listed.join(", "))
            } else {
                match scopes.values().find_map(|a| if let Answer::Refused(r) = a { Some(r) } else { None }) {
                    Some(r) => r.words(),
                    None => continue, // still listing
                }
            };
            let effect = match listed.is_empty() {
                true => effect(kind).to_string(),
                false => format!("elsewhere, {}", effect(kind)),
            };
            out.push(MissingKind { kind: kind.to_string(), reason, effect });
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, BTreeMap<Option<String>, Answer>>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_when_every_watch_has_an_answer_and_names_what_is_missing() {
        let a = Access::default();
        a.expect("pods", None);
        a.expect("jobs", None);
        assert!(!a.settled());
        a.listed("pods", None);
        a.refused("jobs", None, Refusal::Forbidden);
        assert!(a.settled());
        let m = a.missing();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].kind.as_str(), m[0].reason.as_str()), ("jobs", "forbidden (403)"));
        assert!(m[0].effect.contains("Jobs"));
        // A watch that listed and later fails keeps its data: nothing goes missing.
        a.refused("pods", None, Refusal::Failing("connection reset".into()));
        assert_eq!(a.missing().len(), 1);
        assert!(a.settled());
    }

    #[test]
    fn a_refused_connection_a_timeout_or_a_5xx_is_no_answer() {
        let a = Access::default();
        a.expect("pods", None);
        a.expect("nodes", None);
        a.refused("pods", None, Refusal::Failing("error trying to connect: Connection refused".into()));
        a.refused("nodes", None, Refusal::Failing("503 Service Unavailable".into()));
        assert!(!a.settled(), "the server has not answered yet");
        assert_eq!(
            a.unanswered(),
            ["nodes (failing: 503 Service Unavailable)", "pods (failing: error trying to connect: Connection refused)"]
        );
        // Said as missing meanwhile (for /healthz and the page), and settled once it answers.
        assert_eq!(a.missing().len(), 2);
        a.listed("pods", None);
        a.refused("nodes", None, Refusal::NotServed);
        assert!(a.settled());
        assert!(a.unanswered().is_empty());
    }

    #[test]
    fn a_kind_narrowed_to_namespaces_says_where_it_was_listed() {
        let a = Access::default();
        a.expect("pods", None);
        a.narrowed("pods", &["default".into(), "shop".into()]);
        assert!(!a.settled());
        a.listed("pods", Some("default"));
        a.refused("pods", Some("shop"), Refusal::Forbidden);
        assert!(a.settled());
        assert_eq!(a.missing()[0].reason, "forbidden cluster-wide; listed only in namespaces default");
    }
}
