//! Typed configuration, read once at cold start: the only reader of the environment.
//! `from_lookup` takes any name -> value function, so tests pass a map instead of changing the
//! process environment. Each part is read on its own, so the local CLI asks only for what it uses
//! (Nango's key, the signing key) and never for the deployed stack's names.

use std::collections::HashMap;

use std::time::Duration;

use crate::core::connection::ConnectionDeletedMode;
use crate::core::drift::SweepGuard;
use crate::core::rotation::RereadPolicy;
use crate::core::write::DeleteMode;

/// SQS's limit less room for the job envelope, so any accepted body fits in one message.
pub const DEFAULT_MAX_BODY_BYTES: usize = 255 * 1024;
/// The functions' CloudWatch metrics namespace unless `METRICS_NAMESPACE` says otherwise.
pub const DEFAULT_METRICS_NAMESPACE: &str = "NangoSync";
/// Nango's cloud API.
pub const DEFAULT_NANGO_BASE_URL: &str = "https://api.nango.dev";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("set only one of {0} and {1}")]
    Conflict(&'static str, &'static str),
}

/// Configuration read from named variables: the environment when deployed, a map in tests.
pub trait FromVars: Sized {
    /// Reads every variable through `lookup`; blank values count as unset.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError>;

    fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_map(map: &HashMap<&str, &str>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| map.get(name).map(|v| v.to_string()))
    }
}

/// Where the webhook signing key(s) come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKeySource {
    /// Straight from the environment.
    Env {
        current: String,
        previous: Option<String>,
    },
    /// A Secrets Manager secret (name or ARN), fetched at cold start and read again as
    /// [`RereadPolicy`] says. Its value is the key itself, or `{"current": "...", "previous":
    /// "..."}` during a rotation.
    SecretsManager { secret_id: String },
}

/// How webhooks are verified and bounded: the webhook function's, and the local endpoint's.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningConfig {
    pub signing_keys: SigningKeySource,
    /// Accept the legacy `X-Nango-Signature` when no HMAC header is sent. Default false.
    pub accept_legacy_signature: bool,
    pub max_body_bytes: usize,
    /// When keys from Secrets Manager are read again (a rotation under a warm function).
    pub reread: RereadPolicy,
}

/// The webhook function: its queue, how it verifies, and where its metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub queue_url: String,
    pub signing: SigningConfig,
    /// The CloudWatch namespace of its metrics.
    pub metrics_namespace: String,
    /// The function's name, as Lambda gives it: the metrics' one dimension.
    pub function_name: String,
}

// Keys never reach a log line through Debug.
impl std::fmt::Debug for SigningConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.signing_keys {
            SigningKeySource::Env { previous, .. } => format!(
                "env (current{})",
                if previous.is_some() {
                    " + previous"
                } else {
                    ""
                }
            ),
            SigningKeySource::SecretsManager { secret_id } => {
                format!("secrets manager {secret_id}")
            }
        };
        f.debug_struct("SigningConfig")
            .field("signing_keys", &keys)
            .field("accept_legacy_signature", &self.accept_legacy_signature)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("reread", &self.reread)
            .finish()
    }
}

/// Where the Nango API key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    Env(String),
    /// A Secrets Manager secret whose value is the key.
    SecretsManager {
        secret_id: String,
    },
}

/// How to reach Nango's API: the worker's, the local run's and `status`'s.
#[derive(Clone, PartialEq, Eq)]
pub struct NangoConfig {
    pub api_key: ApiKeySource,
    pub base_url: String,
    pub page_limit: u32,
    /// The share of Nango's per-account rate limit that reconciliation's discovery may use.
    pub discovery_requests_per_minute: u32,
    /// The record pages all streams of the process hold in memory at once, in MiB.
    pub page_budget_mib: usize,
    /// The share of each window of Nango's rate limit record reads leave to writes, in percent.
    pub write_share_percent: u64,
    /// When a key from Secrets Manager is read again (on a 401 from Nango, and on a TTL).
    pub reread: RereadPolicy,
}

