//! What a job and a stream's sync came to: the data the worker hands its events and metrics.

use crate::core::state::SweepOutcome;

/// How a sync run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncEnd {
    /// Nango has no more pages after the stored cursor.
    UpToDate,
    /// The deadline came first; a continuation must pick up from the stored cursor.
    DeadlineReached,
    /// Up to date, but the drift check after it needs a job of its own: a reconcile's sync does
    /// not wait for a count, and a count that ran out of time goes on where it stopped.
    CheckGoesOn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSummary {
    pub end: SyncEnd,
    pub pages: u64,
    pub written: u64,
    /// Of the records Nango served, those it says were added or updated (by `last_action`),
    /// whether written or left alone as [`SyncSummary::unchanged`].
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
    pub pruned: u64,
    pub rejected: u64,
    /// Records a re-read found stored as served and left alone (`core::reread`).
    pub unchanged: u64,
    pub cursor: Option<String>,
    /// The cursor the run started from.
    pub cursor_before: Option<String>,
    /// Whether the run moved the cursor on from where it started.
    pub cursor_moved: bool,
    /// The `last_modified_at` of the last record written: the newest, as Nango serves records
    /// in `last_modified_at` order.
    pub newest_modified_at: Option<String>,
    /// The sweep that followed the sync, if one ran (its `deleted` counts the records it marked
    /// deleted).
    pub sweep: Option<Box<SyncSummary>>,
    /// How that sweep ended, once it read the whole stream (applied, held, abandoned...).
    pub sweep_outcome: Option<SweepOutcome>,
}

/// What became of one message that did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Synced(SyncSummary),
    /// The deadline came first, or the drift check goes on: a continuation was enqueued.
    Continued(SyncSummary),
    /// Retrying cannot help (connection gone, key refused, cursor rejected): recorded on the stream.
    StreamInError(String),
    SyncFailureRecorded,
    ConnectionUpdated,
    EventStored,
    /// A write ended (succeeded, failed or unknown), now or before (a duplicate).
    WriteEnded {
        write: Box<crate::core::writes::stored::StoredWrite>,
        /// A sync of the write's record's stream was queued to read it back.
        read_back: bool,
        /// This job ended it (not a duplicate request answered with an earlier end).
        first: bool,
    },
    /// A write is not at an end and its message is done: an async action running in Nango
    /// (its result comes later), or a write accepted again and queued anew.
    WriteWaiting {
        id: String,
        state: crate::core::writes::state::WriteState,
    },
    /// No write is running the async action asked about: it ended already, or the application
    /// started the action itself.
    ActionNotAwaited,
    /// A sync was enqueued for each stream; `new_streams` of them had never been seen, and the
    /// result of each async action still running was asked for (`actions_checked`).
    Reconciled {
        streams: usize,
        new_streams: usize,
        actions_checked: usize,
    },
}

/// The outcome's name, as metrics and logs write it.
pub fn outcome_name(outcome: &JobOutcome) -> &'static str {
    match outcome {
        JobOutcome::Synced(_) => "synced",
        JobOutcome::Continued(_) => "continued",
        JobOutcome::StreamInError(_) => "stream_in_error",
        JobOutcome::SyncFailureRecorded => "sync_failure_recorded",
        JobOutcome::ConnectionUpdated => "connection_updated",
        JobOutcome::EventStored => "event_stored",
        JobOutcome::WriteEnded { .. } => "write_ended",
        JobOutcome::WriteWaiting { .. } => "write_waiting",
        JobOutcome::ActionNotAwaited => "action_not_awaited",
        JobOutcome::Reconciled { .. } => "reconciled",
    }
}
