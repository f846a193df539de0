//! `sign`: a body signed as Nango signs it, printed or posted.

use std::io::Read;

use super::args::SignArgs;
use super::{report, CliResult};
use crate::core::signature::{sign as hmac, sign_legacy, HMAC_HEADER, LEGACY_HEADER};

pub async fn sign(args: SignArgs) -> CliResult {
    let body = match &args.file {
        Some(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            buf
        }
    };
    let hmac = hmac(args.key.as_bytes(), &body);
    let legacy = sign_legacy(args.key.as_bytes(), &body);
    let Some(url) = args.post else {
        report(
            args.json,
            serde_json::json!({HMAC_HEADER: hmac, LEGACY_HEADER: legacy}),
            &format!("{HMAC_HEADER}: {hmac}\n{LEGACY_HEADER}: {legacy}"),
        );
        return Ok(());
    };
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(HMAC_HEADER, hmac)
        .header(LEGACY_HEADER, legacy)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url} failed: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    report(
        args.json,
        serde_json::json!({"status": status.as_u16(), "body": text}),
        &format!("{} {text}", status.as_u16()),
    );
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {status}").into())
    }
}
