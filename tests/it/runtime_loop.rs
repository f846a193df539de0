//! The real runtime loop: each built binary is started the way Lambda starts a `provided.al2023`
//! bootstrap, against a small Lambda Runtime API emulator here, and fed files from events/. This
//! proves `main` (config, clients, the runtime's poll/respond loop), not only the handler.
//!
//! By default the test's own debug binaries run. To time release builds instead:
//! `NANGO_SYNC_BOOTSTRAP_DIR=target/release scripts/test.sh --test it runtime_loop -- --nocapture`
//! (or a cargo-lambda output directory, `<dir>/webhook/bootstrap`, when it matches this machine).

use nango_sync::ports::JobConsumer;
use std::collections::{HashMap, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use nango_sync::adapters::aws::dynamodb::create_table;
use nango_sync::adapters::aws::sqs::SqsQueue;
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::Simulator;
use serde_json::Value;
use tokio::sync::Notify;

use crate::common::{
    contacts, moto_endpoint, moto_sdk_config, payload, read, unique_name, API_KEY, TEST_SIGNING_KEY,
};
use crate::events::EXPECTED;

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

struct RuntimeApi {
    address: String,
    state: Arc<Invocations>,
}

impl RuntimeApi {
    async fn start() -> Self {
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

    fn invoke(&self, id: &str, event: String) {
        self.state
            .pending
            .lock()
            .unwrap()
            .push_back((id.to_owned(), event));
        self.state.arrived.notify_one();
    }

    /// Waits for the answer to invocation `id`: ("response" | "error", body, when it came).
    async fn answer(&self, id: &str, child: &mut Child) -> (String, Value, Instant) {
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
            other => panic!("no binary {other}"),
        },
    }
}

/// Starts a bootstrap as Lambda would: the runtime variables plus the function's own.
fn start_bootstrap(name: &str, api: &RuntimeApi, env: &[(&str, String)]) -> Child {
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

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn webhook_bootstrap_answers_every_sample_event() {
    let api = RuntimeApi::start().await;
    let queue = SqsQueue::create_fifo(
        aws_sdk_sqs::Client::new(&moto_sdk_config().await),
        &format!("{}.fifo", unique_name("runtime")),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut child = Killed(start_bootstrap(
        "webhook",
        &api,
        &[
            ("QUEUE_URL", queue.queue_url().to_owned()),
            ("NANGO_WEBHOOK_SIGNING_KEY", TEST_SIGNING_KEY.to_owned()),
        ],
    ));
    for (i, (file, status, _)) in EXPECTED.iter().enumerate() {
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
    let mut enqueued = 0;
    loop {
        let batch = queue.receive(10, std::time::Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for m in batch {
            queue.delete(&m.receipt_handle).await.unwrap();
            enqueued += 1;
        }
    }
    assert_eq!(enqueued, EXPECTED.iter().map(|(_, _, n)| n).sum::<usize>());
}

#[tokio::test]
async fn worker_bootstrap_processes_the_sample_batch() {
    let api = RuntimeApi::start().await;
    let sim = Arc::new(Simulator::new());
    sim.save(
        &contacts(),
        (0..40).map(|i| (format!("c{i}"), payload(i, 1))),
    );
    let nango = SimServer::start(Arc::clone(&sim), ServerSettings::default())
        .await
        .unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&moto_sdk_config().await);
    let (records, state) = (unique_name("rt-records"), unique_name("rt-state"));
    create_table(&dynamo, &records).await.unwrap();
    create_table(&dynamo, &state).await.unwrap();
    let started = Instant::now();
    let mut child = Killed(start_bootstrap(
        "worker",
        &api,
        &[
            ("RECORDS_TABLE", records.clone()),
            ("STATE_TABLE", state),
            (
                "QUEUE_URL",
                format!("{}/123456789012/unused.fifo", moto_endpoint()),
            ),
            ("NANGO_API_KEY", API_KEY.to_owned()),
            ("NANGO_BASE_URL", nango.url.clone()),
        ],
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
    let failures = body["batchItemFailures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{body}");
    assert_eq!(
        failures[0]["itemIdentifier"],
        "7d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a09"
    );
    let count = dynamo
        .scan()
        .table_name(&records)
        .send()
        .await
        .unwrap()
        .count;
    assert_eq!(count, 40);
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
