//! Every sample in events/ is a real Lambda envelope: it parses as one, and the handler gives it the
//! status it is documented to get.

use lambda_http::http::StatusCode;
use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::config::DEFAULT_MAX_BODY_BYTES;
use nango_sync::core::job::{Job, JobMessage};
use nango_sync::core::webhook::WebhookApp;

use crate::common::{read, repo_path, test_verifier};

/// (file, status, messages enqueued) for every webhook-*.json file, from events/expected.json:
/// the one list of what each sample gets, which scripts/invoke-samples.sh checks too.
pub fn expected_webhooks() -> Vec<(String, StatusCode, usize)> {
    let expected: serde_json::Value = serde_json::from_str(&read("events/expected.json")).unwrap();
    expected
        .as_object()
        .unwrap()
        .iter()
        .filter(|(file, _)| file.starts_with("webhook-"))
        .map(|(file, e)| {
            let status = StatusCode::from_u16(e["status"].as_u64().unwrap() as u16).unwrap();
            (file.clone(), status, e["jobs"].as_u64().unwrap() as usize)
        })
        .collect()
}

/// The message ids events/sqs-batch.json's answer reports failed.
pub fn expected_batch_failures() -> Vec<String> {
    let expected: serde_json::Value = serde_json::from_str(&read("events/expected.json")).unwrap();
    serde_json::from_value(expected["sqs-batch.json"]["batchItemFailures"].clone()).unwrap()
}

fn webhook_event_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_path("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("webhook-") && n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_webhook_event_is_listed() {
    let files = webhook_event_files();
    let expected = expected_webhooks();
    assert_eq!(files.len(), expected.len(), "{files:?}");
    for file in &files {
        assert!(
            expected.iter().any(|(name, ..)| name == file),
            "events/{file} has no expected status in events/expected.json"
        );
    }
}

