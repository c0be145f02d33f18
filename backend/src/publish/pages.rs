//! The few pages the server writes itself, for when the app cannot help: sign in with the token,
//! and a link that grants nothing (tampered, revoked: 403; expired: 410). Plain HTML with no
//! script, under the same Content-Security-Policy as everything else.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::ApiError;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

const STYLE: &str = "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;\
color:#1d2430;background:#fff}@media(prefers-color-scheme:dark){body{color:#dfe5ee;background:#12161c}\
input,button{color:inherit;background:#1d232c;border-color:#3a4350}}h1{font-size:1.3rem}\
input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;border:1px solid #b8c0cc;border-radius:4px}\
button{font:inherit;margin-top:.6rem;padding:.4rem 1rem;border:1px solid #2f7de1;border-radius:4px}\
.muted{color:#6b7685}</style>";

fn page(status: StatusCode, title: &str, body: String) -> Response {
    let html = format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>podtap — {}</title>{STYLE}<body data-testid=\"server-page\"><h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    );
    let mut resp = (status, html).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A path of this podtap to go to after signing in: `next` when it is one, else the base.
pub fn local_next(base: &str, next: &str) -> String {
    let local = next.starts_with(base) && !next.starts_with("//") && !next.contains('\\') && !next.contains("://");
    if local { next.to_string() } else { base.to_string() }
}

/// The sign-in page: why, and a form for the token.
pub fn sign_in(base: &str, status: StatusCode, why: &str, next: &str) -> Response {
    let body = format!(
        "<p data-testid=\"sign-in-reason\">{}</p>\
         <p>This podtap was started with a token. Paste it below, or open the address podtap printed \
         at start. If you were given a share link, open that link instead: it needs no token.</p>\
         <form method=post action=\"{}api/v1/login\"><label>Token <input name=token type=password \
         autocomplete=current-password autofocus required data-testid=\"sign-in-token\"></label>\
         <input type=hidden name=next value=\"{}\"><button data-testid=\"sign-in\">Sign in</button></form>\
         <p class=muted>The token is exchanged for a cookie this browser keeps for 7 days; it never \
         stays in an address.</p>",
        escape(why),
        escape(base),
        escape(&local_next(base, next)),
    );
    page(status, "Sign in to podtap", body)
}

/// The page for a link that grants nothing.
pub fn link_refused(e: &ApiError) -> Response {
    let (status, title) = match e {
        ApiError::Refused(crate::access::Refusal::Expired(_)) => (StatusCode::GONE, "This link has expired"),
        _ => (StatusCode::FORBIDDEN, "This link does not open anything"),
    };
    let body = format!(
        "<p data-testid=\"link-refused\">{}.</p><p>Ask whoever shared it for a new link. A podtap link \
         opens exactly one saved session, or the live view under one filter, until it expires.</p>",
        escape(&e.to_string())
    );
    page(status, title, body)
}
