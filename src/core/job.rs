//! The job message: what the webhook function puts on the queue and the worker takes off it.
//!
//! Small and versioned. Sync and auth webhooks become typed jobs that carry only what the worker
//! needs; forwards, async actions and anything unrecognized carry the verified body verbatim
//! (as embedded JSON, never re-serialized), so the application loses nothing.
//!
//! ```json
//! {"v":1,"received_at":"2026-11-27T14:00:00.123Z","job":{"sync":{"stream":{...},"sync_name":"contacts",...}}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::core::nango_status::NangoSync;
use crate::core::payload::{ErrorInfo, NangoWebhook, ResponseResults};
use crate::core::stream::{digest_hex, ConnectionKey, StreamKey};
use crate::core::writes::request::{WriteRequest, WriteRequestError};
use crate::ports::OutgoingMessage;

/// The version this code writes and the only one it reads.
pub const JOB_VERSION: u32 = 1;

/// SQS's largest message body (256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct JobMessage {
    pub v: u32,
    /// When the webhook was received, RFC 3339 UTC.
    pub received_at: String,
    pub job: Job,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// A sync run changed (or may have changed) a stream: fetch it by cursor.
    Sync {
        stream: StreamKey,
        sync_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sync_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        modified_after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        results: Option<ResponseResults>,
        /// What asked for this sync; absent means a webhook.
        #[serde(default, skip_serializing_if = "Trigger::is_webhook")]
        trigger: Trigger,
        /// Where the webhook's checkpointed pass stands: a pass whose `to` is set is not finished,
        /// so no drift check runs until it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoints: Option<Checkpoints>,
        /// What the reconcile found of the stream in Nango's `/sync/status`: once the stream is up
        /// to date, the worker checks its live count against it (the drift check).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nango: Option<NangoListing>,
        /// Messages written before `nango` existed carry the count alone; read, never written.
        #[serde(default, skip_serializing)]
        record_count: Option<u64>,
    },
    /// Sent on a schedule: bring every known stream up to date, whatever webhooks were missed.
    Reconcile {},
    /// A sync run failed for this stream: record the error on its status.
    SyncFailed {
        stream: StreamKey,
        sync_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorInfo>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed_at: Option<String>,
    },
    /// An auth event for a connection: creation, override or refresh, succeeded or failed.
    Connection {
        connection: ConnectionKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operation: Option<String>,
        success: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth_mode: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorInfo>,
    },
    /// Forward, async_action, unmatched forward or unknown type: stored for the application.
    Event {
        /// `forward`, `async_action`, `unmatched_forward`, or the unknown `type` value.
        kind: String,
        webhook: Box<RawValue>,
    },
    /// A write to the provider through Nango, as an application asked for it (`core::writes`):
    /// sent at most once unless safe to repeat. An application may also send the bare write
    /// request (events/write-request.json) as the message body.
    Write(Box<WriteRequest>),
    /// Ask Nango for the result of an async action a write is running (`core::writes::finish`):
    /// queued by the reconcile for every write still running, in case its webhook was lost.
    ActionResult { action_id: String },
}

/// Where a checkpointed pass stands, as a sync webhook reports it (`checkpoints`, contract §1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoints {
    #[serde(default)]
    pub from: Option<serde_json::Value>,
    #[serde(default)]
    pub to: Option<serde_json::Value>,
}

impl Checkpoints {
    /// Read leniently from the webhook's field: a shape Nango may change must not cost the sync.
    pub fn from_webhook(value: &serde_json::Value) -> Option<Self> {
        let part = |name: &str| value.get(name).filter(|v| !v.is_null()).cloned();
        value.is_object().then(|| Self {
            from: part("from"),
            to: part("to"),
        })
    }

    /// A pass ends on the run whose `checkpoints.to` is null (Nango clears it at the end).
    pub fn pass_unfinished(&self) -> bool {
        self.to.is_some()
    }
}

/// What a reconcile found of a stream in Nango's `/sync/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NangoListing {
    /// The connection's syncs include the stream.
    Listed(NangoSync),
    /// The connection is listed, its syncs no longer include the stream.
    NotListed,
}

/// The system's time as job messages carry it (re-exported from [`crate::core::clock`] for the
/// edges that build messages: core takes a clock).
pub use crate::core::clock::now_rfc3339;

