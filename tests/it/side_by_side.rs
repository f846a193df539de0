//! A batch's streams run side by side, each stream's messages in order and never two at once
//! (`WorkerApp::handle`), on the embedded store with Nango simulated over HTTP. And records read
//! by id (`RecordSource::fetch_ids`) through the same client and simulated Nango.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::adapters::nango::NangoClient;
use nango_sync::adapters::sqlite::SqliteDb;
use nango_sync::core::nango_status::{DiscoveredStream, NangoSync};
use nango_sync::core::record::RecordsPage;
use nango_sync::core::stream::StreamKey;
use nango_sync::core::worker::{WorkerApp, WorkerSettings};
use nango_sync::core::write::DeleteMode;
use nango_sync::core::writes::request::WriteRequest;
use nango_sync::core::writes::state::ActionResult;
use nango_sync::core::writes::state::Sent;
use nango_sync::local::backend::Store;
use nango_sync::ports::{
    PermanentReason, ReceivedMessage, RecordSource, RecordStore, SourceError, StreamDiscovery,
    WriteSender, MAX_IDS,
};
use nango_sync::simulator::server::{AccountLimit, ServerSettings, SimServer};
use nango_sync::simulator::{sample_payload, Simulator};
use serde_json::Value;

use crate::common::{nango_client, sync_job, unique_name, API_KEY};

/// Nango's records API, watched: how many pages of each stream are being fetched at once.
struct Watched {
    inner: NangoClient,
    in_flight: Mutex<HashMap<String, usize>>,
    /// The most fetches of one stream in flight at once.
    most_of_one_stream: AtomicUsize,
    /// The most fetches in flight at once, all streams.
    most_at_once: AtomicUsize,
}

impl Watched {
    fn enter(&self, stream: &StreamKey) {
        let mut in_flight = self.in_flight.lock().unwrap();
        let mine = in_flight.entry(stream.encode()).or_default();
        *mine += 1;
        self.most_of_one_stream.fetch_max(*mine, Ordering::SeqCst);
        let all = in_flight.values().sum();
        self.most_at_once.fetch_max(all, Ordering::SeqCst);
    }

    fn leave(&self, stream: &StreamKey) {
        *self
            .in_flight
            .lock()
            .unwrap()
            .get_mut(&stream.encode())
            .unwrap() -= 1;
    }
}

impl RecordSource for Watched {
    async fn fetch_page(
        &self,
        stream: &StreamKey,
        cursor: Option<&str>,
        until: Option<Instant>,
    ) -> Result<RecordsPage, SourceError> {
        self.enter(stream);
        let page = self.inner.fetch_page(stream, cursor, until).await;
        self.leave(stream);
        page
    }

    async fn fetch_ids(
        &self,
        stream: &StreamKey,
        ids: &[&str],
        until: Option<Instant>,
    ) -> Result<RecordsPage, SourceError> {
        self.enter(stream);
        let page = self.inner.fetch_ids(stream, ids, until).await;
        self.leave(stream);
        page
    }
}

impl WriteSender for Watched {
    async fn send(&self, request: &WriteRequest) -> Sent {
        self.inner.send(request).await
    }

    async fn action_result(&self, request: &WriteRequest, action_id: &str) -> ActionResult {
        self.inner.action_result(request, action_id).await
    }

    async fn trigger_sync(&self, stream: &StreamKey, sync_name: &str) -> Result<(), String> {
        self.inner.trigger_sync(stream, sync_name).await
    }
}

impl StreamDiscovery for Watched {
    async fn discover(&self) -> Result<Vec<DiscoveredStream>, SourceError> {
        self.inner.discover().await
    }

    async fn sync_of(&self, stream: &StreamKey) -> Result<Option<NangoSync>, SourceError> {
        self.inner.sync_of(stream).await
    }
}

struct Rig {
    sim: Arc<Simulator>,
    server: SimServer,
    app: WorkerApp<Watched, Store, Store, MemoryQueue>,
}

async fn rig(streams_at_once: usize) -> Rig {
    rig_limited(streams_at_once, None).await
}

