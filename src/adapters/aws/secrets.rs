//! Signing keys from AWS Secrets Manager, fetched once at cold start.

use crate::core::signature::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not read secret {secret_id} from Secrets Manager: {message}")]
    Fetch {
        secret_id: String,
        message: String,
        #[source]
        source: Box<
            aws_sdk_secretsmanager::error::SdkError<
                aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
            >,
        >,
    },
    #[error("secret {secret_id} has no string value")]
    NotAString { secret_id: String },
    #[error("secret {secret_id} does not hold signing keys: {reason}")]
    NotSigningKeys { secret_id: String, reason: String },
}

/// Reads the signing key(s) held in a secret (its value: the key, or `{"current","previous"}`).
pub async fn fetch_signing_keys(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<(SigningKey, Option<SigningKey>), SecretError> {
    parse_signing_keys(&fetch_plain(client, secret_id).await?).map_err(|reason| {
        SecretError::NotSigningKeys {
            secret_id: secret_id.to_owned(),
            reason,
        }
    })
}

/// A signing-key secret's value: the key itself, or `{"current": .., "previous": ..}` while a
/// rotation settles.
pub fn parse_signing_keys(value: &str) -> Result<(SigningKey, Option<SigningKey>), String> {
    #[derive(serde::Deserialize)]
    struct Rotating {
        current: String,
        previous: Option<String>,
    }
    let trimmed = value.trim();
    if trimmed.starts_with('{') {
        let r: Rotating = serde_json::from_str(trimmed).map_err(|_| {
            "the secret is JSON but not {\"current\": \"..\", \"previous\": \"..\"}".to_owned()
        })?;
        if r.current.is_empty() {
            return Err("\"current\" is empty".into());
        }
        let previous = r.previous.filter(|p| !p.is_empty()).map(SigningKey::new);
        return Ok((SigningKey::new(r.current), previous));
    }
    if trimmed.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok((SigningKey::new(trimmed), None))
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
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            source: Box::new(e),
        })?;
    out.secret_string()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SecretError::NotAString {
            secret_id: secret_id.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_forms() {
        let (cur, prev) = parse_signing_keys("abc\n").unwrap();
        assert_eq!(cur.as_bytes(), b"abc");
        assert!(prev.is_none());
        let (cur, prev) = parse_signing_keys(r#"{"current":"new","previous":"old"}"#).unwrap();
        assert_eq!(cur.as_bytes(), b"new");
        assert_eq!(prev.unwrap().as_bytes(), b"old");
        assert!(parse_signing_keys("{\"previous\":\"x\"}").is_err());
        assert!(parse_signing_keys("  ").is_err());
    }
}
