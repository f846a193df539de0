//! The state table: streams (their cursors and bookkeeping), connections and stored events.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use aws_sdk_dynamodb::Client;
use futures_util::stream::{StreamExt, TryStreamExt};

use super::item::{attr, Item};
use super::{get_n, get_s, n, s, store_error, with_retry, CapacityMeter, Read, DEFAULT_RETRY};
use crate::core::clock::{Clock, SystemClock};
use crate::core::seen::{decode_notes, encode_notes, Seen};
use crate::core::state::{
    ConnectionEvent, HeldSweep, LastSyncStatus, LiveChange, NangoNotes, StoredEvent, StreamState,
    SweepOutcome, SweepResult, SweepState, SyncReport,
};
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::core::write::RejectedRecord;
use crate::ports::{StateStore, StoreError};

/// A sweep's notes of a page ([`encode_notes`]).
const SEEN: &str = "seen";
/// The table's TTL attribute (epoch seconds): a sweep's notes expire.
const EXPIRES_AT: &str = "expires_at";
/// How long a sweep's notes are kept when the sweep never ends (they are deleted when it does):
/// an operator may decide on a held sweep until then.
const NOTES_KEPT_DAYS: i64 = 30;
/// The most a note item holds, well under DynamoDB's 400 KB.
const NOTES_PER_ITEM_BYTES: usize = 300 * 1024;

/// `seen` in runs that each encode to at most [`NOTES_PER_ITEM_BYTES`].
fn in_parts(seen: &[Seen]) -> impl Iterator<Item = &[Seen]> {
    let mut rest = seen;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut n, mut bytes) = (0, 0);
        while n < rest.len() && (n == 0 || bytes + rest[n].encoded_len() <= NOTES_PER_ITEM_BYTES) {
            bytes += rest[n].encoded_len();
            n += 1;
        }
        let (part, tail) = rest.split_at(n);
        rest = tail;
        Some(part)
    })
}

/// How a partition's items are read.
#[derive(Debug, Clone, Copy)]
enum PartitionRead {
    /// Consistently, every attribute.
    Whole,
    /// Eventually consistent, the keys alone (to delete them).
    Keys,
}

/// Streams, connections and events in one table (`pk`, `sk`).
#[derive(Debug, Clone)]
pub struct DynamoStateStore {
    pub(super) client: Client,
    pub(super) table: String,
    pub(super) meter: Arc<CapacityMeter>,
}

/// Item kinds in the state table, by key.
pub mod state_keys {
    use crate::core::stream::{ConnectionKey, StreamKey};

    pub const STATE_SK: &str = "state";

    pub fn stream_pk(stream: &StreamKey) -> String {
        format!("stream#{}", stream.encode())
    }

    pub fn connection_pk(connection: &ConnectionKey) -> String {
        format!("connection#{}", connection.encode())
    }

    /// A sweep's notes of what Nango served (`core::seen`).
    pub fn seen_pk(stream: &StreamKey, sweep_id: &str) -> String {
        format!("seen#{}#{sweep_id}", stream.encode())
    }

    /// A write to the provider (`core::writes`), its item's sort key being [`STATE_SK`].
    pub fn write_pk(id: &str) -> String {
        format!("{WRITE_PREFIX}{id}")
    }

    pub const WRITE_PREFIX: &str = "write#";

    /// The partition that indexes the writes running an async action: one item per action id
    /// (the sort key), naming its write.
    pub const RUNNING_ACTIONS_PK: &str = "running-actions";

    pub fn events_pk(connection: Option<&ConnectionKey>) -> String {
        match connection {
            Some(c) => format!("events#{}", c.encode()),
            None => "events#unmatched".to_owned(),
        }
    }
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client: with_retry(client, &DEFAULT_RETRY),
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

    /// The item with this key, read consistently.
    pub(super) async fn get_consistent(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.meter.read(Read::GetItem, out.consumed_capacity());
        Ok(out.item)
    }

