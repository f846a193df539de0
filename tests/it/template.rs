//! template.yaml and the code agree: the queues and tables the local set-up creates have the
//! settings the stack deploys (on moto: `aws::template`), the worker may make every call it
//! makes, and every alarm and graph names a metric a function emits.

use nango_sync::adapters::aws::stack::INGEST_QUEUE_ATTRIBUTES;
use nango_sync::ports::DEFAULT_MAX_RECEIVE_COUNT;
use yaml_serde::Value;

use crate::common::read;

pub(crate) fn template() -> Value {
    yaml_serde::from_str(&read("template.yaml")).expect("template.yaml is YAML")
}

pub(crate) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

#[test]
fn ingest_queue_settings_match_the_template() {
    let t = template();
    let props = &t["Resources"]["IngestQueue"]["Properties"];
    for (name, value) in INGEST_QUEUE_ATTRIBUTES {
        assert_eq!(scalar(&props[*name]), *value, "IngestQueue.{name}");
    }
    assert_eq!(
        scalar(&t["Parameters"]["MaxReceiveCount"]["Default"]),
        DEFAULT_MAX_RECEIVE_COUNT.to_string()
    );
    let worker_timeout: u64 = scalar(&t["Resources"]["WorkerFunction"]["Properties"]["Timeout"])
        .parse()
        .unwrap();
    let visibility: u64 = scalar(&props["VisibilityTimeout"]).parse().unwrap();
    assert!(
        visibility >= 6 * worker_timeout,
        "visibility {visibility} < 6 x worker timeout {worker_timeout}"
    );
    assert_eq!(
        scalar(&t["Resources"]["IngestDeadLetterQueue"]["Properties"]["FifoQueue"]),
        "true"
    );
}

#[test]
fn tables_have_the_keys_the_code_uses() {
    let t = template();
    for table in ["RecordsTable", "StateTable"] {
        let props = &t["Resources"][table]["Properties"];
        let keys: Vec<(String, String)> = props["KeySchema"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| (scalar(&k["AttributeName"]), scalar(&k["KeyType"])))
            .collect();
        assert_eq!(
            keys,
            [
                ("pk".to_owned(), "HASH".to_owned()),
                ("sk".to_owned(), "RANGE".to_owned())
            ],
            "{table}"
        );
        assert_eq!(scalar(&props["BillingMode"]), "PAY_PER_REQUEST", "{table}");
        assert_eq!(
            scalar(&props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]),
            "true"
        );
        assert_eq!(scalar(&props["SSESpecification"]["SSEEnabled"]), "true");
    }
}

#[test]
fn functions_use_the_documented_runtime_and_no_wildcard_actions() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(scalar(&globals["Runtime"]), "provided.al2023");
    assert_eq!(scalar(&globals["Architectures"][0]), "arm64");
    assert_eq!(scalar(&globals["LoggingConfig"]["LogFormat"]), "JSON");
    let text = read("template.yaml");
    assert!(
        !text.contains("Action: \"*\"") && !text.contains("Action: '*'") && !text.contains(":*\""),
        "wildcard action"
    );
    assert!(!text.contains("DynamoDBCrudPolicy"));
    for (function, binary) in [
        ("WebhookFunction", "webhook"),
        ("WorkerFunction", "worker"),
        ("OutboxFunction", "outbox"),
    ] {
        let f = &t["Resources"][function];
        assert_eq!(scalar(&f["Metadata"]["BuildMethod"]), "rust-cargolambda");
        assert_eq!(scalar(&f["Metadata"]["BuildProperties"]["Binary"]), binary);
        assert!(
            read("Cargo.toml").contains(&format!("path = \"src/bin/{binary}.rs\"")),
            "{function}: no binary {binary}"
        );
    }
}

/// The outbox table is what `lambda::outbox` reads: keyed by the write's id, its stream showing
/// each new item whole, the stream feeding the outbox function from its oldest record, and the
/// function sending to the ingest queue, retried until the queue takes the item.
#[test]
fn the_outbox_table_feeds_the_outbox_function() {
    let t = template();
    let table = &t["Resources"]["OutboxTable"]["Properties"];
    assert_eq!(scalar(&table["KeySchema"][0]["AttributeName"]), "id");
    assert_eq!(
        table["KeySchema"].as_sequence().map(Vec::len),
        Some(1),
        "the write's id alone"
    );
    assert_eq!(
        scalar(&table["StreamSpecification"]["StreamViewType"]),
        "NEW_IMAGE"
    );
    let function = &t["Resources"]["OutboxFunction"]["Properties"];
    let source = &function["Events"]["Outbox"]["Properties"];
    assert!(format!("{:?}", source["Stream"]).contains("OutboxTable.StreamArn"));
    assert_eq!(scalar(&source["StartingPosition"]), "TRIM_HORIZON");
    assert_eq!(scalar(&source["MaximumRetryAttempts"]), "-1");
    assert_eq!(
        scalar(&source["FunctionResponseTypes"][0]),
        "ReportBatchItemFailures"
    );
    assert!(
        format!("{:?}", function["Environment"]["Variables"]["QUEUE_URL"]).contains("IngestQueue")
    );
    assert!(format!("{:?}", function["Policies"]).contains("SQSSendMessagePolicy"));
}

