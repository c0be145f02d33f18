//! What this page is, decided once from its address: where podtap is mounted (the document's
//! `<base>`, set by the server, so a sub-path behind a portal's proxy works), which route it is
//! (the live app, a saved session `/s/{id}`, a live link `/l/{id}`, or a chrome-less embed
//! `/embed/{map|timeline|balance}`), the link it was opened with (`exp`, `sig`: passed on with
//! every request, never a token), and its theme. Every URL the app fetches is made here.

use std::cell::OnceCell;

/// The views an embed page may show alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedView {
    Map,
    Timeline,
    Balance,
}

/// `theme=light|dark|auto` (auto: the system's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    Light,
    Dark,
    Auto,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The mount path, with a trailing slash: `/`, `/podtap/`.
    pub base: String,
    /// A saved session shown (from `/s/{id}`, or `?session=` on an embed).
    pub session: Option<String>,
    /// The link the page was opened with: id, `exp`, `sig`.
    pub link: Option<(String, String, String)>,
    pub embed: Option<EmbedView>,
    pub theme: Theme,
}

thread_local! {
    static PAGE: OnceCell<Page> = const { OnceCell::new() };
}

impl Page {
    /// Reads a page from its base path, its path and its query parameters.
    pub fn parse(base: &str, path: &str, param: impl Fn(&str) -> Option<String>) -> Self {
        let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
        let route = path.strip_prefix(base.as_str()).or_else(|| path.strip_prefix('/')).unwrap_or(path);
        let mut parts = route.split('/');
        let (first, second) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path_id = (!second.is_empty()).then(|| second.to_string());
        let embed = match (first, second) {
            ("embed", "map") => Some(EmbedView::Map),
            ("embed", "timeline") => Some(EmbedView::Timeline),
            ("embed", "balance") => Some(EmbedView::Balance),
            ("embed", _) => Some(EmbedView::Map),
            _ => None,
        };
        let session = match first {
            "s" => path_id.clone(),
            _ => param("session"),
        };
        let link_id = match first {
            "s" | "l" => path_id,
            _ => param("link").or_else(|| param("session")),
        };
        let link = match (link_id, param("exp"), param("sig")) {
            (Some(id), Some(exp), Some(sig)) => Some((id, exp, sig)),
            _ => None,
        };
        let theme = match param("theme").as_deref() {
            Some("dark") => Theme::Dark,
            Some("light") => Theme::Light,
            _ => Theme::Auto,
        };
        Self { base, session, link, embed, theme }
    }

    fn read() -> Self {
        let window = web_sys::window().expect("a browser window");
        let document = window.document().expect("a document");
        let base_uri = document.base_uri().ok().flatten().unwrap_or_else(|| "/".into());
        let base = web_sys::Url::new(&base_uri).map(|u| u.pathname()).unwrap_or_else(|_| "/".into());
        let path = window.location().pathname().unwrap_or_default();
        Self::parse(&base, &path, crate::url_state::param)
    }

    /// This page (read once).
    pub fn get() -> Page {
        PAGE.with(|p| p.get_or_init(Self::read).clone())
    }

    /// The query that carries the page's link to the server (`link=…&exp=…&sig=…`), or "".
    pub fn link_query(&self) -> String {
        match &self.link {
            Some((id, exp, sig)) => format!("link={}&exp={}&sig={}", enc(id), enc(exp), enc(sig)),
            None => String::new(),
        }
    }

    /// The path of a data endpoint (`map?…`) for what this page shows: the live store, or its
    /// session; with its link.
    pub fn data_url(&self, path_and_query: &str) -> String {
        let prefix = match &self.session {
            Some(id) => format!("api/v1/sessions/{}/", enc(id)),
            None => "api/v1/".to_string(),
        };
        self.with_link(format!("{}{prefix}{path_and_query}", self.base))
    }

    /// The path of any other API endpoint (`access`, `sessions`), with the page's link.
    pub fn api_url(&self, path_and_query: &str) -> String {
        self.with_link(format!("{}api/v1/{path_and_query}", self.base))
    }

    fn with_link(&self, mut url: String) -> String {
        let link = self.link_query();
        if !link.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&link);
        }
        url
    }

    /// Whether the page shows a frozen session (no stream).
    pub fn frozen(&self) -> bool {
        self.session.is_some()
    }
}

/// `s` as a URL component.
pub(crate) fn enc(s: &str) -> String {
    #[cfg(target_arch = "wasm32")]
    {
        String::from(js_sys::encode_uri_component(s))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }
}

/// Whether the page is dark: `theme=dark`, or `auto` on a dark system.
pub fn dark() -> bool {
    match Page::get().theme {
        Theme::Dark => true,
        Theme::Light => false,
        Theme::Auto => web_sys::window()
            .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
            .is_some_and(|m| m.matches()),
    }
}

/// Marks the document with the theme (`data-theme`) and embed mode (`class="embed"`).
pub fn apply_to_document() {
    let page = Page::get();
    let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) else { return };
    let theme = match page.theme {
        Theme::Dark => "dark",
        Theme::Light => "light",
        Theme::Auto => "auto",
    };
    let _ = root.set_attribute("data-theme", theme);
    if page.embed.is_some() {
        let _ = root.set_attribute("class", "embed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(base: &str, path: &str, query: &[(&str, &str)]) -> Page {
        let q: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Page::parse(base, path, |name| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn routes_are_read_under_any_base() {
        let live = page("/", "/", &[]);
        assert_eq!((live.session.clone(), live.embed, live.link.clone()), (None, None, None));
        assert_eq!(live.data_url("map?filter="), "/api/v1/map?filter=");
        let s = page("/podtap/", "/podtap/s/abc", &[("exp", "9"), ("sig", "x-y")]);
        assert_eq!(s.session.as_deref(), Some("abc"));
        assert_eq!(s.data_url("map?filter="), "/podtap/api/v1/sessions/abc/map?filter=&link=abc&exp=9&sig=x-y");
        assert_eq!(s.api_url("access"), "/podtap/api/v1/access?link=abc&exp=9&sig=x-y");
        let l = page("/", "/l/q1", &[("exp", "9"), ("sig", "s")]);
        assert_eq!((l.session.clone(), l.link.clone().map(|l| l.0)), (None, Some("q1".into())));
        let e = page("/p/", "/p/embed/balance", &[("session", "abc"), ("exp", "1"), ("sig", "2"), ("theme", "dark")]);
        assert_eq!((e.embed, e.session.as_deref(), e.theme), (Some(EmbedView::Balance), Some("abc"), Theme::Dark));
        let admin_embed = page("/", "/embed/map", &[]);
        assert_eq!((admin_embed.embed, admin_embed.link.clone()), (Some(EmbedView::Map), None));
    }
}
