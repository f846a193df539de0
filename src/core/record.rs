//! Records as Nango's records API returns them (contract §4.3, §5).

use serde::{Deserialize, Serialize};
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
/// which is what gets stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NangoRecord {
    pub id: String,
    pub metadata: RecordMetadata,
    pub object: Map<String, Value>,
}

/// One page of `GET /records`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordsPage {
    pub records: Vec<NangoRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
        // The API returns ids as strings; a number is accepted and read as its decimal text.
        let id = match object.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(RecordError::MissingId),
        };
        let metadata = object
            .get(METADATA_FIELD)
            .ok_or_else(|| "missing".to_owned())
            .and_then(|m| RecordMetadata::deserialize(m).map_err(|e| e.to_string()))
            .map_err(|reason| RecordError::BadMetadata {
                id: id.clone(),
                reason,
            })?;
        Ok(Self {
            id,
            metadata,
            object,
        })
    }

    pub fn is_deleted(&self) -> bool {
        self.metadata.last_action == LastAction::Deleted || self.metadata.deleted_at.is_some()
    }

    /// Pruned by Nango: the payload fields are gone, only `id` and the metadata remain.
    pub fn is_pruned(&self) -> bool {
        self.metadata.pruned_at.is_some()
    }
}

#[derive(Deserialize)]
struct PageWire {
    #[serde(default)]
    next_cursor: Option<String>,
    records: Vec<Map<String, Value>>,
}

impl RecordsPage {
    /// Parses a response body. A body that is not a page (truncated, or another shape) is an
    /// error of its own: the caller retries it.
    pub fn parse(body: &[u8]) -> Result<Self, PageParseError> {
        let wire: PageWire = serde_json::from_slice(body).map_err(PageParseError::Body)?;
        let records = wire
            .records
            .into_iter()
            .map(NangoRecord::from_object)
            .collect::<Result<Vec<_>, _>>()
            .map_err(PageParseError::Record)?;
        Ok(Self {
            records,
            next_cursor: wire.next_cursor.filter(|c| !c.is_empty()),
        })
    }

    /// The cursor to store once this page is written: the last record's.
    pub fn last_cursor(&self) -> Option<&str> {
        self.records.last().map(|r| r.metadata.cursor.as_str())
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
        assert_eq!(page.records[0].object["name"], "Alice");
        assert_eq!(page.last_cursor(), Some("Yw=="));
        assert!(!page.records[0].is_deleted());
    }

    #[test]
    fn truncated_or_incomplete_pages_are_errors() {
        assert!(RecordsPage::parse(br#"{"next_cursor":null,"records":[{"id":"a""#).is_err());
        assert!(RecordsPage::parse(br#"{"records":[{"id":"a"}]}"#).is_err());
        assert!(RecordsPage::parse(br#"{"records":[{"_nango_metadata":{}}]}"#).is_err());
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
