//! Records and state in DynamoDB: [`DynamoRecordStore`] (records.rs) and [`DynamoStateStore`]
//! (state.rs), the record <-> item conversion ([`item`]), and what both share here: the error
//! classification, the consumed-capacity meter, table creation for local runs.
//!
//! Records go through BatchWriteItem, 25 items a call, several calls in flight (as many as the
//! write gate allows: fewer under throttling, more again after); UnprocessedItems and
//! throttling are retried with backoff until written. Those calls are signed and sent without
//! the SDK's orchestrator ([`batch_write`]); every other call goes through the SDK. The state
//! table holds one item per stream (its cursor, moved by a conditional write), per connection,
//! per stored event and per write to the provider (writes.rs).

mod batch_write;
#[cfg(feature = "local")]
pub(crate) mod feed;
mod gate;
pub(crate) mod item;
mod records;
mod state;
pub(crate) mod wire;
mod writes;

use std::sync::atomic::{AtomicU64, Ordering};

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConsumedCapacity, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use aws_sdk_dynamodb::Client;

use crate::ports::StoreError;
use crate::retry::{Class, RetryPolicy};
use item::{attr, Item};

pub use records::{DynamoRecordStore, WriteSettings, BATCH_SIZE};
pub use state::{state_keys, DynamoStateStore};

/// The capacity DynamoDB reports as consumed (`ReturnConsumedCapacity: TOTAL` on every read
/// and batch write), summed over the calls of the stores that share it.
#[derive(Debug, Default)]
pub struct CapacityMeter {
    read_milli: AtomicU64,
    write_milli: AtomicU64,
    get_items: AtomicU64,
    query_pages: AtomicU64,
    scan_pages: AtomicU64,
}

/// Which read call consumed capacity.
#[derive(Debug, Clone, Copy)]
enum Read {
    GetItem,
    Query,
    Scan,
}

impl CapacityMeter {
    /// Read capacity units consumed so far.
    pub fn read_units(&self) -> f64 {
        self.read_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Write capacity units consumed so far (batch writes).
    pub fn write_units(&self) -> f64 {
        self.write_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Read calls so far: (GetItem calls, Query pages, Scan pages).
    pub fn read_calls(&self) -> (u64, u64, u64) {
        (
            self.get_items.load(Ordering::Relaxed),
            self.query_pages.load(Ordering::Relaxed),
            self.scan_pages.load(Ordering::Relaxed),
        )
    }

    fn read(&self, call: Read, consumed: Option<&ConsumedCapacity>) {
        let calls = match call {
            Read::GetItem => &self.get_items,
            Read::Query => &self.query_pages,
            Read::Scan => &self.scan_pages,
        };
        calls.fetch_add(1, Ordering::Relaxed);
        add_units(&self.read_milli, consumed);
    }

    fn write(&self, consumed: &[ConsumedCapacity]) {
        for c in consumed {
            add_units(&self.write_milli, Some(c));
        }
    }

    /// Write units a call sent without the SDK reported.
    fn wrote(&self, units: f64) {
        add(&self.write_milli, units);
    }
}

fn add_units(total: &AtomicU64, consumed: Option<&ConsumedCapacity>) {
    add(
        total,
        consumed.and_then(|c| c.capacity_units).unwrap_or(0.0),
    );
}

fn add(total: &AtomicU64, units: f64) {
    total.fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
}

/// The one place DynamoDB's errors are classified: throttling, unavailability and transport
/// failures are transient, everything else permanent. The SDK's errors come here; so do the
/// answers of the BatchWriteItem calls sent without it ([`batch_write`]), by their code.
fn class_of<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Class {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Class::Transient
        }
        SdkError::ServiceError(_) => class_of_code(error.code(), None),
        _ => Class::Permanent,
    }
}

/// An error answer by its code (and HTTP status: a 429 or 5xx without a known code is transient).
/// The SDK's own lists of throttling and transient codes, and the conflicts DynamoDB's model
/// marks retryable.
fn class_of_code(code: Option<&str>, status: Option<u16>) -> Class {
    let transient = is_throttling_code(code)
        || code.is_some_and(|c| TRANSIENT_ERRORS.contains(&c))
        || matches!(
            code,
            Some(
                "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionConflictException"
                    | "ReplicatedWriteConflictException"
            )
        )
        || status.is_some_and(|s| s == 429 || s >= 500);
    if transient {
        Class::Transient
    } else {
        Class::Permanent
    }
}

/// DynamoDB saying "slower": the write gate halves the calls in flight.
fn is_throttling_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| THROTTLING_ERRORS.contains(&c))
}

fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    error: &SdkError<E, R>,
) -> String {
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string(),
    }
}

fn store_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::caused_by(class_of(&e), describe(&e), e)
}

/// The adapter's retry policy as the SDK's: the SDK retries its failed calls (throttling
/// included) by it, once. BatchWriteItem, sent without the SDK, is retried by the same policy
/// in [`batch_write`], and what it hands back unprocessed in `DynamoRecordStore::write_chunk`.
fn with_retry(client: Client, retry: &RetryPolicy) -> Client {
    let sdk_retry = aws_sdk_dynamodb::config::retry::RetryConfig::standard()
        .with_max_attempts(retry.attempts.max(1))
        .with_initial_backoff(retry.base)
        .with_max_backoff(retry.cap);
    Client::from_conf(client.config().to_builder().retry_config(sdk_retry).build())
}

/// DynamoDB's retry policy: 12 attempts from 50 ms up to 5 s.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy::new(
    12,
    std::time::Duration::from_millis(50),
    std::time::Duration::from_secs(5),
);

fn get_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

/// A number attribute, 0 when absent or unreadable.
fn get_n<T: std::str::FromStr + Default>(item: &Item, name: &str) -> T {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or_default(),
        _ => T::default(),
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Creates a table keyed on `pk` (S) and `sk` (S), billed on demand, if it does not exist. For
/// local runs and tests; deployed tables come from template.yaml.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    create(client, table, None).await
}

/// The records table as the stack has it: [`create_table`] with the change feed on (a DynamoDB
/// stream of new and old images, as template.yaml's `StreamSpecification`).
pub async fn create_records_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let feed = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .expect("enabled is set");
    create(client, table, Some(feed)).await
}

async fn create(
    client: &Client,
    table: &str,
    stream: Option<StreamSpecification>,
) -> Result<(), StoreError> {
    let result = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(attr::PK))
        .attribute_definitions(attribute(attr::SK))
        .key_schema(key(attr::PK, KeyType::Hash))
        .key_schema(key(attr::SK, KeyType::Range))
        .set_stream_specification(stream)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
        Err(e) => Err(store_error(e)),
    }
}

fn attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type are set")
}
