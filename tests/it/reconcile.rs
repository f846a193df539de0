//! The copy outlives Nango's cache: each Nango behaviour that could make a reconcile wipe the
//! copy (retention purges, hard deletes, sliced passes, emptyCache, a variant's count of 0, a
//! deleted connection, a dropped sync), on the embedded SQLite store and on DynamoDB over the
//! wire (moto, in `aws::reconcile`), with Nango simulated over HTTP. Every scenario runs on both
//! (`scenarios!`).

use std::collections::BTreeMap;
use std::sync::Arc;

use nango_sync::adapters::aws::dynamodb::{
    create_table, CapacityMeter, DynamoRecordStore, DynamoStateStore,
};
use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::adapters::nango::NangoClient;
use nango_sync::adapters::sqlite::SqliteDb;
use nango_sync::core::connection::ConnectionDeletedMode;
use nango_sync::core::drift::{decide_held, HoldDecision, HoldError};
use nango_sync::core::job::{jobs_for, messages_for, now_rfc3339};
use nango_sync::core::metrics::JobMetrics;
use nango_sync::core::nango_status::RunStatus;
use nango_sync::core::outcome::{JobOutcome, SyncSummary};
use nango_sync::core::payload::NangoWebhook;
use nango_sync::core::record::NangoRecord;
use nango_sync::core::state::{StreamState, StreamStatus, SweepOutcome, SweepState};
use nango_sync::core::stream::{ConnectionKey, StreamKey};
use nango_sync::core::worker::{WorkerApp, WorkerSettings};
use nango_sync::core::write::DeleteMode;
use nango_sync::local::backend::Store;
use nango_sync::ports::{ReceivedMessage, RecordStore, StateStore};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::{sample_payload, webhooks, Changes, Simulator, SyncRun};
use serde_json::{json, value::RawValue, Map, Value};

use crate::common::{fast_writes, moto_sdk_config, nango_client, unique_name};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Dynamo,
}

/// Every scenario, each as a module holding its test `$test`, run on `Backend::$backend`: here
/// on SQLite, and in `aws::reconcile` on DynamoDB (moto). One list, so no scenario runs on one
/// store only.
macro_rules! scenarios {
    ($test:ident, $backend:ident) => {
        $crate::reconcile::scenario_tests!(
            $test,
            $backend,
            a_purged_stream_keeps_its_copy_and_a_small_loss_is_swept,
            a_count_of_zero_is_held_and_decided_by_an_operator,
            deletes_beyond_the_bound_are_held_then_confirmed,
            a_sliced_empty_cache_pass_deletes_nothing_until_it_ends,
            a_variant_count_of_zero_is_not_trusted,
            a_deleted_connection_stops_syncing_and_keeps_its_records,
            a_dropped_sync_keeps_its_copy,
            an_unchanged_stream_is_checked_without_reading_its_partition,
            a_reconciles_syncs_all_run_before_any_count,
            a_reconcile_after_changes_counts_nothing_it_can_work_out,
            a_sweep_writes_only_what_the_copy_missed,
            a_sweep_begun_by_the_previous_release_starts_over,
            a_re_read_writes_only_what_changed,
        );
    };
}

macro_rules! scenario_tests {
    ($test:ident, $backend:ident, $($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn $test() {
                $crate::reconcile::$scenario($crate::reconcile::Backend::$backend).await
            }
        }
    )*};
}

pub(crate) use {scenario_tests, scenarios};

scenarios!(on_sqlite, Sqlite);

pub struct Rig {
    pub sim: Arc<Simulator>,
    server: SimServer,
    pub nango_url: String,
    pub app: WorkerApp<NangoClient, Store, Store, MemoryQueue>,
    /// DynamoDB's consumed capacity (moto only).
    pub meter: Option<Arc<CapacityMeter>>,
    runs: std::sync::atomic::AtomicU32,
}

pub async fn rig(backend: Backend) -> Rig {
    let sim = Arc::new(Simulator::new());
    let server = SimServer::start(Arc::clone(&sim), ServerSettings::default())
        .await
        .unwrap();
    let (store, meter) = match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{}.db", unique_name("reconcile")));
            (
                Store::sqlite(SqliteDb::open(&path).unwrap(), DeleteMode::Tombstone),
                None,
            )
        }
        Backend::Dynamo => {
            let client = aws_sdk_dynamodb::Client::new(&moto_sdk_config().await);
            let (records, state) = (unique_name("r-records"), unique_name("r-state"));
            create_table(&client, &records).await.unwrap();
            create_table(&client, &state).await.unwrap();
            let meter = Arc::new(CapacityMeter::default());
            let store = Store::Dynamo {
                records: DynamoRecordStore::new(client.clone(), records, fast_writes())
                    .with_meter(Arc::clone(&meter)),
                state: DynamoStateStore::new(client, state).with_meter(Arc::clone(&meter)),
            };
            (store, Some(meter))
        }
    };
    let app = WorkerApp {
        source: nango_client(&server.url, 500).with_discovery_rate(60_000),
        records: store.clone(),
        state: store,
        queue: MemoryQueue::new(),
        settings: WorkerSettings::default(),
    };
    Rig {
        sim,
        nango_url: server.url.clone(),
        server,
        app,
        meter,
        runs: Default::default(),
    }
}

impl Rig {
    /// The simulated Nango's server, for injecting faults.
    pub fn server(&self) -> &SimServer {
        &self.server
    }

    /// A verified webhook body, as the webhook function turns it into jobs, run by the worker.
    pub async fn deliver(&self, body: &str) -> Vec<JobOutcome> {
        self.deliver_at(body, &now_rfc3339()).await
    }

