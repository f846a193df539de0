//! One behaviour, every backend: the same contract runs against the embedded SQLite store and
//! queue here, and against DynamoDB and SQS over the wire in `aws::contract` (on moto), through
//! the `backend` enums the CLI uses.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nango_sync::adapters::memory::MemoryStore;
use nango_sync::adapters::sqlite::{QueueSettings, SqliteDb, SqliteQueue};
use nango_sync::core::record::NangoRecord;
use nango_sync::core::seen::{seen_on_page, Seen, Stored, Version};
use nango_sync::core::state::{
    CountCheck, CountProgress, HeldSweep, LiveChange, LiveCount, NangoNotes, NangoPurge,
    StreamStatus, SweepOutcome, SweepResult, SweepState, SyncReport,
};
use nango_sync::core::stream::StreamKey;
use nango_sync::core::write::{DeleteMode, Removal};
use nango_sync::core::write::{RejectedRecord, WriteReport};
use nango_sync::core::writes::state::WriteState;
use nango_sync::core::writes::stored::PendingWrite;
use nango_sync::local::backend::{Queue, Store};
use nango_sync::ports::OutgoingMessage;
use nango_sync::ports::{JobConsumer, JobQueue, RecordStore, StateStore, StoreError};
use serde_json::{json, Map, Value};

use crate::common::unique_name;

fn temp_db() -> SqliteDb {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("contract")));
    SqliteDb::open(&path).unwrap()
}

fn embedded_queues() -> (Queue, Queue) {
    let db = temp_db();
    let settings = QueueSettings {
        visibility_timeout: Duration::from_secs(1),
        retry_delay: Duration::from_millis(100),
        max_receive_count: 2,
        ..QueueSettings::default()
    };
    (
        Queue::Embedded(SqliteQueue::ingest(db.clone(), settings.clone())),
        Queue::Embedded(SqliteQueue::dead_letters(db, settings)),
    )
}

/// A store the contract can read back: every stored record of a stream, by id.
pub(crate) trait ReadBack: RecordStore + StateStore {
    async fn stored(&self, stream: &StreamKey) -> BTreeMap<String, Map<String, Value>>;

    /// The write shown on a stored record.
    async fn pending(&self, stream: &StreamKey, id: &str) -> Option<PendingWrite>;
}

impl ReadBack for Store {
    async fn stored(&self, stream: &StreamKey) -> BTreeMap<String, Map<String, Value>> {
        self.read_stream(stream).await.unwrap()
    }

    async fn pending(&self, stream: &StreamKey, id: &str) -> Option<PendingWrite> {
        self.pending_write(stream, id).await.unwrap()
    }
}

impl ReadBack for MemoryStore {
    async fn stored(&self, stream: &StreamKey) -> BTreeMap<String, Map<String, Value>> {
        self.records(stream)
    }

    async fn pending(&self, stream: &StreamKey, id: &str) -> Option<PendingWrite> {
        self.pending_write(stream, id)
    }
}

