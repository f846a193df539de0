//! The local run (`nango-sync serve`, `nango-sync demo`): the whole pipeline in one process on
//! the embedded backend, with the simulated Nango.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nango_sync::core::signature::{SigningKey, Verifier};
use nango_sync::core::stream::StreamKey;
use nango_sync::core::write::DeleteMode;
use nango_sync::local::backend::{Backends, QueueTarget, StoreTarget};
use nango_sync::local::demo::{self, DemoObserver, DemoOptions};
use nango_sync::local::run::{LocalParts, LocalRun};
use nango_sync::ports::StateStore;
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::{webhooks, Changes, Simulator};

use crate::common::{nango_client, unique_name, TEST_SIGNING_KEY};

struct Quiet;

impl DemoObserver for Quiet {
    fn round(&self, _: &str, _: &[(StreamKey, u64)]) {}
    fn progress(&self, _: usize, _: u64, _: bool) {}
}

fn temp_db() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}.db", unique_name("local-run")))
}

#[tokio::test]
async fn the_demo_syncs_changes_rounds_and_matches_nango_despite_faults() {
    let options = DemoOptions {
        connections: 2,
        models: vec!["Contact".into(), "Deal".into()],
        records: 400,
        rounds: 2,
        churn: 0.2,
        page_limit: 50,
        fault_rate: 0.05,
        rate_limit_rate: 0.05,
        db: temp_db(),
        round_timeout: Duration::from_secs(120),
        ..DemoOptions::default()
    };
    let report = demo::run(&options, &Quiet).await.unwrap();
    assert_eq!(report.streams.len(), 4);
    for (i, s) in report.streams.iter().enumerate() {
        assert!(s.matches_nango, "{s:?}");
        // 20% churn: half updates, a quarter deletes, a quarter additions, twice; and the
        // first stream gains the record the demo's write saved at the provider.
        let written_back = u64::from(i == 0);
        assert_eq!((s.records, s.deleted), (400 + written_back, 40), "{s:?}");
        assert!(s.fetched >= 400 + 2 * 80, "{s:?}");
    }
    // The write went through the queue, the worker and the simulated provider, despite the
    // faults, and the sync that followed read it back.
    let w = &report.write;
    assert_eq!((w.state, w.in_copy), ("succeeded", true), "{w:?}");
    assert_eq!(report.webhooks_sent, 12);
    assert_eq!(report.forged_webhook_status, 401);
}

fn parts(nango_url: &str, backends: &Backends, worker: bool) -> LocalParts {
    LocalParts {
        verifier: Verifier::new(SigningKey::new(TEST_SIGNING_KEY), None).into(),
        max_body_bytes: 256 * 1024,
        store: backends.store.clone(),
        queue: backends.queue.clone(),
        worker: worker.then(|| (nango_client(nango_url, 100), Default::default())),
        reconcile_every: None,
    }
}

