//! The real runtime loop: each built binary is started the way Lambda starts a `provided.al2023`
//! bootstrap, against a small Lambda Runtime API emulator here, and fed files from events/. This
//! proves `main` (config, clients, the runtime's poll/respond loop), not only the handler.
//!
//! By default the test's own debug binaries run. To time release builds instead:
//! `NANGO_SYNC_BOOTSTRAP_DIR=target/release scripts/test.sh --test it runtime_loop -- --nocapture`
//! (or a cargo-lambda output directory, `<dir>/webhook/bootstrap`, when it matches this machine).

use std::collections::{HashMap, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use nango_sync::adapters::aws::dynamodb::create_table;
use nango_sync::adapters::aws::sqs::SqsQueue;
use nango_sync::ports::JobConsumer;
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::Simulator;
use serde_json::Value;
use tokio::sync::Notify;

use crate::common::{
    contacts, moto_endpoint, moto_sdk_config, payload, read, unique_name, API_KEY, TEST_SIGNING_KEY,
};
use crate::events::{expected_batch_failures, expected_webhooks};

const PREFIX: &str = "/2018-06-01/runtime";

#[derive(Default)]
struct Invocations {
    pending: Mutex<VecDeque<(String, String)>>,
    results: Mutex<HashMap<String, (String, Value, Instant)>>,
    init_error: Mutex<Option<String>>,
    /// When the binary first asked for an invocation: the end of its init.
    first_poll: Mutex<Option<Instant>>,
    arrived: Notify,
    answered: Notify,
}

pub(crate) struct RuntimeApi {
    address: String,
    state: Arc<Invocations>,
}

impl RuntimeApi {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Invocations::default());
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, std::convert::Infallible>(route(&state, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, state }
    }

    /// Waits until the bootstrap asks for its first invocation: its init (config, clients,
    /// secrets) is done.
    pub(crate) async fn wait_for_init(&self, child: &mut Child) {
        let give_up = Instant::now() + Duration::from_secs(60);
        while self.state.first_poll.lock().unwrap().is_none() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the binary exited ({status}) during its init");
            }
            assert!(Instant::now() < give_up, "no first poll within 60 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Process start to the first poll for an invocation: the bootstrap's init, on its own.
    fn init_time(&self, started: Instant, answered: Instant) -> Duration {
        let polled = self
            .state
            .first_poll
            .lock()
            .unwrap()
            .expect("an answer came, so a poll did");
        assert!(polled <= answered, "the first poll comes before any answer");
        polled - started
    }

    pub(crate) fn invoke(&self, id: &str, event: String) {
        self.state
            .pending
            .lock()
            .unwrap()
            .push_back((id.to_owned(), event));
        self.state.arrived.notify_one();
    }

    /// Waits for the answer to invocation `id`: ("response" | "error", body, when it came).
    pub(crate) async fn answer(&self, id: &str, child: &mut Child) -> (String, Value, Instant) {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(found) = self.state.results.lock().unwrap().remove(id) {
                return found;
            }
            if let Some(error) = self.state.init_error.lock().unwrap().clone() {
                panic!("the binary reported an init error: {error}");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the binary exited ({status}) before answering {id}");
            }
            assert!(Instant::now() < give_up, "no answer to {id} within 60 s");
            let _ =
                tokio::time::timeout(Duration::from_millis(100), self.state.answered.notified())
                    .await;
        }
    }
}

