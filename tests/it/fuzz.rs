//! The bounded fuzz run of the test suite (a stable-toolchain mutation fuzzer): inputs grown from
//! a corpus seeded with events/ and the signature vectors, mutated byte-wise and spliced, or
//! JSON-aware (a value replaced, a key added or removed), through the properties in
//! `nango_sync::fuzzing`; a floor on the share that reaches each property's deepest check. `FUZZ_ITERATIONS` (default 20,000 per target) and
//! `FUZZ_SEED` set the run; a failure prints its seed, iteration and input. Coverage-guided runs
//! for longer: fuzz/README.md (cargo-fuzz).

use std::panic::{catch_unwind, AssertUnwindSafe};

use nango_sync::fuzzing::{check_record, check_webhook};
use serde_json::{json, Value};

use crate::common::{read, repo_path};

fn iterations() -> u64 {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed)
}

/// The webhook bodies of events/ and of the signature vectors.
fn webhook_corpus() -> Vec<Vec<u8>> {
    let mut corpus = Vec::new();
    let dir = repo_path("events");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("webhook-") && n.ends_with(".json"))
        .collect();
    names.sort();
    for name in names {
        let event: Value = serde_json::from_str(&read(&format!("events/{name}"))).unwrap();
        corpus.push(event["body"].as_str().unwrap_or("").as_bytes().to_vec());
    }
    let vectors: Value =
        serde_json::from_str(&read("tests/fixtures/nango-signature-vectors.json")).unwrap();
    for v in vectors["vectors"].as_array().unwrap() {
        corpus.push(v["body"].as_str().unwrap().as_bytes().to_vec());
    }
    assert!(corpus.len() >= 10, "corpus of {}", corpus.len());
    corpus
}

