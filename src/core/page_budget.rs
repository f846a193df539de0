//! One memory budget for the record pages the streams of a process hold at once (read and not
//! yet written): streams side by side share it, so running them together costs about the memory
//! of one. A page's body waits for room once Nango is ready to send it (a stream waiting on a slow
//! Nango holds none), and the page gives it back when it is dropped, once written.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default budget, chosen by measurement (BENCHMARKS.md, "Streams side by side").
pub const DEFAULT_PAGE_BUDGET_BYTES: usize = 4 << 20;

/// What a stream's first page is taken to weigh, before any page of it was seen: 1,000 records
/// of about 1 KB (Nango's default page).
pub const FIRST_PAGE_BYTES: usize = 1 << 20;

/// The process's budget of page bytes in memory, shared by every stream's sync.
#[derive(Debug, Clone)]
pub struct PageBudget {
    kib: u32,
    room: Arc<Semaphore>,
}

/// Room a page holds in the budget until it (and every clone of it) is dropped; none for a page
/// read outside any budget. Rooms compare equal: a page's room is not its content.
#[derive(Debug, Clone, Default)]
pub struct PageRoom {
    _held: Option<Arc<OwnedSemaphorePermit>>,
}

impl PartialEq for PageRoom {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl PageBudget {
    pub fn new(bytes: usize) -> Self {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        Self {
            kib,
            room: Arc::new(Semaphore::new(kib as usize)),
        }
    }

    /// Waits for room for a page of about `bytes`. A page larger than the whole budget takes all
    /// of it: it waits for the others, then runs alone.
    pub async fn room_for(&self, bytes: usize) -> PageRoom {
        let wanted = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        let held = Arc::clone(&self.room)
            .acquire_many_owned(wanted.clamp(1, self.kib))
            .await
            .expect("the budget's semaphore is never closed");
        PageRoom {
            _held: Some(Arc::new(held)),
        }
    }
}

impl Default for PageBudget {
    fn default() -> Self {
        Self::new(DEFAULT_PAGE_BUDGET_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn room_is_waited_for_and_given_back() {
        let budget = PageBudget::new(3 << 20);
        let first = budget.room_for(2 << 20).await;
        let second = budget.room_for(1 << 20).await;
        let third = tokio::time::timeout(Duration::from_millis(50), budget.room_for(1 << 20));
        assert!(third.await.is_err(), "the budget is full");
        drop(first);
        let _third = budget.room_for(1 << 20).await;
        drop(second);
        // Larger than the whole budget: it takes all of it.
        let whole = tokio::time::timeout(Duration::from_millis(50), budget.room_for(10 << 20));
        assert!(whole.await.is_err(), "waits for the others");
        drop(_third);
        let _whole = budget.room_for(10 << 20).await;
    }
}
