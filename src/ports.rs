//! Ports: the small traits the core talks through. Adapters implement them.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::core::record::{NangoRecord, RecordsPage};
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::retry::Class;

/// Why the queue did not take a message. The webhook answers 503 so that Nango retries.
#[derive(Debug, thiserror::Error)]
#[error("queue refused the message: {0}")]
pub struct QueueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// One message ready for the FIFO queue: a job message, its group and its deduplication id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
}

/// Where verified webhooks go: a FIFO job queue.
pub trait JobQueue: Send + Sync {
    /// Sends the messages in order; returns only once every one of them was accepted.
    fn send(
        &self,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl<Q: JobQueue> JobQueue for &Q {
    fn send(
        &self,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        (**self).send(messages)
    }
}

/// A message taken off a queue, with the handle that acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub group_id: Option<String>,
}

/// Receives of a message before it moves to the dead-letter queue: template.yaml's
/// `MaxReceiveCount` default, which the embedded queue and the local stack use too.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// The consuming side of a job queue: SQS FIFO semantics (per-group order, redelivery of what
/// is not deleted, a dead-letter queue after too many receives).
pub trait JobConsumer: Send + Sync {
    /// Up to `max` (1..=10) messages, waiting at most `wait` for the first. A group whose earlier
    /// message is still in flight yields nothing.
    fn receive(
        &self,
        max: usize,
        wait: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<ReceivedMessage>, QueueError>> + Send;

    /// The message was handled: it is gone for good.
    fn delete(&self, receipt_handle: &str) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The message failed: it is delivered again later (SQS: once its visibility timeout ends).
    fn release(&self, receipt_handle: &str) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Why records could not be fetched. [`SourceError::is_retryable`] is the one place that decides
/// whether a job is tried again or its stream is marked in error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// 429s, 5xx, timeouts, resets or truncated bodies outlasted the retries.
    #[error("Nango records API unavailable after {attempts} attempts: {message}")]
    Transient { attempts: u32, message: String },
    /// The next attempt (after a 429's wait, or a backoff) would start after the deadline: the
    /// job continues in a later invocation rather than waiting out the clock.
    #[error("Nango asked to wait {wait:?}, past this invocation's deadline")]
    Deferred { wait: std::time::Duration },
    /// Retrying cannot help; the message says what to do.
    #[error("{reason}: {message}")]
    Permanent {
        reason: PermanentReason,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermanentReason {
    /// 400 unknown_connection: the connection is gone from Nango.
    UnknownConnection,
    /// 401: the API key is wrong.
    Unauthorized,
    /// 403: the API key lacks `environment:records:read`.
    Forbidden,
    /// Nango keeps failing on the stored cursor (it answers 500 for an undecodable one).
    CursorRejected,
    /// Any other 4xx: the request itself is wrong.
    BadRequest,
}

impl std::fmt::Display for PermanentReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownConnection => "connection unknown to Nango",
            Self::Unauthorized => "Nango API key refused",
            Self::Forbidden => "Nango API key lacks the records scope",
            Self::CursorRejected => "stored cursor rejected by Nango",
            Self::BadRequest => "request refused by Nango",
        })
    }
}

impl SourceError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Deferred { .. })
    }
}

/// Reads a stream's records page by page.
pub trait RecordSource: Send + Sync {
    /// The page after `cursor` (from the start when `None`). No wait between attempts runs past
    /// `until`: [`SourceError::Deferred`] instead.
    fn fetch_page(
        &self,
        stream: &StreamKey,
        cursor: Option<&str>,
        until: Option<std::time::Instant>,
    ) -> impl Future<Output = Result<RecordsPage, SourceError>> + Send;

    /// The requests made so far by this source, for a job's metrics (the difference between two
    /// readings). A source that does not count reports zeros.
    fn tally(&self) -> RequestTally {
        RequestTally::default()
    }
}

/// Requests made to Nango, counted since the source was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTally {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Of those, the ones answered 429.
    pub rate_limited: u64,
    /// Time spent waiting out 429s.
    pub waited_ms: u64,
}

