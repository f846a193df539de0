//! Records and state in the SQLite file, as the DynamoDB stores keep them.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::db::SqliteDb;
use crate::core::record::{mark_deleted, NangoRecord};
use crate::core::state::{
    ConnectionEvent, HeldSweep, NangoNotes, StoredEvent, StreamState, SweepOutcome, SweepResult,
    SweepState, SyncOutcome, SyncReport,
};
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::core::write::{
    plan_page, DeleteMode, RecordWrite, RejectedRecord, Removal, WriteReport,
};
use crate::ports::{RecordStore, StateStore, StoreError};

/// Records and state in the SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: SqliteDb,
    delete_mode: DeleteMode,
}

impl SqliteStore {
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

impl SqliteStore {
    /// Sets columns of the stream's row (made if missing): `assignments` uses ?2, ?3, ... for
    /// `values`.
    async fn set_on_stream(
        &self,
        stream: &StreamKey,
        assignments: &'static str,
        values: Vec<Option<String>>,
    ) -> Result<(), StoreError> {
        let s = stream.clone();
        self.db
            .call(move |c| {
                ensure_stream(c, &s)?;
                let sql = format!("UPDATE streams SET {assignments} WHERE stream = ?1");
                let key = Some(s.encode());
                c.execute(
                    &sql,
                    rusqlite::params_from_iter(std::iter::once(key).chain(values)),
                )
            })
            .await
            .map(|_| ())
    }
}

impl SqliteStore {
    /// Records `result` as the stream's last sweep, clearing the columns `clear` sets to NULL,
    /// where `id_column` is `id`. Returns the rows changed (0: not that sweep).
    async fn record_last_sweep(
        &self,
        stream: &StreamKey,
        clear: &'static str,
        id_column: &'static str,
        id: &str,
        result: &SweepResult,
    ) -> Result<usize, StoreError> {
        let (key, id, result) = (stream.encode(), id.to_owned(), result.clone());
        self.db
            .call(move |c| {
                c.execute(
                    &format!(
                        "UPDATE streams SET {clear}, last_sweep_at = ?3, swept_nango_count = ?4,
                           swept_live_count = ?5, swept_tombstoned = ?6, swept_outcome = ?7
                         WHERE stream = ?1 AND {id_column} = ?2"
                    ),
                    params![
                        key,
                        id,
                        result.finished_at,
                        result.nango_count as i64,
                        result.live_count as i64,
                        result.tombstoned as i64,
                        result.outcome.as_str()
                    ],
                )
            })
            .await
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
        }
    }
}

// The per-record statements are prepared once per connection (`prepare_cached`): preparing one
// compiles the change-feed triggers too, and that was a sixth of `serve`'s CPU.
const UPSERT_RECORD: &str = "INSERT INTO records
    (stream, id, record, cursor, last_action, last_modified_at, deleted_at, pruned_at, seen_in, deleted_by)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)
    ON CONFLICT (stream, id) DO UPDATE SET record = excluded.record, cursor = excluded.cursor,
      last_action = excluded.last_action, last_modified_at = excluded.last_modified_at,
      deleted_at = excluded.deleted_at, pruned_at = excluded.pruned_at,
      seen_in = COALESCE(excluded.seen_in, records.seen_in), deleted_by = NULL";

/// How a page's decision is applied to a row.
enum Apply {
    /// Insert or replace the row: a live record, or a tombstone.
    Upsert,
    /// [`UPDATE_PRUNED`], or an insert when no row is stored.
    KeepPayload,
    Remove,
}

/// A [`Removal`] the database thread can own: `Some((at, by))` to mark deleted, `None` to remove.
fn owned(removal: Removal<'_>) -> Option<(String, String)> {
    match removal {
        Removal::Tombstone { at, by } => Some((at.to_owned(), by.to_owned())),
        Removal::Purge => None,
    }
}

/// A pruned record: its stored payload is kept, only the bookkeeping moves on.
const UPDATE_PRUNED: &str = "UPDATE records SET cursor = ?3, last_modified_at = ?4, pruned_at = ?5,
      seen_in = COALESCE(?6, seen_in)
    WHERE stream = ?1 AND id = ?2";

const DELETE_RECORD: &str = "DELETE FROM records WHERE stream = ?1 AND id = ?2";

