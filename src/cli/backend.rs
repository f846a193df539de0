//! The backends a command uses, chosen by its flags: the embedded SQLite file, DynamoDB and SQS
//! named by the stack's outputs, or created on an endpoint with `--local-aws`.

use crate::adapters::aws::stack;
use crate::adapters::nango::NangoClient;
use crate::config::{vars, ConfigError, FromVars, NangoConfig, StackConfig, WorkerBehaviour};
use crate::core::worker::WorkerSettings;
use crate::local::backend::{Backends, QueueTarget, StoreTarget};
use crate::setup;

use super::args::{BackendArgs, QueueKind, StoreKind};

/// The backends chosen by the flags, and the AWS settings they were opened with.
pub struct Resolved {
    pub backends: Backends,
    pub sdk: aws_config::SdkConfig,
}

pub async fn resolve(args: &BackendArgs) -> Result<Resolved, Box<dyn std::error::Error>> {
    let stack_env = StackConfig::from_env()?;
    // The AWS configuration is loaded (region, credentials) only when something on AWS is used,
    // so the embedded backend runs without AWS settings and without their warnings.
    let uses_aws = args.local_aws.is_some()
        || args.store == Some(StoreKind::Dynamodb)
        || args.queue == Some(QueueKind::Sqs)
        || stack_env.reads_secrets;
    let sdk = if uses_aws {
        setup::aws_config().await
    } else {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    };
    let local = match &args.local_aws {
        Some(prefix) => Some(stack::create(&sdk, prefix).await.map_err(|e| {
            format!("--local-aws {prefix}: cannot create the queues and tables on AWS_ENDPOINT_URL: {e}")
        })?),
        None => None,
    };
    let aws = local.is_some();
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
    let hard_delete = WorkerBehaviour::from_env()?.hard_delete;
    let backends = Backends::open(&store, &queue, Some(&sdk), hard_delete)?;
    Ok(Resolved { backends, sdk })
}

const NO_TABLE: &str = "RECORDS_TABLE and STATE_TABLE must be set: --store dynamodb needs the tables' names (the stack's outputs), or --local-aws PREFIX";
const NO_QUEUE: &str = "QUEUE_URL is not set: --queue sqs needs the queue's URL (the stack's QueueUrl output), or --local-aws PREFIX";
const NO_API_KEY: &str = "NANGO_API_KEY is not set: the worker reads records from Nango with your environment's secret key (or run `nango-sync demo` to try everything with a simulated Nango)";

/// The worker's Nango client and settings, from the environment.
pub async fn worker_parts(
    resolved: &Resolved,
) -> Result<(NangoClient, WorkerSettings), Box<dyn std::error::Error>> {
    let nango = NangoConfig::from_env().map_err(|e| match e {
        ConfigError::Missing(vars::API_KEY) => NO_API_KEY.to_owned(),
        other => other.to_string(),
    })?;
    let behaviour = WorkerBehaviour::from_env()?;
    Ok((
        setup::nango_client(&nango, &resolved.sdk).await?,
        setup::worker_settings(&behaviour),
    ))
}