impl RequestTally {
    /// What was counted between `earlier` and this reading.
    pub fn since(self, earlier: RequestTally) -> RequestTally {
        RequestTally {
            requests: self.requests.saturating_sub(earlier.requests),
            rate_limited: self.rate_limited.saturating_sub(earlier.rate_limited),
            waited_ms: self.waited_ms.saturating_sub(earlier.waited_ms),
        }
    }
}

/// Where a completed sync job's event goes (on Lambda: EventBridge). A failed publish is the
/// publisher's error to report; it never fails the sync.
pub trait EventPublisher: Send + Sync + std::fmt::Debug {
    fn publish<'a>(
        &'a self,
        event: &'a crate::core::events::StreamEvent,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>>;
}

/// Where each job's figures go once it ends, and each webhook's answer (on Lambda: CloudWatch
/// metrics, as EMF log lines).
pub trait MetricsSink: Send + Sync + std::fmt::Debug {
    fn job_done(&self, job: &crate::core::metrics::JobMetrics);
    fn webhook_answered(&self, answer: crate::core::metrics::WebhookAnswer);
}

/// Why a store call failed. Each adapter decides in one place whether its error is transient
/// (throttling, unavailability, a busy file) or permanent, and keeps its own error as the cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying: throttling or unavailability that outlasted the adapter's retries.
    #[error("store unavailable: {message}")]
    Transient {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The stream's cursor was not where this run left it: another writer moved it.
    #[error("cursor of {stream} moved under this run (expected {expected:?})")]
    CursorConflict {
        stream: String,
        expected: Option<String>,
    },
    #[error("store refused the write: {message}")]
    Permanent {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
}

/// An adapter's own error, kept as a [`StoreError`]'s cause (shared, so the error stays cheap to
/// clone).
#[derive(Debug, Clone)]
pub struct Cause(pub std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl StoreError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            cause: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
            cause: None,
        }
    }

    /// An adapter error, classified by the adapter, kept as the cause.
    pub fn caused_by(
        class: Class,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let (message, cause) = (message.into(), Some(Cause(std::sync::Arc::new(cause))));
        match class {
            Class::Transient => Self::Transient { message, cause },
            Class::Permanent => Self::Permanent { message, cause },
        }
    }

    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Permanent { .. })
    }
}

/// Equal when they say the same; causes are not compared.
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Transient { message: a, .. }, Self::Transient { message: b, .. })
            | (Self::Permanent { message: a, .. }, Self::Permanent { message: b, .. }) => a == b,
            (
                Self::CursorConflict {
                    stream: a,
                    expected: x,
                },
                Self::CursorConflict {
                    stream: b,
                    expected: y,
                },
            ) => a == b && x == y,
            _ => false,
        }
    }
}

impl Eq for StoreError {}

/// A record that could not be stored as-is or compressed: reported, never dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRecord {
    pub id: String,
    pub reason: String,
}

/// What one page write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub upserted: u64,
    pub deleted: u64,
    pub compressed: u64,
    pub pruned: u64,
    pub rejected: Vec<RejectedRecord>,
}

impl WriteReport {
    pub fn written(&self) -> u64 {
        self.upserted + self.deleted + self.pruned
    }
}

/// Where records go.
pub trait RecordStore: Send + Sync {
    /// Writes a page durably: returns only once every record is stored or reported rejected.
    /// `seen_in` names the sweep this page belongs to: every record written is stamped with it.
    fn write_page(
        &self,
        stream: &StreamKey,
        records: &[NangoRecord],
        seen_in: Option<&str>,
    ) -> impl Future<Output = Result<WriteReport, StoreError>> + Send;

