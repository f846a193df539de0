//! The write request: one versioned JSON shape, what an application sends instead of calling
//! Nango itself (JSON Schema: `events/write-request.schema.json`, an example beside it).
//!
//! ```json
//! {"v": 1, "id": "order-42-close", "provider_config_key": "hubspot", "connection_id": "user-1",
//!  "run": {"kind": "tool", "name": "close-deal", "input": {"deal_id": "42"}},
//!  "safe_to_repeat": false, "record": {"model": "Deal", "id": "42"}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::stream::BASE_VARIANT;

/// The version this code writes and reads.
pub const WRITE_REQUEST_VERSION: u32 = 1;

/// An id's longest length, in characters (as Nango's record ids).
pub const MAX_ID_CHARS: usize = 256;

/// A request's largest JSON text, in bytes: what one SQS message carries in the default queue
/// settings, and with the outcome well within one DynamoDB item.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// The proxy header prefix Nango forwards to the provider, stripped (`parseHeaders`): the only
/// headers of a proxy call that reach it.
pub const PROXY_HEADER_PREFIX: &str = "nango-proxy-";

/// The header a provider reads an idempotency key from, as the proxy forwards it.
pub const PROXY_IDEMPOTENCY_HEADER: &str = "nango-proxy-idempotency-key";

/// One write to the provider, as an application asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    pub v: u32,
    /// The application's id for this write, its idempotency key: a second request with the same
    /// id never runs; it is answered with the first one's outcome.
    pub id: String,
    pub provider_config_key: String,
    pub connection_id: String,
    /// What runs.
    pub run: Operation,
    /// Running it twice is harmless (a tool declared idempotent, a PUT by id): a write that may
    /// have reached the provider is then retried instead of becoming `unknown`.
    #[serde(default)]
    pub safe_to_repeat: bool,
    /// The record the write concerns: its stream is synced once the write succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordRef>,
}

/// What a write runs: one of the three ways Nango offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// A tool call (`POST /connections/{connectionId}/tools/{name}/calls`): the current API,
    /// synchronous only.
    Tool { name: String, input: Value },
    /// A legacy action (`POST /action/trigger`), run synchronously or, with `async`, answered
    /// 202 and finished later (the `async_action` webhook).
    Action {
        name: String,
        input: Value,
        #[serde(default, rename = "async")]
        run_async: bool,
    },
    /// A proxy request (`ANY /proxy/{path}`). Only `Nango-Proxy-` headers reach the provider.
    Proxy {
        method: ProxyMethod,
        path: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProxyMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// The record a write concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    pub model: String,
    pub id: String,
    #[serde(default = "base_variant")]
    pub variant: String,
}

fn base_variant() -> String {
    BASE_VARIANT.to_owned()
}

/// Why a write request was refused. Nothing was run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteRequestError {
    #[error("not a write request: {0}")]
    NotJson(String),
    #[error("write request of {0} bytes, more than {MAX_REQUEST_BYTES}")]
    TooLarge(usize),
    #[error("write request version {0} is not supported (this worker reads version {WRITE_REQUEST_VERSION})")]
    Version(u32),
    #[error("write request field {field}: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

impl WriteRequest {
    /// A request from its JSON text, checked: every refusal says which field and why.
    pub fn parse(text: &[u8]) -> Result<Self, WriteRequestError> {
        if text.len() > MAX_REQUEST_BYTES {
            return Err(WriteRequestError::TooLarge(text.len()));
        }
        let request: Self =
            serde_json::from_slice(text).map_err(|e| WriteRequestError::NotJson(e.to_string()))?;
        request.check()?;
        Ok(request)
    }

    fn check(&self) -> Result<(), WriteRequestError> {
        if self.v != WRITE_REQUEST_VERSION {
            return Err(WriteRequestError::Version(self.v));
        }
        name("id", &self.id)?;
        name("provider_config_key", &self.provider_config_key)?;
        name("connection_id", &self.connection_id)?;
        match &self.run {
            Operation::Tool { name: n, .. } | Operation::Action { name: n, .. } => {
                name("run.name", n)?
            }
            Operation::Proxy { path, headers, .. } => {
                if !path.starts_with('/') {
                    return Err(field("run.path", "must start with /"));
                }
                if let Some(problem) = path_problem(path) {
                    return Err(field("run.path", problem));
                }
                if let Some(other) = headers
                    .keys()
                    .find(|h| !h.to_ascii_lowercase().starts_with(PROXY_HEADER_PREFIX))
                {
                    return Err(field(
                        "run.headers",
                        format!(
                            "{other:?} would not reach the provider: Nango forwards only headers \
                             named Nango-Proxy-<name>"
                        ),
                    ));
                }
            }
        }
        if let Some(record) = &self.record {
            name("record.model", &record.model)?;
            name("record.id", &record.id)?;
            name("record.variant", &record.variant)?;
        }
        Ok(())
    }

