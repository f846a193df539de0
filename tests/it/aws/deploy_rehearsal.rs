//! The deploy rehearsal (issue "From clone to a running stack", item 5): template.yaml itself,
//! transformed by SAM's translator and created on moto's CloudFormation by
//! `scripts/rehearse-deploy.py` (which prints every patch moto needs), then the real bootstraps
//! run with exactly the environment the created functions have, read back from moto's Lambda
//! API, against the stack's own queue, tables and secrets. One signed sample webhook goes through
//! to records in the stack's table. A variable renamed on one side, a key schema or a queue
//! attribute that drifts between template and code fails here.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nango_sync::adapters::aws::sqs::SqsQueue;
use nango_sync::core::job::{Job, JobMessage};
use nango_sync::ports::JobConsumer;
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::Simulator;
use serde_json::{json, Value};

use crate::aws::runtime_loop::{start_bootstrap, Killed, RuntimeApi};
use crate::common::{
    contacts, moto_endpoint, moto_sdk_config, payload, read, repo_path, unique_name, API_KEY,
    TEST_SIGNING_KEY,
};

/// What the rehearsal created and read back (scripts/rehearse-deploy.py --out).
struct Rehearsal {
    stack: Value,
    log: String,
}

impl Rehearsal {
    fn output(&self, key: &str) -> String {
        self.stack["outputs"][key]
            .as_str()
            .unwrap_or_else(|| panic!("the stack has no output {key}"))
            .to_owned()
    }