    /// How many of the stream's stored records are live (not deleted), as Nango's `recordCount`
    /// counts them: pruned records count, deleted ones do not.
    fn count_live(
        &self,
        stream: &StreamKey,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// [`RecordStore::count_live`] in pieces, for partitions too large to count within one
    /// invocation: counts on from `from` (a previous piece's key and count) and, once `until`
    /// has passed, stops after the page in hand. Stores that count at once (SQLite, memory)
    /// always finish, and a whole count needs no `from`.
    fn count_live_until(
        &self,
        stream: &StreamKey,
        from: Option<(&str, u64)>,
        until: Option<std::time::Instant>,
    ) -> impl Future<Output = Result<LiveCount, StoreError>> + Send {
        let _ = (from, until);
        async move { Ok(LiveCount::Done(self.count_live(stream).await?)) }
    }

    /// How many live records of the stream sweep `sweep_id` did not stamp: what
    /// [`RecordStore::tombstone_unseen`] would mark deleted.
    fn count_unseen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Marks deleted (at `at`) every live record of the stream that sweep `sweep_id` did not
    /// stamp: the records Nango no longer has. Returns how many.
    fn tombstone_unseen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        at: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Marks deleted every live record of the stream, or removes every record (tombstones
    /// too): for a connection Nango deleted, or an operator's `forget`. Returns how many.
    fn remove_stream(
        &self,
        stream: &StreamKey,
        removal: Removal<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// What [`RecordStore::remove_stream`] does to each live record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal<'a> {
    /// Mark it deleted at `at` (its payload kept), `deleted_by` saying why.
    Tombstone { at: &'a str, by: &'a str },
    /// Remove every item of the stream, tombstones included.
    Purge,
}

/// How a stream's last sync went: the stored part of its status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncOutcome {
    #[default]
    Ok,
    Error,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Self {
        if text == "error" {
            Self::Error
        } else {
            Self::Ok
        }
    }
}

/// A stream's status as operators see it ([`StreamState::status`]): derived from the sync's
/// outcome, a held sweep, what Nango said of its sync, and its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStatus {
    Ok,
    /// The last sync failed; `error` says why and what to do.
    Error,
    /// A sweep would delete more than the guard allows: nothing was deleted, an operator decides.
    Held,
    /// Nango no longer keeps the stream's records (retention, or the sync is gone); the copy is kept.
    NangoPurged,
    /// Nango deleted the connection; reconciles no longer sync its streams.
    ConnectionDeleted,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Held => "held",
            Self::NangoPurged => "nango_purged",
            Self::ConnectionDeleted => "connection_deleted",
        }
    }
}

impl std::fmt::Display for StreamStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stream's bookkeeping: its cursor and how its syncs went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    pub cursor: Option<String>,
    pub sync_name: Option<String>,
    pub last_sync_at: Option<String>,
    pub last_webhook_at: Option<String>,
    pub records_written: u64,
    pub records_rejected: u64,
    /// How the last sync went (stored as `status`).
    pub outcome: SyncOutcome,
    pub error: Option<String>,
    /// A sweep under way, if any.
    pub sweep: Option<SweepState>,
    /// How the last finished sweep ended.
    pub last_sweep: Option<SweepResult>,
    /// A finished sweep whose deletes wait for an operator.
    pub held: Option<HeldSweep>,
    /// What the worker last learned of the stream's sync from Nango.
    pub nango: NangoNotes,
    /// When Nango said the stream's connection was deleted (or an operator forgot it).
    pub connection_deleted_at: Option<String>,
}

impl StreamState {
    /// The status operators see: what needs them first.
    pub fn status(&self) -> StreamStatus {
        if self.connection_deleted_at.is_some() {
            StreamStatus::ConnectionDeleted
        } else if self.held.is_some() {
            StreamStatus::Held
        } else if self.nango.purged.is_some() {
            StreamStatus::NangoPurged
        } else if self.outcome == SyncOutcome::Error {
            StreamStatus::Error
        } else {
            StreamStatus::Ok
        }
    }
}

/// A sweep: a full re-read of a stream, with its own cursor, that stamps every record it sees so
/// that, at its end, the records Nango no longer has can be marked deleted. It runs when the
/// stream's live count drifts from Nango's `recordCount` (after a cache wipe, Nango reports no
/// deletes), and it can span several invocations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepState {
    pub id: String,
    pub cursor: Option<String>,
    pub started_at: String,
    /// Nango's `recordCount` that started the sweep.
    pub nango_count: u64,
}

