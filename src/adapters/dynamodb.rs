//! Records and state in DynamoDB.
//!
//! Records go through BatchWriteItem, 25 items a call, several calls in flight; UnprocessedItems
//! and throttling are retried with backoff until written. The state table holds one item per
//! stream (its cursor, moved by a conditional write), per connection, and per stored event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConsumedCapacity, DeleteRequest,
    KeySchemaElement, KeyType, PutRequest, ReturnConsumedCapacity, ScalarAttributeType, Select,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::item::{self, attr, Encoded, Item};
use crate::ports::{
    ConnectionEvent, HeldSweep, NangoNotes, RecordStore, RejectedRecord, Removal, StateStore,
    StoreError, StoredEvent, StreamState, SweepOutcome, SweepResult, SweepState, SyncOutcome,
    SyncReport, WriteReport,
};
use crate::record::NangoRecord;
use crate::stream::{ConnectionKey, StreamKey};

/// BatchWriteItem's limit.
pub const BATCH_SIZE: usize = 25;

/// How writes retry and how many batches run at once.
#[derive(Debug, Clone)]
pub struct WriteSettings {
    pub concurrency: usize,
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// DELETED records: remove the item instead of keeping a tombstone.
    pub hard_delete: bool,
}

impl Default for WriteSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            max_attempts: 12,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            hard_delete: false,
        }
    }
}

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

#[derive(Debug, Clone)]
pub struct DynamoRecordStore {
    client: Client,
    table: String,
    settings: WriteSettings,
    meter: Arc<CapacityMeter>,
}

impl DynamoRecordStore {
    pub fn new(client: Client, table: impl Into<String>, settings: WriteSettings) -> Self {
        Self {
            client,
            table: table.into(),
            settings,
            meter: Arc::default(),
        }
    }

    /// Sums this store's consumed capacity into `meter` (shared with the state store, say).
    pub fn with_meter(mut self, meter: Arc<CapacityMeter>) -> Self {
        self.meter = meter;
        self
    }

    pub fn meter(&self) -> &Arc<CapacityMeter> {
        &self.meter
    }

    /// The stream's items `which` selects, a Query page at a time: `each` gets every page's
    /// items (none when `count_only`). Returns how many matched.
    async fn for_items(
        &self,
        stream: &StreamKey,
        which: Items<'_>,
        count_only: bool,
        mut each: impl AsyncPage,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", attr::PK)
                .expression_attribute_values(":pk", s(stream.encode()))
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take());
            query = match which {
                Items::Unseen(sweep) => query
                    .filter_expression(
                        "attribute_not_exists(#deleted) AND (attribute_not_exists(#seen) OR #seen <> :sweep)",
                    )
                    .expression_attribute_names("#deleted", attr::DELETED_AT)
                    .expression_attribute_names("#seen", attr::SEEN_IN)
                    .expression_attribute_values(":sweep", s(sweep)),
                Items::Live => query
                    .filter_expression("attribute_not_exists(#deleted)")
                    .expression_attribute_names("#deleted", attr::DELETED_AT),
                Items::All => query,
            };
            if count_only {
                query = query.select(Select::Count);
            }
            let page = query.send().await.map_err(store_error)?;
            self.meter.read(Read::Query, page.consumed_capacity());
            total += u64::try_from(page.count).unwrap_or(0);
            if !count_only {
                each.page(page.items.unwrap_or_default()).await?;
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }

