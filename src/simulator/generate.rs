//! Generated records: contact-like payloads of a chosen size, and text gzip cannot shrink.

use serde_json::{json, Map, Value};

/// `len` printable ASCII characters that gzip cannot shrink much (a seeded LCG): for records too
/// large for a DynamoDB item even compressed.
pub fn incompressible_text(len: usize, seed: u64) -> String {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'!' + ((state >> 33) % 90) as u8)
        })
        .collect()
}

/// How large generated records are: [`sample_payload`] padded with a `notes` field to about
/// `bytes` of JSON, and every `large_every`-th record to about `large_bytes` (0: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordShape {
    pub bytes: usize,
    pub large_every: usize,
    pub large_bytes: usize,
}

impl RecordShape {
    pub fn payload(&self, i: usize) -> Map<String, Value> {
        let mut payload = sample_payload(i);
        let large = self.large_every > 0 && i % self.large_every == self.large_every - 1;
        let target = if large { self.large_bytes } else { self.bytes };
        // sample_payload is about 250 bytes of JSON; text that compresses as prose does.
        if let Some(pad) = target.checked_sub(260).filter(|n| *n > 0) {
            let words = "notes from the last call: follow up about the renewal; ";
            let notes: String = words.chars().cycle().take(pad).collect();
            payload.insert("notes".into(), Value::String(notes));
        }
        payload
    }
}

/// A contact-like record of about 250 bytes.
pub fn sample_payload(i: usize) -> Map<String, Value> {
    let v = json!({
        "name": format!("Person {i}"), "email": format!("person{i}@example.com"),
        "company": "Example Corp", "phone": "+1 555 0100", "lifecycle": "customer",
        "score": i % 100, "tags": ["a", "b"], "address": {"city": "Springfield", "zip": "12345"}
    });
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
