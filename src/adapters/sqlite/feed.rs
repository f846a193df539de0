//! The embedded backend's change feed: the `changes` table the schema's triggers keep, read in
//! order from a sequence number (`nango-sync watch`).

use rusqlite::params;
use serde::Serialize;

use super::db::SqliteDb;
use crate::core::stream::StreamKey;
use crate::ports::StoreError;

/// One change to a record, as the feed keeps it (no payload: the record is in `records`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Increasing, never reused: resume after the last one seen.
    pub seq: u64,
    pub at: String,
    pub stream: String,
    pub id: String,
    /// added, updated, deleted, pruned or removed; for a write to the provider (stream
    /// `writes`), write_succeeded, write_failed or write_unknown.
    pub change: String,
}

#[derive(Debug, Clone)]
pub struct SqliteFeed {
    db: SqliteDb,
}

impl SqliteFeed {
    pub fn new(db: SqliteDb) -> Self {
        Self { db }
    }

    /// Up to `limit` changes after `seq`, oldest first, of one stream or all.
    pub async fn after(
        &self,
        seq: u64,
        stream: Option<&StreamKey>,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let stream = stream.map(StreamKey::encode);
        let (seq, limit) = (
            i64::try_from(seq).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        self.db
            .call(move |c| {
                let mut query = c.prepare_cached(
                    "SELECT seq, at, stream, id, change FROM changes
                     WHERE seq > ?1 AND (?2 IS NULL OR stream = ?2) ORDER BY seq LIMIT ?3",
                )?;
                let rows = query.query_map(params![seq, stream, limit], |r| {
                    Ok(Change {
                        seq: r.get::<_, i64>(0)?.try_into().unwrap_or_default(),
                        at: r.get(1)?,
                        stream: r.get(2)?,
                        id: r.get(3)?,
                        change: r.get(4)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    /// The newest change's sequence number (0 for none yet).
    pub async fn latest(&self) -> Result<u64, StoreError> {
        self.db
            .call(|c| {
                c.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .await
            .map(|seq| seq.try_into().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::super::db::{CHANGES_KEPT, SCHEMA};

    #[test]
    fn the_schema_keeps_as_many_changes_as_documented() {
        assert!(SCHEMA.contains(&format!("seq <= NEW.seq - {CHANGES_KEPT}")));
    }
}
