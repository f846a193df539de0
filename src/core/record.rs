//! Records as Nango's records API returns them (contract §4.3, §5).

use crate::core::page_budget::PageRoom;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The attribute Nango puts its bookkeeping under, inside every record.
pub const METADATA_FIELD: &str = "_nango_metadata";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LastAction {
    Added,
    Updated,
    Deleted,
}

impl LastAction {
    /// As Nango writes it, and as the stores keep it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Updated => "UPDATED",
            Self::Deleted => "DELETED",
        }
    }
}

/// `_nango_metadata`. Timestamps stay strings: Postgres format with microseconds and an offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMetadata {
    #[serde(default)]
    pub first_seen_at: Option<String>,
    pub last_modified_at: String,
    pub last_action: LastAction,
    #[serde(default)]
    pub deleted_at: Option<String>,
    #[serde(default)]
    pub pruned_at: Option<String>,
    pub cursor: String,
}

/// One record: its id, its metadata, and the whole object as received (id and metadata included),
/// kept as its JSON text: that is what gets stored, and the stores read from the text what they
/// need (DynamoDB transcodes it into the item, SQLite keeps it as it is) without building the
/// object in between.
#[derive(Debug, Clone)]
pub struct NangoRecord {
    pub id: String,
    pub metadata: RecordMetadata,
    /// The object's text, as read (a JSON object, so never empty).
    json: Box<str>,
    /// [`NangoRecord::content_digest`], taken once from the text.
    content: u64,
}

/// Records are the same when their text is: the text is what gets stored.
impl PartialEq for NangoRecord {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.metadata == other.metadata && self.json() == other.json()
    }
}

/// One page of `GET /records`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordsPage {
    pub records: Vec<NangoRecord>,
    pub next_cursor: Option<String>,
    /// The room the page holds in the process's page budget until it is dropped.
    pub room: PageRoom,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record has no id")]
    MissingId,
    #[error("record {id} has no valid _nango_metadata: {reason}")]
    BadMetadata { id: String, reason: String },
}

/// A stored record as a sweep leaves it when Nango no longer has it: its payload kept, its
/// metadata saying deleted at `at` (Nango's own soft deletes look the same).
pub fn mark_deleted(object: &mut Map<String, Value>, at: &str) {
    if let Some(Value::Object(meta)) = object.get_mut(METADATA_FIELD) {
        meta.insert("deleted_at".into(), Value::String(at.to_owned()));
        meta.insert("last_action".into(), Value::String("DELETED".into()));
    }
}

impl NangoRecord {
    pub fn from_object(object: Map<String, Value>) -> Result<Self, RecordError> {
        let metadata = object
            .get(METADATA_FIELD)
            .map(|m| RecordMetadata::deserialize(m).map_err(|e| e.to_string()));
        let (id, metadata) = identify(object.get("id").cloned(), metadata)?;
        let json = serde_json::to_string(&object).expect("a JSON map always serializes");
        // Read once more for where the metadata sits in the text (off the pages' path).
        let metadata_at = serde_json::from_str::<RecordShape>(&json)
            .ok()
            .and_then(|shape| shape.metadata_at(&json));
        let content = content_digest(&json, metadata_at, is_deleted(&metadata));
        Ok(Self {
            id,
            metadata,
            json: json.into_boxed_str(),
            content,
        })
    }

    /// A record from its JSON text. The outer error is the text's (not an object, not JSON);
    /// the inner one says why the object is not a record.
    pub fn from_json(json: &str) -> Result<Result<Self, RecordError>, serde_json::Error> {
        let shape: RecordShape = serde_json::from_str(json)?;
        Ok(Self::from_shape(shape, json.trim_matches(JSON_WHITESPACE)))
    }

    /// A record from its object's `text` and the `shape` read from that text.
    fn from_shape(shape: RecordShape, text: &str) -> Result<Self, RecordError> {
        let metadata_at = shape.metadata_at(text);
        shape.identity.map(|(id, metadata)| Self {
            content: content_digest(text, metadata_at, is_deleted(&metadata)),
            id,
            metadata,
            json: text.into(),
        })
    }

