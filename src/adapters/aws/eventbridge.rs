//! Stream events on EventBridge: one PutEvents entry per completed sync job, on the configured
//! bus, for applications to route with rules (`source: nango-sync`).

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::core::events::{StreamEvent, SOURCE};
use crate::ports::{EventPublisher, PublishError};

#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    /// Publishes on `bus` (a name or an ARN; `default` is the account's default bus).
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    async fn put(&self, event: &StreamEvent) -> Result<(), String> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(event.detail_type)
            .detail(event.detail.to_string())
            .build();
        let answer = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        // PutEvents answers 200 with per-entry failures.
        match answer.entries().first() {
            Some(entry) if entry.error_code().is_some() => Err(format!(
                "{}: {}",
                entry.error_code().unwrap_or_default(),
                entry.error_message().unwrap_or_default()
            )),
            _ if answer.failed_entry_count() > 0 => Err("the event was not accepted".into()),
            _ => Ok(()),
        }
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, event: &StreamEvent) -> Result<(), PublishError> {
        self.put(event).await.map_err(PublishError)
    }
}