async fn route(state: &Invocations, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if path == format!("{PREFIX}/invocation/next") {
        state
            .first_poll
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
        loop {
            let next = state.pending.lock().unwrap().pop_front();
            if let Some((id, event)) = next {
                let deadline = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64
                    + 300_000;
                return Response::builder()
                    .header("lambda-runtime-aws-request-id", id)
                    .header("lambda-runtime-deadline-ms", deadline.to_string())
                    .header(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:test",
                    )
                    .header(
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000",
                    )
                    .body(Full::new(Bytes::from(event)))
                    .unwrap();
            }
            state.arrived.notified().await;
        }
    }
    if path == format!("{PREFIX}/init/error") {
        *state.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
        state.answered.notify_waiters();
        return Response::builder()
            .status(202)
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    let rest = path
        .strip_prefix(&format!("{PREFIX}/invocation/"))
        .unwrap_or("");
    if let Some((id, kind)) = rest.split_once('/') {
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        state
            .results
            .lock()
            .unwrap()
            .insert(id.to_owned(), (kind.to_owned(), value, Instant::now()));
        state.answered.notify_waiters();
        return Response::builder()
            .status(202)
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    Response::builder()
        .status(404)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn binary(name: &str) -> String {
    match std::env::var("NANGO_SYNC_BOOTSTRAP_DIR") {
        // cargo-lambda's layout, or a plain target directory (target/release).
        Ok(dir) if std::path::Path::new(&format!("{dir}/{name}/bootstrap")).exists() => {
            format!("{dir}/{name}/bootstrap")
        }
        Ok(dir) => format!("{dir}/{name}"),
        Err(_) => match name {
            "webhook" => env!("CARGO_BIN_EXE_webhook").to_owned(),
            "worker" => env!("CARGO_BIN_EXE_worker").to_owned(),
            "outbox" => env!("CARGO_BIN_EXE_outbox").to_owned(),
            other => panic!("no binary {other}"),
        },
    }
}

/// Starts a bootstrap as Lambda would: the runtime variables plus the function's own (which
/// may override them, `AWS_LAMBDA_FUNCTION_NAME` for one).
pub(crate) fn start_bootstrap(name: &str, api: &RuntimeApi, env: &[(&str, String)]) -> Child {
    let mut command = Command::new(binary(name));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary(name)))
}

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn webhook_bootstrap_answers_every_sample_event() {
    let api = RuntimeApi::start().await;
    let queue = fifo_queue("runtime").await;
    let started = Instant::now();
    let mut child = Killed(start_bootstrap(
        "webhook",
        &api,
        &[
            ("QUEUE_URL", queue.queue_url().to_owned()),
            ("NANGO_WEBHOOK_SIGNING_KEY", TEST_SIGNING_KEY.to_owned()),
        ],
    ));
    let expected = expected_webhooks();
    for (i, (file, status, _)) in expected.iter().enumerate() {
        let id = format!("invocation-{i}");
        api.invoke(&id, read(&format!("events/{file}")));
        let (kind, body, at) = api.answer(&id, &mut child.0).await;
        if i == 0 {
            println!(
                "cold start, webhook ({}): init {:.1} ms, {} ms to the first response",
                binary("webhook"),
                api.init_time(started, at).as_secs_f64() * 1e3,
                (at - started).as_millis()
            );
        }
        assert_eq!(kind, "response", "{file}: {body}");
        assert_eq!(body["statusCode"], status.as_u16(), "{file}: {body}");
    }
    let enqueued = drain(&queue).await.len();
    assert_eq!(enqueued, expected.iter().map(|(_, _, n)| n).sum::<usize>());
}

async fn fifo_queue(name: &str) -> SqsQueue {
    SqsQueue::create_fifo(
        aws_sdk_sqs::Client::new(&moto_sdk_config().await),
        &format!("{}.fifo", unique_name(name)),
    )
    .await
    .unwrap()
}

/// Every message on `queue`'s bodies, received and deleted.
async fn drain(queue: &SqsQueue) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let batch = queue.receive(10, std::time::Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return bodies;
        }
        for m in batch {
            queue.delete(&m.receipt_handle).await.unwrap();
            bodies.push(m.body);
        }
    }
}

/// The outbox bootstrap, fed events/dynamodb-outbox.json (a DynamoDB stream batch of the outbox
/// table): the new items' requests land on SQS as write jobs, as events/expected.json says.
#[tokio::test]
async fn outbox_bootstrap_queues_the_sample_streams_write_requests() {
    let api = RuntimeApi::start().await;
    let queue = fifo_queue("outbox").await;
    let mut child = Killed(start_bootstrap(
        "outbox",
        &api,
        &[("QUEUE_URL", queue.queue_url().to_owned())],
    ));
    api.invoke("outbox-1", read("events/dynamodb-outbox.json"));
    let (kind, body, _) = api.answer("outbox-1", &mut child.0).await;
    let expected: Value = serde_json::from_str(&read("events/expected.json")).unwrap();
    let expected = &expected["dynamodb-outbox.json"];
    assert_eq!(kind, "response", "{body}");
    assert_eq!(body["batchItemFailures"], expected["batchItemFailures"]);
    let bodies = drain(&queue).await;
    assert_eq!(bodies.len() as u64, expected["queued"].as_u64().unwrap());
    let writes: Vec<String> = bodies
        .iter()
        .filter_map(
            |b| match nango_sync::core::job::JobMessage::decode(b).ok()?.job {
                nango_sync::core::job::Job::Write(request) => Some(request.id),
                _ => None,
            },
        )
        .collect();
    assert_eq!(writes, ["invoice-7-sync-owner"]);
}