    /// A created function's environment, as moto's Lambda API gives it back, plus its name as
    /// Lambda would set it.
    fn environment(&self, logical_id: &str) -> Vec<(String, String)> {
        let function = &self.stack["functions"][logical_id];
        let mut env: Vec<(String, String)> = function["Environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{logical_id} has no environment: {function}"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a string value").to_owned()))
            .collect();
        env.push((
            "AWS_LAMBDA_FUNCTION_NAME".into(),
            function["FunctionName"].as_str().unwrap().to_owned(),
        ));
        env
    }
}

/// Runs the rehearsal of `template` (a path under the repository, or a file elsewhere) with
/// Nango at `nango_url`; the script's log goes to target/rehearsal/<stack>.log for CI to show.
fn rehearse(template: &std::path::Path, nango_url: &str) -> Rehearsal {
    let stack = unique_name("rehearsal");
    let dir = repo_path("target/rehearsal");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{stack}.json"));
    let python = std::env::var("NANGO_SYNC_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into());
    let started = Instant::now();
    let result = Command::new(&python)
        .current_dir(repo_path("."))
        .arg("scripts/rehearse-deploy.py")
        .args(["--endpoint", &moto_endpoint(), "--stack-name", &stack])
        .arg("--template")
        .arg(template)
        .arg("--create-secrets")
        .arg(format!("signing={TEST_SIGNING_KEY},api={API_KEY}"))
        .args(["--param", &format!("NangoBaseUrl={nango_url}")])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{python} runs (scripts/moto.sh installs it): {e}"));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::write(dir.join(format!("{stack}.log")), &log).unwrap();
    assert!(result.status.success(), "the rehearsal failed:\n{log}");
    println!(
        "rehearsal of {} in {:.1} s:\n{log}",
        template.display(),
        started.elapsed().as_secs_f64()
    );
    Rehearsal {
        stack: serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap(),
        log,
    }
}

/// A Nango with one stream of 40 contacts, the stream the sample webhook names.
async fn nango() -> SimServer {
    let sim = Arc::new(Simulator::new());
    sim.save(
        &contacts(),
        (0..40).map(|i| (format!("c{i}"), payload(i, 1))),
    );
    SimServer::start(sim, ServerSettings::default())
        .await
        .unwrap()
}

/// The SQS event Lambda's event source mapping hands the worker for one received message.
fn sqs_event(message: &nango_sync::ports::ReceivedMessage, queue_arn: &str) -> String {
    json!({"Records": [{
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795788000123",
            "MessageGroupId": message.group_id,
            "SenderId": "AROAEXAMPLE:webhook",
            "ApproximateFirstReceiveTimestamp": "1795788000130"
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1"
    }]})
    .to_string()
}

fn as_pairs(env: &[(String, String)]) -> Vec<(&str, String)> {
    env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

#[tokio::test]
async fn the_template_deployed_on_moto_runs_a_signed_webhook_to_records() {
    let nango = nango().await;
    let stack = rehearse(&repo_path("template.yaml"), &nango.url);
    assert!(
        stack.log.contains("PATCH "),
        "the patches moto needs are printed"
    );

    // What the template promises the code: the event source, the schedule's message.
    let queue_arn = stack.output("QueueArn");
    let worker_name = stack.output("WorkerFunctionName");
    let mapping = &stack.stack["event_source_mappings"]["WorkerFunctionJobs"];
    assert_eq!(mapping["EventSourceArn"], queue_arn.as_str(), "{mapping}");
    assert_eq!(mapping["Function"], worker_name.as_str(), "{mapping}");
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert!(
        mapping["ScalingConfig"]["MaximumConcurrency"].as_u64() >= Some(2),
        "{mapping}"
    );
    for function in ["WebhookFunction", "WorkerFunction"] {
        assert!(
            stack.stack["functions"][function]["ReservedConcurrentExecutions"].is_null(),
            "{function} reserves no concurrency by default (a new account refuses it)"
        );
    }
    let schedule = &stack.stack["removed"]["ReconcileSchedule"]["Properties"]["Target"];
    let input = schedule["Input"]
        .as_str()
        .unwrap()
        .replace("<aws.scheduler.scheduled-time>", "2026-12-07T00:00:00Z");
    let message = JobMessage::decode(&input).expect("the schedule's message is a job");
    assert!(matches!(message.job, Job::Reconcile {}), "{input}");
    assert!(schedule["SqsParameters"]["MessageGroupId"].is_string());

    // The webhook function as created: a signed sample webhook onto the stack's queue.
    let api = RuntimeApi::start().await;
    let mut webhook = Killed(start_bootstrap(
        "webhook",
        &api,
        &as_pairs(&stack.environment("WebhookFunction")),
    ));
    api.invoke("webhook-1", read("events/webhook-sync-success.json"));
    let (kind, body, _) = api.answer("webhook-1", &mut webhook.0).await;
    assert_eq!(
        (kind.as_str(), &body["statusCode"]),
        ("response", &json!(200)),
        "{body}"
    );

    let sdk = moto_sdk_config().await;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), stack.output("QueueUrl"));
    let received = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(received.len(), 1, "one job on the stack's queue");

    // The worker function as created: the job through to the stack's records table.
    let api = RuntimeApi::start().await;
    let mut worker = Killed(start_bootstrap(
        "worker",
        &api,
        &as_pairs(&stack.environment("WorkerFunction")),
    ));
    api.invoke("batch-1", sqs_event(&received[0], &queue_arn));
    let (kind, body, _) = api.answer("batch-1", &mut worker.0).await;
    assert_eq!(kind, "response", "{body}");
    assert_eq!(body["batchItemFailures"], json!([]), "{body}");
    queue.delete(&received[0].receipt_handle).await.unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let records = dynamo
        .scan()
        .table_name(stack.output("RecordsTableName"))
        .send()
        .await
        .unwrap()
        .count;
    assert_eq!(records, 40, "every record in the stack's records table");

    // The operator's CLI, given only the stack's name (issue item 7): its outputs name the
    // tables, queues and secrets; Nango's count comes through the stack's API key secret.
    let name = stack.stack["stack_name"].as_str().unwrap().to_owned();
    let (code, _, stderr) = operator(&["status", "--stack", &name, "--check"]).await;
    assert_eq!(code, Some(0), "nothing needs an operator: {stderr}");
    let (code, out, stderr) = operator(&["status", "--stack", &name, "--json"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["stream"], json!(contacts()), "{out}");
    assert_eq!(rows[0]["records"], 40, "{out}");
    assert_eq!(rows[0]["nango_record_count"], 40, "{out}");

    let (_, out, stderr) = operator(&[
        "watch",
        "--stack",
        &name,
        "--since",
        "0",
        "--no-follow",
        "--json",
    ])
    .await;
    let changes: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        changes.len(),
        40,
        "one change per record on the records table's stream: {stderr}"
    );
    assert!(
        changes
            .iter()
            .all(|c| c["change"] == "added" && c["stream"] == contacts().encode()),
        "{out}"
    );
    // Resumed after the 30th change: the changes numbered after it. (Not "the last 10": moto
    // numbers stream records without a lock, and concurrent writes can share a number.)
    let thirtieth = changes[29]["seq"].as_str().unwrap();
    let number = |c: &Value| c["seq"].as_str().unwrap().parse::<u128>().unwrap();
    let mut expected: Vec<&str> = changes
        .iter()
        .filter(|c| number(c) > thirtieth.parse::<u128>().unwrap())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(expected.len() >= 9, "{out}");
    let (_, out, _) = operator(&[
        "watch",
        "--stack",
        &name,
        "--since",
        thirtieth,
        "--no-follow",
        "--json",
    ])
    .await;
    let resumed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut got: Vec<&str> = resumed.iter().map(|c| c["id"].as_str().unwrap()).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "{out}");

