//! One budget of Nango requests for the whole process. Nango limits requests per account (200 a
//! minute by default, `X-RateLimit-*` on every answer): streams side by side and discovery draw
//! from the same points, so they pace themselves together. Once an answer says none are left,
//! or a 429 asks for a wait, every request of the process waits for the same moment instead of
//! each drawing its own 429. Record reads leave a share of each window to writes to the provider
//! ([`Draw`]), so that a backfill never starves them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The furthest reset believed: Nango's window is a minute, and a reset further away (in
/// milliseconds, say) must not stop the process.
const LONGEST_WINDOW: Duration = Duration::from_secs(120);

/// The share of each window kept for writes by default, in percent.
pub const DEFAULT_WRITE_SHARE_PERCENT: u64 = 10;

/// What a request is for: record reads and discovery leave the writes' share of each window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    Read,
    Write,
}

/// The process's view of Nango's rate limit, shared by every clone of the client.
#[derive(Debug)]
pub struct RequestBudget {
    state: Mutex<Budget>,
    /// The points of each window (of Nango's `X-RateLimit-Limit`) reads leave to writes, in percent.
    write_share_percent: u64,
}

impl Default for RequestBudget {
    fn default() -> Self {
        Self::with_write_share(DEFAULT_WRITE_SHARE_PERCENT)
    }
}

#[derive(Debug, Default)]
struct Budget {
    /// Nango's points per window (`X-RateLimit-Limit`), once an answer said.
    limit: Option<u64>,
    /// Points Nango said were left, less the requests sent since; unknown until an answer says.
    remaining: Option<u64>,
    /// When Nango's window resets (its `X-RateLimit-Reset`).
    resets_at: Option<Instant>,
    /// No request before this: a 429's wait.
    paused_until: Option<Instant>,
    /// Requests sent while nothing was known of the window: its first answer counts only its
    /// own, so the others are taken from what it says.
    sent_unknown: u64,
}

impl RequestBudget {
    /// A budget whose reads leave `percent` of each window's points to writes (at most 90).
    pub fn with_write_share(percent: u64) -> Self {
        Self {
            state: Mutex::default(),
            write_share_percent: percent.min(90),
        }
    }

    /// Takes a point for one request of `draw` when one may be sent at `now`; otherwise how long
    /// to wait before asking again. A read goes only while more points are left than the writes'
    /// share of the window.
    pub fn take(&self, now: Instant, draw: Draw) -> Result<(), Duration> {
        let mut budget = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = budget.paused_until.filter(|until| *until > now) {
            return Err(until - now);
        }
        if budget.resets_at.is_some_and(|reset| reset <= now) {
            // A new window: unknown until its first answer.
            budget.remaining = None;
            budget.resets_at = None;
            budget.sent_unknown = 0;
        }
        let kept = match draw {
            Draw::Write => 0,
            Draw::Read => budget
                .limit
                .map_or(0, |limit| (limit * self.write_share_percent).div_ceil(100)),
        };
        match (budget.remaining, budget.resets_at) {
            (Some(left), Some(reset)) if left <= kept => Err(reset - now),
            (Some(left), _) => {
                budget.remaining = Some(left.saturating_sub(1));
                Ok(())
            }
            (None, _) => {
                budget.sent_unknown += 1;
                Ok(())
            }
        }
    }

    /// What an answer that passed the limiter said: `remaining` points of `limit` until the
    /// window resets `reset_in` from `now`. Answers come back out of order, so within one window
    /// the lower count wins (requests sent since were already taken from it).
    pub fn observe(&self, now: Instant, remaining: u64, reset_in: Duration, limit: Option<u64>) {
        let mut budget = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if limit.is_some() {
            budget.limit = limit;
        }
        let resets_at = now + reset_in.min(LONGEST_WINDOW);
        // Windows end on whole seconds: a reset a second or more away from the known one is
        // another window. A late answer from an earlier window says nothing of this one.
        let near = |known: Instant| {
            let apart = if resets_at > known {
                resets_at - known
            } else {
                known - resets_at
            };
            apart < Duration::from_millis(900)
        };
        if budget
            .resets_at
            .is_some_and(|known| !near(known) && resets_at < known)
        {
            return;
        }
        let same_window = budget.resets_at.is_some_and(near);
        // The other requests sent before anything was known may not be in this answer's count:
        // taken from it, so that reads never draw on the points kept for writes. (Counting one
        // twice only stops the reads a point early.)
        let unanswered = std::mem::take(&mut budget.sent_unknown).saturating_sub(1);
        budget.remaining = Some(match (same_window, budget.remaining) {
            (true, Some(known)) => known.min(remaining),
            _ => remaining.saturating_sub(unanswered),
        });
        budget.resets_at = Some(
            budget
                .resets_at
                .filter(|_| same_window)
                .unwrap_or(resets_at),
        );
    }

