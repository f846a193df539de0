//! Nango webhook signatures (contract §2): pure functions, no I/O, no env reads.
//!
//! `X-Nango-Hmac-Sha256` is the lowercase hex HMAC-SHA256 of the exact raw body bytes, keyed with the
//! environment's webhook signing key. The legacy `X-Nango-Signature` (hex SHA-256 of key ‖ body) is
//! open to length extension, so it is refused unless the operator opts in.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Header carrying the HMAC signature (header names are case-insensitive on the wire).
pub const HMAC_HEADER: &str = "x-nango-hmac-sha256";
/// Legacy header: SHA-256 of key followed by body.
pub const LEGACY_HEADER: &str = "x-nango-signature";

type HmacSha256 = Hmac<Sha256>;

/// A webhook signing key. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Why a request was not accepted as signed by Nango. All of them answer 401 with the same body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature header is not one 64-digit hex value")]
    Malformed,
    #[error("signature does not match the body under any configured key")]
    Mismatch,
}

/// Which configured key verified the request; `Previous` means the sender still uses the old key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    Current,
    Previous,
}

/// The signature header values of one request. Each header may appear several times on the wire;
/// more than one value for the same header is refused rather than guessed at.
#[derive(Debug, Default, Clone, Copy)]
pub struct SignatureHeaders<'a> {
    pub hmac: &'a [&'a [u8]],
    pub legacy: &'a [&'a [u8]],
}

/// Verifies webhook signatures against the current key and, during a rotation, the previous one.
#[derive(Debug, Clone)]
pub struct Verifier {
    current: SigningKey,
    previous: Option<SigningKey>,
    accept_legacy: bool,
}

impl Verifier {
    pub fn new(current: SigningKey, previous: Option<SigningKey>) -> Self {
        Self {
            current,
            previous,
            accept_legacy: false,
        }
    }

    /// Also accept `X-Nango-Signature` when no HMAC header is present. Off by default.
    pub fn accept_legacy(mut self, accept: bool) -> Self {
        self.accept_legacy = accept;
        self
    }

    /// A rotation is under way: a previous key is configured too.
    pub fn has_previous(&self) -> bool {
        self.previous.is_some()
    }

    fn keys(&self) -> impl Iterator<Item = (&SigningKey, KeyUsed)> {
        std::iter::once((&self.current, KeyUsed::Current))
            .chain(self.previous.iter().map(|k| (k, KeyUsed::Previous)))
    }

    /// Checks the raw body against the signature headers. The HMAC header wins when present;
    /// the legacy header is consulted only when it is absent and legacy is enabled.
    pub fn verify(
        &self,
        headers: SignatureHeaders<'_>,
        body: &[u8],
    ) -> Result<KeyUsed, SignatureError> {
        if let Some(value) = single(headers.hmac)? {
            let expected = decode_digest(value)?;
            return self
                .keys()
                .find(|(key, _)| hmac_matches(key.as_bytes(), body, &expected))
                .map(|(_, used)| used)
                .ok_or(SignatureError::Mismatch);
        }
        if self.accept_legacy {
            if let Some(value) = single(headers.legacy)? {
                let expected = decode_digest(value)?;
                return self
                    .keys()
                    .find(|(key, _)| legacy_digest(key.as_bytes(), body).ct_eq(&expected).into())
                    .map(|(_, used)| used)
                    .ok_or(SignatureError::Mismatch);
            }
        }
        Err(SignatureError::Missing)
    }
}

fn single<'a>(values: &[&'a [u8]]) -> Result<Option<&'a [u8]>, SignatureError> {
    match values {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(SignatureError::Malformed),
    }
}

/// Decodes a 64-digit hex header value, upper or lower case, into the 32 digest bytes.
fn decode_digest(value: &[u8]) -> Result<[u8; 32], SignatureError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(value, &mut out).map_err(|_| SignatureError::Malformed)?;
    Ok(out)
}

