//! A real OpenID provider on loopback for the sign-in tests: `end2end/idp/idp.mjs` (panva's
//! `oidc-provider`, installed by the test command's `npm ci`), with a portal's token signer beside
//! it.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use super::Running;

pub struct Idp {
    pub issuer: String,
    _process: Running,
}

impl Idp {
    /// Starts the provider with podtap's client secret `secret`.
    pub fn start(secret: &str) -> Idp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../end2end/idp/idp.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .args(["--secret", secret])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs the test identity provider");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("its stdout");
        std::io::BufReader::new(stdout).read_line(&mut line).expect("the provider says where it listens");
        let said: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("the provider's first line ({line:?}): {e}"));
        Idp { issuer: said["issuer"].as_str().expect("an issuer").to_string(), _process: Running(child) }
    }

    /// A portal's bearer token for `sub` in `groups`: `extra` adds query parameters (`aud=`,
    /// `exp_in=`, `kid=unpublished`).
    pub fn mint(&self, sub: &str, groups: &str, extra: &str) -> String {
        let url = format!("{}/portal/mint?sub={sub}&groups={groups}&{extra}", self.issuer);
        let out = Command::new("curl").args(["-s", "--fail", &url]).output().expect("curl");
        assert!(out.status.success(), "minting at {url}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// The portal signs with a new key from now on, and publishes it.
    pub fn rotate(&self) {
        let out =
            Command::new("curl").args(["-s", "--fail", &format!("{}/portal/rotate", self.issuer)]).output().unwrap();
        assert!(out.status.success());
    }
}