/// How a sweep ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepOutcome {
    /// Its deletes were within the guard's bound and applied.
    #[default]
    Applied,
    /// Its deletes exceeded the guard's bound: held for an operator.
    Held,
    /// An operator applied the held deletes (`nango-sync sweep --confirm`).
    Confirmed,
    /// An operator dropped the held deletes and kept the copy (`--discard`).
    Discarded,
    /// Nango started a pass, or stopped vouching for its cache, before the end: nothing applied.
    Abandoned,
    /// Held, then Nango's count came back to ours: nothing applied.
    Resolved,
}

impl SweepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Discarded => "discarded",
            Self::Abandoned => "abandoned",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "held" => Self::Held,
            "confirmed" => Self::Confirmed,
            "discarded" => Self::Discarded,
            "abandoned" => Self::Abandoned,
            "resolved" => Self::Resolved,
            _ => Self::Applied,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepResult {
    pub finished_at: String,
    /// Nango's `recordCount` that started the sweep.
    pub nango_count: u64,
    /// Our live count once the sweep ended.
    pub live_count: u64,
    /// Records it marked deleted (0 unless applied or confirmed).
    pub tombstoned: u64,
    pub outcome: SweepOutcome,
}

/// A sweep whose deletes the guard held: the numbers an operator decides on. The records the
/// sweep saw keep its stamp, so `--confirm` applies exactly what was held, if nothing moved since.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSweep {
    pub sweep_id: String,
    /// Live records the sweep did not see in Nango: what it would mark deleted.
    pub would_delete: u64,
    /// Our live records when it was held.
    pub live_count: u64,
    /// Nango's `recordCount` then.
    pub nango_count: u64,
    /// The sync's last successful run, as far as known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    pub held_at: String,
    pub reason: String,
}

/// A live count, whole or stopped at a deadline ([`RecordStore::count_live_until`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveCount {
    Done(u64),
    /// `counted` live records up to and including the record with key `after`.
    Partial {
        after: String,
        counted: u64,
    },
}

/// What the worker learned of a stream's sync from Nango (`/sync/status`, sync webhooks), kept
/// so that a reconcile can judge Nango's counts without asking twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NangoNotes {
    /// The sync's last successful run seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// Set while Nango no longer keeps the stream's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged: Option<NangoPurge>,
    /// When the latest sync webhook said a checkpointed pass goes on (`checkpoints.to` set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_open_since: Option<String>,
    /// The last count check, kept while nothing changes so the next needs no partition read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<CountCheck>,
    /// A live count that stopped at an invocation's deadline, for the next check to go on with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counting: Option<CountProgress>,
}

/// How far a live count in pieces got. It goes on only while nothing is written to the stream
/// (a write could land behind it); otherwise the next check starts over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountProgress {
    /// The key of the last record counted.
    pub after: String,
    pub counted: u64,
    /// The stream's `records_written` when the count began.
    pub records_written: u64,
    pub started_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NangoPurge {
    pub at: String,
    pub reason: String,
}

/// A count check that needs no sweep: Nango's count agreed with ours, or is not to be trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountCheck {
    pub nango_count: u64,
    pub live_count: u64,
    /// The stream's `records_written` then: any write since moves it.
    pub records_written: u64,
    pub at: String,
    /// False when Nango's count was 0 while its records API still served live records.
    pub trusted: bool,
}

/// The result of a stream's sync (or of its failure), recorded on its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub sync_name: String,
    pub at: String,
    pub webhook_at: Option<String>,
    /// `None`: status ok. `Some(message)`: status error with that message.
    pub error: Option<String>,
}

/// An auth webhook, as kept on the connection's item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEvent {
    pub operation: Option<String>,
    pub success: bool,
    pub provider: Option<String>,
    pub auth_mode: Option<String>,
    pub environment: Option<String>,
    pub error: Option<String>,
    pub received_at: String,
}

impl ConnectionEvent {
    /// When the connection was deleted: a successful `deletion` event (Nango's, or `forget`).
    pub fn deleted_at(&self) -> Option<&str> {
        let deleted = self.success && self.operation.as_deref() == Some("deletion");
        deleted.then_some(self.received_at.as_str())
    }
}

