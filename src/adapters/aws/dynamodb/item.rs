//! Record ⇄ DynamoDB item, in one place.
//!
//! Records table item: `pk` (S, the encoded stream key), `sk` (S, the record id), `record` (M, the
//! whole record as Nango returned it, `_nango_metadata` included, as native attributes), and copies
//! of the bookkeeping for queries: `cursor`, `last_action`, `last_modified_at`, `deleted_at`,
//! `pruned_at`. Because the record's own fields live inside `record`, a field named `pk`, `cursor`
//! or anything else cannot collide with ours. A record too large for one item (400 KB) is stored
//! as `record_gz` (B, gzip of its JSON) instead of `record` when that fits.

use std::collections::HashMap;
use std::io::{Read, Write};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

use crate::core::record::NangoRecord;
use crate::core::stream::StreamKey;

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Room kept for keys and bookkeeping attributes besides the record itself.
const BOOKKEEPING_ALLOWANCE: usize = 4 * 1024;

pub mod attr {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const RECORD: &str = "record";
    pub const RECORD_GZ: &str = "record_gz";
    pub const CURSOR: &str = "cursor";
    pub const LAST_ACTION: &str = "last_action";
    pub const LAST_MODIFIED_AT: &str = "last_modified_at";
    pub const DELETED_AT: &str = "deleted_at";
    pub const PRUNED_AT: &str = "pruned_at";
    /// The sweep that last read the record (see `ports::SweepState`).
    pub const SEEN_IN: &str = "seen_in";
    /// `sweep` on records a sweep marked deleted because Nango no longer has them.
    pub const DELETED_BY: &str = "deleted_by";
}

pub type Item = HashMap<String, AttributeValue>;

/// How a record became an item.
#[derive(Debug)]
pub enum Encoded {
    Native(Item),
    Compressed(Item),
    /// Too large even compressed: the reason says how large.
    TooLarge(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("item has no {0} attribute")]
    Missing(&'static str),
    #[error("item's record cannot be read: {0}")]
    Unreadable(String),
}

/// The primary key of a record's item.
pub fn record_key(stream: &StreamKey, id: &str) -> Item {
    HashMap::from([
        (attr::PK.to_owned(), AttributeValue::S(stream.encode())),
        (attr::SK.to_owned(), AttributeValue::S(id.to_owned())),
    ])
}

/// Builds the item for a record, compressing it when the native form would be too large.
pub fn encode_record(stream: &StreamKey, record: &NangoRecord) -> Encoded {
    let mut item = record_key(stream, &record.id);
    let meta = &record.metadata;
    item.insert(attr::CURSOR.into(), AttributeValue::S(meta.cursor.clone()));
    item.insert(
        attr::LAST_ACTION.into(),
        AttributeValue::S(meta.last_action.as_str().to_owned()),
    );
    item.insert(
        attr::LAST_MODIFIED_AT.into(),
        AttributeValue::S(meta.last_modified_at.clone()),
    );
    if let Some(at) = &meta.deleted_at {
        item.insert(attr::DELETED_AT.into(), AttributeValue::S(at.clone()));
    }
    if let Some(at) = &meta.pruned_at {
        item.insert(attr::PRUNED_AT.into(), AttributeValue::S(at.clone()));
    }
    // The JSON length bounds the native size from above: every DynamoDB element costs no more
    // than its JSON text (quotes, colons and commas outweigh DynamoDB's per-element overhead).
    // It is counted, not written out: the text itself is needed only to compress.
    let json_len = json_length(&record.object);
    if json_len + BOOKKEEPING_ALLOWANCE <= MAX_ITEM_BYTES && fits_dynamodb_numbers(&record.object) {
        item.insert(attr::RECORD.into(), native_map(&record.object));
        return Encoded::Native(item);
    }
    let json = serde_json::to_vec(&record.object).expect("a JSON map always serializes");
    let compressed = gzip(&json);
    if compressed.len() + BOOKKEEPING_ALLOWANCE > MAX_ITEM_BYTES {
        return Encoded::TooLarge(format!(
            "record is {} bytes as JSON and {} bytes gzipped; a DynamoDB item holds at most {MAX_ITEM_BYTES}",
            json.len(),
            compressed.len()
        ));
    }
    item.insert(
        attr::RECORD_GZ.into(),
        AttributeValue::B(Blob::new(compressed)),
    );
    Encoded::Compressed(item)
}

/// A JSON object as a DynamoDB map, converted directly (one tree built, not an intermediate one
/// first). Numbers are written as Rust prints them, which is what DynamoDB reads: integers as
/// their digits, floats in plain decimal notation.
fn native_map(object: &Map<String, Value>) -> AttributeValue {
    AttributeValue::M(
        object
            .iter()
            .map(|(key, value)| (key.clone(), native(value)))
            .collect(),
    )
}

fn native(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.to_string(),
            (None, Some(i)) => i.to_string(),
            // Finite: JSON has no NaN or infinities.
            (None, None) => n.as_f64().unwrap_or(0.0).to_string(),
        }),
        Value::String(text) => AttributeValue::S(text.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(native).collect()),
        Value::Object(map) => native_map(map),
    }
}

