//! A reconcile heals a dropped webhook without counting (issue "Streams side by side", done
//! when): 6 streams (3 connections x 2 models) of N records of the usual shape (about 1.2 KB,
//! every 500th about 50 KB; default 20,000) on DynamoDB (moto), Nango simulated over HTTP with
//! a latency per request. After a backfill and a first reconcile (which counts every stream once),
//! a round of changes touches 1% of every stream; the webhooks of 5 streams are handled, the 6th's
//! is dropped. The reconcile sent then must bring the 6th up to date within 30 s, reading no
//! partition (no Query). Run with `scripts/bench-heal.sh [--records N --latency-ms N]` (starts
//! moto).
//!
//! Jobs run as Lambda runs them: the queue's messages handed to the worker in batches of up to 10,
//! the streams of a batch side by side.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nango_sync::adapters::aws::dynamodb::{
    CapacityMeter, DynamoRecordStore, DynamoStateStore, WriteSettings,
};
use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::adapters::nango::{NangoClient, DEFAULT_RETRY};
use nango_sync::core::stream::StreamKey;
use nango_sync::core::worker::{WorkerApp, WorkerSettings};
use nango_sync::ports::{ReceivedMessage, StateStore};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::{RecordShape, Simulator};
use serde_json::json;

const API_KEY: &str = "00000000-0000-4000-8000-000000000000";
/// The goal: the dropped stream healed this soon after the reconcile was sent.
const HEALED_WITHIN: Duration = Duration::from_secs(30);
/// Lambda's largest SQS batch for a FIFO queue.
const BATCH: usize = 10;

type App = WorkerApp<NangoClient, DynamoRecordStore, DynamoStateStore, MemoryQueue>;

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    // Under `cargo test --all-targets` (no `--bench`): a small run that still checks the goal.
    let bench = argv.iter().any(|a| a == "--bench");
    let value = |name: &str, default: usize| {
        argv.iter()
            .position(|a| a == name)
            .map_or(default, |i| argv[i + 1].parse().expect("a number"))
    };
    let records = value("--records", if bench { 20_000 } else { 300 });
    let latency_ms = value("--latency-ms", 50) as u64;

    let sim = Arc::new(Simulator::new());
    let shape = RecordShape {
        bytes: 1_200,
        large_every: 500,
        large_bytes: 50_000,
    };
    let streams = sim.populate_shaped("crm", 3, &["Contact", "Deal"], records, &shape);
    let settings = ServerSettings {
        latency: Duration::from_millis(latency_ms),
        ..ServerSettings::default()
    };
    let server = SimServer::start(Arc::clone(&sim), settings).await.unwrap();
    let sdk = common::moto_sdk("scripts/bench-heal.sh").await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let (records_table, state_table) = common::fresh_tables(&client, "heal").await;
    let meter = Arc::new(CapacityMeter::default());
    let app: App = WorkerApp {
        source: NangoClient::new(&server.url, API_KEY, 1000, DEFAULT_RETRY)
            .with_discovery_rate(60_000),
        records: DynamoRecordStore::new(client.clone(), &records_table, WriteSettings::default())
            .with_meter(Arc::clone(&meter)),
        state: DynamoStateStore::new(client, &state_table).with_meter(Arc::clone(&meter)),
        queue: MemoryQueue::new(),
        settings: WorkerSettings::default(),
    };
    println!(
        "heal: {} streams x {records} records (about 1.2 KB, every 500th 50 KB), DynamoDB on moto, Nango over HTTP with {latency_ms} ms a request",
        streams.len()
    );

    let started = Instant::now();
    run_jobs(&app, streams.iter().map(sync_job).collect()).await;
    println!(
        "  backfill, one batch side by side         {:>8.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    run_jobs(&app, vec![reconcile_job(0)]).await;
    println!(
        "  first reconcile (counts every stream)    {:>8.1} s",
        started.elapsed().as_secs_f64()
    );

    // A round of changes to 1% of every stream; the last stream's webhook is dropped.
    let mut rng = fastrand::Rng::with_seed(28);
    sim.tick();
    for s in &streams {
        sim.churn(s, 0.01, &mut rng);
    }
    let (handled, dropped) = streams.split_at(streams.len() - 1);
    let dropped = &dropped[0];
    run_jobs(&app, handled.iter().map(sync_job).collect()).await;
    let up_to_date = || async {
        let state = app
            .state
            .get_stream(dropped)
            .await
            .unwrap()
            .unwrap_or_default();
        state.cursor == sim.last_cursor(dropped)
    };
    assert!(!up_to_date().await, "the dropped stream is behind");

    let queries = meter.read_calls().1;
    let units = meter.read_units();
    let started = Instant::now();
    let healed_at = run_jobs_until(&app, vec![reconcile_job(1)], up_to_date).await;
    let drained = started.elapsed();
    let healed = healed_at.expect("the dropped stream was not healed");
    let queried = meter.read_calls().1 - queries;
    println!(
        "  reconcile after 1% changed: dropped stream healed in {:>6.1} s (all jobs done in {:.1} s), {queried} Query calls, {:.1} moto read units",
        healed.as_secs_f64(),
        drained.as_secs_f64(),
        meter.read_units() - units,
    );
    assert_eq!(queried, 0, "the reconcile read a partition");
    for s in &streams {
        assert_eq!(
            ids_live(&app, s).await,
            nango_ids(&sim, s),
            "{}",
            s.encode()
        );
    }
    assert!(
        healed <= HEALED_WITHIN,
        "healed in {healed:?} (goal: within {HEALED_WITHIN:?})"
    );
}