#[tokio::test]
async fn a_restart_resumes_from_the_queued_jobs_and_stored_cursors() {
    let sim = Arc::new(Simulator::new());
    let stream = sim.populate("demo", 1, &["Contact"], 1_000).remove(0);
    let nango = SimServer::start(Arc::clone(&sim), ServerSettings::default())
        .await
        .unwrap();
    let db = temp_db();
    let open = || {
        Backends::open(
            &StoreTarget::Sqlite { path: db.clone() },
            &QueueTarget::Embedded { path: db.clone() },
            None,
            DeleteMode::Tombstone,
        )
        .unwrap()
    };
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let http = reqwest::Client::new();
    let webhook =
        |changes: Changes| webhooks::sync_success(&stream, "contacts", changes, "INCREMENTAL");

    // First process: the endpoint takes the webhook, then the process stops before any work.
    let first = LocalRun::start(any_port, parts(&nango.url, &open(), false))
        .await
        .unwrap();
    let status = webhooks::post_signed(
        &http,
        &first.webhook_url,
        TEST_SIGNING_KEY,
        webhook(Changes::default()),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    first.stop().await.unwrap();
    let backends = open();
    assert_eq!(
        backends.store.get_stream(&stream).await.unwrap(),
        None,
        "nothing synced yet"
    );

    // Second process: the queued job runs.
    let second = LocalRun::start(any_port, parts(&nango.url, &backends, true))
        .await
        .unwrap();
    wait_until_up_to_date(&backends, &sim, &stream).await;
    let totals = second.stop().await.unwrap();
    assert_eq!(totals.jobs, 1);

    // Third process: more changes; the sync starts from the stored cursor, not from scratch.
    sim.tick();
    let changes = sim.churn(&stream, 0.1, &mut fastrand::Rng::with_seed(3));
    let backends = open();
    let written_before = backends
        .store
        .get_stream(&stream)
        .await
        .unwrap()
        .unwrap()
        .records_written;
    let third = LocalRun::start(any_port, parts(&nango.url, &backends, true))
        .await
        .unwrap();
    webhooks::post_signed(
        &http,
        &third.webhook_url,
        TEST_SIGNING_KEY,
        webhook(changes),
    )
    .await
    .unwrap();
    wait_until_up_to_date(&backends, &sim, &stream).await;
    third.stop().await.unwrap();
    let written = backends
        .store
        .get_stream(&stream)
        .await
        .unwrap()
        .unwrap()
        .records_written;
    assert_eq!(
        written - written_before,
        changes.added + changes.updated + changes.deleted
    );
    let stored = backends.store.read_stream(&stream).await.unwrap();
    let truth = sim.snapshot(&stream);
    assert_eq!(stored.len(), truth.len());
    for (id, record) in &truth {
        assert_eq!(
            &serde_json::Value::Object(stored[id].clone()),
            record,
            "record {id}"
        );
    }
}

async fn wait_until_up_to_date(backends: &Backends, sim: &Simulator, stream: &StreamKey) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let state = backends.store.get_stream(stream).await.unwrap();
        if state.is_some_and(|s| s.cursor == sim.last_cursor(stream)) {
            return;
        }
        assert!(Instant::now() < until, "not up to date within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `nango-sync serve` reconciles at start and then every `--reconcile-every`: a stream that never
/// sent a webhook is found, and changes whose webhook was lost are healed, with no webhook at all.
#[tokio::test]
async fn the_local_schedule_heals_missed_webhooks() {
    let sim = Arc::new(Simulator::new());
    let stream = sim.populate("demo", 1, &["Contact"], 300).remove(0);
    let nango = SimServer::start(Arc::clone(&sim), ServerSettings::default())
        .await
        .unwrap();
    let db = temp_db();
    let backends = Backends::open(
        &StoreTarget::Sqlite { path: db.clone() },
        &QueueTarget::Embedded { path: db },
        None,
        DeleteMode::Tombstone,
    )
    .unwrap();
    let mut parts = parts(&nango.url, &backends, false);
    parts.worker = Some((
        nango_client(&nango.url, 100).with_discovery_rate(60_000),
        Default::default(),
    ));
    parts.reconcile_every = Some(Duration::from_millis(500));
    let run = LocalRun::start(SocketAddr::from(([127, 0, 0, 1], 0)), parts)
        .await
        .unwrap();
    // Found by the reconcile at start, and its drift check done (the count is a job of its own,
    // which syncs first: the changes below must wait for it, or that job would heal them).
    wait_until_up_to_date(&backends, &sim, &stream).await;
    let until = Instant::now() + Duration::from_secs(60);
    while backends
        .store
        .get_stream(&stream)
        .await
        .unwrap()
        .is_none_or(|s| s.nango.checked.is_none())
    {
        assert!(Instant::now() < until, "no drift check within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Changed in Nango; the webhook never comes.
    sim.tick();
    sim.churn(&stream, 0.2, &mut fastrand::Rng::with_seed(5));
    wait_until_up_to_date(&backends, &sim, &stream).await;
    let totals = run.stop().await.unwrap();
    assert!(
        totals.jobs >= 4,
        "two reconciles and their syncs: {totals:?}"
    );
    let state = backends.store.get_stream(&stream).await.unwrap().unwrap();
    assert_eq!(state.last_webhook_at, None, "no webhook was involved");
    assert_eq!(
        backends.store.read_stream(&stream).await.unwrap().len(),
        sim.snapshot(&stream).len()
    );
}
