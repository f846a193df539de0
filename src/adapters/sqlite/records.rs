//! Records in the SQLite file, as the DynamoDB records table keeps them: the write policy of
//! [`crate::core::write`] applied to rows.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension};
use serde_json::{Map, Value};

use super::db::SqliteDb;
use crate::core::record::{mark_deleted, NangoRecord};
use crate::core::seen::{Stored, Version};
use crate::core::stream::StreamKey;
use crate::core::write::{
    plan_page, with_stored_payload, DeleteMode, RecordWrite, Removal, WriteReport,
};
use crate::core::writes::stored::PendingWrite;
use crate::ports::{RecordStore, StoreError};

/// Records in the SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteRecordStore {
    db: SqliteDb,
    delete_mode: DeleteMode,
}

impl SqliteRecordStore {
    pub fn new(db: SqliteDb, delete_mode: DeleteMode) -> Self {
        Self { db, delete_mode }
    }

    /// Every stored record of a stream, by id.
    pub async fn read_stream(
        &self,
        stream: &StreamKey,
    ) -> Result<std::collections::BTreeMap<String, Map<String, Value>>, StoreError> {
        let key = stream.encode();
        let rows = self
            .db
            .call(move |c| {
                let mut q = c.prepare("SELECT id, record FROM records WHERE stream = ?1")?;
                let rows = q
                    .query_map([key], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(id, json)| {
                serde_json::from_str(&json)
                    .map(|record| (id.clone(), record))
                    .map_err(|e| StoreError::permanent(format!("record {id}: {e}")))
            })
            .collect()
    }
}

/// One row's worth of a record.
struct RecordRow {
    id: String,
    json: String,
    cursor: String,
    last_action: String,
    last_modified_at: String,
    deleted_at: Option<String>,
    pruned_at: Option<String>,
    /// The content digest, its bits as SQLite's signed integer.
    digest: i64,
}

impl RecordRow {
    fn of(record: &NangoRecord) -> Self {
        let meta = &record.metadata;
        Self {
            id: record.id.clone(),
            json: record.json().to_owned(),
            cursor: meta.cursor.clone(),
            last_action: meta.last_action.as_str().to_owned(),
            last_modified_at: meta.last_modified_at.clone(),
            deleted_at: meta.deleted_at.clone(),
            pruned_at: meta.pruned_at.clone(),
            digest: record.content_digest() as i64,
        }
    }
}

// The per-record statements are prepared once per connection (`prepare_cached`): preparing one
// compiles the change-feed triggers too, and that was a sixth of `serve`'s CPU.
const UPSERT_RECORD: &str = "INSERT INTO records
    (stream, id, record, cursor, last_action, last_modified_at, deleted_at, pruned_at, deleted_by,
     digest)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9)
    ON CONFLICT (stream, id) DO UPDATE SET record = excluded.record, cursor = excluded.cursor,
      digest = excluded.digest,
      last_action = excluded.last_action, last_modified_at = excluded.last_modified_at,
      deleted_at = excluded.deleted_at, pruned_at = excluded.pruned_at, deleted_by = NULL,
      pending_write = NULL";

/// How a page's decision is applied to a row.
enum Apply {
    /// Insert or replace the row: a live record, or a tombstone.
    Upsert,
    /// [`UPDATE_PRUNED`] on a live row; on a deleted one, or none, [`Apply::MergePayload`].
    KeepPayload(NangoRecord),
    /// The stored payload under the record's metadata, or the record when no row is stored.
    MergePayload(NangoRecord),
    Remove,
}

/// A [`Removal`] the database thread can own: `Some((at, by))` to mark deleted, `None` to remove.
fn owned(removal: Removal<'_>) -> Option<(String, String)> {
    match removal {
        Removal::Tombstone { at, by } => Some((at.to_owned(), by.to_owned())),
        Removal::Purge => None,
    }
}

/// A pruned record on a live row: its stored payload is kept, only the bookkeeping moves on. A
/// deleted row is left to [`merge_payload`]: Nango serves the record live again (undeleted, then
/// pruned before it was read).
const UPDATE_PRUNED: &str = "UPDATE records SET cursor = ?3, last_modified_at = ?4, pruned_at = ?5
    WHERE stream = ?1 AND id = ?2 AND deleted_at IS NULL";

/// The stored payload under `record`'s metadata ([`with_stored_payload`]), or `row` as served
/// when none is stored.
fn merge_payload(
    tx: &rusqlite::Transaction,
    key: &str,
    row: &RecordRow,
    record: &NangoRecord,
) -> rusqlite::Result<usize> {
    let stored: Option<String> = tx
        .prepare_cached("SELECT record FROM records WHERE stream = ?1 AND id = ?2")?
        .query_row(params![key, row.id], |r| r.get(0))
        .optional()?;
    let stored: Option<Map<String, Value>> =
        stored.and_then(|json| serde_json::from_str(&json).ok());
    match stored {
        Some(object) => upsert(
            tx,
            key,
            &RecordRow::of(&with_stored_payload(&object, record)),
        ),
        None => upsert(tx, key, row),
    }
}

const DELETE_RECORD: &str = "DELETE FROM records WHERE stream = ?1 AND id = ?2";

impl SqliteRecordStore {
    /// The stream's stored records as a sweep compares them: all, or those of `ids`.
    async fn stored_where(
        &self,
        stream: &StreamKey,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<Stored>, StoreError> {
        let key = stream.encode();
        self.db
            .call(move |c| {
                let row = |r: &rusqlite::Row<'_>| {
                    let deleted: bool = r.get(2)?;
                    Ok(Stored {
                        id: r.get(0)?,
                        version: Version::of(&r.get::<_, String>(1)?, deleted),
                        content: r.get::<_, Option<i64>>(3)?.map(|d| Version(d as u64)),
                        live: !deleted,
                    })
                };
                const SELECT: &str = "SELECT id, cursor, deleted_at IS NOT NULL, digest
                    FROM records WHERE stream = ?1";
                let Some(ids) = ids else {
                    let mut q = c.prepare(SELECT)?;
                    return q.query_map([key], row)?.collect();
                };
                let mut q = c.prepare_cached(&format!("{SELECT} AND id = ?2"))?;
                let mut found = Vec::new();
                for id in ids {
                    found.extend(q.query_row(params![key, id], row).optional()?);
                }
                Ok(found)
            })
            .await
    }

