//! The command line: every command and its arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "nango-sync",
    version,
    about = "Keep a copy of Nango-synced records in your own AWS account (or, locally, a SQLite file)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Print the embedded backend's changes to records as they happen (the change feed).
    Watch(WatchArgs),
    /// Take the jobs off the queue and print them (one JSON per line).
    Drain(DrainArgs),
    /// Enqueue a reconcile now: every stream brought up to date and checked against Nango.
    Reconcile(ReconcileArgs),
    /// Decide a held sweep: apply its deletes (--confirm) or keep the copy (--discard).
    Sweep(SweepArgs),
    /// Forget a connection: its streams stop syncing and their records are marked deleted
    /// (or, with --purge, removed).
    Forget(ForgetArgs),
    /// Send a write to the provider through Nango (a tool, an action or a proxy request), at
    /// most once unless it is safe to repeat; the request is JSON (events/write-request.schema.json).
    Write(WriteArgs),
    /// List the writes and how each ended; `writes resolve` decides one that ended unknown.
    Writes(WritesArgs),
    /// Check a deployment: the stack's outputs, the secrets' shape, Nango reached with the API
    /// key, the webhook endpoint answering, and what to check in Nango's dashboard.
    Doctor(DoctorArgs),
    /// Print a shell completion script (e.g. `nango-sync completions bash > ~/.local/share/bash-completion/completions/nango-sync`).
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `nango-sync man > nango-sync.1`.
    Man,
}

#[derive(clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// One JSON object per check.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Dynamodb,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueKind {
    Embedded,
    Sqs,
}

/// Where records, state and jobs are: the embedded SQLite file by default.
#[derive(clap::Args)]
pub struct BackendArgs {
    /// The embedded backend's SQLite file: records, state and the job queue.
    #[arg(long, env = "NANGO_SYNC_DB", default_value = "nango-sync.db")]
    pub db: PathBuf,
    /// Records and state: `sqlite` (the --db file) or `dynamodb` (RECORDS_TABLE, STATE_TABLE).
    #[arg(long, value_enum, env = "NANGO_SYNC_STORE")]
    pub store: Option<StoreKind>,
    /// Jobs: `embedded` (the --db file) or `sqs` (QUEUE_URL, DEAD_LETTER_QUEUE_URL).
    #[arg(long, value_enum, env = "NANGO_SYNC_QUEUE")]
    pub queue: Option<QueueKind>,
    /// Create (or find) `<PREFIX>-ingest.fifo`, its DLQ and the `<PREFIX>-records` and
    /// `<PREFIX>-state` tables on AWS_ENDPOINT_URL (e.g. moto) as template.yaml deploys them, and
    /// use them: DynamoDB and SQS unless --store or --queue say otherwise.
    #[arg(long, value_name = "PREFIX")]
    pub local_aws: Option<String>,
    /// A deployed stack: its queues, tables and secrets come from its outputs (CloudFormation
    /// DescribeStacks), and DynamoDB and SQS are used unless --store or --queue say otherwise.
    /// Its outputs win over variables naming other resources (RECORDS_TABLE, QUEUE_URL, ...:
    /// a warning says so); NANGO_API_KEY, if set, wins over the stack's secret.
    #[arg(
        long,
        value_name = "NAME",
        env = "NANGO_SYNC_STACK",
        conflicts_with = "local_aws"
    )]
    pub stack: Option<String>,
    /// The AWS region of the stack, queues and tables (default: AWS_REGION, or your profile's).
    #[arg(long)]
    pub region: Option<String>,
}

/// One stream: by its key, or by its parts (`|` is a shell pipe, so a key must be quoted).
#[derive(clap::Args, Default, Clone)]
pub struct StreamArgs {
    /// The stream, as 'providerConfigKey|connectionId|model|variant' (quoted: `|` is a pipe).
    #[arg(long, conflicts_with_all = ["integration", "connection", "model", "variant"])]
    pub stream: Option<String>,
    /// The stream's integration (providerConfigKey), with --connection and --model.
    #[arg(long, requires_all = ["connection", "model"])]
    pub integration: Option<String>,
    /// The stream's connection id, with --integration and --model.
    #[arg(long, requires_all = ["integration", "model"])]
    pub connection: Option<String>,
    /// The stream's model, with --integration and --connection.
    #[arg(long, requires_all = ["integration", "connection"])]
    pub model: Option<String>,
    /// The model's variant (default: base).
    #[arg(long, requires = "model")]
    pub variant: Option<String>,
}

