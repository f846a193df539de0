//! An operator's decision on a write that ended `unknown` (`nango-sync writes resolve`): it
//! succeeded, it failed, or it is to be sent again. Only an unknown write is decided by hand.

use super::state::{resolve, Resolution, WriteState};
use super::stored::{Move, StoredWrite};
use crate::core::clock::Clock;
use crate::ports::{StoreError, WriteStore};

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no write with id {0:?} is kept")]
    NoSuchWrite(String),
    #[error("write {id:?} is {}, not unknown: only an unknown write is resolved by hand", .state.as_str())]
    NotUnknown { id: String, state: WriteState },
    #[error("write {0:?} moved while it was being resolved: look at it again")]
    Moved(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Moves the unknown write `id` as `resolution` says; the write as it is then. A write to send
/// again is `accepted`: it goes out the next time its request is taken.
pub async fn resolve_unknown(
    store: &impl WriteStore,
    clock: &dyn Clock,
    id: &str,
    resolution: Resolution,
) -> Result<StoredWrite, ResolveError> {
    let write = store
        .get_write(id)
        .await?
        .ok_or_else(|| ResolveError::NoSuchWrite(id.to_owned()))?;
    let state =
        resolve(write.position.state, resolution).map_err(|e| ResolveError::NotUnknown {
            id: id.to_owned(),
            state: e.0,
        })?;
    let at = clock.now_rfc3339();
    let outcome = format!(
        "resolved by an operator: {}",
        match resolution {
            Resolution::Succeeded => "succeeded",
            Resolution::Failed => "failed",
            Resolution::Retry => "to be sent again",
        }
    );
    let change = Move {
        from: write.position,
        to: write.position.in_state(state),
        outcome: Some(&outcome),
        at: &at,
    };
    if !store.move_write(id, &change).await? {
        return Err(ResolveError::Moved(id.to_owned()));
    }
    Ok(write.moved(&change))
}
