//! The worker: a batch of queued job messages in, the ids of those that failed out.
//!
//! A message that fails is reported alone: the queue redelivers it and, after its receive limit,
//! moves it to the dead-letter queue. FIFO rule: once a message of a group fails, the later
//! messages of that group in the same batch are reported as failures too, unprocessed, so a
//! stream's jobs never run out of order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tracing::Instrument;

use crate::core::clock::Clock;
use crate::core::connection::{restore_connection, retire_connection, ConnectionDeletedMode};
use crate::core::drift::{DriftCheck, DriftSettings, DriftStep};
use crate::core::events::StreamEvent;
use crate::core::job::{
    async_action_id, messages_for, Checkpoints, Job, JobDecodeError, JobMessage, NangoListing,
    Trigger,
};
use crate::core::metrics::{job_requests, JobMetrics};
use crate::core::nango_status::NangoSync;
use crate::core::outcome::{outcome_name, JobOutcome, SyncEnd, SyncSummary};
use crate::core::reconcile::{reconcile, ReconcileError};
use crate::core::state::{ConnectionEvent, StoredEvent, SweepState, SyncReport};
use crate::core::stream::{digest_hex, StreamKey};
use crate::core::sync::{sync_stream, SyncError, Track};
use crate::core::writes::finish::{finish, Finished};
use crate::core::writes::follow::{read_back, FollowError};
use crate::core::writes::state::WriteState;
use crate::core::writes::stored::PendingWrite;
use crate::core::writes::take::{take_until_ended, TakeSettings, Taken};
use crate::ports::{
    DynEventPublisher, JobQueue, MetricsSink, QueueError, ReceivedMessage, RecordSource,
    RecordStore, SourceError, StateStore, StoreError, StreamDiscovery, WriteSender, WriteStore,
};

/// Every stream of a batch side by side (SQS delivers at most 10 messages a batch): the page budget
/// bounds their memory, and Nango's latency is what they overlap (BENCHMARKS.md, "Streams side by
/// side").
pub const DEFAULT_STREAMS_AT_ONCE: usize = 10;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Stop starting new pages this long before the Lambda deadline, then continue in a new message.
    pub deadline_margin: Duration,
    /// The drift check after reconciles' syncs, and its sweep guard.
    pub drift: DriftSettings,
    /// What becomes of a deleted connection's records.
    pub connection_deleted: ConnectionDeletedMode,
    /// Where each job's metrics go; none locally, where the completion line says it all.
    pub metrics: Option<Arc<dyn MetricsSink>>,
    /// Where each sync job's event goes; none unless configured.
    pub events: Option<Arc<dyn DynEventPublisher>>,
    /// The time the worker stamps on what it stores and judges Nango's retention by.
    pub clock: Arc<dyn Clock>,
    /// How many of a batch's streams (FIFO groups) run side by side.
    pub streams_at_once: usize,
    /// How writes to the provider are taken: attempts, and the lease of one being sent.
    pub writes: TakeSettings,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            deadline_margin: Duration::from_secs(60),
            drift: DriftSettings::default(),
            connection_deleted: ConnectionDeletedMode::default(),
            metrics: None,
            events: None,
            clock: crate::core::clock::system(),
            streams_at_once: DEFAULT_STREAMS_AT_ONCE,
            writes: TakeSettings::default(),
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
    /// A write is not through yet (it is accepted, to be sent again) or another worker holds
    /// it: its message comes back.
    #[error("write {id:?} not at an end yet: {why}")]
    WriteNotDone { id: String, why: &'static str },
    /// The id of a kept write came with a different request: nothing ran.
    #[error("write id {0:?} is kept for a different write: nothing was sent; the application must give each write an id of its own")]
    WriteIdReused(String),
}

impl From<FollowError> for JobError {
    fn from(error: FollowError) -> Self {
        match error {
            FollowError::Store(e) => Self::Store(e),
            FollowError::Enqueue(e) => Self::Enqueue(e),
        }
    }
}

impl From<ReconcileError> for JobError {
    fn from(error: ReconcileError) -> Self {
        match error {
            ReconcileError::Store(e) => Self::Store(e),
            ReconcileError::Enqueue(e) => Self::Enqueue(e),
        }
    }
}

