//! Writes to the provider through Nango (nango-writeback.md): a tool call, a sync action or a
//! proxy request, sent once, its answer classified ([`Sent`]). Nothing is retried here: whether
//! a write goes again is the at-most-once rules' decision (`core::writes`), and Nango's own
//! retries are never asked for (no `Retries` header, no `X-Max-Retries`). A write draws on the
//! process's one request budget, as the record reads do.

use std::time::Duration;

use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde_json::json;

use super::{error_code, without_url, Draw, NangoClient};
use crate::core::stream::StreamKey;
use crate::core::writes::request::{Operation, ProxyMethod, WriteRequest};
use crate::core::writes::state::{ActionResult, Attempt, Sent};
use crate::ports::{SourceError, WriteSender};

/// The longest wait for a point of the process's request budget before a write gives up the
/// attempt as not sent; with [`REQUEST_TIMEOUT`], within the attempt's 90 s.
const BUDGET_WAIT: Duration = Duration::from_secs(30);

/// The longest a write's request may take (a sync action may run longer in Nango: past this, it
/// is an attempt that may have reached the provider).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(55);

/// Which of Nango's write APIs answered: they say the same status in different ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A tool call or an action: Nango runs a script that calls the provider.
    Script,
    /// The proxy: the provider's own answer, passed through.
    Proxy,
}

impl WriteSender for NangoClient {
    async fn send(&self, request: &WriteRequest) -> Sent {
        // The budget's wait is bounded, so that it and the request fit the attempt's time limit
        // (`TakeSettings::attempt_timeout`): a write that waited that long never went out.
        let until = Some(std::time::Instant::now() + BUDGET_WAIT);
        if let Err(SourceError::Deferred { wait }) =
            self.wait_for_budget(&request.id, until, Draw::Write).await
        {
            let mut sent = not_sent(
                true,
                format!("Nango's rate limit: nothing sent for {wait:?}"),
            );
            sent.retry_after = Some(wait);
            return sent;
        }
        let key = self.api_key.fresh().await;
        let (sent, unauthorized) = self.send_with(&key, request).await;
        if unauthorized {
            // A key rotated under a warm process: read once more and send again (nothing ran).
            if let Some(newer) = self.api_key.after_refusal(&key).await {
                return self.send_with(&newer, request).await.0;
            }
        }
        sent
    }

    async fn trigger_sync(&self, stream: &StreamKey, sync_name: &str) -> Result<(), String> {
        let until = Some(std::time::Instant::now() + BUDGET_WAIT);
        if let Err(SourceError::Deferred { wait }) =
            self.wait_for_budget(sync_name, until, Draw::Write).await
        {
            return Err(format!("Nango's rate limit: not asked for {wait:?}"));
        }
        let key = self.api_key.fresh().await;
        let body = json!({
            "syncs": [{"name": sync_name, "variant": stream.variant}],
            "provider_config_key": stream.provider_config_key,
            "connection_id": stream.connection_id,
        });
        let response = self
            .write_http()
            .post(format!("{}/sync/trigger", self.base_url))
            .header(AUTHORIZATION, format!("Bearer {key}"))
            .json(&body)
            .send()
            .await
            .map_err(|e| without_url(&e))?;
        let status = response.status().as_u16();
        self.observe_rate_limit(response.headers());
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(detail(status, &body))
    }

    async fn action_result(&self, request: &WriteRequest, action_id: &str) -> ActionResult {
        let until = Some(std::time::Instant::now() + BUDGET_WAIT);
        if let Err(SourceError::Deferred { wait }) =
            self.wait_for_budget(&request.id, until, Draw::Write).await
        {
            return ActionResult::NotLearned(format!("Nango's rate limit: not asked for {wait:?}"));
        }
        let mut url = match reqwest::Url::parse(&self.base_url) {
            Ok(url) => url,
            Err(e) => return ActionResult::NotLearned(e.to_string()),
        };
        if url.path_segments_mut().is_err() {
            return ActionResult::NotLearned("Nango's URL takes no path".to_owned());
        }
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["action", action_id]);
        }
        let key = self.api_key.fresh().await;
        let response = self
            .write_http()
            .get(url)
            .header(AUTHORIZATION, format!("Bearer {key}"))
            .header("Provider-Config-Key", &request.provider_config_key)
            .header("Connection-Id", &request.connection_id)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return ActionResult::NotLearned(without_url(&e)),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let code = error_code(&body);
        match status {
            // Not finished, an id Nango does not know (or not one of its ids), or a purged result.
            404 => ActionResult::NotFound,
            400 if code.as_deref() == Some("invalid_uri_params") => ActionResult::NotFound,
            429 => {
                let wait = self.rate_limit_wait(&headers);
                self.budget.pause(std::time::Instant::now(), wait);
                ActionResult::NotLearned(format!("429 from Nango: asked again in {wait:?}"))
            }
            401 => {
                let _ = self.api_key.after_refusal(&key).await;
                ActionResult::NotLearned("Nango refused the key".to_owned())
            }
            _ => {
                self.observe_rate_limit(&headers);
                result_of(status, &body)
            }
        }
    }
}

