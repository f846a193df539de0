//! Nango's records API over HTTPS (reqwest + rustls), with the retries the contract calls for.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::StatusCode;

use crate::core::metrics::count_job_requests;
use crate::core::nango_status::{DiscoveredStream, NangoSync, RunStatus};
use crate::core::page_budget::{PageBudget, PageRoom, FIRST_PAGE_BYTES};
use crate::core::record::RecordsPage;
use crate::core::rotation::RotatingSecret;
use crate::core::stream::{StreamKey, BASE_VARIANT};
use crate::ports::{PermanentReason, RecordSource, SourceError, StreamDiscovery, MAX_IDS};
use crate::retry::RetryPolicy;

mod budget;
mod writes;
pub use budget::{Draw, RequestBudget, DEFAULT_WRITE_SHARE_PERCENT};

pub const DEFAULT_PAGE_LIMIT: u32 = 1000;
pub const MAX_PAGE_LIMIT: u32 = 10_000;
/// The `limit` of a [`RecordSource::fetch_ids`] request: room for as many records as ids.
const IDS_PAGE_LIMIT: u32 = MAX_IDS as u32;
/// Half of Nango's default per-account limit (200 requests a minute), leaving the rest to syncs.
pub const DEFAULT_DISCOVERY_REQUESTS_PER_MINUTE: u32 = 100;

/// Nango's own retry policy: 8 attempts per request after errors (5xx, timeouts, resets,
/// truncated bodies), from 250 ms up to 30 s.
pub const DEFAULT_RETRY: RetryPolicy =
    RetryPolicy::new(8, Duration::from_millis(250), Duration::from_secs(30));

/// How long a 429 asks to wait (contract §4.5). `Retry-After` wins when the answer has it (its 0
/// read as the least wait). Without it, `X-RateLimit-Reset` says when the window resets, and is
/// waited for only when `X-RateLimit-Remaining` is 0: a proxy's or a burst limiter's 429 often
/// carries a reset a minute away with points left. Otherwise the least wait. Bounded by `limits`.
pub fn rate_limit_wait(
    retry_after: Option<u64>,
    remaining: Option<u64>,
    reset_at: Option<u64>,
    now_secs: u64,
    limits: &RateLimits,
) -> Duration {
    let wait = match (retry_after, remaining, reset_at) {
        (Some(seconds), _, _) => Duration::from_secs(seconds),
        (None, Some(0), Some(reset)) => Duration::from_secs(reset.saturating_sub(now_secs)),
        _ => Duration::ZERO,
    };
    wait.clamp(limits.min_wait, limits.max_wait.max(limits.min_wait))
}

/// How 429s are waited out: as Nango asks, within bounds, with a budget of their own (a busy
/// shared account is not an outage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// 429 answers tolerated per request.
    pub max_waits: u32,
    /// The least wait (Nango's Retry-After can be 0).
    pub min_wait: Duration,
    /// The longest wait.
    pub max_wait: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            max_waits: 30,
            min_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(120),
        }
    }
}

/// The records client. Built once per process; cheap to share by reference.
#[derive(Clone)]
pub struct NangoClient {
    http: reqwest::Client,
    /// Writes to the provider (writes.rs): no redirect followed, since following one would
    /// send the write again. Built at the first write, so a worker that sends none pays nothing
    /// at cold start.
    write_http: Arc<std::sync::OnceLock<reqwest::Client>>,
    base_url: String,
    /// Shared by clones; read again on a 401 when it comes from Secrets Manager (a rotation).
    api_key: Arc<RotatingSecret<String>>,
    page_limit: u32,
    retry: RetryPolicy,
    rate_limits: RateLimits,
    discovery_requests_per_minute: u32,
    /// Nango's rate limit as the process knows it, shared by clones: every stream and discovery
    /// draw from it.
    budget: Arc<RequestBudget>,
    /// The record pages the process holds in memory at once, shared by clones; none: no bound.
    page_budget: Option<PageBudget>,
}

impl std::fmt::Debug for NangoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NangoClient")
            .field("base_url", &self.base_url)
            .field("page_limit", &self.page_limit)
            .finish_non_exhaustive()
    }
}

/// One attempt's result, before the retry decision.
enum Attempt<T> {
    Page(T),
    Retry { why: String },
    RateLimited { wait: Duration },
    Fail(SourceError),
}

