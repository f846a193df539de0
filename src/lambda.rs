//! The Lambda edge: Lambda's events and responses, converted to and from the core's types. The
//! only module that names Lambda's types; the local run calls the same core functions directly.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_http::http::{header, HeaderMap, Method};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::core::webhook::{RequestOutcome, WebhookApp, WebhookRequest};
use crate::core::worker::WorkerApp;
use crate::core::writes::outbox::{message_for, uncarriable};
use crate::ports::{
    JobQueue, ReceivedMessage, RecordSource, RecordStore, StateStore, StreamDiscovery, WriteSender,
    WriteStore,
};

/// The webhook function: a Function URL (or HTTP API) request in, its answer out. Never an error:
/// every case has its status.
pub async fn webhook<Q: JobQueue>(app: &WebhookApp<Q>, request: Request) -> Response<Body> {
    let decided = http_request(request.method(), request.headers(), request.body().as_ref());
    response(&app.decide(&decided).await)
}

/// A request given as `http` parts, as the core reads it (header names fold case).
pub fn http_request<'a>(
    method: &'a Method,
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> WebhookRequest<'a> {
    let values = |name: &str| headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
    WebhookRequest::new(method.as_str(), body, values)
}

/// The HTTP answer for an outcome.
pub fn response(outcome: &RequestOutcome) -> Response<Body> {
    let mut builder = Response::builder()
        .status(outcome.status())
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(allow) = outcome.allow() {
        builder = builder.header(header::ALLOW, allow);
    }
    builder
        .body(Body::from(outcome.body()))
        .expect("static response parts are valid")
}

/// The worker function: an SQS batch in, the failed messages as a partial batch response out
/// (`ReportBatchItemFailures`). `deadline` is when the invocation is cut off.
pub async fn worker<S, R, T, Q>(
    app: &WorkerApp<S, R, T, Q>,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse
where
    S: RecordSource + StreamDiscovery + WriteSender,
    R: RecordStore,
    T: StateStore + WriteStore,
    Q: JobQueue,
{
    let batch: Vec<ReceivedMessage> = event
        .records
        .into_iter()
        .map(|m| ReceivedMessage {
            message_id: m.message_id.unwrap_or_default(),
            receipt_handle: m.receipt_handle.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
            group_id: m.attributes.get("MessageGroupId").cloned(),
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    for id in app.handle(&batch, deadline).await {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// A DynamoDB stream batch, as Lambda hands the outbox function one: the fields it reads.
#[derive(Debug, Deserialize)]
pub struct OutboxEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<OutboxRecord>,
}

#[derive(Debug, Deserialize)]
pub struct OutboxRecord {
    #[serde(rename = "eventID", default)]
    pub event_id: Option<String>,
    #[serde(rename = "eventName", default)]
    pub event_name: Option<String>,
    #[serde(default)]
    pub dynamodb: Option<OutboxChange>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutboxChange {
    #[serde(default)]
    pub new_image: Option<HashMap<String, Attribute>>,
    #[serde(default)]
    pub sequence_number: Option<String>,
}

/// One attribute value; only a string's is read (any other type reads as none).
#[derive(Debug, Deserialize)]
pub struct Attribute {
    #[serde(rename = "S", default)]
    pub s: Option<String>,
}

/// A stream batch's partial failure (`ReportBatchItemFailures`): Lambda retries from the first
/// sequence number named, in order.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct StreamBatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<StreamItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct StreamItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// The outbox function: each new outbox item (`INSERT`; an update or TTL's removal is no new
/// write) onto the ingest queue as its write request (`core::writes::outbox`), in the stream's
/// order. The first the queue does not take is reported, so that Lambda sends it and those after
/// it again. An item without a string `id` and `request` is no write request: logged by its
/// event id and left in the application's table.
pub async fn outbox<Q: JobQueue>(queue: &Q, event: OutboxEvent) -> StreamBatchResponse {
    let mut response = StreamBatchResponse::default();
    for record in event.records {
        if record.event_name.as_deref() != Some("INSERT") {
            continue;
        }
        let change = record.dynamodb.unwrap_or(OutboxChange {
            new_image: None,
            sequence_number: None,
        });
        let image = change.new_image.unwrap_or_default();
        let text = |name: &str| image.get(name).and_then(|a| a.s.as_deref());
        let (Some(id), Some(request)) = (text("id"), text("request")) else {
            tracing::error!(
                event_id = record.event_id.as_deref().unwrap_or(""),
                "outbox item without a string `id` and `request`: not a write request, not sent; it stays in the outbox table"
            );
            continue;
        };
        if let Some(why) = uncarriable(request) {
            tracing::error!(
                write_id = id,
                why,
                "outbox item's request cannot be a queue message: not sent; it stays in the outbox table"
            );
            continue;
        }
        if let Err(error) = queue.send(&[message_for(id, request)]).await {
            tracing::error!(%error, write_id = id, "outbox item not queued; Lambda sends it again");
            response.batch_item_failures.push(StreamItemFailure {
                item_identifier: change.sequence_number.unwrap_or_default(),
            });
            return response;
        }
        tracing::info!(write_id = id, "outbox item queued");
    }
    response
}

/// An invocation deadline (milliseconds since the epoch, as the Lambda context gives it) as an
/// `Instant`. A value too small to be a time since the epoch is read as a duration from now:
/// `cargo lambda watch`'s emulator sends 600000 (its 10 minutes), which read as a time would be
/// 1970, and every job would be deferred at once.
pub fn deadline(deadline_ms: u64) -> Instant {
    /// 2001-09-09 in milliseconds since the epoch: no deadline Lambda sends is earlier.
    const EARLIEST_TIME_MS: u64 = 1_000_000_000_000;
    if deadline_ms < EARLIEST_TIME_MS {
        return Instant::now() + Duration::from_millis(deadline_ms);
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_a_time_or_an_emulators_duration() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let in_a_minute = deadline(now_ms + 60_000);
        let left = in_a_minute - Instant::now();
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        let passed = deadline(now_ms - 1_000);
        assert!(passed <= Instant::now());
        let emulator = deadline(600_000) - Instant::now();
        assert!(emulator > Duration::from_secs(598), "{emulator:?}");
    }
}
