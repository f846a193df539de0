//! Operator actions shared by the CLI (and usable from any tool): reconcile now, replay the
//! dead-letter queue. (A held sweep is decided by `core::drift::decide_held`, a connection
//! forgotten by `core::connection::forget_connection`.)

use crate::core::job::{now_rfc3339, reconcile_message};
use crate::core::stream::digest_hex;
use crate::ports::OutgoingMessage;
use crate::ports::{JobConsumer, JobQueue, QueueError};

/// Enqueues a reconcile of every stream now, as the schedule does; returns the run's time.
pub async fn reconcile_now<Q: JobQueue>(queue: &Q) -> Result<String, QueueError> {
    let at = now_rfc3339();
    queue.send(&[reconcile_message(&at)]).await?;
    Ok(at)
}

/// Moves up to `max` messages from the dead-letter queue back to the ingest queue, in their
/// original groups, deleting each from the DLQ only once the ingest queue has accepted it.
pub async fn replay_dead_letters<D: JobConsumer, Q: JobQueue>(
    dead_letters: &D,
    queue: &Q,
    max: usize,
) -> Result<usize, QueueError> {
    let mut moved = 0;
    while moved < max {
        let batch = dead_letters.receive(10, std::time::Duration::ZERO).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            let outgoing = OutgoingMessage {
                group_id: message
                    .group_id
                    .clone()
                    .unwrap_or_else(|| "replay".to_owned()),
                // New to the ingest queue's deduplication window, stable across a retried replay.
                dedup_id: digest_hex(format!("replay {}", message.message_id).as_bytes()),
                body: message.body.clone(),
            };
            queue.send(std::slice::from_ref(&outgoing)).await?;
            dead_letters.delete(&message.receipt_handle).await?;
            moved += 1;
        }
    }
    Ok(moved)
}
