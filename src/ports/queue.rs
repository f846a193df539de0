//! The job queue: where verified webhooks and follow-up jobs go, and how the worker takes them.

use std::future::Future;

/// Why the queue did not take a message. The webhook answers 503 so that Nango retries.
#[derive(Debug, thiserror::Error)]
#[error("queue refused the message: {0}")]
pub struct QueueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// One message ready for the FIFO queue: a job message, its group and its deduplication id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
}

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

/// A message taken off a queue, with the handle that acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub group_id: Option<String>,
}

/// Receives of a message before it moves to the dead-letter queue: template.yaml's
/// `MaxReceiveCount` default, which the embedded queue and the local stack use too.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// The consuming side of a job queue: SQS FIFO semantics (per-group order, redelivery of what
/// is not deleted, a dead-letter queue after too many receives).
pub trait JobConsumer: Send + Sync {
    /// Up to `max` (1..=10) messages, waiting at most `wait` for the first. A group whose earlier
    /// message is still in flight yields nothing.
    fn receive(
        &self,
        max: usize,
        wait: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<ReceivedMessage>, QueueError>> + Send;

    /// The message was handled: it is gone for good.
    fn delete(&self, receipt_handle: &str) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The message failed: it is delivered again later (SQS: once its visibility timeout ends).
    fn release(&self, receipt_handle: &str) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Implements [`JobQueue`] and [`JobConsumer`] for an enum of queues by handing every call to
/// the queue its variant holds: `forward_queue!(Queue { Queue::A(q) => q, ... });`.
#[cfg(feature = "local")]
macro_rules! forward_queue {
    ($ty:ty { $($variant:pat => $inner:ident),+ $(,)? }) => {
        impl $crate::ports::JobQueue for $ty {
            async fn send(
                &self,
                messages: &[$crate::ports::OutgoingMessage],
            ) -> Result<(), $crate::ports::QueueError> {
                match self { $($variant => $inner.send(messages).await),+ }
            }
        }

        impl $crate::ports::JobConsumer for $ty {
            async fn receive(
                &self,
                max: usize,
                wait: std::time::Duration,
            ) -> Result<Vec<$crate::ports::ReceivedMessage>, $crate::ports::QueueError> {
                match self { $($variant => $inner.receive(max, wait).await),+ }
            }

            async fn delete(&self, receipt_handle: &str) -> Result<(), $crate::ports::QueueError> {
                match self { $($variant => $inner.delete(receipt_handle).await),+ }
            }

            async fn release(&self, receipt_handle: &str) -> Result<(), $crate::ports::QueueError> {
                match self { $($variant => $inner.release(receipt_handle).await),+ }
            }
        }
    };
}
#[cfg(feature = "local")]
pub(crate) use forward_queue;