    /// Whether a write that may have reached the provider can be sent again: declared safe to
    /// repeat, or a proxy call carrying the provider's idempotency key.
    pub fn may_repeat(&self) -> bool {
        self.safe_to_repeat
            || matches!(&self.run, Operation::Proxy { headers, .. }
                if headers.keys().any(|h| h.eq_ignore_ascii_case(PROXY_IDEMPOTENCY_HEADER)))
    }
}

/// Why a proxy path could reach past `/proxy/` once a URL parser resolves it (`..` segments,
/// encoded or not, and backslashes, which URL parsers read as slashes), if it could.
fn path_problem(path: &str) -> Option<&'static str> {
    let before_query = path.split(['?', '#']).next().unwrap_or("");
    if before_query.contains('\\') || before_query.to_ascii_lowercase().contains("%5c") {
        return Some("must not hold a backslash");
    }
    if path.chars().any(char::is_control) {
        return Some("must not hold control characters");
    }
    let dots = before_query.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    });
    dots.then_some("must not hold . or .. segments: the proxy path stays under /proxy/")
}

/// A non-empty name of at most [`MAX_ID_CHARS`] characters, without control characters.
fn name(which: &'static str, value: &str) -> Result<(), WriteRequestError> {
    let chars = value.chars().count();
    if chars == 0 {
        return Err(field(which, "must not be empty"));
    }
    if chars > MAX_ID_CHARS {
        return Err(field(
            which,
            format!("{chars} characters, more than {MAX_ID_CHARS}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(field(which, "must not hold control characters"));
    }
    Ok(())
}

fn field(field: &'static str, problem: impl Into<String>) -> WriteRequestError {
    WriteRequestError::Field {
        field,
        problem: problem.into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<WriteRequest, WriteRequestError> {
        WriteRequest::parse(value.to_string().as_bytes())
    }

    fn tool() -> Value {
        json!({"v": 1, "id": "w-1", "provider_config_key": "hubspot", "connection_id": "u-1",
            "run": {"kind": "tool", "name": "close-deal", "input": {"deal": "42"}},
            "record": {"model": "Deal", "id": "42"}})
    }

    #[test]
    fn each_way_nango_offers_reads_and_round_trips() {
        let request = parse(tool()).unwrap();
        assert_eq!(
            request.record.as_ref().map(|r| r.variant.as_str()),
            Some("base")
        );
        assert!(!request.may_repeat());
        let action = json!({"v": 1, "id": "w-2", "provider_config_key": "p", "connection_id": "c",
            "run": {"kind": "action", "name": "sync-owner", "input": null, "async": false},
            "safe_to_repeat": true});
        let proxy = json!({"v": 1, "id": "w-3", "provider_config_key": "p", "connection_id": "c",
            "run": {"kind": "proxy", "method": "POST", "path": "/crm/v3/objects/contacts",
                "headers": {"Nango-Proxy-Idempotency-Key": "k-1"}, "body": {"email": "a@b.c"}}});
        for value in [tool(), action, proxy] {
            let request = parse(value.clone()).unwrap();
            let again = serde_json::to_value(&request).unwrap();
            assert_eq!(parse(again).unwrap(), request, "{value}");
        }
        let proxy = parse(json!({"v": 1, "id": "w-3", "provider_config_key": "p",
            "connection_id": "c", "run": {"kind": "proxy", "method": "POST", "path": "/x",
            "headers": {"nango-proxy-idempotency-key": "k-1"}}}))
        .unwrap();
        assert!(
            proxy.may_repeat(),
            "a provider idempotency key makes a POST repeatable"
        );
    }

    #[test]
    fn bad_requests_say_which_field_and_why() {
        let with = |path: &[&str], value: Value| {
            let mut request = tool();
            let mut at = &mut request;
            for key in &path[..path.len() - 1] {
                at = &mut at[*key];
            }
            at[path[path.len() - 1]] = value;
            parse(request).unwrap_err().to_string()
        };
        assert!(with(&["v"], json!(2)).contains("version 2"));
        assert!(with(&["id"], json!("")).contains("id: must not be empty"));
        assert!(with(&["id"], json!("x".repeat(257))).contains("257 characters"));
        assert!(with(&["connection_id"], json!("a\nb")).contains("control"));
        assert!(with(&["run", "kind"], json!("script")).contains("unknown variant"));
        assert!(with(&["run", "name"], json!("")).contains("run.name"));
        assert!(with(&["extra"], json!(1)).contains("unknown field"));
        let proxy = |path: &str, header: &str| {
            parse(
                json!({"v": 1, "id": "w", "provider_config_key": "p", "connection_id": "c",
                "run": {"kind": "proxy", "method": "PUT", "path": path, "headers": {header: "v"}}}),
            )
        };
        assert!(proxy("x", "Nango-Proxy-A")
            .unwrap_err()
            .to_string()
            .contains("start with /"));
        let dropped = proxy("/x", "Authorization").unwrap_err().to_string();
        assert!(
            dropped.contains("would not reach the provider"),
            "{dropped}"
        );
        for escape in [
            "/../connection/u-1",
            "/a/%2E%2e/b",
            "/a/./b",
            "/a\\b",
            "/a%5Cb",
            "/x\n",
        ] {
            let refused = proxy(escape, "Nango-Proxy-A").unwrap_err().to_string();
            assert!(refused.contains("run.path"), "{escape}: {refused}");
        }
        assert!(proxy("/crm/v3/objects?after=..", "Nango-Proxy-A").is_ok());
        let mut asynchronous = tool();
        asynchronous["run"] = json!({"kind": "action", "name": "a", "input": {}, "async": true});
        let asynchronous = parse(asynchronous).unwrap();
        assert!(matches!(
            asynchronous.run,
            Operation::Action {
                run_async: true,
                ..
            }
        ));
        assert!(WriteRequest::parse(b"{").is_err());
        let huge = with(&["run", "input"], json!("x".repeat(MAX_REQUEST_BYTES)));
        assert!(huge.contains("more than 262144"), "{huge}");
    }

    /// The JSON Schema an application validates against names exactly what the model reads.
    #[test]
    fn the_schema_and_the_example_agree_with_the_model() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../events/write-request.schema.json"))
                .unwrap();
        let example = include_str!("../../../events/write-request.json");
        let request = WriteRequest::parse(example.as_bytes()).unwrap();
        assert_eq!(request.id, "order-42-close-deal");
        let keys = |value: &Value| {
            let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        let full = WriteRequest {
            safe_to_repeat: true,
            ..request.clone()
        };
        assert_eq!(
            keys(&schema["properties"]),
            keys(&serde_json::to_value(&full).unwrap())
        );
        assert_eq!(
            keys(&schema["properties"]["record"]["properties"]),
            keys(&serde_json::to_value(full.record.as_ref().unwrap()).unwrap())
        );
        let runs = [
            Operation::Tool {
                name: "t".into(),
                input: json!(1),
            },
            Operation::Action {
                name: "a".into(),
                input: json!(1),
                run_async: true,
            },
            Operation::Proxy {
                method: ProxyMethod::Put,
                path: "/p".into(),
                headers: BTreeMap::from([("Nango-Proxy-X".into(), "1".into())]),
                body: Some(json!({})),
            },
        ];
        let variants = schema["properties"]["run"]["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), runs.len());
        for (variant, run) in variants.iter().zip(&runs) {
            let run = serde_json::to_value(run).unwrap();
            assert_eq!(variant["properties"]["kind"]["const"], run["kind"]);
            assert_eq!(keys(&variant["properties"]), keys(&run), "{run}");
        }
        let methods: Vec<Value> = ["GET", "POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .map(|m| {
                serde_json::to_value(serde_json::from_value::<ProxyMethod>(json!(m)).unwrap())
                    .unwrap()
            })
            .collect();
        assert_eq!(
            variants[2]["properties"]["method"]["enum"],
            Value::Array(methods)
        );
        assert_eq!(
            schema["$defs"]["name"]["maxLength"],
            json!(MAX_ID_CHARS),
            "the schema's bound on names is the model's"
        );
    }
}
