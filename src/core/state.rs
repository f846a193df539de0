//! A stream's bookkeeping as the stores keep it: its cursor, how its syncs and sweeps went, what
//! Nango said of it; and the connection events and webhooks kept for applications.

use serde::{Deserialize, Serialize};

use crate::core::stream::ConnectionKey;

/// How a stream's last sync went: the stored part of its status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastSyncStatus {
    #[default]
    Ok,
    Error,
}

impl LastSyncStatus {
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
    /// The net change in live records the stream's pages applied, as far as known.
    #[serde(default)]
    pub live_change: LiveChange,
    /// The cursor at which the last sync run ended up to date: the copy then held the stream as
    /// Nango had it, and the live-change sum follows the runs that start there.
    #[serde(default)]
    pub live_from: Option<String>,
    /// How the last sync went (stored as `status`).
    pub outcome: LastSyncStatus,
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
        } else if self.outcome == LastSyncStatus::Error {
            StreamStatus::Error
        } else {
            StreamStatus::Ok
        }
    }
}

/// The net change in live records a stream's syncs applied, summed page by page as the cursor
/// moved ([`crate::core::live_change`]), and how many writes it could not follow: a page whose
/// metadata did not tell, a read from the stream's start, a sweep's or an operator's deletes, a
/// deleted connection. Between two readings with the same `gaps`, `net` moved by exactly what
/// the syncs applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveChange {
    pub net: i64,
    pub gaps: u64,
}

impl LiveChange {
    /// Adds a page's change, or a gap when it is not known.
    pub fn add(&mut self, change: Option<i64>) {
        match change {
            Some(change) => self.net += change,
            None => self.gaps += 1,
        }
    }

    /// The net change in live records since `earlier`, when every write since was followed.
    pub fn since(self, earlier: LiveChange) -> Option<i64> {
        (self.gaps == earlier.gaps).then(|| self.net - earlier.net)
    }
}

/// A sweep: a full re-read of a stream, with its own cursor, that notes what Nango serves
/// (`core::seen`) so that, at its end, the records the copy missed can be written and those Nango
/// no longer has marked deleted (`core::drift::sweep`). It runs when the stream's live count
/// drifts from Nango's `recordCount` (after a cache wipe, Nango reports no deletes), and it can
/// span several invocations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepState {
    pub id: String,
    pub cursor: Option<String>,
    pub started_at: String,
    /// Nango's `recordCount` that started the sweep.
    pub nango_count: u64,
    /// Every page it read was noted, from the first. False for a sweep a worker of an earlier
    /// release began (it stamped records instead): such a sweep starts over.
    #[serde(default)]
    pub notes_pages: bool,
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
/// and nothing is deleted from it (a write could land behind it); otherwise the next check
/// starts over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountProgress {
    /// The key of the last record counted.
    pub after: String,
    pub counted: u64,
    /// The stream's `records_written` when the count began.
    pub records_written: u64,
    /// The stream's [`LiveChange`] then: a sweep's or an operator's deletes write no record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_change: Option<LiveChange>,
    pub started_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NangoPurge {
    pub at: String,
    pub reason: String,
}

/// A count check that needs no sweep: Nango's count agreed with ours (or kept the offset a
/// finished sweep settled), or is not to be trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountCheck {
    pub nango_count: u64,
    pub live_count: u64,
    /// The stream's `records_written` then: any write since moves it.
    pub records_written: u64,
    pub at: String,
    /// False when Nango's count was 0 while its records API still served live records.
    pub trusted: bool,
    /// The stream's [`LiveChange`] then: the next check needs no count when Nango's count
    /// moved by exactly what was applied since. Absent in checks kept before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_change: Option<LiveChange>,
    /// When the live count was last read rather than worked out: the arithmetic is trusted for
    /// a day at most ([`crate::core::drift`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_at: Option<String>,
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
