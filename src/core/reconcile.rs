//! Reconcile: the scheduled job that brings every stream up to date, and the drift check that may
//! follow a stream's sync. The drift check compares the stream's live count with Nango's
//! `recordCount`; when Nango lost records without reporting them deleted (a cache wipe), a sweep
//! re-reads the stream and marks deleted what Nango no longer has.
//!
//! The copy exists to outlive Nango's cache, so nothing here deletes on Nango's word alone beyond
//! a small bound ([`SweepGuard`]):
//! - no check while Nango is mid-pass: a run under way, or a checkpointed pass not finished;
//! - no check, and status `nango_purged`, once Nango's retention may have purged the stream (no
//!   successful run for 60 days) or the sync is gone from `/sync/status`;
//! - a count of 0 while Nango's records API still serves live records is not trusted;
//! - a sweep's deletes apply only within the guard's bound; beyond it they are held for an
//!   operator (`nango-sync sweep --confirm | --discard`).

use std::collections::{BTreeMap, HashMap};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::core::clock::Clock;
use crate::core::job::{enqueue_syncs, NangoReport, SyncRequest, Trigger};
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::core::sync::{SyncError, SyncSummary};
use crate::ports::{
    CountCheck, CountProgress, DiscoveredStream, HeldSweep, JobQueue, LiveCount, NangoNotes,
    NangoPurge, NangoSync, QueueError, RecordSource, RecordStore, Removal, RunStatus, SourceError,
    StateStore, StoreError, StreamDiscovery, StreamState, SweepOutcome, SweepResult, SweepState,
};

/// Nango hard-deletes a sync's records once it has had no successful run for this long
/// (nango-2026.md, "Sync cache retention").
pub const RETENTION_DAYS: i64 = 60;

/// The bound on what a sweep may delete on Nango's word: at most `max_deletes` records or
/// `max_delete_fraction` of the live copy, whichever is larger; never anything when Nango's
/// count is 0 while the copy holds live records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepGuard {
    pub max_deletes: u64,
    pub max_delete_fraction: f64,
}

impl Default for SweepGuard {
    fn default() -> Self {
        Self {
            max_deletes: 100,
            max_delete_fraction: 0.05,
        }
    }
}

/// Whether a sweep's deletes may apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Apply,
    /// Held for an operator; the reason says why.
    Hold(String),
}

impl SweepGuard {
    /// The most records a sweep may mark deleted in a copy of `live` records.
    pub fn bound(&self, live: u64) -> u64 {
        let share = (live as f64 * self.max_delete_fraction.clamp(0.0, 1.0)).floor() as u64;
        self.max_deletes.max(share)
    }

    pub fn judge(&self, would_delete: u64, live: u64, nango_count: u64) -> Verdict {
        if would_delete == 0 {
            return Verdict::Apply;
        }
        if nango_count == 0 && live > 0 {
            return Verdict::Hold(format!(
                "Nango reports 0 records while the copy holds {live} live ones: a purge \
                 (retention, a disabled sync, emptyCache), not deletes"
            ));
        }
        let bound = self.bound(live);
        if would_delete > bound {
            return Verdict::Hold(format!(
                "would mark deleted {would_delete} of {live} live records, more than the bound \
                 of {bound} (SWEEP_MAX_DELETES, SWEEP_MAX_DELETE_FRACTION)"
            ));
        }
        Verdict::Apply
    }
}

/// Whether Nango's count of a stream can be compared with ours now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Comparable(u64),
    /// Not now; the reason says why.
    Wait(&'static str),
    /// Nango no longer keeps the stream's records: never sweep, keep the copy.
    Purged(String),
}