    let (code, out, _) = operator(&["doctor", "--stack", &name, "--json"]).await;
    let checks: std::collections::BTreeMap<String, String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for check in ["stack", "signing key", "Nango", "store and queues"] {
        assert_eq!(
            checks.get(check).map(String::as_str),
            Some("ok"),
            "{check}: {out}"
        );
    }
    // moto's function URL is not served: the one check that cannot pass here, and it says so.
    assert_eq!(checks["webhook endpoint"], "FAIL", "{out}");
    assert_eq!(checks["Nango's settings"], "check", "{out}");
    assert_eq!(code, Some(1), "a failed check fails the command");
}

/// The nango-sync CLI as an operator runs it against moto: AWS settings from the environment,
/// no table, queue or key variables of its own. (exit code, stdout, stderr) It runs off the
/// test's runtime, which serves the simulated Nango the command calls.
async fn operator(args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || run_operator(&args))
        .await
        .unwrap()
}

fn run_operator(args: &[String]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nango-sync"))
        .args(args)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("NANGO_API_KEY")
        .env_remove("NANGO_BASE_URL")
        .env_remove("RECORDS_TABLE")
        .env_remove("STATE_TABLE")
        .env_remove("QUEUE_URL")
        .env_remove("DEAD_LETTER_QUEUE_URL")
        .env_remove("NANGO_SYNC_STORE")
        .env_remove("NANGO_SYNC_QUEUE")
        .output()
        .expect("the nango-sync binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The rehearsal can fail: a template whose worker no longer sets a variable the code reads
/// creates a stack whose worker stops at cold start, naming the variable.
#[tokio::test]
async fn a_variable_renamed_in_the_template_stops_the_rehearsals_worker() {
    let nango = nango().await;
    let template = read("template.yaml");
    assert!(template.contains("          RECORDS_TABLE: !Ref RecordsTable"));
    // The copy lives under target/: its code paths made absolute, as SAM resolves them.
    let root = repo_path(".").canonicalize().unwrap();
    let drifted = template
        .replace(
            "          RECORDS_TABLE: !Ref RecordsTable",
            "          RECORDS_TABLE_NAME: !Ref RecordsTable",
        )
        .replace("CodeUri: .\n", &format!("CodeUri: {}\n", root.display()))
        .replace(
            "CodeUri: infra/",
            &format!("CodeUri: {}/infra/", root.display()),
        );
    let path = repo_path(&format!("target/rehearsal/{}.yaml", unique_name("drifted")));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, drifted).unwrap();
    let stack = rehearse(&path, &nango.url);

    let api = RuntimeApi::start().await;
    let mut worker = start_bootstrap(
        "worker",
        &api,
        &as_pairs(&stack.environment("WorkerFunction")),
    );
    let status = tokio::task::spawn_blocking(move || {
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = worker.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(worker.stderr.as_mut().unwrap(), &mut stderr)
                    .unwrap();
                return (status, stderr);
            }
            if Instant::now() > give_up {
                let _ = worker.kill();
                panic!("the worker kept running without RECORDS_TABLE");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert!(!status.0.success());
    assert!(
        status.1.contains("RECORDS_TABLE is not set"),
        "{}",
        status.1
    );
}
