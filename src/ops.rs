//! Operator actions shared by the CLI (and usable from any tool): sync now, reset a cursor,
//! replay the dead-letter queue.

use crate::job::{messages_for, now_rfc3339, Job, OutgoingMessage, Trigger};
use crate::ports::{JobConsumer, JobQueue, QueueError};
use crate::stream::{digest_hex, StreamKey};

/// A sync to enqueue: the stream, the sync that feeds it, and Nango's `recordCount` if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub stream: StreamKey,
    pub sync_name: String,
    pub record_count: Option<u64>,
}

impl SyncRequest {
    pub fn new(stream: StreamKey, sync_name: impl Into<String>) -> Self {
        Self {
            stream,
            sync_name: sync_name.into(),
            record_count: None,
        }
    }
}

/// Enqueues a sync job for each request, each in its stream's group, and returns how many. `run`
/// names this batch (e.g. the reconcile's scheduled time): the deduplication ids derive from it,
/// so sending the same batch again within SQS's window enqueues nothing new.
pub async fn enqueue_syncs<Q: JobQueue>(
    queue: &Q,
    requests: Vec<SyncRequest>,
    trigger: Trigger,
    run: &str,
) -> Result<usize, QueueError> {
    let jobs: Vec<Job> = requests
        .into_iter()
        .map(|r| Job::Sync {
            stream: r.stream,
            sync_name: r.sync_name,
            sync_type: None,
            modified_after: None,
            results: None,
            trigger,
            record_count: r.record_count,
        })
        .collect();
    let count = jobs.len();
    let marker = format!("{trigger:?} {run}");
    for chunk in messages_for(marker.as_bytes(), jobs, &now_rfc3339()).chunks(100) {
        queue.send(chunk).await?;
    }
    Ok(count)
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
