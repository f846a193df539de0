//! Typed configuration, read once at cold start. `from_lookup` takes any name → value function,
//! so tests pass a map instead of changing the process environment.

use std::collections::HashMap;

use crate::signature::SigningKey;

/// SQS's limit less room for the job envelope, so any accepted body fits in one message.
pub const DEFAULT_MAX_BODY_BYTES: usize = 255 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("set only one of {0} and {1}")]
    Conflict(&'static str, &'static str),
}

/// Where the webhook signing key(s) come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKeySource {
    /// Straight from the environment.
    Env {
        current: String,
        previous: Option<String>,
    },
    /// A Secrets Manager secret (name or ARN), fetched once at cold start. Its value is the key
    /// itself, or `{"current": "...", "previous": "..."}` during a rotation.
    SecretsManager { secret_id: String },
}

#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub queue_url: String,
    pub signing_keys: SigningKeySource,
    /// Accept the legacy `X-Nango-Signature` when no HMAC header is sent. Default false.
    pub accept_legacy_signature: bool,
    pub max_body_bytes: usize,
}

// Keys never reach a log line through Debug.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.signing_keys {
            SigningKeySource::Env { previous, .. } => format!(
                "env (current{})",
                if previous.is_some() {
                    " + previous"
                } else {
                    ""
                }
            ),
            SigningKeySource::SecretsManager { secret_id } => {
                format!("secrets manager {secret_id}")
            }
        };
        f.debug_struct("WebhookConfig")
            .field("queue_url", &self.queue_url)
            .field("signing_keys", &keys)
            .field("accept_legacy_signature", &self.accept_legacy_signature)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

pub mod vars {
    pub const QUEUE_URL: &str = "QUEUE_URL";
    pub const SIGNING_KEY: &str = "NANGO_WEBHOOK_SIGNING_KEY";
    pub const SIGNING_KEY_PREVIOUS: &str = "NANGO_WEBHOOK_SIGNING_KEY_PREVIOUS";
    pub const SIGNING_KEY_SECRET: &str = "NANGO_WEBHOOK_SIGNING_KEY_SECRET";
    pub const ACCEPT_LEGACY_SIGNATURE: &str = "NANGO_ACCEPT_LEGACY_SIGNATURE";
    pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
}

impl WebhookConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_map(map: &HashMap<&str, &str>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| map.get(name).map(|v| v.to_string()))
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let queue_url = get(vars::QUEUE_URL).ok_or(ConfigError::Missing(vars::QUEUE_URL))?;
        let signing_keys = match (get(vars::SIGNING_KEY), get(vars::SIGNING_KEY_SECRET)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict(
                    vars::SIGNING_KEY,
                    vars::SIGNING_KEY_SECRET,
                ))
            }
            (Some(current), None) => SigningKeySource::Env {
                current,
                previous: get(vars::SIGNING_KEY_PREVIOUS),
            },
            (None, Some(secret_id)) => SigningKeySource::SecretsManager { secret_id },
            (None, None) => return Err(ConfigError::Missing(vars::SIGNING_KEY)),
        };
        let accept_legacy_signature = match get(vars::ACCEPT_LEGACY_SIGNATURE).as_deref() {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| ConfigError::Invalid {
                name: vars::ACCEPT_LEGACY_SIGNATURE,
                reason: format!("expected true or false, got {v:?}"),
            })?,
        };
        let max_body_bytes = match get(vars::MAX_BODY_BYTES) {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=DEFAULT_MAX_BODY_BYTES).contains(n))
                .ok_or_else(|| ConfigError::Invalid {
                    name: vars::MAX_BODY_BYTES,
                    reason: format!(
                        "expected a number of bytes from 1 to {DEFAULT_MAX_BODY_BYTES}, got {v:?}"
                    ),
                })?,
        };
        Ok(Self {
            queue_url,
            signing_keys,
            accept_legacy_signature,
            max_body_bytes,
        })
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Reads a Secrets Manager secret value: the key itself, or `{"current": .., "previous": ..}`.
pub fn parse_signing_key_secret(
    value: &str,
) -> Result<(SigningKey, Option<SigningKey>), ConfigError> {
    #[derive(serde::Deserialize)]
    struct Rotating {
        current: String,
        previous: Option<String>,
    }
    let invalid = |reason: &str| ConfigError::Invalid {
        name: vars::SIGNING_KEY_SECRET,
        reason: reason.to_owned(),
    };
    let trimmed = value.trim();
    if trimmed.starts_with('{') {
        let r: Rotating = serde_json::from_str(trimmed).map_err(|_| {
            invalid("the secret is JSON but not {\"current\": \"..\", \"previous\": \"..\"}")
        })?;
        if r.current.is_empty() {
            return Err(invalid("\"current\" is empty"));
        }
        let previous = r.previous.filter(|p| !p.is_empty()).map(SigningKey::new);
        return Ok((SigningKey::new(r.current), previous));
    }
    if trimmed.is_empty() {
        return Err(invalid("the secret is empty"));
    }
    Ok((SigningKey::new(trimmed), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([(vars::QUEUE_URL, "http://q"), (vars::SIGNING_KEY, "k1")])
    }

    #[test]
    fn minimal_env_gives_defaults() {
        let c = WebhookConfig::from_map(&base()).unwrap();
        assert_eq!(c.queue_url, "http://q");
        assert_eq!(
            c.signing_keys,
            SigningKeySource::Env {
                current: "k1".into(),
                previous: None
            }
        );
        assert!(!c.accept_legacy_signature);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(!format!("{c:?}").contains("k1"));
    }

    #[test]
    fn errors_name_the_variable() {
        let mut m = base();
        m.remove(vars::QUEUE_URL);
        assert_eq!(
            WebhookConfig::from_map(&m).unwrap_err().to_string(),
            "QUEUE_URL is not set"
        );
        let mut m = base();
        m.remove(vars::SIGNING_KEY);
        assert_eq!(
            WebhookConfig::from_map(&m),
            Err(ConfigError::Missing(vars::SIGNING_KEY))
        );
        let mut m = base();
        m.insert(vars::SIGNING_KEY_SECRET, "arn:x");
        assert!(matches!(
            WebhookConfig::from_map(&m),
            Err(ConfigError::Conflict(..))
        ));
        let mut m = base();
        m.insert(vars::MAX_BODY_BYTES, "10MB");
        assert!(WebhookConfig::from_map(&m)
            .unwrap_err()
            .to_string()
            .starts_with("MAX_BODY_BYTES is invalid"));
        let mut m = base();
        m.insert(vars::ACCEPT_LEGACY_SIGNATURE, "maybe");
        assert!(WebhookConfig::from_map(&m).is_err());
    }

    #[test]
    fn secret_forms() {
        let (cur, prev) = parse_signing_key_secret("abc\n").unwrap();
        assert_eq!(cur.as_bytes(), b"abc");
        assert!(prev.is_none());
        let (cur, prev) =
            parse_signing_key_secret(r#"{"current":"new","previous":"old"}"#).unwrap();
        assert_eq!(cur.as_bytes(), b"new");
        assert_eq!(prev.unwrap().as_bytes(), b"old");
        assert!(parse_signing_key_secret("{\"previous\":\"x\"}").is_err());
        assert!(parse_signing_key_secret("  ").is_err());
    }
}
