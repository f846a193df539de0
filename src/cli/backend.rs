//! The backends a command uses, chosen by its flags: the embedded SQLite file, DynamoDB and SQS
//! named by the environment or by a deployed stack's outputs (`--stack`), or created on an
//! endpoint with `--local-aws`.

use crate::adapters::aws::cloudformation::stack_outputs;
use crate::adapters::aws::stack;
use crate::adapters::nango::NangoClient;
use crate::config::{vars, ConfigError, NangoConfig, StackConfig, Vars, WorkerBehaviour};
use crate::core::worker::WorkerSettings;
use crate::local::backend::{Backends, QueueTarget, StoreTarget};
use crate::setup;

use super::args::{BackendArgs, QueueKind, StoreKind};

/// The backends chosen by the flags, the AWS settings they were opened with, and the variables
/// the command reads (the environment, then the stack's outputs).
pub struct Resolved {
    pub backends: Backends,
    pub sdk: aws_config::SdkConfig,
    pub vars: Vars,
    /// The outputs of `--stack`, when it was given.
    pub stack_outputs: Option<std::collections::BTreeMap<String, String>>,
    /// Where the store and the queue are, for the questions destructive commands ask.
    pub store_target: StoreTarget,
    pub queue_target: QueueTarget,
}

/// Whether a command may create the embedded SQLite file. Only the runs do (serve, work): an
/// operator command pointed at a missing file is pointed at the wrong place, and an empty file
/// created there would answer as if nothing had ever synced.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DbFile {
    MayCreate,
    MustExist,
}

/// The AWS settings: the SDK's (region, credentials) with `--region` over them, loaded only when
/// something on AWS is used, so the embedded backend runs without AWS settings and without their
/// warnings.
pub async fn aws_settings(args: &BackendArgs, uses_aws: bool) -> aws_config::SdkConfig {
    if uses_aws {
        setup::aws_config_in(args.region.clone()).await
    } else {
        aws_config::SdkConfig::builder()
            .behavior_version(setup::behavior_version())
            .build()
    }
}

/// Where a command's parts are, before anything is opened.
pub struct Settings {
    pub store: StoreTarget,
    pub queue: QueueTarget,
    pub sdk: aws_config::SdkConfig,
    pub vars: Vars,
    pub stack_outputs: Option<std::collections::BTreeMap<String, String>>,
}

/// The backends the flags choose, opened.
pub async fn resolve(
    args: &BackendArgs,
    db_file: DbFile,
) -> Result<Resolved, Box<dyn std::error::Error>> {
    settings(args).await?.open(db_file)
}