impl NangoClient {
    fn write_http(&self) -> &reqwest::Client {
        self.write_http.get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("nango-sync/", env!("CARGO_PKG_VERSION")))
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a TLS client with default settings builds")
        })
    }

    /// One request with `key`; whether Nango refused the key.
    async fn send_with(&self, key: &str, request: &WriteRequest) -> (Sent, bool) {
        let (builder, via) = match self.write_request(request) {
            Ok(built) => built,
            Err(why) => return (not_sent(false, why), false),
        };
        let response = builder
            .header(AUTHORIZATION, format!("Bearer {key}"))
            .header("Provider-Config-Key", &request.provider_config_key)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            // Refused before the request went out: nothing reached Nango.
            Err(e) if e.is_connect() || e.is_builder() => {
                return (not_sent(e.is_connect(), without_url(&e)), false)
            }
            // A timeout or a dropped connection once the request was out: it may have run.
            Err(e) => {
                let detail = format!("no answer from Nango: {}", without_url(&e));
                return (unsure(detail), false);
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // A body that cannot be read leaves the status to say what happened.
        let body = response.bytes().await.unwrap_or_default();
        // Through the proxy an answer may be the provider's own: only Nango's error codes
        // speak for Nango's rate limit and key.
        let from_nango = via == Via::Script || nango_error(&body);
        if status == 429 {
            let wait = self.rate_limit_wait(&headers);
            if from_nango {
                // Every request of the process waits too, as for the record reads.
                self.budget.pause(std::time::Instant::now(), wait);
            }
            let who = if from_nango { "Nango" } else { "the provider" };
            let mut sent = not_sent(true, format!("429 from {who}: nothing applied"));
            sent.retry_after = Some(wait);
            return (sent, false);
        }
        if via == Via::Script && status != 401 {
            self.observe_rate_limit(&headers);
        }
        let mut attempt = classify(via, status, &body);
        if attempt == Attempt::Succeeded && is_async(request) {
            // Taken, not run: it runs later under the id Nango gave it.
            attempt = match action_id(&body) {
                Some(action_id) => Attempt::Started { action_id },
                None => Attempt::Unsure,
            };
        }
        let detail = detail(status, &body);
        let sent = Sent {
            attempt,
            detail: Some(detail),
            retry_after: None,
        };
        (sent, status == 401 && from_nango)
    }

    fn write_request(
        &self,
        request: &WriteRequest,
    ) -> Result<(reqwest::RequestBuilder, Via), String> {
        match &request.run {
            Operation::Tool { name, input } => {
                let mut url = reqwest::Url::parse(&self.base_url).map_err(|e| e.to_string())?;
                url.path_segments_mut()
                    .map_err(|()| "Nango's URL takes no path".to_owned())?
                    .pop_if_empty()
                    .extend([
                        "connections",
                        &request.connection_id,
                        "tools",
                        name,
                        "calls",
                    ]);
                let body = json!({ "input": input });
                Ok((self.write_http().post(url).json(&body), Via::Script))
            }
            Operation::Action {
                name,
                input,
                run_async,
            } => {
                let body = json!({ "action_name": name, "input": input });
                let mut builder = self
                    .write_http()
                    .post(format!("{}/action/trigger", self.base_url))
                    .header("Connection-Id", &request.connection_id)
                    .json(&body);
                if *run_async {
                    // No `X-Max-Retries`: a retry is the at-most-once rules' decision.
                    builder = builder.header("X-Async", "true");
                }
                Ok((builder, Via::Script))
            }
            Operation::Proxy {
                method,
                path,
                headers,
                body,
            } => {
                let method = match method {
                    ProxyMethod::Get => Method::GET,
                    ProxyMethod::Post => Method::POST,
                    ProxyMethod::Put => Method::PUT,
                    ProxyMethod::Patch => Method::PATCH,
                    ProxyMethod::Delete => Method::DELETE,
                };
                let url = format!("{}/proxy{path}", self.base_url);
                // The request's checks keep the path under /proxy/; this holds it to that.
                let parsed = reqwest::Url::parse(&url).map_err(|e| format!("proxy path: {e}"))?;
                let under = reqwest::Url::parse(&format!("{}/proxy/", self.base_url))
                    .map_err(|e| e.to_string())?;
                if !parsed.path().starts_with(under.path()) {
                    return Err(format!("proxy path {path:?} leaves /proxy/"));
                }
                let mut builder = self
                    .write_http()
                    .request(method, parsed)
                    .header("Connection-Id", &request.connection_id);
                for (name, value) in headers {
                    builder = builder.header(name, value);
                }
                if let Some(body) = body {
                    builder = builder.json(body);
                }
                Ok((builder, Via::Proxy))
            }
        }
    }
}

