//! The records table: one item per (stream, record id).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnConsumedCapacity, Select};
use aws_sdk_dynamodb::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::batch_write::BatchWriter;
use super::gate::WriteGate;
use super::item::{self, attr, Encoded, Item, Partition, Request};
use super::wire;
use super::{get_s, s, store_error, with_retry, CapacityMeter, Read, DEFAULT_RETRY};
use crate::core::record::NangoRecord;
use crate::core::seen::{Stored, Version};
use crate::core::state::LiveCount;
use crate::core::stream::StreamKey;
use crate::core::write::{plan_page, with_stored_payload, DeleteMode, RecordWrite, Removal};
use crate::core::write::{RejectedRecord, WriteReport};
use crate::core::writes::stored::PendingWrite;
use crate::ports::{RecordStore, StoreError};
use crate::retry::RetryPolicy;

/// BatchWriteItem's limit.
pub const BATCH_SIZE: usize = 25;

/// BatchGetItem's limit.
const BATCH_GET_SIZE: usize = 100;

/// How many batches run at once, how calls retry, how deletes are kept.
#[derive(Debug, Clone)]
pub struct WriteSettings {
    /// At most this many BatchWriteItem calls in flight; throttling halves it, clean calls grow
    /// it back (see [`WriteGate`]).
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// What deleting a record means: a tombstone, or the item removed.
    pub delete_mode: DeleteMode,
}

impl Default for WriteSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            retry: DEFAULT_RETRY,
            delete_mode: DeleteMode::Tombstone,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DynamoRecordStore {
    client: Client,
    writer: Arc<BatchWriter>,
    table: String,
    settings: WriteSettings,
    meter: Arc<CapacityMeter>,
    gate: Arc<WriteGate>,
}

impl DynamoRecordStore {
    pub fn new(client: Client, table: impl Into<String>, settings: WriteSettings) -> Self {
        Self {
            writer: Arc::new(BatchWriter::new(&client, settings.retry)),
            client: with_retry(client, &settings.retry),
            table: table.into(),
            gate: Arc::new(WriteGate::new(settings.concurrency)),
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

    /// The records table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The stream's items `which` selects, a Query page at a time: `each` gets every page's
    /// items (none when `count_only`). Returns how many matched.
    async fn for_items(
        &self,
        stream: &StreamKey,
        which: Items,
        count_only: bool,
        each: impl AsyncPage,
    ) -> Result<u64, StoreError> {
        let (total, _) = self
            .for_items_from(stream, which, count_only, each, None, None)
            .await?;
        Ok(total)
    }

    /// [`Self::for_items`] from after the record with key `after`, stopping after the page in
    /// hand once `until` has passed. Returns how many matched, and the last key read if it
    /// stopped before the end.
    async fn for_items_from(
        &self,
        stream: &StreamKey,
        which: Items,
        count_only: bool,
        mut each: impl AsyncPage,
        after: Option<&str>,
        until: Option<std::time::Instant>,
    ) -> Result<(u64, Option<String>), StoreError> {
        let mut total = 0u64;
        let mut start: Option<Item> = after.map(|id| item::record_key(stream, id));
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", attr::PK)
                .expression_attribute_values(":pk", s(stream.encode()))
                .consistent_read(!matches!(which, Items::Versions))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take());
            query = match which {
                Items::Live => query
                    .filter_expression("attribute_not_exists(#deleted)")
                    .expression_attribute_names("#deleted", attr::DELETED_AT),
                Items::All => query,
                Items::Versions => {
                    query = query.projection_expression(Projection::VERSION.expression);
                    for (name, attribute) in Projection::VERSION.names {
                        query = query.expression_attribute_names(*name, *attribute);
                    }
                    query
                }
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
                Some(key) if !key.is_empty() => {
                    let stop = until.is_some_and(|until| std::time::Instant::now() >= until);
                    match get_s(&key, attr::SK) {
                        // Only a key it can go on from: without one, it reads on to the end.
                        Some(after) if stop => return Ok((total, Some(after))),
                        _ => start = Some(key),
                    }
                }
                _ => return Ok((total, None)),
            }
        }
    }

