//! Lambda: SQS FIFO batches in, records and cursors into DynamoDB, partial batch failures out.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use nango_sync::config::{FromVars, WorkerConfig};
use nango_sync::{lambda, setup, telemetry};

// One thread: Lambda gives the function one or two vCPUs, and the work is waiting on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = setup::or_exit(WorkerConfig::from_env());
    let sdk = setup::aws_config().await;
    let app = setup::or_exit(setup::worker_app(&config, &sdk).await);
    let app = &app;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = lambda::deadline(event.context.deadline);
        Ok::<_, std::convert::Infallible>(lambda::worker(app, event.payload, Some(deadline)).await)
    }))
    .await
}