impl NangoClient {
    pub fn new(
        base_url: &str,
        api_key: impl Into<String>,
        page_limit: u32,
        retry: RetryPolicy,
    ) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("nango-sync/", env!("CARGO_PKG_VERSION")))
            // Nango's own records query gives up after 60 s.
            .timeout(Duration::from_secs(70))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a TLS client with default settings builds");
        Self {
            http,
            write_http: Arc::default(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: Arc::new(RotatingSecret::fixed(api_key.into())),
            page_limit: page_limit.clamp(1, MAX_PAGE_LIMIT),
            retry,
            rate_limits: RateLimits::default(),
            discovery_requests_per_minute: DEFAULT_DISCOVERY_REQUESTS_PER_MINUTE,
            budget: Arc::default(),
            page_budget: Some(PageBudget::default()),
        }
    }

    /// The bound on the record pages the process holds in memory at once (default:
    /// [`PageBudget::default`]).
    pub fn with_page_budget(mut self, budget: PageBudget) -> Self {
        self.page_budget = Some(budget);
        self
    }

    /// Nango's API base URL, as given.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The API key as a secret that can be read again (from Secrets Manager), instead of the
    /// fixed one `new` took.
    pub fn with_api_key(mut self, api_key: RotatingSecret<String>) -> Self {
        self.api_key = Arc::new(api_key);
        self
    }

    /// How 429s are waited out (default: [`RateLimits::default`]).
    pub fn with_rate_limits(mut self, rate_limits: RateLimits) -> Self {
        self.rate_limits = rate_limits;
        self
    }

    /// How many requests a minute discovery may make (`GET /sync/status` per connection).
    /// The share of each window of Nango's rate limit that record reads leave to writes to the
    /// provider, in percent (default [`DEFAULT_WRITE_SHARE_PERCENT`], at most 90).
    pub fn with_write_share(mut self, percent: u64) -> Self {
        self.budget = Arc::new(RequestBudget::with_write_share(percent));
        self
    }

    pub fn with_discovery_rate(mut self, requests_per_minute: u32) -> Self {
        self.discovery_requests_per_minute = requests_per_minute.max(1);
        self
    }

    fn sync_status_url(&self, provider_config_key: &str, connection_id: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("provider_config_key", provider_config_key)
            .append_pair("syncs", "*")
            .append_pair("connection_id", connection_id)
            .finish();
        format!("{}/sync/status?{query}", self.base_url)
    }

    /// The request URL, encoded as the official SDK does (URLSearchParams order and escaping).
    pub fn records_url(&self, stream: &StreamKey, cursor: Option<&str>, limit: u32) -> String {
        self.records_url_among(stream, cursor, limit, &[])
    }

    /// The URL of [`RecordSource::fetch_ids`]: room for every id in one page, no cursor, and the
    /// ids last.
    fn ids_url(&self, stream: &StreamKey, ids: &[&str]) -> String {
        self.records_url_among(stream, None, IDS_PAGE_LIMIT, ids)
    }

    /// [`NangoClient::records_url`], then one `ids` pair per id, appended last as the SDK does.
    fn records_url_among(
        &self,
        stream: &StreamKey,
        cursor: Option<&str>,
        limit: u32,
        ids: &[&str],
    ) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("model", &stream.model);
        if stream.variant != BASE_VARIANT {
            query.append_pair("variant", &stream.variant);
        }
        query.append_pair("limit", &limit.to_string());
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            query.append_pair("cursor", cursor);
        }
        for id in ids {
            query.append_pair("ids", id);
        }
        format!("{}/records/?{}", self.base_url, query.finish())
    }

    /// One GET, sent again at once if Nango refused the key and a newer one could be read (the
    /// key was rotated under a warm process).
    async fn attempt<T>(
        &self,
        url: &str,
        stream: Option<&StreamKey>,
        parse: &(impl Fn(&[u8], PageRoom) -> Result<T, String> + Sync),
    ) -> Attempt<T> {
        let key = self.api_key.fresh().await;
        let attempt = self.attempt_with(&key, url, stream, parse).await;
        let refused = matches!(
            attempt,
            Attempt::Fail(SourceError::Permanent {
                reason: PermanentReason::Unauthorized,
                ..
            })
        );
        if refused {
            if let Some(newer) = self.api_key.after_refusal(&key).await {
                return self.attempt_with(&newer, url, stream, parse).await;
            }
        }
        attempt
    }

    /// One GET with `key`; `stream` adds the connection headers the records API wants.
    async fn attempt_with<T>(
        &self,
        key: &str,
        url: &str,
        stream: Option<&StreamKey>,
        parse: &(impl Fn(&[u8], PageRoom) -> Result<T, String> + Sync),
    ) -> Attempt<T> {
        count_job_requests(|tally| tally.requests += 1);
        let mut request = self
            .http
            .get(url)
            .header(AUTHORIZATION, format!("Bearer {key}"));
        if let Some(stream) = stream {
            request = request
                .header("Connection-Id", &stream.connection_id)
                .header("Provider-Config-Key", &stream.provider_config_key);
        }
        let response = request.send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    why: format!("request failed: {}", without_url(&e)),
                }
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        if status != StatusCode::TOO_MANY_REQUESTS {
            self.observe_rate_limit(&headers);
        }
        // A page's body waits for room in the process's page budget, once Nango is ready to send
        // it: a stream waiting on a slow Nango holds no room.
        let room = match (&self.page_budget, stream) {
            (Some(budget), Some(_)) if status.is_success() => {
                let bytes = response.content_length().map_or(FIRST_PAGE_BYTES, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                });
                budget.room_for(bytes).await
            }
            _ => PageRoom::default(),
        };
        // A body cut short (reset, truncation) fails here or in the parse below: both retried.
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    why: format!("body read failed: {}", without_url(&e)),
                }
            }
        };
        if status.is_success() {
            return match parse(&body, room) {
                Ok(value) => Attempt::Page(value),
                Err(why) => Attempt::Retry { why },
            };
        }
        let code = error_code(&body);
        match status {
            StatusCode::TOO_MANY_REQUESTS => Attempt::RateLimited {
                wait: self.rate_limit_wait(&headers),
            },
            s if s.is_server_error() => Attempt::Retry {
                why: format!("{s} {}", code.as_deref().unwrap_or("")),
            },
            StatusCode::UNAUTHORIZED => Attempt::Fail(permanent(
                PermanentReason::Unauthorized,
                "check NANGO_API_KEY (the environment's secret key)",
                code,
            )),
            StatusCode::FORBIDDEN => Attempt::Fail(permanent(
                PermanentReason::Forbidden,
                "give the API key the environment:records:read scope",
                code,
            )),
            _ if code.as_deref() == Some("unknown_connection") => Attempt::Fail(permanent(
                PermanentReason::UnknownConnection,
                "the connection was deleted in Nango; remove the stream or re-create the connection",
                code,
            )),
            s => Attempt::Fail(permanent(
                PermanentReason::BadRequest,
                &format!("Nango answered {s}"),
                code,
            )),
        }
    }

    /// Tells the budget what an answer that passed Nango's limiter says is left.
    fn observe_rate_limit(&self, headers: &HeaderMap) {
        let (Some(remaining), Some(reset)) = (
            header_number(headers, "x-ratelimit-remaining"),
            header_number(headers, "x-ratelimit-reset"),
        ) else {
            return;
        };
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let reset_in = Duration::from_secs(reset).saturating_sub(since_epoch);
        let limit = header_number(headers, "x-ratelimit-limit");
        self.budget
            .observe(Instant::now(), remaining, reset_in, limit);
    }

    /// Waits for a point of the process's request budget. No wait runs past `until`: deferred.
    async fn wait_for_budget(
        &self,
        label: &str,
        until: Option<Instant>,
        draw: Draw,
    ) -> Result<(), SourceError> {
        while let Err(wait) = self.budget.take(Instant::now(), draw) {
            if until.is_some_and(|until| Instant::now() + wait > until) {
                tracing::info!(stream = %label, ?wait, "Nango's rate limit leaves no request before the deadline; deferred to a continuation");
                return Err(SourceError::Deferred { wait });
            }
            tokio::time::sleep(wait).await;
            self.count_wait(wait);
        }
        Ok(())
    }

    fn count_wait(&self, wait: Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        count_job_requests(|tally| tally.waited_ms += ms);
    }

    fn rate_limit_wait(&self, headers: &HeaderMap) -> Duration {
        let number = |name: &str| header_number(headers, name);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        rate_limit_wait(
            number("retry-after"),
            number("x-ratelimit-remaining"),
            number("x-ratelimit-reset"),
            now,
            &self.rate_limits,
        )
    }

    /// A GET retried as the contract asks: 429s waited out, errors backed off, 4xx final. No
    /// wait runs past `until` (the invocation's deadline less its margin): the request is
    /// deferred instead, and the job continues in a later invocation.
    async fn get_with_retries<T>(
        &self,
        url: &str,
        stream: Option<&StreamKey>,
        until: Option<Instant>,
        parse: impl Fn(&[u8], PageRoom) -> Result<T, String> + Sync,
    ) -> Result<T, SourceError> {
        let label = stream.map(StreamKey::encode).unwrap_or_default();
        let (mut errors, mut rate_limited) = (0, 0);
        let message = loop {
            self.wait_for_budget(&label, until, Draw::Read).await?;
            let (wait, for_rate_limit) = match self.attempt(url, stream, &parse).await {
                Attempt::Page(value) => return Ok(value),
                Attempt::Fail(error) => return Err(error),
                Attempt::RateLimited { wait } => {
                    rate_limited += 1;
                    // Every request of the process waits too, not only this one.
                    self.budget.pause(Instant::now(), wait);
                    count_job_requests(|tally| tally.rate_limited += 1);
                    if rate_limited >= self.rate_limits.max_waits {
                        break format!("429 rate limited {rate_limited} times");
                    }
                    tracing::debug!(stream = %label, ?wait, "rate limited; waiting as Nango asks");
                    (wait, true)
                }
                Attempt::Retry { why } => {
                    errors += 1;
                    tracing::debug!(stream = %label, errors, %why, "Nango request will be retried");
                    if !self.retry.allows_another(errors) {
                        break why;
                    }
                    (self.retry.backoff(errors - 1), false)
                }
            };
            if until.is_some_and(|until| Instant::now() + wait > until) {
                tracing::info!(stream = %label, ?wait, "the wait would outlast the invocation; deferred to a continuation");
                return Err(SourceError::Deferred { wait });
            }
            tokio::time::sleep(wait).await;
            if for_rate_limit {
                self.count_wait(wait);
            }
        };
        Err(SourceError::Transient {
            attempts: errors + rate_limited,
            message,
        })
    }
}

