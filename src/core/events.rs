//! The event a completed sync job publishes for applications downstream ("Stream synced",
//! "Stream held", "Stream in error"): what the job did to one stream, counts only, no records.
//! And a finished write's ("Write succeeded", "Write failed", "Write unknown").
//! Built here, once, from the job's outcome; the worker hands it to its
//! [`EventPublisher`](crate::ports::EventPublisher).

use serde_json::{json, Value};

use crate::core::job::Trigger;
use crate::core::outcome::{JobOutcome, SyncEnd};
use crate::core::state::SweepOutcome;
use crate::core::stream::StreamKey;
use crate::core::writes::request::Operation;
use crate::core::writes::state::WriteState;
use crate::core::writes::stored::{cut, StoredWrite};

/// The events' `source`.
pub const SOURCE: &str = "nango-sync";

/// The most of a write's outcome its event carries inline, in bytes (EventBridge takes 256 KB an
/// entry): past it the event says `outcome_cut`, and the state item has the rest.
pub const WRITE_OUTCOME_INLINE_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    pub detail_type: &'static str,
    pub detail: Value,
}

impl StreamEvent {
    /// A finished write's event: `Write succeeded`, `Write failed` or `Write unknown`, with what
    /// ran, how many attempts, how long, and what it came to (Nango's or the provider's answer, cut
    /// to [`WRITE_OUTCOME_INLINE_BYTES`]; the whole of it stays on the write's state item).
    /// `first`: the job ended the write; a duplicate request repeats the event (`repeated`), so
    /// that an end whose first event was lost is still told.
    pub fn of_write(write: &StoredWrite, first: bool, duration_ms: u64) -> Self {
        let detail_type = match write.position.state {
            WriteState::Succeeded => "Write succeeded",
            WriteState::Failed => "Write failed",
            _ => "Write unknown",
        };
        let request = &write.request;
        let ran = match &request.run {
            Operation::Tool { name, .. } => json!({"kind": "tool", "name": name}),
            Operation::Action { name, .. } => json!({"kind": "action", "name": name}),
            Operation::Proxy { method, path, .. } => {
                json!({"kind": "proxy", "method": method, "path": path})
            }
        };
        let outcome = write.outcome.as_deref().unwrap_or("");
        let inline = cut(outcome, WRITE_OUTCOME_INLINE_BYTES);
        Self {
            detail_type,
            detail: json!({
                "id": request.id,
                "provider_config_key": request.provider_config_key,
                "connection_id": request.connection_id,
                "ran": ran,
                "record": request.record,
                "state": write.position.state,
                "attempts": write.position.attempts,
                "accepted_at": write.accepted_at,
                "ended_at": write.changed_at,
                "duration_ms": duration_ms,
                "outcome": inline,
                "outcome_cut": inline.len() < outcome.len(),
                "repeated": !first,
            }),
        }
    }