/// What `GET /action/{id}` says of an action Nango took (not a 404, 429 or 401). Nango had the
/// action, so it may have run: only the action's own failures say how it ended, each as a
/// synchronous answer would (an input refused before the script ran: failed; the provider's
/// refusal: refused; anything after the script began: unsure). Anything else is Nango refusing
/// the question (a connection since deleted, a missing scope, an error of its own): not learned.
fn result_of(status: u16, body: &[u8]) -> ActionResult {
    const ACTIONS_OWN: &[&str] = &[
        "script_http_error",
        "invalid_action_input",
        "invalid_action_output",
        "script_output_too_large",
        "script_aborted",
        "function_runtime_error",
    ];
    let code = error_code(body);
    let finished = |attempt| {
        ActionResult::Finished(Sent {
            attempt,
            detail: Some(detail(status, body)),
            retry_after: None,
        })
    };
    match (status, code.as_deref()) {
        (200..=299, _) => finished(Attempt::Succeeded),
        (_, Some(code)) if ACTIONS_OWN.contains(&code) => {
            finished(classify(Via::Script, status, body))
        }
        // A runtime error, a timeout, an out-of-memory: the script's failure, with its own code.
        (500..=599, Some(code)) if code != "server_error" => finished(Attempt::Unsure),
        _ => ActionResult::NotLearned(format!(
            "{status} from Nango on the action's result, no failure of the action's: {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(200)
                .collect::<String>()
        )),
    }
}

fn is_async(request: &WriteRequest) -> bool {
    matches!(
        request.run,
        Operation::Action {
            run_async: true,
            ..
        }
    )
}

