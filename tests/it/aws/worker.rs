//! Over the wire: the worker against the simulated Nango (HTTP) and moto's DynamoDB.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nango_sync::core::outcome::{JobOutcome, SyncEnd};
use nango_sync::core::state::StreamStatus;
use nango_sync::core::stream::StreamKey;
use nango_sync::ports::{RecordStore, StateStore};
use nango_sync::simulator::server::{Fault, ServerSettings};
use serde_json::{json, Value};

use crate::aws::fault_proxy::FaultProxy;
use crate::common::{
    contacts, payload, same_content, same_json, sqs_event, sync_job, worker_rig, WorkerRig,
};

/// The store holds exactly Nango's records and the cursor of the last one.
async fn assert_in_sync(rig: &WorkerRig, stream: &StreamKey) {
    let stored = rig.app.records.read_stream(stream).await.unwrap();
    let truth = rig.sim.snapshot(stream);
    assert_eq!(stored.len(), truth.len(), "record count");
    for (id, record) in &truth {
        let stored = stored
            .get(id)
            .map(|r| Value::Object(r.clone()))
            .unwrap_or_default();
        assert!(
            same_json(&stored, record),
            "record {id}: stored {stored} but Nango has {record}"
        );
    }
    let state = rig.app.state.get_stream(stream).await.unwrap().unwrap();
    assert_eq!(state.cursor, rig.sim.last_cursor(stream), "stored cursor");
    assert_eq!(state.status(), StreamStatus::Ok, "{:?}", state.error);
}

async fn run_job(rig: &WorkerRig, stream: &StreamKey) -> JobOutcome {
    rig.app.process(&sync_job(stream), None).await.unwrap()
}

#[tokio::test]
async fn backfill_of_10k_records_over_many_pages() {
    let rig = worker_rig(500, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..10_000).map(|i| (format!("c{i}"), payload(i, 1))));
    let JobOutcome::Synced(summary) = run_job(&rig, &s).await else {
        panic!("not synced")
    };
    assert_eq!(summary.written, 10_000);
    assert_eq!(summary.pages, 20);
    assert_in_sync(&rig, &s).await;
    let state = rig.app.state.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.records_written, 10_000);
    assert_eq!(
        state.last_webhook_at.as_deref(),
        Some("2026-11-27T14:00:00.000Z")
    );
}

#[tokio::test]
async fn adds_updates_deletes_and_an_undelete_in_later_runs() {
    let rig = worker_rig(7, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..30).map(|i| (format!("c{i}"), payload(i, 1))));
    run_job(&rig, &s).await;
    assert_in_sync(&rig, &s).await;

    rig.sim.tick();
    rig.sim
        .save(&s, (25..40).map(|i| (format!("c{i}"), payload(i, 2))));
    rig.sim.delete(&s, &["c1", "c2", "c3"]);
    let JobOutcome::Synced(summary) = run_job(&rig, &s).await else {
        panic!()
    };
    assert_eq!(summary.written, 15 + 3);
    assert_eq!(summary.deleted, 3);
    assert_in_sync(&rig, &s).await;
    let stored = rig.app.records.read_stream(&s).await.unwrap();
    assert_eq!(stored["c2"]["_nango_metadata"]["last_action"], "DELETED");
    assert_eq!(
        stored["c2"]["name"], "person 2",
        "a tombstone keeps the last payload"
    );

    rig.sim.tick();
    rig.sim.save(&s, [("c2".to_owned(), payload(2, 3))]);
    run_job(&rig, &s).await;
    assert_in_sync(&rig, &s).await;
    let stored = rig.app.records.read_stream(&s).await.unwrap();
    assert_eq!(stored["c2"]["_nango_metadata"]["last_action"], "ADDED");
    assert_eq!(stored["c2"]["version"], 3);
}

#[tokio::test]
async fn duplicate_and_empty_webhooks_change_nothing() {
    let rig = worker_rig(100, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..50).map(|i| (format!("c{i}"), payload(i, 1))));
    run_job(&rig, &s).await;
    let before = rig.app.state.get_stream(&s).await.unwrap().unwrap();
    let JobOutcome::Synced(again) = run_job(&rig, &s).await else {
        panic!()
    };
    assert_eq!((again.written, again.pages), (0, 1));
    let after = rig.app.state.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(after.cursor, before.cursor);
    assert_eq!(after.records_written, 50);
    assert_in_sync(&rig, &s).await;
}

