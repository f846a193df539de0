//! Each webhook's answer reaches the metrics sink as the metric the template's alarms and
//! dashboard read (issue "From clone to a running stack", item 2): accepted, refused by reason,
//! signed with the previous key, and enqueue failures.

use std::sync::{Arc, Mutex};

use nango_sync::adapters::aws::emf::webhook_emf_line;
use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::config::DEFAULT_MAX_BODY_BYTES;
use nango_sync::core::metrics::{JobMetrics, WebhookAnswer};
use nango_sync::core::signature::{SigningKey, Verifier};
use nango_sync::core::webhook::WebhookApp;
use nango_sync::ports::MetricsSink;

use crate::common::{read, test_verifier, TEST_SIGNING_KEY};

/// Keeps every webhook's answer, in order.
#[derive(Debug, Default)]
struct Answers(Mutex<Vec<WebhookAnswer>>);

impl MetricsSink for Answers {
    // A webhook's sink: no job passes through it.
    fn job_done(&self, _: &JobMetrics) {}

    fn webhook_answered(&self, answer: WebhookAnswer) {
        self.0.lock().unwrap().push(answer);
    }
}

async fn answers_to(
    app: &WebhookApp<MemoryQueue>,
    answers: &Answers,
    file: &str,
) -> Vec<WebhookAnswer> {
    let request = lambda_http::request::from_str(&read(&format!("events/{file}"))).unwrap();
    nango_sync::lambda::webhook(app, request).await;
    std::mem::take(&mut *answers.0.lock().unwrap())
}

#[tokio::test]
async fn every_sample_event_is_counted_by_its_answer() {
    let answers = Arc::new(Answers::default());
    let app = WebhookApp::new(test_verifier(), MemoryQueue::new(), DEFAULT_MAX_BODY_BYTES)
        .with_metrics(answers.clone());
    for (file, expected) in [
        ("webhook-sync-success.json", WebhookAnswer::Accepted),
        ("webhook-sync-failure.json", WebhookAnswer::Accepted),
        (
            "webhook-bad-signature.json",
            WebhookAnswer::RefusedSignature,
        ),
        (
            "webhook-missing-signature.json",
            WebhookAnswer::RefusedUnsigned,
        ),
        ("webhook-not-json.json", WebhookAnswer::RefusedNotJson),
        ("webhook-wrong-method.json", WebhookAnswer::RefusedMethod),
    ] {
        assert_eq!(answers_to(&app, &answers, file).await, [expected], "{file}");
    }
}

#[tokio::test]
async fn the_previous_key_too_large_and_enqueue_failures_are_counted() {
    let answers = Arc::new(Answers::default());
    // The samples are signed with the test key: here it is the previous one.
    let rotating = Verifier::new(
        SigningKey::new("the-new-key"),
        Some(SigningKey::new(TEST_SIGNING_KEY)),
    );
    let app = WebhookApp::new(rotating, MemoryQueue::new(), DEFAULT_MAX_BODY_BYTES)
        .with_metrics(answers.clone());
    let file = "webhook-sync-success.json";
    assert_eq!(
        answers_to(&app, &answers, file).await,
        [WebhookAnswer::AcceptedWithPreviousKey]
    );
    app.queue().set_failing(true);
    assert_eq!(
        answers_to(&app, &answers, file).await,
        [WebhookAnswer::EnqueueFailed]
    );

    let small =
        WebhookApp::new(test_verifier(), MemoryQueue::new(), 10).with_metrics(answers.clone());
    assert_eq!(
        answers_to(&small, &answers, file).await,
        [WebhookAnswer::RefusedTooLarge]
    );
}

/// The EMF line of a refused signature carries the metric the rotation alarm reads.
#[test]
fn the_signature_alarms_metric_is_on_a_refused_signatures_line() {
    let line = webhook_emf_line(WebhookAnswer::RefusedSignature, "NangoSync", "fn", 1);
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(doc["WebhooksRefusedSignature"], 1);
    assert_eq!(doc["WebhooksAccepted"], 0);
}
