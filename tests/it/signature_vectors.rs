//! The vectors the official Nango SDK verifies (copied from shared/nango-signature-vectors.json).

use lambda_http::http::HeaderMap;
use nango_sync::core::signature::{
    sign, sign_legacy, SignatureError, SignatureHeaders, SigningKey, Verifier,
};
use serde::Deserialize;

use crate::common::read;

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    secret: String,
    body: String,
    body_utf8_length: usize,
    headers: std::collections::HashMap<String, String>,
}

fn vectors() -> Vec<Vector> {
    let v: Vectors =
        serde_json::from_str(&read("tests/fixtures/nango-signature-vectors.json")).unwrap();
    assert!(v.vectors.len() >= 3, "the vector file lost its vectors");
    v.vectors
}

fn check(verifier: &Verifier, header: &str, body: &[u8]) -> Result<(), SignatureError> {
    verifier
        .verify(
            SignatureHeaders {
                hmac: &[header.as_bytes()],
                legacy: &[],
            },
            body,
        )
        .map(|_| ())
}

#[test]
fn every_vector_verifies_byte_for_byte() {
    for v in vectors() {
        let body = v.body.as_bytes();
        assert_eq!(body.len(), v.body_utf8_length, "{}", v.name);
        let hmac = &v.headers["X-Nango-Hmac-Sha256"];
        let legacy = &v.headers["X-Nango-Signature"];
        assert_eq!(&sign(v.secret.as_bytes(), body), hmac, "{}", v.name);
        assert_eq!(
            &sign_legacy(v.secret.as_bytes(), body),
            legacy,
            "{}",
            v.name
        );
        let verifier = Verifier::new(SigningKey::new(v.secret.as_bytes()), None);
        assert_eq!(check(&verifier, hmac, body), Ok(()), "{}", v.name);
        assert_eq!(
            check(&verifier, &hmac.to_uppercase(), body),
            Ok(()),
            "{}",
            v.name
        );
    }
}

#[test]
fn every_vector_fails_when_anything_changes() {
    for v in vectors() {
        let body = v.body.as_bytes();
        let hmac = &v.headers["X-Nango-Hmac-Sha256"];
        let verifier = Verifier::new(SigningKey::new(v.secret.as_bytes()), None);
        let name = &v.name;

        for i in [0, body.len() / 2, body.len() - 1] {
            let mut changed = body.to_vec();
            changed[i] ^= 0x01;
            assert_eq!(
                check(&verifier, hmac, &changed),
                Err(SignatureError::Mismatch),
                "{name} byte {i}"
            );
        }
        let mut newline = body.to_vec();
        newline.push(b'\n');
        assert_eq!(
            check(&verifier, hmac, &newline),
            Err(SignatureError::Mismatch),
            "{name}"
        );
        assert_eq!(
            check(&verifier, hmac, &body[..body.len() - 1]),
            Err(SignatureError::Mismatch),
            "{name}"
        );
        assert_eq!(
            check(&verifier, "", body),
            Err(SignatureError::Malformed),
            "{name}"
        );
        assert_eq!(
            check(&verifier, &hmac[..40], body),
            Err(SignatureError::Malformed),
            "{name}"
        );
        assert_eq!(
            check(
                &verifier,
                &hmac.replace(|c: char| c.is_ascii_digit(), "g"),
                body
            ),
            Err(SignatureError::Malformed),
            "{name}"
        );
        let wrong = Verifier::new(SigningKey::new("wrong-key"), None);
        assert_eq!(
            check(&wrong, hmac, body),
            Err(SignatureError::Mismatch),
            "{name}"
        );
        // The legacy header alone is refused unless enabled, then accepted.
        let legacy = v.headers["X-Nango-Signature"].as_bytes();
        let only_legacy = SignatureHeaders {
            hmac: &[],
            legacy: &[legacy],
        };
        assert_eq!(
            verifier.verify(only_legacy, body),
            Err(SignatureError::Missing),
            "{name}"
        );
        assert!(
            verifier
                .clone()
                .accept_legacy(true)
                .verify(only_legacy, body)
                .is_ok(),
            "{name}"
        );
    }
}

#[test]
fn header_names_are_case_insensitive_through_the_handler_path() {
    // http's HeaderMap folds names; this pins that the handler reads the folded name.
    let v = &vectors()[0];
    let mut headers = HeaderMap::new();
    headers.insert(
        "X-NANGO-HMAC-SHA256",
        v.headers["X-Nango-Hmac-Sha256"].parse().unwrap(),
    );
    let verifier = Verifier::new(SigningKey::new(v.secret.as_bytes()), None);
    assert!(nango_sync::core::webhook::prepare(
        &verifier,
        &nango_sync::lambda::http_request(
            &lambda_http::http::Method::POST,
            &headers,
            v.body.as_bytes()
        ),
        "t"
    )
    .is_ok());
}
