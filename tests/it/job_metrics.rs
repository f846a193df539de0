//! Each job's metrics as the worker hands them to its sink, and the EMF line made of them (issue
//! "What no Nango consumer has", item 4): the counts are the job's, Nango's requests and 429s
//! included; a failed job says so.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use nango_sync::adapters::aws::emf::emf_line;
use nango_sync::core::job::{jobs_for, messages_for, now_rfc3339};
use nango_sync::core::metrics::JobMetrics;
use nango_sync::core::payload::NangoWebhook;
use nango_sync::ports::{MetricsSink, ReceivedMessage};
use nango_sync::simulator::server::Fault;
use nango_sync::simulator::{webhooks, Changes};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::reconcile::{rig, Backend};

/// Keeps every job's metrics, in order.
#[derive(Debug, Default)]
pub(crate) struct Kept(pub(crate) Mutex<Vec<JobMetrics>>);

impl MetricsSink for Kept {
    fn job_done(&self, job: &JobMetrics) {
        self.0.lock().unwrap().push(job.clone());
    }

    // A worker's sink: no webhook passes through it (tests/it/webhook_metrics.rs has those).
    fn webhook_answered(&self, _: nango_sync::core::metrics::WebhookAnswer) {}
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
async fn each_job_reports_its_counts_nangos_requests_and_its_lag() {
    let kept = Arc::new(Kept::default());
    let mut rig = rig(Backend::Sqlite).await;
    rig.app.settings.metrics = Some(kept.clone());
    // 1,200 records in pages of 500: three pages, the first asked twice after a 429.
    let stream = rig.sim.populate("crm", 1, &["Contact"], 1200).remove(0);
    rig.server().inject([Fault::RateLimited {
        retry_after: Some(0),
        remaining: 0,
        reset_in: 0,
    }]);
    let body = webhooks::sync_success(
        &stream,
        &rig.sim.sync_name(&stream),
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
    for (id, body) in [
        ("first", message.body.clone()),
        ("again", message.body.clone()),
        ("garbled", "{not a job".to_owned()),
    ] {
        rig.app.handle(&[received(id, body)], None).await;
    }

    let jobs = kept.0.lock().unwrap().clone();
    assert_eq!(jobs.len(), 3, "{jobs:#?}");
    let (first, again, garbled) = (&jobs[0], &jobs[1], &jobs[2]);
    assert_eq!(first.outcome, "synced");
    assert_eq!((first.written, first.pages, first.rejected), (1200, 3, 0));
    assert_eq!(
        (first.nango.requests, first.nango.rate_limited),
        (4, 1),
        "{first:?}"
    );
    assert!(!first.failed && !first.stream_in_error);
    // The simulator's clock starts at 2026-11-27T00:00:00Z and moves a millisecond a tick: the
    // newest record is that old, give or take the ticks and the test's own run time.
    let lag = first.sync_lag_seconds.expect("records were written");
    let since_start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 1_795_737_600.0;
    assert!(
        (since_start - 60.0..=since_start).contains(&lag),
        "{lag} vs {since_start}"
    );

    assert_eq!(
        (again.written, again.nango.rate_limited),
        (0, 0),
        "{again:?}"
    );
    assert!(again.nango.requests >= 1, "{again:?}");
    assert_eq!(again.sync_lag_seconds, None, "nothing written, no lag");

    assert!(garbled.failed, "{garbled:?}");
    assert_eq!((garbled.outcome, garbled.nango.requests), ("failed", 0));

    // The EMF line carries the same counts.
    let line: Value = serde_json::from_str(&emf_line(first, "NangoSync", "worker", 1)).unwrap();
    assert_eq!(line["RecordsWritten"], 1200);
    assert_eq!(line["NangoRequests"], 4);
    assert_eq!(line["NangoRateLimited"], 1);
    let line: Value = serde_json::from_str(&emf_line(garbled, "NangoSync", "worker", 1)).unwrap();
    assert_eq!(line["JobsFailed"], 1);
}
