//! The composition root shared by the binaries: config in, ready-to-serve apps out.

use aws_config::{BehaviorVersion, SdkConfig};

use crate::adapters::secrets::{fetch_signing_keys, SecretError};
use crate::adapters::sqs::SqsQueue;
use crate::config::{SigningKeySource, WebhookConfig};
use crate::signature::{SigningKey, Verifier};
use crate::webhook::WebhookApp;

/// AWS settings from the environment; `AWS_ENDPOINT_URL(_SQS)` points the SDK at a local emulator.
pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Builds the verifier from wherever the keys live.
pub async fn verifier(config: &WebhookConfig, sdk: &SdkConfig) -> Result<Verifier, SecretError> {
    let (current, previous) = match &config.signing_keys {
        SigningKeySource::Env { current, previous } => (
            SigningKey::new(current.as_bytes()),
            previous.as_ref().map(|p| SigningKey::new(p.as_bytes())),
        ),
        SigningKeySource::SecretsManager { secret_id } => {
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            fetch_signing_keys(&client, secret_id).await?
        }
    };
    Ok(Verifier::new(current, previous).accept_legacy(config.accept_legacy_signature))
}

/// The webhook function as deployed: verifier plus the SQS queue named by `QUEUE_URL`.
pub async fn webhook_app(
    config: &WebhookConfig,
    sdk: &SdkConfig,
) -> Result<WebhookApp<SqsQueue>, SecretError> {
    let verifier = verifier(config, sdk).await?;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url);
    Ok(WebhookApp::new(verifier, queue, config.max_body_bytes))
}