    /// Applies `removal` to the stream's items `which` selects. Returns how many.
    async fn remove_items(
        &self,
        stream: &StreamKey,
        which: Items,
        removal: Removal<'_>,
    ) -> Result<u64, StoreError> {
        let partition = &Partition::of(stream);
        let page = |items: Vec<Item>| async move {
            let requests = items
                .iter()
                .map(|found| self.removal_request(partition, found, removal))
                .collect::<Result<Vec<_>, _>>()?;
            self.write_all(requests.into_iter()).await
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
                    item::decode_record(&item).map_err(|e| StoreError::permanent(e.to_string()))?;
                out.insert(id, record);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(out),
            }
        }
    }

    /// Every request, in BatchWriteItem chunks, several in flight.
    /// Chunks are taken from `requests` as there is room in flight; the requests move into them
    /// (a deep copy of every item would cost as much as building it).
    async fn write_all(
        &self,
        mut requests: impl Iterator<Item = Request> + Send,
    ) -> Result<(), StoreError> {
        let chunks = std::iter::from_fn(|| {
            let chunk: Vec<Request> = requests.by_ref().take(BATCH_SIZE).collect();
            (!chunk.is_empty()).then_some(chunk)
        });
        stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk))
            // The gate decides how many of these calls are in flight.
            .buffer_unordered(self.settings.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// The write that applies `removal` to the stored record `found`: its item removed, or
    /// marked deleted (`deleted_by` saying why).
    fn removal_request(
        &self,
        partition: &Partition,
        found: &Item,
        removal: Removal<'_>,
    ) -> Result<Request, StoreError> {
        let id = get_s(found, attr::SK).unwrap_or_default();
        let Removal::Tombstone { at, by } = removal else {
            return Ok(item::delete_request(partition, &id));
        };
        let unreadable = |e: String| StoreError::permanent(format!("record {id}: {e}"));
        let mut object = item::decode_record(found).map_err(|e| unreadable(e.to_string()))?;
        crate::core::record::mark_deleted(&mut object, at);
        let record = NangoRecord::from_object(object).map_err(|e| unreadable(e.to_string()))?;
        match item::put_request(partition, &record, &[(attr::DELETED_BY, by)]) {
            Encoded::Native(request) | Encoded::Compressed(request) => Ok(request),
            // It fitted before; the metadata change cannot grow it past the allowance.
            Encoded::TooLarge(reason) => Err(unreadable(reason)),
        }
    }

    /// One BatchWriteItem chunk, until every request is processed. A failed call was already
    /// retried by the writer (by the same policy); what it returns unprocessed is retried here,
    /// for as long as the rounds keep writing some of it: sustained throttling slows the write
    /// (the gate lowers the calls in flight) rather than failing it. Only rounds in a row that
    /// write nothing count against the policy's attempts.
    ///
    /// The call's body is written here from the requests' JSON (see [`wire`](super::wire)), and
    /// sent without the SDK (see [`batch_write`](super::batch_write)).
    async fn write_chunk(&self, mut requests: Vec<Request>) -> Result<(), StoreError> {
        let retry = &self.settings.retry;
        let mut rounds = 0;
        let mut stalled = 0;
        loop {
            let sent = requests.len();
            let body = batch_body(&self.table, &requests);
            let answer = self.writer.send(&self.table, body, &self.gate).await?;
            self.meter.wrote(answer.units);
            if answer.unprocessed.is_empty() {
                self.gate.clean();
                return Ok(());
            }
            let left: HashSet<&str> = answer
                .unprocessed
                .iter()
                .flatten()
                .map(String::as_str)
                .collect();
            requests.retain(|r| left.contains(r.id.as_str()));
            // Every request handed back must be found again, or it would go unwritten.
            if requests.len() != answer.unprocessed.len() {
                return Err(StoreError::transient(format!(
                    "DynamoDB handed back {} unprocessed requests, {} of them found in the call",
                    answer.unprocessed.len(),
                    requests.len()
                )));
            }
            self.gate.throttled();
            rounds += 1;
            stalled = if requests.len() < sent {
                0
            } else {
                stalled + 1
            };
            if !retry.allows_another(stalled) {
                return Err(StoreError::transient(format!(
                    "{} items still unprocessed after {stalled} rounds that wrote none of them",
                    requests.len()
                )));
            }
            tracing::debug!(left = requests.len(), rounds, "unprocessed items; retrying");
            // A round that wrote something waits the least: the gate sets the pace then.
            tokio::time::sleep(retry.backoff(stalled)).await;
        }
    }

    /// The calls in flight now, and the fewest throttling has allowed so far.
    pub fn write_concurrency(&self) -> (usize, usize) {
        (self.gate.limit(), self.gate.lowest())
    }

    /// Which of `ids` the stream holds live (stored, without `deleted_at`): read, consistently,
    /// before a page's deletes are written, so that the page can say which records it took out
    /// of the live count. Deletes are a small share of a page: one BatchGetItem per 100 (each
    /// item read costs a unit per 4 KB of it, whatever the projection).
    async fn live_among(
        &self,
        stream: &StreamKey,
        ids: &[&str],
    ) -> Result<BTreeSet<String>, StoreError> {
        let found = self.get_items(stream, ids, Some(Projection::LIVE)).await?;
        Ok(found
            .iter()
            .filter(|item| !item.contains_key(attr::DELETED_AT))
            .filter_map(|item| get_s(item, attr::SK))
            .collect())
    }

    /// The stored items of `ids` (those that exist), read consistently by BatchGetItem, 100
    /// keys a call, with only `projection`'s attributes when one is given.
    async fn get_items(
        &self,
        stream: &StreamKey,
        ids: &[&str],
        projection: Option<Projection>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for chunk in ids.chunks(BATCH_GET_SIZE) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|id| item::record_key(stream, id))
                .collect();
            let mut stalled = 0;
            while !keys.is_empty() {
                let sent = keys.len();
                let mut wanted = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true);
                if let Some(projection) = projection {
                    wanted = wanted.projection_expression(projection.expression);
                    for (name, attribute) in projection.names {
                        wanted = wanted.expression_attribute_names(*name, *attribute);
                    }
                }
                let wanted = wanted
                    .build()
                    .map_err(|e| StoreError::permanent(format!("batch get: {e}")))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, wanted)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(store_error)?;
                for consumed in out.consumed_capacity() {
                    self.meter.read(Read::GetItem, Some(consumed));
                }
                let left = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                items.extend(
                    out.responses
                        .and_then(|mut r| r.remove(&self.table))
                        .unwrap_or_default(),
                );
                stalled = if left.len() < sent { 0 } else { stalled + 1 };
                if !left.is_empty() {
                    // Throttled in part: back off before the rest, as the writes do.
                    self.gate.throttled();
                    if !self.settings.retry.allows_another(stalled) {
                        return Err(StoreError::transient(format!(
                            "{} keys still unread after {stalled} rounds that read none of them",
                            left.len()
                        )));
                    }
                    tokio::time::sleep(self.settings.retry.backoff(stalled)).await;
                }
                keys = left;
            }
        }
        Ok(items)
    }

    /// A record whose payload Nango pruned, written whole: the stored payload (a consistent
    /// GetItem) under the record's metadata, or the record as served when none is stored. Rare:
    /// a record untouched for Nango's 30 days, then deleted; or one stored deleted that Nango
    /// serves live again (undeleted, then pruned before it was read).
    async fn write_merging_payload(
        &self,
        stream: &StreamKey,
        record: &NangoRecord,
    ) -> Result<Option<RejectedRecord>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item::record_key(stream, &record.id)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.meter.read(Read::GetItem, found.consumed_capacity());
        let stored = found
            .item
            .as_ref()
            .and_then(|i| item::decode_record(i).ok());
        let merged = stored.map(|object| with_stored_payload(&object, record));
        let record = merged.as_ref().unwrap_or(record);
        self.put_one(stream, record).await
    }

    /// One record put on its own; reported rejected when it is too large to keep.
    async fn put_one(
        &self,
        stream: &StreamKey,
        record: &NangoRecord,
    ) -> Result<Option<RejectedRecord>, StoreError> {
        match item::put_request(&Partition::of(stream), record, &[]) {
            Encoded::Native(request) | Encoded::Compressed(request) => {
                self.write_chunk(vec![request]).await.map(|()| None)
            }
            Encoded::TooLarge(reason) => Ok(Some(RejectedRecord {
                id: record.id.clone(),
                reason,
            })),
        }
    }

    /// A pruned record: on a live item, keep the stored payload and move only the bookkeeping
    /// on. A deleted item (or none) takes [`Self::write_merging_payload`].
    async fn write_pruned(
        &self,
        stream: &StreamKey,
        record: &NangoRecord,
    ) -> Result<Option<RejectedRecord>, StoreError> {
        let meta = &record.metadata;
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::record_key(stream, &record.id)))
            .update_expression("SET #c = :c, #m = :m, #p = :p")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#deleted)")
            .expression_attribute_names("#c", attr::CURSOR)
            .expression_attribute_names("#m", attr::LAST_MODIFIED_AT)
            .expression_attribute_names("#p", attr::PRUNED_AT)
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#deleted", attr::DELETED_AT)
            .expression_attribute_values(":c", AttributeValue::S(meta.cursor.clone()))
            .expression_attribute_values(":m", AttributeValue::S(meta.last_modified_at.clone()))
            .expression_attribute_values(
                ":p",
                AttributeValue::S(meta.pruned_at.clone().unwrap_or_default()),
            )
            .send()
            .await;
        match update {
            Ok(_) => Ok(None),
            // Stored deleted, or never seen: the payload kept, if any, under Nango's metadata.
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                self.write_merging_payload(stream, record).await
            }
            Err(e) => Err(store_error(e)),
        }
    }
}

