//! The one clock core reads: the system's, or a fixed one that tests set and move. Core takes a
//! [`Clock`] from its caller and never asks the system for the time itself, so the rules that
//! depend on time (retention, readiness, lag) are tested with time, not around it.
//! (Monotonic `Instant`s for deadlines and bounds are not wall-clock time and stay as they are.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;

    /// [`Clock::now`] as job messages and state items carry times.
    fn now_rfc3339(&self) -> String {
        rfc3339(self.now())
    }
}

/// A time as RFC 3339 UTC with milliseconds, as Nango writes times.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The system's clock: what the deployed functions, the CLI and the local run use.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The system's clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// The system's time as [`rfc3339`]: for the edges (the CLI, the local run, tests), never core.
pub fn now_rfc3339() -> String {
    SystemClock.now_rfc3339()
}

/// A clock that stands still until it is moved: for tests.
#[derive(Debug)]
pub struct FixedClock(Mutex<OffsetDateTime>);

impl FixedClock {
    pub fn at(t: OffsetDateTime) -> Self {
        Self(Mutex::new(t))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told() {
        let clock = FixedClock::at(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        assert_eq!(clock.now_rfc3339(), "2027-01-15T08:00:00.000Z");
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now_rfc3339(), "2027-01-15T08:00:01.500Z");
    }
}
