//! The SQLite file: its schema, kept up to date when opened, and the one connection.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension};

use crate::ports::StoreError;
use crate::retry::Class;

/// The whole schema. `record` and `body` hold JSON text.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS records (
    stream           TEXT NOT NULL,  -- providerConfigKey|connectionId|model|variant
    id               TEXT NOT NULL,  -- the record's id
    record           TEXT NOT NULL,  -- JSON: the record as Nango returned it, _nango_metadata included
    cursor           TEXT NOT NULL,
    last_action      TEXT NOT NULL,  -- ADDED, UPDATED or DELETED
    last_modified_at TEXT NOT NULL,
    deleted_at       TEXT,
    pruned_at        TEXT,
    deleted_by       TEXT,           -- 'sweep' or 'connection_deleted' when we marked it deleted
    pending_write    TEXT,           -- JSON {id, state}: a write to the provider shown on it
    digest           INTEGER,        -- content digest when written whole (u64 as i64), else NULL
    PRIMARY KEY (stream, id)
) WITHOUT ROWID;
-- What each sweep's pages served (core::seen), until the sweep ends. Files made before this
-- table have a records.seen_in column instead, which nothing writes any more.
CREATE TABLE IF NOT EXISTS sweep_seen (
    stream   TEXT NOT NULL,
    sweep_id TEXT NOT NULL,
    page     TEXT NOT NULL,              -- the sweep cursor the page was read from
    seen     BLOB NOT NULL,              -- core::seen::encode_notes
    PRIMARY KEY (stream, sweep_id, page)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY,
    provider_config_key TEXT NOT NULL, connection_id TEXT NOT NULL, model TEXT NOT NULL, variant TEXT NOT NULL,
    cursor TEXT, sync_name TEXT, last_sync_at TEXT, last_webhook_at TEXT,
    records_written INTEGER NOT NULL DEFAULT 0, records_rejected INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'ok', error TEXT, error_at TEXT,
    last_rejected_id TEXT, last_rejected_reason TEXT,
    sweep_id TEXT, sweep_cursor TEXT, sweep_started_at TEXT, sweep_nango_count INTEGER,
    sweep_notes INTEGER,              -- 1: the sweep notes its pages (core::seen)
    last_sweep_at TEXT, swept_nango_count INTEGER, swept_live_count INTEGER, swept_tombstoned INTEGER,
    swept_outcome TEXT,               -- applied, held, confirmed, discarded, abandoned, resolved
    held TEXT, held_sweep_id TEXT,    -- JSON: a sweep whose deletes wait for an operator
    nango_notes TEXT,                 -- JSON: what the worker learned of the sync from Nango
    connection_deleted_at TEXT,
    live_change INTEGER, live_change_gaps INTEGER, -- core::state::LiveChange
    live_from TEXT                    -- the cursor the last run ended up to date at
);
CREATE TABLE IF NOT EXISTS connections (
    provider_config_key TEXT NOT NULL, connection_id TEXT NOT NULL,
    status TEXT NOT NULL, success INTEGER NOT NULL, operation TEXT, provider TEXT, auth_mode TEXT,
    environment TEXT, error TEXT, last_event_at TEXT NOT NULL,
    deleted_at TEXT,                  -- set by Nango's deletion webhook (or `forget`)
    PRIMARY KEY (provider_config_key, connection_id)
);
CREATE TABLE IF NOT EXISTS events (
    connection  TEXT NOT NULL,       -- providerConfigKey|connectionId, or 'unmatched'
    received_at TEXT NOT NULL,
    id          TEXT NOT NULL,       -- sha256 of the body
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,       -- JSON: the verified webhook, verbatim
    PRIMARY KEY (connection, received_at, id)
);
-- Writes to the provider (core::writes), one row per write id, moved only conditionally.
CREATE TABLE IF NOT EXISTS writes (
    id          TEXT PRIMARY KEY,    -- the application's id, the idempotency key
    request     TEXT NOT NULL,       -- JSON: the write request
    state       TEXT NOT NULL,       -- accepted, sending, running, succeeded, failed or unknown
    attempts    INTEGER NOT NULL,    -- attempts to send it begun
    accepted_at TEXT NOT NULL,
    changed_at  TEXT NOT NULL,
    outcome     TEXT,                -- what the last attempt came to, in words
    maybe_reached INTEGER NOT NULL DEFAULT 0, -- 1: an attempt may have reached the provider
    action_id   TEXT                 -- the async action Nango took for it (running)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,     -- 'ingest' or 'dead'
    group_id      TEXT NOT NULL,
    dedup_id      TEXT NOT NULL,
    body          TEXT NOT NULL,     -- JSON: the job message
    visible_at_ms INTEGER NOT NULL,  -- not delivered before (in flight, or waiting to be retried)
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT               -- set while in flight
);
CREATE INDEX IF NOT EXISTS jobs_in_order ON jobs (queue, seq);
CREATE TABLE IF NOT EXISTS sent_dedup_ids (
    queue TEXT NOT NULL, dedup_id TEXT NOT NULL, sent_at_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
);
-- The change feed, the DynamoDB stream's twin: one row per write to a record that a reader
-- cares about, kept by the triggers below, whichever code path wrote it. The newest
-- CHANGES_KEPT rows are kept.
CREATE TABLE IF NOT EXISTS changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,                -- when it was written, UTC
    stream TEXT NOT NULL,
    id     TEXT NOT NULL,
    change TEXT NOT NULL                 -- added, updated, deleted, pruned or removed; for a
                                         -- write (stream 'writes'): write_succeeded, ...
);
CREATE INDEX IF NOT EXISTS changes_by_stream ON changes (stream, seq);
CREATE TRIGGER IF NOT EXISTS records_added AFTER INSERT ON records BEGIN
    INSERT INTO changes (at, stream, id, change) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
        NEW.stream, NEW.id, CASE WHEN NEW.deleted_at IS NULL THEN 'added' ELSE 'deleted' END);
