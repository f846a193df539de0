//! Lambda: Nango's webhooks in (Function URL / HTTP API), verified jobs onto the SQS FIFO queue.

use lambda_http::{run, service_fn, Error, Request};
use nango_sync::config::{FromVars, WebhookConfig};
use nango_sync::{lambda, setup, telemetry};

// One thread: Lambda gives the function one or two vCPUs, and the work is waiting on I/O.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = setup::or_exit(WebhookConfig::from_env());
    let sdk = setup::aws_config().await;
    let app = setup::or_exit(setup::webhook_app(&config, &sdk).await);
    let app = &app;
    run(service_fn(move |request: Request| async move {
        Ok::<_, std::convert::Infallible>(lambda::webhook(app, request).await)
    }))
    .await
}
