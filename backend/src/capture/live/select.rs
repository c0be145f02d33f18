//! Which interfaces to capture on: exact names and globs (`veth*`), minus excludes, read from
//! `/sys/class/net` of the network namespace podtap runs in.

use std::fmt;
use std::io;
use std::path::Path;

use wildmatch::WildMatch;

use crate::capture::LinkType;

/// Interface names container runtimes and CNI plugins give pod-side host interfaces: bridge CNIs
/// and flannel (veth*), Calico (cali*), Cilium (lxc*), AWS VPC CNI (eni*), GKE (gke*), Azure (azv*).
/// Bridges such as cni0 are left out on purpose: they carry the same packets as the veths again.
pub const POD_PATTERNS: &[&str] = &["veth*", "cali*", "lxc*", "eni*", "gke*", "azv*"];

/// Names or globs to capture on, and globs to leave out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?'])
}

impl Selection {
    /// The names given without wildcards: these must exist when capture starts.
    pub fn exact(&self) -> impl Iterator<Item = &str> {
        self.include.iter().map(String::as_str).filter(|p| !is_glob(p))
    }

    pub fn matches(&self, name: &str) -> bool {
        self.include.iter().any(|p| WildMatch::new(p).matches(name))
            && !self.exclude.iter().any(|p| WildMatch::new(p).matches(name))
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.include.join(", "))?;
        if !self.exclude.is_empty() {
            write!(f, " (except {})", self.exclude.join(", "))?;
        }
        Ok(())
    }
}

/// An interface as the kernel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysInterface {
    pub name: String,
    pub ifindex: u32,
    /// ARPHRD_* hardware type.
    pub kind: u32,
}

impl SysInterface {
    /// How frames on this interface begin, if podtap can decode them.
    pub fn link(&self) -> Option<LinkType> {
        match self.kind {
            // Ethernet; loopback also carries a (zeroed) Ethernet header.
            1 | 772 => Some(LinkType::Ethernet),
            // No link header: tun, WireGuard, some CNI tunnels.
            65534 => Some(LinkType::RawIp),
            _ => None,
        }
    }
}

/// The interfaces of this network namespace.
pub fn list() -> io::Result<Vec<SysInterface>> {
    list_in(Path::new("/sys/class/net"))
}

fn list_in(dir: &Path) -> io::Result<Vec<SysInterface>> {
    let read = |name: &str, what: &str| -> Option<u32> {
        std::fs::read_to_string(dir.join(name).join(what)).ok()?.trim().parse().ok()
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        // An interface removed between readdir and read is simply not there.
        if let (Some(ifindex), Some(kind)) = (read(&name, "ifindex"), read(&name, "type")) {
            out.push(SysInterface { name, ifindex, kind });
        }
    }
    out.sort_by_key(|i| i.ifindex);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(include: &[&str], exclude: &[&str]) -> Selection {
        Selection {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn globs_and_excludes() {
        let s = sel(&["veth*", "eth0"], &["veth-skip*"]);
        assert!(s.matches("veth12ab"));
        assert!(s.matches("eth0"));
        assert!(!s.matches("eth1"));
        assert!(!s.matches("veth-skip1"));
        assert_eq!(s.exact().collect::<Vec<_>>(), ["eth0"]);
        assert_eq!(s.to_string(), "veth*, eth0 (except veth-skip*)");
    }

    #[test]
    fn pod_patterns_leave_bridges_out() {
        let s = sel(POD_PATTERNS, &[]);
        for name in ["veth3a1b", "cali12345", "lxc9f", "eni0a", "gke77", "azv1"] {
            assert!(s.matches(name), "{name}");
        }
        for name in ["cni0", "cbr0", "docker0", "eth0", "lo", "flannel.1"] {
            assert!(!s.matches(name), "{name}");
        }
    }

    #[test]
    fn lists_sysfs_style_directories_and_skips_half_gone_entries() {
        let dir = std::env::temp_dir().join(format!("podtap-sysnet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, index, kind) in [("lo", "1", "772"), ("veth1", "7", "1"), ("wg0", "3", "65534")] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("ifindex"), format!("{index}\n")).unwrap();
            std::fs::write(dir.join(name).join("type"), format!("{kind}\n")).unwrap();
        }
        std::fs::create_dir_all(dir.join("gone")).unwrap();
        let got = list_in(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<_> = got.iter().map(|i| (i.name.as_str(), i.ifindex, i.link())).collect();
        assert_eq!(
            names,
            [
                ("lo", 1, Some(LinkType::Ethernet)),
                ("wg0", 3, Some(LinkType::RawIp)),
                ("veth1", 7, Some(LinkType::Ethernet))
            ]
        );
    }
}
