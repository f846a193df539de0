//! The sync loop (`core::sync`) over an in-process simulator and the memory store: pages in
//! order, the cursor only forward, a failing store or a passed deadline stopping it.
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use nango_sync::adapters::memory::MemoryStore;
use nango_sync::core::outcome::SyncEnd;
use nango_sync::core::stream::StreamKey;
use nango_sync::core::sync::{sync_stream, Track};
use nango_sync::simulator::{InProcessSource, Simulator};

fn setup(n: usize, limit: usize) -> (Arc<Simulator>, InProcessSource, StreamKey) {
    let sim = Arc::new(Simulator::new());
    let stream = StreamKey::new("p", "c", "Contact", "base");
    sim.save(
        &stream,
        (0..n).map(|i| {
            (
                format!("r{i}"),
                json!({"n": i}).as_object().unwrap().clone(),
            )
        }),
    );
    let source = InProcessSource {
        sim: Arc::clone(&sim),
        limit,
    };
    (sim, source, stream)
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("the sync loop must not hang")
}

#[tokio::test]
async fn syncs_everything_and_the_cursor_only_moves_forward() {
    let (sim, source, stream) = setup(95, 10);
    let store = MemoryStore::new();
    let summary = bounded(sync_stream(
        &source,
        &store,
        &store,
        &stream,
        Track::Main,
        None,
    ))
    .await
    .unwrap();
    assert_eq!(
        (summary.pages, summary.written, summary.end),
        (10, 95, SyncEnd::UpToDate)
    );
    let stored: Vec<Value> = store
        .records(&stream)
        .into_values()
        .map(Value::Object)
        .collect();
    let truth: Vec<Value> = sim.snapshot(&stream).into_values().collect();
    assert_eq!(stored, truth);
    let history = store.cursor_history(&stream);
    assert_eq!(history.len(), 10);
    assert_eq!(history.last(), sim.last_cursor(&stream).as_ref());
    let expected_cursor = sim.last_cursor(&stream);
    assert_eq!(store.stream(&stream).unwrap().cursor, expected_cursor);
}

#[tokio::test]
async fn a_failing_store_stops_the_loop_without_moving_the_cursor() {
    let (_sim, source, stream) = setup(500, 10);
    let store = MemoryStore::new();
    store.set_failing(true);
    let error = bounded(sync_stream(
        &source,
        &store,
        &store,
        &stream,
        Track::Main,
        None,
    ))
    .await
    .unwrap_err();
    assert!(error.is_retryable());
    assert!(store.cursor_history(&stream).is_empty());
}

#[tokio::test]
async fn a_passed_deadline_starts_no_page() {
    let (_sim, source, stream) = setup(50, 10);
    let store = MemoryStore::new();
    let past = Instant::now()
        .checked_sub(Duration::from_millis(1))
        .unwrap_or_else(Instant::now);
    let summary = bounded(sync_stream(
        &source,
        &store,
        &store,
        &stream,
        Track::Main,
        Some(past),
    ))
    .await
    .unwrap();
    assert_eq!((summary.pages, summary.end), (0, SyncEnd::DeadlineReached));
    assert!(store.records(&stream).is_empty());
}