    /// The event for a sync job's outcome; None for a job that is not about one stream's sync.
    pub fn of_outcome(
        stream: &StreamKey,
        trigger: Trigger,
        outcome: &JobOutcome,
        duration_ms: u64,
    ) -> Option<Self> {
        let (detail_type, mut detail) = match outcome {
            JobOutcome::Synced(summary) | JobOutcome::Continued(summary) => {
                let held = summary.sweep_outcome == Some(SweepOutcome::Held);
                let sweep = summary.sweep.as_ref().map(|sweep| {
                    json!({
                        "outcome": summary.sweep_outcome,
                        "pages": sweep.pages,
                        "deleted": sweep.deleted,
                    })
                });
                let detail = json!({
                    // More of the stream is to be read (not a drift check going on).
                    "continued": summary.end == SyncEnd::DeadlineReached,
                    "pages": summary.pages,
                    "added": summary.added,
                    "updated": summary.updated,
                    "deleted": summary.deleted,
                    "pruned": summary.pruned,
                    "rejected": summary.rejected,
                    // Served again as the copy held them (a re-read): not written.
                    "unchanged": summary.unchanged,
                    "cursor_before": summary.cursor_before,
                    "cursor_after": summary.cursor,
                    "cursor_moved": summary.cursor_moved,
                    "sweep": sweep,
                });
                let detail_type = if held { "Stream held" } else { "Stream synced" };
                (detail_type, detail)
            }
            JobOutcome::StreamInError(error) => ("Stream in error", json!({ "error": error })),
            _ => return None,
        };
        let fields = detail.as_object_mut().expect("built as an object");
        fields.insert("stream".into(), json!(stream.encode()));
        fields.insert(
            "provider_config_key".into(),
            json!(stream.provider_config_key),
        );
        fields.insert("connection_id".into(), json!(stream.connection_id));
        fields.insert("model".into(), json!(stream.model));
        fields.insert("variant".into(), json!(stream.variant));
        fields.insert("trigger".into(), json!(trigger.as_str()));
        fields.insert("duration_ms".into(), json!(duration_ms));
        Some(Self {
            detail_type,
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::outcome::SyncSummary;

    fn summary(deleted: u64) -> SyncSummary {
        SyncSummary {
            end: SyncEnd::UpToDate,
            pages: 2,
            written: 10,
            added: 7,
            updated: 3,
            deleted,
            pruned: 0,
            rejected: 0,
            unchanged: 0,
            cursor: Some("c2".into()),
            cursor_before: Some("c1".into()),
            cursor_moved: true,
            newest_modified_at: None,
            sweep: None,
            sweep_outcome: None,
        }
    }

    fn event(outcome: &JobOutcome) -> Option<StreamEvent> {
        let stream = StreamKey::new("crm", "conn-0", "Deal", "base");
        StreamEvent::of_outcome(&stream, Trigger::Reconcile, outcome, 12)
    }

    #[test]
    fn a_held_sweep_makes_the_event_stream_held_with_the_sweeps_result() {
        let mut held = summary(0);
        held.sweep = Some(Box::new(summary(0)));
        held.sweep_outcome = Some(SweepOutcome::Held);
        let e = event(&JobOutcome::Synced(held)).unwrap();
        assert_eq!(e.detail_type, "Stream held");
        assert_eq!(e.detail["sweep"]["outcome"], "held");
        assert_eq!(e.detail["trigger"], "reconcile");
        assert_eq!(e.detail["stream"], "crm|conn-0|Deal|base");

        let e = event(&JobOutcome::Synced(summary(1))).unwrap();
        assert_eq!(e.detail_type, "Stream synced");
        assert_eq!(
            (e.detail["deleted"].as_u64(), e.detail["sweep"].is_null()),
            (Some(1), true)
        );
        assert_eq!(
            (&e.detail["cursor_before"], &e.detail["cursor_after"]),
            (&json!("c1"), &json!("c2"))
        );
    }

    #[test]
    fn a_stream_in_error_says_why_and_other_jobs_have_no_event() {
        let e = event(&JobOutcome::StreamInError("connection gone".into())).unwrap();
        assert_eq!(e.detail_type, "Stream in error");
        assert_eq!(e.detail["error"], "connection gone");
        assert_eq!(e.detail["duration_ms"], 12);
        assert!(event(&JobOutcome::EventStored).is_none());
        let cut_short = SyncSummary {
            end: SyncEnd::DeadlineReached,
            ..summary(0)
        };
        assert!(event(&JobOutcome::Continued(cut_short)).unwrap().detail["continued"] == true);
        // Up to date, only its drift check goes on: nothing more to read.
        let checking = SyncSummary {
            end: SyncEnd::CheckGoesOn,
            ..summary(0)
        };
        assert!(event(&JobOutcome::Continued(checking)).unwrap().detail["continued"] == false);
    }

    #[test]
    fn a_write_event_carries_its_outcome_cut_to_the_bound() {
        let request = crate::core::writes::request::WriteRequest::parse(
            include_str!("../../events/write-request.json").as_bytes(),
        )
        .unwrap();
        let mut write = StoredWrite::accepted(request, "2026-12-07T10:00:00.000Z");
        write.position.state = WriteState::Unknown;
        write.outcome = Some("é".repeat(WRITE_OUTCOME_INLINE_BYTES));
        let event = StreamEvent::of_write(&write, true, 5);
        assert_eq!(event.detail_type, "Write unknown");
        let outcome = event.detail["outcome"].as_str().unwrap();
        assert!(outcome.len() <= WRITE_OUTCOME_INLINE_BYTES && outcome.len() > 8000);
        assert_eq!(event.detail["outcome_cut"], true);
        assert_eq!(event.detail["ran"]["name"], "close-deal");
        write.outcome = Some("ok".into());
        let repeated = StreamEvent::of_write(&write, false, 5);
        assert_eq!(repeated.detail["outcome_cut"], false);
        assert_eq!(repeated.detail["repeated"], true);
    }
}
