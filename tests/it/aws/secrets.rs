//! Over the wire: signing keys read from Secrets Manager (moto), including a rotation pair.

use std::collections::HashMap;

use nango_sync::config::{vars, FromVars, SigningConfig};
use nango_sync::core::signature::{sign, KeyUsed, SignatureHeaders};
use nango_sync::setup;

use crate::common::{moto_sdk_config, unique_name};

/// A new secret on moto holding `value`; its name.
pub(crate) async fn put_secret(value: &str) -> String {
    let sdk = moto_sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = unique_name("nango-signing-key");
    client
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("moto stores the secret");
    name
}

fn config_for(secret_id: &str) -> SigningConfig {
    SigningConfig::from_map(&HashMap::from([(vars::SIGNING_KEY_SECRET, secret_id)])).unwrap()
}

#[tokio::test]
async fn rotation_pair_from_secrets_manager_verifies_both_keys() {
    let secret = put_secret(r#"{"current":"new-key","previous":"old-key"}"#).await;
    let verifier = setup::verifier(&config_for(&secret), &moto_sdk_config().await)
        .await
        .unwrap();
    let body = b"{\"type\":\"sync\"}";
    for (key, used) in [
        ("new-key", KeyUsed::Current),
        ("old-key", KeyUsed::Previous),
    ] {
        let sig = sign(key.as_bytes(), body);
        let headers = SignatureHeaders {
            hmac: &[sig.as_bytes()],
            legacy: &[],
        };
        assert_eq!(verifier.current().verify(headers, body), Ok(used));
    }
}

#[tokio::test]
async fn missing_secret_fails_naming_it() {
    let missing = unique_name("no-such-secret");
    let err = setup::verifier(&config_for(&missing), &moto_sdk_config().await)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&missing), "{err}");
}
