//! 429s as the worker meets them, against the simulated Nango over HTTP and the SQLite store: a
//! proxy's 429 (Retry-After 1, the window's reset a minute away) costs a second, not a minute;
//! a reset is waited for only when no points are left; and no wait runs past the invocation's
//! deadline: the job continues in a later invocation instead.

use std::time::{Duration, Instant};

use nango_sync::adapters::nango::{NangoClient, RateLimits};
use nango_sync::core::metrics::job_requests;
use nango_sync::core::outcome::JobOutcome;
use nango_sync::core::stream::StreamKey;
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
    let started = Instant::now();
    let (outcome, tally) = job_requests(rig.app.process(&sync_job(&s), None)).await;
    let outcome = outcome.unwrap();
    let took = started.elapsed();
    // What the job's metrics report: three pages of 100, one of them asked twice, a second waited.
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
        retry_after: Some(6),
        remaining: 0,
        reset_in: 6,
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
        "did not wait out Nango's 6 s: {:?}",
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
    // The continuation runs once Nango lets it: the process's requests wait out the 6 s.
    let outcome = rig.app.process(&continuation, None).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "the continuation went before Nango's wait ended: {:?}",
        started.elapsed()
    );
    assert!(
        matches!(outcome, JobOutcome::Synced(ref s) if s.written == 250),
        "{outcome:?}"
    );
}

/// The simulator's round control, which the fault-round benchmark drives: a round changes every
/// stream and turns random faults on; its random 429s are a burst limiter's (Retry-After 0 or 1,
/// the window's reset up to a minute away), so a client that waits for the reset waits long.
#[tokio::test]
async fn a_simulated_round_changes_records_and_turns_on_burst_limiter_429s() {
    let (rig, s) = deployed_waits().await;
    let http = reqwest::Client::new();
    let round = |query: &str| {
        http.post(format!("{}/_simulator/round?{query}", rig.nango_url))
            .bearer_auth(API_KEY)
            .send()
    };
    assert_eq!(round("churn=2").await.unwrap().status(), 400);
    assert_eq!(round("surprise=1").await.unwrap().status(), 400);
    let answer = round("churn=0.4&rate_limit_rate=1").await.unwrap();
    assert_eq!(answer.status(), 200);
    let changed: serde_json::Value = answer.json().await.unwrap();
    // 40 % of 250: half updated, a quarter deleted, a quarter as many added.
    assert_eq!(
        changed,
        json!({"added": 25, "updated": 50, "deleted": 25}),
        "{changed}"
    );
    for _ in 0..5 {
        let answer = http
            .get(format!("{}/records?model=Contact", rig.nango_url))
            .bearer_auth(API_KEY)
            .header("Connection-Id", &s.connection_id)
            .header("Provider-Config-Key", &s.provider_config_key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 429);
        let number =
            |name: &str| -> u64 { answer.headers()[name].to_str().unwrap().parse().unwrap() };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(number("retry-after") <= 1);
        assert!(number("x-ratelimit-remaining") <= 3);
        assert!((now..=now + 61).contains(&number("x-ratelimit-reset")));
    }
    // Turned off again, the changes are there to sync.
    assert_eq!(round("rate_limit_rate=0").await.unwrap().status(), 200);
    let outcome = rig.app.process(&sync_job(&s), None).await.unwrap();
    assert!(
        matches!(outcome, JobOutcome::Synced(ref summary) if summary.written == 275),
        "{outcome:?}"
    );
}