#[tokio::test]
async fn crash_between_page_write_and_cursor_write_loses_nothing() {
    let rig = worker_rig(10, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..35).map(|i| (format!("c{i}"), payload(i, 1))));
    // A worker that died after writing records but before moving the cursor: the records of the
    // first page are in the table, the cursor is not.
    let page = nango_sync::ports::RecordSource::fetch_page(&rig.app.source, &s, None, None)
        .await
        .unwrap();
    nango_sync::ports::RecordStore::write_page(&rig.app.records, &s, &page.records)
        .await
        .unwrap();
    assert_eq!(rig.app.state.get_stream(&s).await.unwrap(), None);
    // Meanwhile a record of that page changes in Nango.
    rig.sim.tick();
    rig.sim.save(&s, [("c0".to_owned(), payload(0, 9))]);
    // Redelivery starts again from the stored (absent) cursor: a re-read, in which the 10
    // records written before the crash, stored as Nango serves them, are left alone (Nango
    // orders records by time and uuid, so c0 was not among them).
    let JobOutcome::Synced(summary) = run_job(&rig, &s).await else {
        panic!()
    };
    assert_eq!((summary.written, summary.unchanged), (25, 10));
    assert_in_sync(&rig, &s).await;
    assert_eq!(
        rig.app.records.read_stream(&s).await.unwrap()["c0"]["version"],
        9,
        "nothing stale"
    );
}

#[tokio::test]
async fn rate_limit_storm_and_5xx_bursts_are_outlasted() {
    let rig = worker_rig(25, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..100).map(|i| (format!("c{i}"), payload(i, 1))));
    rig.server.inject(std::iter::repeat_n(
        Fault::TooManyRequests { retry_after: 0 },
        5,
    ));
    rig.server.inject([
        Fault::ServerError,
        Fault::Unavailable,
        Fault::Reset,
        Fault::Truncated,
        Fault::ServerError,
    ]);
    rig.server.inject([
        Fault::Delay(Duration::from_millis(30)),
        Fault::TooManyRequests { retry_after: 0 },
    ]);
    let JobOutcome::Synced(summary) = run_job(&rig, &s).await else {
        panic!()
    };
    assert_eq!(summary.written, 100);
    assert_eq!(rig.server.pending_faults(), 0);
    assert_eq!(rig.server.stats.faults.load(Ordering::Relaxed), 12);
    assert_in_sync(&rig, &s).await;
}

#[tokio::test]
async fn persistent_outage_fails_the_message_for_redelivery() {
    let rig = worker_rig(25, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..10).map(|i| (format!("c{i}"), payload(i, 1))));
    rig.server
        .inject(std::iter::repeat_n(Fault::ServerError, 8));
    let event = sqs_event(&[("m1", "g1", &sync_job(&s))]);
    let response = nango_sync::lambda::worker(&rig.app, event, None).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let state = rig.app.state.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.status(), StreamStatus::Error);
    assert!(state.error.unwrap().starts_with("will retry"));
    // Redelivered after the outage: it completes.
    run_job(&rig, &s).await;
    assert_in_sync(&rig, &s).await;
}

#[tokio::test]
async fn permanent_errors_mark_the_stream_and_are_not_retried() {
    let rig = worker_rig(25, ServerSettings::default(), None).await;
    let gone = StreamKey::new("hubspot", "deleted-connection", "Contact", "base");
    let event = sqs_event(&[("m1", "g1", &sync_job(&gone))]);
    let response = nango_sync::lambda::worker(&rig.app, event, None).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "not retried forever"
    );
    let state = rig.app.state.get_stream(&gone).await.unwrap().unwrap();
    assert_eq!(state.status(), StreamStatus::Error);
    assert!(state.error.unwrap().contains("connection unknown to Nango"));
}

#[tokio::test]
async fn a_cursor_nango_rejects_is_reported_with_its_remedy() {
    let rig = worker_rig(25, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..5).map(|i| (format!("c{i}"), payload(i, 1))));
    rig.app
        .state
        .advance_cursor(&s, None, "bm90IGEgY3Vyc29y", 0, &[], None)
        .await
        .unwrap();
    let outcome = run_job(&rig, &s).await;
    let JobOutcome::StreamInError(message) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(message.contains("reset the stream's cursor"), "{message}");
    rig.app.state.reset_cursor(&s).await.unwrap();
    run_job(&rig, &s).await;
    assert_in_sync(&rig, &s).await;
}

