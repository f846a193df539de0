//! Where records and the streams' bookkeeping are kept, and how a store says it failed.

use std::future::Future;

use crate::core::record::NangoRecord;
use crate::core::seen::{Seen, Stored};
use crate::core::state::{
    ConnectionEvent, HeldSweep, LiveCount, NangoNotes, StoredEvent, StreamState, SweepResult,
    SweepState, SyncReport,
};
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::core::write::{RejectedRecord, Removal, WriteReport};
use crate::core::writes::stored::PendingWrite;
use crate::retry::Class;

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

/// Where records go.
pub trait RecordStore: Send + Sync {
    /// Writes a page durably: returns only once every record is stored or reported rejected.
    fn write_page(
        &self,
        stream: &StreamKey,
        records: &[NangoRecord],
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

    /// Every stored record of the stream as a sweep compares it (id, version, live), handed to
    /// `each` as it is read: one read of the partition, in no particular order. Consistency may
    /// be eventual: a sweep's comparison errs only towards fetching a record again or keeping it.
    fn stored_versions(
        &self,
        stream: &StreamKey,
        each: &mut (dyn FnMut(Stored) + Send),
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stored versions of those of `ids` the stream holds, each item read on its own (two
    /// or three ids): what a sync reads of a page to tell a re-read of records the copy holds
    /// from new records (`core::reread`).
    fn stored_versions_of(
        &self,
        stream: &StreamKey,
        ids: &[&str],
    ) -> impl Future<Output = Result<Vec<Stored>, StoreError>> + Send;

    /// A sweep's deletes: each record of `ids` the stream holds live is marked deleted at `at`,
    /// or removed in hard-delete mode ([`crate::core::write::DeleteMode::sweep_removal`]).
    /// Returns how many.
    fn remove_unseen(
        &self,
        stream: &StreamKey,
        ids: &[String],
        at: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Marks deleted every live record of the stream, or removes every record (tombstones
    /// too): for a connection Nango deleted, or an operator's `forget`. Returns how many.
    fn remove_stream(
        &self,
        stream: &StreamKey,
        removal: Removal<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Shows `mark` on the stored record `id` of the stream, beside it (the payload is left as
    /// it is, and the change feed shows no change), until a sync writes the record whole again.
    /// `false`: no such record is stored (a write that creates one), and nothing was written.
    fn mark_pending_write(
        &self,
        stream: &StreamKey,
        id: &str,
        mark: &PendingWrite,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Streams, connections and application events: the state table.
pub trait StateStore: Send + Sync {
    fn get_stream(
        &self,
        stream: &StreamKey,
    ) -> impl Future<Output = Result<Option<StreamState>, StoreError>> + Send;

    /// Moves the cursor from `from` (the value this run read) to `to`, adding the page's counts
    /// in the same write: `live_change` to the stream's
    /// [`LiveChange`](crate::core::state::LiveChange) `net`, or, when the page's change in live
    /// records is not known (`None`), one to its `gaps`.
    /// Fails with [`StoreError::CursorConflict`] when the stored cursor is not `from`.
    fn advance_cursor(
        &self,
        stream: &StreamKey,
        from: Option<&str>,
        to: &str,
        written: u64,
        rejected: &[RejectedRecord],
        live_change: Option<i64>,
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

    /// Ends sweep `id` and records its result. Counts a
    /// [`LiveChange`](crate::core::state::LiveChange) gap (its deletes).
    fn end_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        result: &SweepResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Notes what one page of sweep `sweep_id` served, keyed by `page` (the sweep's cursor the
    /// page was read from, empty for the first): noting a page again replaces its note.
    fn note_seen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        page: &str,
        seen: &[Seen],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Everything sweep `sweep_id` noted, handed to `each` entry by entry (an id noted on two
    /// pages comes twice).
    fn seen_in_sweep(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        each: &mut (dyn FnMut(Seen) + Send),
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lets go of what sweep `sweep_id` noted, once nothing will read it again. A store may
    /// keep the notes until they expire instead (DynamoDB: deleting them would cost as much
    /// write capacity as writing them).
    fn forget_seen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Notes that a sync run ended up to date at `cursor` (the stream's `live_from`), unless the
    /// stream's cursor has moved from it since.
    fn mark_up_to_date(
        &self,
        stream: &StreamKey,
        cursor: &str,
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

    /// Ends the hold of sweep `sweep_id`, recording `result` as the stream's last sweep, and
    /// counts a [`LiveChange`](crate::core::state::LiveChange) gap (an operator's deletes).
    /// Returns false, changing nothing, when that sweep is not the one held.
    fn release_hold(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        result: &SweepResult,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Marks the stream's connection deleted at `at`, or (`None`) not deleted. Marking it counts
    /// a [`LiveChange`](crate::core::state::LiveChange) gap (the connection's records may be
    /// removed with it).
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

/// Implements [`RecordStore`] for an enum of stores by handing every call to the store its
/// variant holds: `forward_record_store!(Store { Store::A { records, .. } => records, ... });`.
/// A method added to the trait fails to compile here until it is forwarded.
#[cfg(feature = "local")]
macro_rules! forward_record_store {
    ($ty:ty { $($variant:pat => $inner:ident),+ $(,)? }) => {
        impl $crate::ports::RecordStore for $ty {
            async fn write_page(
                &self,
                stream: &$crate::core::stream::StreamKey,
                records: &[$crate::core::record::NangoRecord],
            ) -> Result<$crate::core::write::WriteReport, $crate::ports::StoreError> {
                match self { $($variant => $inner.write_page(stream, records).await),+ }
            }

            async fn count_live(
                &self,
                stream: &$crate::core::stream::StreamKey,
            ) -> Result<u64, $crate::ports::StoreError> {
                match self { $($variant => $inner.count_live(stream).await),+ }
            }

            async fn count_live_until(
                &self,
                stream: &$crate::core::stream::StreamKey,
                from: Option<(&str, u64)>,
                until: Option<std::time::Instant>,
            ) -> Result<$crate::core::state::LiveCount, $crate::ports::StoreError> {
                match self { $($variant => $inner.count_live_until(stream, from, until).await),+ }
            }

            async fn stored_versions(
                &self,
                stream: &$crate::core::stream::StreamKey,
                each: &mut (dyn FnMut($crate::core::seen::Stored) + Send),
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.stored_versions(stream, each).await),+ }
            }

            async fn stored_versions_of(
                &self,
                stream: &$crate::core::stream::StreamKey,
                ids: &[&str],
            ) -> Result<Vec<$crate::core::seen::Stored>, $crate::ports::StoreError> {
                match self { $($variant => $inner.stored_versions_of(stream, ids).await),+ }
            }

            async fn remove_unseen(
                &self,
                stream: &$crate::core::stream::StreamKey,
                ids: &[String],
                at: &str,
            ) -> Result<u64, $crate::ports::StoreError> {
                match self { $($variant => $inner.remove_unseen(stream, ids, at).await),+ }
            }

            async fn remove_stream(
                &self,
                stream: &$crate::core::stream::StreamKey,
                removal: $crate::core::write::Removal<'_>,
            ) -> Result<u64, $crate::ports::StoreError> {
                match self { $($variant => $inner.remove_stream(stream, removal).await),+ }
            }

            async fn mark_pending_write(
                &self,
                stream: &$crate::core::stream::StreamKey,
                id: &str,
                mark: &$crate::core::writes::stored::PendingWrite,
            ) -> Result<bool, $crate::ports::StoreError> {
                match self { $($variant => $inner.mark_pending_write(stream, id, mark).await),+ }
            }
        }
    };
}
#[cfg(feature = "local")]
pub(crate) use forward_record_store;

/// Implements [`StateStore`] for an enum of stores, as [`forward_record_store`] does.
#[cfg(feature = "local")]
macro_rules! forward_state_store {
    ($ty:ty { $($variant:pat => $inner:ident),+ $(,)? }) => {
        impl $crate::ports::StateStore for $ty {
            async fn get_stream(
                &self,
                stream: &$crate::core::stream::StreamKey,
            ) -> Result<Option<$crate::core::state::StreamState>, $crate::ports::StoreError> {
                match self { $($variant => $inner.get_stream(stream).await),+ }
            }

            async fn advance_cursor(
                &self,
                stream: &$crate::core::stream::StreamKey,
                from: Option<&str>,
                to: &str,
                written: u64,
                rejected: &[$crate::core::write::RejectedRecord],
                live_change: Option<i64>,
            ) -> Result<(), $crate::ports::StoreError> {
                match self {
                    $($variant => $inner.advance_cursor(stream, from, to, written, rejected, live_change).await),+
                }
            }

            async fn report_sync(
                &self,
                stream: &$crate::core::stream::StreamKey,
                report: &$crate::core::state::SyncReport,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.report_sync(stream, report).await),+ }
            }

            async fn list_streams(
                &self,
            ) -> Result<
                Vec<($crate::core::stream::StreamKey, $crate::core::state::StreamState)>,
                $crate::ports::StoreError,
            > {
                match self { $($variant => $inner.list_streams().await),+ }
            }

            async fn begin_sweep(
                &self,
                stream: &$crate::core::stream::StreamKey,
                sweep: &$crate::core::state::SweepState,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.begin_sweep(stream, sweep).await),+ }
            }

            async fn advance_sweep(
                &self,
                stream: &$crate::core::stream::StreamKey,
                id: &str,
                from: Option<&str>,
                to: &str,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.advance_sweep(stream, id, from, to).await),+ }
            }

            async fn end_sweep(
                &self,
                stream: &$crate::core::stream::StreamKey,
                id: &str,
                result: &$crate::core::state::SweepResult,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.end_sweep(stream, id, result).await),+ }
            }

            async fn note_seen(
                &self,
                stream: &$crate::core::stream::StreamKey,
                sweep_id: &str,
                page: &str,
                seen: &[$crate::core::seen::Seen],
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.note_seen(stream, sweep_id, page, seen).await),+ }
            }

            async fn seen_in_sweep(
                &self,
                stream: &$crate::core::stream::StreamKey,
                sweep_id: &str,
                each: &mut (dyn FnMut($crate::core::seen::Seen) + Send),
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.seen_in_sweep(stream, sweep_id, each).await),+ }
            }

            async fn forget_seen(
                &self,
                stream: &$crate::core::stream::StreamKey,
                sweep_id: &str,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.forget_seen(stream, sweep_id).await),+ }
            }

            async fn mark_up_to_date(
                &self,
                stream: &$crate::core::stream::StreamKey,
                cursor: &str,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.mark_up_to_date(stream, cursor).await),+ }
            }

            async fn reset_cursor(
                &self,
                stream: &$crate::core::stream::StreamKey,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.reset_cursor(stream).await),+ }
            }

            async fn set_nango_notes(
                &self,
                stream: &$crate::core::stream::StreamKey,
                notes: &$crate::core::state::NangoNotes,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.set_nango_notes(stream, notes).await),+ }
            }

            async fn hold_sweep(
                &self,
                stream: &$crate::core::stream::StreamKey,
                held: &$crate::core::state::HeldSweep,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.hold_sweep(stream, held).await),+ }
            }

            async fn release_hold(
                &self,
                stream: &$crate::core::stream::StreamKey,
                sweep_id: &str,
                result: &$crate::core::state::SweepResult,
            ) -> Result<bool, $crate::ports::StoreError> {
                match self { $($variant => $inner.release_hold(stream, sweep_id, result).await),+ }
            }

            async fn set_connection_deleted(
                &self,
                stream: &$crate::core::stream::StreamKey,
                at: Option<&str>,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.set_connection_deleted(stream, at).await),+ }
            }

            async fn upsert_connection(
                &self,
                connection: &$crate::core::stream::ConnectionKey,
                event: &$crate::core::state::ConnectionEvent,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.upsert_connection(connection, event).await),+ }
            }

            async fn store_event(
                &self,
                event: &$crate::core::state::StoredEvent,
            ) -> Result<(), $crate::ports::StoreError> {
                match self { $($variant => $inner.store_event(event).await),+ }
            }
        }
    };
}
#[cfg(feature = "local")]
pub(crate) use forward_state_store;
