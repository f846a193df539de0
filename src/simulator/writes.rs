//! Nango's write side as the simulator serves it (nango-writeback.md): tool calls, sync actions
//! and the proxy, backed by a fake provider that applies writes to the simulated records (so the
//! next sync shows them) and fails in the ways that matter ([`WriteFault`]).
//!
//! The fake provider's API: a tool or action named `save-<Model>` saves its input (an object
//! with an `id`) as that model's record of the connection, `delete-<Model>` deletes the record
//! `{"id": ...}`. Through the proxy, `PUT` or `POST /<Model>/<id>` saves the body, `PATCH`
//! merges it into the record, `DELETE` deletes it. An idempotency key (sent through the proxy as
//! `Nango-Proxy-Idempotency-Key`) is honoured as providers do: a key seen before is answered as
//! the first time and not applied again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use serde_json::{json, Map, Value};

use super::http::{error, json_response, InjectedReset};
use super::Simulator;
use crate::core::stream::{ConnectionKey, StreamKey, BASE_VARIANT};

/// How the next write goes wrong, scripted as [`super::server::Fault`]s are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// The provider applies the write, then the answer never comes: the connection is closed.
    ApplyThenDrop,
    /// Nango answers 500 before anything reached the provider.
    ServerErrorBefore,
    /// Nango's rate limit: 429 with `Retry-After: 1`.
    TooManyRequests,
    /// The provider refuses the write with a 422 (a tool or action: 424 `script_http_error`).
    Refuse,
}

/// One write the fake provider applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedWrite {
    pub connection: ConnectionKey,
    /// `tool`, `action` or `proxy`.
    pub via: &'static str,
    /// The tool or action name, or the proxy's method and path.
    pub operation: String,
    pub record_id: String,
    pub idempotency_key: Option<String>,
    /// The `Retries` header the proxy call carried, if any: Nango would have retried with it.
    pub nango_retries: Option<String>,
}

/// The provider behind the simulated Nango's write APIs.
#[derive(Debug, Default)]
pub struct FakeProvider {
    faults: Mutex<VecDeque<WriteFault>>,
    applied: Mutex<Vec<AppliedWrite>>,
    /// Idempotency keys seen, with the answer they got.
    answered: Mutex<BTreeMap<String, Value>>,
}

impl FakeProvider {
    /// Queues faults: each of the next writes gets the next one.
    pub fn inject(&self, faults: impl IntoIterator<Item = WriteFault>) {
        lock(&self.faults).extend(faults);
    }

    /// Every write applied so far, in order.
    pub fn applied(&self) -> Vec<AppliedWrite> {
        lock(&self.applied).clone()
    }

    /// How many writes to the record with this id were applied.
    pub fn applied_to(&self, record_id: &str) -> usize {
        lock(&self.applied)
            .iter()
            .filter(|w| w.record_id == record_id)
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `path` is one of Nango's write APIs.
pub(super) fn is_write(path: &str) -> bool {
    path == "/action/trigger"
        || path.starts_with("/proxy/")
        || (path.starts_with("/connections/") && path.ends_with("/calls"))
}

/// What a write asks the provider to do.
enum Change {
    Save(Map<String, Value>),
    Merge(Map<String, Value>),
    Delete,
}

/// A write as the route and body say it.
struct Call {
    via: &'static str,
    operation: String,
    connection: ConnectionKey,
    model: String,
    record_id: String,
    change: Change,
    idempotency_key: Option<String>,
    nango_retries: Option<String>,
}

type Answer = Response<Full<Bytes>>;

pub(super) async fn answer_write(
    sim: &Simulator,
    provider: &FakeProvider,
    request: Request<Incoming>,
) -> Result<Answer, InjectedReset> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(error(400, "invalid_body", "body unreadable"));
    };
    let call = match read_call(&parts, &body) {
        Ok(call) => call,
        Err(refused) => return Ok(*refused),
    };
    if !sim.connections().contains(&call.connection) {
        return Ok(match call.via {
            // The proxy answers an unknown connection with a bare server_error (writeback §Proxy).
            "proxy" => json_response(400, json!({"error": {"code": "server_error"}})),
            _ => error(
                400,
                "unknown_connection",
                "Provided ConnectionId and ProviderConfigKey does not match a valid connection",
            ),
        });
    }
    let fault = lock(&provider.faults).pop_front();
    match fault {
        Some(WriteFault::ServerErrorBefore) => {
            return Ok(error(500, "server_error", "An internal error occurred"))
        }
        Some(WriteFault::TooManyRequests) => {
            let mut r = error(429, "too_many_request", "Too many requests");
            r.headers_mut().insert("retry-after", 1.into());
            return Ok(r);
        }
        Some(WriteFault::Refuse) => return Ok(refusal(call.via)),
        Some(WriteFault::ApplyThenDrop) | None => {}
    }
    let output = apply(sim, provider, call);
    if fault == Some(WriteFault::ApplyThenDrop) {
        return Err(InjectedReset);
    }
    Ok(json_response(200, output))
}

/// The provider's 422, as each way passes it on.
fn refusal(via: &str) -> Answer {
    let provider = json!({"message": "Property values were not valid"});
    match via {
        "proxy" => json_response(422, provider),
        _ => json_response(
            424,
            json!({"error": {"code": "script_http_error", "message": "An error occured during an HTTP call",
                "upstream": {"status": 422, "headers": {}, "body": provider}}}),
        ),
    }
}