/// A job's body and its message group.
type Job = (String, String);

fn sync_job(stream: &StreamKey) -> Job {
    let body = json!({"v": 1, "received_at": nango_sync::core::job::now_rfc3339(),
        "job": {"sync": {"stream": stream, "sync_name": "records"}}});
    (body.to_string(), stream.message_group_id())
}

fn reconcile_job(round: usize) -> Job {
    let body = json!({"v": 1, "received_at": format!("2026-12-07T11:{round:02}:00.000Z"),
        "job": {"reconcile": {}}});
    (body.to_string(), "reconcile".to_owned())
}

/// Runs `bodies` and every job they lead to, in batches of up to [`BATCH`] as Lambda hands them.
async fn run_jobs(app: &App, jobs: Vec<Job>) {
    run_jobs_until(app, jobs, || async { false }).await;
}

/// [`run_jobs`], noting when `done` first holds after a batch.
async fn run_jobs_until<F, Fut>(app: &App, jobs: Vec<Job>, done: F) -> Option<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let mut at = None;
    let mut queued = jobs;
    let mut id = 0;
    while !queued.is_empty() {
        let rest = queued.split_off(queued.len().min(BATCH));
        let batch: Vec<ReceivedMessage> = queued
            .into_iter()
            .map(|(body, group)| {
                id += 1;
                ReceivedMessage {
                    message_id: format!("m{id}"),
                    receipt_handle: format!("r{id}"),
                    body,
                    group_id: Some(group),
                }
            })
            .collect();
        app.queue.clear();
        let failed = app.handle(&batch, None).await;
        assert!(failed.is_empty(), "failed: {failed:?}");
        if at.is_none() && done().await {
            at = Some(started.elapsed());
        }
        queued = rest;
        queued.extend(app.queue.sent().into_iter().map(|m| (m.body, m.group_id)));
    }
    at
}

async fn ids_live(app: &App, stream: &StreamKey) -> BTreeSet<String> {
    app.records
        .read_stream(stream)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, r)| r["_nango_metadata"]["deleted_at"].is_null())
        .map(|(id, _)| id)
        .collect()
}

fn nango_ids(sim: &Simulator, stream: &StreamKey) -> BTreeSet<String> {
    sim.live_payloads(stream)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}
