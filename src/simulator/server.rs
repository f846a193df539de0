//! The simulator over HTTP: `GET /records` as Nango serves it (contract §4), with fault injection,
//! and the write APIs (`writes`).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use super::http::{error, json_response, InjectedReset};
use super::writes::{self, FakeProvider};
use super::{SimError, Simulator};
use crate::core::stream::{StreamKey, BASE_VARIANT};

/// One scripted fault, served instead of (or before) the next request's real answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 500 server_error.
    ServerError,
    /// 503 from a proxy in front.
    Unavailable,
    /// 429 with this Retry-After (seconds; Nango sends 0 too).
    TooManyRequests { retry_after: u64 },
    /// 429 with these rate-limit headers, as Nango or a proxy in front sends them: Retry-After
    /// (if any), X-RateLimit-Remaining, and X-RateLimit-Reset `reset_in` seconds from now.
    RateLimited {
        retry_after: Option<u64>,
        remaining: u64,
        reset_in: u64,
    },
    /// A 200 whose body stops halfway.
    Truncated,
    /// The connection is closed without an answer.
    Reset,
    /// The real answer, this much later.
    Delay(Duration),
}

/// How the server behaves besides its data.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The API key it accepts as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// Latency added to every answer.
    pub latency: Duration,
    /// Largest page it serves, whatever `limit` asks (Nango's byte budget can cut pages short).
    pub max_page: usize,
    /// Share of requests (0 to 1) answered with a random fault: 500, 503, a truncated body, a
    /// slow answer (50 to 400 ms late) or a reset connection.
    pub fault_rate: f64,
    /// Share of requests (0 to 1) answered 429 as a burst limiter in front of Nango answers:
    /// `Retry-After: 0` or `1`, with `X-RateLimit-Remaining` 0 to 3 and `X-RateLimit-Reset` up to
    /// 60 s away (so a client that waits for the reset instead of Retry-After waits long).
    pub rate_limit_rate: f64,
    /// Nango's per-account rate limit, if any: past it, 429s until the window resets.
    pub account_limit: Option<AccountLimit>,
}

/// Nango's per-account rate limit: so many requests a window. Every answer says how many are left
/// (`X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` in epoch seconds); past the
/// limit, 429 with Remaining 0 until the window resets. Windows end on whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimit {
    pub requests: u64,
    pub window: Duration,
}

/// The current window of an [`AccountLimit`].
#[derive(Debug)]
struct Window {
    ends: std::time::Instant,
    ends_epoch: u64,
    used: u64,
}

/// What the limiter says of one request: let through or not, and the headers it gets.
#[derive(Debug, Clone, Copy)]
struct LimitAnswer {
    allowed: bool,
    limit: u64,
    remaining: u64,
    reset_epoch: u64,
}

fn take_from(window: &mut Option<Window>, limit: AccountLimit) -> LimitAnswer {
    let now = std::time::Instant::now();
    if window.as_ref().is_none_or(|w| now >= w.ends) {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ends_epoch = (epoch + limit.window).as_secs_f64().ceil() as u64;
        let ends = now + (Duration::from_secs(ends_epoch).saturating_sub(epoch));
        *window = Some(Window {
            ends,
            ends_epoch,
            used: 0,
        });
    }
    let w = window.as_mut().expect("set above");
    let allowed = w.used < limit.requests;
    if allowed {
        w.used += 1;
    }
    LimitAnswer {
        allowed,
        limit: limit.requests,
        remaining: limit.requests - w.used,
        reset_epoch: w.ends_epoch,
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            api_key: "00000000-0000-4000-8000-000000000000".into(),
            latency: Duration::ZERO,
            max_page: 10_000,
            fault_rate: 0.0,
            rate_limit_rate: 0.0,
            account_limit: None,
        }
    }
}

/// Counters of what the server answered.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub requests: AtomicU64,
    pub pages: AtomicU64,
    pub faults: AtomicU64,
    /// Requests answered 429 for the account's rate limit ([`AccountLimit`]).
    pub over_limit: AtomicU64,
    /// `POST /sync/trigger` requests taken.
    pub sync_triggers: AtomicU64,
}

