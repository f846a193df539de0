//! BatchWriteItem, sent without the SDK's orchestrator.
//!
//! Per call, the orchestrator's interceptors, endpoint rules, retry classifiers and body
//! handling cost more CPU than the call's own work: a third of the worker's CPU in the profile
//! of a bootstrap (BENCHMARKS.md, session 20). So the call the worker makes thousands of times is
//! signed here with `aws-sigv4` (the signer the SDK uses) and sent with `reqwest`; every other
//! call still goes through the SDK. What the SDK did for this call, this module does:
//! - the endpoint, the signing region and the credentials: the SDK's own, taken once from a
//!   call it prepares and never sends (its endpoint rules and overrides; its credentials provider
//!   and identity cache, which refreshes credentials before they expire);
//! - retries: the adapter's [`RetryPolicy`], each failure classified by [`super::class_of_code`],
//!   the one mapping the SDK's errors go through too; a throttled attempt slows the write gate;
//! - an HTTP client as the SDK's: no proxy from the environment, no redirects followed.
//!
//! Not done here: the SDK's clock-skew correction (the signing time is this machine's clock, as
//! Lambda's is kept) and its `x-amzn-trace-id` header for X-Ray.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::config::endpoint::Endpoint;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{
    ConfigBag, Intercept, ResolveCachedIdentity, RuntimeComponents, SharedIdentityCache,
};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::Client;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SigningInstructions, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::auth::AuthSchemeId;
use aws_smithy_runtime_api::client::identity::{Identity, SharedIdentityResolver};
use aws_smithy_runtime_api::client::runtime_components::GetIdentityResolver;
use serde::Deserialize;

use super::gate::WriteGate;
use super::{class_of_code, is_throttling_code};
use crate::ports::StoreError;
use crate::retry::{Class, RetryPolicy};

const TARGET: &str = "DynamoDB_20120810.BatchWriteItem";
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// What one BatchWriteItem call came back with.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Answer {
    /// The sort keys (record ids) of the requests DynamoDB handed back for `table`, in its order;
    /// `None` for one whose key could not be read.
    pub unprocessed: Vec<Option<String>>,
    /// Write capacity units consumed, as DynamoDB reported them.
    pub units: f64,
}

/// Sends BatchWriteItem calls for one table's client.
pub(super) struct BatchWriter {
    client: Client,
    /// The client, or why it could not be built.
    http: Result<reqwest::Client, String>,
    /// What the SDK would send the call with, found on first use.
    prepared: tokio::sync::OnceCell<Prepared>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("endpoint", &self.prepared.get().map(|p| p.url.as_str()))
            .finish_non_exhaustive()
    }
}

/// The SDK's endpoint for the call, the region it signs for, and its way to credentials.
struct Prepared {
    url: reqwest::Url,
    region: String,
    resolver: SharedIdentityResolver,
    cache: SharedIdentityCache,
    components: RuntimeComponents,
}

impl Prepared {
    /// The client's credentials, from the SDK's identity cache.
    async fn identity(&self) -> Result<Identity, Failure> {
        let bag = ConfigBag::base();
        self.cache
            .resolve_cached_identity(self.resolver.clone(), &self.components, &bag)
            .await
            .map_err(|e| Failure::Unresolved(format!("AWS credentials: {e}")))
    }
}