    /// The same, for a webhook received at `received_at`.
    pub async fn deliver_at(&self, body: &str, received_at: &str) -> Vec<JobOutcome> {
        let raw: &RawValue = serde_json::from_str(body).unwrap();
        let jobs = jobs_for(NangoWebhook::from_raw(raw), raw);
        let mut outcomes = Vec::new();
        for message in messages_for(body.as_bytes(), jobs, received_at) {
            outcomes.push(self.app.process(&message.body, None).await.unwrap());
        }
        outcomes
    }

    /// Nango's webhook after a sync run of the stream.
    pub async fn webhook_sync(&self, stream: &StreamKey) -> JobOutcome {
        let body = webhooks::sync_success(
            stream,
            &self.sim.sync_name(stream),
            Changes::default(),
            "INCREMENTAL",
        );
        self.deliver(&body).await.remove(0)
    }

    /// One scheduled reconcile, and every job it leads to (continuations included).
    pub async fn reconcile(&self) -> Vec<JobOutcome> {
        let run = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.app.queue.clear();
        let at = format!("2026-12-03T10:{:02}:00.000Z", run % 60);
        let body = json!({"v": 1, "received_at": at, "job": {"reconcile": {}}}).to_string();
        let mut outcomes = vec![self.app.process(&body, None).await.unwrap()];
        let mut done = 0;
        loop {
            let sent = self.app.queue.sent();
            if done == sent.len() {
                return outcomes;
            }
            for message in &sent[done..] {
                outcomes.push(self.app.process(&message.body, None).await.unwrap());
            }
            done = sent.len();
        }
    }

    /// A reconcile job received at `received_at`, run alone: its sync jobs wait in the queue.
    /// It must find `streams` streams.
    pub async fn fan_out(&self, received_at: &str, streams: usize) {
        self.app.queue.clear();
        let body = json!({"v": 1, "received_at": received_at, "job": {"reconcile": {}}});
        let fanned = self.app.process(&body.to_string(), None).await.unwrap();
        assert!(
            matches!(fanned, JobOutcome::Reconciled { streams: n, .. } if n == streams),
            "{fanned:?}"
        );
    }

    /// Runs what is queued, a batch at a time as Lambda hands it, until nothing is left.
    pub async fn drain(&self) {
        loop {
            let batch = self.take_batch();
            if batch.is_empty() {
                return;
            }
            assert_eq!(self.app.handle(&batch, None).await, Vec::<String>::new());
        }
    }

    /// What the worker enqueued since the queue was last taken from, as one batch delivers it.
    pub fn take_batch(&self) -> Vec<ReceivedMessage> {
        let sent = self.app.queue.sent();
        self.app.queue.clear();
        sent.into_iter()
            .enumerate()
            .map(|(i, m)| ReceivedMessage {
                message_id: format!("{i} {}", m.dedup_id),
                receipt_handle: m.dedup_id,
                body: m.body,
                group_id: Some(m.group_id),
            })
            .collect()
    }

    /// The streams the last reconcile enqueued a sync for (each once: a stream's drift check
    /// goes on in a job of its own, in the same group).
    pub fn reconciled_streams(&self) -> Vec<String> {
        let mut streams: Vec<String> = Vec::new();
        for message in self.app.queue.sent() {
            if !streams.contains(&message.group_id) {
                streams.push(message.group_id);
            }
        }
        streams
    }

    pub async fn live(&self, stream: &StreamKey) -> u64 {
        self.app.records.count_live(stream).await.unwrap()
    }

    pub async fn state(&self, stream: &StreamKey) -> StreamState {
        self.app.state.get_stream(stream).await.unwrap().unwrap()
    }

    /// The stored records marked deleted, by id.
    pub async fn marked_deleted(&self, stream: &StreamKey) -> Vec<String> {
        self.stored(stream)
            .await
            .into_iter()
            .filter(|(_, r)| r["_nango_metadata"]["deleted_at"].is_string())
            .map(|(id, _)| id)
            .collect()
    }

    pub async fn stored(&self, stream: &StreamKey) -> BTreeMap<String, Map<String, Value>> {
        self.app.records.read_stream(stream).await.unwrap()
    }
}

/// Nothing of the copy was marked deleted: all `live` records are.
async fn assert_untouched(rig: &Rig, stream: &StreamKey, live: u64) {
    assert_eq!(rig.live(stream).await, live);
    assert!(rig.marked_deleted(stream).await.is_empty());
}

fn sweeps(outcomes: &[JobOutcome]) -> usize {
    outcomes
        .iter()
        .filter(
            |o| matches!(o, JobOutcome::Synced(s) | JobOutcome::Continued(s) if s.sweep.is_some()),
        )
        .count()
}

/// The scenario: two streams of 2,000 records; Nango's retention hard-deletes one (no
/// successful run for 61 days: no tombstones, recordCount 0), and the other's cache loses 5
/// records with no delete. One reconcile later the first keeps all 2,000 (nango_purged) and the
/// second has 1,995 live and 5 marked deleted by the sweep.
pub(crate) async fn a_purged_stream_keeps_its_copy_and_a_small_loss_is_swept(backend: Backend) {
    let rig = rig(backend).await;
    let streams = rig.sim.populate("crm", 1, &["Contact", "Deal"], 2_000);
    let (purged, lossy) = (&streams[0], &streams[1]);
    // The purged stream's sync last succeeded (and sent its webhook) 62 days ago.
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(62);
    let long_ago = long_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = webhooks::sync_success(purged, "contacts", Changes::default(), "INCREMENTAL");
    rig.deliver_at(&body, &long_ago).await;
    rig.webhook_sync(lossy).await;
    rig.sim.tick();
    rig.sim.purge_for_retention(purged, 61);
    let lost: Vec<String> = (0..5).map(|i| format!("deal-{}", i * 7)).collect();
    let lost_ids: Vec<&str> = lost.iter().map(String::as_str).collect();
    assert_eq!(rig.sim.hard_delete(lossy, &lost_ids), 5);

    let outcomes = rig.reconcile().await;
    assert_eq!(sweeps(&outcomes), 1, "only the lossy stream is swept");
    assert_eq!(rig.live(purged).await, 2_000, "the purged copy is kept");
    assert!(rig.marked_deleted(purged).await.is_empty());
    let state = rig.state(purged).await;
    assert_eq!(state.status(), StreamStatus::NangoPurged);
    let reason = &state.nango.purged.as_ref().unwrap().reason;
    assert!(reason.contains("60 days"), "{reason}");

    assert_eq!(rig.live(lossy).await, 1_995);
    let mut deleted = rig.marked_deleted(lossy).await;
    deleted.sort();
    let mut expected = lost.clone();
    expected.sort();
    assert_eq!(deleted, expected);
    let state = rig.state(lossy).await;
    assert_eq!(state.status(), StreamStatus::Ok);
    let last = state.last_sweep.unwrap();
    assert_eq!((last.outcome, last.tombstoned), (SweepOutcome::Applied, 5));

    // Later reconciles keep both as they are.
    let outcomes = rig.reconcile().await;
    assert_eq!(sweeps(&outcomes), 0);
    assert_eq!(
        (rig.live(purged).await, rig.live(lossy).await),
        (2_000, 1_995)
    );
    assert_eq!(rig.state(purged).await.status(), StreamStatus::NangoPurged);
}

