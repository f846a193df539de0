//! How many live records a page of Nango's changes adds to the copy, net, worked out from
//! Nango's own metadata, without reading the copy.
//!
//! Nango's `recordCount` moves by the net of what its syncs apply: a record added or undeleted
//! +1, a live one deleted −1, pruning 0 (nango-2026.md, "recordCount"). A copy that follows the
//! stream by cursor moves by the same net, page by page; so when Nango's count moved by exactly
//! what the copy applied since a check that agreed, the drift check has nothing to count.
//!
//! A copy that has applied every change up to a cursor holds, for each record, its newest
//! version at or before that position in Nango's order (`updated_at`, uuid). Whether that
//! version was live follows from the newer version a page serves, because Nango's timestamps
//! say when the record's life began and ended: an undelete resets `created_at` (served as
//! `first_seen_at`), a soft delete stamps `deleted_at` and moves the record to that position.
//! - served live: it was live at the cursor iff it began at or before it;
//! - served deleted: it was live at the cursor iff it began at or before it and was deleted
//!   after it.
//!
//! One sequence escapes this: a record deleted and undeleted (or the reverse) between two
//! syncs. The sum is then off, the check finds Nango's count disagreeing, and it counts: a
//! wrong sum costs a count, never a wrong verdict on its own.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::core::record::NangoRecord;

/// A place in Nango's order of a stream's records: (a timestamp, the record's uuid). Ties on
/// the timestamp are common (a batch saved in one transaction shares it), so the uuid counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    at: OffsetDateTime,
    uuid: String,
}

impl Position {
    /// A cursor's place: base64 of `<timestamp>||<uuid>` (nango-contract.md §5).
    fn of_cursor(cursor: &str) -> Option<Self> {
        let text = String::from_utf8(BASE64.decode(cursor).ok()?).ok()?;
        let (at, uuid) = text.split_once("||")?;
        Some(Self {
            at: OffsetDateTime::parse(at, &Rfc3339).ok()?,
            uuid: uuid.to_ascii_lowercase(),
        })
    }

    /// The same record at another of its timestamps.
    fn at(&self, timestamp: &str) -> Option<Self> {
        Some(Self {
            at: OffsetDateTime::parse(timestamp, &Rfc3339).ok()?,
            uuid: self.uuid.clone(),
        })
    }
}

/// The net change in live records that applying `records` (one page, in Nango's order) makes to
/// a copy that has applied everything up to cursor `from`. `None` when a record's metadata does
/// not tell (no `first_seen_at`, a timestamp or cursor that does not parse).
pub fn page_live_change(records: &[NangoRecord], from: &str) -> Option<i64> {
    let from = Position::of_cursor(from)?;
    let mut change = 0i64;
    let mut counted = HashSet::with_capacity(records.len());
    // An id served twice in a page: its last version is what the copy ends with.
    for record in records.iter().rev() {
        if !counted.insert(record.id.as_str()) {
            continue;
        }
        let was_live = live_at(record, &from)?;
        change += i64::from(!record.is_deleted()) - i64::from(was_live);
    }
    Some(change)
}