/// Destructive commands ask first on a terminal; elsewhere they need this.
#[derive(clap::Args, Default, Clone, Copy)]
pub struct YesArgs {
    /// Go ahead without asking (needed when standard input is not a terminal: cron, CI, pipes).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Models per connection (comma-separated).
    #[arg(long, default_value = "Contact,Deal", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Records per stream.
    #[arg(long, default_value_t = 5_000)]
    pub records: usize,
    /// Rounds of changes after the initial sync.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Share of each stream's records changed per round (updates, deletes, additions).
    #[arg(long, default_value_t = 0.1)]
    pub churn: f64,
    /// Records per page asked of Nango.
    #[arg(long, default_value_t = 500)]
    pub page_limit: u32,
    /// Latency the simulated Nango adds to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of Nango requests answered with a 5xx, a truncated body or a reset.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Share of Nango requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// The demo's SQLite file, recreated at each run.
    #[arg(long, default_value = "nango-sync-demo.db")]
    pub db: PathBuf,
    /// The summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address of the webhook endpoint.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Only the endpoint, in front of the queue (run `nango-sync work` elsewhere).
    #[arg(long)]
    pub webhook_only: bool,
    /// Enqueue a reconcile at start and then this often (e.g. 15m, 90s, 1h; a bare number is
    /// minutes; 0 turns it off), as the deployed schedule does (ReconcileEveryMinutes).
    #[arg(long, default_value = "15m", value_parser = parse_period)]
    reconcile_every: std::time::Duration,
}

impl ServeArgs {
    /// The reconcile period, `None` when `--reconcile-every 0` turned it off.
    pub fn reconcile_every(&self) -> Option<std::time::Duration> {
        (!self.reconcile_every.is_zero()).then_some(self.reconcile_every)
    }
}

/// `15m`, `90s`, `1h` or a number of minutes; `0` (zero) is off. A plain `Duration`, not an
/// `Option`: clap's derive reads an `Option` field as an optional argument of the inner type, and
/// a parser returning `Option` then fails at run time on every invocation.
pub fn parse_period(text: &str) -> Result<std::time::Duration, String> {
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
    Ok(std::time::Duration::from_secs(seconds))
}

#[derive(clap::Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["confirm", "discard"])))]
pub struct SweepArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub yes: YesArgs,
    /// Apply the held deletes, if the stream still counts what was held.
    #[arg(long)]
    pub confirm: bool,
    /// Drop them: the copy is kept as it is.
    #[arg(long)]
    pub discard: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The connection: its id with --integration, or 'providerConfigKey|connectionId'.
    #[arg(long)]
    pub connection: String,
    /// The connection's integration (providerConfigKey).
    #[arg(long)]
    pub integration: Option<String>,
    /// Remove the records instead of marking them deleted.
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub yes: YesArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Stop once the queue is empty instead of polling until Ctrl-C.
    #[arg(long)]
    pub until_empty: bool,
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    #[arg(long, default_value = "127.0.0.1:3003")]
    pub listen: SocketAddr,
    /// Integration id (providerConfigKey) of the simulated connections.
    #[arg(long, default_value = "demo")]
    pub integration: String,
    /// Connections conn-0, conn-1, ...
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Connections by id instead (repeatable), e.g. the sample events' `user-42`.
    #[arg(long, conflicts_with = "connections")]
    pub connection_id: Vec<String>,
    /// Models synced per connection (comma-separated).
    #[arg(long, default_value = "Contact", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Records per stream.
    #[arg(long, default_value_t = 1000)]
    pub records: usize,
    /// Bytes of JSON per record (about; 0 keeps the 250-byte sample).
    #[arg(long, default_value_t = 0)]
    pub record_bytes: usize,
    /// Every this many records, one of --large-bytes instead (0: none).
    #[arg(long, default_value_t = 0)]
    pub large_every: usize,
    #[arg(long, default_value_t = 50_000)]
    pub large_bytes: usize,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered with a 5xx, a truncated body or a reset.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Share of requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// The API key it accepts.
    #[arg(long, default_value = "00000000-0000-4000-8000-000000000000")]
    pub api_key: String,
    /// Send a signed sync webhook per stream here (your endpoint, local or deployed).
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// The key webhooks are signed with.
    #[arg(long, env = "NANGO_WEBHOOK_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
    /// Then change records every this many seconds (and send webhooks again).
    #[arg(long)]
    pub change_every: Option<u64>,
    /// Share of each stream's records changed each time.
    #[arg(long, default_value_t = 0.05)]
    pub churn: f64,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// One JSON object per stream instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero when something needs an operator: 8 when a stream is in error, held or
    /// nango_purged; 16 when the dead-letter queue holds jobs; 24 for both (1: the command
    /// failed; 2: a wrong command line). Nango's counts are not asked for (no Nango requests).
    #[arg(long)]
    pub check: bool,
}

