//! How many BatchWriteItem calls may be in flight: additive increase, multiplicative decrease.
//!
//! A partition takes about 1,000 write units a second; past that DynamoDB hands items back
//! unprocessed. Each throttled call halves the limit, each clean call adds 1/limit (about one more
//! call in flight per round of clean calls), between 1 and the ceiling (`WRITE_CONCURRENCY`). Shared by every write of
//! one store, so a stream's pages inherit what the last page learned.

use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Debug)]
pub struct WriteGate {
    state: Mutex<GateState>,
    freed: Notify,
    ceiling: f64,
}

#[derive(Debug)]
struct GateState {
    limit: f64,
    in_flight: usize,
    lowest: f64,
}

/// A call's place in flight; dropping it frees the place.
pub struct Permit<'a>(&'a WriteGate);

impl WriteGate {
    /// At most `ceiling` calls in flight, and that many at first.
    pub fn new(ceiling: usize) -> Self {
        let ceiling = ceiling.max(1) as f64;
        Self {
            state: Mutex::new(GateState {
                limit: ceiling,
                in_flight: 0,
                lowest: ceiling,
            }),
            freed: Notify::new(),
            ceiling,
        }
    }

    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let freed = self.freed.notified();
            {
                let mut state = self.lock();
                if (state.in_flight as f64) < state.limit.floor() {
                    state.in_flight += 1;
                    return Permit(self);
                }
            }
            freed.await;
        }
    }

    /// A call came back with items unprocessed, or throttled.
    pub fn throttled(&self) {
        let mut state = self.lock();
        state.limit = (state.limit / 2.0).max(1.0);
        state.lowest = state.lowest.min(state.limit);
    }

    /// A call wrote everything it carried.
    pub fn clean(&self) {
        let mut state = self.lock();
        state.limit = (state.limit + 1.0 / state.limit).min(self.ceiling);
        drop(state);
        self.freed.notify_waiters();
    }

    /// The calls allowed in flight now (whole calls).
    pub fn limit(&self) -> usize {
        self.lock().limit.floor() as usize
    }

    /// The lowest limit so far: how far throttling pushed it down.
    pub fn lowest(&self) -> usize {
        self.lock().lowest.floor() as usize
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The state is two numbers, consistent after every statement: a panic elsewhere cannot
        // leave it half-updated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
        self.0.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_halves_the_limit_and_clean_calls_grow_it_back() {
        let gate = WriteGate::new(16);
        gate.throttled();
        assert_eq!(gate.limit(), 8);
        for _ in 0..4 {
            gate.throttled();
        }
        assert_eq!(gate.limit(), 1, "never below one call");
        assert_eq!(gate.lowest(), 1);
        for _ in 0..6 {
            gate.clean();
        }
        // 1 + 1 + 1/2 + 1/2.5 + ...: additive, about one per round of clean calls.
        assert!((3..=4).contains(&gate.limit()), "{}", gate.limit());
        for _ in 0..1000 {
            gate.clean();
        }
        assert_eq!(gate.limit(), 16, "capped at the ceiling");
    }

    #[tokio::test]
    async fn no_more_calls_than_the_limit_are_in_flight() {
        let gate = WriteGate::new(2);
        let a = gate.acquire().await;
        let _b = gate.acquire().await;
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), gate.acquire());
        assert!(third.await.is_err(), "a third call got in");
        drop(a);
        let third = tokio::time::timeout(std::time::Duration::from_millis(500), gate.acquire());
        assert!(third.await.is_ok(), "a freed place was not handed on");
    }
}