impl RecordSource for NangoClient {
    #[tracing::instrument(skip_all, fields(stream = %stream.encode()))]
    async fn fetch_page(
        &self,
        stream: &StreamKey,
        cursor: Option<&str>,
        until: Option<Instant>,
    ) -> Result<RecordsPage, SourceError> {
        let url = self.records_url(stream, cursor, self.page_limit);
        let result = self
            .get_with_retries(&url, Some(stream), until, parse_page)
            .await;
        // Nango answers 500 for a cursor it cannot decode. When 500s persist with a cursor but the
        // stream reads fine without one, the cursor is the problem: say so, with the remedy.
        if let (Err(SourceError::Transient { message, .. }), Some(_)) = (&result, cursor) {
            let probe = self.records_url(stream, None, 1);
            if message.starts_with("500")
                && self
                    .attempt(&probe, Some(stream), &parse_page)
                    .await
                    .is_page()
            {
                return Err(permanent(
                    PermanentReason::CursorRejected,
                    "reset the stream's cursor (nango-sync reset) to re-read it from the start",
                    None,
                ));
            }
        }
        result
    }

    /// One request, with fetch_page's retries, rate-limit budget and error mapping. No ids, no
    /// request: an empty `ids` would read the stream's first page instead.
    #[tracing::instrument(skip_all, fields(stream = %stream.encode(), ids = ids.len()))]
    async fn fetch_ids(
        &self,
        stream: &StreamKey,
        ids: &[&str],
        until: Option<Instant>,
    ) -> Result<RecordsPage, SourceError> {
        SourceError::check_id_count(ids.len())?;
        if ids.is_empty() {
            return Ok(RecordsPage::default());
        }
        let url = self.ids_url(stream, ids);
        self.get_with_retries(&url, Some(stream), until, parse_page)
            .await
    }
}

