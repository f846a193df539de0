//! A write's states and the at-most-once rules that move it between them. One state item per
//! write id, moved only by conditional transitions (the stores' job), so that two workers, or a
//! redelivered message, can never both send it:
//!
//! ```text
//! accepted ──> sending ──> succeeded | failed | unknown
//!    ^            │   │
//!    │            │   └──> running ──> succeeded | failed | unknown
//!    └── retry ───┘   (only when nothing was sent, or the write is safe to repeat)
//! ```
//!
//! `running` is an async action Nango took (202, an action id): its result is learned later,
//! from the `async_action` webhook or the reconcile's check ([`super::finish`]).
//!
//! `unknown` means the request may have reached the provider and the write is not safe to
//! repeat: it is never sent again unless an operator says so ([`resolve`]).

use serde::{Deserialize, Serialize};

/// Where a write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteState {
    /// Taken, not sent yet (or to be sent again).
    Accepted,
    /// A worker is sending it: the request may be on its way to the provider.
    Sending,
    /// An async action Nango took: it runs in Nango, its result is awaited.
    Running,
    Succeeded,
    Failed,
    /// It may or may not have reached the provider; not sent again without an operator.
    Unknown,
}

impl WriteState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Sending => "sending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }

    /// The state [`Self::as_str`] names.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Accepted,
            Self::Sending,
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Unknown,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// What one attempt to send a write came to, as the adapter that sent it classifies Nango's or
/// the provider's answer (nango-writeback.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Done: the output, as Nango returned it.
    Succeeded,
    /// An async action Nango took (202): it runs later, under this id (`GET /action/{id}`).
    Started { action_id: String },
    /// Known to have stopped before the provider was reached: connection refused, Nango's 429,
    /// Nango's own validation errors. `retryable` for the passing ones (a refused connection, a
    /// 429), not for a request Nango will always refuse (an unknown connection or tool).
    NotSent { retryable: bool },
    /// The provider (or the action's script) answered with an error: it refused the write.
    Refused,
    /// It may have reached the provider: a timeout or a connection dropped after the request
    /// went out, a 5xx from Nango while the action ran.
    Unsure,
}

/// One attempt as its sender saw it: what it came to, in words (Nango's or the provider's error,
/// or the output), and how long Nango asked to wait before another (a 429's `Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub attempt: Attempt,
    pub detail: Option<String>,
    pub retry_after: Option<std::time::Duration>,
}

/// What Nango said of an async action's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    /// 404: no result (waiting or running, an unknown id, or a purged result).
    NotFound,
    /// It finished: how, classified as a synchronous answer would be.
    Finished(Sent),
    /// Nango could not be asked (unreachable, its rate limit, its key, an error of its own):
    /// nothing is known of the action.
    NotLearned(String),
}

/// What becomes of a write after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Back to `accepted`, to be sent again (after a wait).
    Retry,
    /// `running`: Nango took an async action; its result is awaited.
    Await,
    /// A terminal state.
    End(WriteState),
}

/// The at-most-once rule. `may_repeat`: the write is safe to repeat
/// (`WriteRequest::may_repeat`); `attempts`: how many were made, this one included;
/// `reached_before`: an earlier attempt may have reached the provider (it ended unsure, or its
/// worker stopped), so a refusal now says nothing of it: the write ends unknown, not failed.
pub fn after(
    attempt: &Attempt,
    may_repeat: bool,
    attempts: u32,
    max_attempts: u32,
    reached_before: bool,
) -> Next {
    let room = attempts < max_attempts;
    let failed = if reached_before {
        WriteState::Unknown
    } else {
        WriteState::Failed
    };
    match attempt {
        Attempt::Succeeded => Next::End(WriteState::Succeeded),
        Attempt::Started { .. } => Next::Await,
        Attempt::Refused | Attempt::NotSent { retryable: false } => Next::End(failed),
        Attempt::NotSent { retryable: true } if room => Next::Retry,
        Attempt::NotSent { retryable: true } => Next::End(failed),
        Attempt::Unsure if may_repeat && room => Next::Retry,
        // Out of attempts while it may have reached the provider: nobody knows.
        Attempt::Unsure => Next::End(WriteState::Unknown),
    }
}