async fn rig_limited(streams_at_once: usize, account_limit: Option<AccountLimit>) -> Rig {
    let sim = Arc::new(Simulator::new());
    let settings = ServerSettings {
        latency: Duration::from_millis(20),
        account_limit,
        ..ServerSettings::default()
    };
    let server = SimServer::start(Arc::clone(&sim), settings).await.unwrap();
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("side")));
    let store = Store::sqlite(SqliteDb::open(&path).unwrap(), DeleteMode::Tombstone);
    let app = WorkerApp {
        source: Watched {
            inner: nango_client(&server.url, 40),
            in_flight: Mutex::default(),
            most_of_one_stream: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
        },
        records: store.clone(),
        state: store,
        queue: MemoryQueue::new(),
        settings: WorkerSettings {
            streams_at_once,
            ..WorkerSettings::default()
        },
    };
    Rig { sim, server, app }
}

/// Three sync messages for each stream, interleaved as SQS delivers FIFO groups.
fn interleaved(streams: &[StreamKey]) -> Vec<ReceivedMessage> {
    (0..3)
        .flat_map(|round| {
            streams.iter().map(move |s| ReceivedMessage {
                message_id: format!("{} #{round}", s.encode()),
                receipt_handle: format!("receipt {} #{round}", s.encode()),
                body: sync_job(s),
                group_id: Some(s.message_group_id()),
            })
        })
        .collect()
}

#[tokio::test]
async fn streams_run_side_by_side_and_a_streams_messages_never_at_once() {
    // Room for every message at once: only the grouping keeps a stream's messages apart.
    let rig = rig(10).await;
    let streams = rig
        .sim
        .populate("crm", 1, &["Contact", "Deal", "Ticket"], 200);
    let batch = interleaved(&streams);
    assert_eq!(rig.app.handle(&batch, None).await, Vec::<String>::new());
    for s in &streams {
        assert_eq!(rig.app.records.count_live(s).await.unwrap(), 200);
    }
    let source = &rig.app.source;
    assert_eq!(
        source.most_of_one_stream.load(Ordering::SeqCst),
        1,
        "two messages of one group ran at the same time"
    );
    assert!(
        source.most_at_once.load(Ordering::SeqCst) >= 2,
        "the streams ran one after another"
    );
}

#[tokio::test]
async fn one_at_a_time_when_so_configured() {
    let rig = rig(1).await;
    let streams = rig.sim.populate("crm", 1, &["Contact", "Deal"], 100);
    assert_eq!(
        rig.app.handle(&interleaved(&streams), None).await,
        Vec::<String>::new()
    );
    assert_eq!(rig.app.source.most_at_once.load(Ordering::SeqCst), 1);
}

/// A message that fails fails the later messages of its group, unprocessed; the other groups
/// run to the end.
#[tokio::test]
async fn a_failed_message_fails_the_rest_of_its_group_only() {
    let rig = rig(3).await;
    let streams = rig
        .sim
        .populate("crm", 1, &["Contact", "Deal", "Ticket"], 100);
    let mut batch = interleaved(&streams);
    // The Deal stream's first message is not a job.
    batch[1].body = "{not a job".to_owned();
    let mut failed = rig.app.handle(&batch, None).await;
    failed.sort();
    let deal = streams[1].encode();
    assert_eq!(
        failed,
        vec![
            format!("{deal} #0"),
            format!("{deal} #1"),
            format!("{deal} #2")
        ]
    );
    assert_eq!(rig.app.records.count_live(&streams[1]).await.unwrap(), 0);
    for s in [&streams[0], &streams[2]] {
        assert_eq!(rig.app.records.count_live(s).await.unwrap(), 100);
    }
}