fn record_corpus() -> Vec<Vec<u8>> {
    let meta = json!({"first_seen_at": "2026-01-15T10:00:00.123456+00:00", "last_modified_at": "2026-01-15T10:00:00.123456+00:00",
        "last_action": "ADDED", "deleted_at": null, "pruned_at": null, "cursor": "MjAyNi0wMS0xNVQxMDowMDowMC4xMjM0NTYrMDA6MDB8fDNmYjQ="});
    [
        json!({"id": "contact-1", "name": "Alice", "_nango_metadata": meta}),
        json!({"id": "1", "n": 1.5, "big": 18446744073709551615u64, "neg": -9223372036854775808i64, "f": 1e-7, "_nango_metadata": meta}),
        json!({"id": "zoë 🚀", "nested": {"a": [[[]]], "b": {}, "c": [null, true, ""]}, "_nango_metadata": meta}),
        json!({"id": "p", "_nango_metadata": {"last_modified_at": "x", "last_action": "DELETED", "deleted_at": "y", "pruned_at": "z", "cursor": "c"}}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}

const INTERESTING: &[u8] = b"\x00\xff\"{}[],:\\-+.eE0123456789 \n\x7f";

fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..rng.usize(1..=4) {
        let len = input.len();
        match rng.u8(0..7) {
            0 if len > 0 => input[rng.usize(0..len)] ^= 1 << rng.u8(0..8),
            1 if len > 0 => input[rng.usize(0..len)] = INTERESTING[rng.usize(0..INTERESTING.len())],
            2 => {
                let at = rng.usize(0..=len);
                let byte = if rng.bool() {
                    INTERESTING[rng.usize(0..INTERESTING.len())]
                } else {
                    rng.u8(..)
                };
                input.insert(at, byte);
            }
            3 if len > 1 => {
                let start = rng.usize(0..len);
                let end = rng.usize(start..=len.min(start + 16));
                input.drain(start..end);
            }
            4 if len > 1 => {
                let start = rng.usize(0..len);
                let end = rng.usize(start..=len.min(start + 32));
                let copy = input[start..end].to_vec();
                let at = rng.usize(0..=input.len());
                input.splice(at..at, copy);
            }
            5 => {
                let other = &corpus[rng.usize(0..corpus.len())];
                let cut = rng.usize(0..=input.len());
                let from = rng.usize(0..=other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ => input.truncate(rng.usize(0..=len)),
        }
    }
}

/// Values that stress a record's conversion: DynamoDB's number limits, odd strings, empty
/// containers.
fn edge_value(rng: &mut fastrand::Rng) -> Value {
    match rng.u8(0..12) {
        0 => json!(i64::MIN),
        1 => json!(u64::MAX),
        2 => json!(1e308),
        3 => json!(-1e-130),
        4 => json!(rng.f64() * 1e6 - 5e5),
        5 => json!(""),
        6 => json!("zoë 🚀 \u{0} \" \\ \n"),
        7 => json!({}),
        8 => json!([]),
        9 => json!(null),
        10 => json!(rng.bool()),
        _ => json!("x".repeat(rng.usize(0..2_000))),
    }
}

/// A JSON-aware mutation: a value somewhere in the document replaced, a key added or removed,
/// so that the input stays JSON and reaches the checks past the parser.
fn mutate_json(rng: &mut fastrand::Rng, value: &mut Value, depth: usize) {
    match value {
        Value::Object(map) if !map.is_empty() && depth < 6 && rng.u8(0..3) > 0 => {
            // Nango's metadata and the id are what make an object a record: left alone most of
            // the time.
            let keys: Vec<String> = map
                .keys()
                .filter(|k| !matches!(k.as_str(), "_nango_metadata" | "id") || rng.u8(0..10) == 0)
                .cloned()
                .collect();
            if keys.is_empty() {
                return;
            }
            let key = &keys[rng.usize(0..keys.len())];
            match rng.u8(0..6) {
                0 => {
                    map.insert(format!("k{}", rng.u16(..)), edge_value(rng));
                }
                1 if key != "id" => {
                    map.remove(key);
                }
                _ => mutate_json(rng, map.get_mut(key).unwrap(), depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 6 && rng.bool() => {
            let at = rng.usize(0..items.len());
            mutate_json(rng, &mut items[at], depth + 1);
        }
        other => *other = edge_value(rng),
    }
}

/// Runs `check` on `iterations()` mutants; returns how many of them reached the property's
/// deepest check (`check` says so).
fn fuzz(name: &str, corpus: Vec<Vec<u8>>, check: fn(&[u8]) -> bool) -> u64 {
    let (seed, n) = (seed(), iterations());
    let mut reached = 0;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut pool = corpus.clone();
    let mut json_pool: Vec<Value> = corpus
        .iter()
        .filter_map(|c| serde_json::from_slice(c).ok())
        .collect();
    for i in 0..n {
        // Half the time a mutation that keeps the input JSON, to reach past the parser; the
        // other half byte-wise, to test the parser and the refusals. Each kind keeps its own
        // pool of mutants, so that mutations stack up over the run.
        let json = !json_pool.is_empty() && rng.bool();
        let mut kept = None;
        let input = if json {
            let mut value = json_pool[rng.usize(0..json_pool.len())].clone();
            mutate_json(&mut rng, &mut value, 0);
            let input = value.to_string().into_bytes();
            kept = Some(value);
            input
        } else {
            let mut input = pool[rng.usize(0..pool.len())].clone();
            mutate(&mut rng, &mut input, &corpus);
            if pool.len() < 4096 && rng.u8(0..8) == 0 {
                pool.push(input.clone());
            }
            input
        };
        match catch_unwind(AssertUnwindSafe(|| check(&input))) {
            Ok(deep) => {
                reached += u64::from(deep);
                // A JSON mutant that went all the way through is worth mutating further.
                if let Some(value) = kept.filter(|_| deep) {
                    if json_pool.len() < 4096 && rng.u8(0..8) == 0 {
                        json_pool.push(value);
                    }
                }
            }
            Err(panic) => {
                eprintln!(
                    "fuzz {name}: FUZZ_SEED={seed} iteration {i} failed on input {:?}",
                    String::from_utf8_lossy(&input)
                );
                std::panic::resume_unwind(panic);
            }
        }
    }
    eprintln!("fuzz {name}: {n} inputs, {reached} through the whole property, seed {seed}, no property failed");
    reached
}

/// A run where mutation breaks nearly every input would check almost nothing past the parser:
/// at least this share of the inputs must reach the property's deepest check.
const FLOOR: f64 = 0.10;

#[test]
fn fuzz_signature_check_and_payload_parsing() {
    let reached = fuzz("webhook", webhook_corpus(), check_webhook);
    assert!(
        reached as f64 >= FLOOR * iterations() as f64,
        "only {reached} of {} inputs were accepted genuine webhooks",
        iterations()
    );
}

#[test]
fn fuzz_record_to_item_conversion() {
    let reached = fuzz("record", record_corpus(), check_record);
    assert!(
        reached as f64 >= FLOOR * iterations() as f64,
        "only {reached} of {} inputs went through the record's round trip",
        iterations()
    );
}
