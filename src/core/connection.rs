//! A connection's lifecycle: retired when Nango deleted it, forgotten by an operator, its
//! streams brought back when it is created again.

use crate::core::clock::Clock;
use crate::core::state::ConnectionEvent;
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::core::write::Removal;
use crate::ports::{RecordStore, StateStore, StoreError};

/// What to do with the records of a connection Nango deleted (`CONNECTION_DELETED`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnectionDeletedMode {
    /// Keep them as they are (the default: the copy outlives Nango).
    #[default]
    Keep,
    /// Mark them deleted (`deleted_by = connection_deleted`).
    Tombstone,
    /// Remove them.
    Purge,
}

/// Retires a connection Nango deleted (or an operator forgot): each of its streams is marked
/// `connection_deleted` at `at` (reconciles stop syncing them) and its live records are kept,
/// marked deleted or removed as `mode` says. Returns each stream with how many records changed.
pub async fn retire_connection<R: RecordStore, T: StateStore>(
    records: &R,
    state: &T,
    connection: &ConnectionKey,
    at: &str,
    mode: ConnectionDeletedMode,
    by: &str,
) -> Result<Vec<(StreamKey, u64)>, StoreError> {
    let removal = match mode {
        ConnectionDeletedMode::Keep => None,
        ConnectionDeletedMode::Tombstone => Some(Removal::Tombstone { at, by }),
        ConnectionDeletedMode::Purge => Some(Removal::Purge),
    };
    let mut retired = Vec::new();
    for stream in streams_of(state, connection).await? {
        state.set_connection_deleted(&stream, Some(at)).await?;
        let removed = match removal {
            Some(removal) => records.remove_stream(&stream, removal).await?,
            None => 0,
        };
        tracing::warn!(stream = %stream.encode(), removed, ?mode, by, "connection deleted: the stream is no longer synced");
        retired.push((stream, removed));
    }
    Ok(retired)
}

/// A connection created again (same id) brings its streams back.
pub async fn restore_connection<T: StateStore>(
    state: &T,
    connection: &ConnectionKey,
) -> Result<(), StoreError> {
    for stream in streams_of(state, connection).await? {
        state.set_connection_deleted(&stream, None).await?;
    }
    Ok(())
}

/// The streams the state table knows of a connection (a Scan: connection events are rare).
async fn streams_of<T: StateStore>(
    state: &T,
    connection: &ConnectionKey,
) -> Result<Vec<StreamKey>, StoreError> {
    Ok(state
        .list_streams()
        .await?
        .into_iter()
        .map(|(stream, _)| stream)
        .filter(|stream| stream.connection() == *connection)
        .collect())
}

/// Forgets a connection by hand, as Nango's deletion webhook would: the connection is marked
/// deleted, its streams `connection_deleted`, and their live records marked deleted (or, with
/// `purge`, removed). The operator's word is the reason. Returns each stream with its count.
pub async fn forget_connection<R: RecordStore, T: StateStore>(
    records: &R,
    state: &T,
    connection: &ConnectionKey,
    purge: bool,
    clock: &dyn Clock,
) -> Result<Vec<(StreamKey, u64)>, StoreError> {
    let at = clock.now_rfc3339();
    let event = ConnectionEvent {
        operation: Some("deletion".into()),
        success: true,
        provider: None,
        auth_mode: None,
        environment: None,
        error: Some("forgotten by an operator (nango-sync forget)".into()),
        received_at: at.clone(),
    };
    state.upsert_connection(connection, &event).await?;
    let mode = if purge {
        ConnectionDeletedMode::Purge
    } else {
        ConnectionDeletedMode::Tombstone
    };
    retire_connection(records, state, connection, &at, mode, "operator").await
}