    /// A digest of what the record says, Nango's bookkeeping left out: its text but for the
    /// `_nango_metadata` value, and whether it is deleted. Nango serves the same content as the
    /// same text, so a record re-read unchanged (after a `reset`, or re-added by emptyCache with
    /// new cursors and timestamps) has the digest it was stored with. XXH3-64: a stable
    /// specification, and about a tenth of a microsecond for a record of 1 KB.
    pub fn content_digest(&self) -> u64 {
        self.content
    }

    /// The record's JSON object, as Nango sent it.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The record's object, built from its text (for the stores that keep objects).
    pub fn object(&self) -> Map<String, Value> {
        serde_json::from_str(self.json())
            .expect("the text was read as a JSON object when the record was made")
    }

    pub fn is_deleted(&self) -> bool {
        is_deleted(&self.metadata)
    }

    /// Pruned by Nango: the payload fields are gone, only `id` and the metadata remain.
    pub fn is_pruned(&self) -> bool {
        self.metadata.pruned_at.is_some()
    }
}

fn is_deleted(metadata: &RecordMetadata) -> bool {
    metadata.last_action == LastAction::Deleted || metadata.deleted_at.is_some()
}

/// [`NangoRecord::content_digest`] of `text`, whose metadata value spans `metadata_at`.
fn content_digest(text: &str, metadata_at: Option<std::ops::Range<usize>>, deleted: bool) -> u64 {
    let mut digest = xxhash_rust::xxh3::Xxh3Default::new();
    match metadata_at {
        Some(at) => {
            digest.update(&text.as_bytes()[..at.start]);
            digest.update(&text.as_bytes()[at.end..]);
        }
        None => digest.update(text.as_bytes()),
    }
    digest.update(&[u8::from(deleted)]);
    digest.digest()
}

/// A record's id and metadata from its `id` and `_nango_metadata` fields: what makes it a record.
/// `metadata` is the field already read (or why it could not be), so each caller reads it from
/// what it holds (an object's value, or a page's text) without building the other.
fn identify(
    id: Option<Value>,
    metadata: Option<Result<RecordMetadata, String>>,
) -> Result<(String, RecordMetadata), RecordError> {
    // The API returns ids as strings; a number is accepted and read as its decimal text.
    let id = match id {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(RecordError::MissingId),
    };
    let metadata = metadata
        .unwrap_or_else(|| Err("missing".to_owned()))
        .map_err(|reason| RecordError::BadMetadata {
            id: id.clone(),
            reason,
        })?;
    Ok((id, metadata))
}

/// A page as the body has it: each record read for its id and metadata as the body is read,
/// its fields' texts borrowed from the body.
#[derive(Deserialize)]
struct PageWire<'a> {
    #[serde(default)]
    next_cursor: Option<String>,
    #[serde(borrow)]
    records: Vec<RecordShape<'a>>,
}

impl RecordsPage {
    /// Parses a response body. A body that is not a page (truncated, or another shape) is an
    /// error of its own: the caller retries it. Each record is kept as its text (one copy of it,
    /// besides its id and metadata): a page held ahead of the writer takes about the memory of
    /// its body, not the several times more of built objects. The body is read once: each
    /// record's id and metadata as it goes, its text found around its fields afterwards.
    pub fn parse(body: &[u8]) -> Result<Self, PageParseError> {
        let body = std::str::from_utf8(body)
            .map_err(|e| PageParseError::Body(serde::de::Error::custom(e)))?;
        let wire: PageWire = serde_json::from_str(body).map_err(PageParseError::Body)?;
        let records = wire
            .records
            .into_iter()
            .map(|shape| {
                // An object that is not a record (an empty one too) says why, as it always did.
                if let Err(why) = &shape.identity {
                    return Err(PageParseError::Record(why.clone()));
                }
                let Some(text) = shape.text_in(body) else {
                    let lost = "a record's text could not be found around its fields";
                    return Err(PageParseError::Body(serde::de::Error::custom(lost)));
                };
                NangoRecord::from_shape(shape, text).map_err(PageParseError::Record)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            records,
            next_cursor: wire.next_cursor.filter(|c| !c.is_empty()),
            room: PageRoom::default(),
        })
    }

    /// The cursor to store once this page is written: the last record's.
    pub fn last_cursor(&self) -> Option<&str> {
        self.records.last().map(|r| r.metadata.cursor.as_str())
    }