/// The id in an async action's 202 (`{"id","statusUrl"}`).
fn action_id(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = v.get("id")?.as_str()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// An answer in words: the output as is, an error with its status.
fn detail(status: u16, body: &[u8]) -> String {
    if (200..300).contains(&status) {
        String::from_utf8_lossy(body).into_owned()
    } else {
        format!("{status} {}", String::from_utf8_lossy(body))
    }
}

fn not_sent(retryable: bool, detail: String) -> Sent {
    Sent {
        attempt: Attempt::NotSent { retryable },
        detail: Some(detail),
        retry_after: None,
    }
}

fn unsure(detail: String) -> Sent {
    Sent {
        attempt: Attempt::Unsure,
        detail: Some(detail),
        retry_after: None,
    }
}

/// What Nango's answer (not a 429) says of a write: the one status mapping of the write side.
fn classify(via: Via, status: u16, body: &[u8]) -> Attempt {
    let code = error_code(body);
    let code = code.as_deref();
    match (via, status) {
        (_, 200..=299) => Attempt::Succeeded,
        // A tool's own failure (`throw new nango.Error`): the script ran, and may have written
        // before it threw.
        (Via::Script, _) if code == Some("function_runtime_error") => Attempt::Unsure,
        // Nango refused the key: nothing ran (the key may be read again). Through the proxy, a
        // 401 of the provider's own is its refusal.
        (Via::Proxy, 401) if !nango_error(body) => Attempt::Refused,
        (_, 401) => Attempt::NotSent { retryable: true },
        // The connection's credentials are being refreshed: nothing was sent yet.
        (_, 424) if code == Some("connection_refresh_backoff") => {
            Attempt::NotSent { retryable: true }
        }
        // A script's call to the provider failed: refused if the provider said no, unknown if it
        // failed on its side (it may have applied the write).
        (Via::Script, 424) => match upstream_status(body) {
            Some(500..=599) | None => Attempt::Unsure,
            Some(_) => Attempt::Refused,
        },
        // The script ran; its output or its end was refused, not its effects.
        (Via::Script, 400)
            if matches!(
                code,
                Some("invalid_action_output" | "script_output_too_large")
            ) =>
        {
            Attempt::Unsure
        }
        (Via::Script, 410) => Attempt::Unsure,
        // Refused before the script ran: a bad input, an unknown connection, tool or action, a
        // plan limit, a missing scope.
        (Via::Script, 400..=499) => Attempt::NotSent { retryable: false },
        // Through the proxy, a 4xx is the provider's (or Nango's) refusal: nothing applied.
        (Via::Proxy, 400..=499) => Attempt::Refused,
        // A 5xx, or anything else: it may have run.
        _ => Attempt::Unsure,
    }
}

/// Nango's own error codes for its key and its rate limit (nango-contract.md, errors): an answer
/// with one came from Nango, not from the provider behind the proxy.
const NANGO_CODES: &[&str] = &[
    "missing_auth_header",
    "malformed_auth_header",
    "invalid_secret_key_format",
    "unknown_account",
    "too_many_request",
];

fn nango_error(body: &[u8]) -> bool {
    error_code(body).is_some_and(|code| NANGO_CODES.contains(&code.as_str()))
}

fn upstream_status(body: &[u8]) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let status = v.get("error")?.get("upstream")?.get("status")?.as_u64()?;
    u16::try_from(status).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(status: u16, body: serde_json::Value) -> Attempt {
        classify(Via::Script, status, body.to_string().as_bytes())
    }

    #[test]
    fn an_async_actions_result_is_told_from_nango_refusing_the_question() {
        let result = |status: u16, body: serde_json::Value| match result_of(
            status,
            body.to_string().as_bytes(),
        ) {
            ActionResult::Finished(sent) => Some(sent.attempt),
            _ => None,
        };
        assert_eq!(result(200, json!({"id": 1})), Some(Attempt::Succeeded));
        assert_eq!(
            result(
                424,
                json!({"error": {"code": "script_http_error", "upstream": {"status": 422}}})
            ),
            Some(Attempt::Refused)
        );
        assert_eq!(
            result(400, json!({"error": {"code": "invalid_action_input"}})),
            Some(Attempt::NotSent { retryable: false })
        );
        assert_eq!(
            result(500, json!({"error": {"code": "script_runtime_error"}})),
            Some(Attempt::Unsure)
        );
        // Nango refusing the question says nothing of the action, which it had taken.
        for (status, code) in [
            (400, "unknown_connection"),
            (403, "missing_scope"),
            (424, "connection_refresh_backoff"),
            (500, "server_error"),
        ] {
            assert_eq!(
                result(status, json!({"error": {"code": code}})),
                None,
                "{code}"
            );
        }
        assert_eq!(result(502, json!({})), None);
    }

    #[test]
    fn what_ran_is_told_from_what_never_ran() {
        assert_eq!(script(200, json!({"id": "1"})), Attempt::Succeeded);
        let before = Attempt::NotSent { retryable: false };
        for code in [
            "invalid_action_input",
            "unknown_connection",
            "invalid_headers",
        ] {
            assert_eq!(
                script(400, json!({"error": {"code": code}})),
                before,
                "{code}"
            );
        }
        assert_eq!(script(404, json!({"error": {"code": "not_found"}})), before);
        assert_eq!(
            script(400, json!({"error": {"code": "invalid_action_output"}})),
            Attempt::Unsure
        );
        let provider_said = |status| {
            script(
                424,
                json!({"error": {"code": "script_http_error", "upstream": {"status": status}}}),
            )
        };
        assert_eq!(provider_said(422), Attempt::Refused);
        assert_eq!(provider_said(503), Attempt::Unsure);
        assert_eq!(
            script(410, json!({"error": {"code": "script_aborted"}})),
            Attempt::Unsure
        );
        assert_eq!(script(500, json!({})), Attempt::Unsure);
        for status in [400, 422, 500] {
            assert_eq!(
                script(
                    status,
                    json!({"error": {"code": "function_runtime_error", "payload": {}}})
                ),
                Attempt::Unsure,
                "a tool that threw may have written first ({status})"
            );
        }
        assert_eq!(
            script(
                424,
                json!({"error": {"code": "connection_refresh_backoff"}})
            ),
            Attempt::NotSent { retryable: true }
        );
        assert_eq!(classify(Via::Proxy, 422, b"{}"), Attempt::Refused);
        let nango_401 = json!({"error": {"code": "unknown_account"}}).to_string();
        assert_eq!(
            classify(Via::Proxy, 401, nango_401.as_bytes()),
            Attempt::NotSent { retryable: true }
        );
        assert_eq!(
            classify(Via::Proxy, 401, b"{\"message\":\"bad token\"}"),
            Attempt::Refused
        );
        assert_eq!(
            classify(Via::Proxy, 303, b""),
            Attempt::Unsure,
            "a redirect after a POST may mean it applied"
        );
        assert_eq!(classify(Via::Proxy, 502, b""), Attempt::Unsure);
        assert_eq!(classify(Via::Proxy, 201, b""), Attempt::Succeeded);
    }
}
