//! One clock, passed in (issue "A house with no circles", item 2): core reads the time only from
//! the clock it is given, so a fixed clock pins what the webhook and the worker stamp; and no
//! core module asks the system for the time outside `src/core/clock.rs`.

use std::sync::Arc;
use std::time::Duration;

use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::config::DEFAULT_MAX_BODY_BYTES;
use nango_sync::core::clock::FixedClock;
use nango_sync::core::job::JobMessage;
use nango_sync::core::webhook::WebhookApp;
use nango_sync::ports::StateStore;
use time::OffsetDateTime;

use crate::common::{read, repo_path, test_verifier};
use crate::reconcile::{rig, Backend};

fn fixed() -> Arc<FixedClock> {
    Arc::new(FixedClock::at(
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    ))
}

#[tokio::test]
async fn the_webhook_stamps_its_jobs_with_the_clock_it_is_given() {
    let clock = fixed();
    let app = WebhookApp::new(test_verifier(), MemoryQueue::new(), DEFAULT_MAX_BODY_BYTES)
        .with_clock(clock.clone());
    let request =
        lambda_http::request::from_str(&read("events/webhook-sync-success.json")).unwrap();
    nango_sync::lambda::webhook(&app, request).await;
    let [message] = app.queue().sent().try_into().unwrap();
    let job = JobMessage::decode(&message.body).unwrap();
    assert_eq!(job.received_at, "2027-01-15T08:00:00.000Z");
}

#[tokio::test]
async fn the_worker_stamps_what_it_stores_with_the_clock_it_is_given() {
    let clock = fixed();
    clock.advance(Duration::from_millis(250));
    let mut rig = rig(Backend::Sqlite).await;
    rig.app.settings.clock = clock.clone();
    let stream = rig.sim.populate("crm", 1, &["Contact"], 3).remove(0);
    rig.webhook_sync(&stream).await;
    let state = rig.app.state.get_stream(&stream).await.unwrap().unwrap();
    assert_eq!(
        state.last_sync_at.as_deref(),
        Some("2027-01-15T08:00:00.250Z")
    );
    assert_eq!(state.records_written, 3);
}

/// Core's code (not its unit tests) names no system clock but in clock.rs: a new call to the
/// wall clock in core fails here, not in a flaky time-dependent test.
#[test]
fn core_reads_the_time_only_from_its_clock() {
    let dir = repo_path("src/core");
    let mut checked = 0;
    for path in crate::house::rust_files(&dir) {
        if path.ends_with("clock.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let line = line.trim();
            if line.starts_with("//") || line.starts_with("use ") || line.starts_with("pub use ") {
                continue;
            }
            let free_call = line
                .match_indices("now_rfc3339(")
                .any(|(at, _)| !line[..at].ends_with('.'));
            assert!(
                !(line.contains("now_utc(") || line.contains("SystemTime::now") || free_call),
                "{}:{}: core reads the system clock: {line}",
                path.display(),
                n + 1
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "checked {checked} core files");
}