/// The length of `object` as compact JSON, without building the text.
fn json_length(object: &Map<String, Value>) -> usize {
    struct Counter(usize);
    impl Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, object).expect("a JSON map always serializes");
    counter.0
}

/// Whether every number in the record is one DynamoDB's number type accepts: magnitude from
/// 1e-130 to below 1e126 (or zero). A record with any other number (a float such as 1e300, which
/// JSON allows) is stored compressed instead, so it is kept exactly rather than refused.
fn fits_dynamodb_numbers(object: &Map<String, Value>) -> bool {
    fn fits(value: &Value) -> bool {
        match value {
            // i64 and u64 have at most 20 digits: always in range.
            Value::Number(n) if n.is_i64() || n.is_u64() => true,
            Value::Number(n) => n
                .as_f64()
                .is_some_and(|f| f == 0.0 || (1e-130..1e126).contains(&f.abs())),
            Value::Array(items) => items.iter().all(fits),
            Value::Object(map) => map.values().all(fits),
            _ => true,
        }
    }
    object.values().all(fits)
}

/// Reads the record back out of an item, whichever form it was stored in.
pub fn decode_record(item: &Item) -> Result<Map<String, Value>, ItemError> {
    if let Some(value) = item.get(attr::RECORD) {
        return serde_dynamo::from_attribute_value(value.clone())
            .map_err(|e| ItemError::Unreadable(e.to_string()));
    }
    let Some(AttributeValue::B(blob)) = item.get(attr::RECORD_GZ) else {
        return Err(ItemError::Missing(attr::RECORD));
    };
    let json = gunzip(blob.as_ref()).map_err(|e| ItemError::Unreadable(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| ItemError::Unreadable(e.to_string()))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(object: Value) -> NangoRecord {
        NangoRecord::from_object(object.as_object().unwrap().clone()).unwrap()
    }

    fn meta() -> Value {
        json!({"last_modified_at":"2026-01-01T00:00:00.1+00:00","last_action":"UPDATED","deleted_at":null,"pruned_at":null,"cursor":"Yw=="})
    }

    #[test]
    fn fields_named_like_ours_round_trip_unchanged() {
        let stream = StreamKey::new("p", "c", "Contact", "base");
        let r = record(json!({
            "id": "1", "pk": "mine", "sk": 7, "record": {"nested": [1, "two", null, true]},
            "record_gz": "", "cursor": "theirs", "": "empty key", "unicode": "zoë 🚀",
            "float": 1.5, "neg": -3, "empty_list": [], "empty_map": {}, "_nango_metadata": meta()
        }));
        let Encoded::Native(item) = encode_record(&stream, &r) else {
            panic!("not native")
        };
        assert_eq!(item[attr::PK], AttributeValue::S("p|c|Contact|base".into()));
        assert_eq!(item[attr::SK], AttributeValue::S("1".into()));
        assert_eq!(item[attr::CURSOR], AttributeValue::S("Yw==".into()));
        assert_eq!(item[attr::LAST_ACTION], AttributeValue::S("UPDATED".into()));
        assert_eq!(decode_record(&item).unwrap(), r.object);
    }

    /// Arbitrary JSON: unicode and empty strings and keys, empty arrays and maps, nesting,
    /// integers over the whole i64 and u64 ranges, and finite floats of any magnitude.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinities", |f| f.is_finite())
                .prop_map(Value::from),
            prop_oneof![
                Just(1e300),
                Just(-1e-300),
                Just(1e125),
                Just(9.99e125),
                Just(1e-130)
            ]
            .prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn native_numbers_fit(value: &AttributeValue) -> bool {
        match value {
            AttributeValue::N(n) => {
                let f: f64 = n.parse().unwrap_or(f64::NAN);
                n.parse::<i128>().is_ok() || f == 0.0 || (1e-130..1e126).contains(&f.abs())
            }
            AttributeValue::L(items) => items.iter().all(native_numbers_fit),
            AttributeValue::M(map) => map.values().all(native_numbers_fit),
            _ => true,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn any_record_round_trips_through_its_item(
            fields in proptest::collection::btree_map(".*", any_json(), 0..8),
            id in ".*",
        ) {
            let mut object: Map<String, Value> = fields.into_iter().collect();
            object.insert("id".into(), Value::String(id.clone()));
            object.insert("_nango_metadata".into(), meta());
            let r = record(Value::Object(object));
            let stream = StreamKey::new("p", "c", "Contact", "base");
            let item = match encode_record(&stream, &r) {
                Encoded::Native(item) => {
                    proptest::prop_assert!(item.values().all(native_numbers_fit), "a native item holds a number DynamoDB refuses");
                    // The direct conversion builds what serde_dynamo's serializer builds.
                    let theirs: AttributeValue = serde_dynamo::to_attribute_value(&r.object).unwrap();
                    proptest::prop_assert_eq!(&item[attr::RECORD], &theirs);
                    item
                }
                Encoded::Compressed(item) => item,
                Encoded::TooLarge(reason) => return Err(proptest::test_runner::TestCaseError::fail(reason)),
            };
            proptest::prop_assert_eq!(&item[attr::SK], &AttributeValue::S(id));
            let back = Value::Object(decode_record(&item).unwrap());
            proptest::prop_assert!(crate::fuzzing::same_value(&back, &Value::Object(r.object.clone())), "{} != {}", back, Value::Object(r.object));
        }
    }

    #[test]
    fn the_counted_length_is_the_serialized_length() {
        let r = record(
            json!({"id": "é\"\n", "n": [1.5, -2, null], "m": {"k": "🚀"}, "_nango_metadata": meta()}),
        );
        assert_eq!(
            json_length(&r.object),
            serde_json::to_vec(&r.object).unwrap().len()
        );
    }

    #[test]
    fn numbers_dynamodb_refuses_send_the_record_compressed() {
        let stream = StreamKey::new("p", "c", "Contact", "base");
        for n in [1e300, -1e200, 1e-200, 1e126] {
            let r = record(json!({"id": "x", "n": n, "_nango_metadata": meta()}));
            let Encoded::Compressed(item) = encode_record(&stream, &r) else {
                panic!("{n} must not go native")
            };
            assert_eq!(decode_record(&item).unwrap()["n"], json!(n));
        }
        let r = record(
            json!({"id": "x", "n": 9.99e125, "big": u64::MAX, "neg": i64::MIN, "_nango_metadata": meta()}),
        );
        assert!(matches!(encode_record(&stream, &r), Encoded::Native(_)));
    }

    #[test]
    fn large_records_are_compressed_and_huge_ones_refused() {
        let stream = StreamKey::new("p", "c", "Contact", "base");
        let big =
            record(json!({"id": "big", "blob": "a".repeat(500_000), "_nango_metadata": meta()}));
        let Encoded::Compressed(item) = encode_record(&stream, &big) else {
            panic!("not compressed")
        };
        assert!(!item.contains_key(attr::RECORD));
        assert_eq!(decode_record(&item).unwrap(), big.object);

        // Incompressible: distinct pseudo-random text, larger than an item even gzipped.
        let noise = crate::simulator::incompressible_text(600_000, 7);
        let huge = record(json!({"id": "huge", "blob": noise, "_nango_metadata": meta()}));
        assert!(matches!(
            encode_record(&stream, &huge),
            Encoded::TooLarge(_)
        ));
    }
}
