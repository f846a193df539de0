//! An async action's end: Nango took it (the write is `running`, with Nango's action id) and runs
//! it later; its result is asked for (`GET /action/{id}`) when the `async_action` webhook says it
//! finished, and by the reconcile for every write still running (a webhook Nango dropped).
//!
//! Nango answers 404 while the action waits or runs, for an id it does not know, and once its
//! result is purged (about 5 days after it ended): a 404 says nothing until the action could no
//! longer be running ([`RESULT_WINDOW`]); past that, no result will ever come and the write ends
//! `unknown` (it may have run).

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::state::{after, ActionResult, Attempt, Next, Sent, WriteState};
use super::stored::{Move, StoredWrite};
use crate::core::clock::Clock;
use crate::ports::{StoreError, WriteSender, WriteStore};

/// How long after Nango took an async action a 404 may still mean "not finished": it must start
/// within 24 hours and runs at most 15 minutes (nango-writeback.md).
pub const RESULT_WINDOW: Duration = Duration::from_secs(24 * 3600 + 15 * 60);

/// What asking for an async action's result came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// At an end, by this call.
    Ended(Box<StoredWrite>),
    /// Still running: Nango has no result yet, or could not be asked. Asked again later.
    StillRunning(Box<StoredWrite>),
    /// The action failed before it reached the provider, or the write is safe to repeat: the
    /// write is accepted again, to be sent anew from a message of its own.
    Again(Box<StoredWrite>),
    /// The write is not running (anymore): a duplicate webhook, or another worker ended it.
    NotRunning(Box<StoredWrite>),
}

/// Asks for the result of the action the running `write` is waiting on, and moves the write as it
/// says. `max_attempts` as in `TakeSettings`.
pub async fn finish(
    store: &impl WriteStore,
    sender: &impl WriteSender,
    clock: &dyn Clock,
    write: StoredWrite,
    max_attempts: u32,
) -> Result<Finished, StoreError> {
    let (WriteState::Running, Some(action_id)) = (write.position.state, write.action_id.clone())
    else {
        return Ok(Finished::NotRunning(Box::new(write)));
    };
    let (next, detail, reached) = match sender.action_result(&write.request, &action_id).await {
        ActionResult::NotLearned(why) => {
            tracing::warn!(write_id = %write.request.id, %action_id, why, "async action's result not learned; asked again later");
            return Ok(Finished::StillRunning(Box::new(write)));
        }
        ActionResult::NotFound if !past_window(&write.changed_at, clock) => {
            return Ok(Finished::StillRunning(Box::new(write)));
        }
        ActionResult::NotFound => (
            Next::End(WriteState::Unknown),
            Some(format!(
                "Nango has no result for action {action_id} {RESULT_WINDOW:?} after it took it: \
                 it never ran, or its result was purged before it was read"
            )),
            Some(true),
        ),
        ActionResult::Finished(Sent {
            attempt, detail, ..
        }) => {
            let next = after(
                &attempt,
                write.request.may_repeat(),
                write.position.attempts,
                max_attempts,
                write.maybe_reached,
            );
            (next, detail, (attempt == Attempt::Unsure).then_some(true))
        }
    };
    let at = clock.now_rfc3339();
    let change = Move {
        from: write.position,
        to: write.position.after(next),
        outcome: detail.as_deref(),
        at: &at,
        reached,
        action_id: None,
    };
    if !store.move_write(&write.request.id, &change).await? {
        // The webhook and the reconcile's check, or two deliveries, asked at once: one moved it.
        let now = store.get_write(&write.request.id).await?.unwrap_or(write);
        return Ok(Finished::NotRunning(Box::new(now)));
    }
    let write = Box::new(write.moved(&change));
    Ok(match write.position.state {
        WriteState::Accepted => Finished::Again(write),
        WriteState::Running => Finished::StillRunning(write),
        _ => Finished::Ended(write),
    })
}

/// Whether the write that went `running` at `since` is past [`RESULT_WINDOW`]. A time this code
/// did not write counts as past it.
fn past_window(since: &str, clock: &dyn Clock) -> bool {
    OffsetDateTime::parse(since, &Rfc3339).map_or(true, |at| clock.now() >= at + RESULT_WINDOW)
}