/// Judges what `/sync/status` said of a stream (`None`: its sync is no longer listed).
/// `last_success_at` is the sync's last successful run as far as known; `pass_open_since` is
/// when a sync webhook said a checkpointed pass was under way.
pub fn readiness(
    sync: Option<&NangoSync>,
    last_success_at: Option<&str>,
    pass_open_since: Option<&str>,
    now: OffsetDateTime,
) -> Readiness {
    let Some(sync) = sync else {
        return Readiness::Purged(
            "the connection's syncs no longer include this stream (a disabled or deleted sync; \
             Nango hard-deletes its records)"
                .into(),
        );
    };
    if let Some(last) = last_success_at {
        if parse_time(last).is_some_and(|t| now - t >= time::Duration::days(RETENTION_DAYS)) {
            return Readiness::Purged(format!(
                "the sync's last successful run was at {last}, {RETENTION_DAYS} days ago or more \
                 (Nango's retention hard-deletes such records)"
            ));
        }
    }
    if sync.status == Some(RunStatus::Running) {
        return Readiness::Wait("a sync run is under way in Nango");
    }
    if pass_open(sync, pass_open_since) {
        return Readiness::Wait(
            "a checkpointed pass is not finished (its deletes come at its end)",
        );
    }
    match sync.record_count {
        Some(count) => Readiness::Comparable(count),
        None => Readiness::Wait("Nango reports no recordCount for the model"),
    }
}

/// A checkpointed pass is under way while `/sync/status` shows a checkpoint, or since the
/// latest sync webhook said so, until a run that left no checkpoint finished after that webhook
/// (which covers a lost last webhook of the pass).
fn pass_open(sync: &NangoSync, since: Option<&str>) -> bool {
    if sync.checkpoint == Some(true) {
        return true;
    }
    let Some(since) = since.and_then(parse_time) else {
        return false;
    };
    let ended_after = sync.checkpoint == Some(false)
        && sync
            .finished_at
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|finished| finished > since);
    !ended_after
}

/// The sync's last successful run: `finishedAt` when the latest run succeeded, else what was
/// known before (an earlier check, a success webhook), whichever is later.
pub fn last_success(sync: Option<&NangoSync>, known: &[Option<&str>]) -> Option<String> {
    let reported = sync.and_then(|s| {
        let succeeded = match s.latest_execution {
            Some(run) => run == RunStatus::Success,
            None => s.status == Some(RunStatus::Success),
        };
        s.finished_at.as_deref().filter(|_| succeeded)
    });
    known
        .iter()
        .copied()
        .chain([reported])
        .flatten()
        .filter_map(|t| parse_time(t).map(|parsed| (parsed, t)))
        .max_by_key(|(parsed, _)| *parsed)
        .map(|(_, t)| t.to_owned())
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Why an operator's decision on a held sweep was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("no stream {0} in the store (see `nango-sync status`)")]
    UnknownStream(String),
    #[error("stream {0} has no held sweep (see `nango-sync status`)")]
    NoHeldSweep(String),
    #[error(
        "stream {stream} changed since its sweep was held (it would delete {held_delete} of \
         {held_live} then, {now_delete} of {now_live} now); nothing done: the next reconcile \
         checks it again"
    )]
    CountsChanged {
        stream: String,
        held_delete: u64,
        held_live: u64,
        now_delete: u64,
        now_live: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an operator decides for a held sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldDecision {
    /// Apply the held deletes, exactly as held.
    Confirm,
    /// Drop them and keep the copy as it is.
    Discard,
}

/// Applies or drops a held sweep. Confirming checks first that the stream still counts what
/// was held (records written since may have lost the sweep's stamp); otherwise nothing changes.
pub async fn decide_held<R: RecordStore, T: StateStore>(
    records: &R,
    state: &T,
    stream: &StreamKey,
    decision: HoldDecision,
    clock: &dyn Clock,
) -> Result<SweepResult, HoldError> {
    let stored = state
        .get_stream(stream)
        .await?
        .ok_or_else(|| HoldError::UnknownStream(stream.encode()))?;
    let held = stored
        .held
        .ok_or_else(|| HoldError::NoHeldSweep(stream.encode()))?;
    let live = records.count_live(stream).await?;
    let at = clock.now_rfc3339();
    let mut result = SweepResult {
        finished_at: at.clone(),
        nango_count: held.nango_count,
        live_count: live,
        tombstoned: 0,
        outcome: SweepOutcome::Discarded,
    };
    if decision == HoldDecision::Confirm {
        let unseen = records.count_unseen(stream, &held.sweep_id).await?;
        if unseen != held.would_delete || live != held.live_count {
            return Err(HoldError::CountsChanged {
                stream: stream.encode(),
                held_delete: held.would_delete,
                held_live: held.live_count,
                now_delete: unseen,
                now_live: live,
            });
        }
        result.tombstoned = records
            .tombstone_unseen(stream, &held.sweep_id, &at)
            .await?;
        result.live_count = live.saturating_sub(result.tombstoned);
        result.outcome = SweepOutcome::Confirmed;
    }
    if !state.release_hold(stream, &held.sweep_id, &result).await? {
        return Err(HoldError::NoHeldSweep(stream.encode()));
    }
    tracing::warn!(
        stream = %stream.encode(),
        outcome = result.outcome.as_str(),
        tombstoned = result.tombstoned,
        "held sweep decided by an operator"
    );
    Ok(result)
}

/// What to do with the records of a connection Nango deleted (`CONNECTION_DELETED`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnectionDeletedMode {
    /// Keep them as they are (the default: the copy outlives Nango).
    #[default]
    Keep,
    /// Mark them deleted (`deleted_by = connection_deleted`).
    Tombstone,
    /// Remove them.
    Purge,
}