/// A write shown on the record it concerns (issue "Two-way sync", item 6): beside the record,
/// never in its payload; on a stored record only; gone once a sync writes the record whole
/// again, kept by a pruned record's write.
pub(crate) async fn pending_write_contract(store: impl ReadBack) {
    let s = StreamKey::new("hubspot", "user-9", "Deal", "base");
    store
        .write_page(
            &s,
            &[record("d-1", 1, "ADDED", 1), record("d-2", 1, "ADDED", 1)],
        )
        .await
        .unwrap();
    let before = store.stored(&s).await;
    let mark = |state| PendingWrite {
        id: "close-d-1".into(),
        state,
    };
    assert!(store
        .mark_pending_write(&s, "d-1", &mark(WriteState::Running))
        .await
        .unwrap());
    assert!(
        !store
            .mark_pending_write(&s, "d-9", &mark(WriteState::Running))
            .await
            .unwrap(),
        "no stored record: nothing to show it on"
    );
    assert_eq!(store.pending(&s, "d-9").await, None);
    assert!(store
        .mark_pending_write(&s, "d-1", &mark(WriteState::Succeeded))
        .await
        .unwrap());
    assert_eq!(
        store.pending(&s, "d-1").await,
        Some(mark(WriteState::Succeeded))
    );
    assert_eq!(
        store.stored(&s).await,
        before,
        "the payloads are as they were"
    );
    assert_eq!(store.pending(&s, "d-2").await, None);

    // Pruned by Nango: the stored record keeps its payload, and its mark.
    store.write_page(&s, &[pruned("d-1", 2)]).await.unwrap();
    assert_eq!(
        store.pending(&s, "d-1").await,
        Some(mark(WriteState::Succeeded))
    );
    // Written whole again (the sync that reads the provider's new state): the mark is gone.
    store
        .write_page(&s, &[record("d-1", 2, "UPDATED", 3)])
        .await
        .unwrap();
    assert_eq!(store.pending(&s, "d-1").await, None);
}

#[tokio::test]
async fn pending_write_contract_on_memory() {
    pending_write_contract(MemoryStore::new()).await;
}

#[tokio::test]
async fn pending_write_contract_on_sqlite() {
    let db = temp_db();
    pending_write_contract(Store::sqlite(db.clone(), DeleteMode::Tombstone)).await;
    // A mark is no change in the change feed: the two records' additions and the update only.
    let changes: Vec<String> = nango_sync::adapters::sqlite::SqliteFeed::new(db)
        .after(0, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| format!("{} {}", c.id, c.change))
        .collect();
    assert_eq!(
        changes,
        ["d-1 added", "d-2 added", "d-1 pruned", "d-1 updated"]
    );
}

fn record(id: &str, version: u32, action: &str, n: u32) -> NangoRecord {
    let deleted = (action == "DELETED").then(|| format!("2026-11-27T00:00:0{n}+00:00"));
    let object = json!({"id": id, "name": format!("{id} v{version}"), "nested": {"list": [1, "two", null]},
        "_nango_metadata": {"first_seen_at": "2026-11-27T00:00:00+00:00",
            "last_modified_at": format!("2026-11-27T00:00:0{n}+00:00"), "last_action": action,
            "deleted_at": deleted, "pruned_at": null, "cursor": format!("cursor-{n}")}});
    NangoRecord::from_object(object.as_object().unwrap().clone()).unwrap()
}

fn pruned(id: &str, n: u32) -> NangoRecord {
    let object = json!({"id": id, "_nango_metadata": {"first_seen_at": "2026-11-27T00:00:00+00:00",
        "last_modified_at": format!("2026-11-27T00:00:0{n}+00:00"), "last_action": "UPDATED",
        "deleted_at": null, "pruned_at": "2026-11-27T00:00:09+00:00", "cursor": format!("cursor-{n}")}});
    NangoRecord::from_object(object.as_object().unwrap().clone()).unwrap()
}

/// Pruned by Nango, then deleted: the metadata says both.
fn pruned_and_deleted(id: &str, n: u32) -> NangoRecord {
    let mut object = pruned(id, n).object();
    let meta = object["_nango_metadata"].as_object_mut().unwrap();
    let at = meta["last_modified_at"].clone();
    meta.insert("last_action".into(), json!("DELETED"));
    meta.insert("deleted_at".into(), at);
    NangoRecord::from_object(object).unwrap()
}

