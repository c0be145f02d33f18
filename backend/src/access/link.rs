//! Signed, expiring links: an HMAC-SHA256 over the link's id, its expiry and its scope (one saved
//! session, or the live view under one filter), with keys that rotate — the first key signs, every
//! key verifies, so a key can be retired after the links it signed have expired. A link's URL
//! carries `exp` (Unix seconds) and `sig` (base64url); neither is a secret that grants more than
//! the link itself. Signatures compare in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Shortest key accepted: 128 bits of a random text.
pub const MIN_KEY_LEN: usize = 16;

/// What a link opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One saved session, read-only.
    Session,
    /// The live view, restricted to this filter (the holder may narrow it, never widen it).
    Live(String),
    /// A browser signed in with the admin token (the cookie's grant).
    Admin,
}

impl Scope {
    fn label(&self) -> String {
        match self {
            Scope::Session => "session".into(),
            Scope::Live(filter) => format!("live:{filter}"),
            Scope::Admin => "admin".into(),
        }
    }
}

/// Why a link grants nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link's signature does not match: it was changed, or signed with a key podtap no longer has")]
    Tampered,
    #[error("this link expired at {0}")]
    Expired(String),
}

/// The keys links are signed and checked with; the first signs.
#[derive(Clone)]
pub struct LinkKeys {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkKeys({} keys)", self.keys.len()) // never the keys themselves
    }
}

type HmacSha256 = Hmac<Sha256>;

