//! What a signed-in person sees, decided from who they are: the admin groups (`--admin-group`)
//! see everything and may do everything; everyone else sees the namespaces the scopes file
//! (`--scopes`) and Kubernetes RBAC grant them. RBAC is asked through a `Reviewer` (a
//! SubjectAccessReview on the API server, `resolve::review`): cluster-wide first, then, only when
//! that is refused, namespace by namespace. Answers are cached briefly (`REVIEW_TTL`, at most
//! `MAX_CACHED`), so a revoked RoleBinding stops showing traffic within seconds; a failed review
//! grants nothing and is not cached. Every grant keeps the sentence that explains it (`whoami`).

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::rule::Sight;
use super::scopes::{Reach, Scopes};
use super::who::Who;

/// How long an RBAC answer is trusted.
pub const REVIEW_TTL: Duration = Duration::from_secs(10);
/// Most answers kept; past it the cache starts again.
const MAX_CACHED: usize = 10_000;
/// Reviews in flight at once for one person's namespaces.
const CONCURRENT_REVIEWS: usize = 8;

/// One question to RBAC: may this user (with these groups) see traffic cluster-wide (`None`)
/// or in one namespace?
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ask {
    pub user: String,
    pub groups: Vec<String>,
    pub namespace: Option<String>,
}

/// RBAC's answer, with the API server's reason (which binding allowed it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub allowed: bool,
    pub reason: String,
}

pub type Reviewing = Pin<Box<dyn Future<Output = Result<Answer, String>> + Send>>;

/// Asks RBAC.
pub trait Reviewer: Send + Sync {
    fn review(&self, ask: Ask) -> Reviewing;
    /// What is asked, for sentences: `get traffic.podtap.io`.
    fn asks(&self) -> String;
}

/// A person as podtap serves them: who, what they see and why, and whether they are an admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    pub who: Who,
    pub sight: Sight,
    pub why: Vec<String>,
    pub admin: bool,
    /// When their sign-in ends, when it does (an OpenID Connect sign-in).
    pub expires_s: Option<u64>,
    /// Their sign-in's id (signing out deletes it).
    pub signin: Option<String>,
}

/// How people's sight is decided (`--scopes`, RBAC, `--admin-group`, `--unnamespaced-group`).
#[derive(Default)]
pub struct Decider {
    pub scopes: Option<Scopes>,
    pub reviewer: Option<Arc<dyn Reviewer>>,
    pub admin_groups: BTreeSet<String>,
    pub unnamespaced_groups: BTreeSet<String>,
    cache: Mutex<HashMap<Ask, (Instant, Answer)>>,
}

impl Decider {
    pub fn new(
        scopes: Option<Scopes>,
        reviewer: Option<Arc<dyn Reviewer>>,
        admin_groups: BTreeSet<String>,
        unnamespaced_groups: BTreeSet<String>,
    ) -> Self {
        Decider { scopes, reviewer, admin_groups, unnamespaced_groups, cache: Mutex::default() }
    }

    /// What `who` sees, among the cluster's `namespaces` (those RBAC is asked about one by one,
    /// listed only when RBAC refused cluster-wide).
    pub async fn viewer(&self, who: Who, namespaces: impl FnOnce() -> BTreeSet<String>) -> Viewer {
        if let Some(group) = who.groups.iter().find(|g| self.admin_groups.contains(*g)) {
            let why = vec![format!("member of {group}, an admin group (--admin-group): sees and manages everything")];
            return Viewer { sight: Sight::All, why, admin: true, who, expires_s: None, signin: None };
        }
        let mut reach = Reach::default();
        if let Some(scopes) = &self.scopes {
            scopes.add_to(&who, &mut reach);
        }
        let mut why = Vec::new();
        if let Some(reviewer) = &self.reviewer
            && reach.all.is_none()
        {
            self.ask_rbac(reviewer.as_ref(), &who, namespaces, &mut reach, &mut why).await;
        }
        let unnamespaced = who.groups.iter().find(|g| self.unnamespaced_groups.contains(*g));
        let sight = match &reach.all {
            Some(reason) => {
                why.insert(0, reason.clone());
                Sight::All
            }
            None => {
                why.splice(0..0, reach.namespaces.values().cloned());
                if let Some(g) = unnamespaced {
                    why.push(format!("member of {g}: also sees traffic with no namespace on either side"));
                }
                Sight::Namespaces {
                    names: reach.namespaces.keys().cloned().collect(),
                    unnamespaced: unnamespaced.is_some(),
                }
            }
        };
        if matches!(&sight, Sight::Namespaces { names, .. } if names.is_empty()) {
            let rbac = self.reviewer.as_ref().map(|r| format!(" nor RBAC ({})", r.asks())).unwrap_or_default();
            why.push(format!("no namespace: neither the scopes file{rbac} grants {} any", who.user));
        }
        Viewer { who, sight, why, admin: false, expires_s: None, signin: None }
    }