/// Retires a connection Nango deleted (or an operator forgot): each of its streams is marked
/// `connection_deleted` at `at` (reconciles stop syncing them) and its live records are kept,
/// marked deleted or removed as `mode` says. Returns each stream with how many records changed.
pub async fn retire_connection<R: RecordStore, T: StateStore>(
    records: &R,
    state: &T,
    connection: &ConnectionKey,
    at: &str,
    mode: ConnectionDeletedMode,
    by: &str,
) -> Result<Vec<(StreamKey, u64)>, StoreError> {
    let removal = match mode {
        ConnectionDeletedMode::Keep => None,
        ConnectionDeletedMode::Tombstone => Some(Removal::Tombstone { at, by }),
        ConnectionDeletedMode::Purge => Some(Removal::Purge),
    };
    let mut retired = Vec::new();
    for stream in streams_of(state, connection).await? {
        state.set_connection_deleted(&stream, Some(at)).await?;
        let removed = match removal {
            Some(removal) => records.remove_stream(&stream, removal).await?,
            None => 0,
        };
        tracing::warn!(stream = %stream.encode(), removed, ?mode, by, "connection deleted: the stream is no longer synced");
        retired.push((stream, removed));
    }
    Ok(retired)
}

/// A connection created again (same id) brings its streams back.
pub async fn restore_connection<T: StateStore>(
    state: &T,
    connection: &ConnectionKey,
) -> Result<(), StoreError> {
    for stream in streams_of(state, connection).await? {
        state.set_connection_deleted(&stream, None).await?;
    }
    Ok(())
}

/// The streams the state table knows of a connection (a Scan: connection events are rare).
async fn streams_of<T: StateStore>(
    state: &T,
    connection: &ConnectionKey,
) -> Result<Vec<StreamKey>, StoreError> {
    Ok(state
        .list_streams()
        .await?
        .into_iter()
        .map(|(stream, _)| stream)
        .filter(|stream| stream.connection() == *connection)
        .collect())
}

/// What a reconcile enqueued: a sync for `streams` streams, `new_streams` of them never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub streams: usize,
    pub new_streams: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not enqueue the reconcile's sync jobs: {0}")]
    Enqueue(#[from] QueueError),
}