#[tokio::test]
async fn dynamodb_throttling_and_unprocessed_items_are_retried_until_written() {
    let proxy = FaultProxy::start(crate::common::moto_endpoint()).await;
    proxy.faults.throttle.store(3, Ordering::SeqCst);
    proxy.faults.internal_error.store(2, Ordering::SeqCst);
    proxy.faults.trim.store(6, Ordering::SeqCst);
    let rig = worker_rig(100, ServerSettings::default(), Some(proxy.url.clone())).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..300).map(|i| (format!("c{i}"), payload(i, 1))));
    let JobOutcome::Synced(summary) = run_job(&rig, &s).await else {
        panic!()
    };
    assert_eq!(summary.written, 300);
    assert_eq!(
        proxy.faults.injected.load(Ordering::SeqCst),
        11,
        "every fault was hit"
    );
    assert_in_sync(&rig, &s).await;
}

/// A partition that stays hot: every BatchWriteItem call writes one item of its 25. A fixed
/// number of rounds per batch (the policy's 12 attempts) would give up; the write slows down
/// instead (the calls in flight drop to one) and finishes with nothing lost.
#[tokio::test]
async fn sustained_throttling_slows_the_write_and_loses_nothing() {
    let proxy = FaultProxy::start(crate::common::moto_endpoint()).await;
    proxy.faults.admit.store(1, Ordering::SeqCst);
    let rig = worker_rig(100, ServerSettings::default(), Some(proxy.url.clone())).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..100).map(|i| (format!("c{i}"), payload(i, 1))));
    let outcome = run_job(&rig, &s).await;
    let JobOutcome::Synced(summary) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(summary.written, 100);
    let rounds = proxy.faults.batch_writes.load(Ordering::SeqCst);
    assert!(rounds >= 100, "each call wrote one item: {rounds} calls");
    assert_eq!(
        rig.app.records.write_concurrency().1,
        1,
        "throttling brought the calls in flight down to one"
    );
    proxy.faults.admit.store(0, Ordering::SeqCst);
    assert_in_sync(&rig, &s).await;
}

#[tokio::test]
async fn oversized_records_are_compressed_or_reported_never_dropped() {
    let rig = worker_rig(10, ServerSettings::default(), None).await;
    let s = contacts();
    let big = json!({"blob": "ab".repeat(300_000)})
        .as_object()
        .unwrap()
        .clone();
    let noise = nango_sync::simulator::incompressible_text(700_000, 11);
    let huge = json!({ "blob": noise }).as_object().unwrap().clone();
    rig.sim.save(
        &s,
        [
            ("big".to_owned(), big),
            ("huge".to_owned(), huge),
            ("small".to_owned(), payload(1, 1)),
        ],
    );
    let JobOutcome::Synced(summary) = run_job(&rig, &s).await else {
        panic!()
    };
    assert_eq!(summary.rejected, 1);
    let stored = rig.app.records.read_stream(&s).await.unwrap();
    assert!(
        same_json(
            &Value::Object(stored["big"].clone()),
            &rig.sim.snapshot(&s)["big"]
        ),
        "compressed round trip"
    );
    assert!(stored.contains_key("small"));
    assert!(!stored.contains_key("huge"));
    let state = rig.app.state.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.records_rejected, 1);
    assert_eq!(
        state.cursor,
        rig.sim.last_cursor(&s),
        "the sync went on past it"
    );
}

#[tokio::test]
async fn a_pruned_record_never_erases_the_stored_payload() {
    let rig = worker_rig(10, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..3).map(|i| (format!("c{i}"), payload(i, 1))));
    run_job(&rig, &s).await;
    let before = rig.app.state.get_stream(&s).await.unwrap().unwrap().cursor;
    rig.sim.tick();
    rig.sim.prune(&s, &["c1"]);
    // Nango's prune moves no cursor: a sync by cursor has nothing to read.
    run_job(&rig, &s).await;
    let state = rig.app.state.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.cursor, before);
    assert_eq!(state.cursor, rig.sim.last_cursor(&s));
    // A read from the start (a reset's, a sweep's) serves the pruned record: its payload stays.
    let page = rig.sim.page(&s, None, 100).unwrap().to_string();
    let records = nango_sync::core::record::RecordsPage::parse(page.as_bytes())
        .unwrap()
        .records;
    assert!(records
        .iter()
        .any(|r| r.id == "c1" && r.metadata.pruned_at.is_some()));
    rig.app.records.write_page(&s, &records).await.unwrap();
    let stored = rig.app.records.read_stream(&s).await.unwrap();
    assert_eq!(stored["c1"]["name"], "person 1", "payload kept");
}

