//! `doctor`: is this deployment (or local set-up) ready to sync? Each check says what it found
//! and, when it fails, what to do. What only Nango's dashboard shows is listed to check by hand.

use serde_json::json;

use super::args::DoctorArgs;
use super::backend::{resolve, worker_parts, DbFile, Resolved};
use super::{CliResult, NeedsOperator};
use crate::config::{SigningConfig, SigningKeySource};
use crate::ports::StateStore;
use crate::setup;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
    /// Not checkable from here: for the operator to look at.
    Check,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Check => "check",
        }
    }
}

struct Finding {
    check: &'static str,
    verdict: Verdict,
    detail: String,
}

/// The outputs `--stack` must have for the CLI and for this doctor.
const OUTPUTS: [&str; 7] = [
    "WebhookUrl",
    "QueueUrl",
    "DeadLetterQueueUrl",
    "RecordsTableName",
    "StateTableName",
    "SigningKeySecretArn",
    "NangoApiKeySecretArn",
];

pub async fn doctor(args: DoctorArgs) -> CliResult {
    let resolved = resolve(&args.backend, DbFile::MustExist).await?;
    let mut findings = Vec::new();
    let mut found = |check, verdict, detail: String| {
        findings.push(Finding {
            check,
            verdict,
            detail,
        })
    };
    match &resolved.stack_outputs {
        Some(outputs) => {
            let missing: Vec<&str> = OUTPUTS
                .into_iter()
                .filter(|o| !outputs.contains_key(*o))
                .collect();
            if missing.is_empty() {
                found(
                    "stack",
                    Verdict::Ok,
                    format!("{} outputs, all the CLI uses", outputs.len()),
                );
            } else {
                found(
                    "stack",
                    Verdict::Fail,
                    format!(
                        "outputs missing: {} (deploy this version's template.yaml)",
                        missing.join(", ")
                    ),
                );
            }
        }
        None => found(
            "stack",
            Verdict::Warn,
            "no --stack: checking the settings in the environment".into(),
        ),
    }
    let (verdict, detail) = signing_key(&resolved).await;
    found("signing key", verdict, detail);
    let (verdict, detail) = nango(&resolved).await;
    found("Nango", verdict, detail);
    let (verdict, detail) = store_and_queues(&resolved).await;
    found("store and queues", verdict, detail);
    let webhook_url = resolved
        .stack_outputs
        .as_ref()
        .and_then(|o| o.get("WebhookUrl").cloned());
    match &webhook_url {
        Some(url) => {
            let (verdict, detail) = webhook_endpoint(url).await;
            found("webhook endpoint", verdict, detail);
        }
        None => found(
            "webhook endpoint",
            Verdict::Warn,
            "no stack output WebhookUrl to try".into(),
        ),
    }
    found(
        "Nango's settings",
        Verdict::Check,
        format!(
            "Nango's API does not show them to an API key; in Environment Settings > Webhooks check: the webhook URL is {}; \"send a webhook for every completed sync\" is on (else runs with no change send none and a lost one is only healed by the reconcile); sync error and connection deletion webhooks are on",
            webhook_url.as_deref().unwrap_or("the stack's WebhookUrl output")
        ),
    );

    for f in &findings {
        if args.json {
            println!(
                "{}",
                json!({"check": f.check, "status": f.verdict.as_str(), "detail": f.detail})
            );
        } else {
            println!("{:<5} {:<18} {}", f.verdict.as_str(), f.check, f.detail);
        }
    }
    let failed = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Fail)
        .count();
    if failed > 0 {
        return Err(NeedsOperator {
            code: 1,
            summary: format!("doctor: {failed} check(s) failed"),
        }
        .into());
    }
    Ok(())
}

async fn signing_key(resolved: &Resolved) -> (Verdict, String) {
    let config: SigningConfig = match resolved.vars.read() {
        Ok(c) => c,
        Err(e) => return (Verdict::Fail, e.to_string()),
    };
    let source = match &config.signing_keys {
        SigningKeySource::Env { .. } => "from NANGO_WEBHOOK_SIGNING_KEY".to_owned(),
        SigningKeySource::SecretsManager { secret_id } => format!("secret {secret_id}"),
    };
    match setup::verifier(&config, &resolved.sdk).await {
        Ok(verifier) if verifier.current().has_previous() => (
            Verdict::Warn,
            format!("{source}: a rotation pair (current and previous); once WebhooksSignedWithPreviousKey stays 0, keep only the new key"),
        ),
        Ok(_) => (Verdict::Ok, format!("{source}: one key")),
        Err(e) => (Verdict::Fail, e.to_string()),
    }
}

async fn nango(resolved: &Resolved) -> (Verdict, String) {
    let client = match worker_parts(resolved).await {
        Ok((client, _)) => client,
        Err(e) => return (Verdict::Fail, e.to_string()),
    };
    match client.count_connections().await {
        Ok(n) => (
            Verdict::Ok,
            format!(
                "{} answered with the API key: {n} connection(s)",
                client.base_url()
            ),
        ),
        Err(e) => (Verdict::Fail, format!("{}: {e}", client.base_url())),
    }
}

async fn store_and_queues(resolved: &Resolved) -> (Verdict, String) {
    let streams = match resolved.backends.store.list_streams().await {
        Ok(s) => s.len(),
        Err(e) => return (Verdict::Fail, format!("the store: {e}")),
    };
    let queued = match resolved.backends.queue.depth().await {
        Ok(n) => n,
        Err(e) => return (Verdict::Fail, format!("the ingest queue: {e}")),
    };
    let dead = match &resolved.backends.dead_letters {
        Some(q) => match q.depth().await {
            Ok(n) => n,
            Err(e) => return (Verdict::Fail, format!("the dead-letter queue: {e}")),
        },
        None => 0,
    };
    let detail =
        format!("{streams} stream(s); {queued} job(s) queued; {dead} in the dead-letter queue");
    if dead > 0 {
        (
            Verdict::Warn,
            format!("{detail}: see \"Replaying the dead-letter queue\""),
        )
    } else {
        (Verdict::Ok, detail)
    }
}

/// An unsigned POST must get the fixed 401: the function is deployed, reachable and verifying.
async fn webhook_endpoint(url: &str) -> (Verdict, String) {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("a client with a timeout builds");
    match client.post(url).body("{}").send().await {
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => (
            Verdict::Ok,
            format!("{url} answers 401 to an unsigned request, as it should"),
        ),
        Ok(r) => (
            Verdict::Fail,
            format!(
                "{url} answered {} to an unsigned request (expected 401)",
                r.status()
            ),
        ),
        Err(e) => (Verdict::Fail, format!("{url} could not be reached: {e}")),
    }
}
