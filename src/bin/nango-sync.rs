//! The nango-sync CLI: local runs and operator tools. Every command calls the library.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use nango_sync::adapters::dynamodb::DynamoStateStore;
use nango_sync::adapters::local_aws;
use nango_sync::adapters::sqs::{self, SqsQueue};
use nango_sync::config::{vars, FromVars, WebhookConfig, WorkerConfig};
use nango_sync::job::{now_rfc3339, Trigger};
use nango_sync::ports::{JobConsumer, StateStore, StreamStatus};
use nango_sync::signature::{sign, sign_legacy, HMAC_HEADER, LEGACY_HEADER};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::Simulator;
use nango_sync::stream::StreamKey;
use nango_sync::{local_server, ops, setup, telemetry};

#[derive(Parser)]
#[command(
    name = "nango-sync",
    version,
    about = "Keep a copy of Nango-synced records in your own AWS account"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the webhook endpoint on localhost (the Lambda's handler) in front of an SQS queue.
    Serve(ServeArgs),
    /// Sign a body as Nango does and print the headers, or POST it signed to a URL.
    Sign(SignArgs),
    /// Take the job messages off an SQS queue and print them (one JSON per line).
    Drain(DrainArgs),
    /// Run the worker on the SQS queue's jobs, as the Lambda does (env as for the worker).
    Work(WorkArgs),
    /// Show every stream's state: cursor, records, status.
    Status(StatusArgs),
    /// Enqueue a sync now, for one stream or all known streams.
    Sync(SyncArgs),
    /// Clear a stream's cursor so that its next sync re-reads it from the start.
    Reset(ResetArgs),
    /// Move the dead-letter queue's jobs back to the ingest queue.
    Replay(ReplayArgs),
    /// Serve a simulated Nango records API (the fake the tests use) with generated records.
    Simulate(SimulateArgs),
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
    /// The API key it accepts.
    #[arg(long, default_value = "00000000-0000-4000-8000-000000000000")]
    api_key: String,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    local: LocalAws,
}

/// Where the queue and tables are.
#[derive(clap::Args)]
struct LocalAws {
    /// Create (or find) `<PREFIX>-ingest.fifo`, its DLQ and the `<PREFIX>-records` and
    /// `<PREFIX>-state` tables on AWS_ENDPOINT_URL (e.g. moto), as template.yaml deploys them, and
    /// use them instead of QUEUE_URL, RECORDS_TABLE and STATE_TABLE.
    #[arg(long, value_name = "PREFIX")]
    local_aws: Option<String>,
}

#[derive(clap::Args)]
struct WorkArgs {
    #[command(flatten)]
    local: LocalAws,
    /// Stop once the queue is empty instead of polling forever.
    #[arg(long)]
    until_empty: bool,
}

#[derive(clap::Args)]
struct SyncArgs {
    #[command(flatten)]
    local: LocalAws,
    /// The stream, as `providerConfigKey|connectionId|model|variant`.
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    stream: Option<String>,
    /// Every stream the state table knows.
    #[arg(long)]
    all: bool,
}

#[derive(clap::Args)]
struct ResetArgs {
    #[command(flatten)]
    local: LocalAws,
    /// The stream, as `providerConfigKey|connectionId|model|variant`.
    #[arg(long)]
    stream: String,
    /// Also enqueue its sync now.
    #[arg(long)]
    sync: bool,
}

#[derive(clap::Args)]
struct ReplayArgs {
    #[command(flatten)]
    local: LocalAws,
    /// The dead-letter queue (the stack's DeadLetterQueueUrl output).
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL")]
    dead_letter_queue_url: Option<String>,
    /// Move at most this many.
    #[arg(long, default_value_t = 1000)]
    max: usize,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    local: LocalAws,
    /// One JSON object per stream instead of a table.
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
    file: Option<std::path::PathBuf>,
    /// POST the signed body to this URL and print the answer.
    #[arg(long)]
    post: Option<String>,
}

