//! Over the wire: the SQS adapter and the handler against moto's server (FIFO queue).

use lambda_http::http::StatusCode;
use nango_sync::adapters::aws::sqs::SqsQueue;
use nango_sync::config::DEFAULT_MAX_BODY_BYTES;
use nango_sync::core::job::{Job, JobMessage};
use nango_sync::core::webhook::WebhookApp;

use crate::common::{drain, moto_sdk_config, read, test_verifier, unique_name};

async fn fifo_queue() -> SqsQueue {
    let sdk = moto_sdk_config().await;
    let name = format!("{}.fifo", unique_name("ingest"));
    SqsQueue::create_fifo(aws_sdk_sqs::Client::new(&sdk), &name)
        .await
        .expect("moto creates a FIFO queue")
}

#[tokio::test]
async fn same_webhook_twice_yields_one_message() {
    let app = WebhookApp::new(test_verifier(), fifo_queue().await, DEFAULT_MAX_BODY_BYTES);
    let event = read("events/webhook-sync-success.json");
    for _ in 0..2 {
        let response =
            nango_sync::lambda::webhook(&app, lambda_http::request::from_str(&event).unwrap())
                .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let messages = drain(app.queue()).await;
    assert_eq!(
        messages.len(),
        1,
        "FIFO deduplication should collapse the retry"
    );
    let job = JobMessage::decode(&messages[0].body).unwrap();
    let Job::Sync { stream, .. } = job.job else {
        panic!("not a sync job")
    };
    assert_eq!(
        messages[0].group_id.as_deref(),
        Some(stream.message_group_id().as_str())
    );
}

#[tokio::test]
async fn multi_model_failure_lands_as_one_message_per_stream() {
    let app = WebhookApp::new(test_verifier(), fifo_queue().await, DEFAULT_MAX_BODY_BYTES);
    let event = read("events/webhook-sync-failure.json");
    let response =
        nango_sync::lambda::webhook(&app, lambda_http::request::from_str(&event).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let messages = drain(app.queue()).await;
    let mut models: Vec<String> = messages
        .iter()
        .map(|m| match JobMessage::decode(&m.body).unwrap().job {
            Job::SyncFailed { stream, .. } => stream.model,
            other => panic!("{other:?}"),
        })
        .collect();
    models.sort();
    assert_eq!(models, ["Company", "Contact"]);
}

#[tokio::test]
async fn rejected_requests_enqueue_nothing() {
    let app = WebhookApp::new(test_verifier(), fifo_queue().await, DEFAULT_MAX_BODY_BYTES);
    for file in [
        "webhook-bad-signature.json",
        "webhook-missing-signature.json",
        "webhook-not-json.json",
    ] {
        let response = nango_sync::lambda::webhook(
            &app,
            lambda_http::request::from_str(&read(&format!("events/{file}"))).unwrap(),
        )
        .await;
        assert!(response.status().is_client_error(), "{file}");
    }
    assert!(drain(app.queue()).await.is_empty());
}

#[tokio::test]
async fn unreachable_queue_is_503() {
    let sdk = moto_sdk_config().await;
    let missing = SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        format!(
            "{}/123456789012/{}.fifo",
            crate::common::moto_endpoint(),
            unique_name("missing")
        ),
    );
    let app = WebhookApp::new(test_verifier(), missing, DEFAULT_MAX_BODY_BYTES);
    let event = read("events/webhook-sync-success.json");
    let response =
        nango_sync::lambda::webhook(&app, lambda_http::request::from_str(&event).unwrap()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