/// Why a sync job exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Nango's sync webhook.
    #[default]
    Webhook,
    /// A backfill that outlasted one invocation goes on.
    Continuation,
    /// The scheduled reconciliation.
    Reconcile,
    /// An operator asked for it (`nango-sync sync`).
    Manual,
    /// A write to one of its records succeeded: the copy reads the provider's new state back.
    Write,
}

impl Trigger {
    fn is_webhook(&self) -> bool {
        *self == Trigger::Webhook
    }

    /// As the job message writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Continuation => "continuation",
            Self::Reconcile => "reconcile",
            Self::Manual => "manual",
            Self::Write => "write",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobDecodeError {
    #[error("job message is not valid JSON of the expected shape: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("job message version {0} is not supported (this build reads version {JOB_VERSION})")]
    UnsupportedVersion(u32),
    #[error(transparent)]
    Write(#[from] WriteRequestError),
}

impl JobMessage {
    /// The stream and trigger of a sync job; None for other jobs.
    pub fn sync_target(&self) -> Option<(StreamKey, Trigger)> {
        match &self.job {
            Job::Sync {
                stream, trigger, ..
            } => Some((stream.clone(), *trigger)),
            _ => None,
        }
    }

    pub fn new(received_at: String, job: Job) -> Self {
        Self {
            v: JOB_VERSION,
            received_at,
            job,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("job messages always serialize")
    }

    /// Reads a message body, checking the version before the shape. A bare write request (it
    /// has `run`, not `job`) is a write job, checked as its own shape and version.
    pub fn decode(body: &str) -> Result<Self, JobDecodeError> {
        #[derive(Deserialize)]
        struct Envelope {
            v: u32,
            job: Option<serde::de::IgnoredAny>,
            run: Option<serde::de::IgnoredAny>,
        }
        let Envelope { v, job, run } = serde_json::from_str(body)?;
        if job.is_none() && run.is_some() {
            let request = WriteRequest::parse(body.as_bytes())?;
            return Ok(Self::new(String::new(), Job::Write(Box::new(request))));
        }
        if v != JOB_VERSION {
            return Err(JobDecodeError::UnsupportedVersion(v));
        }
        Ok(serde_json::from_str(body)?)
    }

    /// The FIFO group: the stream for sync jobs, the connection for auth and forwards.
    pub fn group_id(&self, body_digest: &str) -> String {
        match &self.job {
            Job::Reconcile {} => "reconcile".to_owned(),
            Job::Sync { stream, .. } | Job::SyncFailed { stream, .. } => stream.message_group_id(),
            Job::Connection { connection, .. } => connection.message_group_id(),
            // Writes to one record stay in order; others run beside them.
            Job::Write(request) => match &request.record {
                Some(record) => format!(
                    "w-{}",
                    digest_hex(
                        format!(
                            "{}|{}|{}|{}",
                            request.provider_config_key,
                            request.connection_id,
                            record.model,
                            record.id
                        )
                        .as_bytes()
                    )
                ),
                None => format!("w-{}", digest_hex(request.id.as_bytes())),
            },
            Job::ActionResult { action_id } => format!("a-{}", digest_hex(action_id.as_bytes())),
            Job::Event { webhook, .. } => match event_connection(webhook) {
                Some(connection) => connection.message_group_id(),
                // Nothing to order it against: a group of its own.
                None => format!("e-{body_digest}"),
            },
        }
    }
}

/// The action id an `async_action` webhook's body names, if any.
pub fn async_action_id(body: &str) -> Option<String> {
    let webhook: crate::core::payload::AsyncActionWebhook = serde_json::from_str(body).ok()?;
    webhook.payload?.id.filter(|id| !id.is_empty())
}

/// The connection a forward or async_action webhook names, if any.
pub fn event_connection(webhook: &RawValue) -> Option<ConnectionKey> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Envelope {
        connection_id: String,
        provider_config_key: String,
    }
    let e: Envelope = serde_json::from_str(webhook.get()).ok()?;
    Some(ConnectionKey {
        provider_config_key: e.provider_config_key,
        connection_id: e.connection_id,
    })
}

/// Turns a verified webhook into the jobs to enqueue: one per model for a multi-model failure.
/// `body` is the verified body the webhook was parsed from; events carry it verbatim.
pub fn jobs_for(webhook: NangoWebhook, body: &RawValue) -> Vec<Job> {
    match webhook {
        NangoWebhook::SyncSuccess(s) => vec![Job::Sync {
            stream: s.stream(),
            checkpoints: s.checkpoints.as_ref().and_then(Checkpoints::from_webhook),
            sync_name: s.sync_name,
            sync_type: s.sync_type,
            modified_after: s.modified_after,
            results: s.response_results,
            trigger: Trigger::Webhook,
            nango: None,
            record_count: None,
        }],
        NangoWebhook::SyncFailure(f) => f
            .streams()
            .into_iter()
            .map(|stream| Job::SyncFailed {
                stream,
                sync_name: f.sync_name.clone(),
                error: f.error.clone(),
                failed_at: f.failed_at.clone(),
            })
            .collect(),
        NangoWebhook::Auth(a) => vec![Job::Connection {
            connection: a.connection(),
            operation: a.operation,
            success: a.success,
            provider: a.provider,
            auth_mode: a.auth_mode,
            environment: a.environment,
            error: a.error,
        }],
        NangoWebhook::Unrecognized { kind, .. } => vec![Job::Event {
            kind,
            webhook: body.to_owned(),
        }],
        other => vec![Job::Event {
            kind: other.kind().to_owned(),
            webhook: body.to_owned(),
        }],
    }
}

/// Builds the queue messages for a verified body. Deduplication ids hash the body and the group,
/// so Nango's retries (same bytes) collapse while the models of one failure webhook stay apart.
pub fn messages_for(body: &[u8], jobs: Vec<Job>, received_at: &str) -> Vec<OutgoingMessage> {
    let body_digest = digest_hex(body);
    jobs.into_iter()
        .map(|job| {
            let message = JobMessage::new(received_at.to_owned(), job);
            let group_id = message.group_id(&body_digest);
            let dedup_id = digest_hex(format!("{body_digest}\n{group_id}").as_bytes());
            OutgoingMessage {
                group_id,
                dedup_id,
                body: message.to_json(),
            }
        })
        .collect()
}

/// The message that asks the worker to reconcile every stream, as template.yaml's schedule
/// sends it; `at` names the run (its deduplication id derives from it).
pub fn reconcile_message(at: &str) -> OutgoingMessage {
    let message = JobMessage::new(at.to_owned(), Job::Reconcile {});
    OutgoingMessage {
        group_id: message.group_id(""),
        dedup_id: digest_hex(format!("reconcile {at}").as_bytes()),
        body: message.to_json(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(body: &str) -> Vec<OutgoingMessage> {
        let raw: &RawValue = serde_json::from_str(body).unwrap();
        let jobs = jobs_for(NangoWebhook::from_raw(raw), raw);
        messages_for(body.as_bytes(), jobs, "2026-11-27T14:00:00Z")
    }

    #[test]
    fn names_as_stored_match_the_wire() {
        use crate::core::record::LastAction;
        for t in [
            Trigger::Webhook,
            Trigger::Continuation,
            Trigger::Reconcile,
            Trigger::Manual,
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for a in [LastAction::Added, LastAction::Updated, LastAction::Deleted] {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }

    #[test]
    fn sync_job_round_trips() {
        let body = r#"{"connectionId":"user-42","from":"nango","model":"Contact","modifiedAfter":"2025-01-15T10:00:00.123Z","providerConfigKey":"hubspot","responseResults":{"added":12,"deleted":0,"updated":3},"success":true,"syncName":"contacts","syncType":"INCREMENTAL","syncVariant":"base","type":"sync"}"#;
        let [m] = messages(body).try_into().unwrap();
        let decoded = JobMessage::decode(&m.body).unwrap();
        assert_eq!(decoded.v, JOB_VERSION);
        assert_eq!(decoded.received_at, "2026-11-27T14:00:00Z");
        let Job::Sync {
            stream,
            sync_name,
            results,
            modified_after,
            ..
        } = &decoded.job
        else {
            panic!("{decoded:?}")
        };
        assert_eq!(
            stream,
            &StreamKey::new("hubspot", "user-42", "Contact", "base")
        );
        assert_eq!(sync_name, "contacts");
        assert_eq!(results.unwrap().added, 12);
        assert_eq!(modified_after.as_deref(), Some("2025-01-15T10:00:00.123Z"));
        assert_eq!(m.group_id, stream.message_group_id());
        // Encoding again gives the same bytes: the message round-trips exactly.
        assert_eq!(decoded.to_json(), m.body);
    }

    #[test]
    fn multi_model_failure_gives_one_message_per_stream() {
        let body = r#"{"connectionId":"c","model":"Contact,Company","providerConfigKey":"p","success":false,"syncName":"s","type":"sync","error":{"type":"script_error","description":"x"}}"#;
        let ms = messages(body);
        assert_eq!(ms.len(), 2);
        assert_ne!(ms[0].group_id, ms[1].group_id);
        assert_ne!(ms[0].dedup_id, ms[1].dedup_id);
        // Same bytes again (a Nango retry) give the same ids.
        assert_eq!(messages(body), ms);
    }

    #[test]
    fn events_carry_the_body_verbatim() {
        let body = r#"{"connectionId":"acme","from":"github","payload":{"9":"nine","10":"ten","n":1e400},"providerConfigKey":"gh","type":"forward"}"#;
        let [m] = messages(body).try_into().unwrap();
        let decoded = JobMessage::decode(&m.body).unwrap();
        let Job::Event { kind, webhook } = &decoded.job else {
            panic!()
        };
        assert_eq!(kind, "forward");
        assert_eq!(webhook.get(), body);
        let conn = ConnectionKey {
            provider_config_key: "gh".into(),
            connection_id: "acme".into(),
        };
        assert_eq!(m.group_id, conn.message_group_id());
        let unmatched = r#"[{"x":1}]"#;
        let [m] = messages(unmatched).try_into().unwrap();
        assert!(m.group_id.starts_with("e-"));
    }

    #[test]
    fn the_scheduled_reconcile_message_decodes() {
        // What template.yaml's schedule sends.
        let body = r#"{"v":1,"received_at":"2026-11-27T14:15:00Z","job":{"reconcile":{}}}"#;
        assert!(matches!(
            JobMessage::decode(body).unwrap().job,
            Job::Reconcile {}
        ));
        let sync = r#"{"v":1,"received_at":"t","job":{"sync":{"stream":{"provider_config_key":"p","connection_id":"c","model":"M","variant":"base"},"sync_name":"s","trigger":"continuation"}}}"#;
        assert!(matches!(
            JobMessage::decode(sync).unwrap().job,
            Job::Sync {
                trigger: Trigger::Continuation,
                ..
            }
        ));
    }

    #[test]
    fn other_versions_and_shapes_are_refused() {
        assert!(matches!(
            JobMessage::decode(r#"{"v":2,"whatever":true}"#),
            Err(JobDecodeError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            JobMessage::decode(r#"{"v":1,"received_at":"x","job":{"nope":{}}}"#),
            Err(JobDecodeError::Malformed(_))
        ));
        assert!(matches!(
            JobMessage::decode("not json"),
            Err(JobDecodeError::Malformed(_))
        ));
    }

    #[test]
    fn a_bare_write_request_is_a_write_job_grouped_by_its_record() {
        let example = include_str!("../../events/write-request.json");
        let message = JobMessage::decode(example).unwrap();
        let Job::Write(request) = &message.job else {
            panic!("not a write job: {message:?}");
        };
        assert_eq!(request.id, "order-42-close-deal");
        let group = message.group_id("unused");
        assert!(group.starts_with("w-") && group.len() > 10, "{group}");
        let mut other_record: serde_json::Value = serde_json::from_str(example).unwrap();
        other_record["record"]["id"] = "43".into();
        let other = JobMessage::decode(&other_record.to_string()).unwrap();
        assert_ne!(
            other.group_id("unused"),
            group,
            "writes to other records run beside it"
        );
        let wrapped = JobMessage::new("t".into(), Job::Write(request.clone()));
        assert_eq!(
            JobMessage::decode(&wrapped.to_json())
                .unwrap()
                .group_id("x"),
            group
        );
        let bad = example.replace("\"v\": 1", "\"v\": 2");
        let refused = JobMessage::decode(&bad).unwrap_err().to_string();
        assert!(refused.contains("write request version 2"), "{refused}");
    }
}
