//! The stream key: (providerConfigKey, connectionId, model, variant), encoded in one place.
//!
//! The encoding joins the four parts with `|` after escaping `%` as `%25` and `|` as `%7C` in each
//! part, so it is unambiguous and reversible whatever the ids contain, and stays readable for the
//! common case. SQS message group ids allow at most 128 ASCII punctuation/alphanumeric characters, so
//! groups are a hash of the encoding instead.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const SEPARATOR: char = '|';

/// Nango's default variant name.
pub const BASE_VARIANT: &str = "base";

/// One synced stream of records: what a cursor belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamKey {
    pub provider_config_key: String,
    pub connection_id: String,
    pub model: String,
    pub variant: String,
}

/// One Nango connection: what auth and forward events belong to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnectionKey {
    pub provider_config_key: String,
    pub connection_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid encoded key: {0}")]
pub struct KeyDecodeError(&'static str);

impl StreamKey {
    pub fn new(
        provider_config_key: impl Into<String>,
        connection_id: impl Into<String>,
        model: impl Into<String>,
        variant: impl Into<String>,
    ) -> Self {
        Self {
            provider_config_key: provider_config_key.into(),
            connection_id: connection_id.into(),
            model: model.into(),
            variant: variant.into(),
        }
    }

    pub fn connection(&self) -> ConnectionKey {
        ConnectionKey {
            provider_config_key: self.provider_config_key.clone(),
            connection_id: self.connection_id.clone(),
        }
    }

    /// `pck|connection|model|variant`, each part escaped.
    pub fn encode(&self) -> String {
        join(&[
            &self.provider_config_key,
            &self.connection_id,
            &self.model,
            &self.variant,
        ])
    }

    pub fn decode(encoded: &str) -> Result<Self, KeyDecodeError> {
        match split(encoded)?.as_slice() {
            [pck, conn, model, variant] => Ok(Self::new(
                pck.clone(),
                conn.clone(),
                model.clone(),
                variant.clone(),
            )),
            _ => Err(KeyDecodeError("a stream key has four parts")),
        }
    }

    /// The SQS FIFO message group: one group per stream, so one worker at a time per cursor.
    pub fn message_group_id(&self) -> String {
        format!("s-{}", digest_hex(self.encode().as_bytes()))
    }
}

impl ConnectionKey {
    pub fn encode(&self) -> String {
        join(&[&self.provider_config_key, &self.connection_id])
    }

    pub fn decode(encoded: &str) -> Result<Self, KeyDecodeError> {
        match split(encoded)?.as_slice() {
            [pck, conn] => Ok(Self {
                provider_config_key: pck.clone(),
                connection_id: conn.clone(),
            }),
            _ => Err(KeyDecodeError("a connection key has two parts")),
        }
    }

    pub fn message_group_id(&self) -> String {
        format!("c-{}", digest_hex(self.encode().as_bytes()))
    }
}

/// Lowercase hex SHA-256, used for group and deduplication ids.
pub fn digest_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn join(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        for c in part.chars() {
            match c {
                '%' => out.push_str("%25"),
                SEPARATOR => out.push_str("%7C"),
                c => out.push(c),
            }
        }
    }
    out
}

fn split(encoded: &str) -> Result<Vec<String>, KeyDecodeError> {
    encoded.split(SEPARATOR).map(unescape).collect()
}

fn unescape(part: &str) -> Result<String, KeyDecodeError> {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("%25") => out.push('%'),
            Some("%7C") => out.push(SEPARATOR),
            _ => return Err(KeyDecodeError("unknown escape")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_inside_ids_cannot_collide() {
        let a = StreamKey::new("hub|spot", "c", "Contact", "base");
        let b = StreamKey::new("hub", "spot|c", "Contact", "base");
        assert_ne!(a.encode(), b.encode());
        assert_ne!(a.message_group_id(), b.message_group_id());
        assert_eq!(StreamKey::decode(&a.encode()), Ok(a));
        assert_eq!(StreamKey::decode(&b.encode()), Ok(b));
    }

    #[test]
    fn escapes_round_trip_for_awkward_ids() {
        for id in [
            "%7C",
            "%",
            "%%|",
            "|",
            "",
            "ünï/cödé 🚀",
            "a%25b",
            &"x".repeat(300),
        ] {
            let key = StreamKey::new(id, id, "Contact", id);
            assert_eq!(StreamKey::decode(&key.encode()).as_ref(), Ok(&key), "{id}");
            let conn = key.connection();
            assert_eq!(ConnectionKey::decode(&conn.encode()), Ok(conn));
        }
    }

    #[test]
    fn plain_ids_stay_readable() {
        let key = StreamKey::new("hubspot", "user-42", "Contact", "base");
        assert_eq!(key.encode(), "hubspot|user-42|Contact|base");
    }

    #[test]
    fn group_ids_fit_sqs_rules() {
        let key = StreamKey::new("é".repeat(255), "|".repeat(255), "Contact", "base");
        let group = key.message_group_id();
        assert!(group.len() <= 128);
        assert!(group.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert!(key.connection().message_group_id().len() <= 128);
    }

    #[test]
    fn malformed_encodings_are_errors() {
        assert!(StreamKey::decode("a|b|c").is_err());
        assert!(StreamKey::decode("a|b|c|d|e").is_err());
        assert!(StreamKey::decode("a%2|b|c|d").is_err());
        assert!(ConnectionKey::decode("a").is_err());
    }
}
