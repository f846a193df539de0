//! A sweep's second pass (`core::drift::sweep`) over the memory store and an in-process
//! simulator: what it compares, what it fetches again, what it finds unseen.
use std::sync::Arc;

use serde_json::json;

use nango_sync::adapters::memory::MemoryStore;
use nango_sync::core::drift::{compare, heal, Healed};
use nango_sync::core::record::NangoRecord;
use nango_sync::core::reread::Reread;
use nango_sync::core::seen::seen_on_page;
use nango_sync::core::stream::StreamKey;
use nango_sync::ports::{RecordStore, StateStore};
use nango_sync::simulator::{InProcessSource, Simulator};

fn record(id: &str, cursor: &str, deleted: bool, pruned: bool) -> NangoRecord {
    let at = "2026-12-07T00:00:01+00:00";
    // The payload changes with the cursor, as Nango moves a record's cursor when it changes.
    let payload = if pruned {
        json!({})
    } else {
        json!({"name": id, "version": cursor})
    };
    let mut object = payload.as_object().unwrap().clone();
    object.insert("id".into(), json!(id));
    object.insert(
        "_nango_metadata".into(),
        json!({"first_seen_at": at, "last_modified_at": at,
            "last_action": if deleted { "DELETED" } else { "UPDATED" },
            "deleted_at": deleted.then_some(at), "pruned_at": pruned.then_some(at), "cursor": cursor}),
    );
    NangoRecord::from_object(object).unwrap()
}

#[tokio::test]
async fn a_sweep_fetches_only_what_differs_and_finds_unseen_only_what_was_not_served() {
    let store = MemoryStore::new();
    let s = StreamKey::new("p", "c", "Contact", "base");
    let stored = [
        record("same", "c1", false, false),
        record("changed", "c2", false, false),
        record("tombstoned here", "c3", true, false),
        record("gone from nango", "c4", false, false),
        record("pruned by nango", "c7", false, false),
        record("changed twice", "c8", false, false),
    ];
    store.write_page(&s, &stored).await.unwrap();
    let page_one = [
        record("same", "c1", false, false),
        record("changed", "c5", false, false),
        record("tombstoned here", "c6", false, false),
        record("new", "c9", false, false),
        record("deleted, never stored", "c10", true, false),
        // Pruning moves no cursor: the copy's payload is what Nango no longer has.
        record("pruned by nango", "c7", false, true),
        record("changed twice", "c8", false, false),
    ];
    // Changed while the sweep read: noted on two pages at two versions.
    let page_two = [record("changed twice", "c11", false, false)];
    store
        .note_seen(&s, "sweep", "", &seen_on_page(&page_one))
        .await
        .unwrap();
    store
        .note_seen(&s, "sweep", "c10", &seen_on_page(&page_two))
        .await
        .unwrap();

    let mut found = compare(&store, &store, &s, "sweep").await.unwrap();
    found.to_fetch.sort();
    assert_eq!(found.live, 5, "all but the tombstone");
    assert_eq!(found.unchanged, 2, "same, pruned by nango");
    assert_eq!(
        found.to_fetch,
        [
            ("changed".to_owned(), true),
            ("changed twice".to_owned(), true),
            ("new".to_owned(), false),
            ("tombstoned here".to_owned(), false),
        ]
    );
    assert_eq!(found.unseen, ["gone from nango"]);
    assert!(
        compare(&store, &store, &s, "another sweep")
            .await
            .unwrap()
            .unseen
            .len()
            == 5,
        "another sweep's notes are its own"
    );
}

