//! Lambda: an outbox table's stream in (DynamoDB Streams), each new item's write request onto the
//! SQS FIFO queue the worker takes writes from; partial batch failures out.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use nango_sync::config::{FromVars, OutboxConfig};
use nango_sync::lambda::{self, OutboxEvent};
use nango_sync::{setup, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = setup::or_exit(OutboxConfig::from_env());
    let sdk = setup::aws_config().await;
    let queue = setup::outbox_queue(&config, &sdk);
    let queue = &queue;
    run(service_fn(
        move |event: LambdaEvent<OutboxEvent>| async move {
            Ok::<_, std::convert::Infallible>(lambda::outbox(queue, event.payload).await)
        },
    ))
    .await
}