impl std::fmt::Debug for NangoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = match &self.api_key {
            ApiKeySource::Env(_) => "env".to_owned(),
            ApiKeySource::SecretsManager { secret_id } => format!("secrets manager {secret_id}"),
        };
        f.debug_struct("NangoConfig")
            .field("api_key", &key)
            .field("base_url", &self.base_url)
            .field("page_limit", &self.page_limit)
            .field("page_budget_mib", &self.page_budget_mib)
            .field(
                "discovery_requests_per_minute",
                &self.discovery_requests_per_minute,
            )
            .field("reread", &self.reread)
            .finish()
    }
}

/// What the worker does, wherever it runs (the Lambda, `nango-sync serve` or `work`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerBehaviour {
    pub delete_mode: DeleteMode,
    pub deadline_margin_seconds: u64,
    pub write_concurrency: usize,
    /// How many of a batch's streams run side by side.
    pub streams_at_once: usize,
    /// Compare live counts with Nango's recordCount on reconcile, and sweep on drift.
    pub drift_check: bool,
    /// A sweep deletes at most this many records without an operator...
    pub sweep_max_deletes: u64,
    /// ...or this share of the live copy, whichever is larger.
    pub sweep_max_delete_fraction: f64,
    /// What becomes of the records of a connection Nango deleted.
    pub connection_deleted: ConnectionDeletedMode,
}

/// The deployed worker: its tables and queue, Nango, and its behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    pub records_table: String,
    pub state_table: String,
    /// The ingest queue, for continuations of long backfills.
    pub queue_url: String,
    pub nango: NangoConfig,
    pub behaviour: WorkerBehaviour,
    /// The CloudWatch namespace of the worker's metrics.
    pub metrics_namespace: String,
    /// The function's name, as Lambda gives it: the metrics' one dimension.
    pub function_name: String,
    /// The EventBridge bus for stream events; none (unset or blank) publishes none.
    pub event_bus: Option<String>,
}

/// A variable's value, blank counting as unset.
fn getter(lookup: impl Fn(&str) -> Option<String>) -> impl Fn(&str) -> Option<String> {
    move |name| lookup(name).filter(|v| !v.trim().is_empty())
}

impl FromVars for NangoConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = getter(lookup);
        let api_key = match (get(vars::API_KEY), get(vars::API_KEY_SECRET)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict(vars::API_KEY, vars::API_KEY_SECRET))
            }
            (Some(key), None) => ApiKeySource::Env(key),
            (None, Some(secret_id)) => ApiKeySource::SecretsManager { secret_id },
            (None, None) => return Err(ConfigError::Missing(vars::API_KEY)),
        };
        Ok(Self {
            api_key,
            base_url: get(vars::NANGO_BASE_URL)
                .unwrap_or_else(|| DEFAULT_NANGO_BASE_URL.to_owned()),
            page_limit: number(&get, vars::PAGE_LIMIT, 1000, 1, 10_000)? as u32,
            discovery_requests_per_minute: number(
                &get,
                vars::DISCOVERY_REQUESTS_PER_MINUTE,
                100,
                1,
                60_000,
            )? as u32,
            page_budget_mib: number(
                &get,
                vars::PAGE_BUDGET_MIB,
                (crate::core::page_budget::DEFAULT_PAGE_BUDGET_BYTES >> 20) as u64,
                1,
                1024,
            )? as usize,
            write_share_percent: number(
                &get,
                vars::WRITE_SHARE_PERCENT,
                crate::adapters::nango::DEFAULT_WRITE_SHARE_PERCENT,
                0,
                90,
            )?,
            reread: reread_policy(&get)?,
        })
    }
}