impl LinkKeys {
    /// Keys from their texts, newest (signing) first. None when `keys` is empty.
    pub fn new(keys: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Option<Self> {
        let keys: Vec<Vec<u8>> = keys.into_iter().map(|k| k.as_ref().to_vec()).collect();
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// One fresh random key (for a podtap with no configured key and nowhere to keep one).
    pub fn random() -> Self {
        Self { keys: vec![random_text(32).into_bytes()] }
    }

    /// Secrets for `purpose`, one derived from each key, the signing key's first: replicas given
    /// the same link keys derive the same (used to seal what they keep on a shared bus; what an
    /// older key sealed still opens after the keys rotate).
    pub fn derive(&self, purpose: &str) -> Vec<[u8; 32]> {
        let one = |key: &Vec<u8>| -> [u8; 32] {
            let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(b"podtap derived v1\0");
            mac.update(purpose.as_bytes());
            mac.finalize().into_bytes().into()
        };
        self.keys.iter().map(one).collect()
    }

    fn mac(key: &[u8], id: &str, exp: u64, scope: &Scope) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        // Fields are separated by a byte none of them can hold, so no two links share a message.
        for part in [b"podtap link v1".as_slice(), id.as_bytes(), exp.to_string().as_bytes(), scope.label().as_bytes()]
        {
            mac.update(part);
            mac.update(&[0]);
        }
        mac.finalize().into_bytes().into()
    }

    /// The `sig` of a link to `id` with `scope`, valid until `exp` (Unix seconds).
    pub fn sign(&self, id: &str, exp: u64, scope: &Scope) -> String {
        URL_SAFE_NO_PAD.encode(Self::mac(&self.keys[0], id, exp, scope))
    }

    /// Whether `sig` signs this link with any of the keys, and it has not expired at `now_s`
    /// (a link is valid up to the second before `exp`). A bad signature is reported before an
    /// expiry, so a changed `exp` is "tampered", never "expired".
    pub fn verify(&self, id: &str, exp: u64, scope: &Scope, sig: &str, now_s: u64) -> Result<(), LinkError> {
        let presented = URL_SAFE_NO_PAD.decode(sig).map_err(|_| LinkError::Tampered)?;
        let mut ok = subtle::Choice::from(0);
        for key in &self.keys {
            ok |= Self::mac(key, id, exp, scope).as_slice().ct_eq(&presented);
        }
        if !bool::from(ok) {
            return Err(LinkError::Tampered);
        }
        if now_s >= exp {
            return Err(LinkError::Expired(crate::timespec::format_time(exp.saturating_mul(1_000_000))));
        }
        Ok(())
    }
}

/// `len` random characters of base64url (6 bits each), from the operating system's generator.
pub fn random_text(len: usize) -> String {
    let mut bytes = vec![0u8; len.div_ceil(4) * 3];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    let mut text = URL_SAFE_NO_PAD.encode(bytes);
    text.truncate(len);
    text
}

/// Compares a presented secret with the expected one in time independent of where they differ.
pub fn same_secret(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("s3creT", "s3cret"));
    }
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn keys(k: &[&str]) -> LinkKeys {
        LinkKeys::new(k.iter().copied()).unwrap()
    }

    #[test]
    fn a_signed_link_verifies_until_its_expiry_and_not_at_it() {
        let k = keys(&["first key, sixteen+"]);
        let sig = k.sign("s1", NOW + 60, &Scope::Session);
        assert_eq!(k.verify("s1", NOW + 60, &Scope::Session, &sig, NOW), Ok(()));
        assert_eq!(k.verify("s1", NOW + 60, &Scope::Session, &sig, NOW + 59), Ok(()));
        assert!(matches!(k.verify("s1", NOW + 60, &Scope::Session, &sig, NOW + 60), Err(LinkError::Expired(_))));
        assert!(matches!(k.verify("s1", NOW + 60, &Scope::Session, &sig, NOW + 61), Err(LinkError::Expired(_))));
    }

    #[test]
    fn changing_any_field_is_tampering() {
        let k = keys(&["first key, sixteen+"]);
        let live = Scope::Live("ns:shop".into());
        let sig = k.sign("l1", NOW + 60, &live);
        let tampered = |id: &str, exp: u64, scope: &Scope, sig: &str| k.verify(id, exp, scope, sig, NOW);
        assert_eq!(tampered("l1", NOW + 60, &live, &sig), Ok(()));
        assert_eq!(tampered("l2", NOW + 60, &live, &sig), Err(LinkError::Tampered), "id");
        assert_eq!(tampered("l1", NOW + 3600, &live, &sig), Err(LinkError::Tampered), "a later expiry");
        assert_eq!(tampered("l1", NOW - 3600, &live, &sig), Err(LinkError::Tampered), "an earlier one is no expiry");
        assert_eq!(tampered("l1", NOW + 60, &Scope::Live(String::new()), &sig), Err(LinkError::Tampered), "widened");
        assert_eq!(tampered("l1", NOW + 60, &Scope::Live("ns:shop ns:x".into()), &sig), Err(LinkError::Tampered));
        assert_eq!(tampered("l1", NOW + 60, &Scope::Session, &sig), Err(LinkError::Tampered), "scope kind");
        assert_eq!(tampered("l1", NOW + 60, &Scope::Admin, &sig), Err(LinkError::Tampered), "scope kind");
        let mut flipped = sig.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(tampered("l1", NOW + 60, &live, std::str::from_utf8(&flipped).unwrap()), Err(LinkError::Tampered));
        assert_eq!(tampered("l1", NOW + 60, &live, &sig[..sig.len() - 1]), Err(LinkError::Tampered), "cut");
        assert_eq!(tampered("l1", NOW + 60, &live, "not base64!"), Err(LinkError::Tampered));
        assert_eq!(tampered("l1", NOW + 60, &live, ""), Err(LinkError::Tampered));
    }

    #[test]
    fn a_field_boundary_cannot_be_moved() {
        let k = keys(&["first key, sixteen+"]);
        let sig = k.sign("a", NOW + 60, &Scope::Live("b".into()));
        assert_eq!(k.verify("a\0", NOW + 60, &Scope::Live("b".into()), &sig, NOW), Err(LinkError::Tampered));
    }

    #[test]
    fn a_wrong_key_verifies_nothing() {
        let sig = keys(&["first key, sixteen+"]).sign("s1", NOW + 60, &Scope::Session);
        let other = keys(&["another key, sixteen"]);
        assert_eq!(other.verify("s1", NOW + 60, &Scope::Session, &sig, NOW), Err(LinkError::Tampered));
    }

    #[test]
    fn rotated_keys_verify_old_links_and_sign_with_the_new_key() {
        let old = keys(&["old key, sixteen chars"]);
        let old_sig = old.sign("s1", NOW + 60, &Scope::Session);
        let rotated = keys(&["new key, sixteen chars", "old key, sixteen chars"]);
        assert_eq!(rotated.verify("s1", NOW + 60, &Scope::Session, &old_sig, NOW), Ok(()), "still accepted");
        let new_sig = rotated.sign("s1", NOW + 60, &Scope::Session);
        assert_ne!(new_sig, old_sig, "signed with the new key");
        assert_eq!(keys(&["new key, sixteen chars"]).verify("s1", NOW + 60, &Scope::Session, &new_sig, NOW), Ok(()));
        let retired = keys(&["new key, sixteen chars"]);
        assert_eq!(retired.verify("s1", NOW + 60, &Scope::Session, &old_sig, NOW), Err(LinkError::Tampered));
    }

    #[test]
    fn random_texts_are_url_safe_and_differ() {
        let (a, b) = (random_text(22), random_text(22));
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
