//! The sync webhooks a simulated Nango sends (contract §2), signed as Nango signs them.

use serde_json::json;

use super::Changes;
use crate::signature::{sign, HMAC_HEADER};
use crate::stream::StreamKey;

/// A successful sync run's webhook body for one stream.
pub fn sync_success(
    stream: &StreamKey,
    sync_name: &str,
    changes: Changes,
    sync_type: &str,
) -> String {
    let now = crate::job::now_rfc3339();
    json!({
        "type": "sync", "from": "nango", "success": true,
        "connectionId": stream.connection_id, "providerConfigKey": stream.provider_config_key,
        "syncName": sync_name, "model": stream.model, "syncVariant": stream.variant,
        "syncType": sync_type, "modifiedAfter": now, "queryTimeStamp": now,
        "responseResults": {"added": changes.added, "updated": changes.updated, "deleted": changes.deleted},
    })
    .to_string()
}

/// POSTs `body` to `url` signed with `key` (`X-Nango-Hmac-Sha256`); returns the HTTP status.
pub async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: String,
) -> Result<u16, String> {
    let signature = sign(key.as_bytes(), body.as_bytes());
    client
        .post(url)
        .header("content-type", "application/json")
        .header(HMAC_HEADER, signature)
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("POST {url}: {e}"))
}
