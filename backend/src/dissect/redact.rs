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

/// What to do with a header value: `None` drops the header.
pub fn filter<'v>(name_lower: &str, value: &'v str) -> Option<&'v str> {
    if SECRET.contains(&name_lower) {
        Some(REDACTED)
    } else if KEPT.contains(&name_lower) {
        Some(value)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_keep_their_name_but_not_their_value() {
        assert_eq!(filter("authorization", "Bearer abc"), Some(REDACTED));
        assert_eq!(filter("cookie", "session=1"), Some(REDACTED));
        assert_eq!(filter("user-agent", "curl/8"), Some("curl/8"));
        assert_eq!(filter("x-internal", "v"), None);
    }
}