#[derive(clap::Args)]
struct DrainArgs {
    #[arg(long, env = "QUEUE_URL")]
    queue_url: String,
    /// Stop after this many messages.
    #[arg(long, default_value_t = 100)]
    max: usize,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    telemetry::init_cli();
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Sign(args) => sign_command(args).await,
        Command::Drain(args) => drain(args).await,
        Command::Simulate(args) => simulate(args).await,
        Command::Work(args) => work(args).await,
        Command::Status(args) => status(args).await,
        Command::Sync(args) => sync_now(args).await,
        Command::Reset(args) => reset(args).await,
        Command::Replay(args) => replay(args).await,
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

async fn serve(args: ServeArgs) -> CliResult {
    let sdk = setup::aws_config().await;
    let lookup = local_lookup(&sdk, &args.local).await?;
    let config = WebhookConfig::from_lookup(lookup)?;
    let app = setup::webhook_app(&config, &sdk).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    eprintln!(
        "webhook endpoint: http://{}/ (Ctrl-C stops)",
        listener.local_addr()?
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    local_server::serve(Arc::new(app), listener, shutdown).await;
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
        println!("{HMAC_HEADER}: {hmac}");
        println!("{LEGACY_HEADER}: {legacy}");
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
    println!(
        "{} {}",
        status.as_u16(),
        response.text().await.unwrap_or_default()
    );
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {status}").into())
    }
}

async fn drain(args: DrainArgs) -> CliResult {
    let sdk = setup::aws_config().await;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), &args.queue_url);
    let mut taken = 0;
    while taken < args.max {
        let batch = queue.receive(10, std::time::Duration::ZERO).await?;
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
        ..ServerSettings::default()
    };
    let server = SimServer::start_on(args.listen, sim, settings)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!("simulated Nango: {} (API key {})", server.url, args.api_key);
    println!(
        "{} streams of {} records, e.g. {}",
        streams.len(),
        args.records,
        example.encode()
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

/// Variable lookup: the environment, with the `--local-aws` resources' names in place of
/// QUEUE_URL, RECORDS_TABLE and STATE_TABLE when given.
async fn local_lookup(
    sdk: &aws_config::SdkConfig,
    local: &LocalAws,
) -> Result<impl Fn(&str) -> Option<String>, Box<dyn std::error::Error>> {
    let resources = match &local.local_aws {
        Some(prefix) => Some(local_aws::create(sdk, prefix).await?),
        None => None,
    };
    Ok(move |name: &str| {
        let local = resources.as_ref().and_then(|r| match name {
            vars::QUEUE_URL => Some(r.queue_url.clone()),
            vars::RECORDS_TABLE => Some(r.records_table.clone()),
            vars::STATE_TABLE => Some(r.state_table.clone()),
            _ => None,
        });
        local.or_else(|| std::env::var(name).ok())
    })
}

async fn work(args: WorkArgs) -> CliResult {
    let sdk = setup::aws_config().await;
    let config = WorkerConfig::from_lookup(local_lookup(&sdk, &args.local).await?)?;
    let app = setup::worker_app(&config, &sdk).await?;
    let (mut jobs, mut failed) = (0usize, 0usize);
    loop {
        let batch = app
            .queue
            .receive(10, std::time::Duration::from_secs(1))
            .await?;
        if batch.is_empty() {
            if args.until_empty {
                break;
            }
            continue;
        }
        // Each batch gets the time a deployed worker would (its 300 s timeout).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        let response = app
            .handle(sqs::as_lambda_event(&batch), Some(deadline))
            .await;
        for message in &batch {
            jobs += 1;
            let failed_here = response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == message.message_id);
            if failed_here {
                failed += 1;
            } else {
                app.queue.delete(&message.receipt_handle).await?;
            }
        }
    }
    eprintln!("{jobs} job(s) run, {failed} failed (failed jobs stay on the queue for redelivery)");
    Ok(())
}

async fn status(args: StatusArgs) -> CliResult {
    let sdk = setup::aws_config().await;
    let lookup = local_lookup(&sdk, &args.local).await?;
    let table =
        lookup(vars::STATE_TABLE).ok_or("STATE_TABLE is not set (or pass --local-aws PREFIX)")?;
    let state = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let streams = state.list_streams().await?;
    if args.json {
        for (stream, s) in &streams {
            let line = serde_json::json!({"stream": stream, "state": s});
            println!("{line}");
        }
        return Ok(());
    }
    println!(
        "{:<44} {:<6} {:>9} {:>8} {:<27} ERROR",
        "STREAM", "STATUS", "WRITTEN", "REJECTED", "LAST SYNC"
    );
    for (stream, s) in &streams {
        let status = match s.status {
            StreamStatus::Ok => "ok",
            StreamStatus::Error => "error",
        };
        println!(
            "{:<44} {:<6} {:>9} {:>8} {:<27} {}",
            stream.encode(),
            status,
            s.records_written,
            s.records_rejected,
            s.last_sync_at.as_deref().unwrap_or("-"),
            s.error.as_deref().unwrap_or("")
        );
    }
    eprintln!("{} stream(s)", streams.len());
    Ok(())
}

