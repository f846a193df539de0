//! Read capacity of a reconcile, on DynamoDB (moto): a stream of N records (default 20,000, about
//! 1.2 KB each) is synced, then reconciled twice. The first reconcile counts the stream's live
//! records (the drift check's Query COUNT over its partition); the second finds nothing changed
//! and must not read the partition at all. Run with `scripts/bench-reconcile.sh [--records N]`
//! (starts moto).
//!
//! Reported per reconcile: the read units DynamoDB (here moto) returns as consumed
//! (`ReturnConsumedCapacity: TOTAL`), the read calls made, and what real DynamoDB would charge
//! for them by its rule (strongly consistent: 1 unit per 4 KB read, a Query summing the sizes of
//! the items it evaluates; moto reports a fixed 1 per Query page and 0.5 per GetItem instead).
//! The goal (issue "The copy outlives Nango's cache", item 6) is at most 5 read units per
//! unchanged stream; the run fails when the steady-state reconcile spends more.

use std::sync::Arc;
use std::time::Instant;

use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use nango_sync::adapters::aws::dynamodb::{
    create_table, CapacityMeter, DynamoRecordStore, DynamoStateStore, WriteSettings,
};
use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::adapters::nango::{NangoClient, DEFAULT_RETRY};
use nango_sync::core::stream::StreamKey;
use nango_sync::core::worker::{WorkerApp, WorkerSettings};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::{sample_payload, Simulator};
use serde_json::json;

const API_KEY: &str = "00000000-0000-4000-8000-000000000000";

type App = WorkerApp<NangoClient, DynamoRecordStore, DynamoStateStore, MemoryQueue>;

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    // Under `cargo test --all-targets` (no `--bench`): a small run that still checks the goal.
    let mut records = if argv.iter().any(|a| a == "--bench") {
        20_000
    } else {
        500
    };
    if let Some(i) = argv.iter().position(|a| a == "--records") {
        records = argv[i + 1].parse().expect("--records N");
    }
    let endpoint = std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT is not set: run scripts/bench-reconcile.sh, which starts moto");

    let sim = Arc::new(Simulator::new());
    let stream = StreamKey::new("crm", "conn-0", "Contact", "base");
    // About 1.2 KB per record, like CRM contacts.
    let notes = "n".repeat(900);
    sim.save(
        &stream,
        (0..records).map(|i| {
            let mut payload = sample_payload(i);
            payload.insert("notes".into(), json!(notes));
            (format!("contact-{i}"), payload)
        }),
    );
    let server = SimServer::start(Arc::clone(&sim), ServerSettings::default())
        .await
        .unwrap();
    let sdk = aws_config::defaults(nango_sync::setup::behavior_version())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(endpoint)
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let suffix = std::process::id();
    let (records_table, state_table) = (
        format!("bench-reconcile-records-{suffix}"),
        format!("bench-reconcile-state-{suffix}"),
    );
    create_table(&client, &records_table).await.unwrap();
    create_table(&client, &state_table).await.unwrap();
    let meter = Arc::new(CapacityMeter::default());
    let app: App = WorkerApp {
        source: NangoClient::new(&server.url, API_KEY, 1000, DEFAULT_RETRY)
            .with_discovery_rate(60_000),
        records: DynamoRecordStore::new(
            client.clone(),
            &records_table,
            WriteSettings {
                concurrency: 8,
                ..WriteSettings::default()
            },
        )
        .with_meter(Arc::clone(&meter)),
        state: DynamoStateStore::new(client, &state_table).with_meter(Arc::clone(&meter)),
        queue: MemoryQueue::new(),
        settings: WorkerSettings::default(),
    };

    let started = Instant::now();
    let sync = json!({"v": 1, "received_at": nango_sync::core::job::now_rfc3339(), "job": {"sync": {
        "stream": stream, "sync_name": "contacts"}}});
    app.process(&sync.to_string(), None).await.unwrap();
    println!(
        "synced {records} records (about 1.2 KB each) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // What a Query over the whole partition reads, by DynamoDB's rule: the items' sizes, summed.
    let partition_bytes: usize = sim
        .snapshot(&stream)
        .values()
        .map(|r| r.to_string().len() + 200)
        .sum();

    println!(
        "\n{:<34} {:>10} {:>8} {:>8} {:>8} {:>16}",
        "reconcile of one stream", "moto RCU", "GetItem", "Query", "Scan", "DynamoDB RCU"
    );
    let mut steady = 0.0;
    for (round, label) in ["first (counts the partition)", "unchanged (steady state)"]
        .iter()
        .enumerate()
    {
        let (units, (gets, queries, scans)) = (meter.read_units(), meter.read_calls());
        reconcile(&app, round).await;
        let (units_now, (gets_now, queries_now, scans_now)) =
            (meter.read_units(), meter.read_calls());
        let queried = queries_now - queries;
        // GetItem of a state item (< 4 KB), consistent: 1 unit; a Scan page of the small state
        // table: 1 unit; the Query pages: the partition's bytes over 4 KB.
        let rule = (gets_now - gets) as f64
            + (scans_now - scans) as f64
            + if queried > 0 {
                (partition_bytes as f64 / 4096.0).ceil()
            } else {
                0.0
            };
        println!(
            "{label:<34} {:>10.1} {:>8} {:>8} {:>8} {:>16.0}",
            units_now - units,
            gets_now - gets,
            queried,
            scans_now - scans,
            rule
        );
        steady = units_now - units;
        if round == 1 {
            assert_eq!(queried, 0, "the steady-state reconcile read the partition");
        }
    }
    assert!(
        steady <= 5.0,
        "the steady-state reconcile consumed {steady} read units (goal: at most 5)"
    );
}

/// One reconcile and the stream's sync job it enqueues.
async fn reconcile(app: &App, round: usize) {
    app.queue.clear();
    let body = json!({"v": 1, "received_at": format!("2026-12-03T11:{round:02}:00.000Z"), "job": {"reconcile": {}}});
    app.process(&body.to_string(), None).await.unwrap();
    for message in app.queue.sent() {
        app.process(&message.body, None).await.unwrap();
    }
}
