//! Ports: the small traits the core talks through. Adapters implement them.

use std::future::Future;

use crate::job::OutgoingMessage;

/// Why the queue did not take a message. The webhook answers 503 so that Nango retries.
#[derive(Debug, thiserror::Error)]
#[error("queue refused the message: {0}")]
pub struct QueueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where verified webhooks go: a FIFO job queue.
pub trait JobQueue: Send + Sync {
    /// Sends the messages in order; returns only once every one of them was accepted.
    fn send(
        &self,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl<Q: JobQueue> JobQueue for &Q {
    fn send(
        &self,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        (**self).send(messages)
    }
}
