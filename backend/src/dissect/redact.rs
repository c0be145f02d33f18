//! Which request headers leave the node, and which of them are secrets. A header not listed here
//! is dropped; a secret keeps its name (so users see it was sent) and loses its value.

/// Headers kept as they are.
const KEPT: &[&str] =
    &["host", "user-agent", "content-type", "accept", "x-request-id", "x-forwarded-for", "traceparent", "grpc-timeout"];

/// Headers whose values never leave the node.
const SECRET: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token", "x-csrf-token"];

/// The replacement for a secret value.
pub const REDACTED: &str = "[redacted]";

/// What leaves the node for one header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Name and value.
    Value(&'static str),
    /// The name, with `[redacted]` for the value.
    Redacted(&'static str),
}

/// Classifies a header by name (any case); `None` drops it. Allocates nothing.
pub fn classify(name: &str) -> Option<Keep> {
    let find = |list: &[&'static str]| list.iter().copied().find(|k| k.eq_ignore_ascii_case(name));
    find(SECRET).map(Keep::Redacted).or_else(|| find(KEPT).map(Keep::Value))
}

/// Adds one header to what leaves the node, if it is kept at all: its value, or `[redacted]`.
pub fn keep(kept: &mut podtap_shared::Headers, name: &str, value: &[u8]) {
    match classify(name) {
        Some(Keep::Value(name)) => {
            kept.insert(name, podtap_shared::HeaderValue::from_utf8_lossy(value));
        }
        Some(Keep::Redacted(name)) => {
            kept.insert(name, REDACTED);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_keep_their_name_but_not_their_value() {
        assert_eq!(classify("Authorization"), Some(Keep::Redacted("authorization")));
        assert_eq!(classify("COOKIE"), Some(Keep::Redacted("cookie")));
        assert_eq!(classify("User-Agent"), Some(Keep::Value("user-agent")));
        assert_eq!(classify("x-internal"), None);
    }
}