#[derive(clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Every stream the store knows.
    #[arg(long, conflicts_with_all = ["stream", "integration"])]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Also enqueue its sync now.
    #[arg(long)]
    pub sync: bool,
    #[command(flatten)]
    pub yes: YesArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Move at most this many.
    #[arg(long, default_value_t = 1000)]
    pub max: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct SignArgs {
    /// The webhook signing key.
    #[arg(long, env = "NANGO_WEBHOOK_SIGNING_KEY", hide_env_values = true)]
    pub key: String,
    /// File holding the exact body; standard input when absent.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// POST the signed body to this URL and print the answer.
    #[arg(long)]
    pub post: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The write request's file, or - for standard input.
    #[arg(default_value = "-")]
    pub request: PathBuf,
    /// The write as JSON when it ends.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct WritesArgs {
    #[command(subcommand)]
    pub action: Option<WritesAction>,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// One JSON object per write.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum WritesAction {
    /// Decide a write that ended unknown, once you have looked at the provider: it
    /// --succeeded, it --failed, or --retry (it is sent again now).
    Resolve(ResolveArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["succeeded", "failed", "retry"])))]
pub struct ResolveArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The write's id.
    pub id: String,
    /// The provider shows the write.
    #[arg(long)]
    pub succeeded: bool,
    /// The provider does not show it, and it is not to be sent.
    #[arg(long)]
    pub failed: bool,
    /// The provider does not show it: send it again. Refused within 15 minutes of the write's
    /// end, while its first request may still land (Nango runs a tool or action that long).
    #[arg(long)]
    pub retry: bool,
    /// With --retry: send it again now, within those 15 minutes (it may then apply twice).
    #[arg(long, requires = "retry")]
    pub force: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub yes: YesArgs,
    /// Stop after this many messages.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
    /// One JSON object per message: `message_id`, `group_id` and `job` (the message as JSON).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// Where the records are: the --db file's change feed, or (--store dynamodb, --stack) the
    /// records table's DynamoDB stream.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Only this stream's changes.
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Start after this sequence number (the `seq` of the last change seen); default: only
    /// changes from now on. 0 prints every change kept (DynamoDB keeps 24 hours).
    #[arg(long)]
    pub since: Option<String>,
    /// Print the changes there are and stop, instead of waiting for more.
    #[arg(long)]
    pub no_follow: bool,
    /// One JSON object per change: `seq`, `at`, `stream`, `id`, `change`.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("nango-sync").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every command with its defaults: clap checks a field's type against its parser only when
    /// the value is read, so a mismatch panics here rather than at build time.
    #[test]
    fn every_command_parses_with_its_defaults() {
        let invocations: [&[&str]; 22] = [
            &["demo"],
            &["serve"],
            &["work"],
            &["simulate"],
            &["status"],
            &["sync", "--all"],
            &["reset", "--stream", "p|c|M|base"],
            &["replay"],
            &["sign", "--key", "k"],
            &["watch"],
            &["drain"],
            &["reconcile"],
            &["sweep", "--stream", "p|c|M|base", "--discard"],
            &["forget", "--connection", "p|c"],
            &[
                "forget",
                "--integration",
                "p",
                "--connection",
                "c",
                "--purge",
                "--yes",
            ],
            &[
                "sync",
                "--integration",
                "p",
                "--connection",
                "c",
                "--model",
                "M",
            ],
            &[
                "reset",
                "--integration",
                "p",
                "--connection",
                "c",
                "--model",
                "M",
                "--variant",
                "v",
                "-y",
            ],
            &[
                "status",
                "--stack",
                "nango-sync",
                "--region",
                "eu-west-1",
                "--check",
            ],
            &["watch", "--store", "dynamodb", "--since", "0"],
            &["doctor", "--stack", "nango-sync"],
            &["completions", "bash"],
            &["man"],
        ];
        for args in invocations {
            if let Err(e) = parse(args) {
                panic!("{args:?}: {e}");
            }
        }
    }

    #[test]
    fn serve_reads_its_reconcile_period() {
        let period = |args: &[&str]| match parse(args).unwrap() {
            Command::Serve(serve) => serve.reconcile_every(),
            _ => unreachable!("serve parses as serve"),
        };
        assert_eq!(period(&["serve"]), Some(Duration::from_secs(15 * 60)));
        assert_eq!(
            period(&["serve", "--reconcile-every", "90s"]),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            period(&["serve", "--reconcile-every", "2"]),
            Some(Duration::from_secs(120))
        );
        assert_eq!(period(&["serve", "--reconcile-every", "0"]), None);
        assert!(parse(&["serve", "--reconcile-every", "1d"]).is_err());
    }

    #[test]
    fn a_stream_named_half_by_parts_or_twice_is_refused() {
        assert!(parse(&["sync", "--integration", "p", "--connection", "c"]).is_err());
        assert!(parse(&["reset", "--stream", "p|c|M|base", "--model", "M"]).is_err());
        assert!(parse(&["sync", "--all", "--stream", "p|c|M|base"]).is_err());
        assert!(parse(&["status", "--stack", "s", "--local-aws", "x"]).is_err());
    }
}
