//! The chaos suite: the whole pipeline (signed webhook -> endpoint -> queue -> worker -> store)
//! against the simulated Nango and moto's DynamoDB (through the fault proxy), over seeded random
//! schedules. Faults: Nango 5xx, 429s, resets, truncated and slow answers; DynamoDB throttling,
//! 500s, UnprocessedItems and resets; queue send failures; the worker killed between any two of
//! its writes and restarted; webhooks dropped, duplicated, delayed and reordered; the signing key
//! rotated mid-run; records added, updated, deleted, undeleted, pruned and a cache wiped while
//! syncing. After quiescence and one reconcile, every stream must equal Nango's truth, its cursor
//! must be its last record's, and no cursor may ever have moved backwards. Writes to the
//! provider go through it all too (sent twice now and then, applied and never answered, rate
//! limited, refused, their worker killed mid-send): each must end in one state, none that is not
//! safe to repeat may reach the provider twice, and a succeeded one must be read back.
//!
//! `CHAOS_SCHEDULES` (default 8) and `CHAOS_SEED` (default 1, the first schedule's seed) set the
//! run; a failing schedule prints its seed, and `CHAOS_SEED=<seed> CHAOS_SCHEDULES=1` replays it.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lambda_http::http::{HeaderMap, HeaderValue, Method};
use nango_sync::adapters::aws::dynamodb::{create_table, DynamoRecordStore, DynamoStateStore};
use nango_sync::adapters::nango::NangoClient;
use nango_sync::adapters::sqlite::{QueueSettings, SqliteDb, SqliteQueue};
use nango_sync::core::job::{reconcile_message, JobMessage};
use nango_sync::core::record::NangoRecord;
use nango_sync::core::seen::{Seen, Stored};
use nango_sync::core::signature::{sign, SigningKey, Verifier, HMAC_HEADER};
use nango_sync::core::state::{
    ConnectionEvent, HeldSweep, NangoNotes, StoredEvent, StreamState, StreamStatus, SweepResult,
    SweepState, SyncReport,
};
use nango_sync::core::stream::{ConnectionKey, StreamKey};
use nango_sync::core::webhook::WebhookApp;
use nango_sync::core::worker::{WorkerApp, WorkerSettings};
use nango_sync::core::write::{RejectedRecord, Removal, WriteReport};
use nango_sync::core::writes::request::WriteRequest;
use nango_sync::core::writes::state::WriteState;
use nango_sync::core::writes::stored::{Accept, Move, StoredWrite};
use nango_sync::core::writes::take::TakeSettings;
use nango_sync::local::backend::Store;
use nango_sync::ports::OutgoingMessage;
use nango_sync::ports::{
    JobConsumer, JobQueue, QueueError, RecordStore, StateStore, StoreError, WriteStore,
};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::writes::WriteFault;
use nango_sync::simulator::{decode_cursor, webhooks, Changes, Simulator};
use serde_json::{json, Value};

use crate::aws::fault_proxy::FaultProxy;
use crate::common::{
    fast_writes, moto_endpoint, moto_sdk_config, nango_client, same_content, unique_name,
};

/// What every schedule adds up to (RELIABILITY.md quotes a run).
#[derive(Debug, Default)]
struct Tally {
    schedules: AtomicU64,
    webhooks: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
    send_failures: AtomicU64,
    kills: AtomicU64,
    nango_faults: AtomicU64,
    dynamo_faults: AtomicU64,
    key_rotations: AtomicU64,
    wipes: AtomicU64,
    purges: AtomicU64,
    sliced_passes: AtomicU64,
    reconciles: AtomicU64,
    records_checked: AtomicU64,
    records_lost: AtomicU64,
    records_wrongly_deleted: AtomicU64,
    jobs: AtomicU64,
    writes: AtomicU64,
    writes_succeeded: AtomicU64,
    writes_failed: AtomicU64,
    writes_unknown: AtomicU64,
    /// Writes sent as async actions, and their webhooks Nango sent.
    async_actions: AtomicU64,
    action_webhooks: AtomicU64,
    /// Writes not safe to repeat that reached the provider twice: must stay 0.
    writes_applied_twice: AtomicU64,
}

/// Stops the worker between two of its writes: the step counter reaches zero, the worker's future
/// never resumes, and the runner drops it, as a killed process would stop.
#[derive(Debug, Default)]
struct KillSwitch {
    countdown: AtomicI64,
    fired: AtomicBool,
}