    /// Puts `item`, whatever the table holds under its key.
    pub(super) async fn put(&self, item: Item) -> Result<(), StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.meter.write(out.consumed_capacity.as_slice());
        Ok(())
    }

    /// Deletes the item with this key, if there is one.
    pub(super) async fn delete(&self, key: Item) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.meter.write(out.consumed_capacity.as_slice());
        Ok(())
    }

    /// Every item of the partition `pk`, handed to `each`, page by page, as `read` says.
    async fn query_partition(
        &self,
        pk: &str,
        read: PartitionRead,
        mut each: impl FnMut(Item) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", attr::PK)
                .expression_attribute_values(":pk", s(pk))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take());
            query = match read {
                PartitionRead::Whole => query.consistent_read(true),
                PartitionRead::Keys => query
                    .expression_attribute_names("#sk", attr::SK)
                    .projection_expression("#pk, #sk"),
            };
            let page = query.send().await.map_err(store_error)?;
            self.meter.read(Read::Query, page.consumed_capacity());
            for item in page.items.unwrap_or_default() {
                each(item)?;
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(()),
            }
        }
    }

    /// Every item whose `pk` begins with `prefix`, handed to `each`: a Scan, page by page (for
    /// listings; eventually consistent).
    pub(super) async fn scan_prefix(
        &self,
        prefix: &str,
        mut each: impl FnMut(Item) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#pk, :prefix)")
                .expression_attribute_names("#pk", attr::PK)
                .expression_attribute_values(":prefix", s(prefix))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            self.meter.read(Read::Scan, page.consumed_capacity());
            for item in page.items.unwrap_or_default() {
                each(item)?;
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(()),
            }
        }
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

/// Counts a gap in the stream's [`LiveChange`] (`:one` bound to 1).
const GAP_ADD: &str = "live_change_gaps :one";

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