    /// Marks deleted (`tombstone`: at, by) or removes the stream's items `which` selects.
    /// Returns how many.
    async fn remove_items(
        &self,
        stream: &StreamKey,
        which: Items<'_>,
        tombstone: Option<(&str, &str)>,
    ) -> Result<u64, StoreError> {
        let page = |items: Vec<Item>| async move {
            let requests = items
                .iter()
                .map(|found| match tombstone {
                    Some((at, by)) => self.tombstone(stream, found, at, by),
                    None => Ok(delete(item::record_key(
                        stream,
                        &get_s(found, attr::SK).unwrap_or_default(),
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.write_all(requests).await
        };
        self.for_items(stream, which, false, page).await
    }

    /// Every stored record of a stream, by id (a Query on the partition, page by page).
    pub async fn read_stream(
        &self,
        stream: &StreamKey,
    ) -> Result<
        std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
        StoreError,
    > {
        let mut out = std::collections::BTreeMap::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", attr::PK)
                .expression_attribute_values(":pk", AttributeValue::S(stream.encode()))
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            self.meter.read(Read::Query, page.consumed_capacity());
            for item in page.items.unwrap_or_default() {
                let id = get_s(&item, attr::SK).unwrap_or_default();
                let record =
                    item::decode_record(&item).map_err(|e| StoreError::Permanent(e.to_string()))?;
                out.insert(id, record);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(out),
            }
        }
    }

    /// Every request, in BatchWriteItem chunks, several in flight.
    async fn write_all(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let chunks: Vec<Vec<WriteRequest>> =
            requests.chunks(BATCH_SIZE).map(<[_]>::to_vec).collect();
        stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk))
            .buffer_unordered(self.settings.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// The write that marks a stored record deleted at `at`, `deleted_by` saying why.
    fn tombstone(
        &self,
        stream: &StreamKey,
        found: &Item,
        at: &str,
        by: &str,
    ) -> Result<WriteRequest, StoreError> {
        let id = get_s(found, attr::SK).unwrap_or_default();
        let unreadable = |e: String| StoreError::Permanent(format!("record {id}: {e}"));
        let mut object = item::decode_record(found).map_err(|e| unreadable(e.to_string()))?;
        crate::record::mark_deleted(&mut object, at);
        let record = NangoRecord::from_object(object).map_err(|e| unreadable(e.to_string()))?;
        match item::encode_record(stream, &record) {
            Encoded::Native(mut item) | Encoded::Compressed(mut item) => {
                item.insert(attr::DELETED_BY.to_owned(), s(by));
                Ok(put(item))
            }
            // It fitted before; the metadata change cannot grow it past the allowance.
            Encoded::TooLarge(reason) => Err(unreadable(reason)),
        }
    }

    /// One BatchWriteItem chunk, retried until every request is processed.
    async fn write_chunk(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..self.settings.max_attempts {
            let result = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests.clone())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match result {
                Ok(out) => {
                    self.meter.write(out.consumed_capacity());
                    requests = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&self.table))
                        .unwrap_or_default();
                    if requests.is_empty() {
                        return Ok(());
                    }
                    tracing::debug!(
                        left = requests.len(),
                        attempt,
                        "unprocessed items; retrying"
                    );
                }
                Err(e) if is_retryable(&e) => {
                    tracing::debug!(error = %describe(&e), attempt, "batch write throttled or failed; retrying");
                }
                Err(e) => return Err(StoreError::Permanent(describe(&e))),
            }
            tokio::time::sleep(backoff(&self.settings, attempt)).await;
        }
        Err(StoreError::Transient(format!(
            "{} items still unwritten after {} attempts",
            requests.len(),
            self.settings.max_attempts
        )))
    }

    /// A pruned record: keep the stored payload, move only the bookkeeping on.
    async fn write_pruned(
        &self,
        stream: &StreamKey,
        record: &NangoRecord,
        seen_in: Option<&str>,
    ) -> Result<(), StoreError> {
        let meta = &record.metadata;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::record_key(stream, &record.id)));
        update = match seen_in {
            Some(sweep) => update
                .update_expression("SET #c = :c, #m = :m, #p = :p, #seen = :seen")
                .expression_attribute_names("#seen", attr::SEEN_IN)
                .expression_attribute_values(":seen", AttributeValue::S(sweep.to_owned())),
            None => update.update_expression("SET #c = :c, #m = :m, #p = :p"),
        };
        let update = update
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#c", attr::CURSOR)
            .expression_attribute_names("#m", attr::LAST_MODIFIED_AT)
            .expression_attribute_names("#p", attr::PRUNED_AT)
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_values(":c", AttributeValue::S(meta.cursor.clone()))
            .expression_attribute_values(":m", AttributeValue::S(meta.last_modified_at.clone()))
            .expression_attribute_values(
                ":p",
                AttributeValue::S(meta.pruned_at.clone().unwrap_or_default()),
            )
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            // Never seen before: there is no payload to keep, store what Nango has.
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                match item::encode_record(stream, record) {
                    Encoded::Native(item) | Encoded::Compressed(item) => {
                        self.write_chunk(vec![put(stamped(item, seen_in))]).await
                    }
                    Encoded::TooLarge(_) => Ok(()),
                }
            }
            Err(e) if is_retryable(&e) => Err(StoreError::Transient(describe(&e))),
            Err(e) => Err(StoreError::Permanent(describe(&e))),
        }
    }
}

