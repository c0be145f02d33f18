//! The rule for records, as one pure function: what a viewer who may see some namespaces sees of
//! one record. A record is visible when its source or its destination is in one of the viewer's
//! namespaces. Every endpoint outside them (the peer, and the address the client used, the
//! proxy, the source address translation on that side) is reduced to its kind, namespace and
//! workload: no pod name, no address, no port, no node. Then nothing of where the outside side
//! ran is left either: the interface and the tunnel go, and of the nodes that saw the request
//! only those of the viewer's own endpoints stay. A record with no namespace on either side (a
//! node talking to the outside, host networking) is the admin's unless the viewer is allowed
//! such records, and then whole. Every view, count and export is meant to be computed from
//! records passed through this rule first.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use podtap_shared::{Endpoint, Record};
use serde::{Deserialize, Serialize};

/// What a viewer may see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sight {
    /// Everything: the admin, or `"*"`.
    All,
    /// These namespaces; records with no namespace on either side when `unnamespaced`.
    Namespaces { names: BTreeSet<String>, unnamespaced: bool },
}

impl Sight {
    /// A viewer of exactly these namespaces.
    pub fn of<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Sight::Namespaces { names: names.into_iter().map(Into::into).collect(), unnamespaced: false }
    }

    /// Whether this viewer sees everything.
    pub fn is_all(&self) -> bool {
        matches!(self, Sight::All)
    }

    /// The namespaces seen, in words: `every namespace`, `namespaces team-a, team-b`.
    pub fn describe(&self) -> String {
        match self {
            Sight::All => "every namespace".into(),
            Sight::Namespaces { names, unnamespaced } if names.is_empty() => {
                if *unnamespaced {
                    "traffic with no namespace only".into()
                } else {
                    "no namespace".into()
                }
            }
            Sight::Namespaces { names, unnamespaced } => {
                let list = names.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
                let extra = if *unnamespaced { ", and traffic with no namespace" } else { "" };
                format!("namespace{} {list}{extra}", if names.len() == 1 { "" } else { "s" })
            }
        }
    }

    /// Whether an endpoint of this namespace is the viewer's.
    pub fn owns(&self, namespace: Option<&str>) -> bool {
        match self {
            Sight::All => true,
            Sight::Namespaces { names, .. } => namespace.is_some_and(|ns| names.contains(ns)),
        }
    }
}

/// What is left of an endpoint outside the viewer's namespaces.
fn reduced(e: &Endpoint) -> Endpoint {
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
        kind: e.kind,
        name: None,
        namespace: e.namespace.clone(),
        workload: e.workload.clone(),
        node: None,
        hidden: true,
    }
}

/// Whether a viewer with `sight` sees anything of `r` (`view` without the copy).
pub fn sees(r: &Record, sight: &Sight) -> bool {
    sees_ends(r.src.namespace.as_deref(), r.dst.namespace.as_deref(), sight)
}

/// Whether a viewer with `sight` sees a record between these namespaces.
pub fn sees_ends(src_ns: Option<&str>, dst_ns: Option<&str>, sight: &Sight) -> bool {
    match sight {
        Sight::All => true,
        Sight::Namespaces { unnamespaced, .. } if src_ns.is_none() && dst_ns.is_none() => *unnamespaced,
        _ => sight.owns(src_ns) || sight.owns(dst_ns),
    }
}

/// What a viewer with `sight` sees of `r`, or `None` when it is not theirs to see.
pub fn view(r: &Record, sight: &Sight) -> Option<Record> {
    if !sees(r, sight) {
        return None;
    }
    let (src_ns, dst_ns) = (r.src.namespace.as_deref(), r.dst.namespace.as_deref());
    let (src_mine, dst_mine) = (sight.owns(src_ns), sight.owns(dst_ns));
    // Both sides the viewer's, or neither has a namespace (and the viewer may see such records).
    if (src_mine && dst_mine) || (src_ns.is_none() && dst_ns.is_none()) {
        return Some(r.clone());
    }
    let mut out = r.clone();
    if src_mine {
        out.dst = reduced(&r.dst);
        out.addressed = r.addressed.as_deref().map(|a| Box::new(reduced(a)));
    } else {
        out.src = reduced(&r.src);
        out.proxy = r.proxy.as_deref().map(|p| Box::new(reduced(p)));
        out.snat = r.snat.as_deref().map(|s| Box::new(reduced(s)));
    }
    let mine = if src_mine { &r.src } else { &r.dst };
    out.nodes.retain(|n| mine.node.as_ref() == Some(n));
    out.interface = None;
    out.tunnel = None;
    Some(out)
}

#[cfg(test)]
mod tests;