/// A write found in `sending` when its message comes again: the worker that was sending it
/// stopped (a crash, a timeout) before recording how it went. The request may have gone out.
pub fn after_interruption(may_repeat: bool, attempts: u32, max_attempts: u32) -> Next {
    after(&Attempt::Unsure, may_repeat, attempts, max_attempts, true)
}

/// An operator's decision on an `unknown` write (`nango-sync writes resolve ID ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The provider shows the write: it succeeded.
    Succeeded,
    /// The provider does not show it: it failed, and is not sent again.
    Failed,
    /// Send it again: the operator checked that the provider does not have it.
    Retry,
}

/// Why a decision on a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("write is {}, not unknown: only an unknown write is resolved by hand", .0.as_str())]
pub struct NotUnknown(pub WriteState);

/// The state an operator's decision moves an `unknown` write to.
pub fn resolve(state: WriteState, resolution: Resolution) -> Result<WriteState, NotUnknown> {
    if state != WriteState::Unknown {
        return Err(NotUnknown(state));
    }
    Ok(match resolution {
        Resolution::Succeeded => WriteState::Succeeded,
        Resolution::Failed => WriteState::Failed,
        Resolution::Retry => WriteState::Accepted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 3;

    #[test]
    fn a_write_that_may_have_reached_the_provider_is_sent_again_only_if_safe_to_repeat() {
        assert_eq!(
            after(&Attempt::Unsure, false, 1, MAX, false),
            Next::End(WriteState::Unknown)
        );
        assert_eq!(after(&Attempt::Unsure, true, 1, MAX, false), Next::Retry);
        assert_eq!(
            after(&Attempt::Unsure, true, MAX, MAX, false),
            Next::End(WriteState::Unknown)
        );
        assert_eq!(
            after_interruption(false, 1, MAX),
            Next::End(WriteState::Unknown)
        );
        assert_eq!(after_interruption(true, 1, MAX), Next::Retry);
    }

    #[test]
    fn what_stopped_before_the_provider_is_retried_or_failed_as_such() {
        let passing = Attempt::NotSent { retryable: true };
        assert_eq!(after(&passing, false, 1, MAX, false), Next::Retry);
        assert_eq!(
            after(&passing, false, MAX, MAX, false),
            Next::End(WriteState::Failed)
        );
        let refused_by_nango = Attempt::NotSent { retryable: false };
        assert_eq!(
            after(&refused_by_nango, true, 1, MAX, false),
            Next::End(WriteState::Failed)
        );
        assert_eq!(
            after(&Attempt::Refused, true, 1, MAX, false),
            Next::End(WriteState::Failed)
        );
        assert_eq!(
            after(&Attempt::Succeeded, false, 1, MAX, false),
            Next::End(WriteState::Succeeded)
        );
        // After an attempt that may have reached the provider, a refusal proves nothing.
        assert_eq!(
            after(&Attempt::Refused, true, 2, MAX, true),
            Next::End(WriteState::Unknown)
        );
        assert_eq!(
            after(&passing, true, MAX, MAX, true),
            Next::End(WriteState::Unknown)
        );
    }

    #[test]
    fn only_an_unknown_write_is_resolved_by_hand() {
        let unknown = WriteState::Unknown;
        assert_eq!(
            resolve(unknown, Resolution::Retry),
            Ok(WriteState::Accepted)
        );
        assert_eq!(
            resolve(unknown, Resolution::Succeeded),
            Ok(WriteState::Succeeded)
        );
        assert_eq!(resolve(unknown, Resolution::Failed), Ok(WriteState::Failed));
        for state in [
            WriteState::Accepted,
            WriteState::Sending,
            WriteState::Succeeded,
            WriteState::Failed,
        ] {
            assert_eq!(resolve(state, Resolution::Retry), Err(NotUnknown(state)));
        }
        assert!(WriteState::Unknown.is_terminal() && !WriteState::Sending.is_terminal());
    }
}
