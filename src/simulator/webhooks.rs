//! The sync webhooks a simulated Nango sends (contract §2), signed as Nango signs them.

use serde_json::{json, Value};

use super::Changes;
use crate::core::signature::{sign, HMAC_HEADER};
use crate::core::stream::{ConnectionKey, StreamKey};

/// A successful sync run's webhook body for one stream.
pub fn sync_success(
    stream: &StreamKey,
    sync_name: &str,
    changes: Changes,
    sync_type: &str,
) -> String {
    sync_body(stream, sync_name, changes, sync_type).to_string()
}

/// The webhook of one slice of a checkpointed pass (nango-2026.md): `to` is the checkpoint the
/// slice left, `None` on the slice that ends the pass; `from` is `None` on the first.
pub fn sync_slice(
    stream: &StreamKey,
    sync_name: &str,
    changes: Changes,
    from: Option<Value>,
    to: Option<Value>,
) -> String {
    let kind = if from.is_none() {
        "INITIAL"
    } else {
        "INCREMENTAL"
    };
    let mut body = sync_body(stream, sync_name, changes, kind);
    body["checkpoints"] = json!({"from": from, "to": to});
    body.to_string()
}

fn sync_body(stream: &StreamKey, sync_name: &str, changes: Changes, sync_type: &str) -> Value {
    let now = crate::core::job::now_rfc3339();
    json!({
        "type": "sync", "from": "nango", "success": true,
        "connectionId": stream.connection_id, "providerConfigKey": stream.provider_config_key,
        "syncName": sync_name, "model": stream.model, "syncVariant": stream.variant,
        "syncType": sync_type, "modifiedAfter": now, "queryTimeStamp": now,
        "responseResults": {"added": changes.added, "updated": changes.updated, "deleted": changes.deleted},
    })
}

/// The `auth` webhook Nango sends when a connection is deleted (PR #7235).
pub fn connection_deleted(connection: &ConnectionKey) -> String {
    json!({
        "type": "auth", "from": "nango", "operation": "deletion", "success": true,
        "connectionId": connection.connection_id, "providerConfigKey": connection.provider_config_key,
        "authMode": "OAUTH2", "provider": connection.provider_config_key, "environment": "dev",
    })
    .to_string()
}

/// The `async_action` webhook Nango sends when an async action finished, well or not
/// (nango-writeback.md): it names the action, not how it went.
pub fn async_action_done(connection: &ConnectionKey, action_id: &str) -> String {
    json!({
        "type": "async_action", "from": "nango",
        "connectionId": connection.connection_id, "providerConfigKey": connection.provider_config_key,
        "payload": {"id": action_id, "statusUrl": format!("/action/{action_id}")},
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
