//! 429s as the worker meets them, against the simulated Nango over HTTP and the SQLite store: a
//! proxy's 429 (Retry-After 1, the window's reset a minute away) costs a second, not a minute;
//! a reset is waited for only when no points are left; and no wait runs past the invocation's
//! deadline: the job continues in a later invocation instead.

use std::time::{Duration, Instant};

use nango_sync::adapters::nango::{NangoClient, RateLimits};
use nango_sync::core::stream::StreamKey;
use nango_sync::core::worker::JobOutcome;
use nango_sync::ports::RecordSource;
use nango_sync::simulator::sample_payload;
use nango_sync::simulator::server::Fault;
use serde_json::json;

use crate::common::{fast_retry, API_KEY};
use crate::reconcile::{rig, Backend, Rig};

/// The SQLite rig, its records client waiting out 429s as deployed (at least 1 s, at most 120 s).
async fn deployed_waits() -> (Rig, StreamKey) {
    let mut rig = rig(Backend::Sqlite).await;
    rig.app.source = NangoClient::new(&rig.nango_url, API_KEY, 100, fast_retry())
        .with_rate_limits(RateLimits::default());
    let s = StreamKey::new("crm", "conn-0", "Contact", "base");
    rig.sim
        .save(&s, (0..250).map(|i| (format!("c{i}"), sample_payload(i))));
    (rig, s)
}

fn sync_job(stream: &StreamKey) -> String {
    json!({"v": 1, "received_at": "2026-12-03T12:00:00.000Z", "job": {"sync": {
        "stream": stream, "sync_name": "contacts"}}})
    .to_string()
}

#[tokio::test]
async fn retry_after_wins_over_a_reset_a_minute_away() {
    let (rig, s) = deployed_waits().await;
    rig.server().inject([Fault::RateLimited {
        retry_after: Some(1),
        remaining: 0,
        reset_in: 60,
    }]);
    let (started, before) = (Instant::now(), rig.app.source.tally());
    let outcome = rig.app.process(&sync_job(&s), None).await.unwrap();
    let took = started.elapsed();
    // What the job's metrics report: three pages of 100, one of them asked twice, a second waited.
    let tally = rig.app.source.tally().since(before);
    assert_eq!((tally.requests, tally.rate_limited), (4, 1), "{tally:?}");
    assert!((1000..10_000).contains(&tally.waited_ms), "{tally:?}");
    assert!(
        matches!(outcome, JobOutcome::Synced(ref summary) if summary.written == 250),
        "{outcome:?}"
    );
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After is honoured: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "not the reset's minute: {took:?}"
    );
}

#[tokio::test]
async fn a_reset_is_waited_for_only_when_no_points_are_left() {
    let (rig, s) = deployed_waits().await;
    // Points left: the reset 60 s away is not waited for; the least wait (1 s) is.
    rig.server().inject([Fault::RateLimited {
        retry_after: None,
        remaining: 12,
        reset_in: 60,
    }]);
    let started = Instant::now();
    rig.app.process(&sync_job(&s), None).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // No points left: until the reset (2 s here).
    rig.sim.tick();
    rig.sim.save(&s, [("new".to_owned(), sample_payload(1))]);
    rig.server().inject([Fault::RateLimited {
        retry_after: None,
        remaining: 0,
        reset_in: 3,
    }]);
    let started = Instant::now();
    rig.app.process(&sync_job(&s), None).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_wait_past_the_deadline_becomes_a_continuation() {
    let (rig, s) = deployed_waits().await;
    rig.server().inject([Fault::RateLimited {
        retry_after: Some(30),
        remaining: 0,
        reset_in: 30,
    }]);
    // The invocation has 3 s left (the worker stops starting work 60 s before its deadline by
    // default: the deadline here is 63 s away).
    let deadline = Instant::now() + Duration::from_secs(63);
    let started = Instant::now();
    let outcome = rig
        .app
        .process(&sync_job(&s), Some(deadline - Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait out Nango's 30 s: {:?}",
        started.elapsed()
    );
    let JobOutcome::Continued(summary) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(summary.written, 0);
    let continuation = rig.app.queue.sent().last().unwrap().body.clone();
    assert!(
        continuation.contains(r#""trigger":"continuation""#),
        "{continuation}"
    );
    // The continuation runs once Nango lets it.
    let outcome = rig.app.process(&continuation, None).await.unwrap();
    assert!(
        matches!(outcome, JobOutcome::Synced(ref s) if s.written == 250),
        "{outcome:?}"
    );
}