/// A running simulator server.
pub struct SimServer {
    pub url: String,
    pub sim: Arc<Simulator>,
    pub stats: Arc<ServerStats>,
    /// The provider behind the write APIs: what it applied, and its faults.
    pub provider: Arc<FakeProvider>,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SimServer {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    pub async fn start(sim: Arc<Simulator>, settings: ServerSettings) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("valid address"), sim, settings).await
    }

    /// Binds `address` and serves until dropped.
    pub async fn start_on(
        address: std::net::SocketAddr,
        sim: Arc<Simulator>,
        settings: ServerSettings,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stats = Arc::new(ServerStats::default());
        let faults = Arc::new(Mutex::new(VecDeque::new()));
        let provider = Arc::new(FakeProvider::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let state = Arc::new(State {
            sim: Arc::clone(&sim),
            rates: Mutex::new(FaultRates {
                fault: settings.fault_rate,
                rate_limit: settings.rate_limit_rate,
            }),
            settings,
            stats: Arc::clone(&stats),
            faults: Arc::clone(&faults),
            provider: Arc::clone(&provider),
            window: Mutex::default(),
        });
        tokio::spawn(serve(state, listener, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            url,
            sim,
            stats,
            provider,
            faults,
            stop: Some(stop),
        })
    }

    /// Queues faults: each of the next requests gets the next fault.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(faults);
    }

    pub fn pending_faults(&self) -> usize {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct State {
    sim: Arc<Simulator>,
    settings: ServerSettings,
    /// The random fault rates, as set at start or by the last `POST /_simulator/round`.
    rates: Mutex<FaultRates>,
    stats: Arc<ServerStats>,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    provider: Arc<FakeProvider>,
    window: Mutex<Option<Window>>,
}

#[derive(Debug, Clone, Copy)]
struct FaultRates {
    fault: f64,
    rate_limit: f64,
}

async fn serve(state: Arc<State>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            () = &mut shutdown => return,
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { answer(&state, request).await }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    state: &State,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, InjectedReset> {
    if request.uri().path() == ROUND_PATH {
        return Ok(round(state, &request));
    }
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    if !state.settings.latency.is_zero() {
        tokio::time::sleep(state.settings.latency).await;
    }
    let Some(limit) = state.settings.account_limit else {
        return answer_within_limit(state, request).await;
    };
    let answer = take_from(
        &mut state.window.lock().unwrap_or_else(|e| e.into_inner()),
        limit,
    );
    let mut response = if answer.allowed {
        answer_within_limit(state, request).await?
    } else {
        state.stats.over_limit.fetch_add(1, Ordering::Relaxed);
        json_response(
            429,
            json!({"error": {"code": "too_many_request", "method": "GET", "path": "/records"}}),
        )
    };
    // An injected fault's own headers stand (a proxy's 429 says what the proxy says).
    let fault_429 = answer.allowed && response.status() == StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    if !answer.allowed {
        // As Nango computes it: whole seconds until the reset, rounded down (so it can be 0).
        let until_reset = Duration::from_secs(answer.reset_epoch).saturating_sub(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        headers.insert("retry-after", until_reset.as_secs().into());
    }
    if !fault_429 {
        headers.insert("x-ratelimit-limit", answer.limit.into());
        headers.insert("x-ratelimit-remaining", answer.remaining.into());
        headers.insert("x-ratelimit-reset", answer.reset_epoch.into());
    }
    Ok(response)
}

/// The answer of a request the account's limit let through: a fault, or the real answer.
async fn answer_within_limit(
    state: &State,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, InjectedReset> {
    let fault = state
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front()
        .or_else(|| random_fault(*state.rates.lock().unwrap_or_else(|e| e.into_inner())));
    if fault.is_some() {
        state.stats.faults.fetch_add(1, Ordering::Relaxed);
    }
    match fault {
        Some(Fault::ServerError) => {
            return Ok(error(500, "server_error", "Failed to fetch records"))
        }
        Some(Fault::Unavailable) => return Ok(text(503, "Service Unavailable")),
        Some(Fault::TooManyRequests { retry_after }) => {
            let mut r = json_response(
                429,
                json!({"error": {"code": "too_many_request", "method": "GET", "path": "/records"}}),
            );
            r.headers_mut().insert(
                "retry-after",
                retry_after.to_string().parse().expect("digits"),
            );
            return Ok(r);
        }
        Some(Fault::RateLimited {
            retry_after,
            remaining,
            reset_in,
        }) => {
            let mut r = json_response(
                429,
                json!({"error": {"code": "too_many_request", "method": "GET", "path": "/records"}}),
            );
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() + reset_in)
                .unwrap_or(reset_in);
            let headers = r.headers_mut();
            headers.insert("x-ratelimit-remaining", remaining.into());
            headers.insert("x-ratelimit-reset", reset.into());
            if let Some(seconds) = retry_after {
                headers.insert("retry-after", seconds.into());
            }
            return Ok(r);
        }
        Some(Fault::Reset) => return Err(InjectedReset),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Truncated) | None => {}
    }
    if let Some(id) = request
        .uri()
        .path()
        .strip_prefix("/action/")
        .filter(|_| request.method() == hyper::Method::GET)
    {
        if let Some(refused) = refuse_auth(state, &request) {
            return Ok(refused);
        }
        return Ok(writes::answer_action_result(&state.provider, id));
    }
    if request.uri().path() == "/sync/trigger" && request.method() == hyper::Method::POST {
        if let Some(refused) = refuse_auth(state, &request) {
            return Ok(refused);
        }
        return Ok(sync_trigger(state, request).await);
    }
    if writes::is_write(request.uri().path()) {
        if let Some(refused) = refuse_auth(state, &request) {
            return Ok(refused);
        }
        return writes::answer_write(&state.sim, &state.provider, request).await;
    }
    Ok(records(state, &request, fault == Some(Fault::Truncated)))
}

/// A fault drawn at the current rates, if any.
fn random_fault(rates: FaultRates) -> Option<Fault> {
    let roll = fastrand::f64();
    if roll < rates.rate_limit {
        return Some(Fault::RateLimited {
            retry_after: Some(fastrand::u64(0..=1)),
            remaining: fastrand::u64(0..=3),
            reset_in: fastrand::u64(1..=60),
        });
    }
    if roll < rates.rate_limit + rates.fault {
        return Some(match fastrand::u8(0..5) {
            0 => Fault::ServerError,
            1 => Fault::Unavailable,
            2 => Fault::Truncated,
            3 => Fault::Delay(Duration::from_millis(fastrand::u64(50..400))),
            _ => Fault::Reset,
        });
    }
    None
}

/// The simulator's own control path (not Nango's API): `POST /_simulator/round?churn=F` runs a
/// round of changes on every stream (`Simulator::churn`, one tick later) and, with `fault_rate`
/// and `rate_limit_rate`, sets the random fault rates from then on. Benchmarks use it to sync a
/// clean backfill first and then time a round of changes under faults.
const ROUND_PATH: &str = "/_simulator/round";

fn round(state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(refused) = refuse_auth(state, request) {
        return refused;
    }
    if request.method() != hyper::Method::POST {
        return text(405, "Method Not Allowed");
    }
    let mut churn = 0.0;
    let mut rates = *state.rates.lock().unwrap_or_else(|e| e.into_inner());
    let query = request.uri().query().unwrap_or("");
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "churn" => &mut churn,
            "fault_rate" => &mut rates.fault,
            "rate_limit_rate" => &mut rates.rate_limit,
            _ => return query_error("unrecognized_keys", &key),
        };
        match value.parse::<f64>() {
            Ok(share) if (0.0..=1.0).contains(&share) => *slot = share,
            _ => return query_error("invalid_type", &key),
        }
    }
    state.sim.tick();
    let mut rng = fastrand::Rng::new();
    let mut total = super::Changes::default();
    for stream in state.sim.streams() {
        let changes = state.sim.churn(&stream, churn, &mut rng);
        total.added += changes.added;
        total.updated += changes.updated;
        total.deleted += changes.deleted;
    }
    *state.rates.lock().unwrap_or_else(|e| e.into_inner()) = rates;
    json_response(
        200,
        json!({"added": total.added, "updated": total.updated, "deleted": total.deleted}),
    )
}

