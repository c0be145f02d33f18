//! Names for addresses outside the cluster, from what the traffic itself said: the DNS answers
//! podtap saw (a pod asked for `api.example.com`, the answer held `203.0.113.9`) and the SNI of TLS
//! handshakes to an address — and, for an address neither named (one resolved before podtap
//! started), the `Host` of a plain HTTP request or a gRPC call to it. An external endpoint is then named `api.example.com` instead of only
//! `203.0.113.9`, and the map groups every address of one name into one box. The table is bounded:
//! the oldest names are forgotten first.

use std::collections::VecDeque;
use std::net::IpAddr;

use podtap_shared::{Detail, EndpointKind, Name, Record};
use rustc_hash::FxHashMap;

/// Addresses remembered at once.
pub const MAX_NAMES: usize = 65_536;

#[derive(Debug, Default)]
pub struct DnsNames {
    /// An address → the name that answered for it last, and when it was learned.
    names: FxHashMap<IpAddr, (Name, u64)>,
    /// Addresses in the order they were learned (with that order's number), oldest first.
    order: VecDeque<(IpAddr, u64)>,
    next: u64,
}

impl DnsNames {
    /// Learns from one record: a DNS response's addresses, or a TLS handshake's SNI for an
    /// address outside the cluster, or an HTTP request's host name for one still unnamed.
    pub fn learn(&mut self, r: &Record) {
        match &r.detail {
            Detail::Dns(d) if d.rcode.as_deref() == Some("NOERROR") && !d.query.is_empty() => {
                let name: Name = d.query.to_ascii_lowercase().into();
                for ip in d.answers.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                    self.insert(ip, name.clone());
                }
            }
            Detail::Tls(t) if r.dst.kind == EndpointKind::External => {
                if let Some(sni) = t.sni.as_deref().filter(|s| !s.is_empty()) {
                    self.insert(r.dst.ip, sni.to_ascii_lowercase().into());
                }
            }
            Detail::Http(h) if r.dst.kind == EndpointKind::External => self.learn_host(r.dst.ip, &h.headers),
            Detail::Grpc(g) if r.dst.kind == EndpointKind::External => self.learn_host(r.dst.ip, &g.headers),
            _ => {}
        }
    }

    /// A `Host` header names an address only when nothing better did: a client may send any
    /// host, an answer or an SNI is what it resolved or verified.
    fn learn_host(&mut self, ip: IpAddr, headers: &podtap_shared::Headers) {
        if self.names.contains_key(&ip) {
            return;
        }
        if let Some(host) = headers.get("host").and_then(host_name) {
            self.insert(ip, host.into());
        }
    }

    /// Names the record's external endpoints that have no name yet.
    pub fn name(&self, r: &mut Record) {
        for e in [&mut r.src, &mut r.dst] {
            if e.kind == EndpointKind::External && e.name.is_none() {
                e.name = self.get(e.ip).cloned();
            }
        }
    }

    pub fn get(&self, ip: IpAddr) -> Option<&Name> {
        self.names.get(&ip).map(|(n, _)| n)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn insert(&mut self, ip: IpAddr, name: Name) {
        if self.names.get(&ip).is_some_and(|(n, _)| *n == name) {
            return;
        }
        let seq = self.next;
        self.next += 1;
        self.names.insert(ip, (name, seq));
        self.order.push_back((ip, seq));
        while self.names.len() > MAX_NAMES {
            let Some((old, at)) = self.order.pop_front() else { break };
            // Only the address's newest entry in the queue forgets it.
            if self.names.get(&old).is_some_and(|(_, s)| *s == at) {
                self.names.remove(&old);
            }
        }
        // Stale queue entries (renamed addresses) never outnumber the names by much.
        if self.order.len() > 2 * MAX_NAMES {
            let names = &self.names;
            self.order.retain(|(ip, s)| names.get(ip).is_some_and(|(_, n)| n == s));
        }
    }
}

