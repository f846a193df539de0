//! One EventBridge event per completed sync job, on moto: a rule on the bus forwards the events
//! to an SQS queue, where the test reads what an application's rule would get. A publish that
//! fails leaves the sync done and says so in the job's metrics.

use std::sync::Arc;

use nango_sync::adapters::aws::eventbridge::EventBridgePublisher;
use nango_sync::core::job::{jobs_for, messages_for, now_rfc3339};
use nango_sync::core::payload::NangoWebhook;
use nango_sync::core::stream::StreamKey;
use nango_sync::ports::ReceivedMessage;
use nango_sync::simulator::{webhooks, Changes};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::common::{moto_sdk_config, unique_name};
use crate::job_metrics::Kept;
use crate::reconcile::{rig, Backend, Rig};

/// A bus of its own, whose rule sends every nango-sync event to a queue; returns (bus, queue URL).
async fn bus_to_queue(sdk: &aws_config::SdkConfig) -> (String, String) {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let bus = unique_name("bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("events"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let rule = unique_name("rule");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(json!({"source": ["nango-sync"]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (bus, queue_url)
}

/// The webhook of a sync run of `stream`, as one message the worker receives.
fn webhook_message(rig: &Rig, stream: &StreamKey) -> ReceivedMessage {
    let body = webhooks::sync_success(
        stream,
        &rig.sim.sync_name(stream),
        Changes::default(),
        "INCREMENTAL",
    );
    let raw: &RawValue = serde_json::from_str(&body).unwrap();
    let message = messages_for(
        body.as_bytes(),
        jobs_for(NangoWebhook::from_raw(raw), raw),
        &now_rfc3339(),
    )
    .remove(0);
    ReceivedMessage {
        message_id: unique_name("m"),
        receipt_handle: "r".into(),
        body: message.body,
        group_id: Some(message.group_id),
    }
}

async fn received_events(sdk: &aws_config::SdkConfig, queue_url: &str) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut events = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            return events;
        }
        for m in got {
            events.push(serde_json::from_str(m.body.as_deref().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn each_sync_job_puts_one_stream_synced_event_with_its_counts_on_moto() {
    let sdk = moto_sdk_config().await;
    let (bus, queue_url) = bus_to_queue(&sdk).await;
    let mut rig = rig(Backend::Sqlite).await;
    rig.app.settings.events = Some(Arc::new(EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        &bus,
    )));
    let stream = rig.sim.populate("crm", 1, &["Contact"], 1200).remove(0);

    let failed = rig
        .app
        .handle(&[webhook_message(&rig, &stream)], None)
        .await;
    assert!(failed.is_empty());
    rig.sim.tick();
    let ids: Vec<String> = rig.sim.snapshot(&stream).into_keys().take(2).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(rig.sim.delete(&stream, &ids), 2);
    let failed = rig
        .app
        .handle(&[webhook_message(&rig, &stream)], None)
        .await;
    assert!(failed.is_empty());

    let events = received_events(&sdk, &queue_url).await;
    assert_eq!(events.len(), 2, "one event per sync job: {events:#?}");
    for event in &events {
        assert_eq!(event["source"], "nango-sync");
        assert_eq!(event["detail-type"], "Stream synced");
        let detail = &event["detail"];
        assert_eq!(detail["stream"], stream.encode());
        assert_eq!(detail["model"], "Contact");
        assert_eq!(detail["trigger"], "webhook");
        assert_eq!(detail["continued"], false);
        assert!(detail["duration_ms"].is_u64());
    }
    let (first, second) = (&events[0]["detail"], &events[1]["detail"]);
    assert_eq!(
        (first["added"].as_u64(), first["pages"].as_u64()),
        (Some(1200), Some(3))
    );
    assert_eq!(first["cursor_before"], Value::Null);
    assert!(first["cursor_after"].is_string() && first["cursor_moved"] == true);
    assert_eq!(second["deleted"], 2, "{second}");
    assert_eq!(second["added"], 0);
    assert_eq!(second["cursor_before"], first["cursor_after"]);
}

#[tokio::test]
async fn a_failed_publish_leaves_the_sync_done_and_counts_in_the_metrics_on_moto() {
    let sdk = moto_sdk_config().await;
    let kept = Arc::new(Kept::default());
    let mut rig = rig(Backend::Sqlite).await;
    rig.app.settings.metrics = Some(kept.clone());
    rig.app.settings.events = Some(Arc::new(EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        unique_name("no-such-bus"),
    )));
    let stream = rig.sim.populate("crm", 1, &["Contact"], 50).remove(0);
    let failed = rig
        .app
        .handle(&[webhook_message(&rig, &stream)], None)
        .await;
    assert!(
        failed.is_empty(),
        "the job is not redelivered for its event"
    );
    assert_eq!(rig.live(&stream).await, 50, "the sync stands");
    let jobs = kept.0.lock().unwrap().clone();
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].event_failed && !jobs[0].failed, "{:?}", jobs[0]);
}

/// A finished write puts one event (issue "Two-way sync", item 5): `Write succeeded` or `Write
/// failed`, saying what ran, how many attempts, and what it came to; its job's metrics count it.
#[tokio::test]
async fn each_finished_write_puts_one_write_event_on_moto() {
    let sdk = moto_sdk_config().await;
    let (bus, queue_url) = bus_to_queue(&sdk).await;
    let kept = Arc::new(Kept::default());
    let mut rig = rig(Backend::Sqlite).await;
    rig.app.settings.events = Some(Arc::new(EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        &bus,
    )));
    rig.app.settings.metrics = Some(kept.clone());
    rig.sim
        .add_connection(StreamKey::new("crm", "conn-0", "Contact", "base").connection());
    let write = |id: &str| {
        json!({"v": 1, "id": id, "provider_config_key": "crm", "connection_id": "conn-0",
            "run": {"kind": "tool", "name": "save-Contact", "input": {"id": format!("c-{id}")}},
            "record": {"model": "Contact", "id": format!("c-{id}")}})
        .to_string()
    };
    let message = |id: &str| ReceivedMessage {
        message_id: id.to_owned(),
        receipt_handle: format!("receipt-{id}"),
        body: write(id),
        group_id: None,
    };
    assert!(rig.app.handle(&[message("w-ok")], None).await.is_empty());
    rig.server()
        .provider
        .inject([nango_sync::simulator::writes::WriteFault::Refuse]);
    assert!(rig.app.handle(&[message("w-no")], None).await.is_empty());

    let events = received_events(&sdk, &queue_url).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Write succeeded", "Write failed"], "{events:#?}");
    let (ok, no) = (&events[0]["detail"], &events[1]["detail"]);
    assert_eq!(ok["id"], "w-ok");
    assert_eq!(ok["ran"], json!({"kind": "tool", "name": "save-Contact"}));
    assert_eq!(ok["record"]["id"], "c-w-ok");
    assert_eq!(
        (&ok["state"], &ok["attempts"]),
        (&json!("succeeded"), &json!(1))
    );
    assert!(ok["outcome"].as_str().unwrap().contains("c-w-ok"), "{ok}");
    assert_eq!(no["state"], "failed");
    assert!(no["outcome"].as_str().unwrap().starts_with("424 "), "{no}");
    let states: Vec<_> = kept
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.write_state.map(|s| s.as_str()))
        .collect();
    assert_eq!(states, [Some("succeeded"), Some("failed")]);
}