impl<S, R, T, Q> WorkerApp<S, R, T, Q>
where
    S: RecordSource + StreamDiscovery + WriteSender,
    R: RecordStore,
    T: StateStore + WriteStore,
    Q: JobQueue,
{
    /// One batch; returns the ids of the messages that failed (to be redelivered). Each FIFO
    /// group's messages run in order, one at a time; different groups (streams) run side by side,
    /// at most [`WorkerSettings::streams_at_once`] at a time. `deadline` is when the run is cut
    /// off (the Lambda invocation's end), one for every group.
    pub async fn handle(
        &self,
        batch: &[ReceivedMessage],
        deadline: Option<Instant>,
    ) -> Vec<String> {
        let stop_at = deadline.map(|d| d.checked_sub(self.settings.deadline_margin).unwrap_or(d));
        // Built up front (a future does nothing until polled): a lazy map here would ask the
        // compiler for more than it can prove about the messages' lifetimes.
        let groups: Vec<_> = groups_in_order(batch)
            .into_iter()
            .map(|group| self.handle_group(group, stop_at))
            .collect();
        let failed: Vec<Vec<String>> = stream::iter(groups)
            .buffer_unordered(self.settings.streams_at_once.max(1))
            .collect()
            .await;
        failed.concat()
    }

    /// One group's messages, in order. Once one fails, the later ones are reported as failures
    /// too, unprocessed, so that the group's jobs never run out of order.
    async fn handle_group(
        &self,
        messages: Vec<&ReceivedMessage>,
        stop_at: Option<Instant>,
    ) -> Vec<String> {
        for (i, message) in messages.iter().enumerate() {
            if !self.handle_message(message, stop_at).await {
                for skipped in &messages[i + 1..] {
                    tracing::warn!(message_id = %skipped.message_id, "skipped: an earlier message of its group failed");
                }
                return messages[i..].iter().map(|m| m.message_id.clone()).collect();
            }
        }
        Vec::new()
    }

    /// One message: runs its job, publishes its event and metrics, logs how it ended. False when
    /// it failed (to be redelivered).
    async fn handle_message(&self, message: &ReceivedMessage, stop_at: Option<Instant>) -> bool {
        let id = &message.message_id;
        // `process` fills in the stream and trigger of a sync job.
        let span = tracing::info_span!(
            "job",
            message_id = %id,
            stream = tracing::field::Empty,
            trigger = tracing::field::Empty
        );
        let started = Instant::now();
        let decoded = JobMessage::decode(&message.body);
        let target = decoded.as_ref().ok().and_then(JobMessage::sync_target);
        let run = async {
            match decoded {
                Ok(job) => self.run(job, stop_at).instrument(span.clone()).await,
                Err(error) => Err(error.into()),
            }
        };
        // The job's own Nango requests, though other groups' jobs run beside it.
        let (result, nango) = job_requests(run).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let event = match (&result, &target) {
            (Ok(outcome), Some((stream, trigger))) => {
                StreamEvent::of_outcome(stream, *trigger, outcome, duration_ms)
            }
            (Ok(JobOutcome::WriteEnded { write, first, .. }), None) => {
                Some(StreamEvent::of_write(write, *first, duration_ms))
            }
            _ => None,
        };
        let event_failed = match event {
            Some(event) => !self.publish(Some(event)).instrument(span.clone()).await,
            None => false,
        };
        if let Some(sink) = &self.settings.metrics {
            let mut metrics = match &result {
                Ok(outcome) => JobMetrics::of_outcome(
                    outcome,
                    outcome_name(outcome),
                    duration_ms,
                    nango,
                    self.settings.clock.now(),
                ),
                Err(_) => JobMetrics::of_failure(duration_ms, nango),
            };
            metrics.event_failed = event_failed;
            sink.job_done(&metrics);
        }
        match result {
            Ok(outcome) => {
                span.in_scope(|| log_done(&outcome, duration_ms));
                true
            }
            Err(error) => {
                let (class, remedy) = error.class_and_remedy();
                span.in_scope(|| {
                    tracing::error!(
                        %error,
                        class,
                        remedy,
                        duration_ms,
                        "job failed; it will be redelivered"
                    )
                });
                false
            }
        }
    }

    /// Publishes a sync job's event, if there is one and a publisher; false when the publish
    /// failed (logged: the sync stands, and the job is done).
    async fn publish(&self, event: Option<StreamEvent>) -> bool {
        let (Some(events), Some(event)) = (&self.settings.events, event) else {
            return true;
        };
        match events.publish_boxed(&event).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, detail_type = event.detail_type, "stream event not published; the sync stands");
                false
            }
        }
    }

    /// One job message, from its body.
    pub async fn process(
        &self,
        body: &str,
        stop_at: Option<Instant>,
    ) -> Result<JobOutcome, JobError> {
        self.run(JobMessage::decode(body)?, stop_at).await
    }

    /// One decoded job message.
    async fn run(
        &self,
        message: JobMessage,
        stop_at: Option<Instant>,
    ) -> Result<JobOutcome, JobError> {
        let received_at = message.received_at;
        match message.job {
            Job::Sync {
                stream,
                sync_name,
                trigger,
                checkpoints,
                nango,
                record_count,
                ..
            } => {
                // Messages from before `nango` carry the count alone.
                let nango = nango.or_else(|| {
                    record_count.map(|count| {
                        NangoListing::Listed(NangoSync {
                            record_count: Some(count),
                            ..NangoSync::default()
                        })
                    })
                });
                let span = tracing::Span::current();
                span.record("stream", tracing::field::display(stream.encode()));
                span.record("trigger", trigger.as_str());
                let job = SyncJob {
                    stream: &stream,
                    sync_name: &sync_name,
                    trigger,
                    received_at: &received_at,
                    checkpoints: checkpoints.as_ref(),
                    nango: nango.as_ref(),
                };
                self.sync(job, stop_at).await
            }
            Job::Reconcile {} => {
                let done = reconcile(
                    &self.source,
                    &self.state,
                    &self.queue,
                    &received_at,
                    &*self.settings.clock,
                )
                .await?;
                // Boxed, as the other rare jobs' parts: `run`'s future holds only the largest arm.
                let actions_checked = Box::pin(self.check_running_actions(&received_at)).await?;
                Ok(JobOutcome::Reconciled {
                    streams: done.streams,
                    new_streams: done.new_streams,
                    actions_checked,
                })
            }
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
                    at: self.settings.clock.now_rfc3339(),
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
                if let Some(at) = event.deleted_at() {
                    let mode = self.settings.connection_deleted;
                    retire_connection(
                        &self.records,
                        &self.state,
                        &connection,
                        at,
                        mode,
                        "connection_deleted",
                    )
                    .await?;
                } else if event.success && event.operation.as_deref() == Some("creation") {
                    restore_connection(&self.state, &connection).await?;
                }
                Ok(JobOutcome::ConnectionUpdated)
            }
            Job::Write(request) => {
                let taken = Box::pin(take_until_ended(
                    &self.state,
                    &self.source,
                    &*self.settings.clock,
                    &request,
                    self.settings.writes,
                    stop_at,
                ))
                .await?;
                if let Some(write) = taken.moved() {
                    Box::pin(self.show_on_record(write)).await;
                }
                let ended_now = matches!(taken, Taken::Ended(_));
                match taken {
                    Taken::Ended(write) | Taken::EndedBefore(write) => {
                        let first = ended_now;
                        let clock = &*self.settings.clock;
                        let read_back =
                            read_back(&self.queue, &self.state, &self.source, clock, &write)
                                .await?;
                        Ok(JobOutcome::WriteEnded {
                            write,
                            read_back,
                            first,
                        })
                    }
                    Taken::Again { .. } => Err(JobError::WriteNotDone {
                        id: request.id,
                        why: "to be sent again after the invocation's deadline",
                    }),
                    Taken::Busy => Err(JobError::WriteNotDone {
                        id: request.id,
                        why: "another worker is sending it",
                    }),
                    Taken::IdReused(_) => Err(JobError::WriteIdReused(request.id)),
                    Taken::Running(write) => Ok(JobOutcome::WriteWaiting {
                        id: write.request.id,
                        state: write.position.state,
                    }),
                }
            }
            Job::ActionResult { action_id } => Ok(Box::pin(self.end_action(&action_id))
                .await?
                .unwrap_or(JobOutcome::ActionNotAwaited)),
            Job::Event { kind, webhook } => {
                let body = webhook.get().to_owned();
                let event = StoredEvent {
                    kind,
                    connection: crate::core::job::event_connection(&webhook),
                    id: digest_hex(body.as_bytes()),
                    received_at,
                    body,
                };
                self.state.store_event(&event).await?;
                // An async action finished: the write that ran it learns how.
                if let Some(action_id) = (event.kind == "async_action")
                    .then(|| async_action_id(&event.body))
                    .flatten()
                {
                    if let Some(outcome) = Box::pin(self.end_action(&action_id)).await? {
                        return Ok(outcome);
                    }
                }
                Ok(JobOutcome::EventStored)
            }
        }
    }

    /// Asks Nango how the async action `action_id` came to, for the write running it; `None`
    /// when no write ran it (an action the application started itself).
    async fn end_action(&self, action_id: &str) -> Result<Option<JobOutcome>, JobError> {
        let Some(write) = self.state.write_for_action(action_id).await? else {
            return Ok(None);
        };
        let clock = &*self.settings.clock;
        let max_attempts = self.settings.writes.max_attempts;
        let finished = finish(&self.state, &self.source, clock, write, max_attempts).await?;
        if let Finished::Ended(write) | Finished::Again(write) = &finished {
            self.show_on_record(write).await;
        }
        Ok(match finished {
            Finished::Ended(write) => {
                let read_back =
                    read_back(&self.queue, &self.state, &self.source, clock, &write).await?;
                Some(JobOutcome::WriteEnded {
                    write,
                    read_back,
                    first: true,
                })
            }
            // Accepted again, to be sent anew. Also when found so: a delivery after a worker
            // stopped (or the queue refused) between the move and this message, which would
            // otherwise leave the write accepted with nothing to send it.
            Finished::Again(write) | Finished::NotRunning(write)
                if write.position.state == WriteState::Accepted =>
            {
                // Its request went out once as a message of its own: it goes again as one.
                let id = &write.request.id;
                let marker = format!("again {id} {}", write.position.attempts);
                let job = Job::Write(Box::new(write.request.clone()));
                let now = clock.now_rfc3339();
                self.queue
                    .send(&messages_for(marker.as_bytes(), vec![job], &now))
                    .await?;
                Some(JobOutcome::WriteWaiting {
                    id: id.clone(),
                    state: write.position.state,
                })
            }
            Finished::Again(write) | Finished::StillRunning(write) => {
                Some(JobOutcome::WriteWaiting {
                    id: write.request.id,
                    state: write.position.state,
                })
            }
            // Ended before: a repeated webhook, or a delivery after a worker stopped between the
            // end and its read-back or event. Both go again, as for a duplicate request.
            Finished::NotRunning(write) if write.position.state.is_terminal() => {
                let read_back =
                    read_back(&self.queue, &self.state, &self.source, clock, &write).await?;
                Some(JobOutcome::WriteEnded {
                    write,
                    read_back,
                    first: false,
                })
            }
            Finished::NotRunning(_) => None,
        })
    }

    /// Shows where `write` is on the stored record it concerns (read your writes), if it names
    /// one and the copy has it. The write's own state item is what counts: a mark not written is
    /// logged, and the job goes on.
    async fn show_on_record(&self, write: &crate::core::writes::stored::StoredWrite) {
        let Some((stream, id, mark)) = PendingWrite::of(write) else {
            return;
        };
        if let Err(error) = self.records.mark_pending_write(&stream, id, &mark).await {
            tracing::warn!(%error, write_id = %mark.id, "pending write not shown on its record");
        }
    }

    /// Queues a job asking for the result of each async action still running, in case its
    /// webhook was lost; how many.
    async fn check_running_actions(&self, received_at: &str) -> Result<usize, JobError> {
        let running = self.state.running_writes().await?;
        let jobs: Vec<Job> = running
            .into_iter()
            .filter_map(|w| w.action_id)
            .map(|action_id| Job::ActionResult { action_id })
            .collect();
        let count = jobs.len();
        if count > 0 {
            let marker = format!("check actions {received_at}");
            let messages = messages_for(marker.as_bytes(), jobs, received_at);
            self.queue.send(&messages).await?;
        }
        Ok(count)
    }

    async fn sync(
        &self,
        job: SyncJob<'_>,
        stop_at: Option<Instant>,
    ) -> Result<JobOutcome, JobError> {
        let stream = job.stream;
        let result = self.bring_up_to_date(&job, stop_at).await;
        let mut report = SyncReport {
            sync_name: job.sync_name.to_owned(),
            at: self.settings.clock.now_rfc3339(),
            webhook_at: (job.trigger == Trigger::Webhook).then(|| job.received_at.to_owned()),
            error: None,
        };
        match result {
            Ok(summary) if summary.end != SyncEnd::UpToDate => {
                if summary.end == SyncEnd::CheckGoesOn {
                    // The sync itself is done: the stream is up to date.
                    self.state.report_sync(stream, &report).await?;
                }
                let continuation = Job::Sync {
                    stream: stream.clone(),
                    sync_name: job.sync_name.to_owned(),
                    sync_type: None,
                    modified_after: None,
                    results: None,
                    trigger: Trigger::Continuation,
                    checkpoints: job.checkpoints.cloned(),
                    // The drift check waits for the stream to be up to date: it goes on too.
                    nango: job.nango.filter(|_| summary.sweep.is_none()).cloned(),
                    record_count: None,
                };
                // Each continuation needs a deduplication id of its own: one that made no
                // progress (the deadline came before the first page) must not be taken by SQS
                // for the previous one and dropped, which would stall the stream.
                let marker = format!("continue {} {}", report.at, fastrand::u64(..));
                let messages = messages_for(marker.as_bytes(), vec![continuation], &report.at);
                self.queue.send(&messages).await?;
                let why = match summary.end {
                    SyncEnd::CheckGoesOn => "drift check goes on in a job of its own",
                    _ => "deadline near",
                };
                tracing::info!(stream = %stream.encode(), pages = summary.pages, "{why}; continuation enqueued");
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
        job: &SyncJob<'_>,
        stop_at: Option<Instant>,
    ) -> Result<SyncSummary, SyncError> {
        let stream = job.stream;
        let (source, records, state) = (&self.source, &self.records, &self.state);
        if job.trigger == Trigger::Webhook {
            self.note_pass(stream, job).await?;
        }
        let mut summary = sync_stream(source, records, state, stream, Track::Main, stop_at).await?;
        if summary.end == SyncEnd::DeadlineReached {
            return Ok(summary);
        }
        let stored = state.get_stream(stream).await?.unwrap_or_default();
        if stored.connection_deleted_at.is_some() {
            return Ok(summary);
        }
        let drift = DriftCheck {
            source,
            records,
            state,
            settings: &self.settings.drift,
            until: stop_at,
            clock: &*self.settings.clock,
            may_count: job.trigger != Trigger::Reconcile,
        };
        let sweep_state = match (stored.sweep.clone(), job.nango) {
            (Some(sweep), _) => sweep,
            (None, Some(report)) if self.settings.drift.enabled => {
                match drift.check_drift(stream, report, &summary, &stored).await? {
                    DriftStep::Sweep(sweep) => sweep,
                    DriftStep::Settled => return Ok(summary),
                    DriftStep::GoesOn => {
                        summary.end = SyncEnd::CheckGoesOn;
                        return Ok(summary);
                    }
                }
            }
            _ => return Ok(summary),
        };
        // A sweep an earlier release began stamped the records it read: with no notes of its
        // first pages, it starts over (what they would leave unseen proves nothing).
        let sweep_state = if sweep_state.notes_pages {
            sweep_state
        } else {
            let restarted = SweepState {
                cursor: None,
                notes_pages: true,
                ..sweep_state
            };
            state.begin_sweep(stream, &restarted).await?;
            tracing::info!(stream = %stream.encode(), sweep = %restarted.id, "sweep begun by an earlier release starts over, noting its pages");
            restarted
        };
        let id = sweep_state.id.as_str();
        let mut sweep =
            sync_stream(source, records, state, stream, Track::Sweep(id), stop_at).await?;
        if sweep.end == SyncEnd::DeadlineReached {
            summary.end = SyncEnd::DeadlineReached;
            summary.sweep = Some(Box::new(sweep));
            return Ok(summary);
        }
        let Some((ended, written)) = drift.end_sweep(stream, &sweep_state).await? else {
            // Nango asked for a wait the deadline does not leave: the sweep ends in a later job.
            summary.end = SyncEnd::DeadlineReached;
            summary.sweep = Some(Box::new(sweep));
            return Ok(summary);
        };
        sweep.deleted += ended.tombstoned;
        // What the sweep wrote: the records the copy missed or held at an older version.
        sweep.written += written;
        summary.sweep = Some(Box::new(sweep));
        summary.sweep_outcome = Some(ended.outcome);
        Ok(summary)
    }

    /// Remembers whether the webhook's checkpointed pass is finished, and when its latest slice
    /// was reported: drift checks wait for the pass to end.
    async fn note_pass(&self, stream: &StreamKey, job: &SyncJob<'_>) -> Result<(), StoreError> {
        let open = job.checkpoints.is_some_and(Checkpoints::pass_unfinished);
        let since = open.then(|| job.received_at.to_owned());
        let mut notes = match self.state.get_stream(stream).await? {
            Some(stored) => stored.nango,
            None if since.is_none() => return Ok(()),
            None => Default::default(),
        };
        if since == notes.pass_open_since {
            return Ok(());
        }
        notes.pass_open_since = since;
        self.state.set_nango_notes(stream, &notes).await
    }
}

/// The batch's messages by FIFO group, each group's in batch order, the groups in the order
/// they first appear. A message without a group (never from a FIFO queue) is a group of its own.
fn groups_in_order(batch: &[ReceivedMessage]) -> Vec<Vec<&ReceivedMessage>> {
    let mut groups: Vec<(&str, Vec<&ReceivedMessage>)> = Vec::new();
    for message in batch {
        let group = message.group_id.as_deref().unwrap_or(&message.message_id);
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, messages)) => messages.push(message),
            None => groups.push((group, vec![message])),
        }
    }
    groups.into_iter().map(|(_, messages)| messages).collect()
}