/// What the worker bootstrap needs for events/sqs-batch.json: a Nango with the sample's stream
/// (40 contacts), and tables on moto.
struct SampleWorld {
    _nango: SimServer,
    /// The worker's queue: where the sample write's read-back sync goes.
    queue: SqsQueue,
    dynamo: aws_sdk_dynamodb::Client,
    records: String,
    /// The worker's variables, but for Nango's key.
    env: Vec<(&'static str, String)>,
}

impl SampleWorld {
    async fn new() -> Self {
        let sim = Arc::new(Simulator::new());
        sim.save(
            &contacts(),
            (0..40).map(|i| (format!("c{i}"), payload(i, 1))),
        );
        let nango = SimServer::start(sim, ServerSettings::default())
            .await
            .unwrap();
        let dynamo = aws_sdk_dynamodb::Client::new(&moto_sdk_config().await);
        let (records, state) = (unique_name("rt-records"), unique_name("rt-state"));
        create_table(&dynamo, &records).await.unwrap();
        create_table(&dynamo, &state).await.unwrap();
        let queue = SqsQueue::create_fifo(
            aws_sdk_sqs::Client::new(&moto_sdk_config().await),
            &format!("{}.fifo", unique_name("rt-follow")),
        )
        .await
        .unwrap();
        let env = vec![
            ("RECORDS_TABLE", records.clone()),
            ("STATE_TABLE", state),
            // The sample's write queues the sync that reads it back here.
            ("QUEUE_URL", queue.queue_url().to_owned()),
            ("NANGO_BASE_URL", nango.url.clone()),
        ];
        Self {
            _nango: nango,
            queue,
            dynamo,
            records,
            env,
        }
    }

    /// The worker's variables with these added.
    fn env_with(&self, more: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        self.env.iter().chain(more).cloned().collect()
    }

    /// The state of the write with this id, as the state table keeps it.
    async fn write_state(&self, id: &str) -> Option<String> {
        let state_table = &self
            .env
            .iter()
            .find(|(k, _)| *k == "STATE_TABLE")
            .unwrap()
            .1;
        let item = self
            .dynamo
            .get_item()
            .table_name(state_table)
            .key("pk", AttributeValue::S(format!("write#{id}")))
            .key("sk", AttributeValue::S("state".into()))
            .send()
            .await
            .unwrap()
            .item?;
        item.get("state")?.as_s().ok().cloned()
    }

