//! Writes to the provider in the `writes` table: an INSERT that leaves a kept id alone, and
//! UPDATEs conditional on the write's position.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::state::SqliteStateStore;
use crate::core::writes::request::WriteRequest;
use crate::core::writes::state::WriteState;
use crate::core::writes::stored::{bounded, Accept, Move, StoredWrite};
use crate::ports::{StoreError, WriteStore};

const COLUMNS: &str =
    "request, state, attempts, accepted_at, changed_at, outcome, maybe_reached, action_id";

/// A row's fields, read as they are; made a [`StoredWrite`] off the connection.
type Kept = (
    String,
    String,
    u32,
    String,
    String,
    Option<String>,
    bool,
    Option<String>,
);

fn kept(row: &Row<'_>) -> rusqlite::Result<Kept> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn stored(
    (request, state, attempts, accepted_at, changed_at, outcome, reached, action_id): Kept,
) -> Result<StoredWrite, StoreError> {
    StoredWrite::from_kept(
        &request,
        &state,
        attempts,
        accepted_at,
        changed_at,
        outcome,
        reached,
    )
    .map(|write| write.with_action(action_id))
    .map_err(StoreError::permanent)
}

/// Runs `f` with SQLite's `synchronous = FULL`: its commit is on disk when it returns.
fn durably<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.pragma_update(None, "synchronous", "FULL")?;
    let result = f(c);
    c.pragma_update(None, "synchronous", "NORMAL")?;
    result
}

fn get(c: &Connection, id: &str) -> rusqlite::Result<Option<Kept>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM writes WHERE id = ?1"),
        [id],
        kept,
    )
    .optional()
}

impl WriteStore for SqliteStateStore {
    async fn accept_write(&self, request: &WriteRequest, at: &str) -> Result<Accept, StoreError> {
        let (id, text, at) = (
            request.id.clone(),
            StoredWrite::request_text(request),
            at.to_owned(),
        );
        let write = StoredWrite::accepted(request.clone(), &at);
        let found = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let inserted = tx.execute(
                    "INSERT INTO writes (id, request, state, attempts, accepted_at, changed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (id) DO NOTHING",
                    params![
                        id,
                        text,
                        write.position.state.as_str(),
                        write.position.attempts,
                        at
                    ],
                )?;
                let found = if inserted == 0 { get(&tx, &id)? } else { None };
                tx.commit()?;
                Ok(found)
            })
            .await?;
        match found {
            None => Ok(Accept::New),
            Some(kept) => Ok(Accept::Duplicate(Box::new(stored(kept)?))),
        }
    }

    async fn get_write(&self, id: &str) -> Result<Option<StoredWrite>, StoreError> {
        let id = id.to_owned();
        let found = self.db.call(move |c| get(c, &id)).await?;
        found.map(stored).transpose()
    }

    async fn move_write(&self, id: &str, change: &Move<'_>) -> Result<bool, StoreError> {
        let (id, from, to, at) = (id.to_owned(), change.from, change.to, change.at.to_owned());
        let outcome = change.outcome.map(|o| bounded(o).to_owned());
        let reached = change.reached;
        let action_id = change.action_id.map(str::to_owned);
        let moved = self
            .db
            .call(move |c| {
                // A write's moves survive a power loss, not only a crash of the process (the
                // file's NORMAL setting may lose its last commits): a lost `sending` would let the
                // write go out again.
                durably(c, |c| {
                    c.execute(
                        "UPDATE writes SET state = ?4, attempts = ?5, changed_at = ?6,
                         outcome = coalesce(?7, outcome), maybe_reached = coalesce(?8, maybe_reached),
                         action_id = coalesce(?9, action_id)
                     WHERE id = ?1 AND state = ?2 AND attempts = ?3",
                        params![
                            id,
                            from.state.as_str(),
                            from.attempts,
                            to.state.as_str(),
                            to.attempts,
                            at,
                            outcome,
                            reached,
                            action_id
                        ],
                    )
                })
            })
            .await?;
        Ok(moved == 1)
    }

    async fn list_writes(&self) -> Result<Vec<StoredWrite>, StoreError> {
        self.writes_where("1", String::new()).await
    }

    async fn write_for_action(&self, action_id: &str) -> Result<Option<StoredWrite>, StoreError> {
        let found = self
            .writes_where("action_id = ?1", action_id.to_owned())
            .await?;
        Ok(found.into_iter().next())
    }

    async fn running_writes(&self) -> Result<Vec<StoredWrite>, StoreError> {
        self.writes_where("state = ?1", WriteState::Running.as_str().to_owned())
            .await
    }
}

impl SqliteStateStore {
    /// The writes `condition` holds for (`?1` is `value`), oldest accepted first.
    async fn writes_where(
        &self,
        condition: &'static str,
        value: String,
    ) -> Result<Vec<StoredWrite>, StoreError> {
        let rows = self
            .db
            .call(move |c| {
                let sql = format!(
                    "SELECT {COLUMNS} FROM writes WHERE {condition} ORDER BY accepted_at, id"
                );
                let mut statement = c.prepare(&sql)?;
                let rows = if condition.contains("?1") {
                    statement.query_map([value], kept)?
                } else {
                    statement.query_map([], kept)?
                };
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter().map(stored).collect()
    }
}
