//! How many live records a page of Nango's changes adds to the copy, net, without reading the
//! whole copy.
//!
//! Nango's `recordCount` moves by the net of what its syncs apply: a record added or undeleted
//! +1, a live one deleted −1, pruning 0 (nango-2026.md, "recordCount"). A copy that follows the
//! stream by cursor moves by the same net, page by page; so when Nango's count moved by exactly
//! what the copy applied since a check that agreed, the drift check has nothing to count.
//!
//! - **A record the page deletes** leaves the live count when the store held it live: the store
//!   reads that before it writes the page's deletes ([`WriteReport::no_longer_live`]), exactly.
//! - **A record the page serves live** joins it when the copy did not hold it live, which
//!   Nango's timestamps tell without a read, measured from the cursor where a sync run last
//!   ended up to date (`live_from`). That run's last page was read after every record then
//!   changed, so the copy held every record as Nango had it then, and nothing past the cursor.
//!   A record live now was live then iff its life began at or before that position in Nango's
//!   order (`updated_at`, uuid): an undelete resets `created_at` (served as `first_seen_at`), so
//!   a record that began before it and is live now was never deleted in between. (Measured from
//!   a page boundary instead, a record created before the boundary but changed again before its
//!   page was read would be missed: the copy never held it.) A record that joined in an earlier
//!   page of the same run is held live already: the run keeps the ids that joined
//!   ([`Joined`]).
//!
//! The sum errs in rare sequences, and then mostly upward: a record live in the copy, deleted
//! and saved again between two syncs, counts +1; a page written again after a crash (its deletes
//! already stored) counts its deletes 0. An upward error makes the check disagree with Nango and
//! count; it can never hide records Nango lost, which move Nango's count down. Downward errors
//! need a record the copy never held although it began before the cursor (one the store rejected
//! earlier, now stored, or one Nango committed behind a position already read); the daily recount
//! bounds those.
//!
//! [`WriteReport::no_longer_live`]: crate::core::write::WriteReport::no_longer_live

use std::collections::{BTreeSet, HashSet};

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
}

/// The ids that joined the live count since a run began, so that a record served again in a
/// later page of the run (changed meanwhile) is not counted twice. Bounded: past
/// [`Joined::MOST`] ids the run stops following (its pages are gaps), so that memory stays a
/// page's worth whatever the run's size.
#[derive(Debug, Default)]
pub struct Joined(HashSet<String>);

impl Joined {
    pub const MOST: usize = 20_000;
}

/// The net change in live records that writing `records` (one page, in Nango's order) made to
/// the copy, measured from `from` (the cursor the copy was last up to date at), the store
/// having taken `no_longer_live` out of the live count. `None` when a live record's metadata
/// does not tell (no `first_seen_at`, a timestamp or cursor that does not parse), or the run
/// has followed more than [`Joined::MOST`] records.
pub fn page_live_change(
    records: &[NangoRecord],
    from: &str,
    no_longer_live: &BTreeSet<String>,
    joined: &mut Joined,
) -> Option<i64> {
    if joined.0.len() > Joined::MOST {
        return None;
    }
    let from = Position::of_cursor(from)?;
    let mut change = -i64::try_from(no_longer_live.len()).ok()?;
    let mut seen = HashSet::with_capacity(records.len());
    // An id served twice in a page: its last version is what the copy ends with.
    for record in records.iter().rev() {
        if !seen.insert(record.id.as_str()) {
            continue;
        }
        if record.is_deleted() {
            // Out of the live count: should it come back, it joins again.
            joined.0.remove(&record.id);
        } else if !joined.0.contains(&record.id) && began_after(record, &from)? {
            joined.0.insert(record.id.clone());
            change += 1;
        }
    }
    (joined.0.len() <= Joined::MOST).then_some(change)
}