    async fn records_written(&self) -> i32 {
        self.dynamo
            .scan()
            .table_name(&self.records)
            .send()
            .await
            .unwrap()
            .count
    }
}

#[tokio::test]
async fn worker_bootstrap_processes_the_sample_batch() {
    let api = RuntimeApi::start().await;
    let world = SampleWorld::new().await;
    let started = Instant::now();
    let mut child = Killed(start_bootstrap(
        "worker",
        &api,
        &world.env_with(&[("NANGO_API_KEY", API_KEY.to_owned())]),
    ));
    api.invoke("batch-1", read("events/sqs-batch.json"));
    let (kind, body, at) = api.answer("batch-1", &mut child.0).await;
    println!(
        "cold start, worker ({}): init {:.1} ms, {} ms to the first response (40 records synced)",
        binary("worker"),
        api.init_time(started, at).as_secs_f64() * 1e3,
        (at - started).as_millis()
    );
    assert_eq!(kind, "response", "{body}");
    let failures: Vec<&str> = body["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(failures, expected_batch_failures(), "{body}");
    assert_eq!(world.records_written().await, 40);
    // The sample write succeeded, and queued the sync that reads its record back.
    let follow_ups = world
        .queue
        .receive(10, Duration::from_secs(1))
        .await
        .unwrap();
    let sync: Vec<Value> = follow_ups
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect();
    assert_eq!(sync.len(), 1, "{sync:?}");
    assert_eq!(sync[0]["job"]["sync"]["trigger"], "write");
    assert_eq!(sync[0]["job"]["sync"]["stream"]["model"], "Deal");
    assert_eq!(
        world.write_state("sample-write-1").await.as_deref(),
        Some("succeeded")
    );
}

#[tokio::test]
async fn missing_config_stops_the_bootstrap_naming_the_variable() {
    let api = RuntimeApi::start().await;
    let child = start_bootstrap("worker", &api, &[]);
    let output = tokio::task::spawn_blocking(move || {
        let mut child = child;
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the bootstrap kept running without config"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    })
    .await
    .unwrap();
    let mut output = output;
    let status = output.wait().unwrap();
    assert!(
        !status.success(),
        "a bootstrap without config must fail at cold start"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(output.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("cold start failed: NANGO_API_KEY is not set"),
        "{stderr}"
    );
}

/// A sample webhook event with its body signed by `key` (the sample's body, a new signature).
fn event_signed_with(key: &str, id: usize) -> String {
    let mut event: Value = serde_json::from_str(&read("events/webhook-sync-success.json")).unwrap();
    // A body of its own per request, so SQS's deduplication does not hide a second job.
    let body = event["body"].as_str().unwrap().replacen(
        "\"syncName\"",
        &format!("\"n\":{id},\"syncName\""),
        1,
    );
    event["headers"]["x-nango-hmac-sha256"] =
        nango_sync::core::signature::sign(key.as_bytes(), body.as_bytes()).into();
    event["body"] = body.into();
    event.to_string()
}

/// The status the webhook bootstrap answers to a sample webhook signed with `key`.
async fn answer_status(api: &RuntimeApi, child: &mut Child, (n, key): (usize, &str)) -> u64 {
    let id = format!("invocation-{n}");
    api.invoke(&id, event_signed_with(key, n));
    let (kind, body, _) = api.answer(&id, child).await;
    assert_eq!(kind, "response", "{body}");
    body["statusCode"].as_u64().unwrap()
}

/// Issue "From clone to a running stack", item 3: a warm webhook function takes a rotated
/// secret within the re-read bound, from the same process; a flood of forged webhooks reads the
/// secret at most once per bound.
#[tokio::test]
async fn a_warm_webhook_bootstrap_takes_a_rotated_signing_key_and_a_forged_flood_costs_one_read() {
    let sdk = moto_sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret = crate::aws::secrets::put_secret("key-A").await;
    let queue = SqsQueue::create_fifo(
        aws_sdk_sqs::Client::new(&sdk),
        &format!("{}.fifo", unique_name("rotation")),
    )
    .await
    .unwrap();
    let proxy = crate::aws::fault_proxy::FaultProxy::start(moto_endpoint()).await;
    let reads = || {
        proxy
            .faults
            .secret_reads
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let api = RuntimeApi::start().await;
    let bound = Duration::from_secs(1);
    let mut child = Killed(start_bootstrap(
        "webhook",
        &api,
        &[
            ("QUEUE_URL", queue.queue_url().to_owned()),
            ("NANGO_WEBHOOK_SIGNING_KEY_SECRET", secret.clone()),
            ("SECRET_REREAD_SECONDS", bound.as_secs().to_string()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url.clone()),
        ],
    ));
    let mut n = 0;
    let mut status = |key: &'static str| {
        n += 1;
        (n, key)
    };
    assert_eq!(
        answer_status(&api, &mut child.0, status("key-A")).await,
        200
    );
    assert_eq!(reads(), 1, "the cold start read the secret once");

    // The rotation, as the README tells it: the new key current, the old one previous.
    secrets
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(r#"{"current":"key-B","previous":"key-A"}"#)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(bound).await;

    // A flood of forged webhooks: at most one read per bound, however many arrive.
    let flood_started = Instant::now();
    for _ in 0..40 {
        assert_eq!(
            answer_status(&api, &mut child.0, status("forged-key")).await,
            401
        );
    }
    let allowed = 1 + (flood_started.elapsed().as_secs_f64() / bound.as_secs_f64()) as u64;
    let flood_reads = reads() - 1;
    assert!(
        (1..=allowed).contains(&flood_reads),
        "40 forged webhooks in {:?} read the secret {flood_reads} times (at most {allowed})",
        flood_started.elapsed()
    );

    // That read took the rotation: the new key is honoured by the same warm process at once,
    // and the old one still verifies while Nango's servers finish the rotation.
    let before = reads();
    assert_eq!(
        answer_status(&api, &mut child.0, status("key-B")).await,
        200
    );
    assert_eq!(
        answer_status(&api, &mut child.0, status("key-A")).await,
        200
    );
    assert_eq!(reads(), before, "the rotated keys were already in hand");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the same process answered"
    );
}

/// The worker's side of item 3: Nango refuses the key the function read at cold start (the key
/// was rotated in Nango, then in the secret); the next job's 401 reads the secret again and the
/// same process syncs with the new key.
#[tokio::test]
async fn a_warm_worker_bootstrap_reads_a_rotated_api_key_on_a_401() {
    let sdk = moto_sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret = crate::aws::secrets::put_secret("the-key-nango-no-longer-takes").await;
    let world = SampleWorld::new().await;
    let proxy = crate::aws::fault_proxy::FaultProxy::start(moto_endpoint()).await;
    let api = RuntimeApi::start().await;
    let bound = Duration::from_secs(1);
    let mut child = Killed(start_bootstrap(
        "worker",
        &api,
        &world.env_with(&[
            ("NANGO_API_KEY_SECRET", secret.clone()),
            ("SECRET_REREAD_SECONDS", bound.as_secs().to_string()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url.clone()),
        ]),
    ));
    // The rotation comes after the cold start's read: once the bootstrap polls for work.
    api.wait_for_init(&mut child.0).await;
    secrets
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(API_KEY)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(bound).await;
    api.invoke("batch-1", read("events/sqs-batch.json"));
    let (kind, body, _) = api.answer("batch-1", &mut child.0).await;
    assert_eq!(kind, "response", "{body}");
    // Only the malformed message fails: the sync went through with the key read again.
    assert_eq!(
        body["batchItemFailures"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    assert_eq!(world.records_written().await, 40);
    assert_eq!(
        proxy
            .faults
            .secret_reads
            .load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the cold start's read and one after the 401"
    );
}