#[tokio::test]
async fn every_webhook_event_gets_its_status() {
    for (file, status, messages) in &expected_webhooks() {
        let request = lambda_http::request::from_str(&read(&format!("events/{file}")))
            .unwrap_or_else(|e| panic!("events/{file} is not a Lambda HTTP event: {e}"));
        let app = WebhookApp::new(test_verifier(), MemoryQueue::new(), DEFAULT_MAX_BODY_BYTES);
        let response = nango_sync::lambda::webhook(&app, request).await;
        assert_eq!(response.status(), *status, "{file}");
        let sent = app.queue().sent();
        assert_eq!(sent.len(), *messages, "{file}");
        for message in sent {
            JobMessage::decode(&message.body).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        let body = std::str::from_utf8(response.body().as_ref()).unwrap();
        assert!(
            body.len() < 64 && serde_json::from_str::<serde_json::Value>(body).is_ok(),
            "{file}: {body}"
        );
    }
}

#[tokio::test]
async fn sync_success_event_becomes_a_sync_job_for_its_stream() {
    let request =
        lambda_http::request::from_str(&read("events/webhook-sync-success.json")).unwrap();
    let app = WebhookApp::new(test_verifier(), MemoryQueue::new(), DEFAULT_MAX_BODY_BYTES);
    assert_eq!(
        nango_sync::lambda::webhook(&app, request).await.status(),
        StatusCode::OK
    );
    let [message] = app.queue().sent().try_into().unwrap();
    let Job::Sync {
        stream, sync_name, ..
    } = JobMessage::decode(&message.body).unwrap().job
    else {
        panic!("not a sync job")
    };
    assert_eq!(stream.encode(), "hubspot|user-42|Contact|base");
    assert_eq!(sync_name, "contacts");
    assert_eq!(message.group_id, stream.message_group_id());
}

#[tokio::test]
async fn a_sync_webhook_naming_no_connection_is_kept_as_an_event() {
    let request =
        lambda_http::request::from_str(&read("events/webhook-sync-empty-connection.json")).unwrap();
    let app = WebhookApp::new(test_verifier(), MemoryQueue::new(), DEFAULT_MAX_BODY_BYTES);
    assert_eq!(
        nango_sync::lambda::webhook(&app, request).await.status(),
        StatusCode::OK
    );
    let [message] = app.queue().sent().try_into().unwrap();
    let job = JobMessage::decode(&message.body).unwrap().job;
    assert!(
        matches!(&job, Job::Event { kind, .. } if kind == "sync"),
        "{job:?}"
    );
}

#[tokio::test]
async fn queue_failure_is_503_and_a_retry_then_succeeds() {
    let app = WebhookApp::new(test_verifier(), MemoryQueue::new(), DEFAULT_MAX_BODY_BYTES);
    app.queue().set_failing(true);
    let event = read("events/webhook-sync-success.json");
    let response =
        nango_sync::lambda::webhook(&app, lambda_http::request::from_str(&event).unwrap()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(app.queue().sent().is_empty());
    app.queue().set_failing(false);
    let response =
        nango_sync::lambda::webhook(&app, lambda_http::request::from_str(&event).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.queue().sent().len(), 1);
}

#[tokio::test]
async fn body_over_the_limit_is_413_before_anything_else() {
    let event = read("events/webhook-sync-success.json");
    let request = lambda_http::request::from_str(&event).unwrap();
    let size = request.body().as_ref().len();
    let app = WebhookApp::new(test_verifier(), MemoryQueue::new(), size - 1);
    assert_eq!(
        nango_sync::lambda::webhook(&app, request).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert!(app.queue().sent().is_empty());
}

#[test]
fn events_are_valid_for_cargo_lambda_invoke() {
    // cargo lambda invoke --data-file sends the file as the raw invocation payload: it must be one
    // JSON object with the 2.0 envelope fields.
    for file in webhook_event_files() {
        let v: serde_json::Value = serde_json::from_str(&read(&format!("events/{file}"))).unwrap();
        assert_eq!(v["version"], "2.0", "{file}");
        assert!(v["requestContext"]["http"]["method"].is_string(), "{file}");
    }
}

/// The outbox sample (a DynamoDB stream batch of the outbox table): each new item's write request
/// onto the queue in order, in its write's group, a request that does not read included (the
/// worker refuses it, with its body kept); updates, removals and items that hold no request
/// are no new write.
#[tokio::test]
async fn the_outbox_sample_queues_each_new_write_request() {
    let event: nango_sync::lambda::OutboxEvent =
        serde_json::from_str(&read("events/dynamodb-outbox.json")).unwrap();
    let queue = MemoryQueue::new();
    let response = nango_sync::lambda::outbox(&queue, event).await;
    let expected: serde_json::Value = serde_json::from_str(&read("events/expected.json")).unwrap();
    let expected = &expected["dynamodb-outbox.json"];
    assert_eq!(
        serde_json::to_value(&response).unwrap()["batchItemFailures"],
        expected["batchItemFailures"]
    );
    let sent = queue.sent();
    assert_eq!(sent.len() as u64, expected["queued"].as_u64().unwrap());
    let Job::Write(request) = JobMessage::decode(&sent[0].body).unwrap().job else {
        panic!("the outbox item is not a write job: {}", sent[0].body)
    };
    assert_eq!(request.id, "invoice-7-sync-owner");
    assert_eq!(
        sent[0].group_id,
        JobMessage::decode(&sent[0].body).unwrap().group_id("")
    );
    assert!(
        JobMessage::decode(&sent[1].body).is_err(),
        "{}",
        sent[1].body
    );

    // The queue refuses: the first new item is reported, for Lambda to send it and the rest again.
    let event: nango_sync::lambda::OutboxEvent =
        serde_json::from_str(&read("events/dynamodb-outbox.json")).unwrap();
    let refusing = MemoryQueue::new();
    refusing.set_failing(true);
    let response = nango_sync::lambda::outbox(&refusing, event).await;
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "111000000000000000001"}]})
    );
}