/// `SECRET_REREAD_SECONDS` (after a refusal, default 30) and `SECRET_TTL_SECONDS` (default 300).
fn reread_policy(get: &impl Fn(&str) -> Option<String>) -> Result<RereadPolicy, ConfigError> {
    let default = RereadPolicy::default();
    Ok(RereadPolicy {
        min_age: Duration::from_secs(number(
            get,
            vars::SECRET_REREAD_SECONDS,
            default.min_age.as_secs(),
            1,
            3600,
        )?),
        ttl: Duration::from_secs(number(
            get,
            vars::SECRET_TTL_SECONDS,
            default.ttl.as_secs(),
            1,
            86_400,
        )?),
    })
}

impl FromVars for WorkerBehaviour {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = getter(lookup);
        let delete_mode = match get(vars::DELETE_MODE).as_deref() {
            None | Some("tombstone") => DeleteMode::Tombstone,
            Some("hard") => DeleteMode::Hard,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: vars::DELETE_MODE,
                    reason: format!("expected tombstone or hard, got {other:?}"),
                })
            }
        };
        let drift_check = match get(vars::DRIFT_CHECK).as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: vars::DRIFT_CHECK,
                    reason: format!("expected on or off, got {other:?}"),
                })
            }
        };
        let connection_deleted = match get(vars::CONNECTION_DELETED).as_deref() {
            None | Some("keep") => ConnectionDeletedMode::Keep,
            Some("tombstone") => ConnectionDeletedMode::Tombstone,
            Some("purge") => ConnectionDeletedMode::Purge,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: vars::CONNECTION_DELETED,
                    reason: format!("expected keep, tombstone or purge, got {other:?}"),
                })
            }
        };
        let sweep_max_delete_fraction = match get(vars::SWEEP_MAX_DELETE_FRACTION) {
            None => SweepGuard::default().max_delete_fraction,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
                .ok_or_else(|| ConfigError::Invalid {
                    name: vars::SWEEP_MAX_DELETE_FRACTION,
                    reason: format!("expected a share from 0 to 1 (0.05 is 5%), got {v:?}"),
                })?,
        };
        Ok(Self {
            delete_mode,
            deadline_margin_seconds: number(&get, vars::DEADLINE_MARGIN_SECONDS, 60, 1, 840)?,
            write_concurrency: number(&get, vars::WRITE_CONCURRENCY, 4, 1, 64)? as usize,
            streams_at_once: number(
                &get,
                vars::STREAMS_AT_ONCE,
                crate::core::worker::DEFAULT_STREAMS_AT_ONCE as u64,
                1,
                10,
            )? as usize,
            drift_check,
            sweep_max_deletes: number(
                &get,
                vars::SWEEP_MAX_DELETES,
                SweepGuard::default().max_deletes,
                0,
                u64::MAX,
            )?,
            sweep_max_delete_fraction,
            connection_deleted,
        })
    }
}

impl FromVars for WorkerConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Nango's key first: the error a new user meets first names what they must give.
        let nango = NangoConfig::from_lookup(&lookup)?;
        let behaviour = WorkerBehaviour::from_lookup(&lookup)?;
        let get = getter(&lookup);
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        Ok(Self {
            records_table: required(vars::RECORDS_TABLE)?,
            state_table: required(vars::STATE_TABLE)?,
            queue_url: required(vars::QUEUE_URL)?,
            nango,
            behaviour,
            metrics_namespace: get(vars::METRICS_NAMESPACE)
                .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned()),
            function_name: get(vars::FUNCTION_NAME).unwrap_or_else(|| "worker".to_owned()),
            event_bus: get(vars::EVENT_BUS_NAME),
        })
    }
}

