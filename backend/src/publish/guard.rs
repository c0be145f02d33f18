//! What every request passes before a handler sees it, and what every response carries: the
//! DNS-rebinding check (bound to loopback, podtap answers only requests addressed to a loopback
//! name), the same-origin check on WebSocket upgrades and on every request that changes something
//! (any web page may open a WebSocket to localhost or post a form to it; only podtap's own page
//! and allowed embed origins may), secrets compared in constant time, and the security headers
//! (`nosniff`, `no-referrer`, a CSP whose `frame-ancestors` are the allowed embed origins).
//! Owns no state beyond its configuration; knows nothing of the data it protects.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{AppState, plain};

/// Who may talk to this server.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// Bound to loopback: refuse requests addressed to any other host name (DNS rebinding).
    loopback_only: bool,
    /// Origins besides podtap's own that may open the stream (`scheme://host[:port]`).
    embed_origins: Arc<[String]>,
}

impl Guard {
    /// The guard for a server listening on `listen`, with extra allowed embed origins.
    pub fn new(listen: SocketAddr, embed_origins: Vec<String>) -> Self {
        let embed_origins = embed_origins.into_iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect();
        Self { loopback_only: listen.ip().is_loopback(), embed_origins }
    }

    /// The origins besides podtap's own that may embed it.
    pub fn embed_origins(&self) -> &[String] {
        &self.embed_origins
    }

    /// Whether a `Host` header names this server when it listens on loopback only.
    fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true }; // not a browser: HTTP/1.0 or a raw client
        if !self.loopback_only {
            return true;
        }
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host
                .rsplit_once(':')
                .map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host }),
        };
        name.eq_ignore_ascii_case("localhost")
            || name.to_ascii_lowercase().ends_with(".localhost")
            || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether a browser page of `origin` may open the stream of a server reached as `host`.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let own = host.is_some_and(|h| {
            let h = h.to_ascii_lowercase();
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(h.as_str())
        });
        own || self.embed_origins.contains(&origin)
    }
}

impl Guard {
    /// Whether a browser request comes from a page that is neither podtap's nor an allowed embed
    /// origin. The browser's own `Sec-Fetch-Site` (no page can set it) says `same-origin` for
    /// podtap's page — also behind a proxy that rewrites `Host`, and for a form posted under
    /// `Referrer-Policy: no-referrer`, whose `Origin` is `null`. Without it, the `Origin` is
    /// compared with `Host` (or a proxy's `X-Forwarded-Host`). A request with neither is no
    /// browser's.
    fn foreign(&self, headers: &HeaderMap, host: Option<&str>) -> bool {
        if matches!(header_str(headers, "sec-fetch-site".parse().expect("a header name")), Some("same-origin" | "none"))
        {
            return false;
        }
        let Some(origin) = header_str(headers, header::ORIGIN) else { return false };
        let forwarded = header_str(headers, "x-forwarded-host".parse().expect("a header name"));
        !self.origin_allowed(origin, host) && !forwarded.is_some_and(|f| self.origin_allowed(origin, Some(f)))
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The middleware: checks, then the handler, then the headers every response carries.
pub async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = header_str(headers, header::HOST);
    if !state.guard.host_allowed(host) {
        return plain(
            StatusCode::FORBIDDEN,
            "podtap listens on loopback and answers only requests addressed to localhost or a loopback address \
             (a page reached under another name may be a DNS-rebinding attack)\n",
        );
    }
    let upgrade = header_str(headers, header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if (upgrade || writes) && state.guard.foreign(headers, host) {
        return plain(
            StatusCode::FORBIDDEN,
            "podtap's stream and its changes (sessions, links, sign-in) are open only to podtap's own page and \
             the origins given with --embed-origin\n",
        );
    }
    let mut resp = next.run(req).await;
    secure_headers(resp.headers_mut(), &state.assets.csp);
    resp
}

/// `nosniff`, `no-referrer` and the content security policy, on every response.
fn secure_headers(h: &mut HeaderMap, csp: &HeaderValue) {
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_loopback_only_loopback_names_are_served() {
        let g = Guard::new("127.0.0.1:8080".parse().unwrap(), vec![]);
        for ok in ["localhost:8080", "127.0.0.1:8080", "127.0.0.2", "[::1]:8080", "LOCALHOST", "app.localhost:1"] {
            assert!(g.host_allowed(Some(ok)), "{ok}");
        }
        for bad in ["evil.example:8080", "evil.example", "10.0.0.1:8080", "localhost.evil.example", "[2001:db8::1]:80"]
        {
            assert!(!g.host_allowed(Some(bad)), "{bad}");
        }
        let open = Guard::new("0.0.0.0:8080".parse().unwrap(), vec![]);
        assert!(open.host_allowed(Some("podtap.internal:8080")), "with a token, any name");
    }

    #[test]
    fn only_the_own_origin_and_embed_origins_open_the_stream() {
        let g = Guard::new("127.0.0.1:8080".parse().unwrap(), vec!["https://portal.example/".into()]);
        assert!(g.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(g.origin_allowed("https://portal.example", Some("127.0.0.1:8080")));
        assert!(!g.origin_allowed("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!g.origin_allowed("http://localhost:8080", Some("127.0.0.1:8080")), "another origin, same machine");
        assert!(!g.origin_allowed("http://127.0.0.1:8080.evil.example", Some("127.0.0.1:8080")));
    }

    #[test]
    fn a_foreign_page_is_told_apart_by_the_browsers_own_headers() {
        let g = Guard::new("127.0.0.1:8080".parse().unwrap(), vec!["https://portal.example".into()]);
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        let host = Some("127.0.0.1:8080");
        assert!(!g.foreign(&h(&[]), host), "no browser");
        assert!(
            !g.foreign(&h(&[("sec-fetch-site", "same-origin"), ("origin", "null")]), host),
            "a form under no-referrer"
        );
        assert!(
            g.foreign(&h(&[("sec-fetch-site", "same-site"), ("origin", "http://127.0.0.1:9999")]), host),
            "another port"
        );
        assert!(g.foreign(&h(&[("origin", "null")]), host), "a sandboxed page");
        assert!(!g.foreign(&h(&[("sec-fetch-site", "cross-site"), ("origin", "https://portal.example")]), host));
        assert!(g.foreign(&h(&[("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")]), host));
        let proxied = h(&[("origin", "https://tools.example"), ("x-forwarded-host", "tools.example")]);
        assert!(!g.foreign(&proxied, host), "behind a proxy that rewrote Host");
    }
}
