//! The composition root shared by the binaries: config in, ready-to-serve apps out.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};

use crate::adapters::aws::dynamodb::{DynamoRecordStore, DynamoStateStore, WriteSettings};
use crate::adapters::aws::emf::EmfMetrics;
use crate::adapters::aws::eventbridge::EventBridgePublisher;
use crate::adapters::aws::secrets::{fetch_plain, fetch_signing_keys, SecretError};
use crate::adapters::aws::sqs::SqsQueue;
use crate::adapters::nango::{NangoClient, DEFAULT_RETRY};
use crate::config::{
    ApiKeySource, NangoConfig, OutboxConfig, SigningConfig, SigningKeySource, WebhookConfig,
    WorkerBehaviour, WorkerConfig,
};
use crate::core::rotation::{Reread, RotatingSecret};
use crate::core::signature::{SigningKey, Verifier};
use crate::core::webhook::WebhookApp;
use crate::core::worker::{WorkerApp, WorkerSettings};
use crate::ports::DynEventPublisher;

/// The AWS SDK behaviour this code was tested with: a dated version, as the SDK advises for
/// services (`latest()` would change retries and timeouts under a deployed function on an SDK
/// upgrade). Every client of the project's, its tests' and its benchmarks' uses this one.
pub fn behavior_version() -> BehaviorVersion {
    BehaviorVersion::v2026_01_12()
}

/// AWS settings from the environment; `AWS_ENDPOINT_URL(_SQS)` points the SDK at a local emulator.
pub async fn aws_config() -> SdkConfig {
    aws_config_in(None).await
}

/// The same, in `region` when one is given (the CLI's `--region`).
pub async fn aws_config_in(region: Option<String>) -> SdkConfig {
    let loader = aws_config::defaults(behavior_version());
    match region {
        Some(region) => loader.region(aws_config::Region::new(region)).load().await,
        None => loader.load().await,
    }
}

/// Builds the verifier from wherever the keys live: fixed keys from the environment, or keys
/// from Secrets Manager, read again when a signature matches none of them (a rotation).
pub async fn verifier(
    config: &SigningConfig,
    sdk: &SdkConfig,
) -> Result<RotatingSecret<Verifier>, SecretError> {
    let accept_legacy = config.accept_legacy_signature;
    let verifier = move |(current, previous): (SigningKey, Option<SigningKey>)| {
        Verifier::new(current, previous).accept_legacy(accept_legacy)
    };
    match &config.signing_keys {
        SigningKeySource::Env { current, previous } => Ok(RotatingSecret::fixed(verifier((
            SigningKey::new(current.as_bytes()),
            previous.as_ref().map(|p| SigningKey::new(p.as_bytes())),
        )))),
        SigningKeySource::SecretsManager { secret_id } => {
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            let first = verifier(fetch_signing_keys(&client, secret_id).await?);
            let reread = reread_from(client, secret_id, move |client, id| async move {
                fetch_signing_keys(&client, &id).await.map(verifier)
            });
            Ok(RotatingSecret::reread(
                first,
                "webhook signing key",
                config.reread,
                reread,
            ))
        }
    }
}

/// The webhook function as deployed: verifier, the SQS queue named by `QUEUE_URL`, and its
/// metrics as EMF lines.
pub async fn webhook_app(
    config: &WebhookConfig,
    sdk: &SdkConfig,
) -> Result<WebhookApp<SqsQueue>, SecretError> {
    let verifier = verifier(&config.signing, sdk).await?;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url);
    let metrics = EmfMetrics {
        namespace: config.metrics_namespace.clone(),
        function: config.function_name.clone(),
    };
    Ok(
        WebhookApp::new(verifier, queue, config.signing.max_body_bytes)
            .with_metrics(Arc::new(metrics)),
    )
}

/// The outbox function's queue: the SQS queue named by `QUEUE_URL`.
pub fn outbox_queue(config: &OutboxConfig, sdk: &SdkConfig) -> SqsQueue {
    SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url)
}

