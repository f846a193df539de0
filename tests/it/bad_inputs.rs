//! The bad-input catalogue: hostile or broken webhook requests, each with the status it must get
//! and what it may enqueue, with every log line (all levels) captured and searched for secrets,
//! signatures and payloads.

use lambda_http::http::{HeaderMap, HeaderName, HeaderValue, Method};
use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::core::job::JobMessage;
use nango_sync::core::signature::{sign, sign_legacy, HMAC_HEADER, LEGACY_HEADER};
use nango_sync::core::webhook::WebhookApp;

use serde_json::json;

use crate::common::{test_verifier, Captured, TEST_SIGNING_KEY};

/// A value that only ever appears inside request bodies: it must never reach the logs.
const PAYLOAD_MARKER: &str = "payload-marker-7f3a";

const MAX_BODY: usize = 64 * 1024;

fn sync_body(connection: &str, model: &str) -> Vec<u8> {
    json!({"type": "sync", "from": "nango", "success": true, "connectionId": connection,
           "providerConfigKey": "hubspot", "syncName": "contacts", "model": model,
           "syncVariant": "base", "syncType": "INCREMENTAL", "modifiedAfter": "2026-11-27T10:00:00.000Z",
           "queryTimeStamp": PAYLOAD_MARKER, "responseResults": {"added": 1, "updated": 0, "deleted": 0}})
    .to_string()
    .into_bytes()
}

fn good() -> Vec<u8> {
    sync_body("user-42", "Contact")
}

/// How a case builds its request.
struct Case {
    name: &'static str,
    method: Method,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// Messages it must enqueue.
    enqueued: usize,
}

fn signed(name: &'static str, body: Vec<u8>, status: u16, enqueued: usize) -> Case {
    let signature = sign(TEST_SIGNING_KEY.as_bytes(), &body);
    Case {
        name,
        method: Method::POST,
        headers: vec![(HMAC_HEADER, signature)],
        body,
        status,
        enqueued,
    }
}

fn with_headers(name: &'static str, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Case {
    Case {
        name,
        method: Method::POST,
        headers,
        body,
        status: 401,
        enqueued: 0,
    }
}

fn flip(mut body: Vec<u8>, at: usize) -> Vec<u8> {
    let i = at.min(body.len() - 1);
    body[i] ^= 0x01;
    body
}