END;
CREATE TRIGGER IF NOT EXISTS records_removed AFTER DELETE ON records BEGIN
    INSERT INTO changes (at, stream, id, change) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
        OLD.stream, OLD.id, 'removed');
END;
-- A write to the provider that ended, in the same feed: stream 'writes', the write's id, and
-- write_succeeded, write_failed or write_unknown (the DynamoDB deployment puts an event instead).
CREATE TRIGGER IF NOT EXISTS writes_ended AFTER UPDATE OF state ON writes
    WHEN NEW.state IN ('succeeded', 'failed', 'unknown') AND NEW.state IS NOT OLD.state
BEGIN
    INSERT INTO changes (at, stream, id, change) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
        'writes', NEW.id, 'write_' || NEW.state);
END;
CREATE TRIGGER IF NOT EXISTS changes_kept AFTER INSERT ON changes BEGIN
    DELETE FROM changes WHERE seq <= NEW.seq - 100000;
END;
"#;

/// How many of the newest changes the feed keeps (the `changes_kept` trigger's bound).
pub const CHANGES_KEPT: u64 = 100_000;

/// Columns added since the first schema: a file made before them gains them when opened.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("streams", "swept_outcome", "TEXT"),
    ("streams", "held", "TEXT"),
    ("streams", "held_sweep_id", "TEXT"),
    ("streams", "nango_notes", "TEXT"),
    ("streams", "connection_deleted_at", "TEXT"),
    ("connections", "deleted_at", "TEXT"),
    ("streams", "live_change", "INTEGER"),
    ("streams", "live_change_gaps", "INTEGER"),
    ("streams", "sweep_notes", "INTEGER"),
    ("streams", "live_from", "TEXT"),
    ("writes", "maybe_reached", "INTEGER NOT NULL DEFAULT 0"),
    ("writes", "action_id", "TEXT"),
    ("records", "pending_write", "TEXT"),
    ("records", "digest", "INTEGER"),
];

/// Indexes on added columns: made once the columns are there.
const ADDED_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS writes_by_action ON writes (action_id) WHERE action_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS writes_running ON writes (state) WHERE state = 'running';
";

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, kind) in ADDED_COLUMNS {
        let present = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
            ))?
            .exists([column])?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

/// One SQLite file, shared by the store and the queues opened on it.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    conn: Arc<Mutex<Connection>>,
}

