//! Records and state in DynamoDB: [`DynamoRecordStore`] (records.rs) and [`DynamoStateStore`]
//! (state.rs), the record <-> item conversion ([`item`]), and what both share here: the error
//! classification, the consumed-capacity meter, table creation for local runs.
//!
//! Records go through BatchWriteItem, 25 items a call, several calls in flight; UnprocessedItems
//! and throttling are retried with backoff until written. The state table holds one item per
//! stream (its cursor, moved by a conditional write), per connection, and per stored event.

pub mod item;
mod records;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConsumedCapacity, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

use crate::ports::StoreError;
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
}

fn add_units(total: &AtomicU64, consumed: Option<&ConsumedCapacity>) {
    let units = consumed.and_then(|c| c.capacity_units).unwrap_or(0.0);
    total.fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
}

fn is_retryable<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => matches!(
            error.code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionConflictException"
            )
        ),
        _ => false,
    }
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

fn store_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    if is_retryable(&e) {
        StoreError::Transient(describe(&e))
    } else {
        StoreError::Permanent(describe(&e))
    }
}

fn get_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn get_n(item: &Item, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Creates a table keyed on `pk` (S) and `sk` (S), billed on demand, if it does not exist. For
/// local runs and tests; deployed tables come from template.yaml.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let result = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(attr::PK))
        .attribute_definitions(attribute(attr::SK))
        .key_schema(key(attr::PK, KeyType::Hash))
        .key_schema(key(attr::SK, KeyType::Range))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
        Err(e) => Err(StoreError::Permanent(describe(&e))),
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
