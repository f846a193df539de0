//! Read your writes: once a write that names a record succeeded, a sync of that record's stream
//! is queued, so the copy shows the provider's new state soon after rather than at the next
//! webhook or reconcile.

use super::state::WriteState;
use super::stored::StoredWrite;
use crate::core::clock::Clock;
use crate::core::job::Trigger;
use crate::core::reconcile::{enqueue_syncs, SyncRequest};
use crate::core::stream::StreamKey;
use crate::ports::{JobQueue, QueueError, StateStore, StoreError, WriteSender};

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

/// Asks Nango to run the sync of `write`'s record and queues ours that reads it back, if the
/// write calls for one; whether it did. The sync's
/// name is the stream's as last stored (empty for a stream not synced yet: the sync names it).
/// Its deduplication id derives from the write's id, so a redelivered write queues it once.
pub async fn read_back(
    queue: &impl JobQueue,
    state: &impl StateStore,
    nango: &impl WriteSender,
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
    // Nango's records show the provider's new state only once its sync ran: it is asked to run
    // now, rather than at its schedule. Not asked (a stream never synced, whose sync is not
    // known), or refused, the sync below still runs and the next webhook brings the change.
    if sync_name.is_empty() {
        tracing::info!(write_id = %write.request.id, "no known sync for the write's record: Nango's schedule brings it");
    } else if let Err(why) = nango.trigger_sync(&stream, &sync_name).await {
        tracing::warn!(write_id = %write.request.id, why, "Nango's sync not triggered after the write; its schedule brings it");
    }
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
