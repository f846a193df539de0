//! One write request taken through one attempt ([`take`]): accepted once by its id, sent at most
//! once unless safe to repeat; and taken again while it is not at an end, waiting between
//! attempts as Nango asks, until a deadline ([`take_until_ended`]). A write still not at an end
//! then is taken again when its message comes back.

use std::time::{Duration, Instant};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::request::WriteRequest;
use super::state::{after, after_interruption, Sent, WriteState};
use super::stored::{Accept, Move, StoredWrite};
use crate::core::clock::Clock;
use crate::ports::{StoreError, WriteSender, WriteStore};
use crate::retry::RetryPolicy;

/// The waits between attempts when Nango asked for none.
const BETWEEN_ATTEMPTS: RetryPolicy =
    RetryPolicy::new(3, Duration::from_secs(1), Duration::from_secs(30));

/// What a write found in `sending` past its lease is said to have come to.
pub const INTERRUPTED: &str =
    "interrupted: the worker sending it stopped before it knew how the attempt went";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakeSettings {
    /// Attempts to send a write, the first included.
    pub max_attempts: u32,
    /// The most one attempt may take, the wait for Nango's request budget included; past it the
    /// attempt counts as one that may have reached the provider.
    pub attempt_timeout: Duration,
    /// How long a write stays `sending` before a later delivery takes its worker for stopped:
    /// longer than `attempt_timeout`, so that no attempt outlives it.
    pub lease: Duration,
}

impl Default for TakeSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(90),
            lease: Duration::from_secs(120),
        }
    }
}

/// What taking a write came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// At an end, by this call.
    Ended(Box<StoredWrite>),
    /// At an end before this call: a duplicate request, answered with the first one's outcome.
    EndedBefore(Box<StoredWrite>),
    /// Accepted again, to be taken when its message comes back (after `retry_after`, if Nango
    /// asked for a wait).
    Again {
        write: Box<StoredWrite>,
        retry_after: Option<Duration>,
    },
    /// Another worker holds it (sending within its lease, or it moved first): nothing was sent.
    Busy,
    /// The id is kept for a different write: nothing ran. The kept one is as it was.
    IdReused(Box<StoredWrite>),
    /// An async action Nango took, running there: its result comes later ([`super::finish`]),
    /// by this call or before it.
    Running(Box<StoredWrite>),
}

impl Taken {
    /// The write as this call moved it; none when it moved nothing (a duplicate of an ended
    /// write, a write another worker holds, a reused id).
    pub fn moved(&self) -> Option<&StoredWrite> {
        match self {
            Self::Ended(w) | Self::Running(w) => Some(w),
            Self::Again { write, .. } => Some(write),
            Self::EndedBefore(_) | Self::Busy | Self::IdReused(_) => None,
        }
    }
}