/// One request budget for the process: six streams side by side against Nango's account limit
/// (scaled down from 200 a minute to 40 a second) draw no more 429s than the same six one after
/// another, and lose nothing.
#[tokio::test]
async fn streams_side_by_side_draw_no_more_429s_than_one_after_another() {
    let limit = AccountLimit {
        requests: 40,
        window: Duration::from_secs(1),
    };
    let mut over_limit = Vec::new();
    for streams_at_once in [1, 6] {
        let rig = rig_limited(streams_at_once, Some(limit)).await;
        let models = ["Contact", "Deal", "Ticket", "Lead", "Task", "Note"];
        // 400 records in pages of 40: 11 requests a stream, 66 in all, more than a window allows.
        let streams = rig.sim.populate("crm", 1, &models, 400);
        let batch: Vec<ReceivedMessage> = interleaved(&streams)
            .into_iter()
            .take(streams.len())
            .collect();
        assert_eq!(rig.app.handle(&batch, None).await, Vec::<String>::new());
        for s in &streams {
            assert_eq!(
                rig.app.records.count_live(s).await.unwrap(),
                400,
                "nothing lost"
            );
        }
        let requests = rig.server.stats.requests.load(Ordering::SeqCst);
        assert!(
            requests > limit.requests,
            "the limit was met: {requests} requests"
        );
        over_limit.push(rig.server.stats.over_limit.load(Ordering::SeqCst));
    }
    assert!(
        over_limit[1] <= over_limit[0],
        "429s one after another, then side by side: {over_limit:?}"
    );
}

/// Records read by id over HTTP (through `Watched`, the records client and the simulated Nango):
/// exactly those asked for, a deleted one included, in Nango's order, each as Nango holds it; an
/// unknown id is absent, and an id that needs encoding (`a+b/c`) is found. Ids ignored, the page
/// would hold the stream's first 100 records.
#[tokio::test]
async fn records_read_by_id_are_exactly_those_asked_for() {
    let rig = rig(1).await;
    let s = StreamKey::new("crm", "conn-0", "Contact", "base");
    rig.sim
        .save(&s, (0..150).map(|i| (format!("c{i}"), sample_payload(i))));
    rig.sim.tick();
    rig.sim
        .save(&s, [("a+b/c".to_owned(), sample_payload(150))]);
    rig.sim.tick();
    assert_eq!(rig.sim.delete(&s, &["c3"]), 1);
    let asked = ["c3", "no-such-id", "a+b/c", "c140", "c7"];
    let page = rig.app.source.fetch_ids(&s, &asked, None).await.unwrap();
    let got: Vec<(&str, bool)> = page
        .records
        .iter()
        .map(|r| (r.id.as_str(), r.is_deleted()))
        .collect();
    // c7 and c140 share a tick (ordered by uuid), then a+b/c, then c3's delete.
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(
        got[2..],
        [("a+b/c", false), ("c3", true)],
        "in Nango's order: {got:?}"
    );
    let mut first_two: Vec<&str> = got[..2].iter().map(|(id, _)| *id).collect();
    first_two.sort_unstable();
    assert_eq!(first_two, ["c140", "c7"]);
    assert_eq!(page.next_cursor(), None, "one page");
    let truth = rig.sim.snapshot(&s);
    for record in &page.records {
        let served: Value = serde_json::from_str(record.json()).unwrap();
        assert_eq!(served, truth[&record.id], "{} as Nango holds it", record.id);
    }
    assert_eq!(rig.server.stats.requests.load(Ordering::SeqCst), 1);
}

/// More ids than Nango takes: the client refuses them before any request, and the simulated
/// Nango answers 400 to a request that sends them anyway.
#[tokio::test]
async fn more_ids_than_nango_takes_are_refused() {
    let rig = rig(1).await;
    let s = StreamKey::new("crm", "conn-0", "Contact", "base");
    rig.sim.save(&s, [("c0".to_owned(), sample_payload(0))]);
    let many: Vec<String> = (0..=MAX_IDS).map(|i| format!("c{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let refused = rig.app.source.fetch_ids(&s, &many, None).await;
    assert!(
        matches!(
            refused,
            Err(SourceError::Permanent {
                reason: PermanentReason::BadRequest,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(rig.server.stats.requests.load(Ordering::SeqCst), 0);
    let at_most = rig.app.source.fetch_ids(&s, &many[..MAX_IDS], None).await;
    assert_eq!(at_most.unwrap().len(), 1, "MAX_IDS ids are taken");
    let url = rig.app.source.inner.records_url(&s, None, 100);
    let response = reqwest::Client::new()
        .get(format!("{url}&ids={}", many.join("&ids=")))
        .bearer_auth(API_KEY)
        .header("Connection-Id", &s.connection_id)
        .header("Provider-Config-Key", &s.provider_config_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_query_params", "{body}");
    assert_eq!(body["error"]["errors"][0]["path"][0], "ids", "{body}");
}
