//! Reconcile: the scheduled job that enqueues a sync of every stream, so that streams whose
//! webhooks were lost catch up. What may follow a stream's sync (the drift check, the sweep and
//! its guard) is in [`crate::core::drift`].

use std::collections::{BTreeMap, HashMap};

use crate::core::clock::Clock;
use crate::core::job::{messages_for, Job, NangoListing, Trigger};
use crate::core::nango_status::DiscoveredStream;
use crate::core::stream::StreamKey;
use crate::ports::{JobQueue, QueueError, StateStore, StoreError, StreamDiscovery};

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

/// A sync to enqueue: the stream, the sync that feeds it, and what Nango said of it, if asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub stream: StreamKey,
    pub sync_name: String,
    pub nango: Option<NangoListing>,
}

impl SyncRequest {
    pub fn new(stream: StreamKey, sync_name: impl Into<String>) -> Self {
        Self {
            stream,
            sync_name: sync_name.into(),
            nango: None,
        }
    }
}

/// Enqueues a sync job for each request, each in its stream's group, and returns how many. `run`
/// names this batch (e.g. the reconcile's scheduled time): the deduplication ids derive from it,
/// so sending the same batch again within SQS's window enqueues nothing new.
pub async fn enqueue_syncs<Q: JobQueue>(
    queue: &Q,
    requests: Vec<SyncRequest>,
    trigger: Trigger,
    run: &str,
    clock: &dyn Clock,
) -> Result<usize, QueueError> {
    let jobs: Vec<Job> = requests
        .into_iter()
        .map(|r| Job::Sync {
            stream: r.stream,
            sync_name: r.sync_name,
            sync_type: None,
            modified_after: None,
            results: None,
            trigger,
            checkpoints: None,
            nango: r.nango,
            record_count: None,
        })
        .collect();
    let count = jobs.len();
    let marker = format!("{} {run}", trigger.as_str());
    for chunk in messages_for(marker.as_bytes(), jobs, &clock.now_rfc3339()).chunks(100) {
        queue.send(chunk).await?;
    }
    Ok(count)
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
            && state.outcome == crate::core::state::LastSyncStatus::Error
            && !connection_listed;
        if gone {
            continue;
        }
        let mut request =
            SyncRequest::new(stream.clone(), state.sync_name.clone().unwrap_or_default());
        // A connection Nango lists whose syncs no longer include the stream: the drift check
        // learns that Nango dropped it, and keeps the copy.
        if discovered.is_some() && connection_listed && !listed.contains_key(stream) {
            request.nango = Some(NangoListing::NotListed);
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
        request.nango = Some(NangoListing::Listed(found.sync.clone()));
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
