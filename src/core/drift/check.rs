//! The drift check and the sweep's end for one stream, after a reconcile's sync brought it up
//! to date.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::core::clock::Clock;
use crate::core::drift::guard::{last_success, readiness, Readiness, SweepGuard, Verdict};
use crate::core::drift::sweep;
use crate::core::job::NangoListing;
use crate::core::nango_status::NangoSync;
use crate::core::outcome::SyncSummary;
use crate::core::state::{
    CountCheck, CountProgress, HeldSweep, LiveCount, NangoNotes, NangoPurge, StreamState,
    SweepOutcome, SweepResult, SweepState,
};
use crate::core::stream::StreamKey;
use crate::core::sync::SyncError;
use crate::ports::{
    RecordSource, RecordStore, SourceError, StateStore, StoreError, StreamDiscovery,
};

/// How long the drift check trusts its arithmetic before it reads the live count again. A sum
/// that is off only costs a count when Nango's count disagrees; this bounds how long two errors
/// that cancel out (see [`crate::core::live_change`]) can hide a drift: a stream of 1M records is
/// counted once a day (379k read units, BENCHMARKS.md "Scale") instead of on each reconcile.
pub const RECOUNT_AFTER: time::Duration = time::Duration::DAY;

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

/// Where a drift check left the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftStep {
    /// Nothing more to do before the next reconcile: the counts agree, Nango cannot be compared
    /// with now, or the drift was held or already settled.
    Settled,
    /// Drift confirmed: this sweep began.
    Sweep(SweepState),
    /// The check needs a job of its own: it must count and may not here, or its time ran out
    /// (how far a count got is kept in the stream's notes).
    GoesOn,
}

/// Nango's count as of the copy's cursor, or why there is none.
enum AtCursor {
    Count(u64),
    /// Nango cannot be compared with now (a run under way, a purge).
    NotComparable,
    /// No time left to ask.
    Deferred,
    /// Records changed past the cursor since the sync.
    Busy,
}

/// How far a live count got in this invocation.
enum Counted {
    Done(u64),
    /// Stopped at the deadline; how far it got is in the notes.
    Stopped,
    /// An earlier count was thrown away (records were written since), and this one stopped too.
    StartedOverAndStopped,
}

/// The drift check and the sweep's end for one stream, over the worker's parts.
pub struct DriftCheck<'a, S, R, T> {
    pub source: &'a S,
    pub records: &'a R,
    pub state: &'a T,
    pub settings: &'a DriftSettings,
    /// When the invocation must stop waiting on Nango (its deadline less the margin).
    pub until: Option<std::time::Instant>,
    /// The time sweeps, holds and notes are stamped with, and readiness is judged at.
    pub clock: &'a dyn Clock,
    /// Whether this job may count the stream's partition. A reconcile's sync job may not: the
    /// count goes on in a job of its own, so that no stream's sync waits behind another's count.
    pub may_count: bool,
}