fn stamped(mut item: Item, seen_in: Option<&str>) -> Item {
    if let Some(sweep) = seen_in {
        item.insert(attr::SEEN_IN.to_owned(), s(sweep));
    }
    item
}

fn delete(key: Item) -> WriteRequest {
    let request = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .expect("key is set");
    WriteRequest::builder().delete_request(request).build()
}

fn put(item: Item) -> WriteRequest {
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("item is set"),
        )
        .build()
}

impl RecordStore for DynamoRecordStore {
    #[tracing::instrument(skip_all, fields(stream = %stream.encode(), records = records.len()))]
    async fn write_page(
        &self,
        stream: &StreamKey,
        records: &[NangoRecord],
        seen_in: Option<&str>,
    ) -> Result<WriteReport, StoreError> {
        // One request per key in a batch: the last occurrence of an id is its newest state.
        let mut latest: HashMap<&str, &NangoRecord> = HashMap::with_capacity(records.len());
        for record in records {
            latest.insert(&record.id, record);
        }
        let mut report = WriteReport::default();
        let mut requests = Vec::with_capacity(latest.len());
        let mut pruned = Vec::new();
        for record in latest.into_values() {
            if record.is_pruned() {
                pruned.push(record);
            } else if record.is_deleted() && self.settings.hard_delete {
                requests.push(delete(item::record_key(stream, &record.id)));
                report.deleted += 1;
            } else {
                match item::encode_record(stream, record) {
                    Encoded::Native(item) => requests.push(put(stamped(item, seen_in))),
                    Encoded::Compressed(item) => {
                        report.compressed += 1;
                        requests.push(put(stamped(item, seen_in)));
                    }
                    Encoded::TooLarge(reason) => {
                        report.rejected.push(RejectedRecord {
                            id: record.id.clone(),
                            reason,
                        });
                        continue;
                    }
                }
                if record.is_deleted() {
                    report.deleted += 1;
                } else {
                    report.upserted += 1;
                }
            }
        }
        self.write_all(requests).await?;
        for record in pruned {
            self.write_pruned(stream, record, seen_in).await?;
            report.pruned += 1;
        }
        Ok(report)
    }

    /// A Query COUNT of the stream's items without `deleted_at`. It reads the whole partition
    /// (read capacity grows with the stream's size), which is why only reconciles run it, and
    /// only when a count may have changed.
    async fn count_live(&self, stream: &StreamKey) -> Result<u64, StoreError> {
        self.for_items(stream, Items::Live, true, NoPage).await
    }

    async fn count_unseen(&self, stream: &StreamKey, sweep_id: &str) -> Result<u64, StoreError> {
        self.for_items(stream, Items::Unseen(sweep_id), true, NoPage)
            .await
    }

    async fn tombstone_unseen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        at: &str,
    ) -> Result<u64, StoreError> {
        let tombstone = (!self.settings.hard_delete).then_some((at, "sweep"));
        self.remove_items(stream, Items::Unseen(sweep_id), tombstone)
            .await
    }

    async fn remove_stream(
        &self,
        stream: &StreamKey,
        removal: Removal<'_>,
    ) -> Result<u64, StoreError> {
        match removal {
            Removal::Tombstone { at, by } => {
                self.remove_items(stream, Items::Live, Some((at, by))).await
            }
            Removal::Purge => self.remove_items(stream, Items::All, None).await,
        }
    }
}