/// The worker as deployed: Nango over HTTPS, DynamoDB tables, the SQS queue for continuations.
pub type DeployedWorker = WorkerApp<NangoClient, DynamoRecordStore, DynamoStateStore, SqsQueue>;

pub async fn worker_app(
    config: &WorkerConfig,
    sdk: &SdkConfig,
) -> Result<DeployedWorker, SecretError> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let write = WriteSettings {
        concurrency: config.behaviour.write_concurrency,
        delete_mode: config.behaviour.delete_mode,
        ..WriteSettings::default()
    };
    Ok(WorkerApp {
        source: nango_client(&config.nango, sdk).await?,
        records: DynamoRecordStore::new(dynamo.clone(), &config.records_table, write),
        state: DynamoStateStore::new(dynamo, &config.state_table),
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url),
        settings: WorkerSettings {
            metrics: Some(Arc::new(EmfMetrics {
                namespace: config.metrics_namespace.clone(),
                function: config.function_name.clone(),
            })),
            events: config.event_bus.as_ref().map(|bus| {
                let client = aws_sdk_eventbridge::Client::new(sdk);
                Arc::new(EventBridgePublisher::new(client, bus)) as Arc<dyn DynEventPublisher>
            }),
            ..worker_settings(&config.behaviour)
        },
    })
}

/// The records API client, with the key from wherever it lives: from Secrets Manager, it is
/// read again on a 401 from Nango (a rotated key) and on a TTL.
pub async fn nango_client(
    config: &NangoConfig,
    sdk: &SdkConfig,
) -> Result<NangoClient, SecretError> {
    let api_key = match &config.api_key {
        ApiKeySource::Env(key) => RotatingSecret::fixed(key.clone()),
        ApiKeySource::SecretsManager { secret_id } => {
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            let first = fetch_plain(&client, secret_id).await?;
            let reread = reread_from(client, secret_id, |client, id| async move {
                fetch_plain(&client, &id).await
            });
            RotatingSecret::reread(first, "Nango API key", config.reread, reread)
        }
    };
    Ok(
        NangoClient::new(&config.base_url, "", config.page_limit, DEFAULT_RETRY)
            .with_api_key(api_key)
            .with_discovery_rate(config.discovery_requests_per_minute)
            .with_write_share(config.write_share_percent)
            .with_page_budget(crate::core::page_budget::PageBudget::new(
                config.page_budget_mib << 20,
            )),
    )
}

/// How a secret is read again: `read` with a client and the secret's id, its error a sentence.
fn reread_from<T, F, R>(
    client: aws_sdk_secretsmanager::Client,
    secret_id: &str,
    read: F,
) -> Reread<T>
where
    F: Fn(aws_sdk_secretsmanager::Client, String) -> R + Send + Sync + 'static,
    R: std::future::Future<Output = Result<T, SecretError>> + Send + 'static,
    T: 'static,
{
    let secret_id = secret_id.to_owned();
    Box::new(move || {
        let read = read(client.clone(), secret_id.clone());
        Box::pin(async move { read.await.map_err(|e| e.to_string()) })
    })
}

pub fn worker_settings(config: &WorkerBehaviour) -> WorkerSettings {
    WorkerSettings {
        deadline_margin: Duration::from_secs(config.deadline_margin_seconds),
        drift: crate::core::drift::DriftSettings {
            enabled: config.drift_check,
            guard: crate::core::drift::SweepGuard {
                max_deletes: config.sweep_max_deletes,
                max_delete_fraction: config.sweep_max_delete_fraction,
            },
        },
        connection_deleted: config.connection_deleted,
        metrics: None,
        events: None,
        clock: crate::core::clock::system(),
        streams_at_once: config.streams_at_once,
        writes: crate::core::writes::take::TakeSettings::default(),
    }
}

/// For the binaries' cold start: on error, log it plainly (the variable or secret it names) and
/// exit, so the Lambda init fails at once instead of on every invocation.
pub fn or_exit<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => {
            tracing::error!(%error, "cold start failed");
            eprintln!("nango-sync: cold start failed: {error}");
            std::process::exit(1);
        }
    }
}