/// Streams, connections and application events: the state table.
pub trait StateStore: Send + Sync {
    fn get_stream(
        &self,
        stream: &StreamKey,
    ) -> impl Future<Output = Result<Option<StreamState>, StoreError>> + Send;

    /// Moves the cursor from `from` (the value this run read) to `to`, adding the page's counts.
    /// Fails with [`StoreError::CursorConflict`] when the stored cursor is not `from`.
    fn advance_cursor(
        &self,
        stream: &StreamKey,
        from: Option<&str>,
        to: &str,
        written: u64,
        rejected: &[RejectedRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records how a sync ended (status ok or error, times, sync name).
    fn report_sync(
        &self,
        stream: &StreamKey,
        report: &SyncReport,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every stream with an item, and its state.
    fn list_streams(
        &self,
    ) -> impl Future<Output = Result<Vec<(StreamKey, StreamState)>, StoreError>> + Send;

    /// Starts a sweep from the beginning of the stream (its `cursor` is ignored).
    fn begin_sweep(
        &self,
        stream: &StreamKey,
        sweep: &SweepState,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves sweep `id`'s cursor from `from` to `to`; [`StoreError::CursorConflict`] otherwise.
    fn advance_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        from: Option<&str>,
        to: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends sweep `id` and records its result.
    fn end_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        result: &SweepResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets the cursor back to the start so the next sync re-reads the stream.
    fn reset_cursor(
        &self,
        stream: &StreamKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps what the worker learned of the stream's sync from Nango.
    fn set_nango_notes(
        &self,
        stream: &StreamKey,
        notes: &NangoNotes,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Holds a finished sweep's deletes for an operator (the stream's status becomes `held`).
    fn hold_sweep(
        &self,
        stream: &StreamKey,
        held: &HeldSweep,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends the hold of sweep `sweep_id`, recording `result` as the stream's last sweep. Returns
    /// false, changing nothing, when that sweep is not the one held.
    fn release_hold(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        result: &SweepResult,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Marks the stream's connection deleted at `at`, or (`None`) not deleted.
    fn set_connection_deleted(
        &self,
        stream: &StreamKey,
        at: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn upsert_connection(
        &self,
        connection: &ConnectionKey,
        event: &ConnectionEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps a forward / async_action / unknown webhook for the application. `id` makes the
    /// write idempotent across redeliveries.
    fn store_event(
        &self,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A webhook kept for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub kind: String,
    pub connection: Option<ConnectionKey>,
    pub received_at: String,
    pub id: String,
    /// The verified webhook body, verbatim.
    pub body: String,
}

/// A stream Nango knows of, found without a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredStream {
    pub stream: StreamKey,
    pub sync_name: String,
    /// What `/sync/status` says of the stream's sync.
    pub sync: NangoSync,
}

/// What Nango's `GET /sync/status` says of one stream's sync (contract §6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NangoSync {
    /// `recordCount` for the model, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_count: Option<u64>,
    /// `status`: the sync as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// `latestExecutionStatus`, when reported: how the latest run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_execution: Option<RunStatus>,
    /// `finishedAt`: when the latest run ended (successful or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Whether `checkpoint` is set (a checkpointed pass under way); `None` when not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
}

/// A sync's (or a run's) status as `/sync/status` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Success,
    Error,
    Paused,
    Stopped,
    #[serde(other)]
    Other,
}

impl RunStatus {
    pub fn parse(text: &str) -> Self {
        match text {
            "RUNNING" => Self::Running,
            "SUCCESS" => Self::Success,
            "ERROR" => Self::Error,
            "PAUSED" => Self::Paused,
            "STOPPED" => Self::Stopped,
            _ => Self::Other,
        }
    }
}

/// Lists every stream Nango syncs (its connections, then each connection's syncs and models).
pub trait StreamDiscovery: Send + Sync {
    fn discover(&self) -> impl Future<Output = Result<Vec<DiscoveredStream>, SourceError>> + Send;

    /// What `/sync/status` says now of one stream's sync; `None` when the connection's syncs no
    /// longer include the stream.
    fn sync_of(
        &self,
        stream: &StreamKey,
    ) -> impl Future<Output = Result<Option<NangoSync>, SourceError>> + Send;
}
