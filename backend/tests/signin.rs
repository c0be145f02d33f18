//! Bearer JWTs from a real signer (`jose`, in the test identity provider) against `podtap serve`:
//! the person a token names sees their namespaces; a token of another audience, expired beyond
//! the clock skew allowed, signed with a key its issuer does not publish, or with a shared
//! secret, is refused in one sentence; the issuer rotating its key is followed; every refusal is
//! in the audit log and counted on `/metrics`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::idp::Idp;
use common::served::{self, http_get_with};
use serde_json::{Value, json};

const TOKEN: &str = "admin-s3cret";

fn get(addr: std::net::SocketAddr, path: &str, bearer: &str) -> (u16, Value) {
    let auth = format!("Bearer {bearer}");
    http_get_with(addr, path, &[("Authorization", &auth)]).unwrap_or_else(|| panic!("{path}"))
}

#[test]
fn bearer_tokens_name_people_and_bad_ones_are_refused() {
    let idp = Idp::start("unused-here");
    let dir = std::env::temp_dir().join(format!("podtap-signin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scopes = dir.join("scopes.yaml");
    std::fs::write(&scopes, "groups:\n  team-shop: [shop]\nusers:\n  bob: [default]\n").unwrap();
    let audit = dir.join("audit.jsonl");
    let jwks = format!("{}/portal/jwks", idp.issuer);
    let issuer = format!("{}/portal", idp.issuer);
    let serve = served::start(Command::new(env!("CARGO_BIN_EXE_podtap")).args([
        "serve",
        "--token",
        TOKEN,
        "--jwt-jwks",
        &jwks,
        "--jwt-audience",
        "podtap-api",
        "--jwt-issuer",
        &issuer,
        "--scopes",
        &scopes.display().to_string(),
        "--audit-log",
        &audit.display().to_string(),
    ]));
    let addr = serve.addr;
    // The demo is replayed in real time: wait for records in shop.
    let alice = idp.mint("alice", "team-shop", "");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let records = loop {
        let (code, page) = get(addr, "/api/v1/records?limit=10000&kind=all", &alice);
        assert_eq!(code, 200, "{page}");
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if records.len() > 20 {
            break records;
        }
        assert!(std::time::Instant::now() < deadline, "alice's records");
        std::thread::sleep(Duration::from_millis(300));
    };
    for r in &records {
        let ns = |side: &str| r[side]["namespace"].as_str() == Some("shop");
        assert!(ns("src") || ns("dst"), "alice sees only shop's: {r}");
    }
    let (_, me) = get(addr, "/api/v1/whoami", &alice);
    assert_eq!(
        (me["user"].clone(), me["source"].clone(), me["namespaces"].clone()),
        (json!("alice"), json!("jwt"), json!(["shop"]))
    );
    let (_, me) = get(addr, "/api/v1/whoami", &idp.mint("bob", "", ""));
    assert_eq!(me["namespaces"], json!(["default"]));

    // Refused, each in a sentence.
    let refused = |token: &str, why: &str| {
        let (code, body) = get(addr, "/api/v1/whoami", token);
        assert_eq!(code, 401, "{why}: {body}");
        let text = body["error"].as_str().unwrap_or_default().to_lowercase();
        assert!(text.contains(why), "{why}: {body}");
    };
    refused(&idp.mint("alice", "team-shop", "aud=someone-else"), "audience");
    refused(&idp.mint("alice", "team-shop", "exp_in=-120"), "expired");
    refused(&idp.mint("alice", "team-shop", "kid=unpublished"), "does not publish");
    // Within the 60 s of clock skew allowed, an expired token still holds.
    assert_eq!(get(addr, "/api/v1/whoami", &idp.mint("alice", "team-shop", "exp_in=-20")).0, 200);
    // A shared-secret token (the algorithm-confusion attack) names no one.
    let header = base64_url(br#"{"alg":"HS256","kid":"portal-1"}"#);
    let claims = base64_url(format!(r#"{{"sub":"root","aud":"podtap-api","exp":{}}}"#, u64::MAX / 2).as_bytes());
    refused(&format!("{header}.{claims}.c2lnbmF0dXJl"), "not accepted");

    // The signer rotates its key: a token with the new one is accepted once its set is read again.
    idp.rotate();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(get(addr, "/api/v1/whoami", &idp.mint("alice", "team-shop", "")).0, 200, "the rotated key");

    // The admin token is still the admin; the refusals are audited and counted.
    assert_eq!(get(addr, "/api/v1/whoami", TOKEN).1["source"], "token");
    let metrics = Command::new("curl")
        .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}"), &format!("http://{addr}/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    assert!(metrics.contains("podtap_audit_events_total{event=\"refused\"} 4"), "{metrics}");
    serve.stop();
    let lines: Vec<Value> =
        std::fs::read_to_string(&audit).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let refusals: Vec<&Value> = lines.iter().filter(|l| l["event"] == "refused").collect();
    assert_eq!(refusals.len(), 4, "{lines:?}");
    assert!(refusals.iter().all(|l| l["path"] == "/whoami" && l["reason"].is_string()), "{refusals:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
