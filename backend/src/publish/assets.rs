//! The browser app's files, loaded once from the built `dist/` directory and served from memory
//! with the right MIME type, an ETag, and cache headers: content-hashed files are immutable,
//! `index.html` is revalidated every time. Any path without a file extension is a client-side
//! route and gets `index.html`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, plain};

/// Shown when the app was not built: the API still works.
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>podtap</title>\
<p>The podtap browser app is not built. Run <code>cargo xtask build</code> (or <code>cargo xtask run</code>) \
and restart, or pass <code>--assets DIR</code>. The API is up: <a href=/api/v1/map>/api/v1/map</a>.</p>";

struct Asset {
    bytes: Bytes,
    mime: &'static str,
    etag: String,
    immutable: bool,
}

/// The app's files by URL path.
pub struct Assets {
    files: HashMap<String, Asset>,
    /// The Content-Security-Policy of every response: the app's own files, its inline boot
    /// script by hash, WebAssembly, and no framing.
    pub csp: HeaderValue,
}

/// The policy for an app whose `index.html` is `index`: scripts from this origin and the inline
/// boot scripts it holds (by SHA-256), WebAssembly compiled from them, styles from this origin
/// (and the inline widths the bars set), connections to this origin (the WebSocket included).
fn policy(index: &[u8]) -> HeaderValue {
    use base64::Engine;
    use sha2::Digest;
    let text = String::from_utf8_lossy(index);
    let mut hashes = String::new();
    for part in text.split("<script").skip(1) {
        let Some((attrs, rest)) = part.split_once('>') else { continue };
        if attrs.contains("src=") {
            continue;
        }
        let body = rest.split("</script>").next().unwrap_or("");
        let digest = sha2::Sha256::digest(body.as_bytes());
        hashes.push_str(&format!(" 'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest)));
    }
    let csp = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; \
         frame-ancestors 'none'"
    );
    HeaderValue::from_str(&csp).expect("a policy is visible ASCII")
}

impl Assets {
    /// Loads every file under `dir`.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let mut files = HashMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path.strip_prefix(dir).expect("below dir").to_string_lossy().replace('\\', "/");
                let bytes = Bytes::from(std::fs::read(&path)?);
                files.insert(format!("/{rel}"), asset(&rel, bytes));
            }
        }
        if !files.contains_key("/index.html") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} has no index.html", dir.display()),
            ));
        }
        let csp = policy(&files["/index.html"].bytes);
        Ok(Self { files, csp })
    }

    /// A stand-in that explains how to build the app.
    pub fn not_built() -> Self {
        let mut files = HashMap::new();
        files.insert("/index.html".into(), asset("index.html", Bytes::from_static(NOT_BUILT.as_bytes())));
        Self { files, csp: policy(NOT_BUILT.as_bytes()) }
    }

    /// The first directory that holds a built app: `explicit`, else `dist/` in the working
    /// directory, beside the executable, or in the workspace the executable was built in.
    pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_path_buf());
        }
        let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
        let mut candidates = vec![PathBuf::from("dist")];
        if let Some(d) = exe_dir {
            candidates.push(d.join("dist"));
            candidates.push(d.join("../../dist")); // target/{debug,release}/podtap
        }
        candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"));
        candidates.into_iter().find(|c| c.join("index.html").is_file())
    }
}

fn asset(rel: &str, bytes: Bytes) -> Asset {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    let ext = rel.rsplit_once('.').map_or("", |(_, e)| e);
    let mime = match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    // xtask names built files `name-<16 hex>.ext`: such a name never changes content.
    let stem = rel.rsplit('/').next().unwrap_or(rel).split('.').next().unwrap_or("");
    let immutable =
        stem.rsplit_once('-').is_some_and(|(_, hash)| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    Asset { bytes, mime, etag: format!("\"{:016x}\"", h.finish()), immutable }
}

/// Fallback handler: a file, or index.html for client-side routes.
pub async fn serve(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let has_extension = path.rsplit('/').next().is_some_and(|last| last.contains('.'));
    let key = if path == "/" || !has_extension { "/index.html" } else { path };
    let Some(a) = state.assets.files.get(key) else {
        return plain(StatusCode::NOT_FOUND, "no such file\n");
    };
    let cache = if a.immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == a.etag.as_bytes()) {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, a.etag.clone()), (header::CACHE_CONTROL, cache.to_string())],
        )
            .into_response();
    }
    let hdrs = [
        (header::CONTENT_TYPE, a.mime.to_string()),
        (header::ETAG, a.etag.clone()),
        (header::CACHE_CONTROL, cache.to_string()),
    ];
    (hdrs, a.bytes.clone()).into_response()
}
