//! A small HTTP proxy in front of moto that injects DynamoDB's failures, which moto never
//! produces by itself: throttling errors, 500s, and BatchWriteItem calls that come back with
//! part of their items in UnprocessedItems (only the other part is forwarded, so they really are
//! unwritten).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

#[derive(Default)]
pub struct Faults {
    /// The next N BatchWriteItem calls answer ProvisionedThroughputExceededException.
    pub throttle: AtomicU32,
    /// The next N BatchWriteItem calls answer 500 InternalServerError.
    pub internal_error: AtomicU32,
    /// The next N BatchWriteItem calls write only their first half and return the rest unprocessed.
    pub trim: AtomicU32,
    /// While non-zero, every BatchWriteItem call writes only its first N items and returns the
    /// rest unprocessed: a partition that stays hot (sustained throttling), not a countdown.
    pub admit: AtomicU32,
    /// The next N calls of any kind lose their connection without an answer.
    pub reset: AtomicU32,
    /// The next N UpdateItem calls reach DynamoDB, then lose their connection: applied, with
    /// the answer lost (the SDK sends the update again).
    pub lose_update_answer: AtomicU32,
    pub injected: AtomicU64,
    pub batch_writes: AtomicU64,
    /// Secrets Manager GetSecretValue calls that went through (a function's secret reads).
    pub secret_reads: AtomicU64,
}

pub struct FaultProxy {
    pub url: String,
    pub faults: Arc<Faults>,
}

impl FaultProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let faults = Arc::new(Faults::default());
        let shared = Arc::clone(&faults);
        let client = reqwest::Client::new();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let faults = Arc::clone(&shared);
                let client = client.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let faults = Arc::clone(&faults);
                        let client = client.clone();
                        let upstream = upstream.clone();
                        async move {
                            if take(&faults.reset) {
                                faults.injected.fetch_add(1, Ordering::Relaxed);
                                return Err("connection reset by the fault proxy");
                            }
                            let update = request
                                .headers()
                                .get("x-amz-target")
                                .and_then(|v| v.to_str().ok())
                                .is_some_and(|t| t.ends_with(".UpdateItem"));
                            if update && take(&faults.lose_update_answer) {
                                faults.injected.fetch_add(1, Ordering::Relaxed);
                                let _applied = handle(&faults, &client, &upstream, request).await;
                                return Err("answer lost by the fault proxy");
                            }
                            Ok(handle(&faults, &client, &upstream, request).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, faults }
    }
}

/// Which of a BatchWriteItem call's items are written.
enum Keep {
    Half,
    First(usize),
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn handle(
    faults: &Faults,
    client: &reqwest::Client,
    upstream: &str,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if target.ends_with(".GetSecretValue") {
        faults.secret_reads.fetch_add(1, Ordering::Relaxed);
    }
    let mut forward_body = body.clone();
    let mut unprocessed: Option<(String, Value)> = None;
    if target.ends_with(".BatchWriteItem") {
        faults.batch_writes.fetch_add(1, Ordering::Relaxed);
        if take(&faults.throttle) {
            faults.injected.fetch_add(1, Ordering::Relaxed);
            return error(
                400,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            );
        }
        if take(&faults.internal_error) {
            faults.injected.fetch_add(1, Ordering::Relaxed);
            return error(500, "InternalServerError", "Internal server error");
        }
        let admit = faults.admit.load(Ordering::SeqCst) as usize;
        let keep = if admit > 0 {
            Some(Keep::First(admit))
        } else if take(&faults.trim) {
            Some(Keep::Half)
        } else {
            None
        };
        if let Some(keep) = keep {
            let mut request: Value = serde_json::from_slice(&body).unwrap();
            let items = request["RequestItems"].as_object_mut().unwrap();
            let table = items.keys().next().unwrap().clone();
            let list = items[&table].as_array().unwrap().clone();
            let at = match keep {
                Keep::Half => list.len() / 2,
                Keep::First(n) => n,
            };
            if list.len() > 1 && at < list.len() {
                faults.injected.fetch_add(1, Ordering::Relaxed);
                let (first, rest) = list.split_at(at);
                items.insert(table.clone(), Value::Array(first.to_vec()));
                forward_body = Bytes::from(request.to_string());
                unprocessed = Some((table, Value::Array(rest.to_vec())));
            }
        }
    }
    let url = format!(
        "{upstream}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut builder = client.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            builder = builder.header(name, value);
        }
    }
    let response = match builder.body(forward_body).send().await {
        Ok(r) => r,
        Err(_) => return error(500, "InternalServerError", "proxy could not reach moto"),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let mut bytes = response.bytes().await.unwrap_or_default();
    if let Some((table, rest)) = unprocessed {
        let mut out: Value = serde_json::from_slice(&bytes).unwrap_or(json!({}));
        out["UnprocessedItems"] = json!({ table: rest });
        bytes = Bytes::from(out.to_string());
    }
    let mut builder = Response::builder().status(status.as_u16());
    for (name, value) in &headers {
        if name != "content-length" && name != "x-amz-crc32" && name != "transfer-encoding" {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
    }
    builder.body(Full::new(bytes)).unwrap()
}

fn error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(
            json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message}).to_string(),
        )))
        .unwrap()
}
