//! The sweep's guard (what a sweep may delete on Nango's word) and readiness (whether Nango's
//! count can be compared with ours now).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::core::nango_status::{NangoSync, RunStatus};

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

    pub fn verdict(&self, would_delete: u64, live: u64, nango_count: u64) -> Verdict {
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

pub(crate) fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
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
        assert_eq!(guard.verdict(5, 2_000, 1_995), Verdict::Apply);
        assert_eq!(guard.verdict(100, 2_000, 1_900), Verdict::Apply);
        assert!(matches!(guard.verdict(101, 2_000, 1_899), Verdict::Hold(_)));
        assert_eq!(guard.verdict(500, 10_000, 9_500), Verdict::Apply);
        assert!(matches!(
            guard.verdict(501, 10_000, 9_499),
            Verdict::Hold(_)
        ));
        // Even one record, when Nango says it has none.
        assert!(matches!(guard.verdict(1, 1, 0), Verdict::Hold(_)));
        assert_eq!(guard.verdict(0, 2_000, 0), Verdict::Apply);
        let strict = SweepGuard {
            max_deletes: 0,
            max_delete_fraction: 0.0,
        };
        assert!(matches!(strict.verdict(1, 10, 9), Verdict::Hold(_)));
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
