//! A write as the stores keep it: the request, where it is, what its last attempt came to. The
//! stores move it only by [`Move`]s, each conditional on the [`Position`] its mover saw.

use super::request::WriteRequest;
use super::state::{Next, WriteState};
use crate::core::stream::StreamKey;

/// The most of an outcome (an error, the provider's answer) kept on a write, in bytes: the rest is
/// cut, so a write's item stays well within DynamoDB's 400 KB with a request of
/// [`super::request::MAX_REQUEST_BYTES`].
pub const MAX_OUTCOME_BYTES: usize = 64 * 1024;

/// Where a write is, and how many attempts to send it began. Along a write's life no position
/// comes twice (an attempt moves `attempts` up, every other move changes the state), so a move
/// conditional on the position its mover saw succeeds for one mover only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub state: WriteState,
    pub attempts: u32,
}

impl Position {
    /// Where a write starts.
    pub const ACCEPTED: Position = Position {
        state: WriteState::Accepted,
        attempts: 0,
    };

    /// An attempt begins: sending, one attempt more.
    pub fn sending(self) -> Position {
        Position {
            state: WriteState::Sending,
            attempts: self.attempts + 1,
        }
    }

    /// The same attempts, in `state`.
    pub fn in_state(self, state: WriteState) -> Position {
        Position { state, ..self }
    }

    /// Where `next` moves a write from here.
    pub fn after(self, next: Next) -> Position {
        match next {
            Next::Retry => self.in_state(WriteState::Accepted),
            Next::Await => self.in_state(WriteState::Running),
            Next::End(state) => self.in_state(state),
        }
    }
}

/// One kept write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredWrite {
    pub request: WriteRequest,
    #[serde(flatten)]
    pub position: Position,
    /// RFC 3339, when it was first accepted.
    pub accepted_at: String,
    /// RFC 3339, when it last moved.
    pub changed_at: String,
    /// What its last attempt came to, in words (at most [`MAX_OUTCOME_BYTES`]).
    pub outcome: Option<String>,
    /// An attempt may have reached the provider without being known to have succeeded: a later
    /// refusal then ends the write unknown, not failed.
    pub maybe_reached: bool,
    /// The id Nango gave an async action it took (`running`): its result is asked by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
}

impl StoredWrite {
    /// A write just accepted.
    pub fn accepted(request: WriteRequest, at: &str) -> Self {
        Self {
            request,
            position: Position::ACCEPTED,
            accepted_at: at.to_owned(),
            changed_at: at.to_owned(),
            outcome: None,
            maybe_reached: false,
            action_id: None,
        }
    }

    /// A kept write from the fields a store keeps: the request's JSON text and the state's
    /// name. Refuses what this code did not write.
    pub fn from_kept(
        request: &str,
        state: &str,
        attempts: u32,
        accepted_at: String,
        changed_at: String,
        outcome: Option<String>,
        maybe_reached: bool,
    ) -> Result<Self, String> {
        let request: WriteRequest = serde_json::from_str(request)
            .map_err(|e| format!("kept write request unreadable: {e}"))?;
        let state = WriteState::parse(state)
            .ok_or_else(|| format!("kept write state {state:?} unknown"))?;
        Ok(Self {
            request,
            position: Position { state, attempts },
            accepted_at,
            changed_at,
            outcome,
            maybe_reached,
            action_id: None,
        })
    }

    /// The same write, with the async action id a store keeps beside it.
    pub fn with_action(self, action_id: Option<String>) -> Self {
        Self { action_id, ..self }
    }

    /// The request's JSON text, as a store keeps it.
    pub fn request_text(request: &WriteRequest) -> String {
        serde_json::to_string(request).expect("a write request always serializes")
    }

    /// The write after `change` (which the store checked applies).
    pub fn moved(mut self, change: &Move<'_>) -> Self {
        self.position = change.to;
        self.changed_at = change.at.to_owned();
        if let Some(outcome) = change.outcome {
            self.outcome = Some(bounded(outcome).to_owned());
        }
        if let Some(reached) = change.reached {
            self.maybe_reached = reached;
        }
        if let Some(action_id) = change.action_id {
            self.action_id = Some(action_id.to_owned());
        }
        self
    }
}

/// A write shown on the stored record it concerns (read your writes): its id and where it is. A
/// store keeps it beside the record until a sync writes the record whole again (the one that
/// brings the provider's new state, normally); a pruned record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingWrite {
    pub id: String,
    pub state: WriteState,
}

impl PendingWrite {
    /// The record `write` concerns (its stream and id) and the mark to show on it; none for a
    /// write that names no record.
    pub fn of(write: &StoredWrite) -> Option<(StreamKey, &str, PendingWrite)> {
        let record = write.request.record.as_ref()?;
        let stream = StreamKey::new(
            write.request.provider_config_key.clone(),
            write.request.connection_id.clone(),
            record.model.clone(),
            record.variant.clone(),
        );
        let mark = PendingWrite {
            id: write.request.id.clone(),
            state: write.position.state,
        };
        Some((stream, record.id.as_str(), mark))
    }
}

/// `writes` oldest accepted first, then by id: the order listings show.
pub fn oldest_first(writes: &mut [StoredWrite]) {
    writes.sort_by(|a, b| (&a.accepted_at, &a.request.id).cmp(&(&b.accepted_at, &b.request.id)));
}

/// What accepting a write found.
#[derive(Debug, Clone, PartialEq)]
pub enum Accept {
    /// The id was new: the write is kept, accepted.
    New,
    /// A write with this id is kept already, as it is here: nothing was changed.
    Duplicate(Box<StoredWrite>),
}

/// A conditional move of one write: from where its mover saw it to where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move<'a> {
    pub from: Position,
    pub to: Position,
    /// Replaces the kept outcome when given (cut to [`MAX_OUTCOME_BYTES`]); kept otherwise.
    pub outcome: Option<&'a str>,
    /// Sets [`StoredWrite::maybe_reached`] when given; kept otherwise.
    pub reached: Option<bool>,
    /// Sets [`StoredWrite::action_id`] when given (an async action Nango took); kept otherwise.
    pub action_id: Option<&'a str>,
    /// RFC 3339, now.
    pub at: &'a str,
}

/// `text` cut to at most [`MAX_OUTCOME_BYTES`], on a character boundary.
pub fn bounded(text: &str) -> &str {
    cut(text, MAX_OUTCOME_BYTES)
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_position_comes_twice_along_a_write_with_retries_and_a_resolution() {
        let path = [
            Position::ACCEPTED,
            Position::ACCEPTED.sending(),
            Position::ACCEPTED.sending().in_state(WriteState::Accepted),
            Position::ACCEPTED
                .sending()
                .in_state(WriteState::Accepted)
                .sending(),
        ];
        let unknown = path[3].in_state(WriteState::Unknown);
        let retried = unknown.in_state(WriteState::Accepted);
        let all = [path.as_slice(), &[unknown, retried, retried.sending()]].concat();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(retried.sending().attempts, 3);
    }

    #[test]
    fn an_outcome_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_OUTCOME_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_OUTCOME_BYTES && cut.len() > MAX_OUTCOME_BYTES - 2);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(bounded("short"), "short");
    }
}