    /// RBAC cluster-wide, then per namespace not yet granted; failures become sentences.
    async fn ask_rbac(
        &self,
        reviewer: &dyn Reviewer,
        who: &Who,
        namespaces: impl FnOnce() -> BTreeSet<String>,
        reach: &mut Reach,
        why: &mut Vec<String>,
    ) {
        let ask = |namespace: Option<String>| Ask { user: who.user.clone(), groups: who.groups.clone(), namespace };
        match self.cached(reviewer, ask(None)).await {
            Ok(a) if a.allowed => {
                reach.grant("*", || format!("RBAC allows {} in every namespace: {}", reviewer.asks(), a.reason));
                return;
            }
            Ok(_) => {}
            Err(e) => why.push(format!("RBAC could not be asked: {e}")),
        }
        let pending: Vec<String> = namespaces().into_iter().filter(|ns| !reach.namespaces.contains_key(ns)).collect();
        let answers: Vec<(String, Result<Answer, String>)> = futures_util::stream::iter(pending)
            .map(|ns| async { (ns.clone(), self.cached(reviewer, ask(Some(ns))).await) })
            .buffer_unordered(CONCURRENT_REVIEWS)
            .collect()
            .await;
        let mut failed = 0;
        for (ns, answer) in answers {
            match answer {
                Ok(a) if a.allowed => {
                    reach.grant(&ns, || format!("RBAC allows {} in namespace {ns}: {}", reviewer.asks(), a.reason))
                }
                Ok(_) => {}
                Err(_) => failed += 1,
            }
        }
        if failed > 0 {
            why.push(format!("RBAC could not be asked about {failed} namespaces; they are not shown"));
        }
    }

    async fn cached(&self, reviewer: &dyn Reviewer, ask: Ask) -> Result<Answer, String> {
        let now = Instant::now();
        if let Some((at, answer)) = self.lock().get(&ask)
            && now.duration_since(*at) < REVIEW_TTL
        {
            return Ok(answer.clone());
        }
        let answer = reviewer.review(ask.clone()).await?;
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(ask, (now, answer.clone()));
        Ok(answer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Ask, (Instant, Answer)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::access::who::Source;

    /// RBAC as a table: (user, namespace or cluster-wide) allowed.
    struct Table {
        allowed: Vec<(&'static str, Option<&'static str>)>,
        asked: AtomicUsize,
    }

    impl Reviewer for Table {
        fn review(&self, ask: Ask) -> Reviewing {
            self.asked.fetch_add(1, Ordering::Relaxed);
            let allowed = self.allowed.iter().any(|(u, ns)| *u == ask.user && ns.map(str::to_string) == ask.namespace);
            Box::pin(async move { Ok(Answer { allowed, reason: "a binding".into() }) })
        }
        fn asks(&self) -> String {
            "get traffic.podtap.io".into()
        }
    }

    fn who(user: &str, groups: &[&str]) -> Who {
        Who { user: user.into(), groups: groups.iter().map(|g| g.to_string()).collect(), source: Source::Proxy }
    }

    #[tokio::test]
    async fn rbac_and_the_file_add_up_cluster_wide_first_and_answers_are_cached() {
        let table =
            Arc::new(Table { allowed: vec![("alice", Some("team-a")), ("root", None)], asked: AtomicUsize::new(0) });
        let scopes = Scopes::parse("users:\n  alice: [shared]\n").unwrap();
        let d = Decider::new(Some(scopes), Some(table.clone()), ["admins".into()].into(), BTreeSet::new());
        let namespaces: BTreeSet<String> = ["team-a", "team-b", "shared"].map(String::from).into();
        let alice = d.viewer(who("alice", &[]), || namespaces.clone()).await;
        assert_eq!(alice.sight, Sight::of(["shared", "team-a"]));
        assert_eq!(alice.why.len(), 2, "{:?}", alice.why);
        // Cluster-wide once, then team-a and team-b (shared was granted by the file).
        assert_eq!(table.asked.load(Ordering::Relaxed), 3);
        d.viewer(who("alice", &[]), || namespaces.clone()).await;
        assert_eq!(table.asked.load(Ordering::Relaxed), 3, "answered from the cache");
        let root = d.viewer(who("root", &[]), || namespaces.clone()).await;
        assert_eq!((root.sight, root.admin), (Sight::All, false));
        let carol = d.viewer(who("carol", &[]), || namespaces.clone()).await;
        assert_eq!(carol.sight, Sight::of(Vec::<String>::new()));
        assert!(carol.why[0].starts_with("no namespace"), "{:?}", carol.why);
        let admin = d.viewer(who("dave", &["admins"]), || namespaces.clone()).await;
        assert_eq!((admin.sight, admin.admin), (Sight::All, true));
    }
}