/// Nango's 401 when the request lacks the API key as a bearer token.
fn refuse_auth(state: &State, request: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let expected = format!("Bearer {}", state.settings.api_key);
    match request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        None => Some(auth_error("missing_auth_header")),
        Some(v) if v != expected => Some(auth_error("unknown_account")),
        Some(_) => None,
    }
}

fn records(state: &State, request: &Request<Incoming>, truncate: bool) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let headers = request.headers();
    if let Some(refused) = refuse_auth(state, request) {
        return refused;
    }
    match path {
        "/records" | "/records/" => {}
        "/connections" => return connections(state),
        "/sync/status" => return sync_status(state, request.uri().query().unwrap_or("")),
        _ => return text(404, "Not Found"),
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(connection_id), Some(provider_config_key)) =
        (header("connection-id"), header("provider-config-key"))
    else {
        return json_response(
            400,
            json!({"error": {"code": "invalid_headers", "errors": []}}),
        );
    };
    let query = match RecordsQuery::parse(request.uri().query().unwrap_or("")) {
        Ok(query) => query,
        Err(refused) => return *refused,
    };
    let Some(model) = query.model.filter(|m| valid_model(m)) else {
        return query_error("invalid_format", "model");
    };
    let stream = StreamKey::new(
        provider_config_key,
        connection_id,
        model,
        query.variant.unwrap_or_else(|| BASE_VARIANT.to_owned()),
    );
    let limit = query.limit.min(state.settings.max_page);
    let ids: Vec<&str> = query.ids.iter().map(String::as_str).collect();
    let page = if ids.is_empty() {
        state.sim.page(&stream, query.cursor.as_deref(), limit)
    } else {
        state
            .sim
            .page_among(&stream, query.cursor.as_deref(), limit, &ids)
    };
    match page {
        Ok(page) => {
            state.stats.pages.fetch_add(1, Ordering::Relaxed);
            let mut body = Bytes::from(page.to_string());
            if truncate {
                body = body.slice(..body.len() / 2);
            }
            let mut response = json_response(200, serde_json::Value::Null);
            *response.body_mut() = Full::new(body);
            response
        }
        Err(SimError::UnknownConnection) => json_response(
            400,
            json!({"error": {"code": "unknown_connection", "message": "Provided ConnectionId and ProviderConfigKey does not match a valid connection"}}),
        ),
        Err(SimError::BadCursor) => error(500, "server_error", "Failed to fetch records"),
    }
}

