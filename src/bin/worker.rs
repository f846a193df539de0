//! Lambda: SQS FIFO batches in, records and cursors into DynamoDB, partial batch failures out.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use nango_sync::config::{FromVars, WorkerConfig};
use nango_sync::{setup, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = setup::or_exit(WorkerConfig::from_env());
    let sdk = setup::aws_config().await;
    let app = setup::or_exit(setup::worker_app(&config, &sdk).await);
    let app = &app;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = instant_of(event.context.deadline);
        Ok::<_, std::convert::Infallible>(app.handle(event.payload, Some(deadline)).await)
    }))
    .await
}

/// The invocation deadline (milliseconds since the epoch) as an `Instant`.
fn instant_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
