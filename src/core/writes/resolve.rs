//! An operator's decision on a write that ended `unknown` (`nango-sync writes resolve`): it
//! succeeded, it failed, or it is to be sent again. Only an unknown write is decided by hand, and
//! sent again only once the first request can no longer land.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::state::{resolve, Resolution, WriteState};
use super::stored::{Move, StoredWrite};
use crate::core::clock::Clock;
use crate::ports::{StoreError, WriteStore};

/// How long after a write ended unknown its request may still land: Nango runs a tool or an
/// action for up to 15 minutes (nango-writeback.md), whatever our side's timeout, and a proxy
/// call's provider may still be at work. Until then, the provider not showing the write proves
/// nothing.
pub const SETTLE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("write {id:?} ended unknown at {at}: its request may still land until {until}, so the provider not showing it yet proves nothing; retry after that (or force it)")]
    TooSoon {
        id: String,
        at: String,
        until: String,
    },
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
/// again is `accepted`: it goes out the next time its request is taken. A retry within
/// [`SETTLE`] of the write's end is refused unless `force`d.
pub async fn resolve_unknown(
    store: &impl WriteStore,
    clock: &dyn Clock,
    id: &str,
    resolution: Resolution,
    force: bool,
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
    if resolution == Resolution::Retry && !force {
        let settled = OffsetDateTime::parse(&write.changed_at, &Rfc3339)
            .map(|at| at + SETTLE)
            .ok();
        if settled.is_none_or(|settled| clock.now() < settled) {
            return Err(ResolveError::TooSoon {
                id: id.to_owned(),
                at: write.changed_at.clone(),
                until: settled.map_or_else(|| "unknown".to_owned(), crate::core::clock::rfc3339),
            });
        }
    }
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
        // To send again is the operator's word that the provider does not have it.
        reached: (resolution == Resolution::Retry).then_some(false),
        action_id: None,
    };
    if !store.move_write(id, &change).await? {
        return Err(ResolveError::Moved(id.to_owned()));
    }
    Ok(write.moved(&change))
}