impl FromVars for SigningConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = getter(lookup);
        let signing_keys = match (get(vars::SIGNING_KEY), get(vars::SIGNING_KEY_SECRET)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict(
                    vars::SIGNING_KEY,
                    vars::SIGNING_KEY_SECRET,
                ))
            }
            (Some(current), None) => SigningKeySource::Env {
                current,
                previous: get(vars::SIGNING_KEY_PREVIOUS),
            },
            (None, Some(secret_id)) => SigningKeySource::SecretsManager { secret_id },
            (None, None) => return Err(ConfigError::Missing(vars::SIGNING_KEY)),
        };
        let accept_legacy_signature = match get(vars::ACCEPT_LEGACY_SIGNATURE).as_deref() {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| ConfigError::Invalid {
                name: vars::ACCEPT_LEGACY_SIGNATURE,
                reason: format!("expected true or false, got {v:?}"),
            })?,
        };
        let max_body_bytes = match get(vars::MAX_BODY_BYTES) {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=DEFAULT_MAX_BODY_BYTES).contains(n))
                .ok_or_else(|| ConfigError::Invalid {
                    name: vars::MAX_BODY_BYTES,
                    reason: format!(
                        "expected a number of bytes from 1 to {DEFAULT_MAX_BODY_BYTES}, got {v:?}"
                    ),
                })?,
        };
        Ok(Self {
            signing_keys,
            accept_legacy_signature,
            max_body_bytes,
            reread: reread_policy(&get)?,
        })
    }
}

impl FromVars for WebhookConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = getter(&lookup);
        let queue_url = get(vars::QUEUE_URL).ok_or(ConfigError::Missing(vars::QUEUE_URL))?;
        Ok(Self {
            queue_url,
            signing: SigningConfig::from_lookup(&lookup)?,
            metrics_namespace: get(vars::METRICS_NAMESPACE)
                .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned()),
            function_name: get(vars::FUNCTION_NAME).unwrap_or_else(|| "webhook".to_owned()),
        })
    }
}

/// The outbox function's settings: the queue it forwards write requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    pub queue_url: String,
}

impl FromVars for OutboxConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let queue_url =
            getter(&lookup)(vars::QUEUE_URL).ok_or(ConfigError::Missing(vars::QUEUE_URL))?;
        Ok(Self { queue_url })
    }
}

/// What the CLI finds of a deployed stack in the environment (the stack's outputs), all optional:
/// asked for only when a command uses DynamoDB or SQS without `--local-aws`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackConfig {
    pub records_table: Option<String>,
    pub state_table: Option<String>,
    pub queue_url: Option<String>,
    pub dead_letter_queue_url: Option<String>,
    /// Nango's key or the signing key is to be read from Secrets Manager.
    pub reads_secrets: bool,
}

impl FromVars for StackConfig {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = getter(lookup);
        Ok(Self {
            records_table: get(vars::RECORDS_TABLE),
            state_table: get(vars::STATE_TABLE),
            queue_url: get(vars::QUEUE_URL),
            dead_letter_queue_url: get(vars::DEAD_LETTER_QUEUE_URL),
            reads_secrets: get(vars::API_KEY_SECRET).is_some()
                || get(vars::SIGNING_KEY_SECRET).is_some(),
        })
    }
}

/// Where a variable's value is looked up: the process environment, or a map in tests.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The variables a command reads: a deployed stack's outputs for the resources it names (the
/// operator's CLI with `--stack`), the environment for the rest. A variable naming another
/// resource than the stack's is overruled, with a warning (a stale `QUEUE_URL` must not point a
/// `drain --stack` at another queue); a key given directly (`NANGO_API_KEY`) wins over the
/// stack's secret for it.
#[derive(Clone)]
pub struct Vars {
    env: std::sync::Arc<Lookup>,
    stack_outputs: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for Vars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vars")
            .field("stack_outputs", &self.stack_outputs.keys())
            .finish_non_exhaustive()
    }
}

impl Vars {
    /// The process environment, and these outputs of a stack (by output key; none: empty).
    pub fn env_and(stack_outputs: std::collections::BTreeMap<String, String>) -> Self {
        Self::lookup_and(|name| std::env::var(name).ok(), stack_outputs)
    }

