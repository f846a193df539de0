//! What the worker and the webhook tell the world: events for applications, figures for
//! operators.

use std::future::Future;

use futures_util::future::BoxFuture;

use crate::core::events::StreamEvent;
use crate::core::metrics::{JobMetrics, WebhookAnswer};

/// Why an event was not published. It never fails the sync: the worker logs it and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event not published: {0}")]
pub struct PublishError(pub String);

/// Where a completed sync job's event goes (on Lambda: EventBridge).
pub trait EventPublisher: Send + Sync + std::fmt::Debug {
    fn publish(&self, event: &StreamEvent)
        -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// [`EventPublisher`] as a trait object, for settings chosen at run time. Every publisher is one.
pub trait DynEventPublisher: Send + Sync + std::fmt::Debug {
    fn publish_boxed<'a>(
        &'a self,
        event: &'a StreamEvent,
    ) -> BoxFuture<'a, Result<(), PublishError>>;
}

impl<P: EventPublisher> DynEventPublisher for P {
    fn publish_boxed<'a>(
        &'a self,
        event: &'a StreamEvent,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(self.publish(event))
    }
}

/// Where each job's figures go once it ends, and each webhook's answer (on Lambda: CloudWatch
/// metrics, as EMF log lines).
pub trait MetricsSink: Send + Sync + std::fmt::Debug {
    fn job_done(&self, job: &JobMetrics);
    fn webhook_answered(&self, answer: WebhookAnswer);
}
