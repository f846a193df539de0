//! The worker handler's batch rules, driven by events/sqs-batch.json and built batches.

use aws_lambda_events::event::sqs::SqsEvent;
use nango_sync::core::state::StreamStatus;
use nango_sync::core::stream::{ConnectionKey, StreamKey};
use nango_sync::simulator::server::ServerSettings;

use crate::common::{contacts, payload, read, sqs_event, sync_job, worker_rig};

#[tokio::test]
async fn sample_batch_poison_message_fails_alone() {
    let rig = worker_rig(100, ServerSettings::default(), None).await;
    rig.sim.save(
        &contacts(),
        (0..20).map(|i| (format!("c{i}"), payload(i, 1))),
    );
    let event: SqsEvent = serde_json::from_str(&read("events/sqs-batch.json")).unwrap();
    let response = nango_sync::lambda::worker(&rig.app, event, None).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, crate::events::expected_batch_failures());
    assert_eq!(
        rig.app
            .records
            .read_stream(&contacts())
            .await
            .unwrap()
            .len(),
        20
    );
}

#[tokio::test]
async fn after_a_failure_the_rest_of_its_group_fails_too() {
    let rig = worker_rig(100, ServerSettings::default(), None).await;
    let a = contacts();
    let b = StreamKey::new("hubspot", "user-7", "Contact", "base");
    rig.sim
        .save(&a, (0..5).map(|i| (format!("a{i}"), payload(i, 1))));
    rig.sim
        .save(&b, (0..5).map(|i| (format!("b{i}"), payload(i, 1))));
    let event = sqs_event(&[
        ("a1", "group-a", "not a job"),
        ("a2", "group-a", &sync_job(&a)),
        ("b1", "group-b", &sync_job(&b)),
    ]);
    let response = nango_sync::lambda::worker(&rig.app, event, None).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["a1", "a2"]);
    assert!(
        rig.app.records.read_stream(&a).await.unwrap().is_empty(),
        "a2 did not run"
    );
    assert_eq!(rig.app.records.read_stream(&b).await.unwrap().len(), 5);
}

#[tokio::test]
async fn failure_auth_and_event_jobs_reach_the_state_table() {
    let rig = worker_rig(100, ServerSettings::default(), None).await;
    let mut bodies = Vec::new();
    for file in [
        "webhook-sync-failure.json",
        "webhook-auth-creation.json",
        "webhook-forward.json",
    ] {
        let request = lambda_http::request::from_str(&read(&format!("events/{file}"))).unwrap();
        let app = nango_sync::core::webhook::WebhookApp::new(
            crate::common::test_verifier(),
            nango_sync::adapters::memory::MemoryQueue::new(),
            1 << 20,
        );
        assert!(nango_sync::lambda::webhook(&app, request)
            .await
            .status()
            .is_success());
        bodies.extend(app.queue().sent().into_iter().map(|m| (m.group_id, m.body)));
    }
    let messages: Vec<(String, &str, &str)> = bodies
        .iter()
        .enumerate()
        .map(|(i, (g, b))| (format!("m{i}"), g.as_str(), b.as_str()))
        .collect();
    let refs: Vec<(&str, &str, &str)> = messages
        .iter()
        .map(|(i, g, b)| (i.as_str(), *g, *b))
        .collect();
    let response = nango_sync::lambda::worker(&rig.app, sqs_event(&refs), None).await;
    assert!(response.batch_item_failures.is_empty());

    use nango_sync::ports::StateStore;
    for model in ["Contact", "Company"] {
        let s = StreamKey::new("hubspot", "user-42", model, "base");
        let state = rig.app.state.get_stream(&s).await.unwrap().unwrap();
        assert_eq!(state.status(), StreamStatus::Error);
        assert!(state.error.unwrap().contains("script_error"));
    }
    let sdk = crate::common::moto_sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let conn = ConnectionKey {
        provider_config_key: "hubspot".into(),
        connection_id: "user-42".into(),
    };
    let item = client
        .get_item()
        .table_name(&rig.state_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("connection#{}", conn.encode())),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("state".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("connection item");
    assert_eq!(item["operation"].as_s().unwrap(), "creation");
    let events = client
        .query()
        .table_name(&rig.state_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("events#{}", conn.encode())),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"].as_s().unwrap(), "forward");
    assert!(events[0]["body"]
        .as_s()
        .unwrap()
        .contains("contact.creation"));
}