/// Which attributes a read returns: a ProjectionExpression and its names.
#[derive(Debug, Clone, Copy)]
struct Projection {
    expression: &'static str,
    names: &'static [(&'static str, &'static str)],
}

impl Projection {
    /// Whether a record is live.
    const LIVE: Self = Self {
        expression: "#sk, #deleted",
        names: &[("#sk", attr::SK), ("#deleted", attr::DELETED_AT)],
    };
    /// What a sweep compares ([`Stored`]).
    const VERSION: Self = Self {
        expression: "#sk, #cursor, #digest, #deleted",
        names: &[
            ("#sk", attr::SK),
            ("#cursor", attr::CURSOR),
            ("#digest", attr::DIGEST),
            ("#deleted", attr::DELETED_AT),
        ],
    };
}

/// A stored item as a sweep compares it.
fn stored_version(item: &Item) -> Stored {
    let deleted = item.contains_key(attr::DELETED_AT);
    Stored {
        id: get_s(item, attr::SK).unwrap_or_default(),
        version: Version::of(&get_s(item, attr::CURSOR).unwrap_or_default(), deleted),
        content: match item.get(attr::DIGEST) {
            Some(AttributeValue::N(n)) => n.parse().ok().map(Version),
            _ => None,
        },
        live: !deleted,
    }
}

