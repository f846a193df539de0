//! Shared helpers: sample events, the documented test key, and the moto connection.

use nango_sync::ports::JobConsumer;
use std::path::PathBuf;

use aws_config::{Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use nango_sync::core::signature::{SigningKey, Verifier};

/// The key that signs the samples in events/ (see events/README.md).
pub const TEST_SIGNING_KEY: &str = "nango-sync-test-signing-key";

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Replays a Lambda HTTP event as a plain request: same method, headers and body bytes.
pub async fn replay(client: &reqwest::Client, url: &str, file: &str) -> reqwest::StatusCode {
    let request = lambda_http::request::from_str(&read(&format!("events/{file}"))).unwrap();
    let mut builder = client.request(request.method().clone(), url);
    for (name, value) in request.headers() {
        if name != "host" {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(request.body().as_ref().to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

pub fn test_verifier() -> Verifier {
    Verifier::new(SigningKey::new(TEST_SIGNING_KEY), None)
}

/// The moto server's URL. Set by scripts/test.sh; a missing server is a failure, not a skip.
pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOTO_ENDPOINT is not set: the over-the-wire tests need moto's server. \
             Run the suite with scripts/test.sh, which installs and starts it."
        )
    })
}

/// SDK settings aimed at moto, with the static test credentials it accepts.
pub async fn moto_sdk_config() -> SdkConfig {
    let retry = aws_config::retry::RetryConfig::standard()
        .with_initial_backoff(std::time::Duration::from_millis(5))
        .with_max_backoff(std::time::Duration::from_millis(50));
    // A request moto never answers (it was seen once under the full suite's load) is tried
    // again rather than waited on for ever.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(std::time::Duration::from_secs(30))
        .build();
    aws_config::defaults(nango_sync::setup::behavior_version())
        .retry_config(retry)
        .timeout_config(timeouts)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(moto_endpoint())
        .load()
        .await
}

/// A name no other test uses, so tests share one moto server without resets.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use nango_sync::adapters::aws::dynamodb::{
    create_table, DynamoRecordStore, DynamoStateStore, WriteSettings,
};
use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::adapters::nango::{NangoClient, RateLimits};
use nango_sync::core::stream::StreamKey;
use nango_sync::core::worker::{WorkerApp, WorkerSettings};
use nango_sync::retry::RetryPolicy;
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::Simulator;
use serde_json::{json, Map, Value};

pub const API_KEY: &str = "00000000-0000-4000-8000-000000000000";

/// Nango's retries, fast enough for tests, same shape as production.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy::new(8, Duration::from_millis(5), Duration::from_millis(50))
}

/// 429s waited out fast.
pub fn fast_rate_limits() -> RateLimits {
    RateLimits {
        min_wait: Duration::from_millis(10),
        max_wait: Duration::from_millis(200),
        ..RateLimits::default()
    }
}

/// The records client of the tests: fast retries and 429 waits.
pub fn nango_client(url: &str, page_limit: u32) -> NangoClient {
    NangoClient::new(url, API_KEY, page_limit, fast_retry()).with_rate_limits(fast_rate_limits())
}

pub fn fast_writes() -> WriteSettings {
    WriteSettings {
        retry: RetryPolicy::new(12, Duration::from_millis(5), Duration::from_millis(100)),
        ..WriteSettings::default()
    }
}

pub fn contacts() -> StreamKey {
    StreamKey::new("hubspot", "user-42", "Contact", "base")
}

pub fn payload(i: usize, version: u32) -> Map<String, Value> {
    json!({"name": format!("person {i}"), "version": version, "emails": [format!("p{i}@example.com")], "score": i as f64 / 4.0})
        .as_object()
        .unwrap()
        .clone()
}

/// The deployed worker's parts, with Nango simulated and DynamoDB on moto (optionally through
/// another endpoint, e.g. the fault proxy). Continuations land in a memory queue.
pub type Rig = WorkerApp<NangoClient, DynamoRecordStore, DynamoStateStore, MemoryQueue>;