impl KillSwitch {
    fn arm(&self, steps: i64) {
        self.fired.store(false, Ordering::SeqCst);
        self.countdown.store(steps, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.countdown.store(-1, Ordering::SeqCst);
    }

    async fn step(&self) {
        if self.countdown.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.fired.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
    }
}

/// The worker's store, with kill points around every write and a check that cursors only move
/// forward in Nango's order.
#[derive(Debug, Clone)]
struct ChaosStore {
    inner: Store,
    switch: Arc<KillSwitch>,
    backwards: Arc<Mutex<Vec<String>>>,
    /// Checks every record a sweep marks deleted against Nango's truth at that moment.
    deletes: Arc<DeleteWitness>,
}

/// Records that must never be marked deleted without an operator: those Nango still has live,
/// those its retention purged, and those an unfinished emptyCache pass has yet to re-add.
#[derive(Debug)]
struct DeleteWitness {
    sim: Arc<Simulator>,
    protected: Mutex<std::collections::HashSet<(StreamKey, String)>>,
    wrong: Mutex<Vec<String>>,
}

impl DeleteWitness {
    fn protect(&self, stream: &StreamKey, ids: impl IntoIterator<Item = String>) {
        let mut protected = self.protected.lock().unwrap();
        protected.extend(ids.into_iter().map(|id| (stream.clone(), id)));
    }

    fn release(&self, stream: &StreamKey, ids: &[String]) {
        let mut protected = self.protected.lock().unwrap();
        for id in ids {
            protected.remove(&(stream.clone(), id.clone()));
        }
    }

    /// Called with the live ids before and after a sweep's deletes.
    fn count_deletes(&self, stream: &StreamKey, before: &[String], after: &[String]) -> u64 {
        let truth = self.sim.snapshot(stream);
        let protected = self.protected.lock().unwrap();
        let mut wrong = self.wrong.lock().unwrap();
        let mut deleted = 0;
        for id in before.iter().filter(|id| !after.contains(id)) {
            deleted += 1;
            let live_in_nango = truth
                .get(id)
                .is_some_and(|r| r["_nango_metadata"]["deleted_at"].is_null());
            if live_in_nango || protected.contains(&(stream.clone(), id.clone())) {
                wrong.push(format!("{} {id}", stream.encode()));
            }
        }
        deleted
    }
}

impl ChaosStore {
    async fn live_ids(&self, stream: &StreamKey) -> Result<Vec<String>, StoreError> {
        Ok(self
            .inner
            .read_stream(stream)
            .await?
            .into_iter()
            .filter(|(_, r)| r["_nango_metadata"]["deleted_at"].is_null())
            .map(|(id, _)| id)
            .collect())
    }
}

impl RecordStore for ChaosStore {
    async fn mark_pending_write(
        &self,
        stream: &StreamKey,
        id: &str,
        mark: &nango_sync::core::writes::stored::PendingWrite,
    ) -> Result<bool, StoreError> {
        self.switch.step().await;
        self.inner.mark_pending_write(stream, id, mark).await
    }