/// A sync failing on dead credentials: its records hard-deleted, recordCount 0, its last
/// success unknown to /sync/status. The guard never lets a count of 0 delete: the stream is held
/// and an operator decides. Bad decisions are refused and change nothing.
pub(crate) async fn a_count_of_zero_is_held_and_decided_by_an_operator(backend: Backend) {
    let rig = rig(backend).await;
    let streams = rig.sim.populate("crm", 1, &["Contact", "Deal"], 300);
    for s in &streams {
        rig.webhook_sync(s).await;
    }
    for s in &streams {
        rig.sim.set_run(
            s,
            SyncRun {
                status: RunStatus::Error,
                latest_execution: RunStatus::Stopped,
                ..SyncRun::default()
            },
        );
        rig.sim.wipe(s);
    }
    rig.reconcile().await;
    for s in &streams {
        assert_eq!(rig.live(s).await, 300);
        assert!(rig.marked_deleted(s).await.is_empty());
        let state = rig.state(s).await;
        assert_eq!(state.status(), StreamStatus::Held, "{state:?}");
        let held = state.held.unwrap();
        assert_eq!(
            (held.would_delete, held.live_count, held.nango_count),
            (300, 300, 0)
        );
        assert!(held.last_success_at.is_some(), "the webhook's run is known");
    }
    let (confirmed, discarded) = (&streams[0], &streams[1]);
    let (records, state) = (&rig.app.records, &rig.app.state);

    // Refused, changing nothing: an unknown stream, a stream with no held sweep, and a stream
    // whose counts moved since the hold.
    let unknown = StreamKey::new("crm", "conn-0", "Ticket", "base");
    let refused = decide_held(
        records,
        state,
        &unknown,
        HoldDecision::Confirm,
        &*rig.app.settings.clock,
    )
    .await;
    assert!(
        matches!(refused, Err(HoldError::UnknownStream(_))),
        "{refused:?}"
    );
    let other = rig.sim.populate("other", 1, &["Contact"], 3).remove(0);
    rig.webhook_sync(&other).await;
    let refused = decide_held(
        records,
        state,
        &other,
        HoldDecision::Confirm,
        &*rig.app.settings.clock,
    )
    .await;
    assert!(
        matches!(refused, Err(HoldError::NoHeldSweep(_))),
        "{refused:?}"
    );
    rig.sim.tick();
    rig.sim
        .save(confirmed, [("late-1".to_owned(), sample_payload(1))]);
    rig.webhook_sync(confirmed).await;
    let refused = decide_held(
        records,
        state,
        confirmed,
        HoldDecision::Confirm,
        &*rig.app.settings.clock,
    )
    .await;
    let Err(HoldError::CountsChanged { now_live, .. }) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(now_live, 301);
    assert_eq!(rig.live(confirmed).await, 301, "nothing changed");
    assert!(rig.state(confirmed).await.held.is_some(), "still held");

    // The next reconcile holds again with the new numbers; this time the operator confirms.
    rig.reconcile().await;
    let held = rig.state(confirmed).await.held.unwrap();
    assert_eq!(
        (held.would_delete, held.live_count, held.nango_count),
        (300, 301, 1)
    );
    let result = decide_held(
        records,
        state,
        confirmed,
        HoldDecision::Confirm,
        &*rig.app.settings.clock,
    )
    .await
    .unwrap();
    assert_eq!(
        (result.outcome, result.tombstoned, result.live_count),
        (SweepOutcome::Confirmed, 300, 1)
    );
    assert_eq!(rig.live(confirmed).await, 1);
    assert_eq!(rig.state(confirmed).await.status(), StreamStatus::Ok);

    // Discard: the copy is kept, and that is recorded.
    let result = decide_held(
        records,
        state,
        discarded,
        HoldDecision::Discard,
        &*rig.app.settings.clock,
    )
    .await
    .unwrap();
    assert_eq!(
        (result.outcome, result.tombstoned),
        (SweepOutcome::Discarded, 0)
    );
    assert_eq!(rig.live(discarded).await, 300);
    let state_after = rig.state(discarded).await;
    assert_eq!(state_after.status(), StreamStatus::Ok);
    assert_eq!(
        state_after.last_sweep.unwrap().outcome,
        SweepOutcome::Discarded
    );
    let again = decide_held(
        records,
        state,
        discarded,
        HoldDecision::Discard,
        &*rig.app.settings.clock,
    )
    .await;
    assert!(matches!(again, Err(HoldError::NoHeldSweep(_))), "{again:?}");
}