fn hmac_matches(key: &[u8], body: &[u8], expected: &[u8; 32]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(expected).is_ok()
}

fn legacy_digest(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(key);
    hasher.update(body);
    hasher.finalize().into()
}

/// The `X-Nango-Hmac-Sha256` value Nango would send for `body` under `key` (lowercase hex).
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The legacy `X-Nango-Signature` value for `body` under `key` (lowercase hex).
pub fn sign_legacy(key: &[u8], body: &[u8]) -> String {
    hex::encode(legacy_digest(key, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test-key";
    const OLD: &[u8] = b"old-key";

    fn verify_hmac(v: &Verifier, header: &str, body: &[u8]) -> Result<KeyUsed, SignatureError> {
        v.verify(
            SignatureHeaders {
                hmac: &[header.as_bytes()],
                legacy: &[],
            },
            body,
        )
    }

    fn verifier() -> Verifier {
        Verifier::new(SigningKey::new(KEY), None)
    }

    #[test]
    fn accepts_own_signature_in_either_hex_case() {
        let body = br#"{"type":"sync"}"#;
        let sig = sign(KEY, body);
        assert_eq!(sig.len(), 64);
        assert_eq!(verify_hmac(&verifier(), &sig, body), Ok(KeyUsed::Current));
        assert_eq!(
            verify_hmac(&verifier(), &sig.to_uppercase(), body),
            Ok(KeyUsed::Current)
        );
    }

    #[test]
    fn rejects_changed_body_wrong_key_and_bad_headers() {
        let body = br#"{"type":"sync"}"#;
        let sig = sign(KEY, body);
        let v = verifier();
        assert_eq!(
            verify_hmac(&v, &sig, br#"{"type":"synd"}"#),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_hmac(&v, &sign(b"other", body), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify_hmac(&v, "", body), Err(SignatureError::Malformed));
        assert_eq!(
            verify_hmac(&v, &sig[..63], body),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_hmac(&v, &format!("{}zz", &sig[..62]), body),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_hmac(&v, &format!("{sig}00"), body),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(SignatureHeaders::default(), body),
            Err(SignatureError::Missing)
        );
        let twice = [sig.as_bytes(), sig.as_bytes()];
        assert_eq!(
            v.verify(
                SignatureHeaders {
                    hmac: &twice,
                    legacy: &[]
                },
                body
            ),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn previous_key_verifies_during_rotation() {
        let body = b"{}";
        let v = Verifier::new(SigningKey::new(KEY), Some(SigningKey::new(OLD)));
        assert_eq!(
            verify_hmac(&v, &sign(OLD, body), body),
            Ok(KeyUsed::Previous)
        );
        assert_eq!(
            verify_hmac(&v, &sign(KEY, body), body),
            Ok(KeyUsed::Current)
        );
        assert_eq!(
            verify_hmac(&verifier(), &sign(OLD, body), body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn legacy_header_only_when_enabled_and_hmac_absent() {
        let body = b"{\"a\":1}";
        let legacy = sign_legacy(KEY, body);
        let headers = SignatureHeaders {
            hmac: &[],
            legacy: &[legacy.as_bytes()],
        };
        assert_eq!(
            verifier().verify(headers, body),
            Err(SignatureError::Missing)
        );
        let v = verifier().accept_legacy(true);
        assert_eq!(v.verify(headers, body), Ok(KeyUsed::Current));
        assert_eq!(
            v.verify(headers, b"{\"a\":2}"),
            Err(SignatureError::Mismatch)
        );
        // A wrong HMAC is not rescued by a right legacy signature.
        let bad = sign(b"other", body);
        let both = SignatureHeaders {
            hmac: &[bad.as_bytes()],
            legacy: &[legacy.as_bytes()],
        };
        assert_eq!(v.verify(both, body), Err(SignatureError::Mismatch));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let v = Verifier::new(SigningKey::new("super-secret"), None);
        assert!(!format!("{v:?}").contains("super-secret"));
    }
}
