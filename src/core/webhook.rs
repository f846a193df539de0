//! The webhook function: verify the raw body, classify it, enqueue its jobs, answer.
//!
//! The order matters: size check, then signature over the exact bytes, then parsing. Nothing about
//! an unverified body is parsed or logged. Every answer is a fixed short JSON body; error details go
//! to the logs (never the key, the signature or the payload).

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::core::clock::Clock;
use crate::core::job::{jobs_for, messages_for, MAX_MESSAGE_BYTES};
use crate::core::metrics::WebhookAnswer;
use crate::core::payload::NangoWebhook;
use crate::core::rotation::RotatingSecret;
use crate::core::signature::{
    KeyUsed, SignatureError, SignatureHeaders, Verifier, HMAC_HEADER, LEGACY_HEADER,
};
use crate::ports::OutgoingMessage;
use crate::ports::{JobQueue, MetricsSink};

/// Everything the webhook function needs, built once at cold start and borrowed per request.
#[derive(Debug)]
pub struct WebhookApp<Q> {
    /// The keys, re-read when a signature matches none of them (a rotation under a warm function).
    verifier: RotatingSecret<Verifier>,
    queue: Q,
    max_body_bytes: usize,
    metrics: Option<Arc<dyn MetricsSink>>,
    /// The time a webhook's jobs say it was received.
    clock: Arc<dyn Clock>,
}

/// A request to the webhook, as any front hands it over (Lambda's Function URL, the local
/// server): the method, the signature headers' values (every value sent: a repeated header is
/// refused), and the exact body bytes.
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    pub method: &'a str,
    pub hmac: Vec<&'a [u8]>,
    pub legacy: Vec<&'a [u8]>,
    pub body: &'a [u8],
}

impl<'a> WebhookRequest<'a> {
    /// From any front's headers: `values(name)` gives every value sent under `name`.
    pub fn new(method: &'a str, body: &'a [u8], values: impl Fn(&str) -> Vec<&'a [u8]>) -> Self {
        Self {
            method,
            hmac: values(HMAC_HEADER),
            legacy: values(LEGACY_HEADER),
            body,
        }
    }
}

/// What happened to one request. [`RequestOutcome::status`] is the one place that maps it to HTTP.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Every job is on the queue.
    Accepted {
        messages: usize,
    },
    MethodNotAllowed,
    PayloadTooLarge,
    Unauthorized(SignatureError),
    /// Signed, but the body is not JSON.
    NotJson,
    /// The body could not be read to its end (local server only; Lambda hands over whole bodies).
    IncompleteBody,
    /// The queue did not take the jobs: 503 so that Nango retries.
    QueueUnavailable,
}

/// A verified, classified webhook ready to enqueue.
#[derive(Debug)]
pub struct Prepared {
    pub kind: String,
    pub key_used: KeyUsed,
    pub messages: Vec<OutgoingMessage>,
}

impl RequestOutcome {
    /// The HTTP status Nango gets: 2xx only once the queue took every job; 5xx when it should
    /// retry; 4xx (never retried by Nango) only for what no retry can fix.
    pub fn status(&self) -> u16 {
        match self {
            Self::Accepted { .. } => 200,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::Unauthorized(_) => 401,
            Self::NotJson | Self::IncompleteBody => 400,
            Self::QueueUnavailable => 503,
        }
    }

    /// The answer's body: a fixed short JSON text, never error details.
    pub fn body(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => r#"{"status":"accepted"}"#,
            Self::MethodNotAllowed => r#"{"error":"method not allowed"}"#,
            Self::PayloadTooLarge => r#"{"error":"payload too large"}"#,
            // The same body for missing, malformed and wrong signatures.
            Self::Unauthorized(_) => r#"{"error":"unauthorized"}"#,
            Self::NotJson => r#"{"error":"body is not JSON"}"#,
            Self::IncompleteBody => r#"{"error":"could not read the body"}"#,
            Self::QueueUnavailable => r#"{"error":"temporarily unavailable, retry"}"#,
        }
    }

    /// The answer its metrics count; none for a body the local server could not read (Lambda
    /// hands over whole bodies, so the deployed function never has it).
    pub fn answer(&self, key_used: Option<KeyUsed>) -> Option<WebhookAnswer> {
        Some(match self {
            Self::Accepted { .. } if key_used == Some(KeyUsed::Previous) => {
                WebhookAnswer::AcceptedWithPreviousKey
            }
            Self::Accepted { .. } => WebhookAnswer::Accepted,
            Self::MethodNotAllowed => WebhookAnswer::RefusedMethod,
            Self::PayloadTooLarge => WebhookAnswer::RefusedTooLarge,
            Self::Unauthorized(SignatureError::Mismatch) => WebhookAnswer::RefusedSignature,
            Self::Unauthorized(_) => WebhookAnswer::RefusedUnsigned,
            Self::NotJson => WebhookAnswer::RefusedNotJson,
            Self::QueueUnavailable => WebhookAnswer::EnqueueFailed,
            Self::IncompleteBody => return None,
        })
    }

    /// The `Allow` header the answer carries, if any.
    pub fn allow(&self) -> Option<&'static str> {
        (*self == Self::MethodNotAllowed).then_some("POST")
    }
}