    /// The write shown on the stored record `id` of the stream, if any.
    pub async fn pending_write(
        &self,
        stream: &StreamKey,
        id: &str,
    ) -> Result<Option<PendingWrite>, StoreError> {
        let (key, id) = (stream.encode(), id.to_owned());
        let text: Option<String> = self
            .db
            .call(move |c| {
                c.query_row(
                    "SELECT pending_write FROM records WHERE stream = ?1 AND id = ?2",
                    params![key, id],
                    |r| r.get(0),
                )
                .optional()
                .map(Option::flatten)
            })
            .await?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::permanent(e.to_string())))
            .transpose()
    }
}

impl RecordStore for SqliteRecordStore {
    async fn mark_pending_write(
        &self,
        stream: &StreamKey,
        id: &str,
        mark: &PendingWrite,
    ) -> Result<bool, StoreError> {
        let text = serde_json::to_string(mark).expect("a mark always serializes");
        let (key, id) = (stream.encode(), id.to_owned());
        let marked = self
            .db
            .call(move |c| {
                c.execute(
                    "UPDATE records SET pending_write = ?3 WHERE stream = ?1 AND id = ?2",
                    params![key, id, text],
                )
            })
            .await?;
        Ok(marked == 1)
    }

    async fn write_page(
        &self,
        stream: &StreamKey,
        records: &[NangoRecord],
    ) -> Result<WriteReport, StoreError> {
        let plan = plan_page(records, self.delete_mode);
        let key = stream.encode();
        let deletes = plan.deletes_to_report();
        let rows: Vec<(RecordRow, Apply, bool)> = plan
            .writes()
            .iter()
            .map(|write| {
                let apply = match write {
                    RecordWrite::Upsert(_) | RecordWrite::Tombstone(_) => Apply::Upsert,
                    RecordWrite::KeepPayload(record) => Apply::KeepPayload((*record).clone()),
                    RecordWrite::TombstoneKeepingPayload(record) => {
                        Apply::MergePayload((*record).clone())
                    }
                    RecordWrite::Remove(_) => Apply::Remove,
                };
                let report = deletes.contains(write.record().id.as_str());
                (RecordRow::of(write.record()), apply, report)
            })
            .collect();
        let no_longer_live = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let mut no_longer_live = BTreeSet::new();
                for (row, apply, report) in &rows {
                    if *report {
                        let live: Option<bool> = tx
                            .prepare_cached(
                                "SELECT deleted_at IS NULL FROM records WHERE stream = ?1 AND id = ?2",
                            )?
                            .query_row(params![key, row.id], |r| r.get(0))
                            .optional()?;
                        if live == Some(true) {
                            no_longer_live.insert(row.id.clone());
                        }
                    }
                    match apply {
                        Apply::Upsert => {
                            upsert(&tx, &key, row)?;
                        }
                        Apply::KeepPayload(record) => {
                            let changed = tx.prepare_cached(UPDATE_PRUNED)?.execute(params![
                                key,
                                row.id,
                                row.cursor,
                                row.last_modified_at,
                                row.pruned_at,
                            ])?;
                            if changed == 0 {
                                merge_payload(&tx, &key, row, record)?;
                            }
                        }
                        Apply::MergePayload(record) => {
                            merge_payload(&tx, &key, row, record)?;
                        }
                        Apply::Remove => {
                            tx.prepare_cached(DELETE_RECORD)?
                                .execute(params![key, row.id])?;
                        }
                    }
                }
                tx.commit()?;
                Ok(no_longer_live)
            })
            .await?;
        Ok(WriteReport {
            no_longer_live,
            ..plan.report(Vec::new(), 0)
        })
    }

    async fn count_live(&self, stream: &StreamKey) -> Result<u64, StoreError> {
        let key = stream.encode();
        self.db
            .call(move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM records WHERE stream = ?1 AND deleted_at IS NULL",
                    [key],
                    |r| r.get::<_, i64>(0),
                )
            })
            .await
            .map(|n| n as u64)
    }

    async fn stored_versions(
        &self,
        stream: &StreamKey,
        each: &mut (dyn FnMut(Stored) + Send),
    ) -> Result<(), StoreError> {
        self.stored_where(stream, None)
            .await?
            .into_iter()
            .for_each(each);
        Ok(())
    }

    async fn stored_versions_of(
        &self,
        stream: &StreamKey,
        ids: &[&str],
    ) -> Result<Vec<Stored>, StoreError> {
        let ids = ids.iter().map(|id| (*id).to_owned()).collect();
        self.stored_where(stream, Some(ids)).await
    }

    async fn remove_unseen(
        &self,
        stream: &StreamKey,
        ids: &[String],
        at: &str,
    ) -> Result<u64, StoreError> {
        let (key, ids) = (stream.encode(), ids.to_vec());
        let tombstone = owned(self.delete_mode.sweep_removal(at));
        self.db
            .call(move |c| {
                let tx = c.transaction()?;
                let mut count = 0;
                for id in &ids {
                    count += remove_live(&tx, &key, Some(id), tombstone.as_ref())?;
                }
                tx.commit()?;
                Ok(count)
            })
            .await
    }

    async fn remove_stream(
        &self,
        stream: &StreamKey,
        removal: Removal<'_>,
    ) -> Result<u64, StoreError> {
        let key = stream.encode();
        let tombstone = owned(removal);
        self.db
            .call(move |c| match &tombstone {
                Some(tombstone) => {
                    let tx = c.transaction()?;
                    let count = remove_live(&tx, &key, None, Some(tombstone))?;
                    tx.commit()?;
                    Ok(count)
                }
                None => c
                    .execute("DELETE FROM records WHERE stream = ?1", [&key])
                    .map(|n| n as u64),
            })
            .await
    }
}

