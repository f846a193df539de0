//! The nango-sync CLI: the demo, local runs and operator tools. Every command calls the library.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use nango_sync::adapters::aws::stack;
use nango_sync::config::{vars, FromVars, WebhookConfig, WorkerConfig};
use nango_sync::core::job::{enqueue_syncs, now_rfc3339, SyncRequest, Trigger};
use nango_sync::core::reconcile::{decide_held, HoldDecision};
use nango_sync::core::signature::{sign, sign_legacy, HMAC_HEADER, LEGACY_HEADER};
use nango_sync::core::stream::{ConnectionKey, StreamKey};
use nango_sync::local::backend::{Backends, QueueTarget, StoreTarget};
use nango_sync::local::demo::{self, DemoObserver, DemoOptions};
use nango_sync::local::run::{LocalParts, LocalRun};
use nango_sync::ports::{JobConsumer, RecordStore, StateStore, StreamDiscovery, StreamStatus};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::{webhooks, Changes, Simulator};
use nango_sync::{local::jobs, local::ops, setup, telemetry};

#[derive(Parser)]
#[command(
    name = "nango-sync",
    version,
    about = "Keep a copy of Nango-synced records in your own AWS account (or, locally, a SQLite file)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Try it: a simulated Nango, the whole pipeline in this process, a summary per stream.
    Demo(DemoArgs),
    /// Run the pipeline: the webhook endpoint on localhost, the queue, the worker and the store.
    Serve(ServeArgs),
    /// Run only the worker on the queue's jobs, as the Lambda does.
    Work(WorkArgs),
    /// Serve a simulated Nango (records API, sync status) and send it signed webhooks.
    Simulate(SimulateArgs),
    /// Show every stream: status, records, cursor, last sync, errors (and Nango's own count).
    Status(StatusArgs),
    /// Enqueue a sync now, for one stream or every known stream.
    Sync(SyncArgs),
    /// Clear a stream's cursor so that its next sync re-reads it from the start.
    Reset(ResetArgs),
    /// Move the dead-letter queue's jobs back to the ingest queue.
    Replay(ReplayArgs),
    /// Sign a body as Nango does and print the headers, or POST it signed to a URL.
    Sign(SignArgs),
    /// Take the jobs off the queue and print them (one JSON per line).
    Drain(DrainArgs),
    /// Enqueue a reconcile now: every stream brought up to date and checked against Nango.
    Reconcile(ReconcileArgs),
    /// Decide a held sweep: apply its deletes (--confirm) or keep the copy (--discard).
    Sweep(SweepArgs),
    /// Forget a connection: its streams stop syncing and their records are marked deleted
    /// (or, with --purge, removed).
    Forget(ForgetArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Sqlite,
    Dynamodb,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QueueKind {
    Embedded,
    Sqs,
}

/// Where records, state and jobs are: the embedded SQLite file by default.
#[derive(clap::Args)]
struct BackendArgs {
    /// The embedded backend's SQLite file: records, state and the job queue.
    #[arg(long, env = "NANGO_SYNC_DB", default_value = "nango-sync.db")]
    db: PathBuf,
    /// Records and state: `sqlite` (the --db file) or `dynamodb` (RECORDS_TABLE, STATE_TABLE).
    #[arg(long, value_enum, env = "NANGO_SYNC_STORE")]
    store: Option<StoreKind>,
    /// Jobs: `embedded` (the --db file) or `sqs` (QUEUE_URL, DEAD_LETTER_QUEUE_URL).
    #[arg(long, value_enum, env = "NANGO_SYNC_QUEUE")]
    queue: Option<QueueKind>,
    /// Create (or find) `<PREFIX>-ingest.fifo`, its DLQ and the `<PREFIX>-records` and
    /// `<PREFIX>-state` tables on AWS_ENDPOINT_URL (e.g. moto) as template.yaml deploys them, and
    /// use them: DynamoDB and SQS unless --store or --queue say otherwise.
    #[arg(long, value_name = "PREFIX")]
    local_aws: Option<String>,
}

#[derive(clap::Args)]
struct DemoArgs {
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Models per connection (comma-separated).
    #[arg(long, default_value = "Contact,Deal", value_delimiter = ',')]
    models: Vec<String>,
    /// Records per stream.
    #[arg(long, default_value_t = 5_000)]
    records: usize,
    /// Rounds of changes after the initial sync.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Share of each stream's records changed per round (updates, deletes, additions).
    #[arg(long, default_value_t = 0.1)]
    churn: f64,
    /// Records per page asked of Nango.
    #[arg(long, default_value_t = 500)]
    page_limit: u32,
    /// Latency the simulated Nango adds to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of Nango requests answered with a 5xx, a truncated body or a reset.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Share of Nango requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// The demo's SQLite file, recreated at each run.
    #[arg(long, default_value = "nango-sync-demo.db")]
    db: PathBuf,
    /// The summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address of the webhook endpoint.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    backend: BackendArgs,
    /// Only the endpoint, in front of the queue (run `nango-sync work` elsewhere).
    #[arg(long)]
    webhook_only: bool,
    /// Enqueue a reconcile at start and then this often (e.g. 15m, 90s, 1h; a bare number is
    /// minutes; 0 turns it off), as the deployed schedule does (ReconcileEveryMinutes).
    #[arg(long, default_value = "15m", value_parser = parse_period)]
    reconcile_every: Option<std::time::Duration>,
}

/// `15m`, `90s`, `1h` or a number of minutes; `0` is none.
fn parse_period(text: &str) -> Result<Option<std::time::Duration>, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "m"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a period: write e.g. 15m, 90s, 1h or 0"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => return Err(format!("unknown unit {other:?}: use s, m or h")),
    };
    Ok((seconds > 0).then(|| std::time::Duration::from_secs(seconds)))
}