/// Which of a stream's items a Query reads.
#[derive(Debug, Clone, Copy)]
enum Items<'a> {
    Live,
    /// Live, and not stamped by this sweep.
    Unseen(&'a str),
    All,
}

/// What [`DynamoRecordStore::for_items`] does with each page of items.
trait AsyncPage {
    fn page(
        &mut self,
        items: Vec<Item>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

impl<F, Fut> AsyncPage for F
where
    F: FnMut(Vec<Item>) -> Fut + Send,
    Fut: std::future::Future<Output = Result<(), StoreError>> + Send,
{
    fn page(
        &mut self,
        items: Vec<Item>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self(items)
    }
}

/// For counts: no items come back.
struct NoPage;

impl AsyncPage for NoPage {
    async fn page(&mut self, _items: Vec<Item>) -> Result<(), StoreError> {
        Ok(())
    }
}

fn backoff(settings: &WriteSettings, attempt: u32) -> Duration {
    let step = settings
        .base_delay
        .saturating_mul(1u32 << attempt.min(16))
        .min(settings.max_delay);
    let half = step / 2;
    half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64))
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

/// Streams, connections and events in one table (`pk`, `sk`).
#[derive(Debug, Clone)]
pub struct DynamoStateStore {
    client: Client,
    table: String,
    meter: Arc<CapacityMeter>,
}

/// Item kinds in the state table, by key.
pub mod state_keys {
    use crate::stream::{ConnectionKey, StreamKey};

    pub const STATE_SK: &str = "state";

    pub fn stream_pk(stream: &StreamKey) -> String {
        format!("stream#{}", stream.encode())
    }

    pub fn connection_pk(connection: &ConnectionKey) -> String {
        format!("connection#{}", connection.encode())
    }

    pub fn events_pk(connection: Option<&ConnectionKey>) -> String {
        match connection {
            Some(c) => format!("events#{}", c.encode()),
            None => "events#unmatched".to_owned(),
        }
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            meter: Arc::default(),
        }
    }

    /// Sums this store's consumed capacity into `meter` (shared with the records store, say).
    pub fn with_meter(mut self, meter: Arc<CapacityMeter>) -> Self {
        self.meter = meter;
        self
    }

    pub fn meter(&self) -> &Arc<CapacityMeter> {
        &self.meter
    }

    /// An UpdateItem on the stream's state item.
    fn update_stream(
        &self,
        stream: &StreamKey,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::stream_key(stream)))
    }

    /// An UpdateItem that sets `assignments` (and the stream's own fields) on its state item.
    fn set_on_stream(
        &self,
        stream: &StreamKey,
        assignments: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let mut request = self
            .update_stream(stream)
            .update_expression(format!("SET {IDENTITY_SET}, {assignments}"));
        for (name, value) in Self::identity_values(stream) {
            request = request.expression_attribute_values(name, value);
        }
        request
    }

    fn stream_key(stream: &StreamKey) -> Item {
        HashMap::from([
            (attr::PK.to_owned(), s(state_keys::stream_pk(stream))),
            (attr::SK.to_owned(), s(state_keys::STATE_SK)),
        ])
    }

    /// The stream's own fields, set on every write so the item is complete whoever creates it.
    fn identity_values(stream: &StreamKey) -> [(&'static str, AttributeValue); 4] {
        [
            (":pck", s(&stream.provider_config_key)),
            (":conn", s(&stream.connection_id)),
            (":model", s(&stream.model)),
            (":variant", s(&stream.variant)),
        ]
    }
}

const IDENTITY_SET: &str =
    "provider_config_key = :pck, connection_id = :conn, model = :model, variant = :variant";

/// The stream's last sweep result, set by [`with_last_sweep`]'s values.
const LAST_SWEEP_SET: &str = "last_sweep_at = :at, swept_nango_count = :nango, \
    swept_live_count = :live, swept_tombstoned = :tomb, swept_outcome = :outcome";