#[tokio::test]
async fn deadline_continuations_complete_a_long_backfill() {
    let settings = ServerSettings {
        latency: Duration::from_millis(20),
        ..ServerSettings::default()
    };
    let rig = worker_rig(50, settings, None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..1_000).map(|i| (format!("c{i}"), payload(i, 1))));
    let mut body = sync_job(&s);
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(invocations < 50, "no progress");
        // Each invocation may start pages for ~150 ms only.
        let stop_at = Instant::now() + Duration::from_millis(150);
        match rig.app.process(&body, Some(stop_at)).await.unwrap() {
            JobOutcome::Continued(_) => {
                let sent = rig.app.queue.sent();
                body = sent.last().unwrap().body.clone();
                assert_eq!(sent.last().unwrap().group_id, s.message_group_id());
            }
            JobOutcome::Synced(_) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        invocations > 2,
        "the backfill should have needed continuations ({invocations})"
    );
    assert_eq!(rig.app.queue.sent().len(), invocations - 1);
    assert_in_sync(&rig, &s).await;
}

#[tokio::test]
async fn reconcile_catches_up_a_stream_whose_webhook_was_lost() {
    let rig = worker_rig(50, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..20).map(|i| (format!("c{i}"), payload(i, 1))));
    run_job(&rig, &s).await;
    // Nango changes records and its webhook never arrives.
    rig.sim.tick();
    rig.sim
        .save(&s, (15..40).map(|i| (format!("c{i}"), payload(i, 2))));
    let reconcile = r#"{"v":1,"received_at":"2026-11-27T14:15:00Z","job":{"reconcile":{}}}"#;
    let outcome = rig.app.process(reconcile, None).await.unwrap();
    assert_eq!(
        outcome,
        JobOutcome::Reconciled {
            streams: 1,
            new_streams: 0,
            actions_checked: 0
        }
    );
    let [job] = rig.app.queue.sent().try_into().unwrap();
    assert_eq!(job.group_id, s.message_group_id());
    let before = rig
        .app
        .state
        .get_stream(&s)
        .await
        .unwrap()
        .unwrap()
        .last_webhook_at;
    rig.app.process(&job.body, None).await.unwrap();
    assert_in_sync(&rig, &s).await;
    let after = rig
        .app
        .state
        .get_stream(&s)
        .await
        .unwrap()
        .unwrap()
        .last_webhook_at;
    assert_eq!(before, after, "a reconcile is not a webhook");
}

#[tokio::test]
async fn reconcile_discovers_streams_that_never_sent_a_webhook() {
    let rig = worker_rig(50, ServerSettings::default(), None).await;
    let known = contacts();
    let silent = StreamKey::new("salesforce", "org-9", "Deal", "eu");
    let gone = StreamKey::new("hubspot", "deleted-connection", "Contact", "base");
    rig.sim
        .save(&known, (0..10).map(|i| (format!("c{i}"), payload(i, 1))));
    rig.sim
        .save(&silent, (0..30).map(|i| (format!("d{i}"), payload(i, 1))));
    rig.sim.set_sync_name(&silent, "deals");
    run_job(&rig, &known).await;
    // A stream whose connection was deleted in Nango: in error, and no longer listed.
    run_job(&rig, &gone).await;

    let reconcile = r#"{"v":1,"received_at":"2026-11-27T14:30:00Z","job":{"reconcile":{}}}"#;
    let outcome = rig.app.process(reconcile, None).await.unwrap();
    assert_eq!(
        outcome,
        JobOutcome::Reconciled {
            streams: 2,
            new_streams: 1,
            actions_checked: 0
        }
    );
    for job in rig.app.queue.sent() {
        rig.app.process(&job.body, None).await.unwrap();
    }
    assert_in_sync(&rig, &known).await;
    assert_in_sync(&rig, &silent).await;
    let state = rig.app.state.get_stream(&silent).await.unwrap().unwrap();
    assert_eq!(state.sync_name.as_deref(), Some("deals"));
    assert_eq!(state.last_webhook_at, None);
}

