//! A job's figures as metrics: built once when the job ends, from what it did, and handed to the
//! worker's [`MetricsSink`](crate::ports::MetricsSink). The completion log line says the same.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::core::outcome::JobOutcome;
use crate::core::state::SweepOutcome;

#[derive(Debug, Clone, PartialEq)]
pub struct JobMetrics {
    /// As the completion line has it ("synced", "continued", ...), or "failed".
    pub outcome: &'static str,
    pub duration_ms: u64,
    pub pages: u64,
    pub written: u64,
    pub deleted: u64,
    pub pruned: u64,
    pub rejected: u64,
    /// Records the sweep that followed the sync marked deleted.
    pub swept: u64,
    /// That sweep would have deleted more than the guard allows: held for an operator.
    pub sweep_held: bool,
    /// The job failed and will be redelivered.
    pub failed: bool,
    /// The job put its stream in error (retrying cannot help).
    pub stream_in_error: bool,
    /// What the job asked of Nango.
    pub nango: RequestTally,
    /// The job's stream event could not be published (the sync itself stands).
    pub event_failed: bool,
    /// How a write to the provider ended, for a write job.
    pub write_state: Option<crate::core::writes::state::WriteState>,
    /// Now less the newest `last_modified_at` the job wrote: how far the copy trails the source.
    /// None when the job wrote nothing.
    pub sync_lag_seconds: Option<f64>,
}

impl JobMetrics {
    /// A job that ended, from its outcome; `now` for its sync lag.
    pub fn of_outcome(
        outcome: &JobOutcome,
        outcome_name: &'static str,
        duration_ms: u64,
        nango: RequestTally,
        now: OffsetDateTime,
    ) -> Self {
        let mut metrics = Self::empty(outcome_name, duration_ms, nango);
        match outcome {
            JobOutcome::Synced(summary) | JobOutcome::Continued(summary) => {
                metrics.pages = summary.pages;
                metrics.written = summary.written;
                metrics.deleted = summary.deleted;
                metrics.pruned = summary.pruned;
                metrics.rejected = summary.rejected;
                metrics.swept = summary.sweep.as_ref().map_or(0, |sweep| sweep.deleted);
                metrics.sweep_held = summary.sweep_outcome == Some(SweepOutcome::Held);
                metrics.sync_lag_seconds = summary
                    .newest_modified_at
                    .as_deref()
                    .and_then(|at| lag_seconds(at, now));
            }
            JobOutcome::StreamInError(_) => metrics.stream_in_error = true,
            // Counted once, by the job that ended it: a duplicate request counts nothing.
            JobOutcome::WriteEnded {
                write, first: true, ..
            } => metrics.write_state = Some(write.position.state),
            _ => {}
        }
        metrics
    }

    /// A job that failed and will be redelivered.
    pub fn of_failure(duration_ms: u64, nango: RequestTally) -> Self {
        Self {
            failed: true,
            ..Self::empty("failed", duration_ms, nango)
        }
    }

    fn empty(outcome: &'static str, duration_ms: u64, nango: RequestTally) -> Self {
        Self {
            outcome,
            duration_ms,
            pages: 0,
            written: 0,
            deleted: 0,
            pruned: 0,
            rejected: 0,
            swept: 0,
            sweep_held: false,
            failed: false,
            stream_in_error: false,
            nango,
            event_failed: false,
            write_state: None,
            sync_lag_seconds: None,
        }
    }
}

/// Seconds from `modified_at` (Nango's timestamp: RFC 3339 with microseconds and an offset) to
/// `now`; None when the timestamp does not read. A clock behind Nango's gives 0, not a negative.
fn lag_seconds(modified_at: &str, now: OffsetDateTime) -> Option<f64> {
    let at = OffsetDateTime::parse(modified_at, &Rfc3339).ok()?;
    Some((now - at).as_seconds_f64().max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_reads_nangos_timestamps() {
        let now = OffsetDateTime::parse("2026-01-15T10:01:30+00:00", &Rfc3339).unwrap();
        let lag = lag_seconds("2026-01-15T10:00:00.500000+00:00", now).unwrap();
        assert!((lag - 89.5).abs() < 1e-6, "{lag}");
        assert_eq!(lag_seconds("2026-01-15T11:00:00+00:00", now), Some(0.0));
        assert_eq!(lag_seconds("yesterday", now), None);
    }
}

/// What one webhook request came to, as its metrics count it: one metric per answer, each with
/// the function as its only dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAnswer {
    Accepted,
    /// Accepted, verified by the previous key: Nango still signs with it (a rotation under way).
    AcceptedWithPreviousKey,
    /// A signature was sent and matches no configured key: the keys differ from Nango's.
    RefusedSignature,
    /// No signature, or not one well-formed value (scanners, or not Nango).
    RefusedUnsigned,
    RefusedNotJson,
    RefusedTooLarge,
    RefusedMethod,
    /// The queue did not take the jobs (answered 503, which Nango retries).
    EnqueueFailed,
}

impl WebhookAnswer {
    /// Every answer, in the order an EMF line lists them.
    pub const ALL: [Self; 8] = [
        Self::Accepted,
        Self::AcceptedWithPreviousKey,
        Self::RefusedSignature,
        Self::RefusedUnsigned,
        Self::RefusedNotJson,
        Self::RefusedTooLarge,
        Self::RefusedMethod,
        Self::EnqueueFailed,
    ];

    /// The CloudWatch metric that counts it (template.yaml's alarms and dashboard name these).
    pub fn metric(self) -> &'static str {
        match self {
            Self::Accepted => "WebhooksAccepted",
            Self::AcceptedWithPreviousKey => "WebhooksSignedWithPreviousKey",
            Self::RefusedSignature => "WebhooksRefusedSignature",
            Self::RefusedUnsigned => "WebhooksRefusedUnsigned",
            Self::RefusedNotJson => "WebhooksRefusedNotJson",
            Self::RefusedTooLarge => "WebhooksRefusedTooLarge",
            Self::RefusedMethod => "WebhooksRefusedMethod",
            Self::EnqueueFailed => "WebhookEnqueueFailed",
        }
    }
}

/// Requests made to Nango, counted since the source was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTally {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Of those, the ones answered 429.
    pub rate_limited: u64,
    /// Time spent waiting for Nango's rate limit: out 429s, and for the window to reset when the
    /// process's budget had no requests left.
    pub waited_ms: u64,
}

tokio::task_local! {
    /// The Nango requests of the job being run, counted apart from other jobs running beside it.
    static JOB_REQUESTS: std::cell::Cell<RequestTally>;
}

/// Runs `job`, counting the Nango requests made on its behalf ([`count_job_requests`]).
pub async fn job_requests<F: std::future::Future>(job: F) -> (F::Output, RequestTally) {
    let counted = async {
        let output = job.await;
        (output, JOB_REQUESTS.with(std::cell::Cell::get))
    };
    JOB_REQUESTS
        .scope(std::cell::Cell::new(RequestTally::default()), counted)
        .await
}

/// Adds to the running job's tally, if a job is running ([`job_requests`]).
pub fn count_job_requests(add: impl FnOnce(&mut RequestTally)) {
    let _ = JOB_REQUESTS.try_with(|tally| {
        let mut counted = tally.get();
        add(&mut counted);
        tally.set(counted);
    });
}
