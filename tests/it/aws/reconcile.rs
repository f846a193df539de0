//! The reconcile scenarios (`crate::reconcile`) on DynamoDB over the wire (moto), and what only
//! DynamoDB does: a count that takes more than one invocation.

use std::time::Instant;

use nango_sync::core::drift::{DriftCheck, DriftStep};
use nango_sync::core::job::NangoListing;
use nango_sync::core::outcome::JobOutcome;
use nango_sync::ports::StreamDiscovery;
use nango_sync::simulator::{sample_payload, RecordShape};

use crate::reconcile::{rig, Backend};

crate::reconcile::scenarios!(on_dynamodb, Dynamo);

/// A partition too large to count within one invocation is counted over several: each drift
/// check stops at the invocation's deadline after the page in hand, keeps how far it got, and
/// the next goes on from there while nothing is written; a write in between starts it over.
/// (SQLite and memory count at once; DynamoDB reads 1 MB Query pages, so 2,400 records of about
/// 1.2 KB take three pages.)
#[tokio::test]
async fn a_large_partition_is_counted_over_several_invocations_on_dynamodb() {
    let rig = rig(Backend::Dynamo).await;
    let shape = RecordShape {
        bytes: 1_200,
        ..RecordShape::default()
    };
    let s = rig
        .sim
        .populate_shaped("crm", 1, &["Contact"], 2_400, &shape)
        .remove(0);
    let JobOutcome::Synced(summary) = rig.webhook_sync(&s).await else {
        panic!("the backfill did not finish")
    };
    // Each check runs with its invocation's time already up: one Query page, then it stops.
    let check = || async {
        let report = NangoListing::Listed(rig.app.source.sync_of(&s).await.unwrap().unwrap());
        let drift = DriftCheck {
            source: &rig.app.source,
            records: &rig.app.records,
            state: &rig.app.state,
            settings: &rig.app.settings.drift,
            until: Some(Instant::now()),
            clock: &*rig.app.settings.clock,
            may_count: true,
        };
        let stored = rig.state(&s).await;
        let step = drift
            .check_drift(&s, &report, &summary, &stored)
            .await
            .unwrap();
        (step, rig.state(&s).await.nango)
    };
    // A count that stopped goes on in a job of its own.
    let (step, notes) = check().await;
    assert_eq!(step, DriftStep::GoesOn);
    let first = notes.counting.expect("stopped after one page");
    assert!(
        (1..2_400).contains(&first.counted),
        "one page of the partition: {first:?}"
    );
    // A write lands: the count starts over rather than going on past it.
    rig.sim.tick();
    rig.sim.save(&s, [("new".to_owned(), sample_payload(1))]);
    let JobOutcome::Synced(_) = rig.webhook_sync(&s).await else {
        panic!("the write did not sync")
    };
    // Started over and stopped again: no chain of continuations while records keep arriving
    // faster than the count; the next reconcile goes on from here.
    let (step, notes) = check().await;
    assert_eq!(step, DriftStep::Settled, "no sweep, and no continuation");
    let restarted = notes.counting.expect("stopped after one page");
    assert!(restarted.counted < 2 * first.counted, "{restarted:?}");
    assert_eq!(
        restarted.records_written,
        rig.state(&s).await.records_written
    );
    assert_ne!(restarted.records_written, first.records_written);
    // Then, with nothing written, the checks go on to the end, one page each.
    let mut checks = 1;
    let notes = loop {
        let (step, notes) = check().await;
        checks += 1;
        if notes.counting.is_none() {
            assert_eq!(step, DriftStep::Settled, "no sweep: the counts agree");
            break notes;
        }
        assert_eq!(step, DriftStep::GoesOn, "the count goes on: {notes:?}");
        assert!(checks < 10, "the count makes progress: {notes:?}");
    };
    assert!(checks >= 3, "three pages, a check each: {checks}");
    let checked = notes.checked.expect("the whole count was compared");
    assert_eq!(
        (checked.nango_count, checked.live_count, checked.trusted),
        (2_401, 2_401, true)
    );
}
