//! `nango-sync demo`: the whole product on a laptop. A simulated Nango (records API and signed
//! webhooks), the local run (endpoint, embedded queue, worker, SQLite store), an initial sync of
//! every stream, rounds of changes (updates, deletes, new records), a write back to the provider
//! (put on the queue as an application would, taken by the worker, applied by the simulated
//! provider, read back into the copy), then a check that the store holds exactly what Nango has,
//! and a summary per stream.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::adapters::nango::{NangoClient, RateLimits, DEFAULT_RETRY};
use crate::core::job::JobMessage;
use crate::core::signature::{SigningKey, Verifier};
use crate::core::stream::StreamKey;
use crate::core::worker::WorkerSettings;
use crate::core::write::DeleteMode;
use crate::core::writes::state::WriteState;
use crate::core::writes::take::TakeSettings;
use crate::local::backend::{Backends, Queue, QueueTarget, Store, StoreTarget};
use crate::local::run::{LocalParts, LocalRun};
use crate::ports::{JobQueue, OutgoingMessage, RecordStore, StateStore, WriteStore};
use crate::simulator::server::{ServerSettings, SimServer};
use crate::simulator::{webhooks, Changes, Simulator};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub connections: usize,
    pub models: Vec<String>,
    pub records: usize,
    /// Rounds of changes after the initial sync.
    pub rounds: usize,
    /// Share of each stream's records changed per round.
    pub churn: f64,
    pub page_limit: u32,
    pub latency: Duration,
    pub fault_rate: f64,
    pub rate_limit_rate: f64,
    /// The SQLite file (records, state, queue).
    pub db: PathBuf,
    /// Give up on a round after this long.
    pub round_timeout: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            connections: 2,
            models: vec!["Contact".into(), "Deal".into()],
            records: 5_000,
            rounds: 2,
            churn: 0.1,
            page_limit: 500,
            latency: Duration::ZERO,
            fault_rate: 0.0,
            rate_limit_rate: 0.0,
            db: PathBuf::from("nango-sync-demo.db"),
            round_timeout: Duration::from_secs(600),
        }
    }
}

/// One stream's summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamSummary {
    pub stream: String,
    /// Live records stored.
    pub records: u64,
    /// Records stored as deleted (tombstones).
    pub deleted: u64,
    /// Records read from Nango and written, over every round.
    pub fetched: u64,
    /// From each webhook to the stream being up to date, summed over the rounds.
    pub seconds: f64,
    pub records_per_second: f64,
    /// The store holds exactly Nango's records for this stream.
    pub matches_nango: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub db: PathBuf,
    pub streams: Vec<StreamSummary>,
    pub webhooks_sent: u64,
    /// A webhook signed with the wrong key was answered with this status (401 expected).
    pub forged_webhook_status: u16,
    pub jobs_run: u64,
    pub jobs_failed: u64,
    pub nango_requests: u64,
    pub nango_faults: u64,
    /// The write sent back to the provider.
    pub write: WriteSummary,
}

/// How the demo's write went.
#[derive(Debug, Clone, Serialize)]
pub struct WriteSummary {
    pub id: String,
    /// The tool it ran.
    pub tool: String,
    pub state: &'static str,
    pub attempts: u32,
    /// The written record is in the copy (the sync that reads the write back ran).
    pub in_copy: bool,
    /// From the queue to the record in the copy.
    pub seconds: f64,
}

/// Where the demo reports its progress (progress bars in the CLI).
pub trait DemoObserver: Send + Sync {
    /// A round starts; `work` is how many records each stream has to bring in.
    fn round(&self, title: &str, work: &[(StreamKey, u64)]);
    /// Records brought in so far, per stream (index into the round's `work`).
    fn progress(&self, index: usize, done: u64, up_to_date: bool);
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo set-up failed: {0}")]
    Setup(String),
    #[error("{0}")]
    Run(String),
}

/// The key the demo's simulated Nango signs webhooks with.
const DEMO_SIGNING_KEY: &str = "nango-sync-demo-signing-key";
const DEMO_API_KEY: &str = "00000000-0000-4000-8000-000000000000";

