//! Embeds the built browser app (`dist/`, made by `cargo xtask build`) in the `podtap` binary, so
//! `cargo install --path backend` after a build gives a working UI with nothing beside it. Without
//! a `dist/` the binary embeds nothing and serves the app from `--assets` or a `dist/` it finds.
//! (A generated list of `include_bytes!`: the folder may not exist, which embedding crates refuse.)

use std::path::{Path, PathBuf};

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
        println!("cargo:rerun-if-changed={}", dist.join("index.html").display());
    }
    files.sort();
    let mut code = String::from(
        "/// The app's files (URL path, bytes), embedded at build time.\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (url, path) in &files {
        code.push_str(&format!("    ({url:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_assets.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            files.push((url, path.canonicalize().unwrap_or(path)));
        }
    }
}