/// A header's value as a whole number, if it is one.
fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

fn parse_page(body: &[u8], room: PageRoom) -> Result<RecordsPage, String> {
    let mut page = RecordsPage::parse(body).map_err(|e| e.to_string())?;
    page.room = room;
    Ok(page)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], _: PageRoom) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("unexpected response body: {e}"))
}

#[derive(serde::Deserialize)]
struct ConnectionsWire {
    connections: Vec<ConnectionWire>,
}

#[derive(serde::Deserialize)]
struct ConnectionWire {
    connection_id: String,
    provider_config_key: String,
}

#[derive(serde::Deserialize)]
struct SyncStatusWire {
    syncs: Vec<SyncWire>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyncWire {
    name: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    record_count: Option<std::collections::BTreeMap<String, u64>>,
    #[serde(default)]
    latest_result: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    latest_execution_status: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    /// Absent on Nango versions without checkpoints; null when no pass is under way.
    #[serde(default, deserialize_with = "present")]
    checkpoint: Option<Option<serde_json::Value>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`, via `default`).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<serde_json::Value>>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

impl NangoClient {
    /// A connection's streams as `GET /sync/status` reports them (one request).
    async fn streams_of(
        &self,
        provider_config_key: &str,
        connection_id: &str,
    ) -> Result<Vec<DiscoveredStream>, SourceError> {
        let url = self.sync_status_url(provider_config_key, connection_id);
        let status: SyncStatusWire = self.get_with_retries(&url, None, None, parse_json).await?;
        let mut found = Vec::new();
        for sync in status.syncs {
            let variant = sync
                .variant
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| BASE_VARIANT.to_owned());
            let counts = sync.record_count.unwrap_or_default();
            let mut models: std::collections::BTreeSet<String> = counts.keys().cloned().collect();
            models.extend(sync.latest_result.unwrap_or_default().into_keys());
            for model in models {
                found.push(DiscoveredStream {
                    stream: StreamKey::new(provider_config_key, connection_id, &model, &variant),
                    sync_name: sync.name.clone(),
                    sync: NangoSync {
                        record_count: counts.get(&model).copied(),
                        status: sync.status.as_deref().map(RunStatus::parse),
                        latest_execution: sync
                            .latest_execution_status
                            .as_deref()
                            .map(RunStatus::parse),
                        finished_at: sync.finished_at.clone(),
                        checkpoint: sync
                            .checkpoint
                            .as_ref()
                            .map(|c| c.as_ref().is_some_and(|v| !v.is_null())),
                    },
                });
            }
        }
        Ok(found)
    }
}

impl NangoClient {
    /// The connections the API key sees (`GET /connections`): Nango reached, the key taken.
    pub async fn count_connections(&self) -> Result<usize, SourceError> {
        let url = format!("{}/connections", self.base_url);
        let connections: ConnectionsWire =
            self.get_with_retries(&url, None, None, parse_json).await?;
        Ok(connections.connections.len())
    }
}

impl StreamDiscovery for NangoClient {
    /// `GET /connections`, then `GET /sync/status` per connection, paced so that discovery takes
    /// at most `discovery_requests_per_minute` of the account's shared rate limit.
    async fn discover(&self) -> Result<Vec<DiscoveredStream>, SourceError> {
        let url = format!("{}/connections", self.base_url);
        let connections: ConnectionsWire =
            self.get_with_retries(&url, None, None, parse_json).await?;
        let pace = Duration::from_secs(60) / self.discovery_requests_per_minute.max(1);
        let mut found = Vec::new();
        for connection in connections.connections {
            tokio::time::sleep(pace).await;
            found.extend(
                self.streams_of(&connection.provider_config_key, &connection.connection_id)
                    .await?,
            );
        }
        Ok(found)
    }

    async fn sync_of(&self, stream: &StreamKey) -> Result<Option<NangoSync>, SourceError> {
        let streams = self
            .streams_of(&stream.provider_config_key, &stream.connection_id)
            .await?;
        Ok(streams
            .into_iter()
            .find(|d| d.stream == *stream)
            .map(|d| d.sync))
    }
}

impl<T> Attempt<T> {
    fn is_page(&self) -> bool {
        matches!(self, Attempt::Page(_))
    }
}

fn permanent(reason: PermanentReason, remedy: &str, code: Option<String>) -> SourceError {
    let message = match code {
        Some(code) => format!("{remedy} (Nango error code {code})"),
        None => remedy.to_owned(),
    };
    SourceError::Permanent { reason, message }
}

/// Nango's `{"error":{"code":".."}}`, when the body has one.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("error")?.get("code")?.as_str().map(str::to_owned)
}

/// reqwest errors print the URL, which holds the cursor: keep logs short and payload-free.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_matches_the_sdk_encoding() {
        let client = NangoClient::new("https://api.nango.dev/", "k", 500, DEFAULT_RETRY);
        let stream = StreamKey::new("hubspot", "user-42", "Contact", "eu");
        let url = client.records_url(&stream, Some("MjAy+/MQ=="), 500);
        assert_eq!(
            url,
            "https://api.nango.dev/records/?model=Contact&variant=eu&limit=500&cursor=MjAy%2B%2FMQ%3D%3D"
        );
        let base = StreamKey::new("hubspot", "user-42", "Contact", "base");
        assert_eq!(
            client.records_url(&base, None, 1000),
            "https://api.nango.dev/records/?model=Contact&limit=1000"
        );
    }

    #[test]
    fn ids_url_appends_one_encoded_pair_per_id_last() {
        let client = NangoClient::new("https://api.nango.dev/", "k", 500, DEFAULT_RETRY);
        let stream = StreamKey::new("hubspot", "user-42", "Contact", "eu");
        assert_eq!(
            client.ids_url(&stream, &["a b", "c+d", "e/f", "g=h,i:j"]),
            "https://api.nango.dev/records/?model=Contact&variant=eu&limit=100\
             &ids=a+b&ids=c%2Bd&ids=e%2Ff&ids=g%3Dh%2Ci%3Aj"
        );
        let base = StreamKey::new("hubspot", "user-42", "Contact", "base");
        assert_eq!(
            client.ids_url(&base, &["c1"]),
            "https://api.nango.dev/records/?model=Contact&limit=100&ids=c1"
        );
    }

    #[tokio::test]
    async fn more_ids_than_nango_takes_fail_before_any_request() {
        // Nothing listens on port 9: a request would fail as transient, not permanent.
        let once = RetryPolicy::new(1, Duration::from_millis(1), Duration::from_millis(1));
        let client = NangoClient::new("http://127.0.0.1:9", "k", 100, once);
        let stream = StreamKey::new("hubspot", "user-42", "Contact", "base");
        let ids: Vec<String> = (0..=MAX_IDS).map(|i| format!("c{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let refused = client.fetch_ids(&stream, &ids, None).await;
        assert!(
            matches!(
                refused,
                Err(SourceError::Permanent {
                    reason: PermanentReason::BadRequest,
                    ref message,
                }) if message.contains("at most 100")
            ),
            "{refused:?}"
        );
        let empty = client.fetch_ids(&stream, &[], None).await;
        assert_eq!(empty, Ok(RecordsPage::default()), "no ids, no request");
    }

    #[test]
    fn page_limit_is_clamped_to_nango_bounds() {
        assert_eq!(
            NangoClient::new("http://x", "k", 0, DEFAULT_RETRY).page_limit,
            1
        );
        assert_eq!(
            NangoClient::new("http://x", "k", 50_000, DEFAULT_RETRY).page_limit,
            10_000
        );
    }

    #[test]
    fn retry_after_wins_and_the_reset_counts_only_when_no_points_are_left() {
        let limits = RateLimits::default();
        let now = 1_000;
        let wait = |retry_after, remaining, reset| {
            rate_limit_wait(retry_after, remaining, reset, now, &limits).as_secs()
        };
        // A proxy's 429: Retry-After 1, the window's reset a minute away.
        assert_eq!(wait(Some(1), Some(0), Some(now + 60)), 1);
        assert_eq!(wait(Some(1), Some(150), Some(now + 60)), 1);
        // Nango's own Retry-After can be 0: the least wait.
        assert_eq!(wait(Some(0), None, None), 1);
        // No Retry-After: the reset only when no points are left.
        assert_eq!(wait(None, Some(0), Some(now + 30)), 30);
        assert_eq!(wait(None, Some(5), Some(now + 60)), 1);
        assert_eq!(wait(None, None, Some(now + 60)), 1);
        assert_eq!(wait(None, Some(0), Some(now - 5)), 1, "a reset in the past");
        assert_eq!(wait(None, None, None), 1);
        // Bounded.
        assert_eq!(wait(Some(600), None, None), 120);
    }

    #[test]
    fn debug_hides_the_api_key() {
        let client = NangoClient::new("http://x", "secret-api-key", 10, DEFAULT_RETRY);
        assert!(!format!("{client:?}").contains("secret-api-key"));
    }
}