    async fn write_page(
        &self,
        stream: &StreamKey,
        records: &[NangoRecord],
    ) -> Result<WriteReport, StoreError> {
        self.switch.step().await;
        let result = self.inner.write_page(stream, records).await;
        self.switch.step().await;
        result
    }
    async fn count_live(&self, stream: &StreamKey) -> Result<u64, StoreError> {
        self.inner.count_live(stream).await
    }
    async fn stored_versions(
        &self,
        stream: &StreamKey,
        each: &mut (dyn FnMut(Stored) + Send),
    ) -> Result<(), StoreError> {
        self.inner.stored_versions(stream, each).await
    }
    async fn stored_versions_of(
        &self,
        stream: &StreamKey,
        ids: &[&str],
    ) -> Result<Vec<Stored>, StoreError> {
        self.inner.stored_versions_of(stream, ids).await
    }
    async fn remove_unseen(
        &self,
        stream: &StreamKey,
        ids: &[String],
        at: &str,
    ) -> Result<u64, StoreError> {
        self.switch.step().await;
        let before = self.live_ids(stream).await?;
        let result = self.inner.remove_unseen(stream, ids, at).await;
        if result.is_ok() {
            let after = self.live_ids(stream).await?;
            self.deletes.count_deletes(stream, &before, &after);
        }
        self.switch.step().await;
        result
    }
    async fn remove_stream(
        &self,
        stream: &StreamKey,
        removal: Removal<'_>,
    ) -> Result<u64, StoreError> {
        self.switch.step().await;
        self.inner.remove_stream(stream, removal).await
    }
}

/// Writes to the provider, with kill points around every move: a worker stopped after a write
/// went `sending`, or after the provider applied it and before its end was kept.
impl WriteStore for ChaosStore {
    async fn accept_write(&self, request: &WriteRequest, at: &str) -> Result<Accept, StoreError> {
        self.switch.step().await;
        self.inner.accept_write(request, at).await
    }
    async fn get_write(&self, id: &str) -> Result<Option<StoredWrite>, StoreError> {
        self.inner.get_write(id).await
    }
    async fn move_write(&self, id: &str, change: &Move<'_>) -> Result<bool, StoreError> {
        self.switch.step().await;
        let moved = self.inner.move_write(id, change).await;
        self.switch.step().await;
        moved
    }
    async fn list_writes(&self) -> Result<Vec<StoredWrite>, StoreError> {
        self.inner.list_writes().await
    }
    async fn write_for_action(&self, action_id: &str) -> Result<Option<StoredWrite>, StoreError> {
        self.inner.write_for_action(action_id).await
    }
    async fn running_writes(&self) -> Result<Vec<StoredWrite>, StoreError> {
        self.inner.running_writes().await
    }
}

impl StateStore for ChaosStore {
    async fn get_stream(&self, stream: &StreamKey) -> Result<Option<StreamState>, StoreError> {
        self.inner.get_stream(stream).await
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
        self.switch.step().await;
        let result = self
            .inner
            .advance_cursor(stream, from, to, written, rejected, live_change)
            .await;
        if result.is_ok() {
            let position = |c: &str| decode_cursor(c).ok();
            if let Some(from) = from {
                if position(to) <= position(from) {
                    self.backwards
                        .lock()
                        .unwrap()
                        .push(format!("{}: {from} -> {to}", stream.encode()));
                }
            }
        }
        self.switch.step().await;
        result
    }
    async fn report_sync(&self, stream: &StreamKey, report: &SyncReport) -> Result<(), StoreError> {
        self.switch.step().await;
        self.inner.report_sync(stream, report).await
    }
    async fn list_streams(&self) -> Result<Vec<(StreamKey, StreamState)>, StoreError> {
        self.inner.list_streams().await
    }
    async fn note_seen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        page: &str,
        seen: &[Seen],
    ) -> Result<(), StoreError> {
        self.switch.step().await;
        let result = self.inner.note_seen(stream, sweep_id, page, seen).await;
        self.switch.step().await;
        result
    }
    async fn seen_in_sweep(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        each: &mut (dyn FnMut(Seen) + Send),
    ) -> Result<(), StoreError> {
        self.inner.seen_in_sweep(stream, sweep_id, each).await
    }
    async fn forget_seen(&self, stream: &StreamKey, sweep_id: &str) -> Result<(), StoreError> {
        self.switch.step().await;
        self.inner.forget_seen(stream, sweep_id).await
    }
    async fn begin_sweep(&self, stream: &StreamKey, sweep: &SweepState) -> Result<(), StoreError> {
        self.switch.step().await;
        self.inner.begin_sweep(stream, sweep).await
    }
    async fn advance_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<(), StoreError> {
        self.switch.step().await;
        self.inner.advance_sweep(stream, id, from, to).await
    }
    async fn end_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        result: &SweepResult,
    ) -> Result<(), StoreError> {
        self.switch.step().await;
        self.inner.end_sweep(stream, id, result).await
    }
    async fn mark_up_to_date(&self, stream: &StreamKey, cursor: &str) -> Result<(), StoreError> {
        self.switch.step().await;
        self.inner.mark_up_to_date(stream, cursor).await
    }
    async fn reset_cursor(&self, stream: &StreamKey) -> Result<(), StoreError> {
        self.inner.reset_cursor(stream).await
    }
    async fn set_nango_notes(
        &self,
        stream: &StreamKey,
        notes: &NangoNotes,
    ) -> Result<(), StoreError> {
        self.switch.step().await;
        self.inner.set_nango_notes(stream, notes).await
    }
    async fn hold_sweep(&self, stream: &StreamKey, held: &HeldSweep) -> Result<(), StoreError> {
        self.switch.step().await;
        self.inner.hold_sweep(stream, held).await
    }
    async fn release_hold(
        &self,
        stream: &StreamKey,
        id: &str,
        result: &SweepResult,
    ) -> Result<bool, StoreError> {
        self.switch.step().await;
        self.inner.release_hold(stream, id, result).await
    }
    async fn set_connection_deleted(
        &self,
        stream: &StreamKey,
        at: Option<&str>,
    ) -> Result<(), StoreError> {
        self.switch.step().await;
        self.inner.set_connection_deleted(stream, at).await
    }
    async fn upsert_connection(
        &self,
        c: &ConnectionKey,
        e: &ConnectionEvent,
    ) -> Result<(), StoreError> {
        self.inner.upsert_connection(c, e).await
    }
    async fn store_event(&self, event: &StoredEvent) -> Result<(), StoreError> {
        self.inner.store_event(event).await
    }
}

/// The queue as the functions see it: sends fail now and then.
#[derive(Debug, Clone)]
struct FlakyQueue {
    inner: SqliteQueue,
    failure_rate: Arc<Mutex<f64>>,
    failures: Arc<AtomicU64>,
}

impl JobQueue for FlakyQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        if fastrand::f64() < *self.failure_rate.lock().unwrap() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(QueueError("injected send failure".into()));
        }
        self.inner.send(messages).await
    }
}

