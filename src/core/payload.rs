//! The webhooks Nango sends (contract §1), parsed only after the signature has been verified.
//!
//! Unknown fields are ignored and unknown `type`s are kept as raw JSON: Nango adds webhook types
//! without calling it a breaking change. A body with a known `type` whose fields do not fit is kept
//! as [`NangoWebhook::Unrecognized`] too, so a genuine webhook is never refused for its shape.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::core::stream::{ConnectionKey, StreamKey, BASE_VARIANT};

/// A verified webhook, classified.
#[derive(Debug)]
pub enum NangoWebhook {
    SyncSuccess(SyncSuccess),
    SyncFailure(SyncFailure),
    Auth(AuthWebhook),
    Forward(ForwardWebhook),
    AsyncAction(AsyncActionWebhook),
    /// A forwarded provider webhook Nango could not match to a connection: no envelope at all.
    UnmatchedForward(Box<RawValue>),
    /// An unknown `type`, or a known one whose fields did not fit; kept whole.
    Unrecognized {
        kind: String,
        body: Box<RawValue>,
    },
}

/// Counts reported by a successful sync run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseResults {
    #[serde(default)]
    pub added: u64,
    #[serde(default)]
    pub updated: u64,
    #[serde(default)]
    pub deleted: u64,
}

/// The `error` object of failure webhooks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncSuccess {
    pub connection_id: String,
    pub provider_config_key: String,
    pub sync_name: String,
    #[serde(default = "base_variant")]
    pub sync_variant: String,
    pub model: String,
    pub sync_type: Option<String>,
    pub response_results: Option<ResponseResults>,
    pub modified_after: Option<String>,
    pub query_time_stamp: Option<String>,
    pub checkpoints: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncFailure {
    pub connection_id: String,
    pub provider_config_key: String,
    pub sync_name: String,
    #[serde(default = "base_variant")]
    pub sync_variant: String,
    /// One model, or a comma-separated list: failure webhooks are sent once per run.
    pub model: String,
    pub sync_type: Option<String>,
    pub error: Option<ErrorInfo>,
    pub started_at: Option<String>,
    pub failed_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthWebhook {
    pub connection_id: String,
    pub provider_config_key: String,
    pub auth_mode: Option<String>,
    pub provider: Option<String>,
    pub environment: Option<String>,
    pub operation: Option<String>,
    pub success: bool,
    pub tags: Option<serde_json::Value>,
    pub end_user: Option<serde_json::Value>,
    pub error: Option<ErrorInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardWebhook {
    pub connection_id: String,
    pub provider_config_key: String,
    /// The provider key here, not "nango".
    pub from: Option<String>,
    pub payload: Box<RawValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncActionWebhook {
    pub connection_id: String,
    pub provider_config_key: String,
    pub payload: Option<AsyncActionPayload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncActionPayload {
    pub id: Option<String>,
    pub status_url: Option<String>,
}

/// The body was not JSON at all.
#[derive(Debug, thiserror::Error)]
#[error("webhook body is not JSON: {0}")]
pub struct NotJson(#[from] serde_json::Error);

fn base_variant() -> String {
    BASE_VARIANT.to_owned()
}

/// Reads just the discriminating fields; everything else is skipped.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    success: Option<bool>,
}

impl NangoWebhook {
    /// Classifies a verified body. Only a body that is not JSON is an error.
    pub fn parse(body: &[u8]) -> Result<Self, NotJson> {
        let raw: &RawValue = serde_json::from_slice(body)?;
        Ok(Self::from_raw(raw))
    }

    /// Classifies a body already known to be JSON. Never fails: what does not fit is kept whole.
    pub fn from_raw(raw: &RawValue) -> Self {
        // A JSON value that is not an object (a provider may post an array) has no envelope.
        let probe = match serde_json::from_str::<Probe>(raw.get()) {
            Ok(probe) => probe,
            Err(_) => return Self::UnmatchedForward(raw.to_owned()),
        };
        let Some(kind) = probe.kind else {
            return Self::UnmatchedForward(raw.to_owned());
        };
        let text = raw.get();
        let parsed = match (kind.as_ref(), probe.success) {
            ("sync", Some(false)) => serde_json::from_str(text).map(Self::SyncFailure),
            ("sync", _) => serde_json::from_str(text).map(Self::SyncSuccess),
            ("auth", _) => serde_json::from_str(text).map(Self::Auth),
            ("forward", _) => serde_json::from_str(text).map(Self::Forward),
            ("async_action", _) => serde_json::from_str(text).map(Self::AsyncAction),
            _ => return Self::unrecognized(&kind, raw),
        };
        match parsed {
            Ok(webhook) if webhook.names_its_streams() => webhook,
            _ => Self::unrecognized(&kind, raw),
        }
    }

    /// Whether a sync or auth webhook names what it is about: a stream (or a connection) with an
    /// empty part would become a sync of nothing, so such a body is kept as an event instead.
    fn names_its_streams(&self) -> bool {
        let filled = |parts: &[&str]| parts.iter().all(|p| !p.is_empty());
        match self {
            Self::SyncSuccess(s) => filled(&[
                &s.connection_id,
                &s.provider_config_key,
                &s.model,
                &s.sync_variant,
            ]),
            Self::SyncFailure(f) => {
                filled(&[&f.connection_id, &f.provider_config_key, &f.sync_variant])
                    && f.models().next().is_some()
            }
            Self::Auth(a) => filled(&[&a.connection_id, &a.provider_config_key]),
            _ => true,
        }
    }

    fn unrecognized(kind: &str, raw: &RawValue) -> Self {
        Self::Unrecognized {
            kind: kind.to_owned(),
            body: raw.to_owned(),
        }
    }

    /// A short name for logs and metrics; never the payload.
    pub fn kind(&self) -> &str {
        match self {
            Self::SyncSuccess(_) => "sync_success",
            Self::SyncFailure(_) => "sync_failure",
            Self::Auth(_) => "auth",
            Self::Forward(_) => "forward",
            Self::AsyncAction(_) => "async_action",
            Self::UnmatchedForward(_) => "unmatched_forward",
            Self::Unrecognized { .. } => "unrecognized",
        }
    }
}

impl SyncSuccess {
    pub fn stream(&self) -> StreamKey {
        StreamKey::new(
            &self.provider_config_key,
            &self.connection_id,
            &self.model,
            &self.sync_variant,
        )
    }
}

impl SyncFailure {
    /// The models named by the webhook; a failure webhook may list several, comma-separated.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.model
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
    }

    pub fn streams(&self) -> Vec<StreamKey> {
        self.models()
            .map(|model| {
                StreamKey::new(
                    &self.provider_config_key,
                    &self.connection_id,
                    model,
                    &self.sync_variant,
                )
            })
            .collect()
    }
}

impl AuthWebhook {
    pub fn connection(&self) -> ConnectionKey {
        ConnectionKey {
            provider_config_key: self.provider_config_key.clone(),
            connection_id: self.connection_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_success_defaults_variant_and_ignores_unknown_fields() {
        let body = br#"{"type":"sync","success":true,"connectionId":"c","providerConfigKey":"p","syncName":"s","model":"Contact","brandNew":{"x":1}}"#;
        let NangoWebhook::SyncSuccess(sync) = NangoWebhook::parse(body).unwrap() else {
            panic!("not a sync success")
        };
        assert_eq!(sync.stream(), StreamKey::new("p", "c", "Contact", "base"));
        assert_eq!(sync.response_results, None);
    }

    #[test]
    fn failure_lists_every_model() {
        let body = br#"{"type":"sync","success":false,"connectionId":"c","providerConfigKey":"p","syncName":"s","syncVariant":"eu","model":"Contact, Company,","error":{"type":"script_error","description":"boom"}}"#;
        let NangoWebhook::SyncFailure(f) = NangoWebhook::parse(body).unwrap() else {
            panic!("not a sync failure")
        };
        let models: Vec<_> = f.streams().into_iter().map(|s| s.model).collect();
        assert_eq!(models, ["Contact", "Company"]);
        assert_eq!(f.error.unwrap().kind, "script_error");
    }

    #[test]
    fn unknown_and_misshapen_types_are_kept_whole() {
        let body = br#"{"type":"billing","n":12345678901234567890123}"#;
        match NangoWebhook::parse(body).unwrap() {
            NangoWebhook::Unrecognized { kind, body: raw } => {
                assert_eq!(kind, "billing");
                assert_eq!(raw.get().as_bytes(), body);
            }
            other => panic!("{other:?}"),
        }
        let misshapen = br#"{"type":"sync","success":true}"#;
        assert!(matches!(
            NangoWebhook::parse(misshapen).unwrap(),
            NangoWebhook::Unrecognized { kind, .. } if kind == "sync"
        ));
    }

    #[test]
    fn webhooks_with_an_empty_stream_part_are_kept_whole() {
        let empty_parts = [
            &br#"{"type":"sync","success":true,"connectionId":"","providerConfigKey":"p","syncName":"s","model":"Contact"}"#[..],
            br#"{"type":"sync","success":true,"connectionId":"c","providerConfigKey":"","syncName":"s","model":"Contact"}"#,
            br#"{"type":"sync","success":true,"connectionId":"c","providerConfigKey":"p","syncName":"s","model":""}"#,
            br#"{"type":"sync","success":true,"connectionId":"c","providerConfigKey":"p","syncName":"s","model":"Contact","syncVariant":""}"#,
            br#"{"type":"sync","success":false,"connectionId":"c","providerConfigKey":"p","syncName":"s","model":" , "}"#,
            br#"{"type":"sync","success":false,"connectionId":"","providerConfigKey":"p","syncName":"s","model":"Contact"}"#,
            br#"{"type":"auth","success":true,"connectionId":"","providerConfigKey":"p"}"#,
        ];
        for body in empty_parts {
            let webhook = NangoWebhook::parse(body).unwrap();
            assert!(
                matches!(webhook, NangoWebhook::Unrecognized { .. }),
                "{}: {webhook:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn bodies_without_envelope_are_unmatched_forwards() {
        for body in [&br#"{"event":"contact.created"}"#[..], b"[1,2]", b"42"] {
            assert!(
                matches!(
                    NangoWebhook::parse(body).unwrap(),
                    NangoWebhook::UnmatchedForward(_)
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn not_json_is_the_only_error() {
        assert!(NangoWebhook::parse(b"hello").is_err());
        assert!(NangoWebhook::parse(b"").is_err());
        assert!(NangoWebhook::parse(b"{\"type\":\"sync\"").is_err());
        assert!(NangoWebhook::parse(&[0xff, 0xfe]).is_err());
    }
}