impl<S, R, T> DriftCheck<'_, S, R, T>
where
    S: RecordSource + StreamDiscovery,
    R: RecordStore,
    T: StateStore,
{
    /// After a reconcile's sync brought the stream up to date: compares its live count with
    /// Nango's, when Nango can be trusted now, and begins a sweep if drift is confirmed.
    /// A stream whose counts agreed at the last check costs no partition read when nothing was
    /// written to it since, or when Nango's count moved by what the syncs applied since.
    pub async fn check_drift(
        &self,
        stream: &StreamKey,
        report: &NangoListing,
        summary: &SyncSummary,
        stored: &StreamState,
    ) -> Result<DriftStep, SyncError> {
        let mut notes = stored.nango.clone();
        let sync = match report {
            NangoListing::Listed(sync) => Some(sync),
            NangoListing::NotListed => None,
        };
        let mut nango_count = match self.comparable_count(stream, sync, stored, &mut notes) {
            Some(count) => count,
            None => return self.end_at(DriftStep::Settled, stream, stored, notes).await,
        };
        if stored.held.is_none() {
            if self.unchanged(&notes, stored, nango_count) {
                return self.end_at(DriftStep::Settled, stream, stored, notes).await;
            }
            if self.arithmetic_applies(&notes, stored) {
                match self
                    .count_at_cursor(stream, summary, stored, &mut notes)
                    .await?
                {
                    AtCursor::Count(count) => {
                        if let Some(check) = self.worked_out(&notes, stored, count) {
                            notes.checked = Some(check);
                            notes.counting = None;
                            return self.end_at(DriftStep::Settled, stream, stored, notes).await;
                        }
                        // The sum disagrees: the count below is set against this count, not
                        // the older listing.
                        nango_count = count;
                    }
                    AtCursor::NotComparable => {
                        return self.end_at(DriftStep::Settled, stream, stored, notes).await
                    }
                    AtCursor::Deferred => {
                        return self.end_at(DriftStep::GoesOn, stream, stored, notes).await
                    }
                    // Records keep arriving past the cursor: neither the sum nor a count can be
                    // set against Nango's count now. The next reconcile checks again.
                    AtCursor::Busy => {
                        return self.end_at(DriftStep::Settled, stream, stored, notes).await
                    }
                }
            }
        }
        if !self.may_count {
            return self.end_at(DriftStep::GoesOn, stream, stored, notes).await;
        }
        let live = match self.live_count(stream, stored, &mut notes).await? {
            Counted::Done(live) => live,
            Counted::Stopped => return self.end_at(DriftStep::GoesOn, stream, stored, notes).await,
            // Records keep arriving faster than the partition can be counted: a chain of
            // continuations would never end. The next reconcile tries again.
            Counted::StartedOverAndStopped => {
                return self.end_at(DriftStep::Settled, stream, stored, notes).await
            }
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
                self.state.forget_seen(stream, &held.sweep_id).await?;
                tracing::info!(stream = %stream.encode(), live, "held sweep lapsed: Nango's count agrees with the copy again");
                return self.end_at(DriftStep::Settled, stream, stored, notes).await;
            }
            if (held.live_count, held.nango_count) == (live, nango_count) {
                return self.end_at(DriftStep::Settled, stream, stored, notes).await;
            }
        }
        // A check that counted: its time is its count's.
        let now = self.clock.now_rfc3339();
        let checked = |trusted| CountCheck {
            nango_count,
            live_count: live,
            records_written: stored.records_written,
            at: now.clone(),
            trusted,
            live_change: Some(stored.live_change),
            counted_at: Some(now.clone()),
        };
        let swept_already = stored
            .last_sweep
            .as_ref()
            .is_some_and(|s| s.nango_count == nango_count && s.live_count == live);
        if live == nango_count || swept_already {
            // Agreed, or the same drift a finished sweep already settled (Nango's count is kept
            // incrementally and can be off): no sweep.
            notes.checked = Some(checked(true));
            return self.end_at(DriftStep::Settled, stream, stored, notes).await;
        }
        if nango_count == 0 {
            let first = match self.source.fetch_page(stream, None, self.until).await {
                Err(SourceError::Deferred { .. }) => {
                    return self.end_at(DriftStep::GoesOn, stream, stored, notes).await
                }
                other => other?,
            };
            if first.records.iter().any(|r| !r.is_deleted()) {
                tracing::info!(stream = %stream.encode(), live, "Nango's recordCount is 0 but its records API serves live records: its count is not trusted for this stream (older Nango reports 0 for variants)");
                notes.checked = Some(checked(false));
                return self.end_at(DriftStep::Settled, stream, stored, notes).await;
            }
            if first.records.is_empty() {
                // Nango has nothing left for the stream: no re-read can find anything, and the
                // guard never lets a count of 0 delete. Hold at once.
                self.save_notes(stream, stored, notes.clone()).await?;
                let id = format!("sweep {}", self.clock.now_rfc3339());
                // No page was served, so every live record is unseen.
                let would_delete = live;
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
                return Ok(DriftStep::Settled);
            }
        }
        // Confirm with a fresh count, taken while no record changed after our cursor.
        let fresh = self.source.sync_of(stream).await?;
        let Some(fresh_count) = self.comparable_count(stream, fresh.as_ref(), stored, &mut notes)
        else {
            return self.end_at(DriftStep::Settled, stream, stored, notes).await;
        };
        let quiet = match self
            .source
            .fetch_page(stream, summary.cursor.as_deref(), self.until)
            .await
        {
            // No time left to confirm: a job of its own goes on.
            Err(SourceError::Deferred { .. }) => {
                return self.end_at(DriftStep::GoesOn, stream, stored, notes).await
            }
            other => other?.is_empty(),
        };
        if quiet && fresh_count == live {
            // Nango's count now, taken at our cursor, agrees: the check to go on from.
            notes.checked = Some(CountCheck {
                nango_count: fresh_count,
                ..checked(true)
            });
        }
        self.save_notes(stream, stored, notes).await?;
        if !quiet || fresh_count == live {
            // Records changed since the reconcile counted them: the next reconcile checks again.
            return Ok(DriftStep::Settled);
        }
        let now = self.clock.now_rfc3339();
        let sweep = SweepState {
            id: format!("sweep {now}"),
            cursor: None,
            started_at: now,
            nango_count: fresh_count,
            notes_pages: true,
        };
        tracing::warn!(stream = %stream.encode(), live, nango_count = fresh_count, "live count differs from Nango's recordCount; sweeping the stream");
        self.state.begin_sweep(stream, &sweep).await?;
        Ok(DriftStep::Sweep(sweep))
    }

    /// Ends a sweep that has read the whole stream (its second pass, [`sweep::compare`]): the
    /// records the copy missed are fetched again and written; its deletes apply if Nango still
    /// vouches for its cache and the guard allows them, are held beyond the guard's bound, and
    /// are dropped if Nango started a pass meanwhile. Returns how it ended and how many records
    /// it wrote, or `None` when Nango asked for a wait past the deadline: the sweep stays open
    /// for a later job.
    pub async fn end_sweep(
        &self,
        stream: &StreamKey,
        sweep: &SweepState,
    ) -> Result<Option<(SweepResult, u64)>, SyncError> {
        let stored = self.state.get_stream(stream).await?.unwrap_or_default();
        let mut notes = stored.nango.clone();
        let fresh = self.source.sync_of(stream).await?;
        let judged = self.comparable_count(stream, fresh.as_ref(), &stored, &mut notes);
        self.save_notes(stream, &stored, notes.clone()).await?;
        let found = sweep::compare(self.records, self.state, stream, &sweep.id).await?;
        let Some(healed) = sweep::heal(
            self.source,
            self.records,
            stream,
            &found.to_fetch,
            self.until,
        )
        .await?
        else {
            return Ok(None);
        };
        if healed.written > 0 {
            tracing::info!(stream = %stream.encode(), written = healed.written, "sweep wrote records the copy had missed or held at an older version");
        }
        let live =
            u64::try_from(i64::try_from(found.live).unwrap_or(i64::MAX) + healed.live_change)
                .unwrap_or(0);
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
            self.state.forget_seen(stream, &sweep.id).await?;
            return Ok(Some((result, healed.written)));
        };
        let would_delete = found.unseen.len() as u64;
        match self.settings.guard.verdict(would_delete, live, nango_count) {
            Verdict::Apply => {
                let at = self.clock.now_rfc3339();
                result.tombstoned = self
                    .records
                    .remove_unseen(stream, &found.unseen, &at)
                    .await?;
                result.live_count = live.saturating_sub(result.tombstoned);
                result.outcome = SweepOutcome::Applied;
                self.state.end_sweep(stream, &sweep.id, &result).await?;
                self.state.forget_seen(stream, &sweep.id).await?;
                if let Some(stale) = &stored.held {
                    // The numbers an operator was asked about no longer hold: this sweep's do.
                    self.state
                        .release_hold(stream, &stale.sweep_id, &result)
                        .await?;
                    self.state.forget_seen(stream, &stale.sweep_id).await?;
                }
                tracing::info!(stream = %stream.encode(), tombstoned = result.tombstoned, live_count = result.live_count, "sweep finished: records Nango no longer has are marked deleted");
                Ok(Some((result, healed.written)))
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
                if let Some(replaced) = stored.held.as_ref().filter(|h| h.sweep_id != sweep.id) {
                    // The hold this one replaces can no longer be decided: its notes go.
                    self.state.forget_seen(stream, &replaced.sweep_id).await?;
                }
                result.outcome = SweepOutcome::Held;
                self.state.end_sweep(stream, &sweep.id, &result).await?;
                Ok(Some((result, healed.written)))
            }
        }
    }

    /// Nothing changed since the last check: Nango's count is the same, nothing was written, and
    /// no write escaped the sum. Holds for checks kept before the sum existed too
    /// (`records_written` alone). A check the arithmetic carried forward holds so for
    /// [`RECOUNT_AFTER`] from its last count; one that counted, for as long as nothing changes.
    fn unchanged(&self, notes: &NangoNotes, stored: &StreamState, nango_count: u64) -> bool {
        notes.checked.as_ref().is_some_and(|c| {
            let counted = c.counted_at.as_ref().is_none_or(|at| *at == c.at);
            c.nango_count == nango_count
                && c.records_written == stored.records_written
                && c.live_change.is_none_or(|then| then == stored.live_change)
                && (counted || self.counted_lately(c))
        })
    }

    /// Whether `check`'s last real count is younger than [`RECOUNT_AFTER`].
    fn counted_lately(&self, check: &CountCheck) -> bool {
        check
            .counted_at
            .as_deref()
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
            .is_some_and(|at| self.clock.now() - at < RECOUNT_AFTER)
    }

    /// Nango's count as of our cursor: asked now (the listing predates this job's sync, and a
    /// continuation's may be old), and taken only if no record changed past our cursor since
    /// (one page read after it is empty). Only such a count can be set against the sum of what
    /// the copy applied up to its cursor.
    async fn count_at_cursor(
        &self,
        stream: &StreamKey,
        summary: &SyncSummary,
        stored: &StreamState,
        notes: &mut NangoNotes,
    ) -> Result<AtCursor, SyncError> {
        let fresh = self.source.sync_of(stream).await?;
        let Some(count) = self.comparable_count(stream, fresh.as_ref(), stored, notes) else {
            return Ok(AtCursor::NotComparable);
        };
        match self
            .source
            .fetch_page(stream, summary.cursor.as_deref(), self.until)
            .await
        {
            Err(SourceError::Deferred { .. }) => Ok(AtCursor::Deferred),
            Err(e) => Err(e.into()),
            Ok(page) if page.is_empty() => Ok(AtCursor::Count(count)),
            Ok(_) => Ok(AtCursor::Busy),
        }
    }

    /// The check worked out without a count: Nango's count (as of our cursor) moved by exactly
    /// the net change in live records the syncs applied since the last check, which knew the
    /// live count. The copy then agrees with Nango as it did (or keeps the offset a finished
    /// sweep settled). Returns that check moved on to now, or `None` when the sum is unknown or
    /// disagrees. Called once [`Self::arithmetic_applies`] holds.
    fn worked_out(
        &self,
        notes: &NangoNotes,
        stored: &StreamState,
        nango_count: u64,
    ) -> Option<CountCheck> {
        let checked = notes.checked.as_ref()?;
        let moved = stored.live_change.since(checked.live_change?)?;
        let expected = i64::try_from(checked.nango_count)
            .ok()?
            .checked_add(moved)?;
        if i64::try_from(nango_count).ok()? != expected {
            return None;
        }
        let live = i64::try_from(checked.live_count).ok()?.checked_add(moved)?;
        Some(CountCheck {
            nango_count,
            live_count: u64::try_from(live).ok()?,
            records_written: stored.records_written,
            at: self.clock.now_rfc3339(),
            live_change: Some(stored.live_change),
            ..checked.clone()
        })
    }

    /// Whether the last check can be carried forward by arithmetic: it recorded the stream's
    /// [`LiveChange`](crate::core::state::LiveChange), no write since escaped it, and its count
    /// is younger than [`RECOUNT_AFTER`].
    fn arithmetic_applies(&self, notes: &NangoNotes, stored: &StreamState) -> bool {
        let Some(checked) = &notes.checked else {
            return false;
        };
        let followed = checked
            .live_change
            .is_some_and(|then| stored.live_change.since(then).is_some());
        followed && self.counted_lately(checked)
    }

    /// The stream's live count, going on from where an earlier check's count stopped if nothing
    /// was written since. When this invocation's time runs out first, how far it got is kept in
    /// the notes, and the next check goes on from there (a partition of 10M records takes about
    /// 21 minutes to count at 3,000 read units a second; BENCHMARKS.md "Scale").
    async fn live_count(
        &self,
        stream: &StreamKey,
        stored: &StreamState,
        notes: &mut NangoNotes,
    ) -> Result<Counted, StoreError> {
        let earlier = notes.counting.take();
        let had_earlier = earlier.is_some();
        let progress = earlier.filter(|p| {
            let quiet = p.records_written == stored.records_written
                && p.live_change.is_none_or(|then| then == stored.live_change);
            if !quiet {
                tracing::info!(stream = %stream.encode(), counted = p.counted, since = %p.started_at, "live count starts over: records were written since it began");
            }
            quiet
        });
        // An earlier count was thrown away: this one started over.
        let started_over = had_earlier && progress.is_none();
        let from = progress.as_ref().map(|p| (p.after.as_str(), p.counted));
        match self
            .records
            .count_live_until(stream, from, self.until)
            .await?
        {
            LiveCount::Done(live) => Ok(Counted::Done(live)),
            LiveCount::Partial { after, counted } => {
                tracing::info!(stream = %stream.encode(), counted, "live count stopped at the invocation's deadline; the next check goes on from here");
                notes.counting = Some(CountProgress {
                    after,
                    counted,
                    records_written: stored.records_written,
                    live_change: Some(stored.live_change),
                    started_at: progress.map_or_else(|| self.clock.now_rfc3339(), |p| p.started_at),
                });
                Ok(if started_over {
                    Counted::StartedOverAndStopped
                } else {
                    Counted::Stopped
                })
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

    /// Reads what Nango said of the stream, noting its last success and whether it purged the
    /// stream. Returns Nango's count when it can be compared with ours now.
    fn comparable_count(
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

    /// Ends this job's part of the check at `step`, keeping what it learned (Nango's notes, how
    /// far a count got).
    async fn end_at(
        &self,
        step: DriftStep,
        stream: &StreamKey,
        stored: &StreamState,
        notes: NangoNotes,
    ) -> Result<DriftStep, SyncError> {
        self.save_notes(stream, stored, notes).await?;
        Ok(step)
    }

    /// Writes the notes when they changed.
    async fn save_notes(
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