/// The DynamoDB operations a part of the adapter calls (`.client.<operation>()`), in PascalCase.
fn dynamodb_calls(code: &str) -> std::collections::BTreeSet<String> {
    let mut calls = std::collections::BTreeSet::new();
    let compact: String = code.split_whitespace().collect();
    for piece in compact.split(".client.").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| *c == '_' || c.is_ascii_lowercase())
            .collect();
        if piece[name.len()..].starts_with("()") {
            let pascal: String = name
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            calls.insert(format!("dynamodb:{pascal}"));
        }
    }
    calls
}

#[test]
fn the_worker_policy_allows_every_dynamodb_call_the_adapters_make() {
    let t = template();
    let records_code = read("src/adapters/aws/dynamodb/records.rs");
    let state_code = read("src/adapters/aws/dynamodb/state.rs");
    let statements = t["Resources"]["WorkerFunction"]["Properties"]["Policies"][0]["Statement"]
        .as_sequence()
        .unwrap();
    for (table, code) in [("RecordsTable", &records_code), ("StateTable", &state_code)] {
        let allowed: std::collections::BTreeSet<String> = statements
            .iter()
            .filter(|s| format!("{:?}", s["Resource"]).contains(table))
            .flat_map(|s| s["Action"].as_sequence().unwrap().iter().map(scalar))
            .collect();
        let used = dynamodb_calls(code);
        assert!(used.len() >= 3, "{table}: found only {used:?}");
        let missing: Vec<_> = used.difference(&allowed).collect();
        assert!(
            missing.is_empty(),
            "{table}: the worker calls {missing:?} without permission"
        );
    }
}

/// Every alarm's metric filter matches a line the worker writes: a renamed log message must not
/// silence an alarm.
#[test]
fn metric_filters_match_lines_the_worker_logs() {
    let t = template();
    let code: String = [
        "src/core/worker.rs",
        "src/core/reconcile.rs",
        "src/core/drift/check.rs",
    ]
    .iter()
    .map(|path| read(path))
    .collect();
    let resources = t["Resources"].as_mapping().unwrap();
    let mut filters = 0;
    for (name, resource) in resources {
        if scalar(&resource["Type"]) != "AWS::Logs::MetricFilter" {
            continue;
        }
        filters += 1;
        let pattern = scalar(&resource["Properties"]["FilterPattern"]);
        let term = pattern.trim_matches('"');
        assert!(
            code.contains(term),
            "{}: no worker log line contains {term:?}",
            scalar(name)
        );
    }
    assert!(filters >= 1, "found {filters} metric filters");
}

/// The metrics the stack's own log filters make, by name.
fn filter_metrics(t: &Value) -> Vec<String> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| scalar(&r["Type"]) == "AWS::Logs::MetricFilter")
        .flat_map(|r| {
            r["Properties"]["MetricTransformations"]
                .as_sequence()
                .unwrap()
                .clone()
        })
        .map(|m| scalar(&m["MetricName"]))
        .collect()
}

/// The metrics an EMF line defines, by name, with the function that writes it: a job's (one
/// that wrote records: all of them) by the worker, a webhook's by the webhook function.
fn emf_metrics() -> Vec<(String, &'static str)> {
    use nango_sync::adapters::aws::emf::{emf_line, webhook_emf_line};
    use nango_sync::core::metrics::RequestTally;
    use nango_sync::core::metrics::{JobMetrics, WebhookAnswer};
    let job = JobMetrics {
        outcome: "synced",
        duration_ms: 1,
        pages: 1,
        written: 1,
        deleted: 0,
        pruned: 0,
        rejected: 0,
        swept: 0,
        sweep_held: false,
        failed: false,
        stream_in_error: false,
        nango: RequestTally::default(),
        event_failed: false,
        // Every metric a job line can carry: a write job's too.
        write_state: Some(nango_sync::core::writes::state::WriteState::Unknown),
        sync_lag_seconds: Some(1.0),
    };
    let names = |line: String| -> Vec<String> {
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect()
    };
    let worker = names(emf_line(&job, "NangoSync", "f", 1));
    let webhook = names(webhook_emf_line(
        WebhookAnswer::Accepted,
        "NangoSync",
        "f",
        1,
    ));
    worker
        .into_iter()
        .map(|n| (n, "WorkerFunction"))
        .chain(webhook.into_iter().map(|n| (n, "WebhookFunction")))
        .collect()
}

