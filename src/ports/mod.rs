//! Ports: the traits the core talks through, one file per concern. Adapters implement them.
//!
//! A port knows only the model (`core::state`, `core::record`, `core::stream`, the data of events
//! and metrics) and never a use case (the worker, the sync, the reconcile). Every async method
//! returns `impl Future + Send`, and every port has its own error type.

mod observe;
mod queue;
mod source;
mod store;
mod writes;

pub use observe::{DynEventPublisher, EventPublisher, MetricsSink, PublishError};
pub use queue::{
    JobConsumer, JobQueue, OutgoingMessage, QueueError, ReceivedMessage, DEFAULT_MAX_RECEIVE_COUNT,
};
pub use source::{PermanentReason, RecordSource, SourceError, StreamDiscovery, MAX_IDS};
pub use store::{Cause, RecordStore, StateStore, StoreError};
pub use writes::{WriteSender, WriteStore};
#[cfg(feature = "local")]
pub(crate) use {
    queue::forward_queue,
    store::{forward_record_store, forward_state_store},
    writes::forward_write_store,
};