fn with_last_sweep(
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    result: &SweepResult,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    request
        .expression_attribute_values(":at", s(&result.finished_at))
        .expression_attribute_values(":nango", n(result.nango_count))
        .expression_attribute_values(":live", n(result.live_count))
        .expression_attribute_values(":tomb", n(result.tombstoned))
        .expression_attribute_values(":outcome", s(result.outcome.as_str()))
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

fn stream_state(item: &Item) -> StreamState {
    StreamState {
        cursor: get_s(item, "cursor"),
        sync_name: get_s(item, "sync_name"),
        last_sync_at: get_s(item, "last_sync_at"),
        last_webhook_at: get_s(item, "last_webhook_at"),
        records_written: get_n(item, "records_written"),
        records_rejected: get_n(item, "records_rejected"),
        outcome: SyncOutcome::parse(&get_s(item, "status").unwrap_or_default()),
        error: get_s(item, "error"),
        sweep: get_s(item, "sweep_id").map(|id| SweepState {
            id,
            cursor: get_s(item, "sweep_cursor"),
            started_at: get_s(item, "sweep_started_at").unwrap_or_default(),
            nango_count: get_n(item, "sweep_nango_count"),
        }),
        last_sweep: get_s(item, "last_sweep_at").map(|finished_at| SweepResult {
            finished_at,
            nango_count: get_n(item, "swept_nango_count"),
            live_count: get_n(item, "swept_live_count"),
            tombstoned: get_n(item, "swept_tombstoned"),
            outcome: SweepOutcome::parse(&get_s(item, "swept_outcome").unwrap_or_default()),
        }),
        held: get_map(item, "held"),
        nango: get_map(item, "nango_notes").unwrap_or_default(),
        connection_deleted_at: get_s(item, "connection_deleted_at"),
    }
}

/// A native map attribute read back into its type; what cannot be read (a hand edit) is unset.
fn get_map<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| serde_dynamo::from_attribute_value(v.clone()).ok())
}

fn to_map(value: &impl serde::Serialize) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).expect("bookkeeping converts to a DynamoDB map")
}

/// A conditional update's failed check, as a conflict; anything else as itself.
fn conflict_or<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
    stream: &StreamKey,
    expected: Option<&str>,
) -> StoreError {
    if e.code() == Some("ConditionalCheckFailedException") {
        StoreError::CursorConflict {
            stream: stream.encode(),
            expected: expected.map(str::to_owned),
        }
    } else {
        store_error(e)
    }
}