/// Takes `request` through at most one attempt, started only if it can end by `until` (the
/// invocation's deadline): one that could not comes back [`Taken::Again`], unsent.
pub async fn take(
    store: &impl WriteStore,
    sender: &impl WriteSender,
    clock: &dyn Clock,
    request: &WriteRequest,
    settings: TakeSettings,
    until: Option<Instant>,
) -> Result<Taken, StoreError> {
    let now = clock.now_rfc3339();
    let mut write = match store.accept_write(request, &now).await? {
        Accept::New => StoredWrite::accepted(request.clone(), &now),
        Accept::Duplicate(kept) if kept.request != *request => return Ok(Taken::IdReused(kept)),
        Accept::Duplicate(kept) => *kept,
    };
    let may_repeat = write.request.may_repeat();
    let attempts = |w: &StoredWrite| w.position.attempts;
    match write.position.state {
        state if state.is_terminal() => return Ok(Taken::EndedBefore(Box::new(write))),
        WriteState::Running => return Ok(Taken::Running(Box::new(write))),
        WriteState::Sending => {
            if within_lease(&write.changed_at, clock.now(), settings.lease) {
                return Ok(Taken::Busy);
            }
            let next = after_interruption(may_repeat, attempts(&write), settings.max_attempts);
            let change = Move {
                from: write.position,
                to: write.position.after(next),
                outcome: Some(INTERRUPTED),
                at: &now,
                reached: Some(true),
                action_id: None,
            };
            if !store.move_write(&request.id, &change).await? {
                return Ok(Taken::Busy);
            }
            write = write.moved(&change);
            if write.position.state.is_terminal() {
                return Ok(Taken::Ended(Box::new(write)));
            }
        }
        _ => {}
    }

    // An attempt cut off by the invocation's end would leave the write `sending`, to end
    // `unknown` though it might never have gone out: none starts that could not end in time.
    if until.is_some_and(|until| Instant::now() + settings.attempt_timeout > until) {
        return Ok(Taken::Again {
            write: Box::new(write),
            retry_after: None,
        });
    }
    // The lease runs from this moment: the attempt starts right after it.
    let begin_at = clock.now_rfc3339();
    let begin = Move {
        from: write.position,
        to: write.position.sending(),
        outcome: None,
        at: &begin_at,
        reached: None,
        action_id: None,
    };
    if !store.move_write(&request.id, &begin).await? {
        return Ok(Taken::Busy);
    }
    write = write.moved(&begin);
    let sent = tokio::time::timeout(settings.attempt_timeout, sender.send(&write.request)).await;
    let Sent {
        attempt,
        detail,
        retry_after,
    } = sent.unwrap_or_else(|_| Sent {
        attempt: super::state::Attempt::Unsure,
        detail: Some(format!(
            "no answer within {:?}: the request may have gone out",
            settings.attempt_timeout
        )),
        retry_after: None,
    });
    let next = after(
        &attempt,
        may_repeat,
        attempts(&write),
        settings.max_attempts,
        write.maybe_reached,
    );
    let at = clock.now_rfc3339();
    let action_id = match &attempt {
        super::state::Attempt::Started { action_id } => Some(action_id.as_str()),
        _ => None,
    };
    let end = Move {
        from: write.position,
        to: write.position.after(next),
        outcome: detail.as_deref(),
        at: &at,
        reached: (attempt == super::state::Attempt::Unsure).then_some(true),
        action_id,
    };
    // Refused only if a later delivery took this worker for stopped (the attempt outlasted the
    // lease): that delivery decided the write's fate, which stands, unless all it could say was
    // `unknown` and this attempt knows the write succeeded.
    if !store.move_write(&request.id, &end).await? {
        if end.to.state == WriteState::Succeeded {
            let known = Move {
                from: write.position.in_state(WriteState::Unknown),
                ..end
            };
            if store.move_write(&request.id, &known).await? {
                return Ok(Taken::Ended(Box::new(write.moved(&known))));
            }
        }
        tracing::warn!(
            write_id = %request.id,
            came_to = end.to.state.as_str(),
            "a write's attempt ended after its lease; the state another delivery gave it stands"
        );
        return Ok(Taken::Busy);
    }
    write = write.moved(&end);
    Ok(if write.position.state.is_terminal() {
        Taken::Ended(Box::new(write))
    } else if write.position.state == WriteState::Running {
        Taken::Running(Box::new(write))
    } else {
        Taken::Again {
            write: Box::new(write),
            retry_after,
        }
    })
}

/// Takes `request` until it is at an end, another worker holds it, or the next attempt would
/// start after `until` (then it comes back [`Taken::Again`], for its message to be redelivered).
pub async fn take_until_ended(
    store: &impl WriteStore,
    sender: &impl WriteSender,
    clock: &dyn Clock,
    request: &WriteRequest,
    settings: TakeSettings,
    until: Option<Instant>,
) -> Result<Taken, StoreError> {
    loop {
        let taken = take(store, sender, clock, request, settings, until).await?;
        let Taken::Again { write, retry_after } = &taken else {
            return Ok(taken);
        };
        let wait = retry_after
            .unwrap_or_else(|| BETWEEN_ATTEMPTS.backoff(write.position.attempts.saturating_sub(1)));
        if until.is_some_and(|until| Instant::now() + wait + settings.attempt_timeout > until) {
            return Ok(taken);
        }
        tracing::info!(
            write_id = %request.id,
            attempts = write.position.attempts,
            ?wait,
            "write not through yet; sent again after the wait"
        );
        tokio::time::sleep(wait).await;
    }
}

/// Whether a write that moved at `changed_at` is still within its lease at `now`. A time this
/// code did not write counts as past it.
fn within_lease(changed_at: &str, now: OffsetDateTime, lease: Duration) -> bool {
    OffsetDateTime::parse(changed_at, &Rfc3339).is_ok_and(|at| now < at + lease)
}
