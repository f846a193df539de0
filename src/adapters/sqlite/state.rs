//! Streams, connections and application events in the SQLite file, as the DynamoDB state table
//! keeps them.

use rusqlite::{params, Connection, OptionalExtension};

use super::db::SqliteDb;
use crate::core::seen::{decode_notes, encode_notes, Seen};
use crate::core::state::{
    ConnectionEvent, HeldSweep, LastSyncStatus, LiveChange, NangoNotes, StoredEvent, StreamState,
    SweepOutcome, SweepResult, SweepState, SyncReport,
};
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::core::write::RejectedRecord;
use crate::ports::{StateStore, StoreError};

/// Streams, connections and events in the SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStateStore {
    pub(super) db: SqliteDb,
}

impl SqliteStateStore {
    pub fn new(db: SqliteDb) -> Self {
        Self { db }
    }
}

impl SqliteStateStore {
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

impl SqliteStateStore {
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
                           swept_live_count = ?5, swept_tombstoned = ?6, swept_outcome = ?7,
                           live_change_gaps = COALESCE(live_change_gaps, 0) + 1
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

const STREAM_COLUMNS: &str = "stream, cursor, sync_name, last_sync_at, last_webhook_at,
    records_written, records_rejected, status, error, sweep_id, sweep_cursor, sweep_started_at,
    sweep_nango_count, last_sweep_at, swept_nango_count, swept_live_count, swept_tombstoned,
    swept_outcome, held, nango_notes, connection_deleted_at, live_change, live_change_gaps,
    live_from, sweep_notes";

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
        outcome: LastSyncStatus::parse(&r.get::<_, String>(7)?),
        error: r.get(8)?,
        sweep: match r.get::<_, Option<String>>(9)? {
            Some(id) => Some(SweepState {
                id,
                cursor: r.get(10)?,
                started_at: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                nango_count: count(12)?,
                notes_pages: count(24)? == 1,
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
        live_change: LiveChange {
            net: r.get::<_, Option<i64>>(21)?.unwrap_or(0),
            gaps: count(22)?,
        },
        live_from: r.get(23)?,
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

impl StateStore for SqliteStateStore {
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
        live_change: Option<i64>,
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
                       last_rejected_reason = COALESCE(?7, last_rejected_reason),
                       live_change = COALESCE(live_change, 0) + COALESCE(?8, 0),
                       live_change_gaps = COALESCE(live_change_gaps, 0) + (?8 IS NULL)
                     WHERE stream = ?1 AND cursor IS ?3",
                    params![
                        s.encode(),
                        to,
                        from_owned,
                        written as i64,
                        rejected_count,
                        last_rejected.as_ref().map(|r| r.id.clone()),
                        last_rejected.as_ref().map(|r| r.reason.clone()),
                        live_change
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
                       sweep_nango_count = ?4, sweep_notes = ?5
                     WHERE stream = ?1 AND (sweep_id IS NULL OR sweep_id = ?2)",
                    params![
                        s.encode(),
                        sweep.id,
                        sweep.started_at,
                        sweep.nango_count as i64,
                        sweep.notes_pages
                    ],
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
            "sweep_id = NULL, sweep_cursor = NULL, sweep_started_at = NULL, sweep_nango_count = NULL,
             sweep_notes = NULL";
        self.record_last_sweep(stream, clear, "sweep_id", id, result)
            .await
            .map(|_| ())
    }

    async fn note_seen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        page: &str,
        seen: &[Seen],
    ) -> Result<(), StoreError> {
        let (key, sweep_id, page) = (stream.encode(), sweep_id.to_owned(), page.to_owned());
        let notes = encode_notes(seen);
        self.db
            .call(move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO sweep_seen (stream, sweep_id, page, seen)
                       VALUES (?1, ?2, ?3, ?4)",
                    params![key, sweep_id, page, notes],
                )
            })
            .await
            .map(|_| ())
    }

    async fn seen_in_sweep(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        each: &mut (dyn FnMut(Seen) + Send),
    ) -> Result<(), StoreError> {
        let (key, sweep_id) = (stream.encode(), sweep_id.to_owned());
        let pages: Vec<Vec<u8>> = self
            .db
            .call(move |c| {
                let mut q =
                    c.prepare("SELECT seen FROM sweep_seen WHERE stream = ?1 AND sweep_id = ?2")?;
                let rows = q
                    .query_map(params![key, sweep_id], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        for page in pages {
            let notes = decode_notes(&page).map_err(StoreError::permanent)?;
            notes.into_iter().for_each(&mut *each);
        }
        Ok(())
    }

    async fn forget_seen(&self, stream: &StreamKey, sweep_id: &str) -> Result<(), StoreError> {
        let (key, sweep_id) = (stream.encode(), sweep_id.to_owned());
        self.db
            .call(move |c| {
                c.execute(
                    "DELETE FROM sweep_seen WHERE stream = ?1 AND sweep_id = ?2",
                    params![key, sweep_id],
                )
            })
            .await
            .map(|_| ())
    }

    async fn mark_up_to_date(&self, stream: &StreamKey, cursor: &str) -> Result<(), StoreError> {
        let (key, cursor) = (stream.encode(), cursor.to_owned());
        self.db
            .call(move |c| {
                c.execute(
                    "UPDATE streams SET live_from = ?2 WHERE stream = ?1 AND cursor = ?2",
                    params![key, cursor],
                )
            })
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
        let assignments = "connection_deleted_at = ?2,
            live_change_gaps = COALESCE(live_change_gaps, 0) + (?2 IS NOT NULL)";
        self.set_on_stream(stream, assignments, values).await
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
