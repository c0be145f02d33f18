//! How an edge looks and what its label says: width by request rate, colour by error rate, a
//! dashed line for probes only, a dotted one for DNS only. The legend is drawn from the same
//! tables, so it cannot disagree with the map.

use super::fold::Link;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dash {
    Solid,
    /// Only kubelet probes.
    Probe,
    /// Only DNS queries.
    Dns,
}

/// Error-rate bands: up to (exclusive) this share of requests, this colour and legend text.
pub const ERROR_BANDS: [(f64, &str, &str); 3] =
    [(1e-9, "#5f7fa3", "no errors"), (0.05, "#d39a00", "errors < 5 %"), (f64::INFINITY, "#d64545", "errors ≥ 5 %")];
/// Edges that carried no request (connections only).
pub const IDLE: &str = "#9aa5b1";

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Look {
    /// World units (scaled with the zoom, never under half a pixel on screen).
    pub width: f64,
    pub colour: &'static str,
    pub dash: Dash,
}

/// Requests a second over `span_s` seconds.
pub fn rate(requests: u64, span_s: Option<f64>) -> Option<f64> {
    span_s.filter(|s| *s > 0.0).map(|s| requests as f64 / s)
}

pub fn look(l: &Link, span_s: Option<f64>) -> Look {
    let dash = if l.probe_only() {
        Dash::Probe
    } else if l.dns_only() {
        Dash::Dns
    } else {
        Dash::Solid
    };
    // Width grows with the logarithm of the rate (or of the count, when the span is unknown).
    let r = rate(l.requests, span_s).unwrap_or(l.requests as f64);
    let width = (1.2 + 1.4 * (1.0 + r).log2()).clamp(1.2, 12.0);
    if l.requests == 0 {
        return Look { width: 1.0, colour: IDLE, dash };
    }
    let share = l.errors as f64 / l.requests as f64;
    let colour = ERROR_BANDS.iter().find(|(upto, _, _)| share < *upto).map_or(ERROR_BANDS[2].1, |b| b.1);
    Look { width, colour, dash }
}

/// `12.5 req/s · 4 conn` (or `310 req · 4 conn` without a span); `≥` when podtap knows it may
/// have missed some.
pub fn label(l: &Link, span_s: Option<f64>, unsure: bool) -> String {
    let at_least = if unsure { "≥ " } else { "" };
    let requests = match rate(l.requests, span_s) {
        Some(r) if r >= 10.0 => format!("{r:.0} req/s"),
        Some(r) if r >= 0.1 || r == 0.0 => format!("{r:.1} req/s"),
        Some(r) => format!("{r:.2} req/s"),
        None => format!("{} req", l.requests),
    };
    format!("{at_least}{requests} · {} conn", l.connections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(requests: u64, errors: u64, probes: u64, dns: u64) -> Link {
        Link { requests, connections: 2, errors, probe_requests: probes, dns_requests: dns, ..Link::new("a:x", "b:y") }
    }

    #[test]
    fn width_follows_the_rate_and_colour_the_errors() {
        let slow = look(&link(10, 0, 0, 0), Some(100.0));
        let fast = look(&link(10_000, 0, 0, 0), Some(100.0));
        assert!(fast.width > slow.width * 2.0, "{slow:?} {fast:?}");
        assert_eq!(slow.colour, ERROR_BANDS[0].1);
        assert_eq!(look(&link(100, 1, 0, 0), None).colour, ERROR_BANDS[1].1);
        assert_eq!(look(&link(100, 5, 0, 0), None).colour, ERROR_BANDS[2].1);
        assert_eq!(look(&link(0, 0, 0, 0), None).colour, IDLE);
        assert_eq!(look(&link(5, 0, 5, 0), None).dash, Dash::Probe);
        assert_eq!(look(&link(5, 0, 0, 5), None).dash, Dash::Dns);
        assert_eq!(look(&link(5, 0, 2, 0), None).dash, Dash::Solid);
    }

    #[test]
    fn labels_say_the_rate_the_connections_and_doubt() {
        assert_eq!(label(&link(125, 0, 0, 0), Some(10.0), false), "12 req/s · 2 conn");
        assert_eq!(label(&link(3, 0, 0, 0), Some(10.0), false), "0.3 req/s · 2 conn");
        assert_eq!(label(&link(3, 0, 0, 0), None, true), "≥ 3 req · 2 conn");
    }
}