/// A cache that lost 150 of 300 records without a delete: a sweep confirms it, but 150 is
/// beyond the bound (max(100, 5%)): held; confirmed, exactly those 150 are marked deleted.
pub(crate) async fn deletes_beyond_the_bound_are_held_then_confirmed(backend: Backend) {
    let rig = rig(backend).await;
    let s = rig.sim.populate("crm", 1, &["Contact"], 300).remove(0);
    rig.webhook_sync(&s).await;
    let lost: Vec<String> = (0..150).map(|i| format!("contact-{}", i * 2)).collect();
    rig.sim
        .hard_delete(&s, &lost.iter().map(String::as_str).collect::<Vec<_>>());
    let outcomes = rig.reconcile().await;
    assert_eq!(sweeps(&outcomes), 1, "the drift is real: a sweep ran");
    // The job says so too: its event is "Stream held" and its metrics count a held sweep.
    let held_jobs: Vec<_> = outcomes
        .iter()
        .filter(
            |o| matches!(o, JobOutcome::Synced(s) if s.sweep_outcome == Some(SweepOutcome::Held)),
        )
        .collect();
    assert_eq!(held_jobs.len(), 1, "{outcomes:?}");
    let metrics = JobMetrics::of_outcome(
        held_jobs[0],
        "synced",
        1,
        Default::default(),
        rig.app.settings.clock.now(),
    );
    assert!(metrics.sweep_held && metrics.swept == 0, "{metrics:?}");
    assert_eq!(rig.live(&s).await, 300, "held: nothing marked deleted");
    let state = rig.state(&s).await;
    assert_eq!(state.status(), StreamStatus::Held);
    assert_eq!(
        state.last_sweep.as_ref().unwrap().outcome,
        SweepOutcome::Held
    );
    let held = state.held.unwrap();
    assert_eq!(
        (held.would_delete, held.live_count, held.nango_count),
        (150, 300, 150)
    );
    assert!(held.reason.contains("bound of 100"), "{}", held.reason);

    // Held streams are not swept again while they wait.
    assert_eq!(sweeps(&rig.reconcile().await), 0);
    let result = decide_held(
        &rig.app.records,
        &rig.app.state,
        &s,
        HoldDecision::Confirm,
        &*rig.app.settings.clock,
    )
    .await
    .unwrap();
    assert_eq!((result.tombstoned, result.live_count), (150, 150));
    let mut deleted = rig.marked_deleted(&s).await;
    deleted.sort();
    let mut expected = lost;
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!(rig.state(&s).await.status(), StreamStatus::Ok);
    assert_eq!(
        sweeps(&rig.reconcile().await),
        0,
        "Nango and the copy agree"
    );
}

/// emptyCache in a checkpointed pass of three slices: the cache is cleared, then refilled over
/// the slices. While the pass runs (a webhook's `checkpoints.to` set, a checkpoint in
/// /sync/status, a RUNNING sync) no check runs and nothing is deleted; re-added records are
/// plain upserts. Once the last slice ends the pass, the 3 records the provider no longer has
/// are swept.
pub(crate) async fn a_sliced_empty_cache_pass_deletes_nothing_until_it_ends(backend: Backend) {
    let rig = rig(backend).await;
    let s = rig.sim.populate("crm", 1, &["Contact"], 600).remove(0);
    let name = rig.sim.sync_name(&s);
    rig.webhook_sync(&s).await;
    let all = rig.sim.live_payloads(&s);
    let slice_webhook = |from: Option<u32>, to: Option<u32>| {
        let point = |n: Option<u32>| n.map(|n| json!({"page": n}));
        webhooks::sync_slice(&s, &name, Changes::default(), point(from), point(to))
    };
    let ran = || SyncRun {
        finished_at: Some(now_rfc3339()),
        ..SyncRun::default()
    };
    // Slice 1: the cache is emptied, 200 come back ADDED. /sync/status shows the checkpoint.
    rig.sim.tick();
    rig.sim.wipe(&s);
    rig.sim.save(&s, all[..200].to_vec());
    rig.sim.set_run(
        &s,
        SyncRun {
            checkpoint: Some(json!({"page": 1})),
            ..ran()
        },
    );
    rig.deliver(&slice_webhook(None, Some(1))).await;
    assert_eq!(sweeps(&rig.reconcile().await), 0);
    assert_untouched(&rig, &s, 600).await;
    let stored = rig.stored(&s).await;
    let meta = &stored[&all[0].0]["_nango_metadata"];
    assert_eq!(
        meta["last_action"], "ADDED",
        "re-added: an upsert, never a delete + add"
    );

    // Slice 2 runs: /sync/status says RUNNING.
    rig.sim.tick();
    rig.sim.save(&s, all[200..400].to_vec());
    rig.sim.set_run(
        &s,
        SyncRun {
            status: RunStatus::Running,
            ..ran()
        },
    );
    assert_eq!(sweeps(&rig.reconcile().await), 0);
    assert_untouched(&rig, &s, 600).await;
    // It ends and its webhook says the pass goes on; /sync/status shows no checkpoint between
    // the slices: the webhook keeps the check off (the run finished before it was sent).
    rig.sim.set_run(&s, ran());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    rig.deliver(&slice_webhook(Some(1), Some(2))).await;
    assert_eq!(sweeps(&rig.reconcile().await), 0);
    assert_untouched(&rig, &s, 600).await;
    assert!(rig.state(&s).await.nango.pass_open_since.is_some());

    // Slice 3 ends the pass; the provider no longer has the last 3 records.
    rig.sim.tick();
    rig.sim.save(&s, all[400..597].to_vec());
    rig.sim.set_run(&s, ran());
    rig.deliver(&slice_webhook(Some(2), None)).await;
    assert!(rig.state(&s).await.nango.pass_open_since.is_none());
    assert_eq!(sweeps(&rig.reconcile().await), 1);
    assert_eq!(rig.live(&s).await, 597);
    let mut deleted = rig.marked_deleted(&s).await;
    deleted.sort();
    let mut expected: Vec<String> = all[597..].iter().map(|(id, _)| id.clone()).collect();
    expected.sort();
    assert_eq!(deleted, expected);
}

