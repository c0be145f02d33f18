//! The browser app build: `cargo build --target wasm32-unknown-unknown -p podtap-frontend`, then
//! wasm-bindgen as a library (its version pinned to the one Leptos pulls in, so the JS glue and the
//! wasm never disagree), then `dist/` with content-hashed file names and an index.html.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::{cargo, root, status, step, target_dir};

const TARGET: &str = "wasm32-unknown-unknown";

/// Adds the wasm target with rustup when it is missing.
pub fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output().context("rustup is needed")?;
    if !String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET) {
        step("rustup target add wasm32-unknown-unknown");
        status(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    Ok(())
}

/// FNV-1a, 64 bits: a stable content hash for cache-busting names.
fn content_hash(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Builds `dist/`; returns its path.
pub fn frontend(dev: bool) -> Result<PathBuf> {
    ensure_wasm_target()?;
    let profile = if dev { "dev" } else { "wasm-release" };
    step(&format!("frontend: cargo rustc --crate-type cdylib --target {TARGET} --profile {profile}"));
    let started = Instant::now();
    // A cdylib only here: the host builds the crate as an rlib (tests, lints), never linking a
    // host cdylib of the whole app.
    cargo(&[
        "rustc",
        "-p",
        "podtap-frontend",
        "--lib",
        "--crate-type",
        "cdylib",
        "--target",
        TARGET,
        "--profile",
        profile,
    ])?;
    let dir = if dev { "debug" } else { "wasm-release" };
    let wasm = target_dir().join(TARGET).join(dir).join("podtap_frontend.wasm");

    // `PODTAP_WASM_NAMES=1` keeps function names in a release build, for a profiler.
    let names = dev || std::env::var_os("PODTAP_WASM_NAMES").is_some_and(|v| v == "1");
    let staging = target_dir().join("xtask-bindgen");
    let _ = std::fs::remove_dir_all(&staging);
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .keep_debug(dev)
        // Function names (the `name` section) are 45% of a release build and only help a debugger.
        .remove_name_section(!names)
        .remove_producers_section(!dev)
        .out_name("podtap")
        .generate(&staging)
        .context("wasm-bindgen failed")?;

    let js = std::fs::read(staging.join("podtap.js"))?;
    let wasm_bytes = std::fs::read(staging.join("podtap_bg.wasm"))?;
    let css = std::fs::read(root().join("style/podtap.css")).context("style/podtap.css")?;
    let app_hash = content_hash(&[&js, &wasm_bytes]);
    let css_hash = content_hash(&[&css]);
    let worker = std::fs::read(root().join("frontend/stream-worker.js")).context("frontend/stream-worker.js")?;
    let worker_name = format!("podtap-stream-{}.js", content_hash(&[&worker]));

    let dist = root().join("dist");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist)?;
    let js_name = format!("podtap-{app_hash}.js");
    let wasm_name = format!("podtap-{app_hash}.wasm");
    let css_name = format!("podtap-{css_hash}.css");
    std::fs::write(dist.join(&js_name), &js)?;
    std::fs::write(dist.join(&wasm_name), &wasm_bytes)?;
    std::fs::write(dist.join(&css_name), &css)?;
    std::fs::write(dist.join(&worker_name), &worker)?;
    std::fs::write(dist.join("index.html"), index_html(&js_name, &wasm_name, &css_name, &worker_name))?;
    eprintln!(
        "xtask: dist/ ready in {:.1}s: {wasm_name} {} KiB, {js_name} {} KiB",
        started.elapsed().as_secs_f64(),
        wasm_bytes.len() / 1024,
        js.len() / 1024
    );
    Ok(dist)
}

/// The page: its style, the stream worker (started at once), and its app (preloaded).
fn index_html(js: &str, wasm: &str, css: &str, worker: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>podtap</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='6' fill='%232f7de1'/%3E%3C/svg%3E">
<link rel="stylesheet" href="{css}">
<script>
// The stream's worker starts while the app loads (frontend/src/socket.rs).
try {{
  const w = new Worker(new URL("{worker}", document.baseURI));
  w.onerror = () => {{ window.podtapStreamWorker = null; }};
  window.podtapStreamWorker = w;
}} catch (e) {{}}
</script>
<link rel="modulepreload" href="{js}">
<link rel="preload" href="{wasm}" as="fetch" type="application/wasm" crossorigin>
</head>
<body>
<script type="module">
import init from "./{js}";
init({{ module_or_path: new URL("{wasm}", document.baseURI) }});
</script>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_are_stable_and_sixteen_hex_digits() {
        let h = super::content_hash(&[b"podtap"]);
        assert_eq!(h, super::content_hash(&[b"pod", b"tap"]));
        assert_eq!(h.len(), 16);
        assert_ne!(h, super::content_hash(&[b"podtaq"]));
    }
}
