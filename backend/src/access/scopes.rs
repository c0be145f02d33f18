//! The static mapping of people to namespaces, for clusters where humans have no RBAC bindings:
//! `--scopes FILE`, YAML `{groups: {NAME: [NAMESPACE, …]}, users: {NAME: [NAMESPACE, …]}}`, with
//! `"*"` meaning every namespace (a contract: checks outside the project write such files).
//! What it grants adds to what RBAC grants; each grant keeps the sentence that explains it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::who::Who;

/// The file, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scopes {
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub users: BTreeMap<String, Vec<String>>,
}

/// What one person may see, and why: everything, or these namespaces (each with its reason).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    pub all: Option<String>,
    pub namespaces: BTreeMap<String, String>,
}

impl Reach {
    /// Adds a grant of `namespace` (`"*"`: all), keeping the first reason for each.
    pub fn grant(&mut self, namespace: &str, why: impl FnOnce() -> String) {
        if namespace == "*" {
            self.all.get_or_insert_with(why);
        } else if !self.namespaces.contains_key(namespace) {
            self.namespaces.insert(namespace.to_string(), why());
        }
    }
}

/// A Kubernetes namespace name: a DNS label.
fn is_namespace(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl Scopes {
    /// Reads and checks the file: every namespace a DNS label or `"*"`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("--scopes {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--scopes {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let scopes: Scopes = if text.trim().is_empty() {
            Scopes::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?
        };
        for (kind, map) in [("groups", &scopes.groups), ("users", &scopes.users)] {
            for (name, namespaces) in map {
                if let Some(bad) = namespaces.iter().find(|ns| *ns != "*" && !is_namespace(ns)) {
                    return Err(format!("{kind}.{name}: `{bad}` is not a namespace name (or \"*\" for all)"));
                }
            }
        }
        Ok(scopes)
    }

    /// What the file grants `who`, added to `reach`.
    pub fn add_to(&self, who: &Who, reach: &mut Reach) {
        for ns in self.users.get(&who.user).into_iter().flatten() {
            reach.grant(ns, || format!("the scopes file grants user {} {}", who.user, shown(ns)));
        }
        for group in &who.groups {
            for ns in self.groups.get(group).into_iter().flatten() {
                reach.grant(ns, || format!("the scopes file grants group {group} {}", shown(ns)));
            }
        }
    }
}

fn shown(ns: &str) -> String {
    if ns == "*" { "every namespace".into() } else { format!("namespace {ns}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::who::Source;

    #[test]
    fn users_and_groups_add_up_and_star_means_all() {
        let s =
            Scopes::parse("groups:\n  team-a-devs: [team-a]\n  sre: ['*']\nusers:\n  bob: [team-b, shared]\n").unwrap();
        let who = |user: &str, groups: &[&str]| Who {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            source: Source::Proxy,
        };
        let mut r = Reach::default();
        s.add_to(&who("bob", &["team-a-devs"]), &mut r);
        assert_eq!(r.all, None);
        assert_eq!(r.namespaces.keys().collect::<Vec<_>>(), ["shared", "team-a", "team-b"]);
        assert_eq!(r.namespaces["team-a"], "the scopes file grants group team-a-devs namespace team-a");
        let mut r = Reach::default();
        s.add_to(&who("carol", &["sre"]), &mut r);
        assert!(r.all.is_some());
        let mut r = Reach::default();
        s.add_to(&who("dave", &[]), &mut r);
        assert_eq!(r, Reach::default());
    }

    #[test]
    fn a_bad_file_is_one_clear_sentence() {
        assert!(Scopes::parse("").unwrap().users.is_empty());
        let e = Scopes::parse("users:\n  bob: [Team_B]\n").unwrap_err();
        assert!(e.contains("users.bob: `Team_B` is not a namespace name"), "{e}");
        assert!(Scopes::parse("namespaces: {}\n").is_err(), "unknown keys are refused");
    }
}