/// Whether a record's life (its `first_seen_at`, at its own uuid) began after `from`. The uuid,
/// read from the record's cursor, is needed only when the timestamps tie.
fn began_after(record: &NangoRecord, from: &Position) -> Option<bool> {
    let meta = &record.metadata;
    let began = OffsetDateTime::parse(meta.first_seen_at.as_deref()?, &Rfc3339).ok()?;
    if began != from.at {
        return Some(began > from.at);
    }
    let here = Position::of_cursor(&meta.cursor)?;
    Some(here.uuid > from.uuid)
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

    fn uuid(n: u32) -> String {
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    /// A page's change as the first page of a run, the store having deleted nothing live.
    fn alone(page: &[NangoRecord], from: &str) -> Option<i64> {
        page_live_change(page, from, &none(), &mut Joined::default())
    }

    #[test]
    fn adds_updates_and_deletes_move_the_live_count_as_nango_counts_them() {
        let from = cursor(&t(10), UUID);
        let page = [
            record("new", &uuid(10), 20, 20, false),
            record("updated", &uuid(11), 5, 21, false),
            record("deleted", &uuid(12), 5, 22, true),
            // Created after the cursor and deleted since: never live in the copy.
            record("came-and-went", &uuid(13), 15, 23, true),
        ];
        // The store held "deleted" live, and not "came-and-went".
        let taken = BTreeSet::from(["deleted".to_owned()]);
        // +1 new, 0 updated, -1 deleted, 0 came and went.
        assert_eq!(
            page_live_change(&page, &from, &taken, &mut Joined::default()),
            Some(0)
        );
        assert_eq!(alone(&page[..1], &from), Some(1));
        assert_eq!(
            page_live_change(&page[2..3], &from, &taken, &mut Joined::default()),
            Some(-1)
        );
    }

    #[test]
    fn a_record_deleted_again_counts_nothing() {
        // Nango rewrites a record it had deleted (a new deleted_at, a new payload): it moves
        // past the cursor, yet the copy already held it deleted and Nango's count stays.
        let from = cursor(&t(10), UUID);
        let page = [record("gone", &uuid(10), 5, 20, true)];
        assert_eq!(alone(&page, &from), Some(0));
    }

    #[test]
    fn positions_compare_as_instants_whatever_the_offset_or_the_uuid_case() {
        // 05:00:10.5-05:00 is 10:00:10.5 UTC: the cursor's instant, and its uuid in capitals.
        let from = cursor("2026-01-15T05:00:10.5-05:00", &UUID.to_ascii_uppercase());
        let same_batch_before = record("a", "0b5e0c1e-0000-4000-8000-000000000000", 10, 12, false);
        let same_batch_after = record("b", "0b5e0c1e-0000-4000-8000-000000000002", 10, 10, false);
        assert_eq!(alone(&[same_batch_before], &from), Some(0));
        assert_eq!(alone(&[same_batch_after], &from), Some(1));
    }

    #[test]
    fn an_undeleted_record_counts_as_added() {
        // Deleted before the cursor, saved again after: Nango reset its first_seen_at. (Had it
        // been live at the cursor, deleted and saved again after it, the sum would be off by
        // +1: an upward error, which only ever makes the check count.)
        let from = cursor(&t(10), UUID);
        let page = [record("back", &uuid(10), 30, 30, false)];
        assert_eq!(alone(&page, &from), Some(1));
    }

    #[test]
    fn a_tie_on_the_timestamp_is_broken_by_the_uuid() {
        // One batch saved in a transaction shares its timestamp; the page boundary fell inside.
        let from = cursor(&t(10), &uuid(5));
        let before = record("before", &uuid(3), 10, 12, false);
        let after = record("after", &uuid(7), 10, 10, false);
        assert_eq!(alone(&[before], &from), Some(0));
        assert_eq!(alone(&[after], &from), Some(1));
    }

    #[test]
    fn an_id_served_twice_counts_once_as_its_last_version() {
        let from = cursor(&t(10), UUID);
        let page = [
            record("a", &uuid(10), 20, 20, false),
            record("a", &uuid(10), 20, 25, true),
        ];
        assert_eq!(alone(&page, &from), Some(0));
        let page = [
            record("a", &uuid(10), 20, 20, true),
            record("a", &uuid(10), 30, 30, false),
        ];
        assert_eq!(alone(&page, &from), Some(1));
    }

    #[test]
    fn a_record_that_joined_in_an_earlier_page_of_the_run_joins_once() {
        // Added after the run's start, then changed while the run read on: served again.
        let from = cursor(&t(10), UUID);
        let mut joined = Joined::default();
        let first = [record("a", &uuid(10), 20, 20, false)];
        let again = [record("a", &uuid(10), 20, 40, false)];
        assert_eq!(
            page_live_change(&first, &from, &none(), &mut joined),
            Some(1)
        );
        assert_eq!(
            page_live_change(&again, &from, &none(), &mut joined),
            Some(0)
        );
        // Deleted in a later page (the store held it live), then saved again: it joins again.
        let gone = [record("a", &uuid(10), 20, 41, true)];
        let taken = BTreeSet::from(["a".to_owned()]);
        assert_eq!(
            page_live_change(&gone, &from, &taken, &mut joined),
            Some(-1)
        );
        let back = [record("a", &uuid(10), 42, 42, false)];
        assert_eq!(
            page_live_change(&back, &from, &none(), &mut joined),
            Some(1)
        );
    }

    #[test]
    fn a_run_that_follows_too_many_records_stops_following() {
        let from = cursor(&t(10), UUID);
        let mut joined = Joined::default();
        let page: Vec<_> = (0..=Joined::MOST as u32)
            .map(|n| record(&format!("r{n}"), &uuid(n + 100), 20, 20, false))
            .collect();
        assert_eq!(page_live_change(&page, &from, &none(), &mut joined), None);
        // It holds no more ids than it had: memory stays bounded for the rest of the run.
        let held = joined.0.len();
        let more = [record("r-more", &uuid(1), 20, 20, false)];
        assert_eq!(page_live_change(&more, &from, &none(), &mut joined), None);
        assert_eq!(joined.0.len(), held);
    }

    #[test]
    fn metadata_that_does_not_tell_gives_no_sum() {
        let mut bare = record("a", UUID, 20, 20, false);
        bare.metadata.first_seen_at = None;
        assert_eq!(alone(&[bare], &cursor(&t(10), UUID)), None);
        let page = [record("a", UUID, 20, 20, false)];
        assert_eq!(alone(&page, "not a cursor"), None);
    }
}