#[derive(clap::Args)]
struct ReconcileArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["confirm", "discard"])))]
struct SweepArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The stream, as `providerConfigKey|connectionId|model|variant`.
    #[arg(long)]
    stream: String,
    /// Apply the held deletes, if the stream still counts what was held.
    #[arg(long)]
    confirm: bool,
    /// Drop them: the copy is kept as it is.
    #[arg(long)]
    discard: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ForgetArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The connection, as `providerConfigKey|connectionId`.
    #[arg(long)]
    connection: String,
    /// Remove the records instead of marking them deleted.
    #[arg(long)]
    purge: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct WorkArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Stop once the queue is empty instead of polling until Ctrl-C.
    #[arg(long)]
    until_empty: bool,
}

#[derive(clap::Args)]
struct SimulateArgs {
    #[arg(long, default_value = "127.0.0.1:3003")]
    listen: SocketAddr,
    /// Integration id (providerConfigKey) of the simulated connections.
    #[arg(long, default_value = "demo")]
    integration: String,
    /// Connections conn-0, conn-1, ...
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Models synced per connection (comma-separated).
    #[arg(long, default_value = "Contact", value_delimiter = ',')]
    models: Vec<String>,
    /// Records per stream.
    #[arg(long, default_value_t = 1000)]
    records: usize,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests answered with a 5xx, a truncated body or a reset.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Share of requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// The API key it accepts.
    #[arg(long, default_value = "00000000-0000-4000-8000-000000000000")]
    api_key: String,
    /// Send a signed sync webhook per stream here (your endpoint, local or deployed).
    #[arg(long)]
    webhook_url: Option<String>,
    /// The key webhooks are signed with.
    #[arg(long, env = "NANGO_WEBHOOK_SIGNING_KEY", hide_env_values = true)]
    signing_key: Option<String>,
    /// Then change records every this many seconds (and send webhooks again).
    #[arg(long)]
    change_every: Option<u64>,
    /// Share of each stream's records changed each time.
    #[arg(long, default_value_t = 0.05)]
    churn: f64,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// One JSON object per stream instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SyncArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The stream, as `providerConfigKey|connectionId|model|variant`.
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    stream: Option<String>,
    /// Every stream the store knows.
    #[arg(long)]
    all: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ResetArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The stream, as `providerConfigKey|connectionId|model|variant`.
    #[arg(long)]
    stream: String,
    /// Also enqueue its sync now.
    #[arg(long)]
    sync: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ReplayArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Move at most this many.
    #[arg(long, default_value_t = 1000)]
    max: usize,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SignArgs {
    /// The webhook signing key.
    #[arg(long, env = "NANGO_WEBHOOK_SIGNING_KEY", hide_env_values = true)]
    key: String,
    /// File holding the exact body; standard input when absent.
    #[arg(long)]
    file: Option<PathBuf>,
    /// POST the signed body to this URL and print the answer.
    #[arg(long)]
    post: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct DrainArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Stop after this many messages.
    #[arg(long, default_value_t = 100)]
    max: usize,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let command = Cli::parse().command;
    // The demo draws progress bars: only warnings and errors interleave with them.
    telemetry::init_cli(if matches!(command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    });
    let result = match command {
        Command::Demo(args) => demo_command(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Work(args) => work(args).await,
        Command::Simulate(args) => simulate(args).await,
        Command::Status(args) => status(args).await,
        Command::Sync(args) => sync_now(args).await,
        Command::Reset(args) => reset(args).await,
        Command::Replay(args) => replay(args).await,
        Command::Sign(args) => sign_command(args).await,
        Command::Drain(args) => drain(args).await,
        Command::Reconcile(args) => reconcile(args).await,
        Command::Sweep(args) => sweep(args).await,
        Command::Forget(args) => forget(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// The backends chosen by the flags, plus a variable lookup that sees the `--local-aws`
/// resources' names (and placeholders for the AWS names the embedded backend does not use).
struct Resolved {
    backends: Backends,
    sdk: aws_config::SdkConfig,
    overrides: BTreeMap<&'static str, String>,
}

impl Resolved {
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| self.overrides.get(name).cloned())
        }
    }
}

async fn resolve(args: &BackendArgs) -> Result<Resolved, Box<dyn std::error::Error>> {
    // The AWS configuration is loaded (region, credentials) only when something on AWS is used,
    // so the embedded backend runs without AWS settings and without their warnings.
    let secrets = [vars::API_KEY_SECRET, vars::SIGNING_KEY_SECRET]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
    let uses_aws = args.local_aws.is_some()
        || args.store == Some(StoreKind::Dynamodb)
        || args.queue == Some(QueueKind::Sqs)
        || secrets;
    let sdk = if uses_aws {
        setup::aws_config().await
    } else {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    };
    let mut overrides = BTreeMap::new();
    let local = match &args.local_aws {
        Some(prefix) => Some(stack::create(&sdk, prefix).await.map_err(|e| {
            format!("--local-aws {prefix}: cannot create the queues and tables on AWS_ENDPOINT_URL: {e}")
        })?),
        None => None,
    };
    let env = |name: &'static str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let aws = local.is_some();
    let store = match args.store.unwrap_or(if aws {
        StoreKind::Dynamodb
    } else {
        StoreKind::Sqlite
    }) {
        StoreKind::Sqlite => {
            overrides.insert(vars::RECORDS_TABLE, "-".to_owned());
            overrides.insert(vars::STATE_TABLE, "-".to_owned());
            StoreTarget::Sqlite {
                path: args.db.clone(),
            }
        }
        StoreKind::Dynamodb => {
            let (records_table, state_table) = match &local {
                Some(r) => (r.records_table.clone(), r.state_table.clone()),
                None => (
                    env(vars::RECORDS_TABLE).ok_or("RECORDS_TABLE is not set: --store dynamodb needs the tables' names (the stack's outputs), or --local-aws PREFIX")?,
                    env(vars::STATE_TABLE).ok_or("STATE_TABLE is not set: --store dynamodb needs the tables' names (the stack's outputs), or --local-aws PREFIX")?,
                ),
            };
            overrides.insert(vars::RECORDS_TABLE, records_table.clone());
            overrides.insert(vars::STATE_TABLE, state_table.clone());
            StoreTarget::Dynamo {
                records_table,
                state_table,
            }
        }
    };
    let queue = match args.queue.unwrap_or(if aws {
        QueueKind::Sqs
    } else {
        QueueKind::Embedded
    }) {
        QueueKind::Embedded => {
            overrides.insert(vars::QUEUE_URL, "-".to_owned());
            QueueTarget::Embedded {
                path: args.db.clone(),
            }
        }
        QueueKind::Sqs => {
            let (queue_url, dead_letter_queue_url) = match &local {
                Some(r) => (r.queue_url.clone(), Some(r.dead_letter_queue_url.clone())),
                None => (
                    env(vars::QUEUE_URL).ok_or("QUEUE_URL is not set: --queue sqs needs the queue's URL (the stack's QueueUrl output), or --local-aws PREFIX")?,
                    env("DEAD_LETTER_QUEUE_URL"),
                ),
            };
            overrides.insert(vars::QUEUE_URL, queue_url.clone());
            QueueTarget::Sqs {
                queue_url,
                dead_letter_queue_url,
            }
        }
    };
    let hard_delete = env(vars::DELETE_MODE).as_deref() == Some("hard");
    let backends = Backends::open(&store, &queue, Some(&sdk), hard_delete)?;
    Ok(Resolved {
        backends,
        sdk,
        overrides,
    })
}

const NO_API_KEY: &str = "NANGO_API_KEY is not set: the worker reads records from Nango with your environment's secret key (or run `nango-sync demo` to try everything with a simulated Nango)";

async fn worker_parts(
    resolved: &Resolved,
) -> Result<
    (
        nango_sync::adapters::nango::NangoClient,
        nango_sync::core::worker::WorkerSettings,
    ),
    Box<dyn std::error::Error>,
> {
    let config = WorkerConfig::from_lookup(resolved.lookup()).map_err(|e| match e {
        nango_sync::config::ConfigError::Missing(vars::API_KEY) => NO_API_KEY.to_owned(),
        other => other.to_string(),
    })?;
    Ok((
        setup::nango_client(&config, &resolved.sdk).await?,
        setup::worker_settings(&config),
    ))
}

async fn demo_command(args: DemoArgs) -> CliResult {
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
        println!(
            "The copy is in {} (sqlite3 {} \"select id, json_extract(record, '$.name') from records limit 5\").",
            report.db.display(),
            report.db.display()
        );
    }
    if report.streams.iter().all(|s| s.matches_nango) && report.forged_webhook_status == 401 {
        Ok(())
    } else {
        Err("the store does not match Nango (see the summary)".into())
    }
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

async fn serve(args: ServeArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let lookup = resolved.lookup();
    let webhook = WebhookConfig::from_lookup(&lookup).map_err(|e| match e {
        nango_sync::config::ConfigError::Missing(vars::SIGNING_KEY) => "NANGO_WEBHOOK_SIGNING_KEY is not set: the endpoint verifies Nango's signature with your environment's webhook signing key".to_owned(),
        other => other.to_string(),
    })?;
    let verifier = setup::verifier(&webhook, &resolved.sdk).await?;
    let worker = if args.webhook_only {
        None
    } else {
        Some(worker_parts(&resolved).await?)
    };
    let run = LocalRun::start(
        args.listen,
        LocalParts {
            verifier,
            max_body_bytes: webhook.max_body_bytes,
            store: resolved.backends.store.clone(),
            queue: resolved.backends.queue.clone(),
            worker,
            reconcile_every: args.reconcile_every,
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

async fn work(args: WorkArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let (source, settings) = worker_parts(&resolved).await?;
    let store = resolved.backends.store.clone();
    let queue = resolved.backends.queue.clone();
    let app = nango_sync::core::worker::WorkerApp {
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

async fn simulate(args: SimulateArgs) -> CliResult {
    let sim = Arc::new(Simulator::new());
    let models: Vec<&str> = args.models.iter().map(String::as_str).collect();
    let streams = sim.populate(&args.integration, args.connections, &models, args.records);
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

async fn status(args: StatusArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let streams = store.list_streams().await?;
    // Nango's own counts, when its key is at hand.
    let nango_counts: Option<BTreeMap<StreamKey, Option<u64>>> = match worker_parts(&resolved).await
    {
        Ok((client, _)) => match client.discover().await {
            Ok(found) => Some(
                found
                    .into_iter()
                    .map(|d| (d.stream, d.sync.record_count))
                    .collect(),
            ),
            Err(e) => {
                eprintln!("warning: Nango's counts unavailable: {e}");
                None
            }
        },
        Err(_) => None,
    };
    let mut rows = Vec::new();
    for (stream, s) in &streams {
        let live = store.count_live(stream).await?;
        let nango = nango_counts
            .as_ref()
            .and_then(|m| m.get(stream).copied().flatten());
        rows.push((stream, s, live, nango));
    }
    if args.json {
        for (stream, s, live, nango) in &rows {
            let line = serde_json::json!({"stream": stream, "status": s.status(), "records": live, "nango_record_count": nango, "state": s});
            println!("{line}");
        }
        return Ok(());
    }
    println!(
        "{:<40} {:<18} {:>8} {:>8} {:<24} {:<20} NOTE",
        "STREAM", "STATUS", "RECORDS", "NANGO", "LAST SYNC", "CURSOR"
    );
    for (stream, s, live, nango) in &rows {
        let status = s.status();
        let cursor = s.cursor.as_deref().map_or("-".to_owned(), |c| {
            if c.len() > 18 {
                format!("{}…", &c[..17])
            } else {
                c.to_owned()
            }
        });
        println!(
            "{:<40} {:<18} {:>8} {:>8} {:<24} {:<20} {}",
            stream.encode(),
            status.as_str(),
            live,
            nango.map_or("-".to_owned(), |n| n.to_string()),
            s.last_sync_at.as_deref().unwrap_or("-"),
            cursor,
            status_note(stream, s)
        );
    }
    eprintln!(
        "{} stream(s){}",
        streams.len(),
        if nango_counts.is_none() {
            "; set NANGO_API_KEY to compare with Nango's counts"
        } else {
            ""
        }
    );
    Ok(())
}

/// What the status table says beside a stream: why it is held, purged or in error.
fn status_note(stream: &StreamKey, s: &nango_sync::ports::StreamState) -> String {
    match s.status() {
        StreamStatus::Held => {
            let h = s.held.as_ref().expect("a held stream has its hold");
            format!(
                "would delete {} of {} (Nango counts {}, last success {}): nango-sync sweep --stream '{}' --confirm | --discard",
                h.would_delete,
                h.live_count,
                h.nango_count,
                h.last_success_at.as_deref().unwrap_or("unknown"),
                stream.encode()
            )
        }
        StreamStatus::NangoPurged => s
            .nango
            .purged
            .as_ref()
            .map(|p| format!("copy kept: {}", p.reason))
            .unwrap_or_default(),
        StreamStatus::ConnectionDeleted => format!(
            "connection deleted at {}; no longer synced",
            s.connection_deleted_at.as_deref().unwrap_or("?")
        ),
        StreamStatus::Error | StreamStatus::Ok => s.error.clone().unwrap_or_default(),
    }
}

fn parse_stream(text: &str) -> Result<StreamKey, Box<dyn std::error::Error>> {
    StreamKey::decode(text).map_err(|e| {
        format!("--stream {text:?}: {e}; write it as providerConfigKey|connectionId|model|variant")
            .into()
    })
}

async fn sync_now(args: SyncArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let requests: Vec<SyncRequest> = match &args.stream {
        Some(text) => {
            let stream = parse_stream(text)?;
            let name = store
                .get_stream(&stream)
                .await?
                .and_then(|s| s.sync_name)
                .unwrap_or_default();
            vec![SyncRequest::new(stream, name)]
        }
        None => store
            .list_streams()
            .await?
            .into_iter()
            .map(|(stream, s)| SyncRequest::new(stream, s.sync_name.unwrap_or_default()))
            .collect(),
    };
    let count = enqueue_syncs(
        &resolved.backends.queue,
        requests,
        Trigger::Manual,
        &now_rfc3339(),
    )
    .await?;
    report(
        args.json,
        serde_json::json!({"enqueued": count}),
        &format!("{count} sync job(s) enqueued"),
    );
    Ok(())
}

async fn reset(args: ResetArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let stream = parse_stream(&args.stream)?;
    let Some(current) = store.get_stream(&stream).await? else {
        return Err(format!(
            "no stream {} in the store (see `nango-sync status`)",
            stream.encode()
        )
        .into());
    };
    store.reset_cursor(&stream).await?;
    if args.sync {
        let request = SyncRequest::new(
            stream.clone(),
            current.sync_name.clone().unwrap_or_default(),
        );
        enqueue_syncs(
            &resolved.backends.queue,
            vec![request],
            Trigger::Manual,
            &now_rfc3339(),
        )
        .await?;
    }
    report(
        args.json,
        serde_json::json!({"stream": stream, "previous_cursor": current.cursor, "sync_enqueued": args.sync}),
        &format!(
            "cursor of {} cleared (was {}){}",
            stream.encode(),
            current.cursor.as_deref().unwrap_or("unset"),
            if args.sync { "; sync enqueued" } else { "" }
        ),
    );
    Ok(())
}

async fn replay(args: ReplayArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let dead = resolved.backends.dead_letters.as_ref().ok_or(
        "DEAD_LETTER_QUEUE_URL is not set: give the stack's DeadLetterQueueUrl output (or --local-aws PREFIX)",
    )?;
    let moved = ops::replay_dead_letters(dead, &resolved.backends.queue, args.max).await?;
    report(
        args.json,
        serde_json::json!({"moved": moved}),
        &format!("{moved} job(s) moved back to the ingest queue"),
    );
    Ok(())
}

async fn sign_command(args: SignArgs) -> CliResult {
    let body = match &args.file {
        Some(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            buf
        }
    };
    let hmac = sign(args.key.as_bytes(), &body);
    let legacy = sign_legacy(args.key.as_bytes(), &body);
    let Some(url) = args.post else {
        report(
            args.json,
            serde_json::json!({HMAC_HEADER: hmac, LEGACY_HEADER: legacy}),
            &format!("{HMAC_HEADER}: {hmac}\n{LEGACY_HEADER}: {legacy}"),
        );
        return Ok(());
    };
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(HMAC_HEADER, hmac)
        .header(LEGACY_HEADER, legacy)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url} failed: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    report(
        args.json,
        serde_json::json!({"status": status.as_u16(), "body": text}),
        &format!("{} {text}", status.as_u16()),
    );
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {status}").into())
    }
}

async fn drain(args: DrainArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let queue = &resolved.backends.queue;
    let mut taken = 0;
    while taken < args.max {
        let batch = queue
            .receive((args.max - taken).min(10), std::time::Duration::ZERO)
            .await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            println!("{}", message.body);
            queue.delete(&message.receipt_handle).await?;
            taken += 1;
        }
    }
    eprintln!("{taken} message(s) taken off the queue");
    Ok(())
}

async fn reconcile(args: ReconcileArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let at = ops::reconcile_now(&resolved.backends.queue).await?;
    report(
        args.json,
        serde_json::json!({"reconcile_enqueued_at": at}),
        &format!("reconcile enqueued ({at}); the worker (nango-sync serve or work) runs it"),
    );
    Ok(())
}

async fn sweep(args: SweepArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let stream = parse_stream(&args.stream)?;
    let decision = if args.confirm {
        HoldDecision::Confirm
    } else {
        HoldDecision::Discard
    };
    let result = decide_held(store, store, &stream, decision).await?;
    let human = match decision {
        HoldDecision::Confirm => format!(
            "{}: {} record(s) marked deleted, {} live",
            stream.encode(),
            result.tombstoned,
            result.live_count
        ),
        HoldDecision::Discard => format!(
            "{}: held sweep dropped; the copy is kept ({} live)",
            stream.encode(),
            result.live_count
        ),
    };
    report(
        args.json,
        serde_json::json!({"stream": stream, "sweep": result}),
        &human,
    );
    Ok(())
}

async fn forget(args: ForgetArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let store = &resolved.backends.store;
    let connection = ConnectionKey::decode(&args.connection).map_err(|e| {
        format!(
            "--connection {:?}: {e}; write it as providerConfigKey|connectionId",
            args.connection
        )
    })?;
    let streams = ops::forget_connection(store, store, &connection, args.purge).await?;
    let changed: u64 = streams.iter().map(|(_, n)| n).sum();
    let verb = if args.purge {
        "removed"
    } else {
        "marked deleted"
    };
    report(
        args.json,
        serde_json::json!({"connection": connection.encode(), "purge": args.purge,
            "streams": streams.iter().map(|(s, n)| serde_json::json!({"stream": s, "records": n})).collect::<Vec<_>>()}),
        &format!(
            "{}: {} stream(s) no longer synced, {changed} record(s) {verb}",
            connection.encode(),
            streams.len()
        ),
    );
    Ok(())
}

/// Prints `json` with --json, else the human line.
fn report(json: bool, value: serde_json::Value, human: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{human}");
    }
}