pub async fn run(
    options: &DemoOptions,
    observer: &dyn DemoObserver,
) -> Result<DemoReport, DemoError> {
    let setup = |e: &dyn std::fmt::Display| DemoError::Setup(e.to_string());
    let sim = Arc::new(Simulator::new());
    let models: Vec<&str> = options.models.iter().map(String::as_str).collect();
    let streams = sim.populate("demo", options.connections, &models, options.records);
    if streams.is_empty() {
        return Err(DemoError::Setup(
            "no streams: give at least one connection and one model".into(),
        ));
    }
    let nango = SimServer::start(
        Arc::clone(&sim),
        ServerSettings {
            api_key: DEMO_API_KEY.into(),
            latency: options.latency,
            fault_rate: options.fault_rate,
            rate_limit_rate: options.rate_limit_rate,
            ..ServerSettings::default()
        },
    )
    .await
    .map_err(|e| setup(&e))?;
    let backends = Backends::open(
        &StoreTarget::Sqlite {
            path: options.db.clone(),
        },
        &QueueTarget::Embedded {
            path: options.db.clone(),
        },
        None,
        DeleteMode::Tombstone,
    )
    .map_err(|e| setup(&e))?;
    let store = backends.store.clone();
    let queue = backends.queue.clone();
    // The simulated Nango's 429s say Retry-After 0 or 1: waited out quickly here.
    let rate_limits = RateLimits {
        min_wait: Duration::from_millis(200),
        ..RateLimits::default()
    };
    let local = LocalRun::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        LocalParts {
            verifier: Verifier::new(SigningKey::new(DEMO_SIGNING_KEY), None).into(),
            max_body_bytes: 256 * 1024,
            store: backends.store,
            queue: backends.queue,
            worker: Some((
                NangoClient::new(&nango.url, DEMO_API_KEY, options.page_limit, DEFAULT_RETRY)
                    .with_rate_limits(rate_limits),
                WorkerSettings {
                    // The demo's write is safe to repeat: its faults are retried, more than once.
                    writes: TakeSettings {
                        max_attempts: 5,
                        ..TakeSettings::default()
                    },
                    ..WorkerSettings::default()
                },
            )),
            reconcile_every: None,
        },
    )
    .await
    .map_err(|e| setup(&e))?;

    let http = reqwest::Client::new();
    let mut webhooks_sent = 0;
    let mut seconds: BTreeMap<StreamKey, f64> = BTreeMap::new();
    let mut round_changes: Vec<Changes> = streams
        .iter()
        .map(|_| Changes {
            added: options.records as u64,
            ..Changes::default()
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..=options.rounds {
        if round > 0 {
            sim.tick();
            for (i, stream) in streams.iter().enumerate() {
                round_changes[i] = sim.churn(stream, options.churn, &mut rng);
            }
        }
        let title = if round == 0 {
            "initial sync".to_owned()
        } else {
            format!("round {round} of changes")
        };
        let work: Vec<(StreamKey, u64)> = streams
            .iter()
            .zip(&round_changes)
            .map(|(s, c)| (s.clone(), c.added + c.updated + c.deleted))
            .collect();
        observer.round(&title, &work);
        let before: Vec<u64> = written(&store, &streams).await?;
        let started = Instant::now();
        for (stream, changes) in streams.iter().zip(&round_changes) {
            let kind = if round == 0 { "INITIAL" } else { "INCREMENTAL" };
            let body = webhooks::sync_success(stream, &sim.sync_name(stream), *changes, kind);
            let status = webhooks::post_signed(&http, &local.webhook_url, DEMO_SIGNING_KEY, body)
                .await
                .map_err(DemoError::Run)?;
            if status != 200 {
                return Err(DemoError::Run(format!(
                    "the webhook endpoint answered {status}"
                )));
            }
            webhooks_sent += 1;
        }
        let mut done = vec![None::<f64>; streams.len()];
        while done.iter().any(Option::is_none) {
            if started.elapsed() > options.round_timeout {
                return Err(DemoError::Run(format!(
                    "{title} did not finish within {:?}",
                    options.round_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            for (i, stream) in streams.iter().enumerate() {
                if done[i].is_none() {
                    let state = store.get_stream(stream).await.map_err(run_error)?;
                    let written = state.as_ref().map_or(0, |s| s.records_written);
                    let up_to_date = state.is_some_and(|s| s.cursor == sim.last_cursor(stream));
                    if up_to_date {
                        done[i] = Some(started.elapsed().as_secs_f64());
                    }
                    observer.progress(i, written - before[i], up_to_date);
                }
            }
        }
        for (stream, secs) in streams.iter().zip(done) {
            *seconds.entry(stream.clone()).or_default() += secs.unwrap_or_default();
        }
    }

    let write = demo_write(&streams[0], &queue, &store, options.round_timeout).await?;

    // A forged webhook: refused, nothing enqueued.
    let forged = webhooks::sync_success(&streams[0], "forged", Changes::default(), "INCREMENTAL");
    let forged_webhook_status =
        webhooks::post_signed(&http, &local.webhook_url, "not-the-key", forged)
            .await
            .map_err(DemoError::Run)?;

    let totals = local.stop().await.map_err(run_error)?;
    let fetched = written(&store, &streams).await?;
    let mut summaries = Vec::new();
    for (i, stream) in streams.iter().enumerate() {
        let stored = store.read_stream(stream).await.map_err(run_error)?;
        let truth = sim.snapshot(stream);
        let matches_nango = stored.len() == truth.len()
            && truth.iter().all(|(id, record)| {
                stored
                    .get(id)
                    .is_some_and(|s| serde_json::Value::Object(s.clone()) == *record)
            });
        let records = store.count_live(stream).await.map_err(run_error)?;
        let secs = seconds.get(stream).copied().unwrap_or_default();
        summaries.push(StreamSummary {
            stream: stream.encode(),
            records,
            deleted: stored.len() as u64 - records,
            fetched: fetched[i],
            seconds: secs,
            records_per_second: if secs > 0.0 {
                fetched[i] as f64 / secs
            } else {
                0.0
            },
            matches_nango,
        });
    }
    Ok(DemoReport {
        db: options.db.clone(),
        streams: summaries,
        webhooks_sent,
        forged_webhook_status,
        jobs_run: totals.jobs,
        jobs_failed: totals.failed,
        nango_requests: nango
            .stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        nango_faults: nango
            .stats
            .faults
            .load(std::sync::atomic::Ordering::Relaxed),
        write,
    })
}

/// A write back to the provider, as an application sends one: a tool that saves a record of
/// `stream`, put on the queue; then waits for it to end and for the copy to show the record.
async fn demo_write(
    stream: &StreamKey,
    queue: &Queue,
    store: &Store,
    timeout: Duration,
) -> Result<WriteSummary, DemoError> {
    const ID: &str = "demo-write-1";
    const RECORD: &str = "written-by-the-demo";
    let tool = format!("save-{}", stream.model);
    let body = serde_json::json!({"v": 1, "id": ID,
        "provider_config_key": stream.provider_config_key, "connection_id": stream.connection_id,
        "run": {"kind": "tool", "name": tool, "input": {"id": RECORD, "name": "written back by nango-sync demo"}},
        // A save by id: sending it again changes nothing.
        "safe_to_repeat": true,
        "record": {"model": stream.model, "id": RECORD, "variant": stream.variant}})
    .to_string();
    let group_id = JobMessage::decode(&body).map_err(run_error)?.group_id(ID);
    let message = OutgoingMessage {
        group_id,
        dedup_id: ID.to_owned(),
        body,
    };
    let started = Instant::now();
    queue.send(&[message]).await.map_err(run_error)?;
    loop {
        if started.elapsed() > timeout {
            return Err(DemoError::Run(format!(
                "the write did not go through within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(write) = store.get_write(ID).await.map_err(run_error)? else {
            continue;
        };
        if !write.position.state.is_terminal() {
            continue;
        }
        let in_copy = store
            .read_stream(stream)
            .await
            .map_err(run_error)?
            .contains_key(RECORD);
        if in_copy || write.position.state != WriteState::Succeeded {
            return Ok(WriteSummary {
                id: ID.to_owned(),
                tool,
                state: write.position.state.as_str(),
                attempts: write.position.attempts,
                in_copy,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
}

fn run_error(e: impl std::fmt::Display) -> DemoError {
    DemoError::Run(e.to_string())
}

/// Records written so far, per stream.
async fn written<S: StateStore>(store: &S, streams: &[StreamKey]) -> Result<Vec<u64>, DemoError> {
    let mut out = Vec::with_capacity(streams.len());
    for stream in streams {
        let state = store.get_stream(stream).await.map_err(run_error)?;
        out.push(state.map_or(0, |s| s.records_written));
    }
    Ok(out)
}