/// Enqueues a sync of every stream, each in its own group, so that streams whose webhooks were
/// lost catch up: the streams the state table knows, plus those Nango lists (its connections'
/// syncs and models) that never sent a webhook. Each job carries what `/sync/status` said of its
/// stream, for the drift check. Left alone: streams of a deleted connection, and known streams in
/// error whose connection Nango no longer lists.
pub async fn reconcile<S: StreamDiscovery, T: StateStore, Q: JobQueue>(
    source: &S,
    state: &T,
    queue: &Q,
    received_at: &str,
    clock: &dyn Clock,
) -> Result<Reconciled, ReconcileError> {
    let known = state.list_streams().await?;
    let discovered = match source.discover().await {
        Ok(found) => Some(found),
        Err(error) => {
            tracing::warn!(%error, "reconcile: discovery from Nango failed; syncing the known streams only");
            None
        }
    };
    let listed: HashMap<&StreamKey, &DiscoveredStream> = discovered
        .iter()
        .flatten()
        .map(|d| (&d.stream, d))
        .collect();
    let listed_connections: std::collections::HashSet<_> =
        listed.keys().map(|s| s.connection()).collect();
    let mut requests: BTreeMap<StreamKey, SyncRequest> = BTreeMap::new();
    let mut new_streams = 0;
    for (stream, state) in &known {
        if state.connection_deleted_at.is_some() {
            continue;
        }
        let connection_listed = listed_connections.contains(&stream.connection());
        let gone = discovered.is_some()
            && state.outcome == crate::ports::SyncOutcome::Error
            && !connection_listed;
        if gone {
            continue;
        }
        let mut request =
            SyncRequest::new(stream.clone(), state.sync_name.clone().unwrap_or_default());
        // A connection Nango lists whose syncs no longer include the stream: the drift check
        // learns that Nango dropped it, and keeps the copy.
        if discovered.is_some() && connection_listed && !listed.contains_key(stream) {
            request.nango = Some(NangoReport::NotListed);
        }
        requests.insert(stream.clone(), request);
    }
    let deleted: std::collections::HashSet<&StreamKey> = known
        .iter()
        .filter(|(_, s)| s.connection_deleted_at.is_some())
        .map(|(k, _)| k)
        .collect();
    for found in discovered.iter().flatten() {
        if deleted.contains(&found.stream) {
            continue;
        }
        if !known.iter().any(|(s, _)| s == &found.stream) {
            new_streams += 1;
        }
        let request = requests
            .entry(found.stream.clone())
            .or_insert_with(|| SyncRequest::new(found.stream.clone(), found.sync_name.clone()));
        request.nango = Some(NangoReport::Listed(found.sync.clone()));
    }
    // The ids derive from this reconcile run: a redelivered reconcile message enqueues nothing new.
    let count = enqueue_syncs(
        queue,
        requests.into_values().collect(),
        Trigger::Reconcile,
        received_at,
        clock,
    )
    .await?;
    tracing::info!(
        streams = count,
        new_streams,
        "reconcile: a sync enqueued for every stream"
    );
    Ok(Reconciled {
        streams: count,
        new_streams,
    })
}

/// What the drift check needs besides its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftSettings {
    /// Compare each reconciled stream's live count with Nango's `recordCount`, and sweep on drift.
    pub enabled: bool,
    /// The bound on what a sweep deletes without an operator.
    pub guard: SweepGuard,
}

impl Default for DriftSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            guard: SweepGuard::default(),
        }
    }
}

/// The drift check and the sweep's end for one stream, over the worker's parts.
pub struct Drift<'a, S, R, T> {
    pub source: &'a S,
    pub records: &'a R,
    pub state: &'a T,
    pub settings: &'a DriftSettings,
    /// When the invocation must stop waiting on Nango (its deadline less the margin).
    pub until: Option<std::time::Instant>,
    /// The time sweeps, holds and notes are stamped with, and readiness is judged at.
    pub clock: &'a dyn Clock,
}