/// The name in a `Host` value (`api.example.com:8443` → `api.example.com`), lower-cased; `None`
/// for an address literal or anything that is not a DNS name.
fn host_name(value: &str) -> Option<String> {
    let value = value.trim();
    if value.starts_with('[') {
        return None; // [IPv6]:port
    }
    let host = value
        .rsplit_once(':')
        .map_or(value, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { value });
    let host = host.trim_end_matches('.');
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.parse::<IpAddr>().is_err()
        && host.contains('.')
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    valid.then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use podtap_shared::{DnsExchange, Endpoint, TlsExchange};

    fn dns(query: &str, rcode: &str, answers: &[&str]) -> Record {
        Record {
            detail: Detail::Dns(DnsExchange {
                query: query.into(),
                qtype: "A".into(),
                rcode: Some(rcode.into()),
                answers: answers.iter().map(|a| a.to_string()).collect(),
            }),
            ..Record::test()
        }
    }

    fn to_external(ip: &str) -> Record {
        let mut r = Record::test();
        r.dst = Endpoint { kind: EndpointKind::External, ..Endpoint::unknown(ip.parse().unwrap(), 443) };
        r
    }

    #[test]
    fn an_answer_names_its_addresses_and_a_later_connection_to_them() {
        let mut names = DnsNames::default();
        // A CNAME chain: the name the client asked for names the addresses, not the alias.
        names.learn(&dns("API.example.com", "NOERROR", &["edge.cdn.example", "203.0.113.9", "2001:db8::9"]));
        names.learn(&dns("gone.example.com", "NXDOMAIN", &["203.0.113.50"]));
        let mut r = to_external("203.0.113.9");
        names.name(&mut r);
        assert_eq!(r.dst.name.as_deref(), Some("api.example.com"));
        assert_eq!(names.get("2001:db8::9".parse().unwrap()).map(|n| &**n), Some("api.example.com"));
        assert!(names.get("203.0.113.50".parse().unwrap()).is_none(), "an error answer names nothing");
        // Pods and unresolved addresses keep what they are.
        let mut pod = to_external("203.0.113.9");
        pod.dst.kind = EndpointKind::Pod;
        names.name(&mut pod);
        assert!(pod.dst.name.is_none());
    }

    #[test]
    fn a_plain_request_names_an_address_nothing_else_named_by_its_host() {
        use podtap_shared::HttpExchange;
        let http = |ip: &str, host: &str| {
            let mut r = to_external(ip);
            let mut h = HttpExchange::default();
            h.headers.insert("host", host);
            r.detail = Detail::Http(h);
            r
        };
        let mut names = DnsNames::default();
        names.learn(&http("198.51.100.20", "Legacy.Example.net:8080"));
        assert_eq!(names.get("198.51.100.20".parse().unwrap()).map(|n| &**n), Some("legacy.example.net"));
        // An answer seen later names it as the answer says; a Host never renames it back.
        names.learn(&dns("real.example.net", "NOERROR", &["198.51.100.20"]));
        names.learn(&http("198.51.100.20", "spoofed.example"));
        assert_eq!(names.get("198.51.100.20".parse().unwrap()).map(|n| &**n), Some("real.example.net"));
        // Address literals, single labels and junk name nothing.
        for host in ["198.51.100.30", "[2001:db8::1]:80", "localhost", "a..b", "bad_name.example", "x.example:port"] {
            names.learn(&http("198.51.100.30", host));
        }
        assert!(names.get("198.51.100.30".parse().unwrap()).is_none());
        // A request to a pod teaches nothing.
        let mut pod = http("198.51.100.40", "web.example.com");
        pod.dst.kind = EndpointKind::Pod;
        names.learn(&pod);
        assert!(names.get("198.51.100.40".parse().unwrap()).is_none());
    }

    #[test]
    fn a_tls_handshake_to_an_external_address_names_it_by_its_sni() {
        let mut names = DnsNames::default();
        let mut r = to_external("198.51.100.7");
        r.detail = Detail::Tls(TlsExchange { sni: Some("pay.example.org".into()), ..TlsExchange::default() });
        names.learn(&r);
        let mut later = to_external("198.51.100.7");
        names.name(&mut later);
        assert_eq!(later.dst.name.as_deref(), Some("pay.example.org"));
    }

    #[test]
    fn the_table_forgets_the_oldest_names_first_and_stays_bounded() {
        let mut names = DnsNames::default();
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 + i));
        for i in 0..(MAX_NAMES as u32 + 10) {
            names.insert(ip(i), format!("h{i}").into());
        }
        // One renamed again and again leaves stale queue entries but one name.
        for i in 0..(3 * MAX_NAMES as u32) {
            names.insert(ip(MAX_NAMES as u32 + 5), format!("r{}", i % 2).into());
        }
        assert_eq!(names.len(), MAX_NAMES);
        assert!(names.order.len() <= 2 * MAX_NAMES + 1);
        assert!(names.get(ip(0)).is_none() && names.get(ip(9)).is_none());
        assert_eq!(names.get(ip(MAX_NAMES as u32 + 9)).map(|n| &**n), Some(format!("h{}", MAX_NAMES + 9).as_str()));
    }
}
