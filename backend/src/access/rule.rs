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

/// What a viewer may see.
#[derive(Clone, Debug, PartialEq, Eq)]
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

    /// Whether an endpoint of this namespace is the viewer's.
    fn owns(&self, namespace: Option<&str>) -> bool {
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
    }
}

/// What a viewer with `sight` sees of `r`, or `None` when it is not theirs to see.
pub fn view(r: &Record, sight: &Sight) -> Option<Record> {
    let Sight::Namespaces { unnamespaced, .. } = sight else { return Some(r.clone()) };
    let (src_ns, dst_ns) = (r.src.namespace.as_deref(), r.dst.namespace.as_deref());
    if src_ns.is_none() && dst_ns.is_none() {
        return unnamespaced.then(|| r.clone());
    }
    let (src_mine, dst_mine) = (sight.owns(src_ns), sight.owns(dst_ns));
    if !src_mine && !dst_mine {
        return None;
    }
    if src_mine && dst_mine {
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