/// A sync job's fields, as the worker uses them.
struct SyncJob<'a> {
    stream: &'a StreamKey,
    sync_name: &'a str,
    trigger: Trigger,
    received_at: &'a str,
    checkpoints: Option<&'a Checkpoints>,
    nango: Option<&'a NangoListing>,
}

/// A job's completion line: what it did, in fields an operator can query (CloudWatch Logs
/// Insights on Lambda's JSON logs). The span adds the message id, and the stream and trigger of a
/// sync job.
fn log_done(outcome: &JobOutcome, duration_ms: u64) {
    let outcome_name = outcome_name(outcome);
    match outcome {
        JobOutcome::Synced(summary) | JobOutcome::Continued(summary) => tracing::info!(
            outcome = outcome_name,
            pages = summary.pages,
            added = summary.added,
            updated = summary.updated,
            deleted = summary.deleted,
            pruned = summary.pruned,
            rejected = summary.rejected,
            unchanged = summary.unchanged,
            cursor_moved = summary.cursor_moved,
            swept = summary.sweep.as_ref().map_or(0, |sweep| sweep.deleted),
            duration_ms,
            "job done"
        ),
        JobOutcome::WriteWaiting { id, state } => tracing::info!(
            outcome = outcome_name,
            write_id = %id,
            state = state.as_str(),
            duration_ms,
            "job done"
        ),
        JobOutcome::WriteEnded {
            write,
            read_back,
            first,
        } => tracing::info!(
            outcome = outcome_name,
            write_id = %write.request.id,
            state = write.position.state.as_str(),
            attempts = write.position.attempts,
            read_back,
            first,
            duration_ms,
            "job done"
        ),
        _ => tracing::info!(outcome = outcome_name, duration_ms, "job done"),
    }
}