fn stream_state(item: &Item) -> StreamState {
    StreamState {
        cursor: get_s(item, "cursor"),
        sync_name: get_s(item, "sync_name"),
        last_sync_at: get_s(item, "last_sync_at"),
        last_webhook_at: get_s(item, "last_webhook_at"),
        records_written: get_n(item, "records_written"),
        records_rejected: get_n(item, "records_rejected"),
        outcome: LastSyncStatus::parse(&get_s(item, "status").unwrap_or_default()),
        error: get_s(item, "error"),
        sweep: get_s(item, "sweep_id").map(|id| SweepState {
            id,
            cursor: get_s(item, "sweep_cursor"),
            started_at: get_s(item, "sweep_started_at").unwrap_or_default(),
            nango_count: get_n(item, "sweep_nango_count"),
            notes_pages: get_n::<u8>(item, "sweep_notes") == 1,
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
        live_change: LiveChange {
            net: get_n(item, "live_change"),
            gaps: get_n(item, "live_change_gaps"),
        },
        live_from: get_s(item, "live_from"),
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
fn conflict_or<E, R>(e: SdkError<E, R>, stream: &StreamKey, expected: Option<&str>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
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
        let item = self.get_consistent(Self::stream_key(stream)).await?;
        Ok(item.as_ref().map(stream_state))
    }

    async fn list_streams(&self) -> Result<Vec<(StreamKey, StreamState)>, StoreError> {
        let mut streams = Vec::new();
        self.scan_prefix("stream#", |item| {
            let key = get_s(&item, attr::PK)
                .and_then(|pk| pk.strip_prefix("stream#").map(str::to_owned))
                .and_then(|encoded| StreamKey::decode(&encoded).ok());
            match key {
                Some(key) => streams.push((key, stream_state(&item))),
                None => tracing::warn!("state item with an undecodable stream key skipped"),
            }
            Ok(())
        })
        .await?;
        Ok(streams)
    }

    async fn advance_cursor(
        &self,
        stream: &StreamKey,
        from: Option<&str>,
        to: &str,
        written: u64,
        rejected: &[RejectedRecord],
        live_change: Option<i64>,
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
        let tally = match live_change {
            Some(change) => {
                request = request.expression_attribute_values(":change", n(change));
                "live_change :change"
            }
            None => {
                request = request.expression_attribute_values(":one", n(1));
                GAP_ADD
            }
        };
        let result = request
            .update_expression(format!(
                "SET {set} ADD records_written :written, records_rejected :rejected, {tally}"
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
                "SET {IDENTITY_SET}, sweep_id = :id, sweep_started_at = :at, sweep_nango_count = :n, sweep_notes = :notes REMOVE sweep_cursor"
            ))
            .condition_expression("attribute_not_exists(sweep_id) OR sweep_id = :id")
            .expression_attribute_values(":id", s(&sweep.id))
            .expression_attribute_values(":at", s(&sweep.started_at))
            .expression_attribute_values(":n", n(sweep.nango_count))
            .expression_attribute_values(":notes", n(u8::from(sweep.notes_pages)));
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
                format!("SET {LAST_SWEEP_SET} REMOVE sweep_id, sweep_cursor, sweep_started_at, sweep_nango_count, sweep_notes ADD {GAP_ADD}"),
            )
            .condition_expression("sweep_id = :id")
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":one", n(1));
        let ended = with_last_sweep(ended, result).send().await;
        match ended {
            // Already ended (a redelivered job): nothing to do.
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            other => other.map(|_| ()).map_err(store_error),
        }
    }

    /// One item per page (`seen#<stream>#<sweep>`, keyed by the page), split in parts that
    /// fit an item, each expiring after [`NOTES_KEPT_DAYS`] by the table's TTL.
    async fn note_seen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        page: &str,
        seen: &[Seen],
    ) -> Result<(), StoreError> {
        let expires = SystemClock.now().unix_timestamp() + NOTES_KEPT_DAYS * 86_400;
        for (part, notes) in in_parts(seen).enumerate() {
            let item = HashMap::from([
                (
                    attr::PK.to_owned(),
                    s(state_keys::seen_pk(stream, sweep_id)),
                ),
                (attr::SK.to_owned(), s(format!("{page}#{part}"))),
                (
                    SEEN.to_owned(),
                    AttributeValue::B(encode_notes(notes).into()),
                ),
                (EXPIRES_AT.to_owned(), n(expires)),
            ]);
            self.put(item).await?;
        }
        Ok(())
    }

    /// A consistent Query of the sweep's notes: a note just written must be read, or its
    /// records would look unseen.
    async fn seen_in_sweep(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        each: &mut (dyn FnMut(Seen) + Send),
    ) -> Result<(), StoreError> {
        let pk = state_keys::seen_pk(stream, sweep_id);
        self.query_partition(&pk, PartitionRead::Whole, |item| {
            let bytes = match item.get(SEEN) {
                Some(AttributeValue::B(bytes)) => bytes.as_ref(),
                _ => &[],
            };
            let notes = decode_notes(bytes).map_err(StoreError::permanent)?;
            notes.into_iter().for_each(&mut *each);
            Ok(())
        })
        .await
    }

    /// Deletes the sweep's note items (a write unit per KB of each, as writing them cost): kept,
    /// they would be read by every listing of the streams (a Scan of this table) until they
    /// expire.
    async fn forget_seen(&self, stream: &StreamKey, sweep_id: &str) -> Result<(), StoreError> {
        let pk = state_keys::seen_pk(stream, sweep_id);
        let mut keys: Vec<Item> = Vec::new();
        self.query_partition(&pk, PartitionRead::Keys, |key| {
            keys.push(key);
            Ok(())
        })
        .await?;
        let deletes = keys.into_iter().map(|key| self.delete(key));
        futures_util::stream::iter(deletes)
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
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
            .update_expression(format!(
                "SET {LAST_SWEEP_SET} REMOVE held, held_sweep_id ADD {GAP_ADD}"
            ))
            .condition_expression("held_sweep_id = :id")
            .expression_attribute_values(":id", s(sweep_id))
            .expression_attribute_values(":one", n(1));
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
                .set_on_stream(
                    stream,
                    &format!("connection_deleted_at = :at ADD {GAP_ADD}"),
                )
                .expression_attribute_values(":at", s(at))
                .expression_attribute_values(":one", n(1)),
            None => self
                .update_stream(stream)
                .update_expression("REMOVE connection_deleted_at"),
        };
        request.send().await.map_err(store_error)?;
        Ok(())
    }

    async fn mark_up_to_date(&self, stream: &StreamKey, cursor: &str) -> Result<(), StoreError> {
        let marked = self
            .update_stream(stream)
            .update_expression("SET live_from = :cursor")
            .condition_expression("#cursor = :cursor")
            .expression_attribute_names("#cursor", "cursor")
            .expression_attribute_values(":cursor", s(cursor))
            .send()
            .await;
        match marked {
            // The cursor moved since: that run's end is no longer where the stream is.
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            other => other.map(|_| ()).map_err(store_error),
        }
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
        self.put(item).await
    }
}