/// Whether the record's newest version at or before `from` was live.
fn live_at(record: &NangoRecord, from: &Position) -> Option<bool> {
    let meta = &record.metadata;
    let here = Position::of_cursor(&meta.cursor)?;
    let began = here.at(meta.first_seen_at.as_deref()?)?;
    if began > *from {
        return Some(false);
    }
    if !record.is_deleted() {
        return Some(true);
    }
    Some(here.at(meta.deleted_at.as_deref()?)? > *from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0b5e0c1e-0000-4000-8000-000000000001";

    fn cursor(at: &str, uuid: &str) -> String {
        BASE64.encode(format!("{at}||{uuid}"))
    }

    fn t(second: u32) -> String {
        format!("2026-01-15T10:00:{second:02}.5+00:00")
    }

    /// A record as served: begun at `began`, changed at `modified`, deleted then if `deleted`.
    fn record(id: &str, uuid: &str, began: u32, modified: u32, deleted: bool) -> NangoRecord {
        let meta = serde_json::json!({
            "first_seen_at": t(began),
            "last_modified_at": t(modified),
            "last_action": if deleted { "DELETED" } else if began == modified { "ADDED" } else { "UPDATED" },
            "deleted_at": deleted.then(|| t(modified)),
            "pruned_at": null,
            "cursor": cursor(&t(modified), uuid),
        });
        let json = serde_json::json!({"id": id, "_nango_metadata": meta}).to_string();
        NangoRecord::from_json(&json).unwrap().unwrap()
    }

    #[test]
    fn adds_updates_and_deletes_move_the_live_count_as_nango_counts_them() {
        let from = cursor(&t(10), UUID);
        let page = [
            record("new", "00000000-0000-4000-8000-00000000000a", 20, 20, false),
            record(
                "updated",
                "00000000-0000-4000-8000-00000000000b",
                5,
                21,
                false,
            ),
            record(
                "deleted",
                "00000000-0000-4000-8000-00000000000c",
                5,
                22,
                true,
            ),
            // Created after the cursor and deleted since: never live in the copy.
            record(
                "came-and-went",
                "00000000-0000-4000-8000-00000000000d",
                15,
                23,
                true,
            ),
        ];
        // +1 new, 0 updated, -1 deleted, 0 came and went.
        assert_eq!(page_live_change(&page, &from), Some(0));
        assert_eq!(page_live_change(&page[..1], &from), Some(1));
        assert_eq!(page_live_change(&page[2..3], &from), Some(-1));
    }

    #[test]
    fn positions_compare_as_instants_whatever_the_offset_or_the_uuid_case() {
        // 05:00:10.5-05:00 is 10:00:10.5 UTC: the cursor's instant, and its uuid in capitals.
        let from = cursor("2026-01-15T05:00:10.5-05:00", &UUID.to_ascii_uppercase());
        let same_batch_before = record("a", "0b5e0c1e-0000-4000-8000-000000000000", 10, 12, false);
        let same_batch_after = record("b", "0b5e0c1e-0000-4000-8000-000000000002", 10, 10, false);
        assert_eq!(page_live_change(&[same_batch_before], &from), Some(0));
        assert_eq!(page_live_change(&[same_batch_after], &from), Some(1));
    }

    #[test]
    fn an_undeleted_record_counts_as_added() {
        // Deleted before the cursor, saved again after: Nango reset its first_seen_at. (Had it
        // been live at the cursor, deleted and saved again after it, the sum would be off by
        // +1: the documented error, whose sign only ever makes the check count.)
        let from = cursor(&t(10), UUID);
        let page = [record(
            "back",
            "00000000-0000-4000-8000-00000000000a",
            30,
            30,
            false,
        )];
        assert_eq!(page_live_change(&page, &from), Some(1));
    }

    #[test]
    fn a_tie_on_the_timestamp_is_broken_by_the_uuid() {
        // One batch saved in a transaction shares its timestamp; the page boundary fell inside.
        let from = cursor(&t(10), "00000000-0000-4000-8000-000000000005");
        let before = record(
            "before",
            "00000000-0000-4000-8000-000000000003",
            10,
            12,
            false,
        );
        let after = record(
            "after",
            "00000000-0000-4000-8000-000000000007",
            10,
            10,
            false,
        );
        assert_eq!(page_live_change(&[before], &from), Some(0));
        assert_eq!(page_live_change(&[after], &from), Some(1));
    }

    #[test]
    fn an_id_served_twice_counts_once_as_its_last_version() {
        let from = cursor(&t(10), UUID);
        let uuid = "00000000-0000-4000-8000-00000000000a";
        let page = [
            record("a", uuid, 20, 20, false),
            record("a", uuid, 20, 25, true),
        ];
        assert_eq!(page_live_change(&page, &from), Some(0));
    }

    #[test]
    fn metadata_that_does_not_tell_gives_no_sum() {
        let mut bare = record("a", UUID, 20, 20, false);
        bare.metadata.first_seen_at = None;
        assert_eq!(page_live_change(&[bare], &cursor(&t(10), UUID)), None);
        let mut deleted_when = record("a", UUID, 5, 20, true);
        deleted_when.metadata.deleted_at = None;
        assert_eq!(
            page_live_change(&[deleted_when], &cursor(&t(10), UUID)),
            None
        );
        let page = [record("a", UUID, 20, 20, false)];
        assert_eq!(page_live_change(&page, "not a cursor"), None);
    }
}