/// After a sweep: every record Nango has is stored as Nango has it, every stored record Nango no
/// longer has is marked deleted, and the live count equals Nango's.
async fn assert_swept(rig: &WorkerRig, stream: &StreamKey) {
    let stored = rig.app.records.read_stream(stream).await.unwrap();
    let truth = rig.sim.snapshot(stream);
    for (id, record) in &truth {
        let stored = Value::Object(stored.get(id).cloned().unwrap_or_default());
        assert!(
            same_content(&stored, record),
            "record {id}: stored {stored}, Nango has {record}"
        );
    }
    for (id, record) in stored.iter().filter(|(id, _)| !truth.contains_key(*id)) {
        let meta = &record["_nango_metadata"];
        assert!(
            meta["deleted_at"].is_string(),
            "stale record {id} not marked deleted: {meta}"
        );
        assert_eq!(meta["last_action"], "DELETED");
    }
    let live = truth
        .values()
        .filter(|r| r["_nango_metadata"]["deleted_at"].is_null())
        .count() as u64;
    assert_eq!(
        RecordStore::count_live(&rig.app.records, stream)
            .await
            .unwrap(),
        live
    );
    let state = rig.app.state.get_stream(stream).await.unwrap().unwrap();
    assert_eq!(state.cursor, rig.sim.last_cursor(stream), "main cursor");
    assert_eq!(state.sweep, None, "sweep finished");
}

/// Runs a reconcile and returns the body of the sync job it enqueued for `stream`.
async fn reconcile_job_for(rig: &WorkerRig, stream: &StreamKey, at: &str) -> String {
    rig.app.queue.clear();
    let reconcile = json!({"v": 1, "received_at": at, "job": {"reconcile": {}}}).to_string();
    rig.app.process(&reconcile, None).await.unwrap();
    let sent = rig.app.queue.sent();
    let job = sent
        .iter()
        .find(|m| m.group_id == stream.message_group_id())
        .expect("a sync job for the stream");
    job.body.clone()
}