/// A BatchWriteItem call's body for `requests` on `table`.
fn batch_body(table: &str, requests: &[Request]) -> bytes::Bytes {
    let size = requests.iter().map(|r| r.json.len() + 1).sum::<usize>() + table.len() + 64;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(br#"{"RequestItems":{"#);
    wire::write_str(&mut body, table);
    body.extend_from_slice(b":[");
    for (i, request) in requests.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&request.json);
    }
    body.extend_from_slice(br#"]},"ReturnConsumedCapacity":"TOTAL"}"#);
    body.into()
}

/// A pending write as the record's item keeps it: a map of `id` and `state`.
fn pending_attribute(mark: &PendingWrite) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("id".to_owned(), s(&mark.id)),
        ("state".to_owned(), s(mark.state.as_str())),
    ]))
}

impl DynamoRecordStore {
    /// The write shown on the stored record `id` of the stream, if any (read consistently).
    pub async fn pending_write(
        &self,
        stream: &StreamKey,
        id: &str,
    ) -> Result<Option<PendingWrite>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item::record_key(stream, id)))
            .consistent_read(true)
            .projection_expression("#pending")
            .expression_attribute_names("#pending", attr::PENDING_WRITE)
            .send()
            .await
            .map_err(store_error)?;
        let Some(AttributeValue::M(mark)) =
            out.item.and_then(|mut i| i.remove(attr::PENDING_WRITE))
        else {
            return Ok(None);
        };
        let text = |name: &str| match mark.get(name) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        };
        let state = text("state").and_then(|s| crate::core::writes::state::WriteState::parse(&s));
        Ok(text("id")
            .zip(state)
            .map(|(id, state)| PendingWrite { id, state }))
    }
}

