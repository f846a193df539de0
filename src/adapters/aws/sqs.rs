//! The job queue over Amazon SQS (FIFO).

use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;

use crate::ports::OutgoingMessage;
pub use crate::ports::ReceivedMessage;
use crate::ports::{JobConsumer, JobQueue, QueueError};

/// A FIFO queue reached through the AWS SDK; the client is built once and shared.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The messages in the queue, visible or in flight (SQS's approximate counts).
    pub async fn approximate_depth(&self) -> Result<u64, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(out
            .attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0))
    }

    /// Creates (or finds) a FIFO queue by name and returns a handle on it. For local set-ups and
    /// tests; deployed stacks get their queues from template.yaml.
    pub async fn create_fifo(client: Client, name: &str) -> Result<Self, QueueError> {
        let out = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        let url = out
            .queue_url
            .ok_or_else(|| QueueError("CreateQueue returned no queue URL".into()))?;
        Ok(Self::new(client, url))
    }
}

impl JobConsumer for SqsQueue {
    async fn receive(
        &self,
        max: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
            )
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| ReceivedMessage {
                group_id: m
                    .attributes
                    .as_ref()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                    })
                    .cloned(),
                message_id: m.message_id.unwrap_or_default(),
                receipt_handle: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(())
    }

    /// Left for the queue's visibility timeout to bring back, as Lambda's event source does.
    async fn release(&self, _receipt_handle: &str) -> Result<(), QueueError> {
        Ok(())
    }
}

impl JobQueue for SqsQueue {
    #[tracing::instrument(skip_all, fields(messages = messages.len()))]
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        // One at a time keeps them in order within their groups; a webhook yields few messages.
        for message in messages {
            let sent = self
                .client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(&message.body)
                .message_group_id(&message.group_id)
                .message_deduplication_id(&message.dedup_id)
                .send()
                .await
                .map_err(|e| QueueError(Box::new(e)))?;
            // The worker's job span carries the same MessageId: a webhook can be followed to
            // its job. (A duplicate SQS dropped in its 5-minute window gets the first's id.)
            tracing::info!(
                message_id = sent.message_id().unwrap_or_default(),
                group_id = %message.group_id,
                "job enqueued"
            );
        }
        Ok(())
    }
}