fn catalogue() -> Vec<Case> {
    let body = good();
    let sig = sign(TEST_SIGNING_KEY.as_bytes(), &body);
    let other_sig = sign(
        TEST_SIGNING_KEY.as_bytes(),
        &sync_body("user-43", "Contact"),
    );
    let wrong_key_sig = sign(b"another-key", &body);
    let nested = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
    let mut non_utf8 = b"{\"type\":\"sync\",\"x\":\"".to_vec();
    non_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    non_utf8.extend_from_slice(b"\"}");
    let cases = vec![
        signed("genuine sync webhook", body.clone(), 200, 1),
        with_headers("signature from another key", vec![(HMAC_HEADER, wrong_key_sig)], body.clone()),
        with_headers("valid signature over another body", vec![(HMAC_HEADER, other_sig)], body.clone()),
        with_headers("first byte changed", vec![(HMAC_HEADER, sig.clone())], flip(body.clone(), 0)),
        with_headers("middle byte changed", vec![(HMAC_HEADER, sig.clone())], flip(body.clone(), body.len() / 2)),
        with_headers("last byte changed", vec![(HMAC_HEADER, sig.clone())], flip(body.clone(), usize::MAX)),
        with_headers("body truncated", vec![(HMAC_HEADER, sig.clone())], body[..body.len() - 10].to_vec()),
        with_headers("body with a trailing newline", vec![(HMAC_HEADER, sig.clone())], [body.clone(), b"\n".to_vec()].concat()),
        with_headers("signature truncated", vec![(HMAC_HEADER, sig[..40].to_owned())], body.clone()),
        with_headers("signature missing", vec![], body.clone()),
        with_headers("signature empty", vec![(HMAC_HEADER, String::new())], body.clone()),
        with_headers("signature not hex", vec![(HMAC_HEADER, "z".repeat(64))], body.clone()),
        with_headers("signature with a sha256= prefix", vec![(HMAC_HEADER, format!("sha256={sig}"))], body.clone()),
        with_headers("signature with spaces", vec![(HMAC_HEADER, format!(" {sig} "))], body.clone()),
        with_headers("signature header sent twice", vec![(HMAC_HEADER, sig.clone()), (HMAC_HEADER, sig.clone())], body.clone()),
        with_headers("signature twice, one wrong", vec![(HMAC_HEADER, "0".repeat(64)), (HMAC_HEADER, sig.clone())], body.clone()),
        with_headers("legacy header only (not enabled)", vec![(LEGACY_HEADER, sign_legacy(TEST_SIGNING_KEY.as_bytes(), &body))], body.clone()),
        with_headers("signature under another header", vec![("x-signature", sig.clone())], body.clone()),
        Case { status: 200, enqueued: 1, ..with_headers("upper-case hex signature (accepted: hex is case-free)", vec![(HMAC_HEADER, sig.to_uppercase())], body.clone()) },
        Case { status: 200, enqueued: 1, ..with_headers("header name in capitals (HTTP names are case-free)", vec![("X-NANGO-HMAC-SHA256", sig.clone())], body.clone()) },
        Case { method: Method::GET, status: 405, ..with_headers("GET", vec![(HMAC_HEADER, sig.clone())], body.clone()) },
        Case { method: Method::PUT, status: 405, ..with_headers("PUT", vec![(HMAC_HEADER, sig.clone())], body.clone()) },
        Case { method: Method::DELETE, status: 405, ..with_headers("DELETE without a body", vec![], vec![]) },
        signed("oversize body, signed", [b"{\"pad\":\"".to_vec(), vec![b'a'; MAX_BODY], b"\"}".to_vec()].concat(), 413, 0),
        Case { status: 413, ..with_headers("oversize body, unsigned", vec![], vec![b'x'; MAX_BODY + 1]) },
        signed("non-UTF-8 body, signed", non_utf8, 400, 0),
        signed("not JSON, signed", b"type=sync&success=true".to_vec(), 400, 0),
        signed("empty body, signed", Vec::new(), 400, 0),
        // Valid JSON, however deep or large its numbers: kept whole as an event (never parsed into
        // a tree, so no recursion limit or float overflow is reached; the worker stores it verbatim).
        signed("deeply nested JSON (10,000 levels), signed (kept as an event)", nested, 200, 1),
        signed("JSON with a byte-order mark, signed", [b"\xef\xbb\xbf".to_vec(), good()].concat(), 400, 0),
        // Kept whole, not refused: Nango never retries a 4xx, so a genuine webhook of a shape we
        // do not know is stored for the application instead of being lost.
        signed("huge number in responseResults, signed (kept as an event)",
            br#"{"type":"sync","success":true,"connectionId":"c","providerConfigKey":"p","syncName":"s","model":"M","responseResults":{"added":100000000000000000000000000000,"updated":0,"deleted":0}}"#.to_vec(), 200, 1),
        signed("number beyond f64 in a forward, signed (kept as an event)", br#"{"type":"forward","connectionId":"c","providerConfigKey":"p","payload":{"n":1e999999}}"#.to_vec(), 200, 1),
        signed("unknown type, signed (kept as an event)", json!({"type": "brand_new", "from": "nango", "marker": PAYLOAD_MARKER}).to_string().into_bytes(), 200, 1),
        signed("sync without success, signed (kept as an event)", json!({"type": "sync", "connectionId": "c"}).to_string().into_bytes(), 200, 1),
        signed("top-level array, signed (unmatched forward)", b"[1,2,3]".to_vec(), 200, 1),
        signed("connection id with separators", sync_body("a|b%7C|c", "Contact"), 200, 1),
        signed("connection id with slashes", sync_body("../../etc/passwd", "Contact"), 200, 1),
        signed("unicode ids", sync_body("zoë-🚀-接続", "Contact"), 200, 1),
        signed("connection id of 300 characters", sync_body(&"c".repeat(300), "Contact"), 200, 1),
        signed("NUL bytes in ids", sync_body("a\u{0}b", "Contact"), 200, 1),
        signed("multi-model sync failure: one job per model",
            json!({"type": "sync", "success": false, "connectionId": "c", "providerConfigKey": "p", "syncName": "s",
                   "model": "Contact,Deal", "error": {"type": "script_error", "description": PAYLOAD_MARKER}}).to_string().into_bytes(), 200, 2),
    ];
    cases
}

#[tokio::test]
async fn every_hostile_request_gets_its_status_and_enqueues_only_if_genuine() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cases = catalogue();
    assert!(cases.len() >= 30, "the catalogue has {} cases", cases.len());
    let mut signatures = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let app = WebhookApp::new(test_verifier(), MemoryQueue::new(), MAX_BODY);
        let mut headers = HeaderMap::new();
        for (name, value) in &case.headers {
            signatures.push(value.clone());
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let request = nango_sync::lambda::http_request(&case.method, &headers, &case.body);
        let outcome = app.decide(&request).await;
        let sent = app.queue().sent();
        for message in &sent {
            JobMessage::decode(&message.body)
                .unwrap_or_else(|e| panic!("{}: enqueued an undecodable job: {e}", case.name));
        }
        if outcome.status() != case.status || sent.len() != case.enqueued {
            failures.push(format!(
                "{}: got {} with {} enqueued, expected {} with {}",
                case.name,
                outcome.status(),
                sent.len(),
                case.status,
                case.enqueued
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("webhook refused"),
        "the logs were captured: {logs}"
    );
    assert!(
        !logs.contains(TEST_SIGNING_KEY),
        "the signing key reached the logs"
    );
    assert!(!logs.contains(PAYLOAD_MARKER), "a payload reached the logs");
    for signature in signatures.iter().filter(|s| s.len() >= 16) {
        assert!(
            !logs.contains(signature.as_str()),
            "a signature reached the logs: {signature}"
        );
    }
}