#[tokio::test]
async fn healing_writes_nangos_current_records_and_counts_what_became_live() {
    let sim = Arc::new(Simulator::new());
    let s = StreamKey::new("p", "c", "Contact", "base");
    let payload = |n: i64| json!({"n": n}).as_object().unwrap().clone();
    sim.save(&s, (0..4).map(|i| (format!("r{i}"), payload(i))));
    sim.tick();
    sim.delete(&s, &["r3"]);
    let source = InProcessSource {
        sim: Arc::clone(&sim),
        limit: 100,
    };
    let store = MemoryStore::new();
    // The copy holds r0 live and r3 live (Nango deleted it since); r1 and r2 not at all.
    let served = sim.page(&s, None, 100).unwrap();
    let served: Vec<NangoRecord> = served["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| NangoRecord::from_object(r.as_object().unwrap().clone()).unwrap())
        .collect();
    let r3_before = record("r3", "old", false, false);
    store
        .write_page(&s, &[served[0].clone(), r3_before])
        .await
        .unwrap();
    let to_fetch = [
        ("r1".to_owned(), false),
        ("r2".to_owned(), false),
        ("r3".to_owned(), true),
        ("not at nango".to_owned(), false),
    ];
    let healed = heal(&source, &store, &s, &to_fetch, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        healed,
        Healed {
            written: 3,
            live_change: 1
        },
        "r1 and r2 live, r3 no longer"
    );
    let copy = store.records(&s);
    assert_eq!(copy.len(), 4);
    assert!(copy["r3"]["_nango_metadata"]["deleted_at"].is_string());
    assert_eq!(copy["r2"]["n"], 2);
}

/// Nango cuts a records page at its byte budget, ids asked or not: healing asks again for the
/// ids a page did not hold, until every one was served.
#[tokio::test]
async fn healing_asks_again_for_what_a_cut_short_page_left_out() {
    let sim = Arc::new(Simulator::new());
    let s = StreamKey::new("p", "c", "Contact", "base");
    let payload = |n: usize| json!({"n": n, "text": "x".repeat(1_000)});
    sim.save(
        &s,
        (0..10).map(|i| (format!("r{i}"), payload(i).as_object().unwrap().clone())),
    );
    // About 1.3 KB a record: two to a page.
    sim.set_max_response_bytes(2_800);
    let source = InProcessSource {
        sim: Arc::clone(&sim),
        limit: 100,
    };
    let asked: Vec<&str> = vec!["r0", "r3", "r9"];
    let page = nango_sync::ports::RecordSource::fetch_ids(&source, &s, &asked, None)
        .await
        .unwrap();
    assert_eq!(page.len(), 2, "the budget cuts the page");
    assert!(page.next_cursor().is_some(), "and says more exist");

    let store = MemoryStore::new();
    let to_fetch: Vec<(String, bool)> = (0..10).map(|i| (format!("r{i}"), false)).collect();
    let healed = heal(&source, &store, &s, &to_fetch, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        healed,
        Healed {
            written: 10,
            live_change: 10
        }
    );
    let copy = store.records(&s);
    assert_eq!(copy.len(), 10, "every id, over five pages");
    assert_eq!(copy["r9"]["n"], 9);
}

/// A re-read's page check (`core::reread`): the copy's records read once, each page's records
/// held against them by their last occurrence on the page, and what was written remembered.
#[tokio::test]
async fn a_re_read_leaves_alone_only_what_the_copy_holds_as_served() {
    let store = MemoryStore::new();
    let s = StreamKey::new("p", "c", "Contact", "base");
    let stored = [
        record("a", "c1", false, false),
        record("b", "c2", false, false),
        record("gone", "c3", true, false),
        record("c", "c4", false, false),
        record("d", "c5", false, false),
    ];
    store.write_page(&s, &stored).await.unwrap();
    // A normal run's small page is no re-read: nothing is read of the copy.
    let mut normal = Reread::new(false, 5);
    assert_eq!(
        normal.unchanged(&store, &s, &stored[..2]).await.unwrap(),
        None
    );
    assert!(!normal.is_on());

    let mut reread = Reread::new(true, 5);
    let page = [
        // Re-added under a new cursor, same content: left alone.
        re_added(&stored[0], "c10"),
        record("b", "c11", false, false),
        re_added(&stored[3], "c17"),
        // Served twice: its last occurrence is what the copy holds, so both are left alone.
        record("gone", "c12", false, false),
        re_added(&stored[2], "c13"),
        re_added(&stored[4], "c18"),
        record("new", "c14", false, false),
    ];
    let unchanged = reread.unchanged(&store, &s, &page).await.unwrap();
    assert!(
        reread.is_on(),
        "2 of the 3 probed (a, c, new) are held as served"
    );
    assert_eq!(
        unchanged,
        Some(vec![true, false, true, true, true, true, false])
    );
    // b was written at c11. Served back at its c2 content on a later page, it is written again;
    // served so and then at c11 again, its last occurrence is what the copy holds.
    store.write_page(&s, &page[1..2]).await.unwrap();
    reread.wrote(&page[1..2], &Default::default());
    let back = [record("b", "c2", false, false)];
    let unchanged = reread.unchanged(&store, &s, &back).await.unwrap();
    assert_eq!(
        unchanged,
        Some(vec![false]),
        "the copy holds b's c11 content"
    );
    let back_and_forth = [record("b", "c2", false, false), re_added(&page[1], "c15")];
    let unchanged = reread.unchanged(&store, &s, &back_and_forth).await.unwrap();
    assert_eq!(unchanged, Some(vec![true, true]), "b's last occurrence");
    // d, pruned and then deleted: stored as a tombstone. Served live again with its old
    // content, it is written: the content held before no longer describes the copy.
    let gone = [record("d", "c19", true, true)];
    store.write_page(&s, &gone).await.unwrap();
    reread.wrote(&gone, &Default::default());
    let back = [record("d", "c5", false, false)];
    let unchanged = reread.unchanged(&store, &s, &back).await.unwrap();
    assert_eq!(unchanged, Some(vec![false]), "the copy holds d deleted");

    // A first sync: the probed records are not stored, so nothing more is read.
    let empty = MemoryStore::new();
    let mut first = Reread::new(true, 5);
    assert_eq!(first.unchanged(&empty, &s, &page).await.unwrap(), None);
    assert!(!first.is_on());
}

/// `record` as emptyCache re-adds it: the same content, ADDED, under a new cursor.
fn re_added(record: &NangoRecord, cursor: &str) -> NangoRecord {
    let mut object = record.object();
    let meta = object["_nango_metadata"].as_object_mut().unwrap();
    meta.insert("cursor".into(), json!(cursor));
    meta.insert("last_action".into(), json!("ADDED"));
    meta.insert("first_seen_at".into(), json!("2026-12-08T00:00:00+00:00"));
    NangoRecord::from_object(object).unwrap()
}
