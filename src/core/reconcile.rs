//! Reconcile: the scheduled job that enqueues a sync of every stream, so that streams whose
//! webhooks were lost catch up. What may follow a stream's sync (the drift check, the sweep and
//! its guard) is in [`crate::core::drift`].

use std::collections::{BTreeMap, HashMap};

use crate::core::clock::Clock;
use crate::core::job::{enqueue_syncs, NangoReport, SyncRequest, Trigger};
use crate::core::stream::StreamKey;
use crate::ports::{
    DiscoveredStream, JobQueue, QueueError, StateStore, StoreError, StreamDiscovery,
};

/// What a reconcile enqueued: a sync for `streams` streams, `new_streams` of them never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub streams: usize,
    pub new_streams: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not enqueue the reconcile's sync jobs: {0}")]
    Enqueue(#[from] QueueError),
}

/// Enqueues a sync of every stream, each in its own group, so that streams whose webhooks were
/// lost catch up: the streams the state table knows, plus those Nango lists (its connections'
/// syncs and models) that never sent a webhook. Each job carries what `/sync/status` said of its
/// stream, for the drift check. Left alone: streams of a deleted connection, and known streams in
/// error whose connection Nango no longer lists.
pub async fn reconcile<S: StreamDiscovery, T: StateStore, Q: JobQueue>(
    source: &S,
    state: &T,
    queue: &Q,
    received_at: &str,
    clock: &dyn Clock,
) -> Result<Reconciled, ReconcileError> {
    let known = state.list_streams().await?;
    let discovered = match source.discover().await {
        Ok(found) => Some(found),
        Err(error) => {
            tracing::warn!(%error, "reconcile: discovery from Nango failed; syncing the known streams only");
            None
        }
    };
    let listed: HashMap<&StreamKey, &DiscoveredStream> = discovered
        .iter()
        .flatten()
        .map(|d| (&d.stream, d))
        .collect();
    let listed_connections: std::collections::HashSet<_> =
        listed.keys().map(|s| s.connection()).collect();
    let mut requests: BTreeMap<StreamKey, SyncRequest> = BTreeMap::new();
    let mut new_streams = 0;
    for (stream, state) in &known {
        if state.connection_deleted_at.is_some() {
            continue;
        }
        let connection_listed = listed_connections.contains(&stream.connection());
        let gone = discovered.is_some()
            && state.outcome == crate::ports::SyncOutcome::Error
            && !connection_listed;
        if gone {
            continue;
        }
        let mut request =
            SyncRequest::new(stream.clone(), state.sync_name.clone().unwrap_or_default());
        // A connection Nango lists whose syncs no longer include the stream: the drift check
        // learns that Nango dropped it, and keeps the copy.
        if discovered.is_some() && connection_listed && !listed.contains_key(stream) {
            request.nango = Some(NangoReport::NotListed);
        }
        requests.insert(stream.clone(), request);
    }
    let deleted: std::collections::HashSet<&StreamKey> = known
        .iter()
        .filter(|(_, s)| s.connection_deleted_at.is_some())
        .map(|(k, _)| k)
        .collect();
    for found in discovered.iter().flatten() {
        if deleted.contains(&found.stream) {
            continue;
        }
        if !known.iter().any(|(s, _)| s == &found.stream) {
            new_streams += 1;
        }
        let request = requests
            .entry(found.stream.clone())
            .or_insert_with(|| SyncRequest::new(found.stream.clone(), found.sync_name.clone()));
        request.nango = Some(NangoReport::Listed(found.sync.clone()));
    }
    // The ids derive from this reconcile run: a redelivered reconcile message enqueues nothing new.
    let count = enqueue_syncs(
        queue,
        requests.into_values().collect(),
        Trigger::Reconcile,
        received_at,
        clock,
    )
    .await?;
    tracing::info!(
        streams = count,
        new_streams,
        "reconcile: a sync enqueued for every stream"
    );
    Ok(Reconciled {
        streams: count,
        new_streams,
    })
}