impl<Q: JobQueue> WebhookApp<Q> {
    /// `verifier`: fixed keys, or a [`RotatingSecret`] that re-reads them.
    pub fn new(
        verifier: impl Into<RotatingSecret<Verifier>>,
        queue: Q,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            verifier: verifier.into(),
            queue,
            max_body_bytes,
            metrics: None,
            clock: crate::core::clock::system(),
        }
    }

    /// The clock received times are read from (the system's by default).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Each request's answer counted in `metrics` (on Lambda: EMF lines).
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSink>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The decision for one request, whichever front it came through: never an error, every
    /// case has its outcome.
    pub async fn decide(&self, request: &WebhookRequest<'_>) -> RequestOutcome {
        let (outcome, key_used) = self.decide_counted(request).await;
        if let (Some(metrics), Some(answer)) = (&self.metrics, outcome.answer(key_used)) {
            metrics.webhook_answered(answer);
        }
        outcome
    }

    /// The decision, and which key verified the request (when one did).
    async fn decide_counted(
        &self,
        request: &WebhookRequest<'_>,
    ) -> (RequestOutcome, Option<KeyUsed>) {
        let body = request.body;
        if request.method != "POST" {
            return (RequestOutcome::MethodNotAllowed, None);
        }
        if body.len() > self.max_body_bytes {
            tracing::warn!(
                bytes = body.len(),
                limit = self.max_body_bytes,
                "webhook body too large"
            );
            return (RequestOutcome::PayloadTooLarge, None);
        }
        let prepared = match self.prepare_with_fresh_keys(request).await {
            Ok(prepared) => prepared,
            Err(outcome) => return (outcome, None),
        };
        if prepared.key_used == KeyUsed::Previous {
            tracing::warn!("webhook signed with the previous signing key; finish the key rotation");
        }
        let outcome = match self.queue.send(&prepared.messages).await {
            Ok(()) => {
                tracing::info!(kind = %prepared.kind, messages = prepared.messages.len(), "webhook enqueued");
                RequestOutcome::Accepted {
                    messages: prepared.messages.len(),
                }
            }
            Err(error) => {
                tracing::error!(kind = %prepared.kind, error = %error_chain(&error), "could not enqueue webhook; answering 503 so Nango retries");
                RequestOutcome::QueueUnavailable
            }
        };
        (outcome, Some(prepared.key_used))
    }

    /// [`prepare`] with the keys in hand; when the signature matches none of them, once more
    /// with keys read again, if the rotation bound allows a read (a warm function sees a
    /// rotation within that bound, and forged requests cannot make it read more often).
    async fn prepare_with_fresh_keys(
        &self,
        request: &WebhookRequest<'_>,
    ) -> Result<Prepared, RequestOutcome> {
        let keys = self.verifier.fresh().await;
        let received_at = self.clock.now_rfc3339();
        match prepare(&keys, request, &received_at) {
            Err(RequestOutcome::Unauthorized(SignatureError::Mismatch)) => {
                match self.verifier.after_refusal(&keys).await {
                    Some(newer) => prepare(&newer, request, &received_at),
                    None => Err(RequestOutcome::Unauthorized(SignatureError::Mismatch)),
                }
            }
            other => other,
        }
    }
}

/// Verify, classify and build the queue messages: the pure part of the handler.
pub fn prepare(
    verifier: &Verifier,
    request: &WebhookRequest<'_>,
    received_at: &str,
) -> Result<Prepared, RequestOutcome> {
    let body = request.body;
    let key_used = verifier
        .verify(
            SignatureHeaders {
                hmac: &request.hmac,
                legacy: &request.legacy,
            },
            body,
        )
        .map_err(|reason| {
            tracing::warn!(%reason, "webhook refused: signature");
            RequestOutcome::Unauthorized(reason)
        })?;
    let raw: &RawValue = serde_json::from_slice(body).map_err(|_| {
        tracing::warn!(bytes = body.len(), "signed webhook body is not JSON");
        RequestOutcome::NotJson
    })?;
    let webhook = NangoWebhook::from_raw(raw);
    let kind = webhook.kind().to_owned();
    let messages = messages_for(body, jobs_for(webhook, raw), received_at);
    if messages.iter().any(|m| m.body.len() > MAX_MESSAGE_BYTES) {
        tracing::warn!(%kind, "job message would exceed the SQS limit");
        return Err(RequestOutcome::PayloadTooLarge);
    }
    Ok(Prepared {
        kind,
        key_used,
        messages,
    })
}

/// An error with its sources, for one log line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
