//! The record-write policy, decided once for every store: what each record of a page becomes
//! (upserted, kept as a tombstone, its payload kept while its metadata moves on, or removed),
//! what a sweep or a deleted connection does to the records it removes, and how the writes are
//! counted. Stores apply these decisions and decide nothing of their own.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::core::record::{NangoRecord, METADATA_FIELD};

/// What deleting a record means here: template.yaml's `DeleteMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeleteMode {
    /// A deleted record stays, marked deleted (`deleted_at` set, its payload kept).
    #[default]
    Tombstone,
    /// A deleted record's item is removed.
    Hard,
}

impl DeleteMode {
    pub fn hard(hard: bool) -> Self {
        if hard {
            Self::Hard
        } else {
            Self::Tombstone
        }
    }

    /// What a sweep does to the live records Nango no longer has, at `at`.
    pub fn sweep_removal(self, at: &str) -> Removal<'_> {
        match self {
            Self::Tombstone => Removal::Tombstone { at, by: "sweep" },
            Self::Hard => Removal::Purge,
        }
    }
}

/// What a store does to each record it removes without Nango sending it (a sweep's unseen
/// records, a deleted connection's, an operator's `forget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal<'a> {
    /// Mark it deleted at `at` (its payload kept, [`crate::core::record::mark_deleted`]),
    /// `by` saying why.
    Tombstone { at: &'a str, by: &'a str },
    /// Remove the item. For a whole stream, tombstones go too.
    Purge,
}

/// What a store does with one record of a page.
#[derive(Debug, Clone, Copy)]
pub enum RecordWrite<'a> {
    /// A live record: stored as Nango served it.
    Upsert(&'a NangoRecord),
    /// A DELETED record in tombstone mode: stored as served (its `deleted_at` set).
    Tombstone(&'a NangoRecord),
    /// Nango pruned the payload: the stored payload stays, and only the item's cursor,
    /// `last_modified_at` and `pruned_at` move on. A record not stored yet is stored as served;
    /// one stored deleted (Nango undeleted it, then pruned it before it was read) takes the
    /// record's metadata over its stored payload, live again, as [`with_stored_payload`] does.
    KeepPayload(&'a NangoRecord),
    /// Nango deleted a record whose payload it had pruned: the stored payload stays, under the
    /// record's new metadata (deleted) — [`with_stored_payload`]. A record not stored yet is
    /// stored as served.
    TombstoneKeepingPayload(&'a NangoRecord),
    /// A DELETED record in hard mode: its item is removed.
    Remove(&'a NangoRecord),
}

impl<'a> RecordWrite<'a> {
    pub fn record(&self) -> &'a NangoRecord {
        match *self {
            Self::Upsert(r)
            | Self::Tombstone(r)
            | Self::KeepPayload(r)
            | Self::TombstoneKeepingPayload(r)
            | Self::Remove(r) => r,
        }
    }

    /// Whether the write marks the record deleted or removes it: what takes a live record out
    /// of the live count.
    pub fn deletes(&self) -> bool {
        matches!(
            self,
            Self::Tombstone(_) | Self::TombstoneKeepingPayload(_) | Self::Remove(_)
        )
    }
}

/// A page's decisions: one per record id, the page's last occurrence of that id (its newest
/// state), in the order of those last occurrences.
#[derive(Debug, Clone)]
pub struct PagePlan<'a> {
    writes: Vec<RecordWrite<'a>>,
}

/// Turns each record of a page into what a store does with it.
pub fn plan_page(records: &[NangoRecord], mode: DeleteMode) -> PagePlan<'_> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    for (at, record) in records.iter().enumerate() {
        last.insert(&record.id, at);
    }
    let writes = records
        .iter()
        .enumerate()
        .filter(|(at, record)| last[record.id.as_str()] == *at)
        .map(|(_, record)| decide(record, mode))
        .collect();
    PagePlan { writes }
}

fn decide(record: &NangoRecord, mode: DeleteMode) -> RecordWrite<'_> {
    match (record.is_deleted(), record.is_pruned(), mode) {
        (false, false, _) => RecordWrite::Upsert(record),
        (false, true, _) => RecordWrite::KeepPayload(record),
        (true, _, DeleteMode::Hard) => RecordWrite::Remove(record),
        (true, false, DeleteMode::Tombstone) => RecordWrite::Tombstone(record),
        // Pruned 30 days after its last change, then deleted: the copy keeps the payload.
        (true, true, DeleteMode::Tombstone) => RecordWrite::TombstoneKeepingPayload(record),
    }
}

/// The stored payload under `record`'s metadata, for [`RecordWrite::TombstoneKeepingPayload`].
/// A stored object that no longer reads as a record (a hand edit) gives way to `record` as served.
pub fn with_stored_payload(stored: &Map<String, Value>, record: &NangoRecord) -> NangoRecord {
    let mut object = stored.clone();
    if let Some(metadata) = record.object().remove(METADATA_FIELD) {
        object.insert(METADATA_FIELD.into(), metadata);
    }
    object.insert("id".into(), Value::String(record.id.clone()));
    NangoRecord::from_object(object).unwrap_or_else(|_| record.clone())
}

impl<'a> PagePlan<'a> {
    pub fn writes(&self) -> &[RecordWrite<'a>] {
        &self.writes
    }