struct Schedule {
    rng: fastrand::Rng,
    streams: Vec<StreamKey>,
    queue: SqliteQueue,
    flaky: FlakyQueue,
    endpoint: WebhookApp<FlakyQueue>,
    key: String,
    old_key: Option<String>,
    app: WorkerApp<NangoClient, ChaosStore, ChaosStore, FlakyQueue>,
    switch: Arc<KillSwitch>,
    delayed: Vec<(String, String)>,
    tally: Arc<Tally>,
}

impl Schedule {
    /// Nango's delivery: up to 3 attempts while the endpoint answers 5xx; 4xx is final.
    async fn deliver(&self, body: &str, key: &str) {
        self.tally.webhooks.fetch_add(1, Ordering::Relaxed);
        let mut headers = HeaderMap::new();
        let signature = sign(key.as_bytes(), body.as_bytes());
        headers.insert(HMAC_HEADER, HeaderValue::from_str(&signature).unwrap());
        for _ in 0..3 {
            let status = self
                .endpoint
                .decide(&nango_sync::lambda::http_request(
                    &Method::POST,
                    &headers,
                    body.as_bytes(),
                ))
                .await
                .status();
            assert_ne!(status, 401, "a genuine webhook was refused (key rotation?)");
            if (200..300).contains(&status) || (400..500).contains(&status) {
                return;
            }
        }
    }

    /// What Nango's webhook delivery does to a webhook: drop, duplicate, delay or deliver it.
    async fn send(&mut self, body: String) {
        let key = self.key.clone();
        match self.rng.u8(0..20) {
            0..=2 => {
                self.tally.dropped.fetch_add(1, Ordering::Relaxed);
            }
            3..=5 => {
                self.tally.duplicated.fetch_add(1, Ordering::Relaxed);
                self.deliver(&body, &key).await;
                self.deliver(&body, &key).await;
            }
            6..=9 => {
                self.tally.delayed.fetch_add(1, Ordering::Relaxed);
                self.delayed.push((body, key));
            }
            _ => self.deliver(&body, &key).await,
        }
        // Some delayed webhooks arrive now, out of order.
        while !self.delayed.is_empty() && self.rng.u8(0..3) == 0 {
            let (body, key) = self.delayed.remove(self.rng.usize(0..self.delayed.len()));
            self.deliver(&body, &key).await;
        }
    }

