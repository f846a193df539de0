//! The webhook function: verify the raw body, classify it, enqueue its jobs, answer.
//!
//! The order matters: size check, then signature over the exact bytes, then parsing. Nothing about
//! an unverified body is parsed or logged. Every answer is a fixed short JSON body; error details go
//! to the logs (never the key, the signature or the payload).

use lambda_http::http::{header, HeaderMap, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::value::RawValue;

use crate::core::job::{jobs_for, messages_for, now_rfc3339, MAX_MESSAGE_BYTES};
use crate::core::payload::NangoWebhook;
use crate::core::signature::{
    KeyUsed, SignatureError, SignatureHeaders, Verifier, HMAC_HEADER, LEGACY_HEADER,
};
use crate::ports::JobQueue;
use crate::ports::OutgoingMessage;

/// Everything the webhook function needs, built once at cold start and borrowed per request.
#[derive(Debug)]
pub struct WebhookApp<Q> {
    verifier: Verifier,
    queue: Q,
    max_body_bytes: usize,
}

/// What happened to one request. [`Outcome::response`] is the one place that maps it to HTTP.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
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

impl Outcome {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Accepted { .. } => StatusCode::OK,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotJson | Self::IncompleteBody => StatusCode::BAD_REQUEST,
            Self::QueueUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn body(&self) -> &'static str {
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

    pub fn response(&self) -> Response<Body> {
        let mut builder = Response::builder()
            .status(self.status())
            .header(header::CONTENT_TYPE, "application/json");
        if *self == Self::MethodNotAllowed {
            builder = builder.header(header::ALLOW, "POST");
        }
        builder
            .body(Body::from(self.body()))
            .expect("static response parts are valid")
    }
}

impl<Q: JobQueue> WebhookApp<Q> {
    pub fn new(verifier: Verifier, queue: Q, max_body_bytes: usize) -> Self {
        Self {
            verifier,
            queue,
            max_body_bytes,
        }
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The Lambda entry point: never an `Err`, every case has its status.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.process(request.method(), request.headers(), request.body().as_ref())
            .await
            .response()
    }

    /// The decision for one request, independent of how it arrived (Lambda or the local server).
    pub async fn process(&self, method: &Method, headers: &HeaderMap, body: &[u8]) -> Outcome {
        if method != Method::POST {
            return Outcome::MethodNotAllowed;
        }
        if body.len() > self.max_body_bytes {
            tracing::warn!(
                bytes = body.len(),
                limit = self.max_body_bytes,
                "webhook body too large"
            );
            return Outcome::PayloadTooLarge;
        }
        let prepared = match prepare(&self.verifier, headers, body, &now_rfc3339()) {
            Ok(prepared) => prepared,
            Err(outcome) => return outcome,
        };
        if prepared.key_used == KeyUsed::Previous {
            tracing::warn!("webhook signed with the previous signing key; finish the key rotation");
        }
        match self.queue.send(&prepared.messages).await {
            Ok(()) => {
                tracing::info!(kind = %prepared.kind, messages = prepared.messages.len(), "webhook enqueued");
                Outcome::Accepted {
                    messages: prepared.messages.len(),
                }
            }
            Err(error) => {
                tracing::error!(kind = %prepared.kind, error = %error_chain(&error), "could not enqueue webhook; answering 503 so Nango retries");
                Outcome::QueueUnavailable
            }
        }
    }
}

/// Verify, classify and build the queue messages: the pure part of the handler.
pub fn prepare(
    verifier: &Verifier,
    headers: &HeaderMap,
    body: &[u8],
    received_at: &str,
) -> Result<Prepared, Outcome> {
    let hmac = header_values(headers, HMAC_HEADER);
    let legacy = header_values(headers, LEGACY_HEADER);
    let key_used = verifier
        .verify(
            SignatureHeaders {
                hmac: &hmac,
                legacy: &legacy,
            },
            body,
        )
        .map_err(|reason| {
            tracing::warn!(%reason, "webhook refused: signature");
            Outcome::Unauthorized(reason)
        })?;
    let raw: &RawValue = serde_json::from_slice(body).map_err(|_| {
        tracing::warn!(bytes = body.len(), "signed webhook body is not JSON");
        Outcome::NotJson
    })?;
    let webhook = NangoWebhook::from_raw(raw);
    let kind = webhook.kind().to_owned();
    let messages = messages_for(body, jobs_for(webhook, raw), received_at);
    if messages.iter().any(|m| m.body.len() > MAX_MESSAGE_BYTES) {
        tracing::warn!(%kind, "job message would exceed the SQS limit");
        return Err(Outcome::PayloadTooLarge);
    }
    Ok(Prepared {
        kind,
        key_used,
        messages,
    })
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    headers.get_all(name).iter().map(|v| v.as_bytes()).collect()
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