/// Marks deleted (`tombstone`: at, by) every live record of the stream, or only record `only`;
/// without `tombstone`, removes it (tombstones too). Returns how many.
fn remove_live(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    only: Option<&str>,
    tombstone: Option<&(String, String)>,
) -> rusqlite::Result<u64> {
    let doomed: Vec<(String, String)> = {
        let mut q = tx.prepare_cached(
            "SELECT id, record FROM records WHERE stream = ?1 AND (?2 IS NULL OR id = ?2)
               AND (?3 OR deleted_at IS NULL)",
        )?;
        let rows = q
            .query_map(params![key, only, tombstone.is_none()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    for (id, json) in &doomed {
        let Some((at, by)) = tombstone else {
            tx.prepare_cached(DELETE_RECORD)?
                .execute(params![key, id])?;
            continue;
        };
        let mut object: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
        mark_deleted(&mut object, at);
        tx.prepare_cached(
            "UPDATE records SET record = ?3, deleted_at = ?4, last_action = 'DELETED',
               deleted_by = ?5, digest = NULL WHERE stream = ?1 AND id = ?2",
        )?
        .execute(params![key, id, Value::Object(object).to_string(), at, by])?;
    }
    Ok(doomed.len() as u64)
}

fn upsert(tx: &rusqlite::Transaction<'_>, key: &str, row: &RecordRow) -> rusqlite::Result<usize> {
    tx.prepare_cached(UPSERT_RECORD)?.execute(params![
        key,
        row.id,
        row.json,
        row.cursor,
        row.last_action,
        row.last_modified_at,
        row.deleted_at,
        row.pruned_at,
        row.digest,
    ])
}
