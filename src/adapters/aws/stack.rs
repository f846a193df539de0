//! Creates, on any endpoint (moto locally), the queues and tables template.yaml deploys, with the
//! same settings. `tests/it/template.rs` checks these constants against the template.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::adapters::aws::dynamodb::{create_records_table, create_table};
use crate::ports::{QueueError, StoreError, DEFAULT_MAX_RECEIVE_COUNT};

/// The ingest queue's attributes, as in template.yaml's `IngestQueue`.
pub const INGEST_QUEUE_ATTRIBUTES: &[(&str, &str)] = &[
    ("FifoQueue", "true"),
    ("ContentBasedDeduplication", "true"),
    ("DeduplicationScope", "messageGroup"),
    ("FifoThroughputLimit", "perMessageGroupId"),
    ("VisibilityTimeout", "1800"),
];
/// The dead-letter queue keeps jobs 14 days, as in template.yaml.
pub const DEAD_LETTER_RETENTION_SECONDS: u32 = 1_209_600;

fn queue_error<E, R>(e: aws_sdk_sqs::error::SdkError<E, R>) -> QueueError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    QueueError(
        aws_sdk_sqs::error::DisplayErrorContext(e)
            .to_string()
            .into(),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResources {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    pub records_table: String,
    pub state_table: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Table(#[from] StoreError),
}

/// Creates (or finds) `<prefix>-ingest.fifo`, `<prefix>-dlq.fifo`, `<prefix>-records` and
/// `<prefix>-state`.
pub async fn create(sdk: &SdkConfig, prefix: &str) -> Result<LocalResources, SetupError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DEAD_LETTER_RETENTION_SECONDS.to_string(),
        )
        .send()
        .await
        .map_err(queue_error)?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(queue_error)?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_default();
    let mut create = sqs
        .create_queue()
        .queue_name(format!("{prefix}-ingest.fifo"));
    for (name, value) in INGEST_QUEUE_ATTRIBUTES {
        create = create.attributes(QueueAttributeName::from(*name), *value);
    }
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": DEFAULT_MAX_RECEIVE_COUNT});
    let queue_url = create
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(queue_error)?
        .queue_url
        .unwrap_or_default();
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let records_table = format!("{prefix}-records");
    let state_table = format!("{prefix}-state");
    create_records_table(&dynamo, &records_table).await?;
    create_table(&dynamo, &state_table).await?;
    Ok(LocalResources {
        queue_url,
        dead_letter_queue_url: dlq_url,
        records_table,
        state_table,
    })
}