/// Applies a call once per idempotency key; its output.
fn apply(sim: &Simulator, provider: &FakeProvider, call: Call) -> Value {
    if let Some(key) = &call.idempotency_key {
        if let Some(first) = lock(&provider.answered).get(key) {
            return first.clone();
        }
    }
    let stream = StreamKey::new(
        call.connection.provider_config_key.clone(),
        call.connection.connection_id.clone(),
        call.model.clone(),
        BASE_VARIANT.to_owned(),
    );
    let id = call.record_id.clone();
    sim.tick();
    match call.change {
        Change::Save(mut payload) => {
            payload.insert("id".to_owned(), Value::String(id.clone()));
            sim.save(&stream, [(id.clone(), payload)]);
        }
        Change::Merge(fields) => {
            let mut payload = sim
                .live_payloads(&stream)
                .into_iter()
                .find_map(|(rid, p)| (rid == id).then_some(p))
                .unwrap_or_default();
            payload.extend(fields);
            payload.insert("id".to_owned(), Value::String(id.clone()));
            sim.save(&stream, [(id.clone(), payload)]);
        }
        Change::Delete => {
            sim.delete(&stream, &[id.as_str()]);
        }
    }
    let output = json!({"id": id, "model": call.model});
    if let Some(key) = &call.idempotency_key {
        lock(&provider.answered).insert(key.clone(), output.clone());
    }
    lock(&provider.applied).push(AppliedWrite {
        connection: call.connection,
        via: call.via,
        operation: call.operation,
        record_id: call.record_id,
        idempotency_key: call.idempotency_key,
        nango_retries: call.nango_retries,
    });
    output
}

fn read_call(parts: &hyper::http::request::Parts, body: &[u8]) -> Result<Call, Box<Answer>> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let missing = || {
        Box::new(json_response(
            400,
            json!({"error": {"code": "invalid_headers"}}),
        ))
    };
    let provider_config_key = header("provider-config-key").ok_or_else(missing)?;
    let path = parts.uri.path();
    let json_body = || -> Result<Value, Box<Answer>> {
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(body)
            .map_err(|_| Box::new(error(400, "invalid_body", "the body is not JSON")))
    };
    if let Some(rest) = path.strip_prefix("/proxy/") {
        let connection_id = header("connection-id").ok_or_else(missing)?;
        let mut segments = rest.splitn(2, '/');
        let (Some(model), Some(id)) = (segments.next(), segments.next()) else {
            return Err(Box::new(json_response(
                404,
                json!({"message": "Not Found"}),
            )));
        };
        let fields = || match json_body() {
            Ok(Value::Object(fields)) => Ok(fields),
            Ok(_) => Err(Box::new(json_response(
                400,
                json!({"message": "an object is expected"}),
            ))),
            Err(e) => Err(e),
        };
        let change = match parts.method {
            Method::PUT | Method::POST => Change::Save(fields()?),
            Method::PATCH => Change::Merge(fields()?),
            Method::DELETE => Change::Delete,
            _ => {
                return Err(Box::new(json_response(
                    405,
                    json!({"message": "Method Not Allowed"}),
                )))
            }
        };
        return Ok(Call {
            via: "proxy",
            operation: format!("{} /{rest}", parts.method),
            connection: ConnectionKey {
                provider_config_key,
                connection_id,
            },
            model: model.to_owned(),
            record_id: id.to_owned(),
            change,
            idempotency_key: header("nango-proxy-idempotency-key"),
            nango_retries: header("retries"),
        });
    }
    let body = json_body()?;
    let (via, connection_id, name, input) = if path == "/action/trigger" {
        let connection_id = header("connection-id").ok_or_else(missing)?;
        let name = body["action_name"].as_str().unwrap_or_default().to_owned();
        ("action", connection_id, name, body["input"].clone())
    } else {
        // /connections/{connectionId}/tools/{name}/calls
        let segments: Vec<&str> = path.split('/').collect();
        let (Some(connection_id), Some(name)) = (segments.get(2), segments.get(4)) else {
            return Err(Box::new(error(404, "not_found", "Not found")));
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        (
            "tool",
            decode(connection_id),
            decode(name),
            body["input"].clone(),
        )
    };
    let (change, model) = if let Some(model) = name.strip_prefix("save-") {
        let Value::Object(input) = input.clone() else {
            return Err(Box::new(error(
                400,
                "invalid_action_input",
                "an object is expected",
            )));
        };
        (Change::Save(input), model)
    } else if let Some(model) = name.strip_prefix("delete-") {
        (Change::Delete, model)
    } else {
        return Err(Box::new(error(404, "not_found", "Unknown action or tool")));
    };
    let Some(record_id) = input["id"].as_str().map(str::to_owned) else {
        return Err(Box::new(error(
            400,
            "invalid_action_input",
            "input.id is required",
        )));
    };
    Ok(Call {
        via,
        operation: name.clone(),
        connection: ConnectionKey {
            provider_config_key,
            connection_id,
        },
        model: model.to_owned(),
        record_id,
        change,
        idempotency_key: None,
        nango_retries: None,
    })
}