impl BatchWriter {
    pub fn new(client: &Client, retry: RetryPolicy) -> Self {
        // 3.1 s to connect, as the SDK's default. The SDK has no read timeout (its stalled-stream
        // protection gives up on a body that stops moving); here an answer that takes over 10 s
        // from sending, or a read of it that stalls as long, is given up on and retried.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(3100))
            .read_timeout(Duration::from_secs(10))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("nango-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("could not build the HTTP client for DynamoDB: {e}"));
        Self {
            client: client.clone(),
            http,
            prepared: tokio::sync::OnceCell::new(),
            retry,
        }
    }

    /// Sends `body` (a whole BatchWriteItem request) until DynamoDB answers it, retrying what is
    /// transient by the policy. Each attempt holds a place in `gate`; a throttled one tells it.
    pub async fn send(
        &self,
        table: &str,
        body: bytes::Bytes,
        gate: &WriteGate,
    ) -> Result<Answer, StoreError> {
        let mut failed = 0;
        loop {
            let permit = gate.acquire().await;
            let attempt = self.attempt(table, body.clone()).await;
            drop(permit);
            let failure = match attempt {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            if failure.throttling() {
                gate.throttled();
            }
            failed += 1;
            if failure.class() == Class::Permanent || !self.retry.allows_another(failed) {
                return Err(failure.into_store_error());
            }
            tracing::debug!(failed, error = %failure, "BatchWriteItem failed; retrying");
            tokio::time::sleep(self.retry.backoff(failed - 1)).await;
        }
    }

    async fn attempt(&self, table: &str, body: bytes::Bytes) -> Result<Answer, Failure> {
        let prepared = self
            .prepared
            .get_or_try_init(|| prepare(&self.client, table))
            .await?;
        let http = self.http.as_ref().map_err(|e| Failure::Setup(e.clone()))?;
        let identity = prepared.identity().await?;
        let url = &prepared.url;
        let signing = signing(&identity, &prepared.region, url.as_str(), &body)?;
        let mut request = http
            .post(url.clone())
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", TARGET);
        for (name, value) in signing.headers() {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.map_err(Failure::sending)?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.bytes().await.map_err(Failure::sending)?;
        if status == 200 {
            return read_answer(table, &text);
        }
        Err(service_failure(status, error_type.as_deref(), &text))
    }
}

/// What signs a BatchWriteItem call of `body` to `endpoint` (its headers), as the SDK signs it.
fn signing(
    identity: &Identity,
    region: &str,
    endpoint: &str,
    body: &[u8],
) -> Result<SigningInstructions, Failure> {
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name("dynamodb")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Failure::Setup(format!("signing: {e}")))?
        .into();
    let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
    let signable = SignableRequest::new(
        "POST",
        endpoint,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| Failure::Setup(format!("signing: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| Failure::Setup(format!("signing: {e}")))?
        .into_parts();
    Ok(instructions)
}

/// What the SDK sends a BatchWriteItem call on `table` with: the client prepares one (its
/// endpoint rules, an `endpoint_url` from code, the environment or a profile, FIPS and dual
/// stack), and an interceptor takes the URL, the region the endpoint is signed for, and the SigV4
/// credentials' resolver and cache, then stops the call before it is signed or sent.
async fn prepare(client: &Client, table: &str) -> Result<Prepared, Failure> {
    type Taken = Arc<Mutex<Option<Result<Prepared, String>>>>;
    struct Take(Taken, Option<String>);
    impl std::fmt::Debug for Take {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Take")
        }
    }
    impl Intercept for Take {
        fn name(&self) -> &'static str {
            "nango-sync: take the BatchWriteItem endpoint and credentials"
        }
        fn modify_before_signing(
            &self,
            context: &mut BeforeTransmitInterceptorContextMut<'_>,
            components: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let taken = take(context.request().uri(), self.1.clone(), components, cfg);
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(taken);
            Err("stopped once prepared; never sent".into())
        }
    }
    fn take(
        uri: &str,
        region: Option<String>,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<Prepared, String> {
        let url = reqwest::Url::parse(uri).map_err(|e| format!("endpoint {uri}: {e}"))?;
        // The endpoint may name the region it is signed for (the SDK's signer reads it there).
        let endpoint_region = cfg
            .load::<Endpoint>()
            .and_then(|e| e.properties().get("authSchemes"))
            .and_then(|schemes| schemes.as_array())
            .and_then(|schemes| {
                schemes.iter().find_map(|scheme| {
                    let scheme = scheme.as_object()?;
                    (scheme.get("name")?.as_string()? == "sigv4")
                        .then(|| scheme.get("signingRegion")?.as_string())
                        .flatten()
                        .map(str::to_owned)
                })
            });
        let region = endpoint_region
            .or(region)
            .ok_or("no AWS region is configured for DynamoDB")?;
        let resolver = components
            .identity_resolver(AuthSchemeId::new("sigv4"))
            .ok_or("the DynamoDB client has no SigV4 credentials")?;
        Ok(Prepared {
            url,
            region,
            resolver,
            cache: components.identity_cache(),
            components: components.clone(),
        })
    }
    let taken: Taken = Arc::default();
    let region = client.config().region().map(|r| r.to_string());
    let stopped = client
        .batch_write_item()
        .request_items(table, Vec::new())
        .customize()
        .interceptor(Take(Arc::clone(&taken), region))
        .send()
        .await;
    let taken = taken.lock().unwrap_or_else(|e| e.into_inner()).take();
    match (taken, stopped) {
        (Some(Ok(prepared)), _) => Ok(prepared),
        (Some(Err(why)), _) => Err(Failure::Setup(why)),
        // The SDK failed before the interceptor: its credentials or endpoint could not be had.
        // Transient as the SDK's errors are (a credentials endpoint that did not answer).
        (None, Err(e)) => {
            let why = format!("could not prepare a DynamoDB call: {}", super::describe(&e));
            Err(match super::class_of(&e) {
                Class::Transient => Failure::Unresolved(why),
                Class::Permanent => Failure::Setup(why),
            })
        }
        (None, Ok(_)) => Err(Failure::Setup(
            "the DynamoDB client sent a call meant to be stopped".into(),
        )),
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// DynamoDB answered with an error.
    #[error("{}", match message { Some(m) => format!("{code}: {m}"), None => code.clone() })]
    Service {
        status: u16,
        code: String,
        message: Option<String>,
    },
    /// No answer: the connection failed, was cut, or timed out.
    #[error("BatchWriteItem: {0}")]
    Transport(reqwest::Error),
    /// The credentials, or the endpoint, could not be had for now.
    #[error("{0}")]
    Unresolved(String),
    /// A 200 whose body is not BatchWriteItem's answer.
    #[error("BatchWriteItem answer unreadable: {0}")]
    Unreadable(String),
    /// Nothing can be sent: no region, no credentials provider, no endpoint.
    #[error("{0}")]
    Setup(String),
}

impl Failure {
    /// A failure to send or to read the answer; a request that could not be built is no
    /// transport failure, and retrying it cannot help.
    fn sending(e: reqwest::Error) -> Self {
        if e.is_builder() {
            Self::Setup(format!("BatchWriteItem request: {e}"))
        } else {
            Self::Transport(e)
        }
    }

    fn class(&self) -> Class {
        match self {
            Self::Service { status, code, .. } => class_of_code(Some(code), Some(*status)),
            Self::Transport(_) | Self::Unresolved(_) | Self::Unreadable(_) => Class::Transient,
            Self::Setup(_) => Class::Permanent,
        }
    }

    fn throttling(&self) -> bool {
        matches!(self, Self::Service { code, .. } if is_throttling_code(Some(code)))
    }

    fn into_store_error(self) -> StoreError {
        let (class, message) = (self.class(), self.to_string());
        StoreError::caused_by(class, message, self)
    }
}

/// An error answer: its code from the body's `__type` (or the `x-amzn-ErrorType` header), after
/// the namespace's `#`.
fn service_failure(status: u16, error_type: Option<&str>, body: &[u8]) -> Failure {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let text = |name: &str| parsed.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let kind = text("__type");
    let message = text("message").or_else(|| text("Message"));
    let kind = kind.or_else(|| error_type.map(|t| t.split(':').next().unwrap_or(t).to_owned()));
    let code = match kind {
        Some(kind) => kind.rsplit('#').next().unwrap_or(&kind).to_owned(),
        None => format!("HTTP {status}"),
    };
    Failure::Service {
        status,
        code,
        message,
    }
}

/// The parts of BatchWriteItem's answer the adapter uses.
fn read_answer(table: &str, body: &[u8]) -> Result<Answer, Failure> {
    #[derive(Deserialize)]
    struct Output {
        #[serde(rename = "UnprocessedItems", default)]
        unprocessed: HashMap<String, Vec<Unprocessed>>,
        #[serde(rename = "ConsumedCapacity", default)]
        consumed: Vec<Consumed>,
    }
    #[derive(Deserialize)]
    struct Consumed {
        #[serde(rename = "CapacityUnits", default)]
        units: f64,
    }
    #[derive(Deserialize)]
    struct Unprocessed {
        #[serde(rename = "PutRequest")]
        put: Option<Put>,
        #[serde(rename = "DeleteRequest")]
        delete: Option<Delete>,
    }
    #[derive(Deserialize)]
    struct Put {
        #[serde(rename = "Item")]
        item: Key,
    }
    #[derive(Deserialize)]
    struct Delete {
        #[serde(rename = "Key")]
        key: Key,
    }
    #[derive(Deserialize)]
    struct Key {
        // The record id: the item's sort key, `attr::SK`.
        sk: Option<Text>,
    }
    #[derive(Deserialize)]
    struct Text {
        #[serde(rename = "S")]
        s: Option<String>,
    }
    let mut output: Output =
        serde_json::from_slice(body).map_err(|e| Failure::Unreadable(e.to_string()))?;
    let unprocessed = output
        .unprocessed
        .remove(table)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let key = r.put.map(|p| p.item).or(r.delete.map(|d| d.key));
            key.and_then(|k| k.sk).and_then(|t| t.s)
        })
        .collect();
    Ok(Answer {
        unprocessed,
        units: output.consumed.iter().map(|c| c.units).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_gives_the_ids_handed_back_and_the_units() {
        let body = br#"{"UnprocessedItems":{"records":[
            {"PutRequest":{"Item":{"pk":{"S":"s"},"sk":{"S":"a"},"record":{"M":{}}}}},
            {"DeleteRequest":{"Key":{"pk":{"S":"s"},"sk":{"S":"b"}}}},
            {"PutRequest":{"Item":{"pk":{"S":"s"},"sk":{"N":"1"}}}}
        ],"other":[{"DeleteRequest":{"Key":{"sk":{"S":"z"}}}}]},
        "ConsumedCapacity":[{"TableName":"records","CapacityUnits":12.5}]}"#;
        let answer = read_answer("records", body).unwrap();
        assert_eq!(
            answer.unprocessed,
            [Some("a".to_owned()), Some("b".to_owned()), None]
        );
        assert_eq!(answer.units, 12.5);
        assert_eq!(read_answer("records", b"{}").unwrap(), Answer::default());
        assert!(matches!(
            read_answer("records", b"<html>"),
            Err(Failure::Unreadable(_))
        ));
    }

    #[test]
    fn error_answers_are_classified_as_the_sdks_are() {
        let throttled = service_failure(
            400,
            None,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#,
        );
        assert_eq!(
            throttled.to_string(),
            "ProvisionedThroughputExceededException: slow down"
        );
        assert!(throttled.throttling());
        assert_eq!(throttled.class(), Class::Transient);

        let invalid = service_failure(
            400,
            None,
            br#"{"__type":"com.amazon.coral.validate#ValidationException","Message":"bad"}"#,
        );
        assert_eq!(invalid.to_string(), "ValidationException: bad");
        assert!(!invalid.throttling());
        assert_eq!(invalid.class(), Class::Permanent);

        let header_only = service_failure(
            400,
            Some("ThrottlingException:http://internal.amazon.com/coral/"),
            b"",
        );
        assert_eq!(header_only.to_string(), "ThrottlingException");
        assert!(header_only.throttling());

        let unavailable = service_failure(503, None, b"<html>busy</html>");
        assert_eq!(unavailable.to_string(), "HTTP 503");
        assert_eq!(unavailable.class(), Class::Transient);
        assert_eq!(
            service_failure(403, None, b"").class(),
            Class::Permanent,
            "an unknown refusal is not retried"
        );
    }
}