    /// `lookup` in place of the environment (tests).
    pub fn lookup_and(
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
        stack_outputs: std::collections::BTreeMap<String, String>,
    ) -> Self {
        Self {
            env: std::sync::Arc::new(lookup),
            stack_outputs,
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        let env = |name: &str| (self.env)(name).filter(|v| !v.trim().is_empty());
        let given_directly = match name {
            vars::API_KEY_SECRET => env(vars::API_KEY).is_some(),
            vars::SIGNING_KEY_SECRET => env(vars::SIGNING_KEY).is_some(),
            _ => false,
        };
        let from_stack = stack_output_for(name)
            .and_then(|output| self.stack_outputs.get(output).cloned())
            .filter(|_| !given_directly);
        match (from_stack, env(name)) {
            (Some(stack), Some(set)) if stack != set => {
                tracing::warn!(
                    variable = name,
                    "the variable is set, but the stack names another resource: using the stack's"
                );
                Some(stack)
            }
            (Some(stack), _) => Some(stack),
            (None, set) => set,
        }
    }

    /// Reads `T` from these variables.
    pub fn read<T: FromVars>(&self) -> Result<T, ConfigError> {
        T::from_lookup(|name| self.get(name))
    }
}

/// The output of template.yaml's stack that holds a variable's value, if one does.
pub fn stack_output_for(var: &str) -> Option<&'static str> {
    Some(match var {
        vars::RECORDS_TABLE => "RecordsTableName",
        vars::STATE_TABLE => "StateTableName",
        vars::QUEUE_URL => "QueueUrl",
        vars::DEAD_LETTER_QUEUE_URL => "DeadLetterQueueUrl",
        vars::API_KEY_SECRET => "NangoApiKeySecretArn",
        vars::SIGNING_KEY_SECRET => "SigningKeySecretArn",
        vars::NANGO_BASE_URL => "NangoBaseUrl",
        vars::DELETE_MODE => "DeleteMode",
        vars::CONNECTION_DELETED => "ConnectionDeleted",
        vars::SWEEP_MAX_DELETES => "SweepMaxDeletes",
        vars::SWEEP_MAX_DELETE_FRACTION => "SweepMaxDeleteFraction",
        _ => return None,
    })
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("expected a whole number from {min} to {max}, got {v:?}"),
            }),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