    /// Nango's cursor for the page after this one.
    pub fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// What JSON counts as whitespace between tokens.
const JSON_WHITESPACE: &[char] = &[' ', '\t', '\n', '\r'];

/// A record's object read for its id and metadata only; every other field is skipped unbuilt
/// (its text borrowed, not read into anything). Like a JSON map, a field given twice counts by
/// its last occurrence.
struct RecordShape<'a> {
    identity: Result<(String, RecordMetadata), RecordError>,
    /// The metadata's text, borrowed from the record's.
    metadata: Option<&'a str>,
    /// The first and the last field's values: the object's text runs from the `{` before the
    /// one to the `}` after the other. None for an object with no field.
    values: Option<(&'a str, &'a str)>,
}

impl RecordShape<'_> {
    /// Where the metadata's text sits within `record`'s, the text this shape was read from.
    fn metadata_at(&self, record: &str) -> Option<std::ops::Range<usize>> {
        let metadata = self.metadata?;
        let start = offset_in(record, metadata)?;
        Some(start..start + metadata.len())
    }

    /// The object's whole text within `text`, the text this shape was read from: from the `{`
    /// before the first field's name to the `}` after the last field's value. The text was read
    /// as JSON, so only whitespace and the first field's name and colon can stand between.
    fn text_in<'t>(&self, text: &'t str) -> Option<&'t str> {
        let (first, last) = self.values?;
        let bytes = text.as_bytes();
        let before_colon = text[..offset_in(text, first)?].trim_end_matches(JSON_WHITESPACE);
        let before_name_end = before_colon
            .strip_suffix(':')?
            .trim_end_matches(JSON_WHITESPACE)
            .strip_suffix('"')?;
        // The name's opening quote: the first quote back that no backslash escapes (a quote in
        // the name is written `\"`, after an odd run of backslashes).
        let opening_quote = (0..before_name_end.len()).rev().find(|&i| {
            bytes[i] == b'"'
                && bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0
        })?;
        let start = text[..opening_quote]
            .trim_end_matches(JSON_WHITESPACE)
            .len()
            .checked_sub(1)?;
        let last_end = offset_in(text, last)? + last.len();
        let end = last_end + text[last_end..].len()
            - text[last_end..].trim_start_matches(JSON_WHITESPACE).len();
        (bytes.get(start) == Some(&b'{') && bytes.get(end) == Some(&b'}'))
            .then(|| text.get(start..=end))
            .flatten()
    }
}

/// Where `part`, a slice borrowed from `text`, starts within it.
fn offset_in(text: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    (start + part.len() <= text.len()).then_some(start)
}

impl<'de: 'a, 'a> Deserialize<'de> for RecordShape<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = RecordShape<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RecordShape<'de>, A::Error> {
                let (mut id, mut metadata, mut values) = (None, None, None);
                while let Some(key) = map.next_key::<FieldName>()? {
                    // Every value borrowed as text: checked as JSON, and nothing built.
                    let value = map.next_value::<&'de RawValue>()?.get();
                    values = Some((values.map_or(value, |(first, _)| first), value));
                    match key {
                        FieldName::Id => id = Some(value),
                        FieldName::Metadata => metadata = Some(value),
                        FieldName::Other => {}
                    }
                }
                let id = id
                    .map(serde_json::from_str::<Value>)
                    .transpose()
                    .map_err(serde::de::Error::custom)?;
                let read = metadata
                    .map(|m| serde_json::from_str::<RecordMetadata>(m).map_err(|e| reason_of(&e)));
                Ok(RecordShape {
                    identity: identify(id, read),
                    metadata,
                    values,
                })
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A parse error's message without its position: the position is within the field's own text,
/// which says nothing to whoever reads the reason (an object's reading has none either).
fn reason_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&position).unwrap_or(&text).to_owned()
}

