//! Read your writes: once a write that names a record succeeded, a sync of that record's stream
//! is queued, so the copy shows the provider's new state soon after rather than at the next
//! webhook or reconcile.

use super::state::WriteState;
use super::stored::StoredWrite;
use crate::core::clock::Clock;
use crate::core::job::Trigger;
use crate::core::reconcile::{enqueue_syncs, SyncRequest};
use crate::core::stream::StreamKey;
use crate::ports::{JobQueue, QueueError, StateStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not queue the sync that reads the write back: {0}")]
    Enqueue(#[from] QueueError),
}

/// The stream whose sync follows `write`: the record's, once the write succeeded.
pub fn stream_to_read_back(write: &StoredWrite) -> Option<StreamKey> {
    let record = write.request.record.as_ref()?;
    (write.position.state == WriteState::Succeeded).then(|| {
        StreamKey::new(
            write.request.provider_config_key.clone(),
            write.request.connection_id.clone(),
            record.model.clone(),
            record.variant.clone(),
        )
    })
}

/// Queues the sync that reads `write` back, if it calls for one; whether it did. The sync's
/// name is the stream's as last stored (empty for a stream not synced yet: the sync names it).
/// Its deduplication id derives from the write's id, so a redelivered write queues it once.
pub async fn read_back(
    queue: &impl JobQueue,
    state: &impl StateStore,
    clock: &dyn Clock,
    write: &StoredWrite,
) -> Result<bool, FollowError> {
    let Some(stream) = stream_to_read_back(write) else {
        return Ok(false);
    };
    let sync_name = state
        .get_stream(&stream)
        .await?
        .and_then(|s| s.sync_name)
        .unwrap_or_default();
    let request = SyncRequest::new(stream, sync_name);
    enqueue_syncs(
        queue,
        vec![request],
        Trigger::Write,
        &write.request.id,
        clock,
    )
    .await?;
    Ok(true)
}
