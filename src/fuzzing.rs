//! The properties the fuzzers check, shared by the bounded run in the test suite
//! (tests/it/fuzz.rs) and the cargo-fuzz targets (fuzz/): each panics when a property fails.

use serde_json::Value;

use crate::adapters::aws::dynamodb::item::{decode_record, put_request, Encoded, Partition};
use crate::adapters::aws::dynamodb::wire::item_from_wire;
use crate::core::job::JobMessage;
use crate::core::record::{NangoRecord, RecordsPage};
use crate::core::signature::{sign, SigningKey, Verifier, HMAC_HEADER};
use crate::core::stream::StreamKey;
use crate::core::webhook::{prepare, RequestOutcome, WebhookRequest};

const KEY: &[u8] = b"fuzz-signing-key";

/// A POST of `body` with `signature` as its HMAC header, when HTTP can carry those bytes as a
/// header value (visible ASCII, space, tab, or bytes >= 0x80); otherwise with no header.
fn with_signature<'a>(signature: &'a [u8], body: &'a [u8]) -> WebhookRequest<'a> {
    let sendable = signature
        .iter()
        .all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7f));
    WebhookRequest::new("POST", body, |name| {
        if name == HMAC_HEADER && sendable {
            vec![signature]
        } else {
            Vec::new()
        }
    })
}

/// Any body, signed three ways: with its own signature it is never refused for the signature,
/// and every job it yields decodes; with another body's signature, or with arbitrary header
/// bytes that are not its signature, it is always refused. True when the genuinely signed body
/// was accepted and its jobs decoded (the deepest path), so a run can count how many got there.
pub fn check_webhook(data: &[u8]) -> bool {
    let verifier = Verifier::new(SigningKey::new(KEY), None);
    let (body, header) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let genuine = sign(KEY, body);
    let accepted = match prepare(&verifier, &with_signature(genuine.as_bytes(), body), "t") {
        Ok(prepared) => {
            for message in &prepared.messages {
                JobMessage::decode(&message.body).expect("an enqueued job decodes");
            }
            true
        }
        Err(RequestOutcome::NotJson | RequestOutcome::PayloadTooLarge) => false,
        Err(other) => panic!("a genuine signature was refused: {other:?}"),
    };
    let mut other_body = body.to_vec();
    other_body.push(b' ');
    let foreign = sign(KEY, &other_body);
    let refused = prepare(&verifier, &with_signature(foreign.as_bytes(), body), "t");
    assert!(
        matches!(refused, Err(RequestOutcome::Unauthorized(_))),
        "another body's signature was accepted"
    );
    if !header.eq_ignore_ascii_case(genuine.as_bytes()) {
        let outcome = prepare(&verifier, &with_signature(header, body), "t");
        assert!(
            matches!(outcome, Err(RequestOutcome::Unauthorized(_))),
            "arbitrary signature bytes were accepted"
        );
    }
    accepted
}

/// Any JSON object that is a record: its item decodes back to the same record (numbers by value,
/// as DynamoDB keeps them; a key given twice by its last value, as a JSON map reads it). True
/// when the input was a record and went through the round trip, so a run can count those.
pub fn check_record(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(Ok(record)) = NangoRecord::from_json(text) else {
        return false;
    };
    // Read within a page (the text found around its fields), it is the same record.
    let page = format!("{{\"records\":[ \n{text}\t,{text}]}}");
    let in_page = RecordsPage::parse(page.as_bytes()).expect("records make a page");
    for read in &in_page.records {
        assert_eq!(
            read, &record,
            "a page's reading of a record differs from its own"
        );
        assert_eq!(read.content_digest(), record.content_digest());
    }
    let stream = StreamKey::new("p", "c", "Model", "base");
    let request = match put_request(&Partition::of(&stream), &record, &[]) {
        Encoded::Native(request) | Encoded::Compressed(request) => request,
        Encoded::TooLarge(_) => return false,
    };
    let item = item_from_wire(&request.json).expect("a put request is DynamoDB JSON");
    let back = decode_record(&item).expect("an item decodes");
    assert!(
        same_value(&Value::Object(back), &Value::Object(record.object())),
        "a record changed on its way through DynamoDB's item"
    );
    true
}

/// JSON equality with numbers compared by value.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}