impl JobError {
    /// What kind of failure, as a word to filter on, and what to do about it if it does not pass
    /// by itself on redelivery.
    pub fn class_and_remedy(&self) -> (&'static str, &'static str) {
        match self {
            Self::Malformed(_) => ("malformed_message", "not a nango-sync job: after its receives it moves to the dead-letter queue; inspect it there"),
            Self::Sync(SyncError::Source(SourceError::Deferred { .. })) => ("nango_deferred", "none: the job runs again after Nango's wait"),
            Self::Sync(SyncError::Source(SourceError::Transient { .. })) => ("nango_unavailable", "usually none; if it persists, check Nango's status and the account's rate limit"),
            Self::Sync(SyncError::Source(SourceError::Permanent { .. })) => ("nango_refused", "the error says what to change; the stream stays in error until then"),
            Self::Sync(SyncError::Store(_)) | Self::Store(_) => ("store_unavailable", "usually none; if it persists, check the tables exist and the function may write them"),
            Self::Enqueue(_) => ("queue_unavailable", "usually none; if it persists, check the queue exists and the function may send to it"),
            Self::WriteNotDone { .. } => ("write_not_done", "none: the write is taken again when its message comes back"),
            Self::WriteIdReused(_) => ("write_id_reused", "give each write an id of its own: after its receives the message moves to the dead-letter queue; nothing was sent"),
        }
    }
}
