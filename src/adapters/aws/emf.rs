//! CloudWatch metrics as embedded metric format (EMF) lines: one JSON line per job on stdout,
//! which CloudWatch Logs turns into metrics. No client, no permission beyond the log group's.
//! One dimension, the function: a stream dimension would make a metric per stream, unbounded.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::core::metrics::{JobMetrics, WebhookAnswer};
use crate::core::writes::state::WriteState;
use crate::ports::MetricsSink;

#[derive(Debug, Clone)]
pub struct EmfMetrics {
    pub namespace: String,
    /// The `Function` dimension's value: the Lambda function's name.
    pub function: String,
}

impl MetricsSink for EmfMetrics {
    fn job_done(&self, job: &JobMetrics) {
        println!(
            "{}",
            emf_line(job, &self.namespace, &self.function, now_ms())
        );
    }

    fn webhook_answered(&self, answer: WebhookAnswer) {
        println!(
            "{}",
            webhook_emf_line(answer, &self.namespace, &self.function, now_ms())
        );
    }
}

fn now_ms() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

/// One webhook's EMF document: every answer's metric, 1 for this one and 0 for the others, so
/// each metric has a data point whenever webhooks arrive (an alarm reads 0, not missing data).
pub fn webhook_emf_line(
    answer: WebhookAnswer,
    namespace: &str,
    function: &str,
    timestamp_ms: u64,
) -> String {
    let values: Vec<(&str, &str, Value)> = WebhookAnswer::ALL
        .iter()
        .map(|a| (a.metric(), "Count", u64::from(*a == answer).into()))
        .collect();
    emf_document(&values, namespace, function, timestamp_ms, None)
}

/// One job's EMF document, as one line. Every metric named in `CloudWatchMetrics` is a
/// top-level number, as the format requires; the outcome rides along as a property (searchable
/// in Logs Insights, not a dimension).
pub fn emf_line(job: &JobMetrics, namespace: &str, function: &str, timestamp_ms: u64) -> String {
    let mut values: Vec<(&str, &str, Value)> = vec![
        ("RecordsWritten", "Count", job.written.into()),
        ("RecordsDeleted", "Count", job.deleted.into()),
        ("RecordsPruned", "Count", job.pruned.into()),
        ("RecordsRejected", "Count", job.rejected.into()),
        ("RecordsSwept", "Count", job.swept.into()),
        ("SweepsHeld", "Count", u64::from(job.sweep_held).into()),
        ("Pages", "Count", job.pages.into()),
        ("JobDuration", "Milliseconds", job.duration_ms.into()),
        ("JobsFailed", "Count", u64::from(job.failed).into()),
        (
            "StreamsInError",
            "Count",
            u64::from(job.stream_in_error).into(),
        ),
        ("NangoRequests", "Count", job.nango.requests.into()),
        ("NangoRateLimited", "Count", job.nango.rate_limited.into()),
        (
            "NangoRateLimitWait",
            "Milliseconds",
            job.nango.waited_ms.into(),
        ),
        ("EventsFailed", "Count", u64::from(job.event_failed).into()),
    ];
    // A write job's end, as one of three counts (each written, so an alarm reads 0 between
    // failures rather than missing data).
    if let Some(state) = job.write_state {
        for (name, counted) in [
            ("WritesSucceeded", WriteState::Succeeded),
            ("WritesFailed", WriteState::Failed),
            ("WritesUnknown", WriteState::Unknown),
        ] {
            values.push((name, "Count", u64::from(state == counted).into()));
        }
    }
    if let Some(lag) = job.sync_lag_seconds {
        values.push(("SyncLag", "Seconds", json!(lag)));
    }
    emf_document(
        &values,
        namespace,
        function,
        timestamp_ms,
        Some(("Outcome", job.outcome)),
    )
}