impl RecordStore for SqliteStore {
    async fn write_page(
        &self,
        stream: &StreamKey,
        records: &[NangoRecord],
        seen_in: Option<&str>,
    ) -> Result<WriteReport, StoreError> {
        let plan = plan_page(records, self.delete_mode);
        let key = stream.encode();
        let seen_in = seen_in.map(str::to_owned);
        let rows: Vec<(RecordRow, Apply)> = plan
            .writes()
            .iter()
            .map(|write| {
                let apply = match write {
                    RecordWrite::Upsert(_) | RecordWrite::Tombstone(_) => Apply::Upsert,
                    RecordWrite::KeepPayload(_) => Apply::KeepPayload,
                    RecordWrite::Remove(_) => Apply::Remove,
                };
                (RecordRow::of(write.record()), apply)
            })
            .collect();
        self.db
            .call(move |c| {
                let tx = c.transaction()?;
                for (row, apply) in &rows {
                    match apply {
                        Apply::Upsert => {
                            upsert(&tx, &key, row, seen_in.as_deref())?;
                        }
                        Apply::KeepPayload => {
                            let changed = tx.prepare_cached(UPDATE_PRUNED)?.execute(params![
                                key,
                                row.id,
                                row.cursor,
                                row.last_modified_at,
                                row.pruned_at,
                                seen_in
                            ])?;
                            if changed == 0 {
                                upsert(&tx, &key, row, seen_in.as_deref())?;
                            }
                        }
                        Apply::Remove => {
                            tx.prepare_cached(DELETE_RECORD)?
                                .execute(params![key, row.id])?;
                        }
                    }
                }
                tx.commit()
            })
            .await?;
        Ok(plan.report(Vec::new(), 0))
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

    async fn count_unseen(&self, stream: &StreamKey, sweep_id: &str) -> Result<u64, StoreError> {
        let (key, sweep_id) = (stream.encode(), sweep_id.to_owned());
        self.db
            .call(move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM records WHERE stream = ?1 AND deleted_at IS NULL
                       AND (seen_in IS NULL OR seen_in <> ?2)",
                    params![key, sweep_id],
                    |r| r.get::<_, i64>(0),
                )
            })
            .await
            .map(|n| n as u64)
    }

    async fn tombstone_unseen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        at: &str,
    ) -> Result<u64, StoreError> {
        let (key, sweep_id) = (stream.encode(), sweep_id.to_owned());
        let tombstone = owned(self.delete_mode.sweep_removal(at));
        self.db
            .call(move |c| {
                let tx = c.transaction()?;
                let count = remove_live(&tx, &key, Some(&sweep_id), tombstone.as_ref())?;
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

/// Marks deleted (`tombstone`: at, by) or removes every live record of the stream, or, with
/// `unseen_by`, those that sweep did not stamp. Returns how many.
fn remove_live(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    unseen_by: Option<&str>,
    tombstone: Option<&(String, String)>,
) -> rusqlite::Result<u64> {
    let doomed: Vec<(String, String)> = {
        let mut q = tx.prepare(
            "SELECT id, record FROM records WHERE stream = ?1 AND deleted_at IS NULL
               AND (?2 IS NULL OR seen_in IS NULL OR seen_in <> ?2)",
        )?;
        let rows = q
            .query_map(params![key, unseen_by], |r| Ok((r.get(0)?, r.get(1)?)))?
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
               deleted_by = ?5 WHERE stream = ?1 AND id = ?2",
        )?
        .execute(params![key, id, Value::Object(object).to_string(), at, by])?;
    }
    Ok(doomed.len() as u64)
}

fn upsert(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    row: &RecordRow,
    seen_in: Option<&str>,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(UPSERT_RECORD)?.execute(params![
        key,
        row.id,
        row.json,
        row.cursor,
        row.last_action,
        row.last_modified_at,
        row.deleted_at,
        row.pruned_at,
        seen_in
    ])
}

const STREAM_COLUMNS: &str = "stream, cursor, sync_name, last_sync_at, last_webhook_at,
    records_written, records_rejected, status, error, sweep_id, sweep_cursor, sweep_started_at,
    sweep_nango_count, last_sweep_at, swept_nango_count, swept_live_count, swept_tombstoned,
    swept_outcome, held, nango_notes, connection_deleted_at";

/// A JSON column read back; what cannot be read (a hand edit) reads as unset.
fn json_column<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn stream_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, StreamState)> {
    let count =
        |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0) as u64) };
    let state = StreamState {
        cursor: r.get(1)?,
        sync_name: r.get(2)?,
        last_sync_at: r.get(3)?,
        last_webhook_at: r.get(4)?,
        records_written: count(5)?,
        records_rejected: count(6)?,
        outcome: SyncOutcome::parse(&r.get::<_, String>(7)?),
        error: r.get(8)?,
        sweep: match r.get::<_, Option<String>>(9)? {
            Some(id) => Some(SweepState {
                id,
                cursor: r.get(10)?,
                started_at: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                nango_count: count(12)?,
            }),
            None => None,
        },
        last_sweep: match r.get::<_, Option<String>>(13)? {
            Some(finished_at) => Some(SweepResult {
                finished_at,
                nango_count: count(14)?,
                live_count: count(15)?,
                tombstoned: count(16)?,
                outcome: SweepOutcome::parse(&r.get::<_, Option<String>>(17)?.unwrap_or_default()),
            }),
            None => None,
        },
        held: json_column(r.get(18)?),
        nango: json_column(r.get(19)?).unwrap_or_default(),
        connection_deleted_at: r.get(20)?,
    };
    Ok((r.get(0)?, state))
}