/// The one place SQLite's errors are classified: a busy or locked file, a full disk, I/O and
/// memory failures are transient (the job is tried again); anything else (a constraint, a
/// corrupt file, a bad statement) is permanent.
pub(super) fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let class = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::OutOfMemory => Class::Transient,
            _ => Class::Permanent,
        },
        _ => Class::Permanent,
    };
    StoreError::caused_by(class, format!("sqlite: {e}"), e)
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The feed's trigger for updated rows. A write that moves nothing a reader cares about is no
/// change; a deleted record live again is `updated` (as an undelete always was), even when
/// Nango pruned it meanwhile.
const RECORDS_CHANGED: &str = "CREATE TRIGGER records_changed AFTER UPDATE ON records
    WHEN NEW.last_modified_at IS NOT OLD.last_modified_at OR NEW.deleted_at IS NOT OLD.deleted_at
        OR NEW.pruned_at IS NOT OLD.pruned_at
BEGIN
    INSERT INTO changes (at, stream, id, change) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
        NEW.stream, NEW.id, CASE
            WHEN NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN 'deleted'
            WHEN NEW.deleted_at IS NULL AND OLD.deleted_at IS NOT NULL THEN 'updated'
            WHEN NEW.pruned_at IS NOT NULL AND OLD.pruned_at IS NULL THEN 'pruned'
            ELSE 'updated' END);
END";

/// Puts [`RECORDS_CHANGED`] in place when the file holds none or another version (a file made
/// by an older release), in one transaction: no update goes unrecorded in between. A file that
/// has it already is only read.
fn replace_records_changed(conn: &Connection) -> rusqlite::Result<()> {
    let current: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'records_changed'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if current.as_deref() == Some(RECORDS_CHANGED) {
        return Ok(());
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; DROP TRIGGER IF EXISTS records_changed; {RECORDS_CHANGED}; COMMIT;"
    ))
}

impl SqliteDb {
    /// Opens (or creates) the file and its schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::permanent(format!("cannot open {}: {e}", path.display())))?;
        // WAL survives a crash of the process; NORMAL sync is enough for a local copy that can
        // always be re-read from Nango.
        // The default 2 MiB page cache is smaller than one page of records (1,000 of about
        // 1.2 KB), so it spilled mid-write and read pages back (perf); 8 MiB holds a page with
        // its index and feed pages. The upserts' statement journals stay in memory, not in a
        // temp file.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY;",
        )
        .map_err(store_error)?;
        conn.execute_batch(SCHEMA).map_err(store_error)?;
        replace_records_changed(&conn).map_err(store_error)?;
        add_missing_columns(&conn).map_err(store_error)?;
        conn.execute_batch(ADDED_INDEXES).map_err(store_error)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection, off the async threads.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        // The blocking task was cancelled (the runtime is shutting down): try again later.
        .map_err(|e| StoreError::caused_by(Class::Transient, "sqlite call interrupted", e))?
        .map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    /// A file made by an older release gets this release's trigger; one that has it is left be.
    #[test]
    fn the_feeds_trigger_is_replaced_only_when_it_differs() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let sql = |conn: &Connection| -> String {
            conn.query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'records_changed'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        let older = RECORDS_CHANGED.replace(
            "WHEN NEW.deleted_at IS NULL AND OLD.deleted_at IS NOT NULL THEN 'updated'\n            ",
            "",
        );
        assert_ne!(older, RECORDS_CHANGED);
        conn.execute_batch(&older).unwrap();
        replace_records_changed(&conn).unwrap();
        assert_eq!(sql(&conn), RECORDS_CHANGED);
        // In place: the schema is not written again (a DROP and CREATE would move its version).
        let version = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
                .unwrap()
        };
        let before = version(&conn);
        replace_records_changed(&conn).unwrap();
        assert_eq!(sql(&conn), RECORDS_CHANGED);
        assert_eq!(version(&conn), before);
    }

    #[test]
    fn a_busy_file_is_retried_a_broken_one_is_not_and_the_cause_is_kept() {
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_FULL] {
            let error = store_error(failure(code));
            assert!(error.is_retryable(), "{error}");
            assert!(std::error::Error::source(&error).is_some(), "{error:?}");
        }
        for code in [
            rusqlite::ffi::SQLITE_CONSTRAINT,
            rusqlite::ffi::SQLITE_CORRUPT,
        ] {
            assert!(!store_error(failure(code)).is_retryable());
        }
        assert!(!store_error(rusqlite::Error::InvalidQuery).is_retryable());
    }
}
