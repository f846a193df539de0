//! Running the pipeline: the demo, `serve`, `work`, and the simulated Nango.

use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::args::{DemoArgs, ServeArgs, SimulateArgs, WorkArgs};
use super::backend::{resolve, worker_parts, DbFile};
use super::CliResult;
use crate::config::{vars, ConfigError, SigningConfig};
use crate::core::stream::StreamKey;
use crate::core::worker::WorkerApp;
use crate::local::demo::{self, DemoObserver, DemoOptions};
use crate::local::jobs;
use crate::local::run::{LocalParts, LocalRun};
use crate::setup;
use crate::simulator::server::{ServerSettings, SimServer};
use crate::simulator::{webhooks, Changes, RecordShape, Simulator};

pub async fn demo(args: DemoArgs) -> CliResult {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = args.db.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    let options = DemoOptions {
        connections: args.connections,
        models: args.models,
        records: args.records,
        rounds: args.rounds,
        churn: args.churn,
        page_limit: args.page_limit,
        latency: std::time::Duration::from_millis(args.latency_ms),
        fault_rate: args.fault_rate,
        rate_limit_rate: args.rate_limit_rate,
        db: args.db,
        ..DemoOptions::default()
    };
    let bars = Bars::new(args.json);
    let report = demo::run(&options, &bars).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!();
        println!(
            "{:<26} {:>8} {:>8} {:>8} {:>8} {:>10}  MATCHES NANGO",
            "STREAM", "RECORDS", "DELETED", "FETCHED", "TIME", "RECORDS/S"
        );
        for s in &report.streams {
            println!(
                "{:<26} {:>8} {:>8} {:>8} {:>7.2}s {:>10.0}  {}",
                s.stream,
                s.records,
                s.deleted,
                s.fetched,
                s.seconds,
                s.records_per_second,
                if s.matches_nango { "yes" } else { "NO" }
            );
        }
        println!(
            "\n{} signed webhooks accepted; a forged one was answered {}. {} jobs run ({} retried), {} Nango requests ({} faults injected).",
            report.webhooks_sent,
            report.forged_webhook_status,
            report.jobs_run,
            report.jobs_failed,
            report.nango_requests,
            report.nango_faults
        );
        let w = &report.write;
        println!(
            "A write back to the provider ({} {}): {} after {} attempt(s){}, {:.2}s from the queue.",
            w.tool,
            w.id,
            w.state,
            w.attempts,
            if w.in_copy { ", and read back into the copy" } else { "" },
            w.seconds
        );
        println!(
            "The copy is in {} (sqlite3 {} \"select id, json_extract(record, '$.name') from records limit 5\").",
            report.db.display(),
            report.db.display()
        );
    }
    if !(report.streams.iter().all(|s| s.matches_nango) && report.forged_webhook_status == 401) {
        return Err("the store does not match Nango (see the summary)".into());
    }
    if report.write.state != "succeeded" || !report.write.in_copy {
        return Err("the write back to the provider did not go through (see the summary)".into());
    }
    Ok(())
}

/// Progress bars, one per stream, for the demo.
struct Bars {
    multi: MultiProgress,
    bars: std::sync::Mutex<Vec<ProgressBar>>,
    hidden: bool,
}

