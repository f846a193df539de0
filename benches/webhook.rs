//! Webhook hot path: verify + classify + build the queue message for a ~1 KB sync webhook.
//! Run: cargo bench --bench webhook

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lambda_http::http::{HeaderMap, Method};
use nango_sync::core::payload::NangoWebhook;
use nango_sync::core::signature::{sign, SignatureHeaders, SigningKey, Verifier};
use nango_sync::core::webhook::prepare;
use nango_sync::lambda::http_request;

const KEY: &str = "3f8e7a52-1c4b-4d2e-9a6f-0b7c5d9e2a14";

/// A sync success webhook padded to about 1 KB through its checkpoints, keys sorted as Nango sends.
fn one_kb_body() -> Vec<u8> {
    let pad = "x".repeat(620);
    let body = format!(
        r#"{{"checkpoints":{{"from":{{"lastCursor":"{pad}","page":3}},"to":{{"lastCursor":"def","page":7}}}},"connectionId":"user-42","from":"nango","model":"Contact","modifiedAfter":"2025-01-15T10:00:00.123Z","providerConfigKey":"hubspot","queryTimeStamp":"2025-01-15T10:00:00.123Z","responseResults":{{"added":12,"deleted":0,"updated":3}},"success":true,"syncName":"contacts","syncType":"INCREMENTAL","syncVariant":"base","type":"sync"}}"#
    );
    body.into_bytes()
}

fn bench(c: &mut Criterion) {
    let body = one_kb_body();
    assert!((1000..1100).contains(&body.len()), "{}", body.len());
    let signature = sign(KEY.as_bytes(), &body);
    let mut headers = HeaderMap::new();
    headers.insert("x-nango-hmac-sha256", signature.parse().unwrap());
    let verifier = Verifier::new(SigningKey::new(KEY), None);
    let rotating = Verifier::new(SigningKey::new("new-key"), Some(SigningKey::new(KEY)));
    let post = Method::POST;
    let request = http_request(&post, &headers, &body);
    assert!(prepare(&verifier, &request, "2026-11-27T14:00:00Z").is_ok());

    c.bench_function("prepare_1kb (verify+classify+message)", |b| {
        b.iter(|| {
            prepare(
                black_box(&verifier),
                black_box(&http_request(&post, &headers, &body)),
                "2026-11-27T14:00:00Z",
            )
            .unwrap()
        })
    });
    c.bench_function("prepare_1kb_previous_key (rotation window)", |b| {
        b.iter(|| {
            prepare(
                black_box(&rotating),
                black_box(&http_request(&post, &headers, &body)),
                "2026-11-27T14:00:00Z",
            )
            .unwrap()
        })
    });
    c.bench_function("verify_1kb", |b| {
        let sig = [signature.as_bytes()];
        b.iter(|| {
            verifier
                .verify(
                    SignatureHeaders {
                        hmac: &sig,
                        legacy: &[],
                    },
                    black_box(&body),
                )
                .unwrap()
        })
    });
    c.bench_function("classify_1kb", |b| {
        b.iter(|| NangoWebhook::parse(black_box(&body)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