pub(crate) async fn store_contract(store: impl ReadBack) {
    let s = StreamKey::new("hubspot", "user|42", "Contact", "base");
    assert_eq!(store.get_stream(&s).await.unwrap(), None);

    // Writes: upserts, a tombstone, a pruned record that keeps the stored payload.
    let page = [
        record("a", 1, "ADDED", 1),
        record("b", 1, "ADDED", 1),
        record("c", 1, "ADDED", 1),
    ];
    let report = store.write_page(&s, &page).await.unwrap();
    assert_eq!((report.upserted, report.deleted), (3, 0));
    let page = [
        record("a", 2, "UPDATED", 2),
        record("b", 1, "DELETED", 2),
        pruned("c", 3),
    ];
    let report = store.write_page(&s, &page).await.unwrap();
    assert_eq!((report.upserted, report.deleted, report.pruned), (1, 1, 1));
    assert_eq!(
        report.no_longer_live,
        BTreeSet::from(["b".to_owned()]),
        "the store read that it held b live"
    );
    // Deleted again, and a delete of a record never stored: neither was live (another stream,
    // so that this one's items stay as the rest of the contract expects).
    let other = StreamKey::new("hubspot", "user|42", "Deal", "base");
    let deleted_twice = [record("b", 1, "DELETED", 2), record("z", 1, "DELETED", 2)];
    for round in 0..2 {
        store
            .write_page(&other, &[record("b", 1, "ADDED", 1)])
            .await
            .unwrap();
        let report = store.write_page(&other, &deleted_twice).await.unwrap();
        assert_eq!(
            report.no_longer_live,
            BTreeSet::from(["b".to_owned()]),
            "{round}"
        );
        let again = store.write_page(&other, &deleted_twice).await.unwrap();
        assert_eq!(
            (again.deleted, again.no_longer_live.len()),
            (2, 0),
            "{round}"
        );
    }
    // Deleted, then undeleted and pruned before it was read again: live again, with the payload
    // stored before (another stream, as above).
    let undeleted = StreamKey::new("hubspot", "user|42", "Ticket", "base");
    for page in [
        record("u", 1, "ADDED", 1),
        record("u", 1, "DELETED", 2),
        pruned("u", 3),
    ] {
        store.write_page(&undeleted, &[page]).await.unwrap();
    }
    let back = store.stored(&undeleted).await;
    assert!(
        back["u"]["_nango_metadata"]["deleted_at"].is_null(),
        "Nango serves it live: {:?}",
        back["u"]
    );
    assert_eq!(
        back["u"]["name"], "u v1",
        "pruning never erases the payload"
    );
    assert_eq!(store.count_live(&undeleted).await.unwrap(), 1);

    let stored = store.stored(&s).await;
    assert_eq!(stored["a"]["name"], "a v2");
    assert_eq!(stored["b"]["_nango_metadata"]["last_action"], "DELETED");
    assert_eq!(
        stored["b"]["name"], "b v1",
        "a tombstone keeps the last payload"
    );
    assert_eq!(
        stored["c"]["name"], "c v1",
        "pruning never erases the payload"
    );
    assert_eq!(stored["a"]["nested"], json!({"list": [1, "two", null]}));
    assert_eq!(
        store.count_live(&s).await.unwrap(),
        2,
        "a and c (pruned counts)"
    );

    // The cursor moves only from where this run read it.
    store
        .advance_cursor(&s, None, "cursor-1", 3, &[], None)
        .await
        .unwrap();
    let rejected = [RejectedRecord {
        id: "big".into(),
        reason: "too large".into(),
    }];
    store
        .advance_cursor(&s, Some("cursor-1"), "cursor-3", 3, &rejected, Some(-2))
        .await
        .unwrap();
    let conflict = store
        .advance_cursor(&s, Some("cursor-1"), "cursor-9", 1, &[], Some(40))
        .await;
    assert!(
        matches!(conflict, Err(StoreError::CursorConflict { .. })),
        "{conflict:?}"
    );
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.cursor.as_deref(), Some("cursor-3"));
    assert_eq!((state.records_written, state.records_rejected), (6, 1));
    assert_eq!(
        state.live_change,
        LiveChange { net: -2, gaps: 1 },
        "a page's live change is added with its cursor; an unknown one is a gap; a conflict adds nothing"
    );

    // Sync reports: ok, then error, then ok again clears the error.
    let mut report = SyncReport {
        sync_name: "contacts".into(),
        at: "2026-11-27T01:00:00.000Z".into(),
        webhook_at: Some("2026-11-27T00:59:59.000Z".into()),
        error: None,
    };
    store.report_sync(&s, &report).await.unwrap();
    report.error = Some("connection unknown to Nango".into());
    report.webhook_at = None;
    store.report_sync(&s, &report).await.unwrap();
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(
        (state.status(), state.error.as_deref()),
        (StreamStatus::Error, Some("connection unknown to Nango"))
    );
    assert_eq!(
        state.last_webhook_at.as_deref(),
        Some("2026-11-27T00:59:59.000Z")
    );
    report.error = None;
    store.report_sync(&s, &report).await.unwrap();
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!((state.status(), state.error), (StreamStatus::Ok, None));
    assert_eq!(state.sync_name.as_deref(), Some("contacts"));
    let listed = store.list_streams().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, s);

    // A sweep: its own cursor, its notes of what Nango served kept apart from the records,
    // and the live records it did not see marked deleted at the end.
    let sweep = SweepState {
        id: "sweep 1".into(),
        cursor: None,
        started_at: "t0".into(),
        nango_count: 1,
        notes_pages: true,
    };
    store.begin_sweep(&s, &sweep).await.unwrap();
    assert_eq!(
        store.get_stream(&s).await.unwrap().unwrap().sweep,
        Some(sweep.clone())
    );
    let served = [record("a", 3, "UPDATED", 4)];
    store
        .note_seen(&s, "sweep 1", "", &seen_on_page(&served))
        .await
        .unwrap();
    store.write_page(&s, &served).await.unwrap();
    assert_eq!(
        unseen(&store, &s, "sweep 1").await,
        ["c"],
        "b is deleted, a was seen"
    );
    let versions = stored_versions(&store, &s).await;
    // Kept with its content digest: what a re-read and a sweep compare.
    let a = Version::of_record(&served[0]);
    assert_eq!((versions["a"].content, versions["a"].live), (Some(a), true));
    assert!(versions["a"].holds(a));
    assert!(!versions["b"].live, "a tombstone is not live");
    let probed = store
        .stored_versions_of(&s, &["a", "never stored"])
        .await
        .unwrap();
    assert_eq!(probed, [versions["a"].clone()], "only what is stored");
    store
        .advance_sweep(&s, "sweep 1", None, "cursor-4")
        .await
        .unwrap();
    let conflict = store.advance_sweep(&s, "sweep 1", None, "cursor-5").await;
    assert!(
        matches!(conflict, Err(StoreError::CursorConflict { .. })),
        "{conflict:?}"
    );
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(
        state.cursor.as_deref(),
        Some("cursor-3"),
        "the sweep leaves the main cursor"
    );
    assert_eq!(
        state.sweep.as_ref().and_then(|w| w.cursor.as_deref()),
        Some("cursor-4")
    );
    let unseen_ids = vec!["c".to_owned(), "b".to_owned(), "never stored".to_owned()];
    assert_eq!(
        store
            .remove_unseen(&s, &unseen_ids, "2026-11-27T02:00:00.000Z")
            .await
            .unwrap(),
        1,
        "only c was live"
    );
    let result = SweepResult {
        finished_at: "t1".into(),
        nango_count: 1,
        live_count: 1,
        tombstoned: 1,
        outcome: SweepOutcome::Applied,
    };
    store.end_sweep(&s, "sweep 1", &result).await.unwrap();
    let stored = store.stored(&s).await;
    assert_eq!(
        stored["c"]["_nango_metadata"]["deleted_at"],
        "2026-11-27T02:00:00.000Z"
    );
    assert_eq!(stored["c"]["_nango_metadata"]["last_action"], "DELETED");
    assert_eq!(stored["a"]["name"], "a v3");
    assert_eq!(store.count_live(&s).await.unwrap(), 1);
    // Without a deadline, the count in pieces is one whole count.
    assert_eq!(
        store.count_live_until(&s, None, None).await.unwrap(),
        LiveCount::Done(1)
    );
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(
        (state.sweep, state.last_sweep),
        (None, Some(result.clone()))
    );
    assert_eq!(state.live_change.gaps, 2, "a sweep's end is a gap");
    store.end_sweep(&s, "sweep 1", &result).await.unwrap();
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.live_change.gaps, 2, "ending it again changes nothing");

    // Reset: the cursor is gone, the counts stay.
    store.reset_cursor(&s).await.unwrap();
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!((state.cursor, state.records_written), (None, 6));

    // Notes from Nango, kept whole.
    let notes = NangoNotes {
        last_success_at: Some("2026-12-01T00:00:00.000Z".into()),
        purged: Some(NangoPurge {
            at: "t2".into(),
            reason: "retention".into(),
        }),
        pass_open_since: None,
        checked: Some(CountCheck {
            nango_count: 1,
            live_count: 1,
            records_written: 6,
            at: "t2".into(),
            trusted: false,
            live_change: Some(LiveChange { net: -3, gaps: 2 }),
            counted_at: Some("t1".into()),
        }),
        counting: Some(CountProgress {
            after: "c-41".into(),
            counted: 41,
            records_written: 6,
            live_change: Some(LiveChange { net: 5, gaps: 0 }),
            started_at: "t1".into(),
        }),
    };
    store.set_nango_notes(&s, &notes).await.unwrap();
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.nango, notes);
    assert_eq!(state.status(), StreamStatus::NangoPurged);

    // A held sweep: counted unseen, released only by its own id, with its result.
    store
        .write_page(
            &s,
            &[record("d", 1, "ADDED", 5), record("e", 1, "ADDED", 5)],
        )
        .await
        .unwrap();
    let served = [record("e", 1, "ADDED", 5)];
    store
        .note_seen(&s, "sweep 2", "cursor-4", &seen_on_page(&served))
        .await
        .unwrap();
    // Noting a page again replaces its note; another page adds to the sweep's.
    let again = [record("e", 2, "UPDATED", 6)];
    store
        .note_seen(&s, "sweep 2", "cursor-4", &seen_on_page(&again))
        .await
        .unwrap();
    let other_page = [record("zz", 1, "ADDED", 7)];
    store
        .note_seen(&s, "sweep 2", "cursor-5", &seen_on_page(&other_page))
        .await
        .unwrap();
    let mut noted = Vec::new();
    store
        .seen_in_sweep(&s, "sweep 2", &mut |n: Seen| noted.push((n.id, n.version)))
        .await
        .unwrap();
    noted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        noted,
        [
            ("e".to_owned(), Version::of_record(&again[0])),
            ("zz".to_owned(), Version::of_record(&other_page[0]))
        ]
    );
    assert_eq!(store.count_live(&s).await.unwrap(), 3, "a, d, e");
    assert_eq!(unseen(&store, &s, "sweep 2").await, ["a", "d"]);
    assert_eq!(
        unseen(&store, &s, "sweep 1").await,
        ["d", "e"],
        "sweeps apart"
    );
    let held = HeldSweep {
        sweep_id: "sweep 2".into(),
        would_delete: 2,
        live_count: 3,
        nango_count: 1,
        last_success_at: Some("2026-12-01T00:00:00.000Z".into()),
        held_at: "t3".into(),
        reason: "more than the bound".into(),
    };
    store.hold_sweep(&s, &held).await.unwrap();
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(
        (state.status(), state.held.as_ref()),
        (StreamStatus::Held, Some(&held))
    );
    let held_gaps = state.live_change.gaps;
    let discarded = SweepResult {
        finished_at: "t4".into(),
        nango_count: 1,
        live_count: 3,
        tombstoned: 0,
        outcome: SweepOutcome::Discarded,
    };
    assert!(!store.release_hold(&s, "sweep 9", &discarded).await.unwrap());
    assert!(store.release_hold(&s, "sweep 2", &discarded).await.unwrap());
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!((state.held, state.last_sweep), (None, Some(discarded)));
    assert!(!store
        .release_hold(&s, "sweep 2", &SweepResult::default())
        .await
        .unwrap());
    let gaps = state.live_change.gaps;
    assert_eq!(
        gaps,
        held_gaps + 1,
        "an operator's decision is a gap, counted once"
    );

    // A deleted connection: its stream marked, then its records marked deleted, then purged
    // (tombstones too); a creation clears the mark.
    store.set_connection_deleted(&s, Some("t5")).await.unwrap();
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.status(), StreamStatus::ConnectionDeleted);
    assert_eq!(
        state.live_change.gaps,
        gaps + 1,
        "a deleted connection is a gap"
    );
    let removal = Removal::Tombstone {
        at: "2026-11-27T03:00:00.000Z",
        by: "connection_deleted",
    };
    assert_eq!(store.remove_stream(&s, removal).await.unwrap(), 3);
    assert_eq!(store.count_live(&s).await.unwrap(), 0);
    let stored = store.stored(&s).await;
    assert_eq!(stored.len(), 5, "tombstones keep their payload");
    assert_eq!(
        stored["d"]["_nango_metadata"]["deleted_at"],
        "2026-11-27T03:00:00.000Z"
    );
    assert_eq!(store.remove_stream(&s, Removal::Purge).await.unwrap(), 5);
    assert!(store.stored(&s).await.is_empty());
    store.set_connection_deleted(&s, None).await.unwrap();
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.connection_deleted_at, None);
    assert_eq!(
        state.live_change.gaps,
        gaps + 1,
        "its creation again removes nothing"
    );
}