pub mod vars {
    pub const QUEUE_URL: &str = "QUEUE_URL";
    pub const DEAD_LETTER_QUEUE_URL: &str = "DEAD_LETTER_QUEUE_URL";
    pub const SIGNING_KEY: &str = "NANGO_WEBHOOK_SIGNING_KEY";
    pub const SIGNING_KEY_PREVIOUS: &str = "NANGO_WEBHOOK_SIGNING_KEY_PREVIOUS";
    pub const SIGNING_KEY_SECRET: &str = "NANGO_WEBHOOK_SIGNING_KEY_SECRET";
    pub const ACCEPT_LEGACY_SIGNATURE: &str = "NANGO_ACCEPT_LEGACY_SIGNATURE";
    pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
    pub const RECORDS_TABLE: &str = "RECORDS_TABLE";
    pub const STATE_TABLE: &str = "STATE_TABLE";
    pub const API_KEY: &str = "NANGO_API_KEY";
    pub const API_KEY_SECRET: &str = "NANGO_API_KEY_SECRET";
    pub const NANGO_BASE_URL: &str = "NANGO_BASE_URL";
    pub const PAGE_LIMIT: &str = "PAGE_LIMIT";
    pub const DELETE_MODE: &str = "DELETE_MODE";
    pub const DEADLINE_MARGIN_SECONDS: &str = "DEADLINE_MARGIN_SECONDS";
    pub const WRITE_CONCURRENCY: &str = "WRITE_CONCURRENCY";
    pub const STREAMS_AT_ONCE: &str = "STREAMS_AT_ONCE";
    pub const PAGE_BUDGET_MIB: &str = "PAGE_BUDGET_MIB";
    pub const WRITE_SHARE_PERCENT: &str = "WRITE_SHARE_PERCENT";
    pub const DISCOVERY_REQUESTS_PER_MINUTE: &str = "DISCOVERY_REQUESTS_PER_MINUTE";
    pub const DRIFT_CHECK: &str = "DRIFT_CHECK";
    pub const SWEEP_MAX_DELETES: &str = "SWEEP_MAX_DELETES";
    pub const SWEEP_MAX_DELETE_FRACTION: &str = "SWEEP_MAX_DELETE_FRACTION";
    pub const CONNECTION_DELETED: &str = "CONNECTION_DELETED";
    pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
    pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
    pub const SECRET_REREAD_SECONDS: &str = "SECRET_REREAD_SECONDS";
    pub const SECRET_TTL_SECONDS: &str = "SECRET_TTL_SECONDS";
    /// Set by Lambda.
    pub const FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([(vars::QUEUE_URL, "http://q"), (vars::SIGNING_KEY, "k1")])
    }

    #[test]
    fn minimal_env_gives_defaults() {
        let c = WebhookConfig::from_map(&base()).unwrap();
        assert_eq!(c.queue_url, "http://q");
        let debug = format!("{c:?}");
        let c = c.signing;
        assert_eq!(
            c.signing_keys,
            SigningKeySource::Env {
                current: "k1".into(),
                previous: None
            }
        );
        assert!(!c.accept_legacy_signature);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(!debug.contains("k1"));
    }

    #[test]
    fn errors_name_the_variable() {
        let mut m = base();
        m.remove(vars::QUEUE_URL);
        assert_eq!(
            WebhookConfig::from_map(&m).unwrap_err().to_string(),
            "QUEUE_URL is not set"
        );
        let mut m = base();
        m.remove(vars::SIGNING_KEY);
        assert_eq!(
            WebhookConfig::from_map(&m),
            Err(ConfigError::Missing(vars::SIGNING_KEY))
        );
        let mut m = base();
        m.insert(vars::SIGNING_KEY_SECRET, "arn:x");
        assert!(matches!(
            WebhookConfig::from_map(&m),
            Err(ConfigError::Conflict(..))
        ));
        let mut m = base();
        m.insert(vars::MAX_BODY_BYTES, "10MB");
        assert!(WebhookConfig::from_map(&m)
            .unwrap_err()
            .to_string()
            .starts_with("MAX_BODY_BYTES is invalid"));
        let mut m = base();
        m.insert(vars::ACCEPT_LEGACY_SIGNATURE, "maybe");
        assert!(WebhookConfig::from_map(&m).is_err());
    }

    #[test]
    fn worker_config_defaults_and_errors() {
        let mut m = HashMap::from([
            (vars::RECORDS_TABLE, "records"),
            (vars::STATE_TABLE, "state"),
            (vars::QUEUE_URL, "http://q"),
            (vars::API_KEY, "secret-api-key"),
        ]);
        let c = WorkerConfig::from_map(&m).unwrap();
        assert_eq!(c.nango.page_limit, 1000);
        assert_eq!(c.nango.base_url, "https://api.nango.dev");
        assert_eq!(c.behaviour.delete_mode, DeleteMode::Tombstone);
        assert!(!format!("{c:?}").contains("secret-api-key"));
        m.insert(vars::PAGE_LIMIT, "20000");
        assert!(WorkerConfig::from_map(&m)
            .unwrap_err()
            .to_string()
            .starts_with("PAGE_LIMIT is invalid"));
        m.insert(vars::PAGE_LIMIT, "500");
        m.insert(vars::DELETE_MODE, "hard");
        assert_eq!(
            WorkerConfig::from_map(&m).unwrap().behaviour.delete_mode,
            DeleteMode::Hard
        );
        m.remove(vars::STATE_TABLE);
        assert_eq!(
            WorkerConfig::from_map(&m),
            Err(ConfigError::Missing(vars::STATE_TABLE))
        );
    }

    #[test]
    fn sweep_guard_and_connection_deletion_settings() {
        let mut m = HashMap::from([
            (vars::RECORDS_TABLE, "records"),
            (vars::STATE_TABLE, "state"),
            (vars::QUEUE_URL, "http://q"),
            (vars::API_KEY, "k"),
        ]);
        let c = WorkerConfig::from_map(&m).unwrap().behaviour;
        assert_eq!(
            (c.sweep_max_deletes, c.sweep_max_delete_fraction),
            (100, 0.05)
        );
        assert_eq!(c.connection_deleted, ConnectionDeletedMode::Keep);
        m.insert(vars::SWEEP_MAX_DELETES, "0");
        m.insert(vars::SWEEP_MAX_DELETE_FRACTION, "0.2");
        m.insert(vars::CONNECTION_DELETED, "purge");
        let c = WorkerConfig::from_map(&m).unwrap().behaviour;
        assert_eq!((c.sweep_max_deletes, c.sweep_max_delete_fraction), (0, 0.2));
        assert_eq!(c.connection_deleted, ConnectionDeletedMode::Purge);
        for (name, bad) in [
            (vars::SWEEP_MAX_DELETE_FRACTION, "5%"),
            (vars::SWEEP_MAX_DELETE_FRACTION, "1.5"),
            (vars::SWEEP_MAX_DELETES, "-1"),
            (vars::CONNECTION_DELETED, "forget"),
        ] {
            let mut m = m.clone();
            m.insert(name, bad);
            let error = WorkerConfig::from_map(&m).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{name} is invalid")), "{error}");
        }
    }

    #[test]
    fn the_local_parts_need_no_stack_names() {
        // `nango-sync serve` on the embedded backend: Nango's key, the signing key, nothing else.
        let m = HashMap::from([(vars::API_KEY, "k"), (vars::SIGNING_KEY, "s")]);
        assert!(NangoConfig::from_map(&m).is_ok());
        assert!(WorkerBehaviour::from_map(&m).is_ok());
        assert!(SigningConfig::from_map(&m).is_ok());
        assert_eq!(
            WorkerConfig::from_map(&m),
            Err(ConfigError::Missing(vars::RECORDS_TABLE))
        );
    }

    #[test]
    fn a_stacks_outputs_win_over_stale_variables_and_a_direct_key_wins() {
        let outputs = std::collections::BTreeMap::from([
            ("RecordsTableName".to_owned(), "stack-records".to_owned()),
            ("QueueUrl".to_owned(), "https://sqs/q.fifo".to_owned()),
            (
                "NangoApiKeySecretArn".to_owned(),
                "arn:aws:secretsmanager:x".to_owned(),
            ),
        ]);
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let stack = Vars::lookup_and(
            env(&[
                (vars::QUEUE_URL, "https://env/another-stacks-queue.fifo"),
                (vars::STATE_TABLE, "env-state"),
            ]),
            outputs.clone(),
        );
        assert_eq!(
            stack.get(vars::RECORDS_TABLE).as_deref(),
            Some("stack-records")
        );
        // The stack's resource wins over a stale variable naming another one.
        assert_eq!(
            stack.get(vars::QUEUE_URL).as_deref(),
            Some("https://sqs/q.fifo")
        );
        // What the stack does not name comes from the environment.
        assert_eq!(stack.get(vars::STATE_TABLE).as_deref(), Some("env-state"));
        let nango: NangoConfig = stack.read().unwrap();
        assert_eq!(
            nango.api_key,
            ApiKeySource::SecretsManager {
                secret_id: "arn:aws:secretsmanager:x".into()
            }
        );
        // NANGO_API_KEY in the environment: the stack's secret is not offered beside it.
        let direct = Vars::lookup_and(env(&[(vars::API_KEY, "k")]), outputs);
        assert_eq!(direct.get(vars::API_KEY_SECRET), None);
        let nango: NangoConfig = direct.read().unwrap();
        assert_eq!(nango.api_key, ApiKeySource::Env("k".into()));
    }
}