#[tokio::test]
async fn a_cache_wipe_is_found_by_the_drift_check_and_swept() {
    let rig = worker_rig(7, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..60).map(|i| (format!("c{i}"), payload(i, 1))));
    rig.sim.tick();
    rig.sim.delete(&s, &["c0"]);
    run_job(&rig, &s).await;

    // A full resync with emptyCache: Nango's cache is rebuilt from the provider, which no longer
    // has c1..c9 and c50..c59; no delete is ever reported for them.
    rig.sim.tick();
    rig.sim.wipe(&s);
    rig.sim.tick();
    rig.sim.save(
        &s,
        (10..50).map(|i| (format!("c{i}"), payload(i, 1 + (i % 2) as u32))),
    );
    let JobOutcome::Synced(incremental) = run_job(&rig, &s).await else {
        panic!("webhook sync")
    };
    assert_eq!(
        incremental.sweep, None,
        "a webhook's sync runs no drift check"
    );
    assert_eq!(
        RecordStore::count_live(&rig.app.records, &s).await.unwrap(),
        59
    );

    let job = reconcile_job_for(&rig, &s, "2026-11-27T14:15:00Z").await;
    assert!(job.contains(r#""record_count":40"#), "{job}");
    // The reconcile's sync counts nothing: the count is a job of its own, after it.
    rig.app.queue.clear();
    let JobOutcome::Continued(synced) = rig.app.process(&job, None).await.unwrap() else {
        panic!("a sync whose drift check goes on")
    };
    assert_eq!((synced.end, synced.sweep), (SyncEnd::CheckGoesOn, None));
    let count = rig.app.queue.sent().remove(0);
    assert_eq!(count.group_id, s.message_group_id());
    let JobOutcome::Synced(summary) = rig.app.process(&count.body, None).await.unwrap() else {
        panic!("sync with sweep")
    };
    let sweep = summary.sweep.expect("drift found: a sweep ran");
    assert_eq!(sweep.deleted, 19, "c1..c9 and c50..c59 marked deleted");
    assert_swept(&rig, &s).await;
    let state = rig.app.state.get_stream(&s).await.unwrap().unwrap();
    let last = state.last_sweep.expect("sweep result recorded");
    assert_eq!(
        (last.nango_count, last.live_count, last.tombstoned),
        (40, 40, 19)
    );

    // The next reconcile finds no drift: no sweep (the sweep's writes call for a count, in a
    // job of its own).
    let job = reconcile_job_for(&rig, &s, "2026-11-27T14:30:00Z").await;
    let outcomes = run_with_continuations(&rig, &job).await;
    let Some(JobOutcome::Synced(summary)) = outcomes.last() else {
        panic!("sync: {outcomes:?}")
    };
    assert!(outcomes.iter().all(|o| matches!(o,
        JobOutcome::Synced(s) | JobOutcome::Continued(s) if s.sweep.is_none())));
    assert_eq!(summary.sweep, None);
}

/// Runs a job and the continuations it leads to, in order; returns their outcomes.
async fn run_with_continuations(rig: &WorkerRig, body: &str) -> Vec<JobOutcome> {
    rig.app.queue.clear();
    let mut outcomes = vec![rig.app.process(body, None).await.unwrap()];
    while let JobOutcome::Continued(_) = outcomes.last().unwrap() {
        let next = rig.app.queue.sent().pop().expect("a continuation");
        rig.app.queue.clear();
        outcomes.push(rig.app.process(&next.body, None).await.unwrap());
    }
    outcomes
}

#[tokio::test]
async fn a_sweep_continues_across_invocations_while_nango_keeps_changing() {
    let settings = ServerSettings {
        latency: Duration::from_millis(20),
        ..ServerSettings::default()
    };
    let mut rig = worker_rig(25, settings, None).await;
    // A third of the copy goes: beyond the guard's default bound, which has tests of its own
    // (tests/it/reconcile.rs). Raised here, this test is about a sweep's progress.
    rig.app.settings.drift.guard.max_deletes = 1_000;
    let s = contacts();
    rig.sim
        .save(&s, (0..600).map(|i| (format!("c{i}"), payload(i, 1))));
    run_job(&rig, &s).await;
    rig.sim.tick();
    rig.sim.wipe(&s);
    rig.sim.tick();
    rig.sim
        .save(&s, (0..400).map(|i| (format!("c{i}"), payload(i, 1))));

    let mut body = reconcile_job_for(&rig, &s, "2026-11-27T15:00:00Z").await;
    rig.app.queue.clear();
    let mut invocations = 0;
    let mut swept = false;
    loop {
        invocations += 1;
        assert!(invocations < 60, "no progress");
        let stop_at = Instant::now() + Duration::from_millis(150);
        let outcome = rig.app.process(&body, Some(stop_at)).await.unwrap();
        if invocations == 3 {
            // Nango changes mid-sweep: an add, a delete, an update.
            rig.sim.tick();
            rig.sim.save(&s, [("new-1".to_owned(), payload(1, 9))]);
            rig.sim.delete(&s, &["c100"]);
            rig.sim.save(&s, [("c150".to_owned(), payload(150, 2))]);
        }
        match outcome {
            JobOutcome::Continued(summary) => {
                swept |= summary.sweep.is_some();
                body = rig.app.queue.sent().last().unwrap().body.clone();
            }
            JobOutcome::Synced(summary) => {
                assert!(
                    summary.sweep.is_some(),
                    "the sweep ended in this invocation"
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        swept && invocations > 2,
        "the sweep needed continuations ({invocations})"
    );
    assert_swept(&rig, &s).await;
    let stored = rig.app.records.read_stream(&s).await.unwrap();
    assert_eq!(stored.len(), 601, "600 before the wipe, plus new-1");
}

#[tokio::test]
async fn continuations_without_progress_are_not_deduplicated_away() {
    // Found by the chaos suite (seed 4): the deadline came before the first page twice in a row,
    // both continuations had the same deduplication id, the queue dropped the second, and the
    // stream stalled until the next webhook.
    let rig = worker_rig(50, ServerSettings::default(), None).await;
    let s = contacts();
    rig.sim
        .save(&s, (0..10).map(|i| (format!("c{i}"), payload(i, 1))));
    let mut body = sync_job(&s);
    for _ in 0..3 {
        // The deadline minus the worker's margin is already past: no page starts.
        let outcome = rig.app.process(&body, Some(Instant::now())).await.unwrap();
        assert!(
            matches!(outcome, JobOutcome::Continued(ref summary) if summary.pages == 0),
            "{outcome:?}"
        );
        body = rig.app.queue.sent().last().unwrap().body.clone();
    }
    let ids: std::collections::HashSet<String> = rig
        .app
        .queue
        .sent()
        .into_iter()
        .map(|m| m.dedup_id)
        .collect();
    assert_eq!(ids.len(), 3, "each continuation must be new to the queue");
    rig.app.process(&body, None).await.unwrap();
    assert_in_sync(&rig, &s).await;
}