fn message(group: &str, dedup: &str, body: Value) -> OutgoingMessage {
    OutgoingMessage {
        group_id: group.into(),
        dedup_id: dedup.into(),
        body: body.to_string(),
    }
}

/// Receives until `want` messages came or `within` passed.
async fn receive_some(
    queue: &Queue,
    want: usize,
    within: Duration,
) -> Vec<nango_sync::ports::ReceivedMessage> {
    let until = std::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && std::time::Instant::now() < until {
        got.extend(queue.receive(10, Duration::from_secs(1)).await.unwrap());
    }
    got
}

/// One message at a time (a batch could hold a group's next messages too), within 8 s.
async fn receive_one(queue: &Queue) -> Vec<nango_sync::ports::ReceivedMessage> {
    for _ in 0..8 {
        let got = queue.receive(1, Duration::from_secs(1)).await.unwrap();
        if !got.is_empty() {
            return got;
        }
    }
    panic!("nothing delivered within 8 s")
}

pub(crate) async fn queue_contract(queue: Queue, dead_letters: Queue) {
    // Order within a group, deduplication by id.
    let sent = [
        message("a", "a1", json!({"n": "a1"})),
        message("b", "b1", json!({"n": "b1"})),
        message("a", "a2", json!({"n": "a2"})),
        message("a", "a1", json!({"n": "a1 again"})),
    ];
    queue.send(&sent).await.unwrap();
    let got = receive_some(&queue, 3, Duration::from_secs(5)).await;
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    let a: Vec<&&str> = bodies.iter().filter(|b| b.contains("\"a")).collect();
    assert_eq!(
        a,
        [&r#"{"n":"a1"}"#, &r#"{"n":"a2"}"#],
        "group a in order, once: {bodies:?}"
    );
    assert_eq!(got.len(), 3, "{bodies:?}");
    assert!(got.iter().all(|m| m.group_id.is_some()));
    for m in &got {
        queue.delete(&m.receipt_handle).await.unwrap();
    }
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());

    // A group waits behind its message in flight; a released message comes back; a message
    // received too often goes to the dead-letter queue, in its group.
    queue
        .send(&[
            message("c", "c1", json!({"n": "c1"})),
            message("c", "c2", json!({"n": "c2"})),
        ])
        .await
        .unwrap();
    let first = receive_one(&queue).await;
    assert_eq!(first[0].body, r#"{"n":"c1"}"#);
    let more = queue.receive(10, Duration::ZERO).await.unwrap();
    assert!(
        more.iter().all(|m| !m.body.contains("c2")),
        "c2 delivered while c1 in flight"
    );
    queue.release(&first[0].receipt_handle).await.unwrap();
    let again = receive_one(&queue).await;
    assert_eq!(
        again[0].body, r#"{"n":"c1"}"#,
        "redelivered after a failure"
    );
    queue.release(&again[0].receipt_handle).await.unwrap();
    // Two receives used up: the next receive on the queue moves c1 to the dead letters, and c2,
    // now first in its group, is delivered.
    let rest = receive_one(&queue).await;
    assert_eq!(rest[0].body, r#"{"n":"c2"}"#);
    queue.delete(&rest[0].receipt_handle).await.unwrap();
    let dead = receive_one(&dead_letters).await;
    assert_eq!(dead[0].body, r#"{"n":"c1"}"#);
    assert_eq!(dead[0].group_id.as_deref(), Some("c"));
    dead_letters.delete(&dead[0].receipt_handle).await.unwrap();
}

/// What a store made of the same pages: each page's report, every stored item, the live count,
/// the stored versions, what a sweep left unseen and removed, and every item after that.
#[derive(Debug, PartialEq)]
pub(crate) struct StoreTrace {
    reports: Vec<WriteReport>,
    items: BTreeMap<String, Map<String, Value>>,
    live: u64,
    /// Each stored record's version and whether it is live, as a sweep compares them.
    versions: BTreeMap<String, Stored>,
    unseen: Vec<String>,
    swept: u64,
    items_after_sweep: BTreeMap<String, Map<String, Value>>,
    live_after_sweep: u64,
}

/// The records, read by id, that a sweep saw unseen: live, and not in its notes. What
/// `core::drift::sweep::compare` finds, from the two store calls it makes.
async fn unseen(store: &impl ReadBack, s: &StreamKey, sweep: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    store
        .seen_in_sweep(s, sweep, &mut |noted: Seen| {
            seen.insert(noted.id);
        })
        .await
        .unwrap();
    let mut unseen = Vec::new();
    store
        .stored_versions(s, &mut |stored: Stored| {
            if stored.live && !seen.contains(&stored.id) {
                unseen.push(stored.id);
            }
        })
        .await
        .unwrap();
    unseen.sort();
    unseen
}

async fn stored_versions(store: &impl ReadBack, s: &StreamKey) -> BTreeMap<String, Stored> {
    let mut versions = BTreeMap::new();
    store
        .stored_versions(s, &mut |stored: Stored| {
            versions.insert(stored.id.clone(), stored);
        })
        .await
        .unwrap();
    versions
}

/// The trace's last page.
fn pages_served_last() -> Vec<NangoRecord> {
    vec![
        record("a", 3, "UPDATED", 6),
        pruned("c", 7),
        record("f", 1, "ADDED", 8),
    ]
}

/// Pages that take every decision of the write policy: adds, updates, a DELETED record, a pruned
/// record over a stored one and over none, an id twice in one page; then a sweep that read only
/// the last page.
pub(crate) async fn trace(store: &impl ReadBack) -> StoreTrace {
    let s = StreamKey::new("hubspot", unique_name("agree"), "Contact", "base");
    let pages: [Vec<NangoRecord>; 3] = [
        vec![
            record("a", 1, "ADDED", 1),
            record("b", 1, "ADDED", 1),
            record("c", 1, "ADDED", 1),
            record("d", 1, "ADDED", 1),
        ],
        vec![
            record("a", 2, "UPDATED", 2),
            record("b", 1, "DELETED", 3),
            pruned("c", 4),
            pruned("e", 5),
            record("a", 3, "UPDATED", 6),
            pruned_and_deleted("d", 7),
        ],
        pages_served_last(),
    ];
    let mut reports = Vec::new();
    for page in &pages {
        reports.push(store.write_page(&s, page).await.unwrap());
    }
    // A sweep that read only the last page.
    let served = seen_on_page(&pages[2]);
    store.note_seen(&s, "sweep 1", "", &served).await.unwrap();
    let (items, live) = (store.stored(&s).await, store.count_live(&s).await.unwrap());
    let versions = stored_versions(store, &s).await;
    let unseen_ids = unseen(store, &s, "sweep 1").await;
    let swept = store
        .remove_unseen(&s, &unseen_ids, "2026-11-27T03:00:00.000Z")
        .await
        .unwrap();
    StoreTrace {
        reports,
        items,
        live,
        versions,
        unseen: unseen_ids,
        swept,
        items_after_sweep: store.stored(&s).await,
        live_after_sweep: store.count_live(&s).await.unwrap(),
    }
}

/// Memory's trace, to hold every other store's against (it is checked against the policy here).
pub(crate) async fn memory_trace(mode: DeleteMode) -> StoreTrace {
    let trace = trace(&MemoryStore::with_delete_mode(mode)).await;
    // The policy, as seen from outside: the duplicate `a` counts once, `c` and `e` as pruned, `b`
    // and `d` as deleted; the pruned `c` keeps its first payload, and so does `d`, deleted after
    // Nango pruned it; the sweep removes `e`, which only Nango's pruned form ever showed.
    let counts: Vec<(u64, u64, u64)> = trace
        .reports
        .iter()
        .map(|r| (r.upserted, r.deleted, r.pruned))
        .collect();
    assert_eq!(counts, [(4, 0, 0), (1, 2, 2), (2, 0, 1)]);
    assert_eq!(trace.items["c"]["name"], "c v1");
    match mode {
        DeleteMode::Tombstone => {
            let d = &trace.items["d"];
            assert_eq!(d["name"], "d v1");
            assert!(d["_nango_metadata"]["deleted_at"].is_string());
        }
        DeleteMode::Hard => assert!(!trace.items.contains_key("d")),
    }
    assert_eq!(trace.items["a"]["name"], "a v3");
    assert_eq!(trace.items.contains_key("b"), mode == DeleteMode::Tombstone);
    assert_eq!((trace.live, trace.swept), (4, 1));
    assert_eq!(trace.unseen, ["e"]);
    // What the last page served is stored at the version it was served at, the pruned `c`
    // included (its payload older than its cursor): a sweep reading it again writes nothing.
    for record in &seen_on_page(&pages_served_last()) {
        let stored = &trace.versions[&record.id];
        assert!(stored.holds(record.version), "{}", record.id);
        assert_eq!(stored.live, !record.deleted, "{}", record.id);
    }
    assert_eq!(trace.live_after_sweep, 3);
    assert_eq!(
        trace.items_after_sweep.contains_key("d"),
        mode == DeleteMode::Tombstone
    );
    trace
}

#[tokio::test]
async fn memory_and_sqlite_apply_the_write_policy_alike_item_for_item() {
    for mode in [DeleteMode::Tombstone, DeleteMode::Hard] {
        let sqlite = trace(&Store::sqlite(temp_db(), mode)).await;
        assert_eq!(sqlite, memory_trace(mode).await, "{mode:?}");
    }
}

#[tokio::test]
async fn store_contract_on_memory() {
    store_contract(MemoryStore::new()).await;
}

#[tokio::test]
async fn store_contract_on_sqlite() {
    store_contract(Store::sqlite(temp_db(), DeleteMode::Tombstone)).await;
}

#[tokio::test]
async fn queue_contract_on_the_embedded_queue() {
    let (queue, dead) = embedded_queues();
    queue_contract(queue, dead).await;
}
