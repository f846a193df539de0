//! The queues: the dead-letter queue replayed, the jobs drained.

use super::args::{DrainArgs, ReplayArgs};
use super::backend::{resolve, DbFile};
use super::{confirm, report, CliResult};
use crate::local::ops;
use crate::ports::{JobConsumer, ReceivedMessage};

pub async fn replay(args: ReplayArgs) -> CliResult {
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
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
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let queue = &resolved.backends.queue;
    let waiting = queue.depth().await?;
    if waiting == 0 {
        eprintln!("0 message(s) taken off the queue (it is empty)");
        return Ok(());
    }
    confirm(
        args.yes,
        &format!(
            "drain takes up to {} of the {waiting} job(s) off {} and deletes them (they will not run)",
            args.max,
            resolved.queue_target
        ),
    )?;
    let mut taken = 0;
    while taken < args.max {
        let batch = queue
            .receive((args.max - taken).min(10), std::time::Duration::ZERO)
            .await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            if args.json {
                println!("{}", drained_json(&message));
            } else {
                println!("{}", message.body);
            }
            queue.delete(&message.receipt_handle).await?;
            taken += 1;
        }
    }
    eprintln!("{taken} message(s) taken off the queue");
    Ok(())
}

/// One drained message for `--json`: the body as JSON when it is (a job message always is),
/// else as a string, so every line parses.
fn drained_json(message: &ReceivedMessage) -> serde_json::Value {
    let job = serde_json::from_str(&message.body)
        .unwrap_or_else(|_| serde_json::Value::String(message.body.clone()));
    serde_json::json!({
        "message_id": message.message_id,
        "group_id": message.group_id,
        "job": job,
    })
}