/// Nango before 2026-09 (and older self-hosted Nango) reports recordCount 0 for every non-base
/// variant. A count of 0 while /records still serves live records is not drift: no re-read, and
/// the copy is left alone.
pub(crate) async fn a_variant_count_of_zero_is_not_trusted(backend: Backend) {
    let rig = rig(backend).await;
    let s = StreamKey::new("crm", "conn-0", "Contact", "eu");
    rig.sim
        .save(&s, (0..250).map(|i| (format!("c{i}"), sample_payload(i))));
    rig.webhook_sync(&s).await;
    rig.sim.set_variant_count_bug(true);
    for _ in 0..2 {
        assert_eq!(sweeps(&rig.reconcile().await), 0);
        assert_eq!(rig.live(&s).await, 250);
        let state = rig.state(&s).await;
        assert_eq!(state.status(), StreamStatus::Ok);
        let checked = state.nango.checked.unwrap();
        assert_eq!(
            (checked.nango_count, checked.live_count, checked.trusted),
            (0, 250, false)
        );
    }
    assert!(rig.marked_deleted(&s).await.is_empty());
}

/// Nango's `auth` deletion webhook: the connection's streams are `connection_deleted`, their
/// records kept (CONNECTION_DELETED=keep), reconciles stop syncing them; a later creation brings
/// them back. `tombstone` and `purge`, and an operator's `forget`, act on the records.
pub(crate) async fn a_deleted_connection_stops_syncing_and_keeps_its_records(backend: Backend) {
    let mut rig = rig(backend).await;
    let gone = rig.sim.populate("crm", 1, &["Contact", "Deal"], 40);
    let kept = rig.sim.populate("erp", 1, &["Invoice"], 10).remove(0);
    for s in gone.iter().chain([&kept]) {
        rig.webhook_sync(s).await;
    }
    let connection = gone[0].connection();
    rig.sim.delete_connection(&connection);
    rig.deliver(&webhooks::connection_deleted(&connection))
        .await;
    for s in &gone {
        let state = rig.state(s).await;
        assert_eq!(state.status(), StreamStatus::ConnectionDeleted);
        assert_eq!(rig.live(s).await, 40, "kept by default");
    }
    rig.reconcile().await;
    assert_eq!(
        rig.reconciled_streams(),
        vec![kept.message_group_id()],
        "only the live connection's stream is synced"
    );

    // Created again: back, synced, status ok.
    let creation = json!({"type": "auth", "from": "nango", "operation": "creation", "success": true,
        "connectionId": connection.connection_id, "providerConfigKey": connection.provider_config_key,
        "authMode": "OAUTH2", "provider": "crm", "environment": "dev"})
    .to_string();
    rig.sim.populate("crm", 1, &["Contact", "Deal"], 40);
    rig.deliver(&creation).await;
    rig.reconcile().await;
    assert_eq!(rig.reconciled_streams().len(), 3);
    for s in &gone {
        assert_eq!(rig.state(s).await.status(), StreamStatus::Ok);
    }

    // CONNECTION_DELETED=tombstone marks them deleted; purge removes them.
    rig.app.settings.connection_deleted = ConnectionDeletedMode::Tombstone;
    rig.deliver(&webhooks::connection_deleted(&connection))
        .await;
    for s in &gone {
        assert_eq!(rig.live(s).await, 0);
        assert_eq!(rig.marked_deleted(s).await.len(), 40);
    }
    rig.deliver(&creation).await;
    rig.app.settings.connection_deleted = ConnectionDeletedMode::Purge;
    rig.deliver(&webhooks::connection_deleted(&connection))
        .await;
    for s in &gone {
        assert!(rig.stored(s).await.is_empty());
    }

    // `nango-sync forget`: the operator's word.
    let erp = ConnectionKey {
        provider_config_key: "erp".into(),
        connection_id: "conn-0".into(),
    };
    let forgotten = nango_sync::core::connection::forget_connection(
        &rig.app.records,
        &rig.app.state,
        &erp,
        false,
        &*rig.app.settings.clock,
    )
    .await
    .unwrap();
    assert_eq!(forgotten, vec![(kept.clone(), 10)]);
    assert_eq!(
        rig.state(&kept).await.status(),
        StreamStatus::ConnectionDeleted
    );
    assert_eq!(rig.marked_deleted(&kept).await.len(), 10);
}

/// A sync Nango no longer lists for a connection it still lists (disabled or deleted: Nango
/// hard-deletes its records a day later): never swept, status nango_purged, copy kept.
pub(crate) async fn a_dropped_sync_keeps_its_copy(backend: Backend) {
    let rig = rig(backend).await;
    let streams = rig.sim.populate("crm", 1, &["Contact", "Deal"], 120);
    for s in &streams {
        rig.webhook_sync(s).await;
    }
    rig.sim.drop_sync(&streams[0]);
    for _ in 0..2 {
        assert_eq!(sweeps(&rig.reconcile().await), 0);
        assert_eq!(rig.live(&streams[0]).await, 120);
        assert_eq!(
            rig.state(&streams[0]).await.status(),
            StreamStatus::NangoPurged
        );
        assert_eq!(rig.state(&streams[1]).await.status(), StreamStatus::Ok);
    }
    assert!(rig.marked_deleted(&streams[0]).await.is_empty());
}