/// The ingest queue and the state table, from `--local-aws` or QUEUE_URL and STATE_TABLE.
async fn queue_and_state(
    sdk: &aws_config::SdkConfig,
    local: &LocalAws,
) -> Result<(SqsQueue, DynamoStateStore), Box<dyn std::error::Error>> {
    let lookup = local_lookup(sdk, local).await?;
    let queue_url =
        lookup(vars::QUEUE_URL).ok_or("QUEUE_URL is not set (or pass --local-aws PREFIX)")?;
    let table =
        lookup(vars::STATE_TABLE).ok_or("STATE_TABLE is not set (or pass --local-aws PREFIX)")?;
    Ok((
        SqsQueue::new(aws_sdk_sqs::Client::new(sdk), queue_url),
        DynamoStateStore::new(aws_sdk_dynamodb::Client::new(sdk), table),
    ))
}

fn parse_stream(text: &str) -> Result<StreamKey, Box<dyn std::error::Error>> {
    StreamKey::decode(text).map_err(|e| {
        format!("--stream {text:?}: {e}; write it as providerConfigKey|connectionId|model|variant")
            .into()
    })
}

async fn sync_now(args: SyncArgs) -> CliResult {
    let sdk = setup::aws_config().await;
    let (queue, state) = queue_and_state(&sdk, &args.local).await?;
    let streams: Vec<ops::SyncRequest> = match &args.stream {
        Some(text) => {
            let stream = parse_stream(text)?;
            let name = state
                .get_stream(&stream)
                .await?
                .and_then(|s| s.sync_name)
                .unwrap_or_default();
            vec![ops::SyncRequest::new(stream, name)]
        }
        None => state
            .list_streams()
            .await?
            .into_iter()
            .map(|(stream, s)| ops::SyncRequest::new(stream, s.sync_name.unwrap_or_default()))
            .collect(),
    };
    let count = ops::enqueue_syncs(&queue, streams, Trigger::Manual, &now_rfc3339()).await?;
    println!("{count} sync job(s) enqueued");
    Ok(())
}

async fn reset(args: ResetArgs) -> CliResult {
    let sdk = setup::aws_config().await;
    let (queue, state) = queue_and_state(&sdk, &args.local).await?;
    let stream = parse_stream(&args.stream)?;
    let Some(current) = state.get_stream(&stream).await? else {
        return Err(format!("no stream {} in the state table", stream.encode()).into());
    };
    state.reset_cursor(&stream).await?;
    println!(
        "cursor of {} cleared (was {})",
        stream.encode(),
        current.cursor.as_deref().unwrap_or("unset")
    );
    if args.sync {
        ops::enqueue_syncs(
            &queue,
            vec![ops::SyncRequest::new(
                stream,
                current.sync_name.unwrap_or_default(),
            )],
            Trigger::Manual,
            &now_rfc3339(),
        )
        .await?;
        println!("sync enqueued");
    }
    Ok(())
}

async fn replay(args: ReplayArgs) -> CliResult {
    let sdk = setup::aws_config().await;
    let lookup = local_lookup(&sdk, &args.local).await?;
    let queue_url =
        lookup(vars::QUEUE_URL).ok_or("QUEUE_URL is not set (or pass --local-aws PREFIX)")?;
    let dlq_url =
        match (&args.dead_letter_queue_url, &args.local.local_aws) {
            (Some(url), _) => url.clone(),
            (None, Some(prefix)) => local_aws::create(&sdk, prefix).await?.dead_letter_queue_url,
            (None, None) => return Err(
                "give --dead-letter-queue-url (or DEAD_LETTER_QUEUE_URL, or --local-aws PREFIX)"
                    .into(),
            ),
        };
    let client = aws_sdk_sqs::Client::new(&sdk);
    let moved = ops::replay_dead_letters(
        &SqsQueue::new(client.clone(), dlq_url),
        &SqsQueue::new(client, queue_url),
        args.max,
    )
    .await?;
    println!("{moved} job(s) moved back to the ingest queue");
    Ok(())
}