impl StateStore for DynamoStateStore {
    async fn get_stream(&self, stream: &StreamKey) -> Result<Option<StreamState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::stream_key(stream)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.meter.read(Read::GetItem, out.consumed_capacity());
        Ok(out.item.as_ref().map(stream_state))
    }

    async fn list_streams(&self) -> Result<Vec<(StreamKey, StreamState)>, StoreError> {
        let mut streams = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#pk, :prefix)")
                .expression_attribute_names("#pk", attr::PK)
                .expression_attribute_values(":prefix", s("stream#"))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            self.meter.read(Read::Scan, page.consumed_capacity());
            for item in page.items.unwrap_or_default() {
                let key = get_s(&item, attr::PK)
                    .and_then(|pk| pk.strip_prefix("stream#").map(str::to_owned))
                    .and_then(|encoded| StreamKey::decode(&encoded).ok());
                match key {
                    Some(key) => streams.push((key, stream_state(&item))),
                    None => tracing::warn!("state item with an undecodable stream key skipped"),
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(streams),
            }
        }
    }

    async fn advance_cursor(
        &self,
        stream: &StreamKey,
        from: Option<&str>,
        to: &str,
        written: u64,
        rejected: &[RejectedRecord],
    ) -> Result<(), StoreError> {
        let mut set = format!("{IDENTITY_SET}, #cursor = :to");
        let mut request = self
            .update_stream(stream)
            .expression_attribute_names("#cursor", "cursor")
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":written", n(written))
            .expression_attribute_values(":rejected", n(rejected.len() as u64));
        for (name, value) in Self::identity_values(stream) {
            request = request.expression_attribute_values(name, value);
        }
        if let Some(last) = rejected.last() {
            set.push_str(", last_rejected_id = :rid, last_rejected_reason = :rreason");
            request = request
                .expression_attribute_values(":rid", s(&last.id))
                .expression_attribute_values(":rreason", s(&last.reason));
        }
        request = match from {
            Some(from) => request
                .condition_expression("#cursor = :from")
                .expression_attribute_values(":from", s(from)),
            None => request.condition_expression("attribute_not_exists(#cursor)"),
        };
        let result = request
            .update_expression(format!(
                "SET {set} ADD records_written :written, records_rejected :rejected"
            ))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(StoreError::CursorConflict {
                    stream: stream.encode(),
                    expected: from.map(str::to_owned),
                })
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn report_sync(&self, stream: &StreamKey, report: &SyncReport) -> Result<(), StoreError> {
        let mut set = format!("{IDENTITY_SET}, sync_name = :sync, #status = :status");
        let mut remove = Vec::new();
        let mut request = self
            .update_stream(stream)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sync", s(&report.sync_name));
        for (name, value) in Self::identity_values(stream) {
            request = request.expression_attribute_values(name, value);
        }
        match &report.error {
            None => {
                set.push_str(", last_sync_at = :at");
                remove.push("#error");
                request = request
                    .expression_attribute_values(":status", s("ok"))
                    .expression_attribute_values(":at", s(&report.at))
                    .expression_attribute_names("#error", "error");
            }
            Some(message) => {
                set.push_str(", #error = :error, error_at = :at");
                request = request
                    .expression_attribute_values(":status", s("error"))
                    .expression_attribute_values(":error", s(message))
                    .expression_attribute_values(":at", s(&report.at))
                    .expression_attribute_names("#error", "error");
            }
        }
        if let Some(at) = &report.webhook_at {
            set.push_str(", last_webhook_at = :webhook");
            request = request.expression_attribute_values(":webhook", s(at));
        }
        let mut expression = format!("SET {set}");
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        request
            .update_expression(expression)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn begin_sweep(&self, stream: &StreamKey, sweep: &SweepState) -> Result<(), StoreError> {
        let mut request = self.update_stream(stream)
            .update_expression(format!(
                "SET {IDENTITY_SET}, sweep_id = :id, sweep_started_at = :at, sweep_nango_count = :n REMOVE sweep_cursor"
            ))
            .condition_expression("attribute_not_exists(sweep_id) OR sweep_id = :id")
            .expression_attribute_values(":id", s(&sweep.id))
            .expression_attribute_values(":at", s(&sweep.started_at))
            .expression_attribute_values(":n", n(sweep.nango_count));
        for (name, value) in Self::identity_values(stream) {
            request = request.expression_attribute_values(name, value);
        }
        request
            .send()
            .await
            .map_err(|e| conflict_or(e, stream, None))?;
        Ok(())
    }

    async fn advance_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<(), StoreError> {
        let request = self
            .update_stream(stream)
            .update_expression("SET sweep_cursor = :to")
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":to", s(to));
        let request = match from {
            Some(from) => request
                .condition_expression("sweep_id = :id AND sweep_cursor = :from")
                .expression_attribute_values(":from", s(from)),
            None => request
                .condition_expression("sweep_id = :id AND attribute_not_exists(sweep_cursor)"),
        };
        request
            .send()
            .await
            .map_err(|e| conflict_or(e, stream, from))?;
        Ok(())
    }

    async fn end_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        result: &SweepResult,
    ) -> Result<(), StoreError> {
        let ended = self
            .update_stream(stream)
            .update_expression(
                format!("SET {LAST_SWEEP_SET} REMOVE sweep_id, sweep_cursor, sweep_started_at, sweep_nango_count"),
            )
            .condition_expression("sweep_id = :id")
            .expression_attribute_values(":id", s(id));
        let ended = with_last_sweep(ended, result).send().await;
        match ended {
            // Already ended (a redelivered job): nothing to do.
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            other => other.map(|_| ()).map_err(store_error),
        }
    }

    async fn set_nango_notes(
        &self,
        stream: &StreamKey,
        notes: &NangoNotes,
    ) -> Result<(), StoreError> {
        self.set_on_stream(stream, "nango_notes = :notes")
            .expression_attribute_values(":notes", to_map(notes))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn hold_sweep(&self, stream: &StreamKey, held: &HeldSweep) -> Result<(), StoreError> {
        self.set_on_stream(stream, "held = :held, held_sweep_id = :id")
            .expression_attribute_values(":held", to_map(held))
            .expression_attribute_values(":id", s(&held.sweep_id))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn release_hold(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        result: &SweepResult,
    ) -> Result<bool, StoreError> {
        let request = self
            .update_stream(stream)
            .update_expression(format!("SET {LAST_SWEEP_SET} REMOVE held, held_sweep_id"))
            .condition_expression("held_sweep_id = :id")
            .expression_attribute_values(":id", s(sweep_id));
        match with_last_sweep(request, result).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn set_connection_deleted(
        &self,
        stream: &StreamKey,
        at: Option<&str>,
    ) -> Result<(), StoreError> {
        let request = match at {
            Some(at) => self
                .set_on_stream(stream, "connection_deleted_at = :at")
                .expression_attribute_values(":at", s(at)),
            None => self
                .update_stream(stream)
                .update_expression("REMOVE connection_deleted_at"),
        };
        request.send().await.map_err(store_error)?;
        Ok(())
    }

    async fn reset_cursor(&self, stream: &StreamKey) -> Result<(), StoreError> {
        self.update_stream(stream)
            .update_expression("REMOVE #cursor")
            .expression_attribute_names("#cursor", "cursor")
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn upsert_connection(
        &self,
        connection: &ConnectionKey,
        event: &ConnectionEvent,
    ) -> Result<(), StoreError> {
        let mut item: Item = HashMap::from([
            (
                attr::PK.to_owned(),
                s(state_keys::connection_pk(connection)),
            ),
            (attr::SK.to_owned(), s(state_keys::STATE_SK)),
            (
                "provider_config_key".to_owned(),
                s(&connection.provider_config_key),
            ),
            ("connection_id".to_owned(), s(&connection.connection_id)),
            (
                "status".to_owned(),
                s(if event.success { "ok" } else { "error" }),
            ),
            ("last_event_at".to_owned(), s(&event.received_at)),
            ("success".to_owned(), AttributeValue::Bool(event.success)),
        ]);
        if let Some(at) = event.deleted_at() {
            item.insert("deleted_at".to_owned(), s(at));
        }
        for (name, value) in [
            ("operation", &event.operation),
            ("provider", &event.provider),
            ("auth_mode", &event.auth_mode),
            ("environment", &event.environment),
            ("error", &event.error),
        ] {
            if let Some(v) = value {
                item.insert(name.to_owned(), s(v));
            }
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Webhooks can arrive out of order: an older event never overwrites a newer one.
            .condition_expression("attribute_not_exists(last_event_at) OR last_event_at <= :at")
            .expression_attribute_values(":at", s(&event.received_at))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if e.code() == Some("ConditionalCheckFailedException") {
                    Ok(())
                } else {
                    Err(store_error(e))
                }
            })
    }

    async fn store_event(&self, event: &StoredEvent) -> Result<(), StoreError> {
        let mut item: Item = HashMap::from([
            (
                attr::PK.to_owned(),
                s(state_keys::events_pk(event.connection.as_ref())),
            ),
            (
                attr::SK.to_owned(),
                s(format!("{}#{}", event.received_at, event.id)),
            ),
            ("kind".to_owned(), s(&event.kind)),
            ("received_at".to_owned(), s(&event.received_at)),
            ("body".to_owned(), s(&event.body)),
        ]);
        if let Some(c) = &event.connection {
            item.insert("provider_config_key".to_owned(), s(&c.provider_config_key));
            item.insert("connection_id".to_owned(), s(&c.connection_id));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
