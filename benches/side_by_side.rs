//! Streams side by side (issue "Streams side by side", item 6): when Nango is slow to answer
//! (500 ms a page, as a busy Nango answers), a batch of 6 streams of equal size should finish
//! within 1.3x the time one of them takes alone. The simulated Nango is served over HTTP with
//! that latency; the store is the embedded SQLite one (the pages are fetch-bound: the store is not
//! what is measured). Run with `cargo bench --bench side_by_side [-- --records N --page N
//! --latency-ms N --rounds N --streams N --page-budget-mib N]`.
//!
//! Each round syncs fresh streams from scratch: one stream alone, then a batch of N streams at
//! 1, the default and N streams at once. Reported: each figure's median over the rounds, and the
//! ratio of the batch to one stream alone.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::adapters::nango::{NangoClient, DEFAULT_RETRY};
use nango_sync::adapters::sqlite::SqliteDb;
use nango_sync::core::page_budget::{PageBudget, DEFAULT_PAGE_BUDGET_BYTES};
use nango_sync::core::stream::StreamKey;
use nango_sync::core::worker::{WorkerApp, WorkerSettings, DEFAULT_STREAMS_AT_ONCE};
use nango_sync::core::write::DeleteMode;
use nango_sync::local::backend::Store;
use nango_sync::ports::{ReceivedMessage, RecordStore};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::{RecordShape, Simulator};
use serde_json::json;

const API_KEY: &str = "00000000-0000-4000-8000-000000000000";

struct Args {
    records: usize,
    page: u32,
    latency_ms: u64,
    rounds: usize,
    streams: usize,
    page_budget_mib: usize,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    // Without `--bench` (`cargo test --all-targets`): a small smoke run.
    let bench = argv.iter().any(|a| a == "--bench");
    let mut a = Args {
        records: if bench { 5_000 } else { 200 },
        page: if bench { 1_000 } else { 100 },
        latency_ms: if bench { 500 } else { 10 },
        rounds: if bench { 3 } else { 1 },
        streams: 6,
        page_budget_mib: DEFAULT_PAGE_BUDGET_BYTES >> 20,
    };
    let value = |name: &str| {
        argv.iter().position(|arg| arg == name).map(|i| {
            argv[i + 1]
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{name} N"))
        })
    };
    a.records = value("--records").unwrap_or(a.records);
    a.page = value("--page").map_or(a.page, |p| p as u32);
    a.latency_ms = value("--latency-ms").map_or(a.latency_ms, |l| l as u64);
    a.rounds = value("--rounds").unwrap_or(a.rounds);
    a.streams = value("--streams").unwrap_or(a.streams);
    a.page_budget_mib = value("--page-budget-mib").unwrap_or(a.page_budget_mib);
    a
}

fn sync_message(stream: &StreamKey, id: usize) -> ReceivedMessage {
    ReceivedMessage {
        message_id: format!("m{id}"),
        receipt_handle: format!("r{id}"),
        body: json!({"v": 1, "received_at": "2026-12-07T08:00:00.000Z",
            "job": {"sync": {"stream": stream, "sync_name": "records"}}})
        .to_string(),
        group_id: Some(stream.message_group_id()),
    }
}

/// Syncs `streams` from scratch in one batch, `at_once` side by side; returns the time taken.
async fn batch(
    app: &mut WorkerApp<NangoClient, Store, Store, MemoryQueue>,
    streams: &[StreamKey],
    at_once: usize,
    records: usize,
) -> Duration {
    app.settings.streams_at_once = at_once;
    let messages: Vec<_> = streams
        .iter()
        .enumerate()
        .map(|(i, s)| sync_message(s, i))
        .collect();
    let started = Instant::now();
    let failed = app.handle(&messages, None).await;
    let took = started.elapsed();
    assert!(failed.is_empty(), "failed: {failed:?}");
    for s in streams {
        let live = app.records.count_live(s).await.unwrap();
        assert_eq!(live, records as u64, "{} not fully synced", s.encode());
    }
    took
}

#[tokio::main]
async fn main() {
    let a = args();
    let sim = Arc::new(Simulator::new());
    let settings = ServerSettings {
        latency: Duration::from_millis(a.latency_ms),
        ..ServerSettings::default()
    };
    let server = SimServer::start(Arc::clone(&sim), settings).await.unwrap();
    let dir = std::env::temp_dir().join(format!("side-by-side-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::sqlite(
        SqliteDb::open(&dir.join("bench.db")).unwrap(),
        DeleteMode::Tombstone,
    );
    let mut app = WorkerApp {
        source: NangoClient::new(&server.url, API_KEY, a.page, DEFAULT_RETRY)
            .with_page_budget(PageBudget::new(a.page_budget_mib << 20)),
        records: store.clone(),
        state: store,
        queue: MemoryQueue::new(),
        settings: WorkerSettings::default(),
    };
    let models: Vec<String> = (0..a.streams).map(|i| format!("Model{i}")).collect();
    let models: Vec<&str> = models.iter().map(String::as_str).collect();
    let modes = [1, DEFAULT_STREAMS_AT_ONCE, a.streams];
    let (mut alone, mut batches) = (Vec::new(), vec![Vec::new(); modes.len()]);
    let mut round_no = 0;
    let mut fresh = |sim: &Simulator, n: usize| {
        round_no += 1;
        let connections: Vec<String> = (0..n.div_ceil(models.len()))
            .map(|c| format!("round{round_no}-conn{c}"))
            .collect();
        // The shape: about 1.2 KB a record, every 500th about 50 KB.
        let shape = RecordShape {
            bytes: 1_200,
            large_every: 500,
            large_bytes: 50_000,
        };
        let mut streams = sim.populate_connections("crm", &connections, &models, a.records, &shape);
        streams.truncate(n);
        streams
    };
    for _ in 0..a.rounds {
        let one = fresh(&sim, 1);
        alone.push(batch(&mut app, &one, 1, a.records).await);
        for (i, at_once) in modes.iter().enumerate() {
            let streams = fresh(&sim, a.streams);
            batches[i].push(batch(&mut app, &streams, *at_once, a.records).await);
        }
    }
    let alone = common::median(alone);
    println!(
        "side by side: {} streams x {} records (about 1.2 KB, every 500th 50 KB), pages of {}, {} ms a page, page budget {} MiB, {} rounds (medians)",
        a.streams, a.records, a.page, a.latency_ms, a.page_budget_mib, a.rounds
    );
    println!(
        "  one stream alone            {:>8.2} s",
        alone.as_secs_f64()
    );
    for (at_once, runs) in modes.iter().zip(batches) {
        let took = common::median(runs);
        println!(
            "  {} streams, {:>2} at once      {:>8.2} s   {:.2}x one alone",
            a.streams,
            at_once,
            took.as_secs_f64(),
            took.as_secs_f64() / alone.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