    /// The ids of the records this page deletes or removes, whose state before the write the
    /// store reports ([`WriteReport::no_longer_live`]).
    pub fn deletes_to_report(&self) -> HashSet<&'a str> {
        self.writes
            .iter()
            .filter(|w| w.deletes())
            .map(|w| w.record().id.as_str())
            .collect()
    }

    /// The page's report once a store applied it: each decision counted, but for the records
    /// the store `rejected` (too large to keep), which count only as rejected; `compressed`
    /// as the store says.
    pub fn report(&self, rejected: Vec<RejectedRecord>, compressed: u64) -> WriteReport {
        let mut report = WriteReport {
            compressed,
            ..WriteReport::default()
        };
        for write in &self.writes {
            if rejected.iter().any(|r| r.id == write.record().id) {
                continue;
            }
            match write {
                RecordWrite::Upsert(_) => report.upserted += 1,
                RecordWrite::Tombstone(_)
                | RecordWrite::TombstoneKeepingPayload(_)
                | RecordWrite::Remove(_) => report.deleted += 1,
                RecordWrite::KeepPayload(_) => report.pruned += 1,
            }
        }
        report.rejected = rejected;
        report
    }
}

/// A record that could not be stored as-is or compressed: reported, never dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRecord {
    pub id: String,
    pub reason: String,
}

/// What one page write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub upserted: u64,
    pub deleted: u64,
    pub compressed: u64,
    pub pruned: u64,
    pub rejected: Vec<RejectedRecord>,
    /// The records the page took out of the live count: stored live before it, deleted or
    /// removed by it. Each store reads what it held before writing a page's deletes
    /// ([`PagePlan::deletes_to_report`]).
    pub no_longer_live: BTreeSet<String>,
}

impl WriteReport {
    pub fn written(&self) -> u64 {
        self.upserted + self.deleted + self.pruned
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(id: &str, action: &str, pruned: bool) -> NangoRecord {
        let deleted = (action == "DELETED").then_some("2026-11-27T00:00:02+00:00");
        let pruned = pruned.then_some("2026-11-27T00:00:03+00:00");
        let object = json!({"id": id, "_nango_metadata": {"first_seen_at": "2026-11-27T00:00:00+00:00",
            "last_modified_at": "2026-11-27T00:00:01+00:00", "last_action": action,
            "deleted_at": deleted, "pruned_at": pruned, "cursor": format!("c-{id}")}});
        NangoRecord::from_object(object.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn each_record_gets_one_decision_and_the_counts_follow() {
        let page = [
            record("a", "ADDED", false),
            record("b", "DELETED", false),
            record("c", "UPDATED", true),
            record("d", "DELETED", true),
        ];
        let kinds = |mode| {
            plan_page(&page, mode)
                .writes()
                .iter()
                .map(|w| match w {
                    RecordWrite::Upsert(_) => "upsert",
                    RecordWrite::Tombstone(_) => "tombstone",
                    RecordWrite::KeepPayload(_) => "keep payload",
                    RecordWrite::TombstoneKeepingPayload(_) => "tombstone keeping payload",
                    RecordWrite::Remove(_) => "remove",
                })
                .collect::<Vec<_>>()
        };
        // A pruned record keeps the stored payload, deleted or not: Nango has none to give.
        assert_eq!(
            kinds(DeleteMode::Tombstone),
            [
                "upsert",
                "tombstone",
                "keep payload",
                "tombstone keeping payload"
            ]
        );
        assert_eq!(
            kinds(DeleteMode::Hard),
            ["upsert", "remove", "keep payload", "remove"]
        );
        let report = plan_page(&page, DeleteMode::Hard).report(Vec::new(), 0);
        assert_eq!((report.upserted, report.deleted, report.pruned), (1, 2, 1));
        assert_eq!(report.written(), 4);
    }

    #[test]
    fn the_last_occurrence_of_an_id_is_its_decision() {
        let page = [
            record("a", "ADDED", false),
            record("b", "ADDED", false),
            record("a", "DELETED", false),
        ];
        let plan = plan_page(&page, DeleteMode::Tombstone);
        let ids: Vec<(&str, bool)> = plan
            .writes()
            .iter()
            .map(|w| {
                (
                    w.record().id.as_str(),
                    matches!(w, RecordWrite::Tombstone(_)),
                )
            })
            .collect();
        assert_eq!(ids, [("b", false), ("a", true)]);
        let report = plan.report(Vec::new(), 0);
        assert_eq!((report.upserted, report.deleted), (1, 1));
    }

    #[test]
    fn a_rejected_record_counts_only_as_rejected() {
        let page = [record("a", "ADDED", false), record("b", "DELETED", false)];
        let rejected = vec![RejectedRecord {
            id: "a".into(),
            reason: "too large".into(),
        }];
        let report = plan_page(&page, DeleteMode::Tombstone).report(rejected.clone(), 1);
        assert_eq!(
            report,
            WriteReport {
                upserted: 0,
                deleted: 1,
                compressed: 1,
                pruned: 0,
                rejected,
                no_longer_live: BTreeSet::new(),
            }
        );
    }

    #[test]
    fn a_deleted_pruned_record_takes_nangos_metadata_over_the_stored_payload() {
        let stored =
            json!({"id": "d", "name": "kept", "_nango_metadata": {"last_action": "ADDED"}});
        let deleted = record("d", "DELETED", true);
        let merged = with_stored_payload(stored.as_object().unwrap(), &deleted);
        let object = merged.object();
        assert_eq!(object["name"], "kept");
        assert_eq!(object[METADATA_FIELD], deleted.object()[METADATA_FIELD]);
        assert!(merged.is_deleted() && merged.is_pruned());
    }

    #[test]
    fn a_sweep_tombstones_or_removes_by_the_mode() {
        let at = "2026-11-27T00:00:00Z";
        assert_eq!(
            DeleteMode::Tombstone.sweep_removal(at),
            Removal::Tombstone { at, by: "sweep" }
        );
        assert_eq!(DeleteMode::Hard.sweep_removal(at), Removal::Purge);
    }
}
