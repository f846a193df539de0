//! The worker function: an SQS batch in, one outcome per message out.
//!
//! A message that fails is reported in `batch_item_failures`, alone: SQS redelivers it and, after
//! maxReceiveCount, moves it to the dead-letter queue. FIFO rule: once a message of a group fails,
//! the later messages of that group in the same batch are reported as failures too, unprocessed,
//! so a stream's jobs never run out of order.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::Instrument;

use crate::job::{messages_for, now_rfc3339, Job, JobDecodeError, JobMessage, Trigger};
use crate::ops::{enqueue_syncs, SyncRequest};
use crate::ports::{
    ConnectionEvent, JobQueue, QueueError, RecordSource, RecordStore, StateStore, StoreError,
    StoredEvent, StreamDiscovery, StreamStatus, SweepResult, SyncReport,
};
use crate::stream::{digest_hex, StreamKey};
use crate::sync::{sync_stream, SyncEnd, SyncError, SyncSummary, Track};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Stop starting new pages this long before the Lambda deadline, then continue in a new message.
    pub deadline_margin: Duration,
    /// Compare each reconciled stream's live count with Nango's `recordCount`, and sweep on drift.
    pub drift_check: bool,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            deadline_margin: Duration::from_secs(60),
            drift_check: true,
        }
    }
}

/// Everything the worker needs, built once at cold start and borrowed per batch.
#[derive(Debug)]
pub struct WorkerApp<S, R, T, Q> {
    pub source: S,
    pub records: R,
    pub state: T,
    /// Where continuations of long backfills go (the same FIFO queue).
    pub queue: Q,
    pub settings: WorkerSettings,
}

