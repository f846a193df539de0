//! Signing keys from AWS Secrets Manager, fetched once at cold start.

use crate::config::{parse_signing_key_secret, ConfigError};
use crate::core::signature::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not read secret {secret_id} from Secrets Manager: {message}")]
    Fetch { secret_id: String, message: String },
    #[error("secret {secret_id} has no string value")]
    NotAString { secret_id: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Reads the signing key(s) held in a secret (its value: the key, or `{"current","previous"}`).
pub async fn fetch_signing_keys(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<(SigningKey, Option<SigningKey>), SecretError> {
    Ok(parse_signing_key_secret(
        &fetch_plain(client, secret_id).await?,
    )?)
}

/// Reads a secret's string value, trimmed (the Nango API key, or the signing key JSON).
pub async fn fetch_plain(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<String, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretError::Fetch {
            secret_id: secret_id.to_owned(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    out.secret_string()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SecretError::NotAString {
            secret_id: secret_id.to_owned(),
        })
}
