//! End-to-end sync benchmark: the simulated Nango (fixed per-page latency) → the worker's sync
//! loop → DynamoDB on moto. Run with `scripts/bench-pipeline.sh` (starts moto).
//!
//! For each round it measures, on the same server and data:
//! - fetch-only: every page read through the records client, nothing written;
//! - write-only: the same pages, already in memory, written as the sync loop writes them;
//! - pipeline: `sync_stream` into fresh tables (fetch of page n+1 overlaps the write of page n).
//!
//! and reports the overlap ratio = pipeline / max(fetch-only, write-only); then, with
//! `--rss N`, syncs N records once and reports the peak RSS growth of the process.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nango_sync::adapters::aws::dynamodb::{
    create_table, DynamoRecordStore, DynamoStateStore, WriteSettings,
};
use nango_sync::adapters::nango::{NangoClient, DEFAULT_RETRY};
use nango_sync::core::record::RecordsPage;
use nango_sync::core::stream::StreamKey;
use nango_sync::core::sync::{sync_stream, Track};
use nango_sync::ports::{RecordSource, RecordStore};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::Simulator;
use serde_json::json;

const API_KEY: &str = "00000000-0000-4000-8000-000000000000";

struct Args {
    records: usize,
    page: u32,
    latency_ms: u64,
    rounds: usize,
    rss: Option<usize>,
    /// An external simulator (`nango-sync simulate`), so its data is not in this process.
    nango_url: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        records: 20_000,
        page: 1000,
        latency_ms: 20,
        rounds: 3,
        rss: None,
        nango_url: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs this binary without `--bench`: a small smoke run then, so the
    // benchmark is kept working without costing the test suite minutes.
    if !argv.iter().any(|arg| arg == "--bench") {
        a.records = 300;
        a.page = 100;
        a.latency_ms = 0;
        a.rounds = 1;
    }
    let mut i = 1;
    while i < argv.len() {
        let value = || argv.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match argv[i].as_str() {
            "--records" => a.records = value().expect("--records N"),
            "--page" => a.page = value().expect("--page N") as u32,
            "--latency-ms" => a.latency_ms = value().expect("--latency-ms N") as u64,
            "--rounds" => a.rounds = value().expect("--rounds N"),
            "--rss" => a.rss = Some(value().expect("--rss N")),
            "--nango-url" => a.nango_url = argv.get(i + 1).cloned(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn populate(sim: &Simulator, stream: &StreamKey, n: usize) {
    sim.save(
        stream,
        (0..n).map(|i| {
            let p = json!({"name": format!("person {i}"), "email": format!("p{i}@example.com"),
                "company": "Example Corp", "phone": "+1 555 0100", "lifecycle": "customer",
                "score": i % 100, "tags": ["a", "b"], "address": {"city": "Springfield", "zip": "12345"}});
            (format!("contact-{i:07}"), p.as_object().unwrap().clone())
        }),
    );
}

fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let a = args();
    let sdk = common::moto_sdk("scripts/bench-pipeline.sh").await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sim = Arc::new(Simulator::new());
    let settings = ServerSettings {
        latency: Duration::from_millis(a.latency_ms),
        ..ServerSettings::default()
    };
    let server = SimServer::start(Arc::clone(&sim), settings).await.unwrap();
    let (stream, url) = match &a.nango_url {
        // `nango-sync simulate` names its first stream demo|conn-0|Contact|base.
        Some(url) => (
            StreamKey::new("demo", "conn-0", "Contact", "base"),
            url.clone(),
        ),
        None => (
            StreamKey::new("hubspot", "bench", "Contact", "base"),
            server.url.clone(),
        ),
    };
    let client = NangoClient::new(&url, API_KEY, a.page, DEFAULT_RETRY);
    let mut table_no = 0;
    let mut fresh = || {
        table_no += 1;
        (
            format!("bench-records-{}-{table_no}", std::process::id()),
            format!("bench-state-{}-{table_no}", std::process::id()),
        )
    };

    if let Some(n) = a.rss {
        if a.nango_url.is_none() {
            populate(&sim, &stream, n);
        }
        let (records, state) = fresh();
        create_table(&dynamo, &records).await.unwrap();
        create_table(&dynamo, &state).await.unwrap();
        let baseline = vm_kib("VmRSS:");
        let start = Instant::now();
        let summary = sync_stream(
            &client,
            &DynamoRecordStore::new(dynamo.clone(), &records, WriteSettings::default()),
            &DynamoStateStore::new(dynamo.clone(), &state),
            &stream,
            Track::Main,
            None,
        )
        .await
        .unwrap();
        let elapsed = start.elapsed();
        let peak = vm_kib("VmHWM:");
        assert_eq!(summary.written as usize, n);
        println!(
            "rss: {n} records in {:.1} s; RSS before sync {:.1} MiB, peak {:.1} MiB, growth during sync {:.1} MiB (simulator {})",
            elapsed.as_secs_f64(),
            baseline as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak.saturating_sub(baseline) as f64 / 1024.0,
            if a.nango_url.is_some() { "in another process" } else { "data included in this process" }
        );
        return;
    }

    populate(&sim, &stream, a.records);
    println!(
        "pipeline: {} records, pages of {}, {} ms per page, {} rounds, DynamoDB on moto",
        a.records, a.page, a.latency_ms, a.rounds
    );
    let (mut fetches, mut writes, mut pipes) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..a.rounds {
        // fetch-only
        let start = Instant::now();
        let mut pages: Vec<RecordsPage> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .fetch_page(&stream, cursor.as_deref(), None)
                .await
                .unwrap();
            cursor = page.next_cursor.clone();
            pages.push(page);
            if cursor.is_none() {
                break;
            }
        }
        let fetch = start.elapsed();

        // write-only
        let (records, _) = fresh();
        create_table(&dynamo, &records).await.unwrap();
        let store = DynamoRecordStore::new(dynamo.clone(), &records, WriteSettings::default());
        let start = Instant::now();
        for page in &pages {
            store.write_page(&stream, &page.records).await.unwrap();
        }
        let write = start.elapsed();
        drop(pages);

        // pipeline
        let (records, state) = fresh();
        create_table(&dynamo, &records).await.unwrap();
        create_table(&dynamo, &state).await.unwrap();
        let start = Instant::now();
        let summary = sync_stream(
            &client,
            &DynamoRecordStore::new(dynamo.clone(), &records, WriteSettings::default()),
            &DynamoStateStore::new(dynamo.clone(), &state),
            &stream,
            Track::Main,
            None,
        )
        .await
        .unwrap();
        let pipe = start.elapsed();
        assert_eq!(summary.written as usize, a.records);
        let ratio = pipe.as_secs_f64() / fetch.max(write).as_secs_f64();
        println!(
            "round {round}: fetch-only {:.2} s, write-only {:.2} s, pipeline {:.2} s ({:.0} records/s), overlap ratio {ratio:.3}",
            fetch.as_secs_f64(),
            write.as_secs_f64(),
            pipe.as_secs_f64(),
            a.records as f64 / pipe.as_secs_f64()
        );
        fetches.push(fetch);
        writes.push(write);
        pipes.push(pipe);
    }
    let (f, w, p) = (
        common::median(fetches),
        common::median(writes),
        common::median(pipes),
    );
    println!(
        "median: fetch-only {:.2} s, write-only {:.2} s, pipeline {:.2} s, {:.0} records/s, overlap ratio {:.3} (ideal 1.0, target <= 1.2)",
        f.as_secs_f64(),
        w.as_secs_f64(),
        p.as_secs_f64(),
        a.records as f64 / p.as_secs_f64(),
        p.as_secs_f64() / f.max(w).as_secs_f64()
    );
}