impl Bars {
    fn new(hidden: bool) -> Self {
        let multi = MultiProgress::new();
        if hidden {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Self {
            multi,
            bars: std::sync::Mutex::new(Vec::new()),
            hidden,
        }
    }
}

impl DemoObserver for Bars {
    fn round(&self, title: &str, work: &[(StreamKey, u64)]) {
        if !self.hidden {
            let _ = self.multi.println(format!("== {title}"));
        }
        let style = ProgressStyle::with_template("{prefix:<26} [{bar:30}] {pos:>6}/{len:6} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.clear();
        for (stream, total) in work {
            let bar = self.multi.add(ProgressBar::new(*total));
            bar.set_style(style.clone());
            bar.set_prefix(stream.encode());
            bars.push(bar);
        }
    }

    fn progress(&self, index: usize, done: u64, up_to_date: bool) {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = bars.get(index) {
            bar.set_position(done.min(bar.length().unwrap_or(done)));
            if up_to_date {
                bar.finish_with_message("up to date");
            }
        }
    }
}

/// A deployed stack's worker is its Lambda function: a local run on the stack's queue would take
/// its jobs with local settings. Operator commands (`sync`, `replay`, ...) steer it instead.
fn refuse_a_second_worker(backend: &super::args::BackendArgs) -> CliResult {
    match &backend.stack {
        Some(stack) => Err(format!(
            "--stack {stack}: the stack's worker runs in Lambda; enqueue work for it with `nango-sync sync --stack {stack}` (or `reconcile`), or run locally with --local-aws"
        )
        .into()),
        None => Ok(()),
    }
}

pub async fn serve(args: ServeArgs) -> CliResult {
    refuse_a_second_worker(&args.backend)?;
    let resolved = resolve(&args.backend, DbFile::MayCreate).await?;
    let signing: SigningConfig = resolved.vars.read().map_err(|e| match e {
        ConfigError::Missing(vars::SIGNING_KEY) => "NANGO_WEBHOOK_SIGNING_KEY is not set: the endpoint verifies Nango's signature with your environment's webhook signing key".to_owned(),
        other => other.to_string(),
    })?;
    let verifier = setup::verifier(&signing, &resolved.sdk).await?;
    let worker = if args.webhook_only {
        None
    } else {
        Some(worker_parts(&resolved).await?)
    };
    let run = LocalRun::start(
        args.listen,
        LocalParts {
            verifier,
            max_body_bytes: signing.max_body_bytes,
            store: resolved.backends.store.clone(),
            queue: resolved.backends.queue.clone(),
            worker,
            reconcile_every: args.reconcile_every(),
        },
    )
    .await
    .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    eprintln!(
        "webhook endpoint: {} ({}; Ctrl-C stops)",
        run.webhook_url,
        if args.webhook_only {
            "webhook only"
        } else {
            "with the worker"
        }
    );
    let _ = tokio::signal::ctrl_c().await;
    let totals = run.stop().await?;
    eprintln!(
        "{} job(s) run, {} failed (failed jobs stay queued)",
        totals.jobs, totals.failed
    );
    Ok(())
}

pub async fn work(args: WorkArgs) -> CliResult {
    refuse_a_second_worker(&args.backend)?;
    let resolved = resolve(&args.backend, DbFile::MayCreate).await?;
    let (source, settings) = worker_parts(&resolved).await?;
    let store = resolved.backends.store.clone();
    let queue = resolved.backends.queue.clone();
    let app = WorkerApp {
        source,
        records: store.clone(),
        state: store,
        queue: queue.clone(),
        settings,
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ctrl_c = Arc::clone(&stop);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        ctrl_c.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let totals = jobs::run_jobs(&queue, &app, args.until_empty, &stop).await?;
    eprintln!(
        "{} job(s) run, {} failed (failed jobs stay on the queue for redelivery)",
        totals.jobs, totals.failed
    );
    Ok(())
}

pub async fn simulate(args: SimulateArgs) -> CliResult {
    let sim = Arc::new(Simulator::new());
    let models: Vec<&str> = args.models.iter().map(String::as_str).collect();
    let shape = RecordShape {
        bytes: args.record_bytes,
        large_every: args.large_every,
        large_bytes: args.large_bytes,
    };
    let connections: Vec<String> = if args.connection_id.is_empty() {
        (0..args.connections).map(|c| format!("conn-{c}")).collect()
    } else {
        args.connection_id.clone()
    };
    let streams = sim.populate_connections(
        &args.integration,
        &connections,
        &models,
        args.records,
        &shape,
    );
    let Some(example) = streams.first() else {
        return Err("nothing to simulate: give at least one connection and one model".into());
    };
    let settings = ServerSettings {
        api_key: args.api_key.clone(),
        latency: std::time::Duration::from_millis(args.latency_ms),
        fault_rate: args.fault_rate,
        rate_limit_rate: args.rate_limit_rate,
        ..ServerSettings::default()
    };
    let server = SimServer::start_on(args.listen, Arc::clone(&sim), settings)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!("simulated Nango: {} (API key {})", server.url, args.api_key);
    println!(
        "{} streams of {} records, e.g. {}",
        streams.len(),
        args.records,
        example.encode()
    );
    let Some(url) = args.webhook_url else {
        let _ = tokio::signal::ctrl_c().await;
        return Ok(());
    };
    let key = args.signing_key.ok_or(
        "--webhook-url needs the signing key (--signing-key or NANGO_WEBHOOK_SIGNING_KEY)",
    )?;
    let http = reqwest::Client::new();
    let mut rng = fastrand::Rng::with_seed(1);
    let mut round = 0;
    loop {
        for stream in &streams {
            let changes = if round == 0 {
                Changes {
                    added: args.records as u64,
                    ..Changes::default()
                }
            } else {
                sim.churn(stream, args.churn, &mut rng)
            };
            let kind = if round == 0 { "INITIAL" } else { "INCREMENTAL" };
            let body = webhooks::sync_success(stream, &sim.sync_name(stream), changes, kind);
            let status = webhooks::post_signed(&http, &url, &key, body).await?;
            println!("webhook for {} -> {status}", stream.encode());
        }
        let Some(every) = args.change_every else {
            break;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(std::time::Duration::from_secs(every)) => {}
        }
        sim.tick();
        round += 1;
    }
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}