/// The most `ids` one request takes (contract §4.2): Nango's own bound, kept apart from the
/// client's so that the simulator checks the client rather than agreeing with it.
const MAX_IDS: usize = 100;
/// The longest id, in UTF-16 units as Zod counts a string's length.
const MAX_ID_LEN: usize = 256;

/// The query of `GET /records`, as Nango's strict schema lets it through (contract §4.2).
#[derive(Debug)]
struct RecordsQuery {
    model: Option<String>,
    variant: Option<String>,
    cursor: Option<String>,
    limit: usize,
    /// Every `ids` and `ids[]` value, in order; none: no filter.
    ids: Vec<String>,
}

impl RecordsQuery {
    /// Reads the query, or the 400 Nango answers: a key it does not know, a limit out of range,
    /// or ids past its bounds (more than 100, or one empty or over 256 characters).
    fn parse(query: &str) -> Result<Self, Box<Response<Full<Bytes>>>> {
        let mut parsed = Self {
            model: None,
            variant: None,
            cursor: None,
            limit: 100,
            ids: Vec::new(),
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "model" => parsed.model = Some(value.into_owned()),
                "variant" => parsed.variant = Some(value.into_owned()),
                "cursor" => parsed.cursor = Some(value.into_owned()),
                "limit" => match value.parse::<usize>() {
                    Ok(n) if (1..=10_000).contains(&n) => parsed.limit = n,
                    _ => return Err(Box::new(query_error("too_big", "limit"))),
                },
                "ids" | "ids[]" => parsed.ids.push(value.into_owned()),
                "modified_after" | "delta" | "filter" => {}
                other => {
                    return Err(Box::new(json_response(
                        400,
                        json!({"error": {"code": "invalid_query_params", "errors": [{"code": "unrecognized_keys", "message": format!("Unrecognized key: \"{other}\""), "path": []}]}}),
                    )))
                }
            }
        }
        if !valid_ids(&parsed.ids) {
            // Nango's schema: one id, or an array of at most 100; neither matched is a union's
            // failure.
            return Err(Box::new(query_error("invalid_union", "ids")));
        }
        Ok(parsed)
    }
}

/// Whether Nango's schema takes these ids: at most 100, each of 1 to 256 characters.
fn valid_ids(ids: &[String]) -> bool {
    ids.len() <= MAX_IDS
        && ids
            .iter()
            .all(|id| (1..=MAX_ID_LEN).contains(&id.encode_utf16().count()))
}

/// `GET /connections` (contract §6).
fn connections(state: &State) -> Response<Full<Bytes>> {
    let list: Vec<serde_json::Value> = state
        .sim
        .connections()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"id": i + 1, "connection_id": c.connection_id, "provider_config_key": c.provider_config_key,
                   "provider": c.provider_config_key, "errors": [], "end_user": null, "tags": {}, "metadata": null,
                   "created": "2026-11-27T00:00:00.000Z"})
        })
        .collect();
    json_response(200, json!({ "connections": list }))
}