/// An EMF document of `values` (name, unit, value) with the function as the one dimension, and
/// an optional searchable property.
fn emf_document(
    values: &[(&str, &str, Value)],
    namespace: &str,
    function: &str,
    timestamp_ms: u64,
    property: Option<(&str, &str)>,
) -> String {
    let definitions: Vec<Value> = values
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        }),
    );
    document.insert("Function".into(), function.into());
    if let Some((name, value)) = property {
        document.insert(name.into(), value.into());
    }
    for (name, _, value) in values {
        document.insert((*name).into(), value.clone());
    }
    Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metrics::RequestTally;

    fn job(lag: Option<f64>) -> JobMetrics {
        JobMetrics {
            outcome: "synced",
            duration_ms: 1234,
            pages: 3,
            written: 250,
            deleted: 2,
            pruned: 1,
            rejected: 1,
            swept: 4,
            sweep_held: false,
            failed: false,
            stream_in_error: false,
            nango: RequestTally {
                requests: 4,
                rate_limited: 1,
                waited_ms: 1000,
            },
            event_failed: false,
            write_state: None,
            sync_lag_seconds: lag,
        }
    }

    #[test]
    fn a_write_job_counts_its_end_once_and_the_other_ends_zero() {
        let mut write = job(None);
        write.write_state = Some(WriteState::Unknown);
        let doc: Value = serde_json::from_str(&emf_line(&write, "NS", "worker", 1)).unwrap();
        assert_eq!(
            (
                &doc["WritesUnknown"],
                &doc["WritesFailed"],
                &doc["WritesSucceeded"]
            ),
            (&json!(1), &json!(0), &json!(0))
        );
        let sync: Value = serde_json::from_str(&emf_line(&job(None), "NS", "worker", 1)).unwrap();
        assert!(
            sync.get("WritesUnknown").is_none(),
            "a sync job says nothing of writes"
        );
    }

    /// The specification's rules, checked on the line as CloudWatch would read it.
    fn assert_valid_emf(line: &str) -> Value {
        assert!(!line.contains('\n'), "one line: {line}");
        let doc: Value = serde_json::from_str(line).expect("a JSON object");
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_u64(), "{aws}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert!(directive["Namespace"]
            .as_str()
            .is_some_and(|n| !n.is_empty()));
        for set in directive["Dimensions"].as_array().expect("dimension sets") {
            let set = set.as_array().expect("a dimension set");
            assert!(!set.is_empty() && set.len() <= 30);
            for name in set {
                let name = name.as_str().expect("a dimension name");
                assert!(
                    doc[name].is_string(),
                    "dimension {name} is a top-level string"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().expect("metric definitions");
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        let units = ["Count", "Milliseconds", "Seconds"];
        for metric in metrics {
            let name = metric["Name"].as_str().expect("a metric name");
            assert!(
                units.contains(&metric["Unit"].as_str().unwrap()),
                "{metric}"
            );
            assert!(doc[name].is_number(), "metric {name} is a top-level number");
        }
        doc
    }

    #[test]
    fn a_jobs_line_is_valid_emf_with_its_counts() {
        let doc = assert_valid_emf(&emf_line(
            &job(Some(12.5)),
            "NangoSync",
            "worker-fn",
            1_700_000_000_000,
        ));
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "NangoSync"
        );
        assert_eq!(doc["Function"], "worker-fn");
        assert_eq!(doc["Outcome"], "synced");
        assert_eq!(doc["RecordsWritten"], 250);
        assert_eq!(doc["RecordsSwept"], 4);
        assert_eq!(doc["NangoRateLimited"], 1);
        assert_eq!(doc["NangoRateLimitWait"], 1000);
        assert_eq!(doc["JobsFailed"], 0);
        assert_eq!(doc["EventsFailed"], 0);
        assert_eq!(doc["SyncLag"], 12.5);
    }

    #[test]
    fn a_job_that_wrote_nothing_reports_no_lag() {
        let doc = assert_valid_emf(&emf_line(&job(None), "NS", "f", 1));
        assert!(doc.get("SyncLag").is_none());
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(!names.contains(&"SyncLag"), "{names:?}");
        assert!(names.contains(&"StreamsInError"), "{names:?}");
    }

    #[test]
    fn a_webhooks_line_counts_its_answer_once_and_the_others_zero() {
        for answer in WebhookAnswer::ALL {
            let doc = assert_valid_emf(&webhook_emf_line(answer, "NangoSync", "webhook-fn", 1));
            assert_eq!(doc["Function"], "webhook-fn");
            for other in WebhookAnswer::ALL {
                assert_eq!(
                    doc[other.metric()],
                    u64::from(other == answer),
                    "{answer:?}: {}",
                    other.metric()
                );
            }
        }
    }
}