/// A reconcile of a stream whose counts agreed at the last check and which nothing was written
/// to since reads no partition: no COUNT query (DynamoDB: at most 5 read units for the stream).
pub(crate) async fn an_unchanged_stream_is_checked_without_reading_its_partition(backend: Backend) {
    let rig = rig(backend).await;
    let s = rig.sim.populate("crm", 1, &["Contact"], 1_500).remove(0);
    rig.webhook_sync(&s).await;
    rig.reconcile().await;
    let first = rig.state(&s).await.nango.checked.unwrap();
    assert_eq!(
        (first.nango_count, first.live_count, first.trusted),
        (1_500, 1_500, true)
    );
    let before = rig.meter.as_ref().map(|m| (m.read_units(), m.read_calls()));
    rig.reconcile().await;
    assert_eq!(
        rig.state(&s).await.nango.checked.unwrap(),
        first,
        "no new count"
    );
    if let (Some(meter), Some((units, (gets, queries, scans)))) = (&rig.meter, before) {
        let (gets_now, queries_now, scans_now) = meter.read_calls();
        assert_eq!(queries_now, queries, "no Query: the partition is not read");
        let spent = meter.read_units() - units;
        assert!(spent <= 5.0, "{spent} read units for one unchanged stream");
        assert!(
            gets_now > gets && scans_now > scans,
            "the meter counts the reads made"
        );
    }
    // Something written since: counted again.
    rig.sim.tick();
    rig.sim.save(&s, [("new".to_owned(), sample_payload(1))]);
    rig.webhook_sync(&s).await;
    rig.reconcile().await;
    let second = rig.state(&s).await.nango.checked.unwrap();
    assert_eq!((second.nango_count, second.live_count), (1_501, 1_501));
}