/// A record's field name, as far as [`RecordShape`] cares.
enum FieldName {
    Id,
    Metadata,
    Other,
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = FieldName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<FieldName, E> {
                Ok(match name {
                    "id" => FieldName::Id,
                    METADATA_FIELD => FieldName::Metadata,
                    _ => FieldName::Other,
                })
            }
        }
        deserializer.deserialize_str(Name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PageParseError {
    #[error("response body is not a records page: {0}")]
    Body(serde_json::Error),
    #[error(transparent)]
    Record(RecordError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_contract_page() {
        let body = br#"{"next_cursor":"Yw==","records":[{"id":"contact-1","name":"Alice","_nango_metadata":{"first_seen_at":"2026-01-15T10:00:00.123456+00:00","last_modified_at":"2026-01-15T10:00:00.123456+00:00","last_action":"ADDED","deleted_at":null,"pruned_at":null,"cursor":"Yw=="}}]}"#;
        let page = RecordsPage::parse(body).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].id, "contact-1");
        assert_eq!(page.records[0].object()["name"], "Alice");
        assert_eq!(page.last_cursor(), Some("Yw=="));
        assert!(!page.records[0].is_deleted());
    }

    #[test]
    fn a_body_that_is_not_utf8_is_a_body_error() {
        // Even in a field nothing reads: the records' texts are cut from the body as text.
        let body = b"{\"other\":\"\xff\",\"records\":[]}";
        assert!(matches!(
            RecordsPage::parse(body),
            Err(PageParseError::Body(_))
        ));
    }

    #[test]
    fn truncated_or_incomplete_pages_are_errors() {
        assert!(RecordsPage::parse(br#"{"next_cursor":null,"records":[{"id":"a""#).is_err());
        assert!(RecordsPage::parse(br#"{"records":[{"id":"a"}]}"#).is_err());
        assert!(RecordsPage::parse(br#"{"records":[{"_nango_metadata":{}}]}"#).is_err());
    }

    const META: &str = r#"{"last_modified_at":"t","last_action":"ADDED","cursor":"c"}"#;

    /// Reading records as text refuses exactly what building them as objects refuses, for the
    /// same reason, and the records it reads are the objects' records.
    #[test]
    fn the_text_and_the_object_readings_agree() {
        /// The page read by building every record's object first.
        fn by_objects(body: &[u8]) -> Result<RecordsPage, PageParseError> {
            #[derive(Deserialize)]
            struct Wire {
                #[serde(default)]
                next_cursor: Option<String>,
                records: Vec<Map<String, Value>>,
            }
            let wire: Wire = serde_json::from_slice(body).map_err(PageParseError::Body)?;
            let records = wire
                .records
                .into_iter()
                .map(NangoRecord::from_object)
                .collect::<Result<Vec<_>, _>>()
                .map_err(PageParseError::Record)?;
            Ok(RecordsPage {
                records,
                next_cursor: wire.next_cursor.filter(|c| !c.is_empty()),
                room: PageRoom::default(),
            })
        }
        let bodies = [
            format!(
                r#"{{"next_cursor":"n","records":[{{"id":"a","x":[1,{{"id":5}}],"_nango_metadata":{META}}}]}}"#
            ),
            format!(r#"{{"records":[{{"id":7,"_nango_metadata":{META}}}]}}"#),
            format!(r#"{{"records":[{{"id":"a","id":null,"_nango_metadata":{META}}}]}}"#),
            format!(r#"{{"records":[{{"id":null,"id":"b","_nango_metadata":{META}}}]}}"#),
            format!(
                r#"{{"records":[{{"id":"a","_nango_metadata":{META},"_nango_metadata":{{}}}}]}}"#
            ),
            format!(r#"{{"records":[{{"\u0069d":"escaped key","_nango_metadata":{META}}}]}}"#),
            format!(r#"{{"records":[{{"id":true,"_nango_metadata":{META}}}]}}"#),
            format!(r#"{{"records":[{{"id":"a","_nango_metadata":{META}}}],"records":[]}}"#),
            r#"{"records":[{"id":"a"}]}"#.to_owned(),
            r#"{"records":[[1]]}"#.to_owned(),
            r#"{"next_cursor":"","records":[]}"#.to_owned(),
            r#"{"next_cursor":null,"records":[{"id":"a""#.to_owned(),
            r#"[]"#.to_owned(),
            // Whitespace everywhere JSON allows it, a first name holding escaped quotes and
            // backslashes, braces inside strings.
            format!(
                "{{ \"records\" :\n [ {{\t\"\\\"q\\\\\" :\r 1 , \"id\" : \"}}{{\" , \"_nango_metadata\" : {META} }} ,\n{{\"id\":\"b\",\"_nango_metadata\":{META},\"z\":\"\\\\\"}} ] }}"
            ),
            format!(r#"{{"records":[{{"id":"a","_nango_metadata":{META}}},{{}}]}}"#),
        ];
        for body in bodies {
            let as_text = RecordsPage::parse(body.as_bytes());
            let as_objects = by_objects(body.as_bytes());
            match (&as_text, &as_objects) {
                (Ok(text), Ok(objects)) => {
                    assert_eq!(text.len(), objects.len(), "{body}");
                    assert_eq!(text.next_cursor(), objects.next_cursor(), "{body}");
                    for (t, o) in text.records.iter().zip(&objects.records) {
                        assert_eq!((&t.id, &t.metadata), (&o.id, &o.metadata), "{body}");
                        assert_eq!(t.object(), o.object(), "{body}");
                    }
                    // Each record's text is the body's text of it, as serde_json finds it.
                    #[derive(Deserialize)]
                    struct Raw<'a> {
                        #[serde(borrow)]
                        records: Vec<&'a RawValue>,
                    }
                    let raw: Raw = serde_json::from_str(&body).unwrap();
                    let texts: Vec<&str> = raw.records.iter().map(|r| r.get()).collect();
                    let ours: Vec<&str> = text.records.iter().map(NangoRecord::json).collect();
                    assert_eq!(ours, texts, "{body}");
                }
                // A record's reason word for word; a body error may name the other struct.
                (Err(PageParseError::Record(t)), Err(PageParseError::Record(o))) => {
                    assert_eq!(t, o, "{body}")
                }
                (Err(PageParseError::Body(_)), Err(PageParseError::Body(_))) => {}
                _ => panic!("{body}: as text {as_text:?}, as objects {as_objects:?}"),
            }
        }
    }

    /// The digest is what the record says: its payload and whether it is deleted, whatever
    /// Nango's metadata (cursor, timestamps, last action) says besides.
    #[test]
    fn the_content_digest_leaves_nangos_metadata_out() {
        let page = |name: &str, meta: &str| {
            let body = format!(
                r#"{{"records":[{{"id":"a","name":"{name}","_nango_metadata":{meta},"n":1}}]}}"#
            );
            RecordsPage::parse(body.as_bytes())
                .unwrap()
                .records
                .remove(0)
        };
        let re_added =
            r#"{"first_seen_at":"t2","last_modified_at":"t2","last_action":"ADDED","cursor":"c2"}"#;
        let deleted =
            r#"{"last_modified_at":"t3","last_action":"DELETED","deleted_at":"t3","cursor":"c3"}"#;
        let base = page("Ada", META).content_digest();
        assert_eq!(page("Ada", re_added).content_digest(), base);
        assert_ne!(
            page("Ana", META).content_digest(),
            base,
            "the payload counts"
        );
        assert_ne!(
            page("Ada", deleted).content_digest(),
            base,
            "deletion counts"
        );
        // Built from an object, the same text gives the same digest.
        let text = r#"{"_nango_metadata":{"cursor":"c","last_action":"ADDED","last_modified_at":"t"},"id":"a","n":1}"#;
        let from_text = NangoRecord::from_json(text).unwrap().unwrap();
        let object: Map<String, Value> = serde_json::from_str(text).unwrap();
        let from_object = NangoRecord::from_object(object).unwrap();
        assert_eq!(from_object.json(), text);
        assert_eq!(from_object.content_digest(), from_text.content_digest());
        // Stable across builds: the copy keeps it.
        let bare = NangoRecord::from_json(
            r#"{"id":"a","_nango_metadata":{"last_modified_at":"t","last_action":"ADDED","cursor":"c"}}"#,
        );
        // The text without the metadata's value, then 0 for "not deleted".
        let expected = xxhash_rust::xxh3::xxh3_64(b"{\"id\":\"a\",\"_nango_metadata\":}\0");
        assert_eq!(bare.unwrap().unwrap().content_digest(), expected);
    }

    #[test]
    fn numeric_ids_read_as_text() {
        let mut object = Map::new();
        object.insert("id".into(), Value::from(123));
        object.insert(
            METADATA_FIELD.into(),
            serde_json::json!({"last_modified_at":"t","last_action":"DELETED","deleted_at":"t","cursor":"c"}),
        );
        let r = NangoRecord::from_object(object).unwrap();
        assert_eq!(r.id, "123");
        assert!(r.is_deleted());
    }
}