pub struct WorkerRig {
    pub sim: Arc<Simulator>,
    pub server: SimServer,
    pub app: Rig,
    pub state_table: String,
}

pub async fn worker_rig(
    page_limit: u32,
    settings: ServerSettings,
    dynamo_endpoint: Option<String>,
) -> WorkerRig {
    let sim = Arc::new(Simulator::new());
    let server = SimServer::start(Arc::clone(&sim), settings).await.unwrap();
    let sdk = moto_sdk_config().await;
    let admin = aws_sdk_dynamodb::Client::new(&sdk);
    let records_table = unique_name("records");
    let state_table = unique_name("state");
    create_table(&admin, &records_table).await.unwrap();
    create_table(&admin, &state_table).await.unwrap();
    let dynamo = match dynamo_endpoint {
        Some(url) => aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(url)
                .build(),
        ),
        None => admin,
    };
    let app = WorkerApp {
        source: nango_client(&server.url, page_limit).with_discovery_rate(60_000),
        records: DynamoRecordStore::new(dynamo.clone(), &records_table, fast_writes()),
        state: DynamoStateStore::new(dynamo, &state_table),
        queue: MemoryQueue::new(),
        settings: WorkerSettings::default(),
    };
    WorkerRig {
        sim,
        server,
        app,
        state_table,
    }
}

/// A sync job message body for a stream, as the webhook function writes it.
pub fn sync_job(stream: &StreamKey) -> String {
    json!({"v": 1, "received_at": "2026-11-27T14:00:00.000Z", "job": {"sync": {
        "stream": stream, "sync_name": "contacts"}}})
    .to_string()
}

/// An SQS event holding these (message id, group id, body) messages.
pub fn sqs_event(messages: &[(&str, &str, &str)]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, group, body)| {
            json!({"messageId": id, "receiptHandle": format!("handle-{id}"), "body": body,
                   "attributes": {"MessageGroupId": group, "ApproximateReceiveCount": "1"},
                   "messageAttributes": {}, "eventSource": "aws:sqs",
                   "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest.fifo", "awsRegion": "us-east-1"})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// JSON equality as DynamoDB keeps numbers: by value (`0.0` is stored as `0`).
pub use nango_sync::fuzzing::same_value as same_json;

/// What the copy must agree with Nango on after a re-read or a sweep: the payload (as
/// [`same_json`] compares it) and whether the record is deleted. Either leaves alone a record
/// whose content is unchanged (`core::reread`, `core::drift::sweep`), so its bookkeeping
/// (cursor, timestamps, last action) may be from before an emptyCache re-add.
pub fn same_content(stored: &Value, served: &Value) -> bool {
    let content = |record: &Value| {
        let mut record = record.clone();
        if let Some(object) = record.as_object_mut() {
            let deleted = object
                .remove("_nango_metadata")
                .is_some_and(|meta| meta["deleted_at"].is_string());
            object.insert("deleted".into(), Value::Bool(deleted));
        }
        record
    };
    same_json(&content(stored), &content(served))
}

/// Takes every message off a queue (deleting each), in the order received.
pub async fn drain(
    queue: &nango_sync::adapters::aws::sqs::SqsQueue,
) -> Vec<nango_sync::adapters::aws::sqs::ReceivedMessage> {
    let mut all = Vec::new();
    loop {
        let batch = queue.receive(10, std::time::Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        for m in &batch {
            queue.delete(&m.receipt_handle).await.unwrap();
        }
        all.extend(batch);
    }
}

/// Log output captured in memory (a `tracing_subscriber` writer), for tests that read logs.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A change feed's changes as sorted (id, change) pairs: the change feed tests' comparison.
pub fn change_kinds(changes: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut kinds: Vec<(String, String)> = changes
        .iter()
        .map(|c| {
            let text = |name: &str| c[name].as_str().unwrap_or_default().to_owned();
            (text("id"), text("change"))
        })
        .collect();
    kinds.sort();
    kinds
}