    /// A 429 asked for `wait`: no request of the process goes before it ends.
    pub fn pause(&self, now: Instant, wait: Duration) {
        let mut budget = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let until = now + wait;
        budget.paused_until = Some(budget.paused_until.map_or(until, |known| known.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_an_answer_then_counted_down_to_the_reset() {
        let budget = RequestBudget::default();
        let now = Instant::now();
        assert_eq!(budget.take(now, Draw::Read), Ok(()), "nothing known: go");
        budget.observe(now, 2, Duration::from_secs(10), None);
        assert_eq!(budget.take(now, Draw::Read), Ok(()));
        assert_eq!(budget.take(now, Draw::Read), Ok(()));
        assert_eq!(
            budget.take(now, Draw::Read),
            Err(Duration::from_secs(10)),
            "none left"
        );
        // A late answer of the same window saying more were left changes nothing.
        budget.observe(now, 5, Duration::from_secs(10), None);
        assert!(budget.take(now, Draw::Read).is_err());
        // Nor does one from the window before, saying none were left then.
        let next_window = RequestBudget::default();
        next_window.observe(now, 150, Duration::from_secs(50), None);
        next_window.observe(now, 0, Duration::ZERO, None);
        assert_eq!(next_window.take(now, Draw::Read), Ok(()));
        // The window resets: go, until an answer says otherwise.
        let later = now + Duration::from_secs(10);
        assert_eq!(budget.take(later, Draw::Read), Ok(()));
        budget.observe(later, 199, Duration::from_secs(60), None);
        assert_eq!(budget.take(later, Draw::Read), Ok(()));
    }

    #[test]
    fn reads_leave_the_writes_share_of_each_window() {
        let budget = RequestBudget::with_write_share(10);
        let now = Instant::now();
        budget.observe(now, 11, Duration::from_secs(30), Some(100));
        assert_eq!(budget.take(now, Draw::Read), Ok(()), "11 left, 10 kept");
        let wait = budget.take(now, Draw::Read);
        assert_eq!(
            wait,
            Err(Duration::from_secs(30)),
            "reads wait for the next window"
        );
        for _ in 0..10 {
            assert_eq!(
                budget.take(now, Draw::Write),
                Ok(()),
                "writes take the kept points"
            );
        }
        assert!(
            budget.take(now, Draw::Write).is_err(),
            "none left for anyone"
        );
        let later = now + Duration::from_secs(30);
        assert_eq!(budget.take(later, Draw::Read), Ok(()), "a new window");
        // With no limit known, nothing is kept.
        let unknown = RequestBudget::with_write_share(10);
        unknown.observe(now, 1, Duration::from_secs(30), None);
        assert_eq!(unknown.take(now, Draw::Read), Ok(()));
    }

    /// Two streams start at once, before any answer: the first answer counts one of their
    /// requests, not both, and the reads must still leave the writes' points.
    #[test]
    fn requests_sent_before_the_first_answer_are_taken_from_it() {
        let budget = RequestBudget::with_write_share(10);
        let now = Instant::now();
        assert_eq!(budget.take(now, Draw::Read), Ok(()));
        assert_eq!(budget.take(now, Draw::Read), Ok(()));
        // Nango counted the first only when it answered: 19 of 20 left.
        budget.observe(now, 19, Duration::from_secs(4), Some(20));
        let reads = std::iter::from_fn(|| budget.take(now, Draw::Read).ok())
            .take(100)
            .count();
        assert_eq!(reads, 16, "20 - 2 sent - 2 kept for writes");
        assert_eq!(budget.take(now, Draw::Write), Ok(()));
        assert_eq!(budget.take(now, Draw::Write), Ok(()));
        assert!(
            budget.take(now, Draw::Write).is_err(),
            "the window is used up"
        );
    }

    #[test]
    fn a_pause_holds_every_request_until_it_ends() {
        let budget = RequestBudget::default();
        let now = Instant::now();
        budget.pause(now, Duration::from_secs(3));
        budget.pause(now, Duration::from_secs(1));
        assert_eq!(
            budget.take(now, Draw::Read),
            Err(Duration::from_secs(3)),
            "the longer wait"
        );
        assert_eq!(
            budget.take(now + Duration::from_secs(3), Draw::Read),
            Ok(())
        );
    }
}