/// No stream's sync waits for a count: a reconcile's sync jobs, one batch, bring every stream
/// up to date (the one whose webhook Nango dropped included) and count nothing; each stream's
/// count is a job of its own in the stream's group, queued behind them, and the stream whose
/// cache lost records is swept there.
pub(crate) async fn a_reconciles_syncs_all_run_before_any_count(backend: Backend) {
    let rig = rig(backend).await;
    let streams = rig
        .sim
        .populate("crm", 1, &["Contact", "Deal", "Ticket"], 300);
    for s in &streams {
        rig.webhook_sync(s).await;
    }
    let (lossy, missed) = (&streams[1], &streams[2]);
    let lost = ["deal-1", "deal-2", "deal-3"];
    assert_eq!(rig.sim.hard_delete(lossy, &lost), 3);
    // A new ticket whose webhook Nango dropped.
    rig.sim.tick();
    rig.sim
        .save(missed, [("ticket-new".to_owned(), sample_payload(1))]);

    rig.fan_out("2026-12-03T11:00:00.000Z", 3).await;
    let syncs = rig.take_batch();
    let queries = rig.meter.as_ref().map(|m| m.read_calls().1);
    assert_eq!(rig.app.handle(&syncs, None).await, Vec::<String>::new());
    if let (Some(meter), Some(queries)) = (&rig.meter, queries) {
        assert_eq!(meter.read_calls().1, queries, "no Query: no partition read");
    }
    assert!(
        rig.stored(missed).await.contains_key("ticket-new"),
        "healed before any count"
    );
    for s in &streams {
        assert_eq!(
            rig.state(s).await.nango.checked,
            None,
            "{}: no count yet",
            s.encode()
        );
    }
    assert_eq!(rig.live(lossy).await, 300, "nothing swept yet");

    // The counts, a job per stream in its own group, after every sync of the batch.
    let counts = rig.take_batch();
    assert_eq!(counts.len(), syncs.len());
    // A set: the streams' syncs end, and enqueue their counts, in any order.
    let groups = |batch: &[ReceivedMessage]| {
        batch
            .iter()
            .map(|m| m.group_id.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(groups(&counts), groups(&syncs));
    assert_eq!(rig.app.handle(&counts, None).await, Vec::<String>::new());
    for s in [&streams[0], missed] {
        let checked = rig.state(s).await.nango.checked.expect("counted");
        assert_eq!(checked.nango_count, checked.live_count, "{}", s.encode());
    }
    let mut deleted = rig.marked_deleted(lossy).await;
    deleted.sort();
    assert_eq!(deleted, lost);
    assert_eq!(rig.live(lossy).await, 297);
    assert!(rig.take_batch().is_empty(), "nothing left to run");
}

/// After a round of changes (adds, updates, deletes, an undelete; one stream's webhook dropped,
/// and a change Nango made after it listed its counts), a reconcile works out every stream's
/// live count from what the syncs applied: no partition is read, and the copy agrees with Nango.
/// A cache that lost records without a delete still disagrees: counted and swept.
pub(crate) async fn a_reconcile_after_changes_counts_nothing_it_can_work_out(backend: Backend) {
    let rig = rig(backend).await;
    let streams = rig
        .sim
        .populate("crm", 1, &["Contact", "Deal", "Ticket"], 1_200);
    for s in &streams {
        rig.webhook_sync(s).await;
    }
    rig.reconcile().await;
    let mut counted = Vec::new();
    for s in &streams {
        let checked = rig
            .state(s)
            .await
            .nango
            .checked
            .expect("the first check counts");
        assert_eq!((checked.nango_count, checked.live_count), (1_200, 1_200));
        assert!(checked.counted_at.is_some());
        counted.push(checked.counted_at);
    }

    // A round of changes. Contacts: a record deleted, synced, then saved again (an undelete).
    let mut rng = fastrand::Rng::with_seed(7);
    for (i, s) in streams.iter().enumerate() {
        rig.sim.tick();
        // Churn adds as many as it deletes: new records move each stream's count.
        rig.sim.churn(s, 0.05, &mut rng);
        rig.sim.save(
            s,
            (0..=i).map(|k| (format!("extra-{k}"), sample_payload(k))),
        );
    }
    // A bulk import of more than a page, some of it changed again before it was read: those
    // are served only on the sync's second page, though they began before its first page ended.
    rig.sim.tick();
    rig.sim.save(
        &streams[0],
        (0..700).map(|k| (format!("bulk-{k}"), sample_payload(k))),
    );
    rig.sim.tick();
    rig.sim.save(
        &streams[0],
        (0..700)
            .step_by(7)
            .map(|k| (format!("bulk-{k}"), sample_payload(k + 1_000))),
    );
    rig.sim.tick();
    assert_eq!(rig.sim.delete(&streams[0], &["contact-7"]), 1);
    rig.webhook_sync(&streams[0]).await;
    rig.sim.tick();
    rig.sim
        .save(&streams[0], [("contact-7".to_owned(), sample_payload(7))]);
    rig.webhook_sync(&streams[0]).await;
    rig.webhook_sync(&streams[1]).await;
    // Tickets: Nango dropped the webhook; the reconcile's sync heals them.

    rig.fan_out("2026-12-03T11:00:00.000Z", 3).await;
    // Deals change after Nango listed its counts, before their sync job runs.
    rig.sim.tick();
    rig.sim
        .save(&streams[1], [("deal-late".to_owned(), sample_payload(1))]);
    let syncs = rig.take_batch();
    let queries = rig.meter.as_ref().map(|m| m.read_calls().1);
    assert_eq!(rig.app.handle(&syncs, None).await, Vec::<String>::new());
    assert!(rig.take_batch().is_empty(), "no count goes on");
    if let (Some(meter), Some(queries)) = (&rig.meter, queries) {
        assert_eq!(meter.read_calls().1, queries, "no Query: no partition read");
    }
    for (s, counted_at) in streams.iter().zip(&counted) {
        let checked = rig.state(s).await.nango.checked.unwrap();
        let nango = rig.sim.live_payloads(s).len() as u64;
        assert_ne!(nango, 1_200, "{}: the round changed it", s.encode());
        assert_eq!(
            (checked.nango_count, checked.live_count, rig.live(s).await),
            (nango, nango, nango),
            "{}: worked out, and true",
            s.encode()
        );
        assert_eq!(
            &checked.counted_at,
            counted_at,
            "{}: not counted",
            s.encode()
        );
    }

    // A cache that lost records without a delete, and as many deletes after Nango listed its
    // counts: set against the listing, the sum would agree. Against Nango's count now, it
    // does not: counted, swept.
    let lost = ["ticket-1", "ticket-2", "ticket-3"];
    assert_eq!(rig.sim.hard_delete(&streams[2], &lost), 3);
    rig.fan_out("2026-12-03T11:30:00.000Z", 3).await;
    rig.sim.tick();
    let late = ["ticket-4", "ticket-5", "ticket-6"];
    assert_eq!(rig.sim.delete(&streams[2], &late), 3);
    rig.drain().await;
    let mut deleted: Vec<String> = rig.marked_deleted(&streams[2]).await;
    deleted.retain(|id| lost.contains(&id.as_str()) || late.contains(&id.as_str()));
    deleted.sort();
    assert_eq!(deleted, [lost, late].concat(), "swept, and synced");
    // The sweep's deletes escaped the sum: the next reconcile counts again, and agrees.
    rig.reconcile().await;
    let checked = rig.state(&streams[2]).await.nango.checked.unwrap();
    assert_ne!(checked.counted_at, counted[2], "counted again");
    assert_eq!(checked.nango_count, checked.live_count);
    assert_eq!(
        checked.live_count,
        rig.sim.live_payloads(&streams[2]).len() as u64
    );
}

/// A sweep reads the whole stream again but writes only what differs: Nango's cache lost 4
/// records (marked deleted), and the copy had lost 3 (marked deleted here by hand, live at
/// Nango) and held 2 at an older version (a change committed behind the cursor). The other
/// 1,991 records are not written again: the sweep notes what Nango served apart from them.
pub(crate) async fn a_sweep_writes_only_what_the_copy_missed(backend: Backend) {
    let rig = rig(backend).await;
    let stream = &rig.sim.populate("crm", 1, &["Contact"], 2_000)[0];
    rig.webhook_sync(stream).await;
    let nango_lost: Vec<String> = (0..4).map(|i| format!("contact-{}", 100 + i)).collect();
    let ids: Vec<&str> = nango_lost.iter().map(String::as_str).collect();
    assert_eq!(rig.sim.hard_delete(stream, &ids), 4);
    let copy_lost: Vec<String> = (0..3).map(|i| format!("contact-{}", 200 + i)).collect();
    let records = &rig.app.records;
    let at = "2026-12-01T00:00:00.000Z";
    assert_eq!(
        records.remove_unseen(stream, &copy_lost, at).await.unwrap(),
        3
    );
    let stale: Vec<String> = (0..2).map(|i| format!("contact-{}", 300 + i)).collect();
    let stored = rig.stored(stream).await;
    let older: Vec<NangoRecord> = stale
        .iter()
        .map(|id| {
            let mut object = stored[id].clone();
            object.insert("name".into(), json!("an older version"));
            object["_nango_metadata"]["cursor"] = json!("an older cursor");
            NangoRecord::from_object(object).unwrap()
        })
        .collect();
    records.write_page(stream, &older).await.unwrap();
    let units_before = rig.meter.as_ref().map(|m| m.write_units());

    let outcomes = rig.reconcile().await;
    assert_eq!(sweeps(&outcomes), 1);
    let sweep = outcomes
        .iter()
        .find_map(|o| match o {
            JobOutcome::Synced(s) | JobOutcome::Continued(s) => s.sweep.as_deref(),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (sweep.written, sweep.deleted),
        (5, 4),
        "the 3 lost from the copy and the 2 stale written, the 4 Nango lost marked deleted"
    );
    let mut deleted = rig.marked_deleted(stream).await;
    deleted.sort();
    assert_eq!(deleted, nango_lost);
    assert_eq!(rig.live(stream).await, 1_996);
    // Every record now as Nango serves it, payload and metadata.
    let stored = rig.stored(stream).await;
    let served = rig.sim.page(stream, None, 10_000).unwrap();
    let served = served["records"].as_array().unwrap();
    assert_eq!(served.len(), 1_996);
    for record in served {
        let id = record["id"].as_str().unwrap();
        assert_eq!(Value::Object(stored[id].clone()), *record, "{id}");
    }
    if let (Some(meter), Some(before)) = (&rig.meter, units_before) {
        // Rewriting the stream would take a unit per record; its notes and 9 writes take a
        // few dozen.
        let units = meter.write_units() - before;
        assert!(units < 200.0, "{units} write units");
    }
}

/// A sweep a worker of the previous release began (it stamped the records it read instead of
/// noting them) and this one finishes: the pages it did not note would leave their records
/// looking unseen (50 of them plus the 2 Nango lost: within the guard's bound, so they would be
/// marked deleted). It starts over from the first page and marks deleted only what Nango lost.
pub(crate) async fn a_sweep_begun_by_the_previous_release_starts_over(backend: Backend) {
    let rig = rig(backend).await;
    let stream = &rig.sim.populate("crm", 1, &["Contact"], 300)[0];
    rig.webhook_sync(stream).await;
    let lost = ["contact-7", "contact-8"];
    assert_eq!(rig.sim.hard_delete(stream, &lost), 2);
    // The older worker's sweep read the first 50 records.
    let read_so_far = rig.sim.page(stream, None, 50).unwrap()["records"][49]["_nango_metadata"]
        ["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let sweep = SweepState {
        id: "sweep begun before the upgrade".into(),
        cursor: None,
        started_at: now_rfc3339(),
        nango_count: 298,
        notes_pages: false,
    };
    let state = &rig.app.state;
    state.begin_sweep(stream, &sweep).await.unwrap();
    state
        .advance_sweep(stream, &sweep.id, None, &read_so_far)
        .await
        .unwrap();

    rig.webhook_sync(stream).await;
    let last = rig.state(stream).await.last_sweep.unwrap();
    assert_eq!((last.outcome, last.tombstoned), (SweepOutcome::Applied, 2));
    let mut deleted = rig.marked_deleted(stream).await;
    deleted.sort();
    assert_eq!(deleted, lost);
    assert_eq!(rig.live(stream).await, 298);
}

/// What one sync job did: its summary.
fn synced(outcome: &JobOutcome) -> &SyncSummary {
    match outcome {
        JobOutcome::Synced(s) | JobOutcome::Continued(s) => s,
        other => panic!("not a sync: {other:?}"),
    }
}

/// A re-read of a stream the copy holds writes only what changed: after `reset` (the cursor
/// cleared) and after emptyCache (every record re-added under new cursors). Each time 2 records
/// changed at Nango meanwhile and are written; the other 1,998 are left alone, and the copy
/// holds every payload as Nango serves it.
pub(crate) async fn a_re_read_writes_only_what_changed(backend: Backend) {
    let rig = rig(backend).await;
    let s = rig.sim.populate("crm", 1, &["Contact"], 2_000).remove(0);
    let first = rig.webhook_sync(&s).await;
    assert_eq!(synced(&first).written, 2_000);
    assert_eq!(synced(&first).unchanged, 0, "a first sync is no re-read");
    let change = |rig: &Rig, ids: [&str; 2], name: &str| {
        rig.sim.tick();
        let mut payloads: BTreeMap<String, Map<String, Value>> =
            rig.sim.live_payloads(&s).into_iter().collect();
        for id in ids {
            payloads
                .get_mut(id)
                .unwrap()
                .insert("name".into(), json!(name));
        }
        let changed = ids.map(|id| (id.to_owned(), payloads[id].clone()));
        rig.sim.save(&s, changed);
    };
    let assert_copy_is_nangos = |stored: BTreeMap<String, Map<String, Value>>| {
        let served = rig.sim.live_payloads(&s);
        assert_eq!(served.len(), 2_000);
        for (id, payload) in served {
            let mut kept = stored[&id].clone();
            kept.remove("_nango_metadata");
            kept.remove("id");
            assert_eq!(kept, payload, "{id}");
        }
    };
    // A webhook's sync that re-reads the stream: only the 2 changed records are written.
    let sync_re_reading = || async {
        let before = rig.meter.as_ref().map(|m| m.write_units());
        let outcome = rig.webhook_sync(&s).await;
        let summary = synced(&outcome);
        assert_eq!(
            (summary.written, summary.unchanged),
            (2, 1_998),
            "only the 2 changed records are written"
        );
        assert_copy_is_nangos(rig.stored(&s).await);
        if let (Some(meter), Some(before)) = (&rig.meter, before) {
            let spent = meter.write_units() - before;
            assert!(spent < 20.0, "{spent} write units to re-read 2,000 records");
        }
    };

    // reset: the next sync reads the whole stream from the start.
    change(
        &rig,
        ["contact-10", "contact-1500"],
        "changed before the reset",
    );
    rig.app.state.reset_cursor(&s).await.unwrap();
    sync_re_reading().await;

    // emptyCache: Nango clears its cache and re-adds every record, ADDED under a new cursor.
    rig.sim.tick();
    let all = rig.sim.live_payloads(&s);
    rig.sim.wipe(&s);
    rig.sim.save(&s, all);
    change(
        &rig,
        ["contact-20", "contact-1999"],
        "changed with the re-add",
    );
    sync_re_reading().await;

    // A normal sync after it is no re-read: its small page does not qualify.
    change(&rig, ["contact-30", "contact-31"], "changed after");
    let normal = rig.webhook_sync(&s).await;
    assert_eq!((synced(&normal).written, synced(&normal).unchanged), (2, 0));
    assert_copy_is_nangos(rig.stored(&s).await);
}