impl<S, R, T> Drift<'_, S, R, T>
where
    S: RecordSource + StreamDiscovery,
    R: RecordStore,
    T: StateStore,
{
    /// After a reconcile's sync brought the stream up to date: compares its live count with
    /// Nango's, when Nango can be trusted now. Returns the sweep begun, if drift was confirmed.
    /// A stream whose counts agreed at the last check, and which nothing was written to since,
    /// costs no partition read.
    pub async fn check_drift(
        &self,
        stream: &StreamKey,
        report: &NangoReport,
        summary: &SyncSummary,
        stored: &StreamState,
    ) -> Result<Option<SweepState>, SyncError> {
        let mut notes = stored.nango.clone();
        let sync = match report {
            NangoReport::Listed(sync) => Some(sync),
            NangoReport::NotListed => None,
        };
        let nango_count = match self.judge(stream, sync, stored, &mut notes) {
            Some(count) => count,
            None => return self.settle(stream, stored, notes).await,
        };
        let unchanged = stored.held.is_none()
            && notes.checked.as_ref().is_some_and(|c| {
                c.nango_count == nango_count && c.records_written == stored.records_written
            });
        if unchanged {
            return self.settle(stream, stored, notes).await;
        }
        let Some(live) = self.live_count(stream, stored, &mut notes).await? else {
            return self.settle(stream, stored, notes).await;
        };
        if let Some(held) = &stored.held {
            // A held sweep waits for an operator. It lapses once Nango agrees with the copy
            // again; if the numbers moved otherwise, it is stale and the check below starts
            // over (a new sweep holds, or applies, with today's numbers).
            if live == nango_count {
                let result = SweepResult {
                    finished_at: self.clock.now_rfc3339(),
                    nango_count,
                    live_count: live,
                    tombstoned: 0,
                    outcome: SweepOutcome::Resolved,
                };
                self.state
                    .release_hold(stream, &held.sweep_id, &result)
                    .await?;
                tracing::info!(stream = %stream.encode(), live, "held sweep lapsed: Nango's count agrees with the copy again");
                return self.settle(stream, stored, notes).await;
            }
            if (held.live_count, held.nango_count) == (live, nango_count) {
                return self.settle(stream, stored, notes).await;
            }
        }
        let checked = |trusted| CountCheck {
            nango_count,
            live_count: live,
            records_written: stored.records_written,
            at: self.clock.now_rfc3339(),
            trusted,
        };
        let swept_already = stored
            .last_sweep
            .as_ref()
            .is_some_and(|s| s.nango_count == nango_count && s.live_count == live);
        if live == nango_count || swept_already {
            // Agreed, or the same drift a finished sweep already settled (Nango's count is kept
            // incrementally and can be off): no sweep.
            notes.checked = Some(checked(true));
            return self.settle(stream, stored, notes).await;
        }
        if nango_count == 0 {
            let first = match self.source.fetch_page(stream, None, self.until).await {
                Err(SourceError::Deferred { .. }) => {
                    return self.settle(stream, stored, notes).await
                }
                other => other?,
            };
            if first.records.iter().any(|r| !r.is_deleted()) {
                tracing::info!(stream = %stream.encode(), live, "Nango's recordCount is 0 but its records API serves live records: its count is not trusted for this stream (older Nango reports 0 for variants)");
                notes.checked = Some(checked(false));
                return self.settle(stream, stored, notes).await;
            }
            if first.records.is_empty() {
                // Nango has nothing left for the stream: no re-read can find anything, and the
                // guard never lets a count of 0 delete. Hold at once.
                self.keep_notes(stream, stored, notes.clone()).await?;
                let id = format!("sweep {}", self.clock.now_rfc3339());
                let would_delete = self.records.count_unseen(stream, &id).await?;
                let held = HeldSweep {
                    sweep_id: id,
                    would_delete,
                    live_count: live,
                    nango_count: 0,
                    last_success_at: notes.last_success_at.clone(),
                    held_at: self.clock.now_rfc3339(),
                    reason: format!(
                        "Nango reports 0 records and serves none, while the copy holds {live} \
                         live ones: a purge, not deletes"
                    ),
                };
                self.hold(stream, held).await?;
                return Ok(None);
            }
        }
        // Confirm with a fresh count, taken while no record changed after our cursor.
        let fresh = self.source.sync_of(stream).await?;
        let Some(fresh_count) = self.judge(stream, fresh.as_ref(), stored, &mut notes) else {
            return self.settle(stream, stored, notes).await;
        };
        let quiet = match self
            .source
            .fetch_page(stream, summary.cursor.as_deref(), self.until)
            .await
        {
            // No time left to confirm: the next reconcile checks again.
            Err(SourceError::Deferred { .. }) => return self.settle(stream, stored, notes).await,
            other => other?.is_empty(),
        };
        self.keep_notes(stream, stored, notes).await?;
        if !quiet || fresh_count == live {
            // Records changed since the reconcile counted them: the next reconcile checks again.
            return Ok(None);
        }
        let now = self.clock.now_rfc3339();
        let sweep = SweepState {
            id: format!("sweep {now}"),
            cursor: None,
            started_at: now,
            nango_count: fresh_count,
        };
        tracing::warn!(stream = %stream.encode(), live, nango_count = fresh_count, "live count differs from Nango's recordCount; sweeping the stream");
        self.state.begin_sweep(stream, &sweep).await?;
        Ok(Some(sweep))
    }

    /// Ends a sweep that has read the whole stream: its deletes apply if Nango still vouches for
    /// its cache and the guard allows them, are held beyond the guard's bound, and are dropped
    /// if Nango started a pass meanwhile. Returns how it ended.
    pub async fn end_sweep(
        &self,
        stream: &StreamKey,
        sweep: &SweepState,
    ) -> Result<SweepResult, SyncError> {
        let stored = self.state.get_stream(stream).await?.unwrap_or_default();
        let mut notes = stored.nango.clone();
        let fresh = self.source.sync_of(stream).await?;
        let judged = self.judge(stream, fresh.as_ref(), &stored, &mut notes);
        self.keep_notes(stream, &stored, notes.clone()).await?;
        let live = self.records.count_live(stream).await?;
        let mut result = SweepResult {
            finished_at: self.clock.now_rfc3339(),
            nango_count: judged.unwrap_or(sweep.nango_count),
            live_count: live,
            tombstoned: 0,
            outcome: SweepOutcome::Abandoned,
        };
        let Some(nango_count) = judged else {
            tracing::info!(stream = %stream.encode(), "sweep abandoned: Nango no longer vouches for its cache; nothing marked deleted");
            self.state.end_sweep(stream, &sweep.id, &result).await?;
            return Ok(result);
        };
        let would_delete = self.records.count_unseen(stream, &sweep.id).await?;
        match self.settings.guard.judge(would_delete, live, nango_count) {
            Verdict::Apply => {
                let at = self.clock.now_rfc3339();
                result.tombstoned = self
                    .records
                    .tombstone_unseen(stream, &sweep.id, &at)
                    .await?;
                result.live_count = self.records.count_live(stream).await?;
                result.outcome = SweepOutcome::Applied;
                self.state.end_sweep(stream, &sweep.id, &result).await?;
                if let Some(stale) = &stored.held {
                    // The numbers an operator was asked about no longer hold: this sweep's do.
                    self.state
                        .release_hold(stream, &stale.sweep_id, &result)
                        .await?;
                }
                tracing::info!(stream = %stream.encode(), tombstoned = result.tombstoned, live_count = result.live_count, "sweep finished: records Nango no longer has are marked deleted");
                Ok(result)
            }
            Verdict::Hold(reason) => {
                let held = HeldSweep {
                    sweep_id: sweep.id.clone(),
                    would_delete,
                    live_count: live,
                    nango_count,
                    last_success_at: notes.last_success_at.clone(),
                    held_at: self.clock.now_rfc3339(),
                    reason,
                };
                self.hold(stream, held).await?;
                result.outcome = SweepOutcome::Held;
                self.state.end_sweep(stream, &sweep.id, &result).await?;
                Ok(result)
            }
        }
    }

    /// The stream's live count, going on from where an earlier check's count stopped if nothing
    /// was written since. `None` when this invocation's time ran out first: how far it got is
    /// kept in the notes, and the next check goes on from there (a partition of 10M records
    /// takes about 21 minutes to count at 3,000 read units a second; BENCHMARKS.md "Scale").
    async fn live_count(
        &self,
        stream: &StreamKey,
        stored: &StreamState,
        notes: &mut NangoNotes,
    ) -> Result<Option<u64>, StoreError> {
        let progress = notes.counting.take().filter(|p| {
            let quiet = p.records_written == stored.records_written;
            if !quiet {
                tracing::info!(stream = %stream.encode(), counted = p.counted, since = %p.started_at, "live count starts over: records were written since it began");
            }
            quiet
        });
        let from = progress.as_ref().map(|p| (p.after.as_str(), p.counted));
        match self
            .records
            .count_live_until(stream, from, self.until)
            .await?
        {
            LiveCount::Done(live) => Ok(Some(live)),
            LiveCount::Partial { after, counted } => {
                tracing::info!(stream = %stream.encode(), counted, "live count stopped at the invocation's deadline; the next check goes on from here");
                notes.counting = Some(CountProgress {
                    after,
                    counted,
                    records_written: stored.records_written,
                    started_at: progress.map_or_else(|| self.clock.now_rfc3339(), |p| p.started_at),
                });
                Ok(None)
            }
        }
    }

    /// Holds a sweep's deletes for an operator: nothing is marked deleted.
    async fn hold(&self, stream: &StreamKey, held: HeldSweep) -> Result<(), StoreError> {
        tracing::warn!(
            stream = %stream.encode(),
            would_delete = held.would_delete,
            live = held.live_count,
            nango_count = held.nango_count,
            last_success_at = held.last_success_at.as_deref().unwrap_or("unknown"),
            reason = %held.reason,
            "sweep held: nothing marked deleted; confirm or discard it (nango-sync sweep)"
        );
        self.state.hold_sweep(stream, &held).await
    }

    /// Judges what Nango said of the stream, noting its last success and whether it purged the
    /// stream. Returns Nango's count when it can be compared with ours now.
    fn judge(
        &self,
        stream: &StreamKey,
        sync: Option<&NangoSync>,
        stored: &StreamState,
        notes: &mut NangoNotes,
    ) -> Option<u64> {
        notes.last_success_at = last_success(
            sync,
            &[
                notes.last_success_at.as_deref(),
                stored.last_webhook_at.as_deref(),
            ],
        );
        let judged = readiness(
            sync,
            notes.last_success_at.as_deref(),
            notes.pass_open_since.as_deref(),
            self.clock.now(),
        );
        match judged {
            Readiness::Purged(reason) => {
                if notes.purged.is_none() {
                    tracing::warn!(stream = %stream.encode(), %reason, "Nango no longer keeps this stream's records: never swept, the copy is kept");
                    notes.purged = Some(NangoPurge {
                        at: self.clock.now_rfc3339(),
                        reason,
                    });
                }
                None
            }
            Readiness::Wait(why) => {
                self.lift_purge(stream, notes);
                tracing::debug!(stream = %stream.encode(), why, "no drift check now");
                None
            }
            Readiness::Comparable(count) => {
                self.lift_purge(stream, notes);
                Some(count)
            }
        }
    }

    fn lift_purge(&self, stream: &StreamKey, notes: &mut NangoNotes) {
        if notes.purged.take().is_some() {
            tracing::info!(stream = %stream.encode(), "Nango keeps this stream's records again");
        }
    }

    /// Ends a drift check that begins no sweep, keeping what it learned.
    async fn settle(
        &self,
        stream: &StreamKey,
        stored: &StreamState,
        notes: NangoNotes,
    ) -> Result<Option<SweepState>, SyncError> {
        self.keep_notes(stream, stored, notes).await?;
        Ok(None)
    }

    /// Writes the notes when they changed.
    async fn keep_notes(
        &self,
        stream: &StreamKey,
        stored: &StreamState,
        notes: NangoNotes,
    ) -> Result<(), StoreError> {
        if notes == stored.nango {
            return Ok(());
        }
        self.state.set_nango_notes(stream, &notes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        parse_time(text).unwrap()
    }

    fn success(count: u64, finished_at: &str) -> NangoSync {
        NangoSync {
            record_count: Some(count),
            status: Some(RunStatus::Success),
            latest_execution: None,
            finished_at: Some(finished_at.into()),
            checkpoint: Some(false),
        }
    }

    const NOW: &str = "2026-12-03T12:00:00Z";

    #[test]
    fn the_guard_allows_the_larger_of_its_bounds_and_never_a_count_of_zero() {
        let guard = SweepGuard::default();
        assert_eq!(guard.bound(1_000), 100);
        assert_eq!(guard.bound(10_000), 500);
        assert_eq!(guard.judge(5, 2_000, 1_995), Verdict::Apply);
        assert_eq!(guard.judge(100, 2_000, 1_900), Verdict::Apply);
        assert!(matches!(guard.judge(101, 2_000, 1_899), Verdict::Hold(_)));
        assert_eq!(guard.judge(500, 10_000, 9_500), Verdict::Apply);
        assert!(matches!(guard.judge(501, 10_000, 9_499), Verdict::Hold(_)));
        // Even one record, when Nango says it has none.
        assert!(matches!(guard.judge(1, 1, 0), Verdict::Hold(_)));
        assert_eq!(guard.judge(0, 2_000, 0), Verdict::Apply);
        let strict = SweepGuard {
            max_deletes: 0,
            max_delete_fraction: 0.0,
        };
        assert!(matches!(strict.judge(1, 10, 9), Verdict::Hold(_)));
    }

    #[test]
    fn running_syncs_and_unfinished_passes_are_not_compared() {
        let now = at(NOW);
        let mut sync = success(10, "2026-12-03T11:00:00Z");
        assert_eq!(
            readiness(Some(&sync), None, None, now),
            Readiness::Comparable(10)
        );
        sync.status = Some(RunStatus::Running);
        assert!(matches!(
            readiness(Some(&sync), None, None, now),
            Readiness::Wait(_)
        ));
        sync.status = Some(RunStatus::Success);
        sync.checkpoint = Some(true);
        assert!(matches!(
            readiness(Some(&sync), None, None, now),
            Readiness::Wait(_)
        ));
        // A webhook said the pass was open; no run finished since: still open.
        sync.checkpoint = Some(false);
        let since = Some("2026-12-03T11:30:00Z");
        assert!(matches!(
            readiness(Some(&sync), None, since, now),
            Readiness::Wait(_)
        ));
        // A run that left no checkpoint finished after that webhook: the pass ended.
        sync.finished_at = Some("2026-12-03T11:45:00Z".into());
        assert_eq!(
            readiness(Some(&sync), None, since, now),
            Readiness::Comparable(10)
        );
        // Nango that reports no checkpoint field: only the webhooks tell.
        sync.checkpoint = None;
        assert!(matches!(
            readiness(Some(&sync), None, since, now),
            Readiness::Wait(_)
        ));
        sync.record_count = None;
        assert!(matches!(
            readiness(Some(&sync), None, None, now),
            Readiness::Wait(_)
        ));
    }

    #[test]
    fn retention_and_dropped_syncs_are_purges() {
        let now = at(NOW);
        assert!(matches!(
            readiness(None, None, None, now),
            Readiness::Purged(_)
        ));
        let old = success(0, "2026-10-03T11:59:59Z");
        let last = last_success(Some(&old), &[None]);
        assert_eq!(last.as_deref(), Some("2026-10-03T11:59:59Z"));
        assert!(matches!(
            readiness(Some(&old), last.as_deref(), None, now),
            Readiness::Purged(_)
        ));
        let recent = "2026-10-05T12:00:00Z";
        assert_eq!(
            readiness(Some(&old), Some(recent), None, now),
            Readiness::Comparable(0)
        );
    }

    #[test]
    fn the_last_success_comes_from_successful_runs_only() {
        let mut failing = success(5, "2026-12-03T10:00:00Z");
        failing.status = Some(RunStatus::Error);
        assert_eq!(last_success(Some(&failing), &[None]), None);
        assert_eq!(
            last_success(Some(&failing), &[Some("2026-11-01T00:00:00.000Z")]).as_deref(),
            Some("2026-11-01T00:00:00.000Z")
        );
        // Paused after a successful run: latestExecutionStatus says the run succeeded.
        let mut paused = success(5, "2026-09-01T00:00:00Z");
        paused.status = Some(RunStatus::Paused);
        paused.latest_execution = Some(RunStatus::Success);
        assert_eq!(
            last_success(Some(&paused), &[Some("2026-08-01T00:00:00Z"), None]).as_deref(),
            Some("2026-09-01T00:00:00Z"),
            "the later of the two"
        );
        paused.latest_execution = Some(RunStatus::Stopped);
        assert_eq!(last_success(Some(&paused), &[]), None);
    }
}