/// What became of one message that did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Synced(SyncSummary),
    /// The deadline came first; a continuation was enqueued.
    Continued(SyncSummary),
    /// Retrying cannot help (connection gone, key refused, cursor rejected): recorded on the stream.
    StreamInError(String),
    SyncFailureRecorded,
    ConnectionUpdated,
    EventStored,
    /// A sync was enqueued for each stream; `new_streams` of them had never been seen.
    Reconciled {
        streams: usize,
        new_streams: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("malformed job message: {0}")]
    Malformed(#[from] JobDecodeError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A continuation or the reconcile's sync jobs could not be enqueued.
    #[error("could not enqueue follow-up jobs: {0}")]
    Enqueue(#[from] QueueError),
}

impl<S, R, T, Q> WorkerApp<S, R, T, Q>
where
    S: RecordSource + StreamDiscovery,
    R: RecordStore,
    T: StateStore,
    Q: JobQueue,
{
    /// The Lambda entry point. `deadline` is when the invocation is cut off.
    pub async fn handle(&self, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
        let stop_at = deadline.map(|d| d.checked_sub(self.settings.deadline_margin).unwrap_or(d));
        let mut failed_groups = HashSet::new();
        let mut response = SqsBatchResponse::default();
        for message in &event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let group = group_of(message);
            if failed_groups.contains(&group) {
                tracing::warn!(message_id = %id, "skipped: an earlier message of its group failed");
                response.batch_item_failures.push(failure(id));
                continue;
            }
            let span = tracing::info_span!("job", message_id = %id);
            let body = message.body.as_deref().unwrap_or("");
            match self.process(body, stop_at).instrument(span.clone()).await {
                Ok(outcome) => {
                    span.in_scope(|| tracing::info!(outcome = ?outcome_name(&outcome), "job done"))
                }
                Err(error) => {
                    span.in_scope(|| tracing::error!(%error, "job failed; SQS will redeliver it"));
                    failed_groups.insert(group);
                    response.batch_item_failures.push(failure(id));
                }
            }
        }
        response
    }

    /// One job message, from its body.
    pub async fn process(
        &self,
        body: &str,
        stop_at: Option<Instant>,
    ) -> Result<JobOutcome, JobError> {
        let message = JobMessage::decode(body)?;
        let received_at = message.received_at;
        match message.job {
            Job::Sync {
                stream,
                sync_name,
                trigger,
                record_count,
                ..
            } => {
                let webhook_at = (trigger == Trigger::Webhook).then_some(received_at);
                self.sync(&stream, &sync_name, webhook_at, record_count, stop_at)
                    .await
            }
            Job::Reconcile {} => self.reconcile(&received_at).await,
            Job::SyncFailed {
                stream,
                sync_name,
                error,
                ..
            } => {
                let detail = error
                    .map(|e| format!("{}: {}", e.kind, e.description))
                    .unwrap_or_else(|| "no details".into());
                let report = SyncReport {
                    sync_name,
                    at: now_rfc3339(),
                    webhook_at: Some(received_at),
                    error: Some(format!("sync failed in Nango ({detail})")),
                };
                self.state.report_sync(&stream, &report).await?;
                Ok(JobOutcome::SyncFailureRecorded)
            }
            Job::Connection {
                connection,
                operation,
                success,
                provider,
                auth_mode,
                environment,
                error,
            } => {
                let event = ConnectionEvent {
                    operation,
                    success,
                    provider,
                    auth_mode,
                    environment,
                    error: error.map(|e| format!("{}: {}", e.kind, e.description)),
                    received_at,
                };
                self.state.upsert_connection(&connection, &event).await?;
                Ok(JobOutcome::ConnectionUpdated)
            }
            Job::Event { kind, webhook } => {
                let body = webhook.get().to_owned();
                let event = StoredEvent {
                    kind,
                    connection: crate::job::event_connection(&webhook),
                    id: digest_hex(body.as_bytes()),
                    received_at,
                    body,
                };
                self.state.store_event(&event).await?;
                Ok(JobOutcome::EventStored)
            }
        }
    }

    /// Enqueues a sync of every stream, each in its own group, so that streams whose webhooks
    /// were lost catch up: the streams the state table knows, plus those Nango lists (its
    /// connections' syncs and models) that never sent a webhook. A known stream in error that Nango
    /// no longer lists (its connection is gone) is left alone.
    async fn reconcile(&self, received_at: &str) -> Result<JobOutcome, JobError> {
        let known = self.state.list_streams().await?;
        let discovered = match self.source.discover().await {
            Ok(found) => Some(found),
            Err(error) => {
                tracing::warn!(%error, "reconcile: discovery from Nango failed; syncing the known streams only");
                None
            }
        };
        let listed: std::collections::HashMap<&StreamKey, &crate::ports::DiscoveredStream> =
            discovered
                .iter()
                .flatten()
                .map(|d| (&d.stream, d))
                .collect();
        let mut requests: std::collections::BTreeMap<StreamKey, SyncRequest> =
            std::collections::BTreeMap::new();
        for (stream, state) in &known {
            let gone = discovered.is_some()
                && state.status == StreamStatus::Error
                && !listed.contains_key(stream);
            if !gone {
                let name = state.sync_name.clone().unwrap_or_default();
                requests.insert(stream.clone(), SyncRequest::new(stream.clone(), name));
            }
        }
        let mut new_streams = 0;
        for found in discovered.iter().flatten() {
            if !known.iter().any(|(s, _)| s == &found.stream) {
                new_streams += 1;
            }
            let request = requests
                .entry(found.stream.clone())
                .or_insert_with(|| SyncRequest::new(found.stream.clone(), found.sync_name.clone()));
            request.record_count = found.record_count;
        }
        // The ids derive from this reconcile run: a redelivered reconcile message enqueues nothing new.
        let count = enqueue_syncs(
            &self.queue,
            requests.into_values().collect(),
            Trigger::Reconcile,
            received_at,
        )
        .await?;
        tracing::info!(
            streams = count,
            new_streams,
            "reconcile: a sync enqueued for every stream"
        );
        Ok(JobOutcome::Reconciled {
            streams: count,
            new_streams,
        })
    }

    async fn sync(
        &self,
        stream: &StreamKey,
        sync_name: &str,
        webhook_at: Option<String>,
        record_count: Option<u64>,
        stop_at: Option<Instant>,
    ) -> Result<JobOutcome, JobError> {
        let result = self.bring_up_to_date(stream, record_count, stop_at).await;
        let mut report = SyncReport {
            sync_name: sync_name.to_owned(),
            at: now_rfc3339(),
            webhook_at,
            error: None,
        };
        match result {
            Ok(summary) if summary.end == SyncEnd::DeadlineReached => {
                let continuation = Job::Sync {
                    stream: stream.clone(),
                    sync_name: sync_name.to_owned(),
                    sync_type: None,
                    modified_after: None,
                    results: None,
                    trigger: Trigger::Continuation,
                    // The drift check waits for the stream to be up to date: it goes on too.
                    record_count: record_count.filter(|_| summary.sweep.is_none()),
                };
                // Each continuation needs a deduplication id of its own: one that made no
                // progress (the deadline came before the first page) must not be taken by SQS
                // for the previous one and dropped, which would stall the stream.
                let marker = format!("continue {} {}", report.at, fastrand::u64(..));
                let messages = messages_for(marker.as_bytes(), vec![continuation], &report.at);
                self.queue.send(&messages).await?;
                tracing::info!(stream = %stream.encode(), pages = summary.pages, "deadline near; continuation enqueued");
                Ok(JobOutcome::Continued(summary))
            }
            Ok(summary) => {
                self.state.report_sync(stream, &report).await?;
                Ok(JobOutcome::Synced(summary))
            }
            Err(error) if !error.is_retryable() => {
                report.error = Some(error.to_string());
                tracing::error!(stream = %stream.encode(), %error, "stream in error; not retried");
                self.state.report_sync(stream, &report).await?;
                Ok(JobOutcome::StreamInError(error.to_string()))
            }
            Err(error) => {
                report.error = Some(format!("will retry: {error}"));
                if let Err(e) = self.state.report_sync(stream, &report).await {
                    tracing::warn!(error = %e, "could not record the error on the stream");
                }
                Err(error.into())
            }
        }
    }

    /// The normal sync; then, if a sweep is under way or the drift check starts one, the sweep.
    async fn bring_up_to_date(
        &self,
        stream: &StreamKey,
        record_count: Option<u64>,
        stop_at: Option<Instant>,
    ) -> Result<SyncSummary, SyncError> {
        let (source, records, state) = (&self.source, &self.records, &self.state);
        let mut summary = sync_stream(source, records, state, stream, Track::Main, stop_at).await?;
        if summary.end == SyncEnd::DeadlineReached {
            return Ok(summary);
        }
        let stored = state.get_stream(stream).await?.unwrap_or_default();
        let sweep_state = match (stored.sweep, record_count) {
            (Some(sweep), _) => sweep,
            (None, Some(nango_count)) if self.settings.drift_check => {
                match self
                    .check_drift(stream, nango_count, &summary, stored.last_sweep)
                    .await?
                {
                    Some(sweep) => sweep,
                    None => return Ok(summary),
                }
            }
            _ => return Ok(summary),
        };
        let id = sweep_state.id.as_str();
        let mut sweep =
            sync_stream(source, records, state, stream, Track::Sweep(id), stop_at).await?;
        if sweep.end == SyncEnd::DeadlineReached {
            summary.end = SyncEnd::DeadlineReached;
            summary.sweep = Some(Box::new(sweep));
            return Ok(summary);
        }
        let at = now_rfc3339();
        let tombstoned = records.tombstone_unseen(stream, id, &at).await?;
        let live_count = records.count_live(stream).await?;
        let result = SweepResult {
            finished_at: at,
            nango_count: sweep_state.nango_count,
            live_count,
            tombstoned,
        };
        state.end_sweep(stream, id, &result).await?;
        tracing::info!(stream = %stream.encode(), tombstoned, live_count, "sweep finished: records Nango no longer has are marked deleted");
        sweep.deleted += tombstoned;
        summary.sweep = Some(Box::new(sweep));
        Ok(summary)
    }

    /// Compares the stream's live count with Nango's `recordCount` once the stream is up to date.
    /// A mismatch is confirmed with a fresh count from Nango, taken while no record changed after
    /// our cursor, before a sweep starts; the sweep begun is returned. A mismatch that a finished sweep
    /// already left as it is (Nango's count is maintained incrementally and can be off) does not
    /// start another sweep.
    async fn check_drift(
        &self,
        stream: &StreamKey,
        nango_count: u64,
        summary: &SyncSummary,
        last_sweep: Option<SweepResult>,
    ) -> Result<Option<crate::ports::SweepState>, SyncError> {
        let live = self.records.count_live(stream).await?;
        if live == nango_count {
            return Ok(None);
        }
        if last_sweep.is_some_and(|s| s.nango_count == nango_count && s.live_count == live) {
            tracing::debug!(stream = %stream.encode(), live, nango_count, "count drift unchanged since the last sweep; not sweeping again");
            return Ok(None);
        }
        let Some(fresh) = self.source.record_count(stream).await? else {
            return Ok(None);
        };
        let quiet = self
            .source
            .fetch_page(stream, summary.cursor.as_deref())
            .await?
            .records
            .is_empty();
        if !quiet || fresh == live {
            // Records changed since the reconcile counted them: the next reconcile checks again.
            return Ok(None);
        }
        let now = now_rfc3339();
        let sweep = crate::ports::SweepState {
            id: format!("sweep {now}"),
            cursor: None,
            started_at: now,
            nango_count: fresh,
        };
        tracing::warn!(stream = %stream.encode(), live, nango_count = fresh, "live count differs from Nango's recordCount; sweeping the stream");
        self.state.begin_sweep(stream, &sweep).await?;
        Ok(Some(sweep))
    }
}

fn group_of(message: &SqsMessage) -> String {
    message
        .attributes
        .get("MessageGroupId")
        .cloned()
        .or_else(|| message.message_id.clone())
        .unwrap_or_default()
}

fn failure(id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = id;
    f
}

fn outcome_name(outcome: &JobOutcome) -> &'static str {
    match outcome {
        JobOutcome::Synced(_) => "synced",
        JobOutcome::Continued(_) => "continued",
        JobOutcome::StreamInError(_) => "stream_in_error",
        JobOutcome::SyncFailureRecorded => "sync_failure_recorded",
        JobOutcome::ConnectionUpdated => "connection_updated",
        JobOutcome::EventStored => "event_stored",
        JobOutcome::Reconciled { .. } => "reconciled",
    }
}