/// Where the flags, the environment and the stack's outputs put the store and the queue.
pub async fn settings(args: &BackendArgs) -> Result<Settings, Box<dyn std::error::Error>> {
    let env = Vars::env_and(Default::default());
    let stack_env: StackConfig = env.read()?;
    let uses_aws = args.local_aws.is_some()
        || args.stack.is_some()
        || args.store == Some(StoreKind::Dynamodb)
        || args.queue == Some(QueueKind::Sqs)
        || stack_env.reads_secrets;
    let sdk = aws_settings(args, uses_aws).await;
    let outputs = match &args.stack {
        Some(name) => {
            let client = aws_sdk_cloudformation::Client::new(&sdk);
            Some(stack_outputs(&client, name).await?)
        }
        None => None,
    };
    let vars = Vars::env_and(outputs.clone().unwrap_or_default());
    let stack_env: StackConfig = vars.read()?;
    let local = match &args.local_aws {
        Some(prefix) => Some(stack::create(&sdk, prefix).await.map_err(|e| {
            format!("--local-aws {prefix}: cannot create the queues and tables on AWS_ENDPOINT_URL: {e}")
        })?),
        None => None,
    };
    let aws = local.is_some() || outputs.is_some();
    let store = match args.store.unwrap_or(if aws {
        StoreKind::Dynamodb
    } else {
        StoreKind::Sqlite
    }) {
        StoreKind::Sqlite => StoreTarget::Sqlite {
            path: args.db.clone(),
        },
        StoreKind::Dynamodb => match &local {
            Some(r) => StoreTarget::Dynamo {
                records_table: r.records_table.clone(),
                state_table: r.state_table.clone(),
            },
            None => StoreTarget::Dynamo {
                records_table: stack_env.records_table.clone().ok_or(NO_TABLE)?,
                state_table: stack_env.state_table.clone().ok_or(NO_TABLE)?,
            },
        },
    };
    let queue = match args.queue.unwrap_or(if aws {
        QueueKind::Sqs
    } else {
        QueueKind::Embedded
    }) {
        QueueKind::Embedded => QueueTarget::Embedded {
            path: args.db.clone(),
        },
        QueueKind::Sqs => match &local {
            Some(r) => QueueTarget::Sqs {
                queue_url: r.queue_url.clone(),
                dead_letter_queue_url: Some(r.dead_letter_queue_url.clone()),
            },
            None => QueueTarget::Sqs {
                queue_url: stack_env.queue_url.clone().ok_or(NO_QUEUE)?,
                dead_letter_queue_url: stack_env.dead_letter_queue_url.clone(),
            },
        },
    };
    Ok(Settings {
        store,
        queue,
        sdk,
        vars,
        stack_outputs: outputs,
    })
}

impl Settings {
    /// Opens the store and the queue; with `MustExist`, a missing SQLite file is an error.
    pub fn open(self, db_file: DbFile) -> Result<Resolved, Box<dyn std::error::Error>> {
        if db_file == DbFile::MustExist {
            if let StoreTarget::Sqlite { path } = &self.store {
                must_exist(path, "the store")?;
            }
            if let QueueTarget::Embedded { path } = &self.queue {
                must_exist(path, "the embedded queue (or give --queue sqs)")?;
            }
        }
        let delete_mode = self.vars.read::<WorkerBehaviour>()?.delete_mode;
        let backends = Backends::open(&self.store, &self.queue, Some(&self.sdk), delete_mode)?;
        Ok(Resolved {
            backends,
            sdk: self.sdk,
            vars: self.vars,
            stack_outputs: self.stack_outputs,
            store_target: self.store,
            queue_target: self.queue,
        })
    }
}

/// An operator command's SQLite file, which it never creates.
pub fn must_exist(path: &std::path::Path, for_what: &str) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    let here = std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string());
    Err(format!(
        "no database at {} (in {here}) for {for_what}: give --db PATH or NANGO_SYNC_DB where `nango-sync serve` keeps it, or --stack NAME for a deployed stack",
        path.display()
    ))
}

const NO_TABLE: &str = "RECORDS_TABLE and STATE_TABLE must be set: --store dynamodb needs the tables' names (--stack NAME reads them from the stack's outputs), or --local-aws PREFIX";
const NO_QUEUE: &str = "QUEUE_URL is not set: --queue sqs needs the queue's URL (--stack NAME reads it from the stack's outputs), or --local-aws PREFIX";
const NO_API_KEY: &str = "NANGO_API_KEY is not set: the worker reads records from Nango with your environment's secret key (--stack NAME reads the stack's secret; or run `nango-sync demo` to try everything with a simulated Nango)";

/// The worker's Nango client and settings, from the command's variables.
pub async fn worker_parts(
    resolved: &Resolved,
) -> Result<(NangoClient, WorkerSettings), Box<dyn std::error::Error>> {
    let nango: NangoConfig = resolved.vars.read().map_err(|e| match e {
        ConfigError::Missing(vars::API_KEY) => NO_API_KEY.to_owned(),
        other => other.to_string(),
    })?;
    let behaviour: WorkerBehaviour = resolved.vars.read()?;
    Ok((
        setup::nango_client(&nango, &resolved.sdk).await?,
        setup::worker_settings(&behaviour),
    ))
}
