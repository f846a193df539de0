//! One retry policy for every adapter that retries: how many attempts, the first backoff, its
//! cap, and jitter. Each adapter decides in one place which of its errors are worth another
//! attempt ([`Class`]); none retries on top of another layer's retries.

use std::time::Duration;

/// Attempts (the first included), exponential backoff from `base` up to `cap`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// Wait anywhere from half the step to the whole step (so retries of many callers spread).
    pub jitter: bool,
}

impl RetryPolicy {
    pub const fn new(attempts: u32, base: Duration, cap: Duration) -> Self {
        Self {
            attempts,
            base,
            cap,
            jitter: true,
        }
    }

    /// The wait after failed attempt `failed` (0 for the first): `base * 2^failed`, capped.
    pub fn backoff(&self, failed: u32) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << failed.min(16))
            .min(self.cap);
        if !self.jitter {
            return step;
        }
        let half = step / 2;
        half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64))
    }

    /// Whether a `failed`-th failure (counting from 1) leaves attempts to make.
    pub fn allows_another(&self, failed: u32) -> bool {
        failed < self.attempts
    }
}

/// What an adapter's error is, for retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Worth another attempt: throttling, unavailability, a cut connection.
    Transient,
    /// Retrying cannot help.
    Permanent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_within_its_jitter() {
        let policy = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(350));
        let exact = RetryPolicy {
            jitter: false,
            ..policy
        };
        let steps: Vec<u128> = (0..4).map(|f| exact.backoff(f).as_millis()).collect();
        assert_eq!(steps, [100, 200, 350, 350]);
        for failed in 0..6 {
            let step = exact.backoff(failed);
            let wait = policy.backoff(failed);
            assert!(wait >= step / 2 && wait <= step, "{wait:?} for {step:?}");
        }
        assert!(policy.allows_another(4) && !policy.allows_another(5));
    }
}
