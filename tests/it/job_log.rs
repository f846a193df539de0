//! The worker's completion line: what a job did, in fields an operator can query (issue "What no
//! Nango consumer has", item 5), read as the JSON lines Lambda's log format makes of it (the
//! subscriber the Lambda runtime sets up for `LogFormat: JSON`), not from the human layout.

use nango_sync::core::job::{jobs_for, messages_for, now_rfc3339};
use nango_sync::core::payload::NangoWebhook;
use nango_sync::ports::ReceivedMessage;
use nango_sync::simulator::{webhooks, Changes};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::common::Captured;
use crate::reconcile::{rig, Backend};

impl Captured {
    /// The JSON lines logged so far whose message starts with `message`.
    fn lines_with(&self, message: &str) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("a JSON log line"))
            .filter(|line| {
                line["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect()
    }
}

/// A field of a JSON log line: the event's own, or its span's (as Logs Insights reads them,
/// `fields.x` or `span.x`).
fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    [&line["fields"][name], &line["span"][name]]
        .into_iter()
        .find(|v| !v.is_null())
        .unwrap_or_else(|| panic!("no {name} in: {line}"))
}

fn received(id: &str, body: String) -> ReceivedMessage {
    ReceivedMessage {
        message_id: id.to_owned(),
        receipt_handle: format!("receipt-{id}"),
        body,
        group_id: None,
    }
}

#[tokio::test]
async fn each_job_logs_what_it_did_and_how_long_it_took() {
    let logs = Captured::default();
    let writer = logs.clone();
    // As lambda_runtime's default subscriber is under `LogFormat: JSON`.
    let subscriber = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rig = rig(Backend::Sqlite).await;
    let stream = rig.sim.populate("crm", 1, &["Contact"], 120).remove(0);
    let body = webhooks::sync_success(
        &stream,
        &rig.sim.sync_name(&stream),
        Changes::default(),
        "INCREMENTAL",
    );
    let raw: &RawValue = serde_json::from_str(&body).unwrap();
    let jobs = jobs_for(NangoWebhook::from_raw(raw), raw);
    let message = messages_for(body.as_bytes(), jobs, &now_rfc3339()).remove(0);

    // The first delivery writes the stream; the second finds nothing new.
    for id in ["first", "again"] {
        let failed = rig
            .app
            .handle(&[received(id, message.body.clone())], None)
            .await;
        assert!(failed.is_empty(), "{id} failed");
    }
    let done = logs.lines_with("job done");
    assert_eq!(done.len(), 2, "{done:#?}");
    for (line, id) in done.iter().zip(["first", "again"]) {
        assert_eq!(field(line, "message_id"), id, "{line}");
        assert_eq!(field(line, "stream"), stream.encode().as_str(), "{line}");
        assert_eq!(field(line, "trigger"), "webhook", "{line}");
        assert_eq!(field(line, "outcome"), "synced", "{line}");
        assert!(field(line, "duration_ms").is_u64(), "{line}");
    }
    let (first, again) = (&done[0], &done[1]);
    let written: u64 = ["added", "updated"]
        .iter()
        .map(|f| field(first, f).as_u64().unwrap())
        .sum();
    assert_eq!(written, 120, "{first}");
    assert_eq!(field(first, "cursor_moved"), true, "{first}");
    assert_ne!(field(first, "pages"), 0, "{first}");
    assert_eq!(field(again, "added"), 0, "{again}");
    assert_eq!(field(again, "cursor_moved"), false, "{again}");

    // A failure says what kind it is and what to do.
    let failed = rig
        .app
        .handle(&[received("bad", "not a job".into())], None)
        .await;
    assert_eq!(failed, ["bad"]);
    let line = logs.lines_with("job failed").remove(0);
    assert_eq!(field(&line, "message_id"), "bad", "{line}");
    assert_eq!(field(&line, "class"), "malformed_message", "{line}");
    assert!(
        field(&line, "remedy")
            .as_str()
            .is_some_and(|r| r.starts_with("not a nango-sync job")),
        "{line}"
    );
}