/// Creates the stream's row if it has none (with its identity columns).
fn ensure_stream(c: &Connection, stream: &StreamKey) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO streams (stream, provider_config_key, connection_id, model, variant)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (stream) DO NOTHING",
        params![
            stream.encode(),
            stream.provider_config_key,
            stream.connection_id,
            stream.model,
            stream.variant
        ],
    )?;
    Ok(())
}

fn conflict(stream: &StreamKey, expected: Option<String>) -> StoreError {
    StoreError::CursorConflict {
        stream: stream.encode(),
        expected,
    }
}

impl StateStore for SqliteStore {
    async fn get_stream(&self, stream: &StreamKey) -> Result<Option<StreamState>, StoreError> {
        let key = stream.encode();
        self.db
            .call(move |c| {
                c.query_row(
                    &format!("SELECT {STREAM_COLUMNS} FROM streams WHERE stream = ?1"),
                    [key],
                    stream_row,
                )
                .optional()
            })
            .await
            .map(|found| found.map(|(_, state)| state))
    }

    async fn advance_cursor(
        &self,
        stream: &StreamKey,
        from: Option<&str>,
        to: &str,
        written: u64,
        rejected: &[RejectedRecord],
    ) -> Result<(), StoreError> {
        let (s, from_owned, to) = (stream.clone(), from.map(str::to_owned), to.to_owned());
        let last_rejected = rejected.last().cloned();
        let rejected_count = rejected.len() as i64;
        let changed = self
            .db
            .call(move |c| {
                ensure_stream(c, &s)?;
                c.execute(
                    "UPDATE streams SET cursor = ?2, records_written = records_written + ?4,
                       records_rejected = records_rejected + ?5,
                       last_rejected_id = COALESCE(?6, last_rejected_id),
                       last_rejected_reason = COALESCE(?7, last_rejected_reason)
                     WHERE stream = ?1 AND cursor IS ?3",
                    params![
                        s.encode(),
                        to,
                        from_owned,
                        written as i64,
                        rejected_count,
                        last_rejected.as_ref().map(|r| r.id.clone()),
                        last_rejected.as_ref().map(|r| r.reason.clone())
                    ],
                )
            })
            .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(conflict(stream, from.map(str::to_owned)))
        }
    }

    async fn report_sync(&self, stream: &StreamKey, report: &SyncReport) -> Result<(), StoreError> {
        let (s, report) = (stream.clone(), report.clone());
        self.db
            .call(move |c| {
                ensure_stream(c, &s)?;
                let key = s.encode();
                match &report.error {
                    None => c.execute(
                        "UPDATE streams SET sync_name = ?2, status = 'ok', error = NULL,
                           last_sync_at = ?3 WHERE stream = ?1",
                        params![key, report.sync_name, report.at],
                    )?,
                    Some(message) => c.execute(
                        "UPDATE streams SET sync_name = ?2, status = 'error', error = ?4,
                           error_at = ?3 WHERE stream = ?1",
                        params![key, report.sync_name, report.at, message],
                    )?,
                };
                if let Some(at) = &report.webhook_at {
                    c.execute(
                        "UPDATE streams SET last_webhook_at = ?2 WHERE stream = ?1",
                        params![key, at],
                    )?;
                }
                Ok(())
            })
            .await
    }

    async fn list_streams(&self) -> Result<Vec<(StreamKey, StreamState)>, StoreError> {
        let rows = self
            .db
            .call(|c| {
                let mut q = c.prepare(&format!(
                    "SELECT {STREAM_COLUMNS} FROM streams ORDER BY stream"
                ))?;
                let rows = q
                    .query_map([], stream_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, state)| StreamKey::decode(&key).ok().map(|k| (k, state)))
            .collect())
    }

    async fn begin_sweep(&self, stream: &StreamKey, sweep: &SweepState) -> Result<(), StoreError> {
        let (s, sweep) = (stream.clone(), sweep.clone());
        let changed = self
            .db
            .call(move |c| {
                ensure_stream(c, &s)?;
                c.execute(
                    "UPDATE streams SET sweep_id = ?2, sweep_cursor = NULL, sweep_started_at = ?3,
                       sweep_nango_count = ?4 WHERE stream = ?1 AND (sweep_id IS NULL OR sweep_id = ?2)",
                    params![s.encode(), sweep.id, sweep.started_at, sweep.nango_count as i64],
                )
            })
            .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(conflict(stream, None))
        }
    }

    async fn advance_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<(), StoreError> {
        let (key, id, from_owned, to) = (
            stream.encode(),
            id.to_owned(),
            from.map(str::to_owned),
            to.to_owned(),
        );
        let changed = self
            .db
            .call(move |c| {
                c.execute(
                    "UPDATE streams SET sweep_cursor = ?3
                     WHERE stream = ?1 AND sweep_id = ?2 AND sweep_cursor IS ?4",
                    params![key, id, to, from_owned],
                )
            })
            .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(conflict(stream, from.map(str::to_owned)))
        }
    }

    async fn end_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        result: &SweepResult,
    ) -> Result<(), StoreError> {
        let clear =
            "sweep_id = NULL, sweep_cursor = NULL, sweep_started_at = NULL, sweep_nango_count = NULL";
        self.record_last_sweep(stream, clear, "sweep_id", id, result)
            .await
            .map(|_| ())
    }

    async fn reset_cursor(&self, stream: &StreamKey) -> Result<(), StoreError> {
        let key = stream.encode();
        self.db
            .call(move |c| c.execute("UPDATE streams SET cursor = NULL WHERE stream = ?1", [key]))
            .await
            .map(|_| ())
    }

    async fn set_nango_notes(
        &self,
        stream: &StreamKey,
        notes: &NangoNotes,
    ) -> Result<(), StoreError> {
        self.set_on_stream(stream, "nango_notes = ?2", vec![Some(to_json(notes))])
            .await
    }

    async fn hold_sweep(&self, stream: &StreamKey, held: &HeldSweep) -> Result<(), StoreError> {
        let values = vec![Some(to_json(held)), Some(held.sweep_id.clone())];
        self.set_on_stream(stream, "held = ?2, held_sweep_id = ?3", values)
            .await
    }

    async fn release_hold(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        result: &SweepResult,
    ) -> Result<bool, StoreError> {
        let clear = "held = NULL, held_sweep_id = NULL";
        let changed = self
            .record_last_sweep(stream, clear, "held_sweep_id", sweep_id, result)
            .await?;
        Ok(changed == 1)
    }

    async fn set_connection_deleted(
        &self,
        stream: &StreamKey,
        at: Option<&str>,
    ) -> Result<(), StoreError> {
        let values = vec![at.map(str::to_owned)];
        self.set_on_stream(stream, "connection_deleted_at = ?2", values)
            .await
    }

    async fn upsert_connection(
        &self,
        connection: &ConnectionKey,
        event: &ConnectionEvent,
    ) -> Result<(), StoreError> {
        let (k, e) = (connection.clone(), event.clone());
        self.db
            .call(move |c| {
                // Webhooks can arrive out of order: an older event never overwrites a newer one.
                c.execute(
                    "INSERT INTO connections (provider_config_key, connection_id, status, success,
                       operation, provider, auth_mode, environment, error, last_event_at, deleted_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (provider_config_key, connection_id) DO UPDATE SET
                       status = excluded.status, success = excluded.success,
                       operation = excluded.operation, provider = excluded.provider,
                       auth_mode = excluded.auth_mode, environment = excluded.environment,
                       error = excluded.error, last_event_at = excluded.last_event_at,
                       deleted_at = excluded.deleted_at
                     WHERE connections.last_event_at <= excluded.last_event_at",
                    params![
                        k.provider_config_key,
                        k.connection_id,
                        if e.success { "ok" } else { "error" },
                        e.success,
                        e.operation,
                        e.provider,
                        e.auth_mode,
                        e.environment,
                        e.error,
                        e.received_at,
                        e.deleted_at()
                    ],
                )
            })
            .await
            .map(|_| ())
    }

    async fn store_event(&self, event: &StoredEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.db
            .call(move |c| {
                let connection = event
                    .connection
                    .as_ref()
                    .map_or_else(|| "unmatched".to_owned(), ConnectionKey::encode);
                c.execute(
                    "INSERT OR REPLACE INTO events (connection, received_at, id, kind, body)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        connection,
                        event.received_at,
                        event.id,
                        event.kind,
                        event.body
                    ],
                )
            })
            .await
            .map(|_| ())
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("bookkeeping always serializes")
}