/// `POST /sync/trigger` (contract §6): the syncs of a known connection are asked to run. The
/// simulated cache is always up to date with the fake provider (its writes land there at
/// once), so running them changes nothing; the request is counted.
async fn sync_trigger(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        return error(400, "invalid_body", "body unreadable");
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(400, "invalid_body", "the body is not JSON");
    };
    let text = |name: &str| body[name].as_str().map(str::to_owned);
    let (Some(provider_config_key), Some(connection_id)) =
        (text("provider_config_key"), text("connection_id"))
    else {
        return error(
            400,
            "invalid_body",
            "provider_config_key and connection_id are required",
        );
    };
    if body["syncs"].as_array().is_none_or(|s| s.is_empty()) {
        return error(400, "invalid_body", "syncs is required");
    }
    let connection = crate::core::stream::ConnectionKey {
        provider_config_key,
        connection_id,
    };
    if !state.sim.connections().contains(&connection) {
        return error(
            400,
            "unknown_connection",
            "Provided ConnectionId and ProviderConfigKey does not match a valid connection",
        );
    }
    state.stats.sync_triggers.fetch_add(1, Ordering::Relaxed);
    json_response(200, json!({"success": true}))
}

/// `GET /sync/status?provider_config_key=..&syncs=*&connection_id=..` (contract §6).
fn sync_status(state: &State, query: &str) -> Response<Full<Bytes>> {
    let mut pck = None;
    let mut connection_id = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "provider_config_key" => pck = Some(value.into_owned()),
            "connection_id" => connection_id = Some(value.into_owned()),
            _ => {}
        }
    }
    let (Some(pck), Some(connection_id)) = (pck, connection_id) else {
        return query_error("invalid_type", "provider_config_key");
    };
    let connection = crate::core::stream::ConnectionKey {
        provider_config_key: pck,
        connection_id,
    };
    if !state.sim.connections().contains(&connection) {
        // Nango answers an unknown connection with 400 invalid_body (contract §6).
        return json_response(
            400,
            json!({"error": {"code": "invalid_body", "message": "Unknown connection"}}),
        );
    }
    let syncs: Vec<serde_json::Value> = state
        .sim
        .sync_status(&connection)
        .into_iter()
        .map(|(stream, name, sync)| {
            let run = state.sim.run(&stream);
            let status = |s: Option<crate::core::nango_status::RunStatus>| serde_json::to_value(s).unwrap_or_default();
            json!({"id": format!("{name}-{}", stream.variant), "connection_id": connection.connection_id,
                   "name": name, "variant": stream.variant, "status": status(sync.status),
                   "latestExecutionStatus": status(sync.latest_execution), "type": "INCREMENTAL",
                   "finishedAt": sync.finished_at, "nextScheduledSyncAt": null, "frequency": "every hour",
                   "latestResult": {}, "recordCount": { stream.model.clone(): sync.record_count },
                   "checkpoint": run.checkpoint})
        })
        .collect();
    json_response(200, json!({ "syncs": syncs }))
}

fn valid_model(m: &str) -> bool {
    let mut chars = m.chars();
    m.len() >= 2
        && m.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn text(status: u16, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("valid response")
}

fn auth_error(code: &str) -> Response<Full<Bytes>> {
    json_response(
        401,
        json!({"error": {"message": "Authentication failed. The provided secret key is invalid.", "code": code, "payload": {}}}),
    )
}

fn query_error(code: &str, path: &str) -> Response<Full<Bytes>> {
    json_response(
        400,
        json!({"error": {"code": "invalid_query_params", "errors": [{"code": code, "message": format!("invalid {path}"), "path": [path]}]}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// The 400 a query gets, as its status and JSON body.
    async fn refusal(query: &str) -> (u16, serde_json::Value) {
        let response = *RecordsQuery::parse(query).expect_err("refused");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn ids_are_read_repeated_and_as_an_array_decoded() {
        let query =
            RecordsQuery::parse("model=Contact&limit=100&ids=a+b&ids%5B%5D=c%2Bd&ids=e%2Ff")
                .unwrap();
        assert_eq!(query.ids, ["a b", "c+d", "e/f"]);
        assert_eq!(query.limit, 100);
        assert!(RecordsQuery::parse("model=Contact").unwrap().ids.is_empty());
    }

    #[tokio::test]
    async fn ids_past_nangos_bounds_are_a_400() {
        let hundred: String = (0..100).map(|i| format!("&ids=c{i}")).collect();
        assert!(RecordsQuery::parse(&format!("model=Contact{hundred}")).is_ok());
        let too_long = "x".repeat(257);
        for query in [
            format!("model=Contact{hundred}&ids=c100"),
            "model=Contact&ids=".to_owned(),
            format!("model=Contact&ids={too_long}"),
        ] {
            let (status, body) = refusal(&query).await;
            assert_eq!(status, 400, "{query}");
            assert_eq!(body["error"]["code"], "invalid_query_params");
            assert_eq!(body["error"]["errors"][0]["code"], "invalid_union");
            assert_eq!(body["error"]["errors"][0]["path"], json!(["ids"]));
        }
    }
}
