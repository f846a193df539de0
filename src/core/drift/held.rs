//! An operator's decision on a held sweep: apply exactly what was held, or keep the copy.

use crate::core::clock::Clock;
use crate::core::drift::sweep;
use crate::core::state::{SweepOutcome, SweepResult};
use crate::core::stream::StreamKey;
use crate::ports::{RecordStore, StateStore, StoreError};

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

/// Applies or drops a held sweep. Confirming compares the sweep's notes with the copy again and
/// checks first that it still finds what was held (records written since may be ones the sweep
/// never saw); otherwise nothing changes.
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
        let found = sweep::compare(records, state, stream, &held.sweep_id).await?;
        let unseen = found.unseen.len() as u64;
        if unseen != held.would_delete || found.live != held.live_count {
            return Err(HoldError::CountsChanged {
                stream: stream.encode(),
                held_delete: held.would_delete,
                held_live: held.live_count,
                now_delete: unseen,
                now_live: found.live,
            });
        }
        result.tombstoned = records.remove_unseen(stream, &found.unseen, &at).await?;
        result.live_count = found.live.saturating_sub(result.tombstoned);
        result.outcome = SweepOutcome::Confirmed;
    }
    if !state.release_hold(stream, &held.sweep_id, &result).await? {
        return Err(HoldError::NoHeldSweep(stream.encode()));
    }
    state.forget_seen(stream, &held.sweep_id).await?;
    tracing::warn!(
        stream = %stream.encode(),
        outcome = result.outcome.as_str(),
        tombstoned = result.tombstoned,
        "held sweep decided by an operator"
    );
    Ok(result)
}