/// Every alarm and dashboard graph on the NangoSync namespace names a metric that exists: one an
/// EMF line defines, with the Function dimension naming the function that writes it, or one a
/// log filter makes (without the dimension).
#[test]
fn alarms_and_the_dashboard_name_metrics_the_functions_emit() {
    let t = template();
    let (emf, filtered) = (emf_metrics(), filter_metrics(&t));
    let has = |name: &str, function: &str| emf.iter().any(|(n, f)| n == name && *f == function);
    assert!(has("StreamsInError", "WorkerFunction"), "{emf:?}");
    assert!(
        has("WebhooksRefusedSignature", "WebhookFunction"),
        "{emf:?}"
    );
    // `function`: the Function dimension's value (the function's logical id), if there is one.
    let check = |name: &str, function: Option<&str>, at: &str| match function {
        Some(function) => assert!(
            has(name, function),
            "{at}: {function} writes no EMF metric {name}"
        ),
        None => assert!(
            filtered.contains(&name.to_owned()),
            "{at}: no filter makes {name}"
        ),
    };
    let mut alarms = 0;
    for (name, resource) in t["Resources"].as_mapping().unwrap() {
        let props = &resource["Properties"];
        if scalar(&resource["Type"]) != "AWS::CloudWatch::Alarm"
            || scalar(&props["Namespace"]) != "NangoSync"
        {
            continue;
        }
        alarms += 1;
        let function = props["Dimensions"].as_sequence().and_then(|d| {
            d.iter()
                .find(|d| scalar(&d["Name"]) == "Function")
                .map(|d| match &d["Value"] {
                    Value::Tagged(r) if r.tag == "!Ref" => scalar(&r.value),
                    other => panic!(
                        "{}: the Function dimension is a !Ref: {other:?}",
                        scalar(name)
                    ),
                })
        });
        check(
            &scalar(&props["MetricName"]),
            function.as_deref(),
            &scalar(name),
        );
    }
    assert!(alarms >= 5, "found {alarms} NangoSync alarms");

    let Value::Tagged(body) = &t["Resources"]["Dashboard"]["Properties"]["DashboardBody"] else {
        panic!("the dashboard body is a !Sub")
    };
    let dashboard: serde_json::Value =
        serde_json::from_str(&scalar(&body.value)).expect("the dashboard body is JSON");
    let mut graphed = 0;
    for widget in dashboard["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            let metric = metric.as_array().unwrap();
            if metric[0] != "NangoSync" {
                continue;
            }
            graphed += 1;
            let function = (metric.get(2).is_some_and(|d| d == "Function")).then(|| {
                let value = metric[3].as_str().unwrap();
                value
                    .trim_start_matches("${")
                    .trim_end_matches('}')
                    .to_owned()
            });
            check(
                metric[1].as_str().unwrap(),
                function.as_deref(),
                "Dashboard",
            );
        }
    }
    assert!(
        graphed >= emf.len(),
        "every EMF metric is graphed ({graphed} graphs)"
    );
    for (name, _) in &emf {
        assert!(
            dashboard.to_string().contains(&format!("\"{name}\"")),
            "{name} is not on the dashboard"
        );
    }
}

/// The stack deploys on any account: no function reserves concurrency unless asked (a new
/// account's quota of 10 refuses a reservation), and the worker is capped by its event source.
#[test]
fn no_reserved_concurrency_by_default_and_the_worker_capped_by_its_queue() {
    let t = template();
    let worker = &t["Resources"]["WorkerFunction"]["Properties"];
    assert!(worker.get("ReservedConcurrentExecutions").is_none());
    let scaling = &worker["Events"]["Jobs"]["Properties"]["ScalingConfig"]["MaximumConcurrency"];
    let Value::Tagged(r) = scaling else {
        panic!("MaximumConcurrency is a !Ref of a parameter: {scaling:?}")
    };
    let parameter = &t["Parameters"][scalar(&r.value).as_str()];
    let default: u64 = scalar(&parameter["Default"]).parse().unwrap();
    assert!((2..=1000).contains(&default), "{default}");
    assert_eq!(scalar(&parameter["MinValue"]), "2");
    // The webhook's reservation is a parameter whose default reserves none.
    let webhook = &t["Resources"]["WebhookFunction"]["Properties"];
    let reserved = format!("{:?}", webhook["ReservedConcurrentExecutions"]);
    assert!(
        reserved.contains("CapsWebhookConcurrency") && reserved.contains("AWS::NoValue"),
        "{reserved}"
    );
    assert_eq!(
        scalar(&t["Parameters"]["WebhookReservedConcurrency"]["Default"]),
        "0"
    );
}