impl RecordStore for DynamoRecordStore {
    async fn mark_pending_write(
        &self,
        stream: &StreamKey,
        id: &str,
        mark: &PendingWrite,
    ) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::record_key(stream, id)))
            // Only on a stored record: a write that creates one has nothing to show it on.
            .condition_expression("attribute_exists(#pk)")
            .update_expression("SET #pending = :pending")
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#pending", attr::PENDING_WRITE)
            .expression_attribute_values(":pending", pending_attribute(mark))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match update {
            Ok(out) => {
                self.meter.write(out.consumed_capacity.as_slice());
                Ok(true)
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    #[tracing::instrument(skip_all, fields(stream = %stream.encode(), records = records.len()))]
    async fn write_page(
        &self,
        stream: &StreamKey,
        records: &[NangoRecord],
    ) -> Result<WriteReport, StoreError> {
        // One decision per id (a batch takes one request per key).
        let plan = plan_page(records, self.settings.delete_mode);
        let deletes: Vec<&str> = plan.deletes_to_report().into_iter().collect();
        let no_longer_live = if deletes.is_empty() {
            BTreeSet::new()
        } else {
            self.live_among(stream, &deletes).await?
        };
        let (mut rejected, mut compressed) = (Vec::new(), 0);
        let (mut pruned, mut kept_tombstones) = (Vec::new(), Vec::new());
        let partition = Partition::of(stream);
        // Items are built as their chunk is sent, so that only the chunks in flight are held
        // as items, not the whole page a second time.
        let requests = plan.writes().iter().filter_map(|write| {
            let record = match *write {
                RecordWrite::KeepPayload(record) => {
                    pruned.push(record);
                    return None;
                }
                RecordWrite::TombstoneKeepingPayload(record) => {
                    kept_tombstones.push(record);
                    return None;
                }
                RecordWrite::Remove(record) => {
                    return Some(item::delete_request(&partition, &record.id));
                }
                RecordWrite::Upsert(record) | RecordWrite::Tombstone(record) => record,
            };
            match item::put_request(&partition, record, &[]) {
                Encoded::Native(request) => Some(request),
                Encoded::Compressed(request) => {
                    compressed += 1;
                    Some(request)
                }
                Encoded::TooLarge(reason) => {
                    rejected.push(RejectedRecord {
                        id: record.id.clone(),
                        reason,
                    });
                    None
                }
            }
        });
        self.write_all(requests).await?;
        for record in pruned {
            rejected.extend(self.write_pruned(stream, record).await?);
        }
        for record in kept_tombstones {
            rejected.extend(self.write_merging_payload(stream, record).await?);
        }
        Ok(WriteReport {
            no_longer_live,
            ..plan.report(rejected, compressed)
        })
    }

    /// A Query COUNT of the stream's items without `deleted_at`. It reads the whole partition
    /// (read capacity grows with the stream's size), which is why only reconciles run it, and
    /// only when a count may have changed.
    async fn count_live(&self, stream: &StreamKey) -> Result<u64, StoreError> {
        self.for_items(stream, Items::Live, true, NoPage).await
    }

    /// Reads as [`Self::count_live`] does, in pieces of whole Query pages (1 MB each, about 256
    /// read units) so that a partition too large for one invocation is counted over several.
    async fn count_live_until(
        &self,
        stream: &StreamKey,
        from: Option<(&str, u64)>,
        until: Option<std::time::Instant>,
    ) -> Result<LiveCount, StoreError> {
        let (after, before) = from.map_or((None, 0), |(after, counted)| (Some(after), counted));
        let (counted, stopped) = self
            .for_items_from(stream, Items::Live, true, NoPage, after, until)
            .await?;
        Ok(match stopped {
            None => LiveCount::Done(before + counted),
            Some(after) => LiveCount::Partial {
                after,
                counted: before + counted,
            },
        })
    }

    /// One Query of the partition ([`Items::Versions`]).
    async fn stored_versions(
        &self,
        stream: &StreamKey,
        each: &mut (dyn FnMut(Stored) + Send),
    ) -> Result<(), StoreError> {
        let page = |items: Vec<Item>| {
            items.iter().map(stored_version).for_each(&mut *each);
            std::future::ready(Ok(()))
        };
        self.for_items(stream, Items::Versions, false, page).await?;
        Ok(())
    }

    /// One BatchGetItem: consistent, and charged by each whole item (a projection saves no
    /// read units), so a sync asks this of two or three ids only.
    async fn stored_versions_of(
        &self,
        stream: &StreamKey,
        ids: &[&str],
    ) -> Result<Vec<Stored>, StoreError> {
        let items = self
            .get_items(stream, ids, Some(Projection::VERSION))
            .await?;
        Ok(items.iter().map(stored_version).collect())
    }

    /// A hundred ids at a time: each read consistently (BatchGetItem, whole items: a tombstone
    /// keeps the payload), then marked deleted or removed. Only a hundred items are held at once,
    /// whatever the sweep found.
    async fn remove_unseen(
        &self,
        stream: &StreamKey,
        ids: &[String],
        at: &str,
    ) -> Result<u64, StoreError> {
        let removal = self.settings.delete_mode.sweep_removal(at);
        let partition = &Partition::of(stream);
        let mut count = 0;
        for chunk in ids.chunks(BATCH_GET_SIZE) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let found = self.get_items(stream, &chunk, None).await?;
            let requests = found
                .iter()
                .filter(|found| !found.contains_key(attr::DELETED_AT))
                .map(|found| self.removal_request(partition, found, removal))
                .collect::<Result<Vec<_>, _>>()?;
            count += requests.len() as u64;
            self.write_all(requests.into_iter()).await?;
        }
        Ok(count)
    }

    async fn remove_stream(
        &self,
        stream: &StreamKey,
        removal: Removal<'_>,
    ) -> Result<u64, StoreError> {
        match removal {
            Removal::Tombstone { .. } => self.remove_items(stream, Items::Live, removal).await,
            Removal::Purge => self.remove_items(stream, Items::All, removal).await,
        }
    }
}

/// Which of a stream's items a Query reads, and how.
#[derive(Debug, Clone, Copy)]
enum Items {
    Live,
    All,
    /// All, with only what a sweep compares ([`Projection::VERSION`]), eventually consistent:
    /// half the read units of a consistent read, and a stale answer only makes the sweep fetch
    /// a record again or keep one.
    Versions,
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
