//! The queues: the dead-letter queue replayed, the jobs drained.

use super::args::{DrainArgs, ReplayArgs};
use super::backend::resolve;
use super::{report, CliResult};
use crate::local::ops;
use crate::ports::JobConsumer;

pub async fn replay(args: ReplayArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let dead = resolved.backends.dead_letters.as_ref().ok_or(
        "DEAD_LETTER_QUEUE_URL is not set: give the stack's DeadLetterQueueUrl output (or --local-aws PREFIX)",
    )?;
    let moved = ops::replay_dead_letters(dead, &resolved.backends.queue, args.max).await?;
    report(
        args.json,
        serde_json::json!({"moved": moved}),
        &format!("{moved} job(s) moved back to the ingest queue"),
    );
    Ok(())
}

pub async fn drain(args: DrainArgs) -> CliResult {
    let resolved = resolve(&args.backend).await?;
    let queue = &resolved.backends.queue;
    let mut taken = 0;
    while taken < args.max {
        let batch = queue
            .receive((args.max - taken).min(10), std::time::Duration::ZERO)
            .await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            println!("{}", message.body);
            queue.delete(&message.receipt_handle).await?;
            taken += 1;
        }
    }
    eprintln!("{taken} message(s) taken off the queue");
    Ok(())
}
