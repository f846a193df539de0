//! The two halves of the worker's job, for `scripts/bench-worker.py` to set beside the whole
//! worker: `fetch` reads, checks and parses every page of the given streams from a (simulated)
//! Nango and drops them; `write` converts and writes pages of the same shape, generated here, to
//! DynamoDB (moto, configured from the environment as the bootstrap is) as the sync loop writes
//! them. Both run on the bootstraps' current-thread runtime. Each prints one JSON line: the CPU
//! seconds (user + sys) the measured part took, the records, and the process's peak RSS.
//!
//! `cargo bench --bench worker_parts -- fetch URL PAGE STREAMS` or `-- write RECORDS PAGE`; under
//! `cargo test` (no arguments) it does nothing.

use std::time::Duration;

use nango_sync::adapters::aws::dynamodb::{create_table, DynamoRecordStore, WriteSettings};
use nango_sync::adapters::nango::{NangoClient, DEFAULT_RETRY};
use nango_sync::core::record::NangoRecord;
use nango_sync::core::stream::StreamKey;
use nango_sync::ports::{RecordSource, RecordStore};
use nango_sync::simulator::{encode_cursor, RecordShape};
use serde_json::{json, Value};

const API_KEY: &str = "00000000-0000-4000-8000-000000000000";

/// CPU seconds this process has used so far (user + sys, from /proc: clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

// The bootstraps' runtime, so that the parts compare with the whole.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match argv.first().map(String::as_str) {
        Some("fetch") => fetch(&argv[1], argv[2].parse().unwrap(), &argv[3]).await,
        Some("write") => write(argv[1].parse().unwrap(), argv[2].parse().unwrap()).await,
        _ => {}
    }
}

async fn fetch(url: &str, page: u32, streams: &str) {
    let client = NangoClient::new(url, API_KEY, page, DEFAULT_RETRY);
    let before = cpu_seconds();
    let mut records = 0usize;
    for key in streams.split(',') {
        let stream = StreamKey::decode(key).expect("a stream key");
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .fetch_page(&stream, cursor.as_deref(), None)
                .await
                .unwrap();
            records += page.records.len();
            // As the sync loop reads on: Nango's next_cursor, until a page is empty or the last.
            match page.next_cursor.filter(|_| !page.records.is_empty()) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    report(cpu_seconds() - before, records);
}

async fn write(records: usize, page: usize) {
    // Configured from the environment as the bootstrap is (AWS_ENDPOINT_URL points at moto).
    let sdk = nango_sync::setup::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("bench-write-{}", std::process::id());
    create_table(&client, &table).await.unwrap();
    let store = DynamoRecordStore::new(client, &table, WriteSettings::default());
    let shape = RecordShape {
        bytes: 1200,
        large_every: 500,
        large_bytes: 50_000,
    };
    let stream = StreamKey::new("bench", "write", "Contact", "base");
    let mut measured = 0.0;
    let mut written = 0;
    while written < records {
        let n = page.min(records - written);
        // The page as the records API returns it (generating it is not measured).
        let batch: Vec<NangoRecord> = (written..written + n)
            .map(|i| {
                let mut object = shape.payload(i);
                object.insert("id".into(), json!(format!("contact-{i}")));
                let at = "2026-12-03T12:00:00.123456+00:00";
                object.insert(
                    "_nango_metadata".into(),
                    json!({"first_seen_at": at, "last_modified_at": at, "last_action": "ADDED",
                           "deleted_at": Value::Null, "pruned_at": Value::Null,
                           "cursor": encode_cursor(1_796_000_000_000_000 + i as i64, "00000000-0000-5000-8000-000000000000")}),
                );
                NangoRecord::from_object(object).unwrap()
            })
            .collect();
        let before = cpu_seconds();
        store.write_page(&stream, &batch).await.unwrap();
        measured += cpu_seconds() - before;
        written += n;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    report(measured, written);
}

fn report(cpu: f64, records: usize) {
    println!(
        "{}",
        json!({"cpu": cpu, "records": records, "rss_mb": peak_rss_mb()})
    );
}
