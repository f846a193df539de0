#!/usr/bin/env python3
"""Writes the sample Lambda events in this folder.

Each file is a Lambda Function URL event (payload format 2.0, the same shape API Gateway HTTP APIs
send) carrying a webhook body exactly as Nango serializes it (compact JSON, keys sorted), signed
with the documented test key below. Run it from anywhere: python3 events/generate.py
The Rust tests re-verify every signature with the crate's own verifier.
"""
import base64
import hashlib
import hmac
import json
import pathlib

TEST_SIGNING_KEY = "nango-sync-test-signing-key"
HERE = pathlib.Path(__file__).resolve().parent


def nango_json(value):
    # Nango's stableStringify: compact, keys sorted, non-ASCII raw.
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def hmac_hex(key, body: bytes):
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def legacy_hex(key, body: bytes):
    return hashlib.sha256(key.encode() + body).hexdigest()


def event(body: bytes, headers, method="POST", binary=False):
    host = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
    all_headers = {
        "content-type": "application/json",
        "host": host,
        "user-agent": "nango/0.71.4 (linux/6.1.0; node.js/20.18.0)",
        "x-amzn-trace-id": "Root=1-6747a1b0-0123456789abcdef01234567",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    all_headers.update(headers)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghijklmnopqrstuvwxyz012345",
            "domainName": host,
            "domainPrefix": "abcdefghijklmnopqrstuvwxyz012345",
            "http": {
                "method": method,
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": all_headers["user-agent"],
            },
            "requestId": "4f1c2a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60",
            "routeKey": "$default",
            "stage": "$default",
            "time": "27/Nov/2026:14:00:00 +0000",
            "timeEpoch": 1795788000000,
        },
        "body": base64.b64encode(body).decode() if binary else body.decode("utf-8"),
        "isBase64Encoded": binary,
    }


def signed(body: bytes, key=TEST_SIGNING_KEY):
    return {"x-nango-hmac-sha256": hmac_hex(key, body), "x-nango-signature": legacy_hex(key, body)}


SYNC_SUCCESS = {
    "checkpoints": {"from": {"lastCursor": "abc"}, "to": {"lastCursor": "def"}},
    "connectionId": "user-42",
    "from": "nango",
    "model": "Contact",
    "modifiedAfter": "2026-11-27T13:59:58.123Z",
    "providerConfigKey": "hubspot",
    "queryTimeStamp": "2026-11-27T13:59:58.123Z",
    "responseResults": {"added": 12, "deleted": 1, "updated": 3},
    "success": True,
    "syncName": "contacts",
    "syncType": "INCREMENTAL",
    "syncVariant": "base",
    "type": "sync",
}
SYNC_FAILURE = {
    "connectionId": "user-42",
    "error": {"description": "Request failed with status code 401", "type": "script_error"},
    "failedAt": "2026-11-27T14:00:01.000Z",
    "from": "nango",
    "model": "Contact,Company",
    "providerConfigKey": "hubspot",
    "startedAt": "2026-11-27T13:45:00.000Z",
    "success": False,
    "syncName": "contacts-and-companies",
    "syncType": "INCREMENTAL",
    "syncVariant": "base",
    "type": "sync",
}
AUTH_CREATION = {
    "authMode": "OAUTH2",
    "connectionId": "user-42",
    "endUser": {"endUserEmail": "zoë@example.com", "endUserId": "u_123", "organizationId": "org_9", "tags": {}},
    "environment": "prod",
    "from": "nango",
    "operation": "creation",
    "provider": "hubspot",
    "providerConfigKey": "hubspot",
    "success": True,
    "tags": {"end_user_email": "zoë@example.com", "end_user_id": "u_123"},
    "type": "auth",
}
AUTH_DELETION = {
    "authMode": "OAUTH2",
    "connectionId": "user-42",
    "environment": "prod",
    "from": "nango",
    "operation": "deletion",
    "provider": "hubspot",
    "providerConfigKey": "hubspot",
    "success": True,
    "type": "auth",
}
# A sync webhook that names no connection: kept as an event, never a sync of an empty stream.
SYNC_EMPTY_CONNECTION = dict(SYNC_SUCCESS, connectionId="")
FORWARD = {
    "connectionId": "user-42",
    "from": "hubspot",
    "payload": {"eventId": 1001, "objectId": 512, "subscriptionType": "contact.creation"},
    "providerConfigKey": "hubspot",
    "type": "forward",
}
ASYNC_ACTION = {
    "connectionId": "user-42",
    "from": "nango",
    "payload": {"id": "7a1c4e0b-2f3d-4b5a-9c6d-8e7f6a5b4c3d", "statusUrl": "/action/7a1c4e0b-2f3d-4b5a-9c6d-8e7f6a5b4c3d"},
    "providerConfigKey": "hubspot",
    "type": "async_action",
}


def write(name, ev):
    (HERE / name).write_text(json.dumps(ev, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main():
    for name, payload in [
        ("webhook-sync-success.json", SYNC_SUCCESS),
        ("webhook-sync-failure.json", SYNC_FAILURE),
        ("webhook-auth-creation.json", AUTH_CREATION),
        ("webhook-auth-deletion.json", AUTH_DELETION),
        ("webhook-sync-empty-connection.json", SYNC_EMPTY_CONNECTION),
        ("webhook-forward.json", FORWARD),
        ("webhook-async-action.json", ASYNC_ACTION),
    ]:
        body = nango_json(payload).encode()
        write(name, event(body, signed(body)))

    body = nango_json(SYNC_SUCCESS).encode()
    wrong = signed(body, key="not-the-signing-key")
    write("webhook-bad-signature.json", event(body, wrong))
    write("webhook-missing-signature.json", event(body, {}))
    write("webhook-wrong-method.json", event(body, signed(body), method="GET"))

    not_json = b"this is not json"
    write("webhook-not-json.json", event(not_json, signed(not_json)))


if __name__ == "__main__":
    main()
