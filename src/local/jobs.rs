//! Runs the worker's handler on a queue's messages outside Lambda, as the SQS event source does:
//! a batch in, the handler's `batchItemFailures` out, the others deleted, the failed ones
//! released for redelivery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::adapters::aws::sqs::as_lambda_event;
use crate::core::worker::WorkerApp;
use crate::ports::{
    JobConsumer, JobQueue, QueueError, RecordSource, RecordStore, StateStore, StreamDiscovery,
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
    S: RecordSource + StreamDiscovery,
    R: RecordStore,
    T: StateStore,
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
        let response = app
            .handle(as_lambda_event(&batch), Some(Instant::now() + BATCH_TIME))
            .await;
        for message in &batch {
            totals.jobs += 1;
            let failed = response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == message.message_id);
            if failed {
                totals.failed += 1;
                consumer.release(&message.receipt_handle).await?;
            } else {
                consumer.delete(&message.receipt_handle).await?;
            }
        }
    }
    Ok(totals)
}
