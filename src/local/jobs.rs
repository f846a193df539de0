//! Runs the worker on a queue's messages outside Lambda, as the SQS event source does: a batch
//! in, the failed ones released for redelivery, the others deleted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::core::worker::WorkerApp;
use crate::ports::{
    JobConsumer, JobQueue, QueueError, RecordSource, RecordStore, StateStore, StreamDiscovery,
    WriteSender, WriteStore,
};

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub jobs: u64,
    pub failed: u64,
}

/// How long each batch may run, as the deployed worker's timeout allows.
pub const BATCH_TIME: Duration = Duration::from_secs(300);

/// Takes batches off `consumer` and runs them until `stop` is set or, with `until_empty`, the
/// queue has nothing to deliver.
pub async fn run_jobs<C, S, R, T, Q>(
    consumer: &C,
    app: &WorkerApp<S, R, T, Q>,
    until_empty: bool,
    stop: &AtomicBool,
) -> Result<RunTotals, QueueError>
where
    C: JobConsumer,
    S: RecordSource + StreamDiscovery + WriteSender,
    R: RecordStore,
    T: StateStore + WriteStore,
    Q: JobQueue,
{
    let mut totals = RunTotals::default();
    while !stop.load(Ordering::SeqCst) {
        let batch = consumer.receive(10, Duration::from_secs(1)).await?;
        if batch.is_empty() {
            if until_empty {
                break;
            }
            continue;
        }
        let failed = app.handle(&batch, Some(Instant::now() + BATCH_TIME)).await;
        for message in &batch {
            totals.jobs += 1;
            if failed.contains(&message.message_id) {
                totals.failed += 1;
                consumer.release(&message.receipt_handle).await?;
            } else {
                consumer.delete(&message.receipt_handle).await?;
            }
        }
    }
    Ok(totals)
}
