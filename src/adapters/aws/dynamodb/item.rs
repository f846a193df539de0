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

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

use super::wire;
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
    /// The record's content digest when it was written whole (`NangoRecord::content_digest`):
    /// what a re-read and a sweep compare to leave an unchanged record alone.
    pub const DIGEST: &str = "digest";
    pub const LAST_ACTION: &str = "last_action";
    pub const LAST_MODIFIED_AT: &str = "last_modified_at";
    pub const DELETED_AT: &str = "deleted_at";
    pub const PRUNED_AT: &str = "pruned_at";
    /// `sweep` on records a sweep marked deleted because Nango no longer has them.
    pub const DELETED_BY: &str = "deleted_by";
    /// A write to the provider shown on the record (`{id, state}`), until the record is written
    /// whole again (`core::writes::stored::PendingWrite`).
    pub const PENDING_WRITE: &str = "pending_write";
}

pub type Item = HashMap<String, AttributeValue>;

/// One request of a BatchWriteItem call as its JSON (`{"PutRequest":…}` or `{"DeleteRequest":…}`),
/// and the id of the record it writes: DynamoDB hands back the requests it did not process, and
/// the id finds them.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub json: Vec<u8>,
}

/// How a record became a put request.
#[derive(Debug)]
pub enum Encoded {
    Native(Request),
    Compressed(Request),
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

/// A stream's partition key as its items' JSON opens with it (`{"pk":{"S":"…"}`): written once
/// for a page of items, not once for each.
pub struct Partition(Vec<u8>);

impl Partition {
    pub fn of(stream: &StreamKey) -> Self {
        let mut json = b"{".to_vec();
        wire::write_str(&mut json, attr::PK);
        json.extend_from_slice(br#":{"S":"#);
        wire::write_str(&mut json, &stream.encode());
        json.push(b'}');
        Self(json)
    }
}

/// The request that removes a record's item.
pub fn delete_request(partition: &Partition, id: &str) -> Request {
    let mut json = br#"{"DeleteRequest":{"Key":"#.to_vec();
    ItemJson::start(&mut json, partition, id);
    json.extend_from_slice(b"}}}");
    Request {
        id: id.to_owned(),
        json,
    }
}

/// The request that puts a record's item, with `stamps` as extra string attributes (the sweep
/// that saw it, who deleted it). The record goes in native form when it fits, compressed when
/// the native form would be too large (or hold a number DynamoDB refuses).
pub fn put_request(
    partition: &Partition,
    record: &NangoRecord,
    stamps: &[(&str, &str)],
) -> Encoded {
    // Room for the record's text in DynamoDB's form (about 1.5 times as long) and the
    // bookkeeping, so that the request is written without growing it.
    let mut json = Vec::with_capacity(record.json().len() * 3 / 2 + 512);
    json.extend_from_slice(br#"{"PutRequest":{"Item":"#);
    let mut item = ItemJson::start(&mut json, partition, &record.id);
    let meta = &record.metadata;
    item.s(attr::CURSOR, &meta.cursor);
    item.n(attr::DIGEST, record.content_digest());
    item.s(attr::LAST_ACTION, meta.last_action.as_str());
    item.s(attr::LAST_MODIFIED_AT, &meta.last_modified_at);
    if let Some(at) = &meta.deleted_at {
        item.s(attr::DELETED_AT, at);
    }
    if let Some(at) = &meta.pruned_at {
        item.s(attr::PRUNED_AT, at);
    }
    for (name, value) in stamps {
        item.s(name, value);
    }
    // The text's length bounds the native size from above: every DynamoDB element costs no more
    // than its JSON text (quotes, colons and commas outweigh DynamoDB's per-element overhead, and
    // a number takes about half a byte per significant digit).
    let text = record.json();
    let native = text.len() + BOOKKEEPING_ALLOWANCE <= MAX_ITEM_BYTES
        && match item.native(attr::RECORD, text) {
            Ok(()) => true,
            // The object as a map reads it, without the duplicate key.
            Err(wire::Refusal::DuplicateKey) => {
                let deduplicated =
                    serde_json::to_string(&record.object()).expect("a JSON map always serializes");
                item.native(attr::RECORD, &deduplicated).is_ok()
            }
            Err(wire::Refusal::Number | wire::Refusal::NotJson) => false,
        };
    let finish = |mut json: Vec<u8>| {
        json.extend_from_slice(b"}}}");
        Request {
            id: record.id.clone(),
            json,
        }
    };
    if native {
        return Encoded::Native(finish(json));
    }
    let compressed = gzip(text.as_bytes());
    if compressed.len() + BOOKKEEPING_ALLOWANCE > MAX_ITEM_BYTES {
        return Encoded::TooLarge(format!(
            "record is {} bytes as JSON and {} bytes gzipped; a DynamoDB item holds at most {MAX_ITEM_BYTES}",
            text.len(),
            compressed.len()
        ));
    }
    item.b(attr::RECORD_GZ, &compressed);
    Encoded::Compressed(finish(json))
}

/// An item's attributes being written as DynamoDB JSON, the key first.
struct ItemJson<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> ItemJson<'o> {
    /// Opens the item with its key.
    fn start(out: &'o mut Vec<u8>, partition: &Partition, id: &str) -> Self {
        out.extend_from_slice(&partition.0);
        let mut item = Self { out };
        item.s(attr::SK, id);
        item
    }

    fn name(&mut self, name: &str) {
        self.out.push(b',');
        wire::write_str(self.out, name);
        self.out.push(b':');
    }

    fn s(&mut self, name: &str, value: &str) {
        self.name(name);
        self.out.extend_from_slice(br#"{"S":"#);
        wire::write_str(self.out, value);
        self.out.push(b'}');
    }

    fn n(&mut self, name: &str, value: u64) {
        self.name(name);
        self.out.extend_from_slice(br#"{"N":""#);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.out.extend_from_slice(br#""}"#);
    }

    fn b(&mut self, name: &str, bytes: &[u8]) {
        use base64::Engine;
        self.name(name);
        self.out.extend_from_slice(br#"{"B":""#);
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(br#""}"#);
    }

    /// The JSON value in `text` as a native attribute; on a refusal, nothing of it is left.
    fn native(&mut self, name: &str, text: &str) -> Result<(), wire::Refusal> {
        let mark = self.out.len();
        self.name(name);
        wire::write_value(text, self.out).inspect_err(|_| self.out.truncate(mark))
    }
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

    /// A put request as the item DynamoDB reads from it.
    enum Put {
        Native(Item),
        Compressed(Item),
        TooLarge(String),
    }

    fn encode(stream: &StreamKey, record: &NangoRecord) -> Put {
        let item = |request: Request| wire::item_from_wire(&request.json).unwrap();
        match put_request(&Partition::of(stream), record, &[]) {
            Encoded::Native(request) => Put::Native(item(request)),
            Encoded::Compressed(request) => Put::Compressed(item(request)),
            Encoded::TooLarge(reason) => Put::TooLarge(reason),
        }
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
        let Put::Native(item) = encode(&stream, &r) else {
            panic!("not native")
        };
        assert_eq!(item[attr::PK], AttributeValue::S("p|c|Contact|base".into()));
        assert_eq!(item[attr::SK], AttributeValue::S("1".into()));
        assert_eq!(item[attr::CURSOR], AttributeValue::S("Yw==".into()));
        assert_eq!(item[attr::LAST_ACTION], AttributeValue::S("UPDATED".into()));
        assert_eq!(decode_record(&item).unwrap(), r.object());
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
            let item = match encode(&stream, &r) {
                Put::Native(item) => {
                    proptest::prop_assert!(item.values().all(native_numbers_fit), "a native item holds a number DynamoDB refuses");
                    // The direct conversion builds what serde_dynamo's serializer builds.
                    let theirs: AttributeValue = serde_dynamo::to_attribute_value(r.object()).unwrap();
                    proptest::prop_assert_eq!(&item[attr::RECORD], &theirs);
                    item
                }
                Put::Compressed(item) => item,
                Put::TooLarge(reason) => return Err(proptest::test_runner::TestCaseError::fail(reason)),
            };
            proptest::prop_assert_eq!(&item[attr::SK], &AttributeValue::S(id));
            let back = Value::Object(decode_record(&item).unwrap());
            proptest::prop_assert!(crate::fuzzing::same_value(&back, &Value::Object(r.object())), "{} != {}", back, Value::Object(r.object()));
        }
    }

    #[test]
    fn a_key_given_twice_is_stored_once_by_its_last_value() {
        let stream = StreamKey::new("p", "c", "Contact", "base");
        let text = format!(
            r#"{{"id":"a","x":1,"m":{{"k":1,"k":"two"}},"x":2,"_nango_metadata":{}}}"#,
            meta()
        );
        let r = NangoRecord::from_json(&text).unwrap().unwrap();
        let Put::Native(item) = encode(&stream, &r) else {
            panic!("not native")
        };
        let back = decode_record(&item).unwrap();
        assert_eq!((&back["x"], &back["m"]), (&json!(2), &json!({"k": "two"})));
    }

    #[test]
    fn extra_stamps_and_deletes_are_written_as_dynamodb_reads_them() {
        let stream = StreamKey::new("p", "c", "Contact", "base");
        let r = record(json!({"id": "q\"1", "_nango_metadata": meta()}));
        let Encoded::Native(put) =
            put_request(&Partition::of(&stream), &r, &[(attr::DELETED_BY, "sweep")])
        else {
            panic!("not native")
        };
        let item = wire::item_from_wire(&put.json).unwrap();
        assert_eq!(item[attr::DELETED_BY], AttributeValue::S("sweep".into()));
        assert_eq!(put.id, "q\"1");
        let delete = delete_request(&Partition::of(&stream), "q\"1");
        assert_eq!(
            wire::item_from_wire(&delete.json).unwrap(),
            record_key(&stream, "q\"1")
        );
    }

    #[test]
    fn numbers_dynamodb_refuses_send_the_record_compressed() {
        let stream = StreamKey::new("p", "c", "Contact", "base");
        for n in [1e300, -1e200, 1e-200, 1e126] {
            let r = record(json!({"id": "x", "n": n, "_nango_metadata": meta()}));
            let Put::Compressed(item) = encode(&stream, &r) else {
                panic!("{n} must not go native")
            };
            assert_eq!(decode_record(&item).unwrap()["n"], json!(n));
        }
        let r = record(
            json!({"id": "x", "n": 9.99e125, "big": u64::MAX, "neg": i64::MIN, "_nango_metadata": meta()}),
        );
        assert!(matches!(encode(&stream, &r), Put::Native(_)));
    }

    #[test]
    fn large_records_are_compressed_and_huge_ones_refused() {
        let stream = StreamKey::new("p", "c", "Contact", "base");
        let big =
            record(json!({"id": "big", "blob": "a".repeat(500_000), "_nango_metadata": meta()}));
        let Put::Compressed(item) = encode(&stream, &big) else {
            panic!("not compressed")
        };
        assert!(!item.contains_key(attr::RECORD));
        assert_eq!(decode_record(&item).unwrap(), big.object());

        // Incompressible: pseudo-random text (about 6 bits a byte), larger than an item gzipped.
        let mut rng = fastrand::Rng::with_seed(7);
        let noise: String = (0..600_000).map(|_| rng.alphanumeric()).collect();
        let huge = record(json!({"id": "huge", "blob": noise, "_nango_metadata": meta()}));
        assert!(matches!(encode(&stream, &huge), Put::TooLarge(_)));
    }
}
