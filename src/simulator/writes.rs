//! Nango's write side as the simulator serves it (nango-writeback.md): tool calls, actions (sync,
//! and async: answered 202, run when told, one at a time, their result at `GET /action/{id}`,
//! 404 until then and once purged) and the proxy, backed by a fake provider that applies writes to the simulated records (so the
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
    /// An async action is taken (it runs later) and its 202 is lost.
    ApplyThenDrop,
    /// Nango answers 500 before anything reached the provider.
    ServerErrorBefore,
    /// Nango's rate limit: 429 with `Retry-After: 1`.
    TooManyRequests,
    /// The provider refuses the write with a 422 (a tool or action: 424 `script_http_error`).
    /// An async action is taken, and fails so when it runs.
    Refuse,
    /// A tool's or action's script applies the write, then fails (a runtime error: 500 with
    /// the script's code). An async action does so when it runs.
    ApplyThenFail,
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
    /// Async actions Nango took, by id, in the order taken.
    actions: Mutex<Vec<(String, AsyncAction)>>,
}

/// An async action as the simulated Nango holds it.
#[derive(Debug)]
enum AsyncAction {
    /// Taken, not run yet, to end as `fault` says (none: well).
    Waiting {
        call: Box<Call>,
        fault: Option<WriteFault>,
    },
    /// Run: the status and body `GET /action/{id}` answers.
    Done { status: u16, body: Value },
    /// Its result was purged: 404, as for an id never seen.
    Purged,
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

    /// Runs every async action waiting, one at a time in the order taken, as Nango does; the
    /// connection and id of each, for the `async_action` webhooks to send
    /// (`super::webhooks::async_action_done`).
    pub fn run_async_actions(&self, sim: &Simulator) -> Vec<(ConnectionKey, String)> {
        let mut finished = Vec::new();
        loop {
            let next = {
                let mut actions = lock(&self.actions);
                let waiting = actions
                    .iter_mut()
                    .find(|(_, a)| matches!(a, AsyncAction::Waiting { .. }));
                waiting.map(|(id, action)| {
                    let taken = std::mem::replace(action, AsyncAction::Purged);
                    (id.clone(), taken)
                })
            };
            let Some((id, AsyncAction::Waiting { call, fault })) = next else {
                return finished;
            };
            let connection = call.connection.clone();
            let done = match fault {
                Some(WriteFault::Refuse) => AsyncAction::Done {
                    status: 424,
                    body: script_refusal_body(),
                },
                Some(WriteFault::ApplyThenFail) => {
                    apply(sim, self, *call);
                    AsyncAction::Done {
                        status: 500,
                        body: script_failure_body(),
                    }
                }
                _ => AsyncAction::Done {
                    status: 200,
                    body: apply(sim, self, *call),
                },
            };
            if let Some((_, action)) = lock(&self.actions).iter_mut().find(|(i, _)| *i == id) {
                *action = done;
            }
            finished.push((connection, id));
        }
    }

    /// Purges every finished async action's result, as Nango does about 5 days after it ended.
    pub fn purge_action_results(&self) {
        for (_, action) in lock(&self.actions).iter_mut() {
            if matches!(action, AsyncAction::Done { .. }) {
                *action = AsyncAction::Purged;
            }
        }
    }

    /// How many async actions were taken.
    pub fn async_actions_taken(&self) -> usize {
        lock(&self.actions).len()
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
#[derive(Debug)]
enum Change {
    Save(Map<String, Value>),
    Merge(Map<String, Value>),
    Delete,
}

/// A write as the route and body say it.
#[derive(Debug)]
struct Call {
    via: &'static str,
    operation: String,
    connection: ConnectionKey,
    model: String,
    record_id: String,
    change: Change,
    idempotency_key: Option<String>,
    nango_retries: Option<String>,
    /// An action with `X-Async: true`: taken now, run later.
    run_async: bool,
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
        _ if call.run_async => {}
        Some(WriteFault::Refuse) => return Ok(refusal(call.via)),
        Some(WriteFault::ApplyThenDrop | WriteFault::ApplyThenFail) | None => {}
    }
    if call.run_async {
        // Taken, to run later (`FakeProvider::run_async_actions`); a refusal comes when it runs,
        // a dropped answer after it was taken.
        let id = new_uuid();
        let waiting = AsyncAction::Waiting {
            call: Box::new(call),
            fault: fault.filter(|f| matches!(f, WriteFault::Refuse | WriteFault::ApplyThenFail)),
        };
        lock(&provider.actions).push((id.clone(), waiting));
        if fault == Some(WriteFault::ApplyThenDrop) {
            return Err(InjectedReset);
        }
        let mut r = json_response(202, json!({"id": id, "statusUrl": format!("/action/{id}")}));
        if let Ok(location) = format!("/action/{id}").parse() {
            r.headers_mut().insert("location", location);
        }
        return Ok(r);
    }
    let output = apply(sim, provider, call);
    if fault == Some(WriteFault::ApplyThenDrop) {
        return Err(InjectedReset);
    }
    if fault == Some(WriteFault::ApplyThenFail) {
        return Ok(json_response(500, script_failure_body()));
    }
    Ok(json_response(200, output))
}

/// The provider's 422, as each way passes it on.
fn refusal(via: &str) -> Answer {
    match via {
        "proxy" => json_response(422, provider_refusal()),
        _ => json_response(424, script_refusal_body()),
    }
}

fn provider_refusal() -> Value {
    json!({"message": "Property values were not valid"})
}

/// A script that failed after it ran (a runtime error), as a tool or action answers it (500).
fn script_failure_body() -> Value {
    json!({"error": {"code": "script_runtime_error", "message": "The function failed"}})
}

/// A script's failed call to the provider, as a tool or action answers it (424).
fn script_refusal_body() -> Value {
    json!({"error": {"code": "script_http_error", "message": "An error occured during an HTTP call",
        "upstream": {"status": 422, "headers": {}, "body": provider_refusal()}}})
}

/// `GET /action/{id}`: the result of an async action once it ran; 404 `not_found` while it
/// waits, for an id never taken, and once purged; 400 for an id that is not a UUID.
pub(super) fn answer_action_result(provider: &FakeProvider, id: &str) -> Answer {
    if !is_uuid(id) {
        return error(400, "invalid_uri_params", "Invalid action id");
    }
    let actions = lock(&provider.actions);
    match actions.iter().find(|(i, _)| i == id).map(|(_, a)| a) {
        Some(AsyncAction::Done { status, body }) => json_response(*status, body.clone()),
        _ => error(404, "not_found", "Action not found"),
    }
}

fn is_uuid(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn new_uuid() -> String {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect()
    };
    format!("{}-{}-4{}-a{}-{}", hex(8), hex(4), hex(3), hex(3), hex(12))
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
            run_async: false,
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
        run_async: via == "action"
            && header("x-async").is_some_and(|v| v.eq_ignore_ascii_case("true")),
    })
}