    /// Runs the worker on what the queue delivers, killing it now and then, for up to `batches`
    /// batches or until the queue is empty.
    async fn work(&mut self, batches: usize, until_empty: bool) {
        let started = Instant::now();
        let mut done = 0;
        loop {
            if !until_empty && done >= batches {
                return;
            }
            if until_empty && self.queue.depth().await.unwrap() == 0 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the queue never drained"
            );
            let batch = self
                .queue
                .receive(10, Duration::from_millis(100))
                .await
                .unwrap();
            if batch.is_empty() {
                if !until_empty {
                    return;
                }
                continue;
            }
            done += 1;
            let kill = self.rng.u8(0..4) == 0;
            if kill {
                self.switch.arm(self.rng.i64(1..30));
            }
            // Short deadlines now and then: continuations.
            let deadline = Instant::now()
                + if self.rng.bool() {
                    Duration::from_millis(self.rng.u64(20..200))
                } else {
                    Duration::from_secs(30)
                };
            let run = self.app.handle(&batch, Some(deadline));
            let response = tokio::select! {
                response = run => Some(response),
                () = wait_fired(&self.switch) => None,
            };
            self.switch.disarm();
            match response {
                Some(failed) => {
                    for m in &batch {
                        self.tally.jobs.fetch_add(1, Ordering::Relaxed);
                        if failed.contains(&m.message_id) {
                            self.queue.release(&m.receipt_handle).await.unwrap();
                        } else {
                            self.queue.delete(&m.receipt_handle).await.unwrap();
                        }
                    }
                }
                // Killed: nothing is deleted; the messages come back after the visibility timeout.
                None => {
                    self.tally.kills.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A write an application sent: its id, the record it saves, and whether it is safe to repeat.
struct SentWrite {
    id: String,
    record: String,
    may_repeat: bool,
}

impl Schedule {
    /// An application's write to the provider, put on the queue (sometimes twice, as an
    /// application that retries its own send does): a tool that saves a Note, safe to repeat or
    /// not, an async action that does the same, or a proxy PUT with an idempotency key. The
    /// provider may apply it and never answer.
    async fn send_write(&mut self, n: usize, nango: &SimServer) -> SentWrite {
        self.tally.writes.fetch_add(1, Ordering::Relaxed);
        let connection = self.streams[0].connection();
        let (id, record) = (format!("write-{n}"), format!("note-{n}"));
        let run = match self.rng.u8(0..4) {
            0 => json!({"kind": "proxy", "method": "PUT", "path": format!("/Note/{record}"),
                "headers": {"Nango-Proxy-Idempotency-Key": id}, "body": {"n": n}}),
            1 => {
                self.tally.async_actions.fetch_add(1, Ordering::Relaxed);
                json!({"kind": "action", "name": "save-Note", "input": {"id": record, "n": n},
                    "async": true})
            }
            _ => json!({"kind": "tool", "name": "save-Note", "input": {"id": record, "n": n}}),
        };
        let body = json!({"v": 1, "id": id, "provider_config_key": connection.provider_config_key,
            "connection_id": connection.connection_id, "run": run,
            "safe_to_repeat": self.rng.bool(), "record": {"model": "Note", "id": record}});
        let request = WriteRequest::parse(body.to_string().as_bytes()).unwrap();
        if self.rng.u8(0..3) == 0 {
            nango.provider.inject([match self.rng.u8(0..5) {
                0 | 1 => WriteFault::ApplyThenDrop,
                2 => WriteFault::TooManyRequests,
                3 => WriteFault::Refuse,
                _ => WriteFault::ApplyThenFail,
            }]);
        }
        let group_id = JobMessage::decode(&body.to_string()).unwrap().group_id(&id);
        let copies = if self.rng.u8(0..4) == 0 { 2 } else { 1 };
        for copy in 0..copies {
            let message = OutgoingMessage {
                group_id: group_id.clone(),
                dedup_id: format!("{id}-{copy}"),
                body: body.to_string(),
            };
            self.queue.send(&[message]).await.unwrap();
        }
        SentWrite {
            id,
            record,
            may_repeat: request.may_repeat(),
        }
    }

    /// Nango runs the async actions it took and sends each one's `async_action` webhook, which
    /// may be dropped, duplicated or delayed as any other.
    async fn run_actions(&mut self, sim: &Simulator, nango: &SimServer) {
        for (connection, action_id) in nango.provider.run_async_actions(sim) {
            self.tally.action_webhooks.fetch_add(1, Ordering::Relaxed);
            self.send(webhooks::async_action_done(&connection, &action_id))
                .await;
        }
    }

    /// A reconcile, as the schedule sends it.
    async fn reconcile(&mut self, at: &str) {
        self.tally.reconciles.fetch_add(1, Ordering::Relaxed);
        self.queue.send(&[reconcile_message(at)]).await.unwrap();
    }

    /// A full resync with emptyCache, run as a checkpointed pass in three slices: the cache is
    /// emptied, each slice re-adds a third and sends its webhook (`checkpoints.to` set until the
    /// last), the worker runs and reconciles come in between. The provider dropped some 10% of
    /// the records: the last slice does not re-add them, and only then may they be swept.
    async fn sliced_pass(
        &mut self,
        sim: &Simulator,
        witness: &DeleteWitness,
        stream: &StreamKey,
        step: usize,
    ) {
        let name = sim.sync_name(stream);
        let records = sim.live_payloads(stream);
        let ids: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
        sim.tick();
        sim.wipe(stream);
        witness.protect(stream, ids.clone());
        let third = records.len() / 3;
        let point = |n: Option<u32>| n.map(|n| json!({ "slice": n }));
        for (i, (from, to)) in [(None, Some(1)), (Some(1), Some(2)), (Some(2), None)]
            .into_iter()
            .enumerate()
        {
            let part: Vec<_> = match i {
                0 | 1 => records[i * third..(i + 1) * third].to_vec(),
                _ => records[2 * third..]
                    .iter()
                    .filter(|_| self.rng.u8(0..10) != 0)
                    .cloned()
                    .collect(),
            };
            sim.tick();
            let changes = sim.save(stream, part);
            sim.set_checkpoint(stream, point(to));
            if to.is_none() {
                // The pass is over: what it did not re-add is gone from the provider.
                witness.release(stream, &ids);
            }
            let body = webhooks::sync_slice(stream, &name, changes, point(from), point(to));
            self.send(body).await;
            let batches = self.rng.usize(0..3);
            self.work(batches, false).await;
            if to.is_some() && self.rng.bool() {
                self.reconcile(&format!("2026-11-27T16:{step:02}:{i:02}.000Z"))
                    .await;
            }
        }
    }
}

async fn wait_fired(switch: &KillSwitch) {
    while !switch.fired.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn run_schedule(seed: u64, tally: Arc<Tally>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    fastrand::seed(seed);
    let sim = Arc::new(Simulator::new());
    let streams = sim.populate("chaos", 2, &["Contact", "Deal"], rng.usize(50..250));
    let nango = SimServer::start(
        Arc::clone(&sim),
        ServerSettings {
            fault_rate: 0.04,
            rate_limit_rate: 0.04,
            ..ServerSettings::default()
        },
    )
    .await
    .unwrap();
    let proxy = FaultProxy::start(moto_endpoint()).await;
    let sdk = moto_sdk_config().await;
    let admin = aws_sdk_dynamodb::Client::new(&sdk);
    let (records_table, state_table) = (unique_name("chaos-records"), unique_name("chaos-state"));
    create_table(&admin, &records_table).await.unwrap();
    create_table(&admin, &state_table).await.unwrap();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&proxy.url)
            .build(),
    );
    let store = Store::Dynamo {
        records: DynamoRecordStore::new(dynamo.clone(), records_table, fast_writes()),
        state: DynamoStateStore::new(dynamo, state_table),
    };
    let db =
        SqliteDb::open(&std::env::temp_dir().join(format!("{}.db", unique_name("chaos")))).unwrap();
    let queue = SqliteQueue::ingest(
        db,
        QueueSettings {
            visibility_timeout: Duration::from_millis(300),
            retry_delay: Duration::from_millis(20),
            max_receive_count: 10_000,
            ..QueueSettings::default()
        },
    );
    let flaky = FlakyQueue {
        inner: queue.clone(),
        failure_rate: Arc::new(Mutex::new(0.1)),
        failures: Arc::new(AtomicU64::new(0)),
    };
    let switch = Arc::new(KillSwitch::default());
    switch.disarm();
    let backwards = Arc::new(Mutex::new(Vec::new()));
    let witness = Arc::new(DeleteWitness {
        sim: Arc::clone(&sim),
        protected: Mutex::default(),
        wrong: Mutex::default(),
    });
    let chaos_store = ChaosStore {
        inner: store.clone(),
        switch: Arc::clone(&switch),
        backwards: Arc::clone(&backwards),
        deletes: Arc::clone(&witness),
    };
    let key = format!("key-{seed}");
    let mut s = Schedule {
        endpoint: WebhookApp::new(
            Verifier::new(SigningKey::new(key.as_bytes()), None),
            flaky.clone(),
            256 * 1024,
        ),
        app: WorkerApp {
            source: nango_client(&nango.url, rng.u32(20..80)).with_discovery_rate(60_000),
            records: chaos_store.clone(),
            state: chaos_store,
            queue: flaky.clone(),
            settings: WorkerSettings {
                deadline_margin: Duration::from_millis(5),
                // Short, so a killed sender's write is taken again within the run.
                writes: TakeSettings {
                    attempt_timeout: Duration::from_secs(2),
                    lease: Duration::from_millis(2500),
                    ..TakeSettings::default()
                },
                ..WorkerSettings::default()
            },
        },
        rng,
        streams: streams.clone(),
        queue,
        flaky,
        key,
        old_key: None,
        switch,
        delayed: Vec::new(),
        tally: Arc::clone(&tally),
    };

    let mut writes: Vec<SentWrite> = Vec::new();
    // The initial sync of every stream, then steps of changes while webhooks fly and faults hit.
    for stream in &streams {
        let body = webhooks::sync_success(
            stream,
            &sim.sync_name(stream),
            Changes::default(),
            "INITIAL",
        );
        s.send(body).await;
    }
    let rotate_at = s.rng.usize(2..8);
    let wipe_at = if s.rng.u8(0..3) == 0 {
        Some(s.rng.usize(1..8))
    } else {
        None
    };
    // Nango's retention purges streams[1]; an emptyCache pass in slices re-reads streams[0].
    let purge_at = (s.rng.u8(0..3) == 0).then(|| s.rng.usize(1..8));
    let pass_at = (s.rng.u8(0..2) == 0).then(|| s.rng.usize(0..7));
    for step in 0..8 {
        let batches = s.rng.usize(0..4);
        s.work(batches, false).await;
        proxy
            .faults
            .throttle
            .store(s.rng.u32(0..3), Ordering::SeqCst);
        proxy
            .faults
            .internal_error
            .store(s.rng.u32(0..2), Ordering::SeqCst);
        proxy.faults.trim.store(s.rng.u32(0..3), Ordering::SeqCst);
        proxy.faults.reset.store(s.rng.u32(0..2), Ordering::SeqCst);
        if step == rotate_at {
            // A new signing key: the endpoint takes both while Nango switches over.
            let new_key = format!("rotated-{seed}");
            s.endpoint = WebhookApp::new(
                Verifier::new(
                    SigningKey::new(new_key.as_bytes()),
                    Some(SigningKey::new(s.key.as_bytes())),
                ),
                s.flaky.clone(),
                256 * 1024,
            );
            s.old_key = Some(std::mem::replace(&mut s.key, new_key));
            tally.key_rotations.fetch_add(1, Ordering::Relaxed);
        }
        let stream = s.streams[s.rng.usize(0..s.streams.len())].clone();
        sim.tick();
        let mut changes = sim.churn(&stream, s.rng.f64() * 0.3, &mut s.rng);
        if s.rng.u8(0..3) == 0 {
            // Undelete a deleted record, prune a live one.
            let snapshot = sim.snapshot(&stream);
            if let Some((id, _)) = snapshot
                .iter()
                .find(|(_, r)| r["_nango_metadata"]["deleted_at"].is_string())
            {
                changes.added += sim
                    .save(
                        &stream,
                        [(
                            id.clone(),
                            json!({"back": true}).as_object().unwrap().clone(),
                        )],
                    )
                    .added;
            }
            if let Some((id, _)) = snapshot
                .iter()
                .find(|(_, r)| r["_nango_metadata"]["deleted_at"].is_null())
            {
                sim.prune(&stream, &[id.as_str()]);
            }
        }
        if wipe_at == Some(step) {
            // A full resync that empties Nango's cache: the provider's records come back, the
            // others vanish with no delete reported.
            let keep: Vec<_> = sim
                .live_payloads(&stream)
                .into_iter()
                .filter(|_| s.rng.u8(0..4) != 0)
                .collect();
            sim.wipe(&stream);
            sim.tick();
            sim.save(&stream, keep);
            tally.wipes.fetch_add(1, Ordering::Relaxed);
        }
        let body = webhooks::sync_success(&stream, &sim.sync_name(&stream), changes, "INCREMENTAL");
        s.send(body).await;
        if purge_at == Some(step) {
            let purged = &streams[1];
            witness.protect(
                purged,
                sim.live_payloads(purged).into_iter().map(|(id, _)| id),
            );
            sim.tick();
            sim.purge_for_retention(purged, 61);
            tally.purges.fetch_add(1, Ordering::Relaxed);
        }
        if pass_at == Some(step) {
            s.sliced_pass(&sim, &witness, &streams[0], step).await;
            tally.sliced_passes.fetch_add(1, Ordering::Relaxed);
        }
        if s.rng.u8(0..4) == 0 {
            s.reconcile(&format!("2026-11-27T17:{step:02}:00.000Z"))
                .await;
        }
        for _ in 0..s.rng.usize(0..3) {
            let n = writes.len();
            writes.push(s.send_write(n, &nango).await);
        }
        if s.rng.bool() {
            s.run_actions(&sim, &nango).await;
        }
    }

    // Quiescence: the late webhooks arrive, the queue drains, then one reconcile.
    tally.records_wrongly_deleted.fetch_add(
        witness.wrong.lock().unwrap().len() as u64,
        Ordering::Relaxed,
    );
    *s.flaky.failure_rate.lock().unwrap() = 0.0;
    for (body, key) in std::mem::take(&mut s.delayed) {
        s.deliver(&body, &key).await;
    }
    s.work(0, true).await;
    // Nango runs the actions left (and those a retry took meanwhile); the reconcile asks for
    // the results whose webhooks were lost.
    for round in 0..3 {
        s.run_actions(&sim, &nango).await;
        for (body, key) in std::mem::take(&mut s.delayed) {
            s.deliver(&body, &key).await;
        }
        s.work(0, true).await;
        s.reconcile(&format!("2026-11-27T18:{round:02}:{:02}.000Z", seed % 60))
            .await;
        s.work(0, true).await;
    }
    let wrong = witness.wrong.lock().unwrap().clone();
    tally
        .records_wrongly_deleted
        .store(wrong.len() as u64, Ordering::Relaxed);

    // The invariants, for every stream: nothing lost, nothing wrongly deleted.
    let mut problems: Vec<String> = wrong
        .iter()
        .map(|r| format!("{r}: marked deleted, but Nango has it or must not be believed"))
        .collect();
    for stream in &streams {
        let stored = store.read_stream(stream).await.unwrap();
        let truth = sim.snapshot(stream);
        for (id, record) in &truth {
            tally.records_checked.fetch_add(1, Ordering::Relaxed);
            let same = match stored.get(id) {
                // Pruned in Nango: the payload stored before is kept, and the record is live or
                // deleted as Nango says (a pruned record can be deleted later).
                Some(r) if record["_nango_metadata"]["pruned_at"].is_string() => {
                    r["_nango_metadata"]["deleted_at"].is_null()
                        == record["_nango_metadata"]["deleted_at"].is_null()
                }
                Some(r) => same_content(&Value::Object(r.clone()), record),
                None => false,
            };
            if !same {
                tally.records_lost.fetch_add(1, Ordering::Relaxed);
                problems.push(format!(
                    "{} {id}: stored {:?}, Nango has {record}",
                    stream.encode(),
                    stored.get(id)
                ));
            }
        }
        let state = store.get_stream(stream).await.unwrap().unwrap_or_default();
        // A held or purged stream keeps what Nango dropped, by design.
        let kept = matches!(
            state.status(),
            StreamStatus::Held | StreamStatus::NangoPurged
        );
        for (id, record) in stored.iter().filter(|(id, _)| !truth.contains_key(*id)) {
            if !kept && !record["_nango_metadata"]["deleted_at"].is_string() {
                problems.push(format!(
                    "{} {id}: gone from Nango but live in the store",
                    stream.encode()
                ));
            }
        }
        // A purged stream's cursor stays where it was: Nango has no records left.
        if sim.last_cursor(stream).is_some() && state.cursor != sim.last_cursor(stream) {
            problems.push(format!(
                "{}: cursor {:?} is not the last record's {:?}",
                stream.encode(),
                state.cursor,
                sim.last_cursor(stream)
            ));
        }
    }
    // Every write ended in one state; none that is not safe to repeat reached the provider
    // twice; a failed one reached it never; a succeeded one is in the copy (read your writes).
    let notes = StreamKey::new(
        streams[0].provider_config_key.clone(),
        streams[0].connection_id.clone(),
        "Note",
        "base",
    );
    let notes_stored = store.read_stream(&notes).await.unwrap();
    for write in &writes {
        let applied = nango.provider.applied_to(&write.record);
        if !write.may_repeat && applied > 1 {
            tally.writes_applied_twice.fetch_add(1, Ordering::Relaxed);
            problems.push(format!(
                "{}: not safe to repeat, applied {applied} times",
                write.id
            ));
        }
        let state = store
            .get_write(&write.id)
            .await
            .unwrap()
            .map(|w| w.position.state);
        match state {
            Some(WriteState::Succeeded) => {
                tally.writes_succeeded.fetch_add(1, Ordering::Relaxed);
                if applied == 0 || !notes_stored.contains_key(&write.record) {
                    problems.push(format!(
                        "{}: succeeded, applied {applied} times, in the copy: {}",
                        write.id,
                        notes_stored.contains_key(&write.record)
                    ));
                }
            }
            Some(WriteState::Failed) => {
                tally.writes_failed.fetch_add(1, Ordering::Relaxed);
                if applied > 0 {
                    problems.push(format!("{}: failed, yet applied {applied} times", write.id));
                }
            }
            Some(WriteState::Unknown) => {
                tally.writes_unknown.fetch_add(1, Ordering::Relaxed);
            }
            other => problems.push(format!("{}: did not end: {other:?}", write.id)),
        }
    }
    problems.extend(
        backwards
            .lock()
            .unwrap()
            .iter()
            .map(|b| format!("cursor moved backwards: {b}")),
    );
    tally
        .send_failures
        .fetch_add(s.flaky.failures.load(Ordering::Relaxed), Ordering::Relaxed);
    tally.nango_faults.fetch_add(
        nango.stats.faults.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    tally.dynamo_faults.fetch_add(
        proxy.faults.injected.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    tally.schedules.fetch_add(1, Ordering::Relaxed);
    assert!(
        problems.is_empty(),
        "chaos schedule CHAOS_SEED={seed} failed (replay: CHAOS_SEED={seed} CHAOS_SCHEDULES=1 scripts/test.sh chaos):\n{}",
        problems.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_loses_nothing_under_seeded_chaos() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (first, count) = (env("CHAOS_SEED", 1), env("CHAOS_SCHEDULES", 8));
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    for seed in first..first + count {
        run_schedule(seed, Arc::clone(&tally)).await;
    }
    eprintln!(
        "chaos: {tally:?} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(tally.schedules.load(Ordering::Relaxed), count);
    assert_eq!(tally.records_lost.load(Ordering::Relaxed), 0);
    assert_eq!(tally.records_wrongly_deleted.load(Ordering::Relaxed), 0);
    // A replay of one seed may have neither; the suite's run must have both.
    assert!(
        count < 8
            || (tally.purges.load(Ordering::Relaxed) > 0
                && tally.sliced_passes.load(Ordering::Relaxed) > 0),
        "no purge or no sliced pass: the suite tested less than it claims"
    );
    assert!(
        tally.kills.load(Ordering::Relaxed) > 0,
        "no worker was killed: the suite tested less than it claims"
    );
    assert_eq!(tally.writes_applied_twice.load(Ordering::Relaxed), 0);
    assert!(
        count < 8
            || (tally.async_actions.load(Ordering::Relaxed) > 0
                && tally.action_webhooks.load(Ordering::Relaxed) > 0),
        "no async action ran: the suite tested less than it claims"
    );
    assert!(
        count < 8
            || (tally.writes_succeeded.load(Ordering::Relaxed) > 0
                && tally.writes_unknown.load(Ordering::Relaxed) > 0),
        "no write succeeded or none ended unknown: the suite tested less than it claims"
    );
    assert!(
        tally.nango_faults.load(Ordering::Relaxed) > 0
            && tally.dynamo_faults.load(Ordering::Relaxed) > 0
    );
}
