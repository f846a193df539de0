//! Writes to the provider (issue "Two-way sync", item 2). The write store's contract: one state
//! item per write id, taken once, moved only from where its mover saw it. And the at-most-once
//! rules taken through a store against a fake provider. Both run on memory and SQLite here, on
//! DynamoDB in `aws::contract`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nango_sync::adapters::memory::{MemoryQueue, MemoryStore};
use nango_sync::adapters::sqlite::{SqliteDb, SqliteFeed};
use nango_sync::core::clock::{Clock, FixedClock};
use nango_sync::core::job::{JobMessage, Trigger};
use nango_sync::core::stream::StreamKey;
use nango_sync::core::worker::{WorkerApp, WorkerSettings};
use nango_sync::core::write::DeleteMode;
use nango_sync::core::writes::finish::{finish, Finished, RESULT_WINDOW};
use nango_sync::core::writes::request::WriteRequest;
use nango_sync::core::writes::state::ActionResult;
use nango_sync::core::writes::state::{Attempt, Sent, WriteState};
use nango_sync::core::writes::stored::{Accept, Move, Position, MAX_OUTCOME_BYTES};
use nango_sync::core::writes::take::{take, TakeSettings, Taken, INTERRUPTED};
use nango_sync::local::backend::Store;
use nango_sync::ports::{ReceivedMessage, WriteSender, WriteStore};
use nango_sync::simulator::server::{AccountLimit, ServerSettings, SimServer};
use nango_sync::simulator::writes::WriteFault;
use nango_sync::simulator::Simulator;
use serde_json::json;
use time::OffsetDateTime;

use crate::common::{nango_client, unique_name};

fn request(id: &str, deal: &str) -> WriteRequest {
    WriteRequest::parse(
        json!({"v": 1, "id": id, "provider_config_key": "hubspot", "connection_id": "u-1",
            "run": {"kind": "proxy", "method": "PATCH", "path": format!("/crm/deals/{deal}"),
                "headers": {"Nango-Proxy-Idempotency-Key": id}, "body": {"stage": "won"}},
            "record": {"model": "Deal", "id": deal}})
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn change<'a>(from: Position, to: Position, outcome: Option<&'a str>, at: &'a str) -> Move<'a> {
    Move {
        from,
        to,
        outcome,
        at,
        reached: None,
        action_id: None,
    }
}

pub(crate) async fn write_store_contract(store: impl WriteStore) {
    let first = request("w-1", "42");
    let t0 = "2026-12-07T10:00:00.000Z";
    assert_eq!(store.accept_write(&first, t0).await.unwrap(), Accept::New);
    let kept = store.get_write("w-1").await.unwrap().unwrap();
    assert_eq!(kept.request, first, "the request comes back whole");
    assert_eq!(kept.position, Position::ACCEPTED);
    assert_eq!((kept.accepted_at.as_str(), kept.outcome), (t0, None));
    assert_eq!(store.get_write("w-0").await.unwrap(), None);

    // The same id again, even for another deal, is the first write: nothing changes.
    let again = request("w-1", "43");
    let t1 = "2026-12-07T10:00:01.000Z";
    match store.accept_write(&again, t1).await.unwrap() {
        Accept::Duplicate(duplicate) => {
            assert_eq!(duplicate.request, first);
            assert_eq!(
                (duplicate.position, duplicate.accepted_at.as_str()),
                (Position::ACCEPTED, t0)
            );
        }
        Accept::New => panic!("a second write with a kept id was taken as new"),
    }

    // Two workers begin the same attempt: one of them moves it.
    let sending = Position::ACCEPTED.sending();
    let begin = change(Position::ACCEPTED, sending, None, t1);
    let (a, b) = tokio::join!(
        store.move_write("w-1", &begin),
        store.move_write("w-1", &begin)
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one mover wins");
    assert!(
        !store.move_write("w-1", &begin).await.unwrap(),
        "a stale move is refused"
    );
    assert!(
        !store.move_write("w-0", &begin).await.unwrap(),
        "no such write"
    );

    // A retry keeps the last outcome unless it is given a new one; the second attempt ends
    // unknown with what it came to.
    let t2 = "2026-12-07T10:00:02.000Z";
    let retry = sending.in_state(WriteState::Accepted);
    assert!(store
        .move_write(
            "w-1",
            &change(sending, retry, Some("nango answered 429"), t2)
        )
        .await
        .unwrap());
    assert!(
        !store.move_write("w-1", &begin).await.unwrap(),
        "accepted again, but after an attempt: the first attempt's mover is refused"
    );
    let second = retry.sending();
    assert!(store
        .move_write("w-1", &change(retry, second, None, t2))
        .await
        .unwrap());
    let kept = store.get_write("w-1").await.unwrap().unwrap();
    assert_eq!(
        (kept.position, kept.outcome.as_deref()),
        (second, Some("nango answered 429"))
    );
    let long = "x".repeat(MAX_OUTCOME_BYTES + 10);
    let unknown = second.in_state(WriteState::Unknown);
    let t3 = "2026-12-07T10:00:03.000Z";
    assert!(store
        .move_write("w-1", &change(second, unknown, Some(&long), t3))
        .await
        .unwrap());
    let kept = store.get_write("w-1").await.unwrap().unwrap();
    assert_eq!(
        kept.position,
        Position {
            state: WriteState::Unknown,
            attempts: 2
        }
    );
    // The late end of the second attempt (same attempts, another state) is refused.
    let late = change(second, second.in_state(WriteState::Succeeded), None, t3);
    assert!(
        !store.move_write("w-1", &late).await.unwrap(),
        "a move from sending applied to an unknown write"
    );
    assert_eq!(
        (kept.changed_at.as_str(), kept.accepted_at.as_str()),
        (t3, t0)
    );
    assert_eq!(kept.outcome.map(|o| o.len()), Some(MAX_OUTCOME_BYTES));

    // Whether an attempt may have reached the provider: set by a move that says so, kept by one
    // that says nothing, cleared by one that says not.
    let kept = store.get_write("w-1").await.unwrap().unwrap();
    assert!(!kept.maybe_reached);
    let t4 = "2026-12-07T10:00:04.000Z";
    let mut reached = change(unknown, unknown.in_state(WriteState::Accepted), None, t4);
    reached.reached = Some(true);
    assert!(store.move_write("w-1", &reached).await.unwrap());
    let retried = unknown.in_state(WriteState::Accepted);
    let third = change(retried, retried.sending(), None, t4);
    assert!(store.move_write("w-1", &third).await.unwrap());
    assert!(store.get_write("w-1").await.unwrap().unwrap().maybe_reached);
    let mut cleared = change(
        retried.sending(),
        retried.sending().in_state(WriteState::Unknown),
        None,
        t4,
    );
    cleared.reached = Some(false);
    assert!(store.move_write("w-1", &cleared).await.unwrap());
    let kept = store.get_write("w-1").await.unwrap().unwrap();
    assert!(!kept.maybe_reached);
    let unknown = kept.position;

    // A duplicate now reports the first write's outcome.
    match store.accept_write(&first, t3).await.unwrap() {
        Accept::Duplicate(duplicate) => assert_eq!(duplicate.position, unknown),
        Accept::New => panic!("a kept write was taken again"),
    }

    // Listed oldest accepted first, then by id.
    store
        .accept_write(&request("w-3", "7"), "2026-12-07T09:00:00.000Z")
        .await
        .unwrap();
    store
        .accept_write(&request("w-2", "7"), "2026-12-07T09:00:00.000Z")
        .await
        .unwrap();
    let listed: Vec<(String, WriteState)> = store
        .list_writes()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.request.id, w.position.state))
        .collect();
    assert_eq!(
        listed,
        [
            ("w-2".to_owned(), WriteState::Accepted),
            ("w-3".to_owned(), WriteState::Accepted),
            ("w-1".to_owned(), WriteState::Unknown),
        ]
    );

    // An async action Nango took: the write is found by the action's id, and listed among the
    // running ones, until it ends; no other write is.
    assert!(store.running_writes().await.unwrap().is_empty());
    let t5 = "2026-12-07T10:00:05.000Z";
    let sending = Position::ACCEPTED.sending();
    assert!(store
        .move_write("w-2", &change(Position::ACCEPTED, sending, None, t5))
        .await
        .unwrap());
    let running = sending.in_state(WriteState::Running);
    let mut took = change(sending, running, Some("202"), t5);
    took.action_id = Some("act-1");
    assert!(store.move_write("w-2", &took).await.unwrap());
    let found = store.write_for_action("act-1").await.unwrap().unwrap();
    assert_eq!(
        (
            found.request.id.as_str(),
            found.position,
            found.action_id.as_deref()
        ),
        ("w-2", running, Some("act-1"))
    );
    assert_eq!(store.write_for_action("act-0").await.unwrap(), None);
    assert_eq!(ids_of(store.running_writes().await.unwrap()), ["w-2"]);
    let ended = change(running, running.in_state(WriteState::Succeeded), None, t5);
    assert!(store.move_write("w-2", &ended).await.unwrap());
    assert!(store.running_writes().await.unwrap().is_empty());
    let kept = store.get_write("w-2").await.unwrap().unwrap();
    assert_eq!(
        (kept.position.state, kept.action_id.as_deref()),
        (WriteState::Succeeded, Some("act-1")),
        "the action id stays on the write that ran it"
    );
    assert!(store
        .write_for_action("act-1")
        .await
        .unwrap()
        .is_none_or(|w| w.position.state == WriteState::Succeeded));
}

#[tokio::test]
async fn write_store_contract_on_memory() {
    write_store_contract(MemoryStore::new()).await;
}

#[tokio::test]
async fn write_store_contract_on_sqlite() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("writes")));
    let store = Store::sqlite(SqliteDb::open(&path).unwrap(), DeleteMode::Tombstone);
    write_store_contract(store).await;
}

/// What the fake provider does with the next call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Behaviour {
    /// Applies the write and answers.
    Apply,
    /// Applies the write, then the answer never comes: Nango's call times out.
    ApplyThenTimeout,
    /// Nango answers 429 before anything reaches the provider.
    TooManyRequests,
    /// The provider refuses the write (a 4xx through Nango).
    Refuse,
    /// Applies the write and never answers.
    ApplyThenHang,
    /// Applies the write and answers only once told to ([`FakeProvider::resume`]).
    ApplyThenPause,
    /// Nango takes an async action (202 with an id); its result is set by the test.
    StartAsync,
}

/// A provider behind Nango that counts what reached it. A write safe to repeat is applied as a
/// PUT by id or an idempotency key makes it: twice is one effect.
#[derive(Debug, Default)]
pub(crate) struct FakeProvider {
    script: Mutex<VecDeque<Behaviour>>,
    calls: Mutex<Vec<String>>,
    effects: Mutex<BTreeMap<String, u32>>,
    resume: tokio::sync::Notify,
    /// Async actions' results, by action id: none is a 404.
    results: Mutex<BTreeMap<String, ActionResult>>,
}

impl FakeProvider {
    pub(crate) fn then(&self, behaviour: Behaviour) -> &Self {
        self.script.lock().unwrap().push_back(behaviour);
        self
    }

    pub(crate) fn calls(&self, id: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == id)
            .count()
    }

    pub(crate) fn effects(&self, id: &str) -> u32 {
        self.effects.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    /// What `GET /action/{id}` answers from now on.
    pub(crate) fn set_result(&self, action_id: &str, result: ActionResult) {
        self.results
            .lock()
            .unwrap()
            .insert(action_id.to_owned(), result);
    }

    fn apply(&self, request: &WriteRequest) {
        let mut effects = self.effects.lock().unwrap();
        let count = effects.entry(request.id.clone()).or_default();
        *count = if request.may_repeat() { 1 } else { *count + 1 };
    }
}

impl WriteSender for FakeProvider {
    async fn send(&self, request: &WriteRequest) -> Sent {
        self.calls.lock().unwrap().push(request.id.clone());
        let behaviour = self.script.lock().unwrap().pop_front();
        let sent = |attempt, detail: &str| Sent {
            attempt,
            detail: Some(detail.to_owned()),
            retry_after: None,
        };
        match behaviour.unwrap_or(Behaviour::Apply) {
            Behaviour::Apply => {
                self.apply(request);
                sent(Attempt::Succeeded, r#"{"ok":true}"#)
            }
            Behaviour::ApplyThenTimeout => {
                self.apply(request);
                sent(Attempt::Unsure, "no answer from Nango within 30 s")
            }
            Behaviour::TooManyRequests => Sent {
                retry_after: Some(Duration::from_secs(1)),
                ..sent(Attempt::NotSent { retryable: true }, "429 too_many_request")
            },
            Behaviour::ApplyThenPause => {
                self.apply(request);
                self.resume.notified().await;
                sent(Attempt::Succeeded, r#"{"ok":"late"}"#)
            }
            Behaviour::ApplyThenHang => {
                self.apply(request);
                tokio::time::sleep(Duration::from_secs(3600)).await;
                unreachable!("the attempt's time limit ends the wait")
            }
            Behaviour::Refuse => sent(
                Attempt::Refused,
                "424 script_http_error: 422 from the provider",
            ),
            Behaviour::StartAsync => {
                let n = self.calls(&request.id);
                let action_id = format!("action-{}-{n}", request.id);
                sent(Attempt::Started { action_id }, "202")
            }
        }
    }

    async fn trigger_sync(&self, _stream: &StreamKey, _sync_name: &str) -> Result<(), String> {
        Err("the fake provider has no Nango syncs".into())
    }

    async fn action_result(&self, _request: &WriteRequest, action_id: &str) -> ActionResult {
        let results = self.results.lock().unwrap();
        results
            .get(action_id)
            .cloned()
            .unwrap_or(ActionResult::NotFound)
    }
}

fn tool(id: &str, safe_to_repeat: bool) -> WriteRequest {
    WriteRequest::parse(
        json!({"v": 1, "id": id, "provider_config_key": "hubspot", "connection_id": "u-1",
            "run": {"kind": "tool", "name": "create-contact", "input": {"email": "a@b.c"}},
            "safe_to_repeat": safe_to_repeat})
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn state_of(taken: &Taken) -> Option<WriteState> {
    match taken {
        Taken::Ended(write)
        | Taken::EndedBefore(write)
        | Taken::Again { write, .. }
        | Taken::Running(write) => Some(write.position.state),
        Taken::Busy | Taken::IdReused(_) => None,
    }
}

/// The at-most-once rules over a store (issue "Two-way sync", done when): each case on its own
/// write id, against a provider that counts what reached it.
pub(crate) async fn take_contract(store: impl WriteStore) {
    let clock = FixedClock::at(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
    // Time enough for every attempt on a loaded machine; the hung one below gets less.
    let settings = TakeSettings {
        max_attempts: 3,
        attempt_timeout: Duration::from_secs(30),
        lease: Duration::from_secs(60),
    };
    let provider = FakeProvider::default();
    let take_within = |request: WriteRequest, settings: TakeSettings| {
        let (store, provider, clock) = (&store, &provider, &clock);
        async move {
            take(store, provider, clock, &request, settings, None)
                .await
                .unwrap()
        }
    };
    let take = |request: WriteRequest| take_within(request, settings);

    // The same id twice runs once, and the second hears the first's outcome.
    let first = take(tool("once", false)).await;
    assert_eq!(state_of(&first), Some(WriteState::Succeeded));
    match (take(tool("once", false)).await, &first) {
        (Taken::EndedBefore(again), Taken::Ended(first)) => assert_eq!(again, *first),
        other => panic!("a duplicate was not answered with the first's end: {other:?}"),
    }
    assert_eq!((provider.calls("once"), provider.effects("once")), (1, 1));

    // A timeout after the provider applied a write that is not safe to repeat: unknown, for
    // good, with exactly one write at the provider.
    provider.then(Behaviour::ApplyThenTimeout);
    let unsure = take(tool("unsure", false)).await;
    assert_eq!(state_of(&unsure), Some(WriteState::Unknown));
    assert_eq!(
        state_of(&take(tool("unsure", false)).await),
        Some(WriteState::Unknown)
    );
    assert_eq!(
        (provider.calls("unsure"), provider.effects("unsure")),
        (1, 1)
    );

    // The same timeout for a write safe to repeat: sent again, succeeded, still one effect.
    provider.then(Behaviour::ApplyThenTimeout);
    let again = take(tool("repeatable", true)).await;
    assert_eq!(state_of(&again), Some(WriteState::Accepted));
    let done = take(tool("repeatable", true)).await;
    assert_eq!(state_of(&done), Some(WriteState::Succeeded));
    assert_eq!(
        (provider.calls("repeatable"), provider.effects("repeatable")),
        (2, 1)
    );

    // A 429 reached nobody: sent again after the wait Nango asked for, whatever the write.
    provider.then(Behaviour::TooManyRequests);
    match take(tool("limited", false)).await {
        Taken::Again { retry_after, write } => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
            assert_eq!(write.outcome.as_deref(), Some("429 too_many_request"));
        }
        other => panic!("a 429 ended the write: {other:?}"),
    }
    assert_eq!(
        state_of(&take(tool("limited", false)).await),
        Some(WriteState::Succeeded)
    );
    assert_eq!(
        (provider.calls("limited"), provider.effects("limited")),
        (2, 1)
    );

    // An attempt that outlasts its time limit may have reached the provider: unknown.
    provider.then(Behaviour::ApplyThenHang);
    let short = TakeSettings {
        attempt_timeout: Duration::from_millis(300),
        ..settings
    };
    let hung = take_within(tool("hung", false), short).await;
    assert_eq!(state_of(&hung), Some(WriteState::Unknown), "{hung:?}");
    assert_eq!((provider.calls("hung"), provider.effects("hung")), (1, 1));

    // Safe to repeat: applied and no answer, sent again, then refused (as a provider refuses a
    // second create): the first attempt may have applied, so the write is unknown, not failed.
    provider
        .then(Behaviour::ApplyThenTimeout)
        .then(Behaviour::Refuse);
    assert_eq!(
        state_of(&take(tool("refused-late", true)).await),
        Some(WriteState::Accepted)
    );
    let late = take(tool("refused-late", true)).await;
    assert_eq!(state_of(&late), Some(WriteState::Unknown), "{late:?}");
    assert_eq!(provider.effects("refused-late"), 1);

    // Refused by the provider: failed, not sent again.
    provider.then(Behaviour::Refuse);
    assert_eq!(
        state_of(&take(tool("refused", true)).await),
        Some(WriteState::Failed)
    );
    assert_eq!(
        state_of(&take(tool("refused", true)).await),
        Some(WriteState::Failed)
    );
    assert_eq!(provider.calls("refused"), 1);

    // The id of a kept write used for another write: nothing runs.
    let mut other = tool("once", false);
    other.run = tool("x", false).run;
    other.safe_to_repeat = true;
    assert!(
        matches!(take(other).await, Taken::IdReused(kept) if kept.request == tool("once", false))
    );
    assert_eq!(provider.calls("once"), 1);

    // A worker stopped while sending: within the lease the write is left alone; past it, a write
    // not safe to repeat is unknown (never sent blindly), one safe to repeat is sent again.
    for (id, may_repeat, ends) in [
        ("stopped", false, WriteState::Unknown),
        ("stopped-repeatable", true, WriteState::Succeeded),
    ] {
        let at = clock.now_rfc3339();
        store
            .accept_write(&tool(id, may_repeat), &at)
            .await
            .unwrap();
        let begin = Move {
            from: Position::ACCEPTED,
            to: Position::ACCEPTED.sending(),
            outcome: None,
            at: &at,
            reached: None,
            action_id: None,
        };
        assert!(store.move_write(id, &begin).await.unwrap());
        clock.advance(Duration::from_secs(30));
        assert_eq!(take(tool(id, may_repeat)).await, Taken::Busy, "{id}");
        clock.advance(Duration::from_secs(31));
        let taken = take(tool(id, may_repeat)).await;
        assert_eq!(state_of(&taken), Some(ends), "{id}");
        assert_eq!(provider.calls(id), usize::from(may_repeat), "{id}");
    }
    let stopped = store.get_write("stopped").await.unwrap().unwrap();
    assert_eq!(stopped.outcome.as_deref(), Some(INTERRUPTED));

    // An attempt that outlives its lease: a later delivery can only say `unknown`; when the
    // late attempt then learns the write succeeded, the write is known after all.
    provider.then(Behaviour::ApplyThenPause);
    let (late, ()) = tokio::join!(take(tool("late", false)), async {
        while provider.calls("late") == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        clock.advance(Duration::from_secs(61));
        let meanwhile = take(tool("late", false)).await;
        assert_eq!(
            state_of(&meanwhile),
            Some(WriteState::Unknown),
            "{meanwhile:?}"
        );
        provider.resume.notify_one();
    });
    assert_eq!(state_of(&late), Some(WriteState::Succeeded), "{late:?}");
    let kept = store.get_write("late").await.unwrap().unwrap();
    assert_eq!(kept.position.state, WriteState::Succeeded);
    assert_eq!(kept.outcome.as_deref(), Some(r#"{"ok":"late"}"#));
    assert_eq!((provider.calls("late"), provider.effects("late")), (1, 1));

    // Two deliveries of one write at once: one sends it.
    let (a, b) = tokio::join!(
        take(tool("twice-at-once", false)),
        take(tool("twice-at-once", false))
    );
    assert_eq!(provider.calls("twice-at-once"), 1);
    // The other found it sending (Busy) or, if the first was done by then, its outcome.
    let states = [state_of(&a), state_of(&b)];
    assert!(
        states.contains(&Some(WriteState::Succeeded))
            && states
                .iter()
                .all(|s| matches!(s, None | Some(WriteState::Succeeded))),
        "{a:?} {b:?}"
    );
}

fn async_action(id: &str, safe_to_repeat: bool) -> WriteRequest {
    WriteRequest::parse(
        json!({"v": 1, "id": id, "provider_config_key": "hubspot", "connection_id": "u-1",
            "run": {"kind": "action", "name": "sync-owner", "input": {"owner": "7"}, "async": true},
            "safe_to_repeat": safe_to_repeat})
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

/// Async actions over a store (issue "Two-way sync", item 3): Nango takes the action, the write
/// runs until its result is known, then ends as that result says, once.
pub(crate) async fn async_action_contract(store: impl WriteStore) {
    let clock = FixedClock::at(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
    let settings = TakeSettings::default();
    let provider = FakeProvider::default();
    let take = |request: WriteRequest| {
        let (store, provider, clock) = (&store, &provider, &clock);
        async move {
            take(store, provider, clock, &request, settings, None)
                .await
                .unwrap()
        }
    };
    let end = |action_id: &str| {
        let (store, provider, clock, action_id) = (&store, &provider, &clock, action_id.to_owned());
        async move {
            let write = store.write_for_action(&action_id).await.unwrap().unwrap();
            finish(store, provider, clock, write, settings.max_attempts)
                .await
                .unwrap()
        }
    };
    let state = |finished: &Finished| match finished {
        Finished::Ended(w)
        | Finished::StillRunning(w)
        | Finished::Again(w)
        | Finished::NotRunning(w) => w.position.state,
    };
    let result = |attempt: Attempt, detail: &str| {
        ActionResult::Finished(Sent {
            attempt,
            detail: Some(detail.to_owned()),
            retry_after: None,
        })
    };

    // Taken by Nango: running, under the id Nango gave; a duplicate request sends nothing.
    provider.then(Behaviour::StartAsync);
    let taken = take(async_action("async-1", false)).await;
    let Taken::Running(running) = &taken else {
        panic!("an async action Nango took is not running: {taken:?}")
    };
    assert_eq!(running.action_id.as_deref(), Some("action-async-1-1"));
    assert!(matches!(
        take(async_action("async-1", false)).await,
        Taken::Running(_)
    ));
    assert_eq!(provider.calls("async-1"), 1);
    assert_eq!(
        store.running_writes().await.unwrap().len(),
        1,
        "listed among the running writes"
    );

    // No result yet (Nango's 404), or Nango could not be asked: still running.
    assert!(matches!(
        end("action-async-1-1").await,
        Finished::StillRunning(_)
    ));
    provider.set_result("action-async-1-1", ActionResult::NotLearned("503".into()));
    assert!(matches!(
        end("action-async-1-1").await,
        Finished::StillRunning(_)
    ));

    // It succeeded: the write ends succeeded with the action's output, once.
    provider.set_result(
        "action-async-1-1",
        result(Attempt::Succeeded, r#"{"owner":"7"}"#),
    );
    let ended = end("action-async-1-1").await;
    let Finished::Ended(write) = &ended else {
        panic!("a finished action did not end its write: {ended:?}")
    };
    assert_eq!(
        (write.position.state, write.outcome.as_deref()),
        (WriteState::Succeeded, Some(r#"{"owner":"7"}"#))
    );
    let stale = store.get_write("async-1").await.unwrap().unwrap();
    assert!(matches!(
        finish(&store, &provider, &clock, stale, 3).await.unwrap(),
        Finished::NotRunning(_)
    ));
    assert!(matches!(
        take(async_action("async-1", false)).await,
        Taken::EndedBefore(_)
    ));
    assert!(store.running_writes().await.unwrap().is_empty());

    // The provider refused it: failed.
    provider.then(Behaviour::StartAsync);
    take(async_action("async-2", false)).await;
    provider.set_result("action-async-2-1", result(Attempt::Refused, "424"));
    assert_eq!(state(&end("action-async-2-1").await), WriteState::Failed);

    // It failed in a way that may have reached the provider (a 500 of the script): unknown if
    // not safe to repeat; else accepted again, and the next attempt starts a new action.
    provider
        .then(Behaviour::StartAsync)
        .then(Behaviour::StartAsync);
    take(async_action("async-3", false)).await;
    provider.set_result("action-async-3-1", result(Attempt::Unsure, "500"));
    assert_eq!(state(&end("action-async-3-1").await), WriteState::Unknown);
    take(async_action("async-4", true)).await;
    provider.set_result("action-async-4-1", result(Attempt::Unsure, "500"));
    assert_eq!(state(&end("action-async-4-1").await), WriteState::Accepted);
    provider.then(Behaviour::StartAsync);
    let again = take(async_action("async-4", true)).await;
    assert!(
        matches!(&again, Taken::Running(w) if w.action_id.as_deref() == Some("action-async-4-2")),
        "{again:?}"
    );

    // No result ever: a 404 means nothing while the action could still run; past that, the
    // write is unknown (it may have run, its result purged).
    provider.then(Behaviour::StartAsync);
    take(async_action("async-5", false)).await;
    clock.advance(RESULT_WINDOW - Duration::from_secs(1));
    assert_eq!(state(&end("action-async-5-1").await), WriteState::Running);
    clock.advance(Duration::from_secs(2));
    let Finished::Ended(lost) = end("action-async-5-1").await else {
        panic!("an action with no result past its window did not end")
    };
    assert_eq!(lost.position.state, WriteState::Unknown);
    assert!(lost.outcome.unwrap().contains("purged"));
    assert_eq!(
        ids_of(store.running_writes().await.unwrap()),
        ["async-4"],
        "the one action still running"
    );
}

fn ids_of(writes: Vec<nango_sync::core::writes::stored::StoredWrite>) -> Vec<String> {
    writes.into_iter().map(|w| w.request.id).collect()
}

#[tokio::test]
async fn async_actions_end_as_their_result_says_on_memory() {
    async_action_contract(MemoryStore::new()).await;
}

#[tokio::test]
async fn async_actions_end_as_their_result_says_on_sqlite() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("async")));
    async_action_contract(Store::sqlite(
        SqliteDb::open(&path).unwrap(),
        DeleteMode::Tombstone,
    ))
    .await;
}

#[tokio::test]
async fn writes_run_at_most_once_on_memory() {
    take_contract(MemoryStore::new()).await;
}

#[tokio::test]
async fn writes_run_at_most_once_on_sqlite() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("take")));
    let db = SqliteDb::open(&path).unwrap();
    take_contract(Store::sqlite(db.clone(), DeleteMode::Tombstone)).await;
    // Each write's end is in the local change feed, once.
    let ended: Vec<(String, String)> = SqliteFeed::new(db)
        .after(0, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.stream == "writes")
        .map(|c| (c.id, c.change))
        .collect();
    assert!(
        ended.contains(&("once".into(), "write_succeeded".into())),
        "{ended:?}"
    );
    assert!(
        ended.contains(&("unsure".into(), "write_unknown".into())),
        "{ended:?}"
    );
    assert!(
        ended.contains(&("refused".into(), "write_failed".into())),
        "{ended:?}"
    );
    let once = ended.iter().filter(|(id, _)| id == "once").count();
    assert_eq!(once, 1, "a duplicate request adds no change: {ended:?}");
}

fn write(value: serde_json::Value) -> WriteRequest {
    WriteRequest::parse(value.to_string().as_bytes()).unwrap()
}

/// The at-most-once rules through Nango over HTTP, the simulator's write APIs and its fake
/// provider, which applies writes to the simulated records and counts them.
pub(crate) async fn through_nango(store: impl WriteStore) {
    let sim = Arc::new(Simulator::new());
    let contacts = StreamKey::new("hubspot", "u-1", "Contact", "base");
    sim.add_connection(contacts.connection());
    let server = SimServer::start(Arc::clone(&sim), ServerSettings::default())
        .await
        .unwrap();
    let nango = nango_client(&server.url, 100);
    let clock = FixedClock::at(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
    let settings = TakeSettings::default();
    let take = |request: &WriteRequest| {
        let (store, nango, clock, request) = (&store, &nango, &clock, request.clone());
        async move {
            take(store, nango, clock, &request, settings, None)
                .await
                .unwrap()
        }
    };
    let applied = |record: &str| server.provider.applied_to(record);
    let tool = |id: &str, record: &str| {
        write(
            json!({"v": 1, "id": id, "provider_config_key": "hubspot", "connection_id": "u-1",
            "run": {"kind": "tool", "name": "save-Contact", "input": {"id": record, "email": "a@b.c"}},
            "record": {"model": "Contact", "id": record}}),
        )
    };

    // A tool call goes through once, and the provider's record shows it.
    let done = take(&tool("w-1", "c-1")).await;
    assert_eq!(state_of(&done), Some(WriteState::Succeeded), "{done:?}");
    assert_eq!(
        state_of(&take(&tool("w-1", "c-1")).await),
        Some(WriteState::Succeeded)
    );
    assert_eq!(applied("c-1"), 1);
    let stored = sim.live_payloads(&contacts);
    assert!(
        stored
            .iter()
            .any(|(id, p)| id == "c-1" && p["email"] == "a@b.c"),
        "the next sync would show the write"
    );

    // The provider applied it, then the answer never came: unknown, one write at the provider.
    server.provider.inject([WriteFault::ApplyThenDrop]);
    let unsure = take(&tool("w-2", "c-2")).await;
    assert_eq!(state_of(&unsure), Some(WriteState::Unknown), "{unsure:?}");
    assert_eq!(
        state_of(&take(&tool("w-2", "c-2")).await),
        Some(WriteState::Unknown)
    );
    assert_eq!(applied("c-2"), 1);

    // The same for a proxy PUT carrying the provider's idempotency key: sent again, succeeded,
    // one effect; and Nango was never asked to retry.
    let put = write(
        json!({"v": 1, "id": "w-3", "provider_config_key": "hubspot",
        "connection_id": "u-1", "run": {"kind": "proxy", "method": "PUT", "path": "/Contact/c-3",
        "headers": {"Nango-Proxy-Idempotency-Key": "w-3"}, "body": {"email": "c@d.e"}}}),
    );
    server.provider.inject([WriteFault::ApplyThenDrop]);
    assert_eq!(state_of(&take(&put).await), Some(WriteState::Accepted));
    assert_eq!(state_of(&take(&put).await), Some(WriteState::Succeeded));
    assert_eq!(applied("c-3"), 1);

    // Nango's 429 reached nobody: sent again after the wait it asked for.
    server.provider.inject([WriteFault::TooManyRequests]);
    match take(&tool("w-4", "c-4")).await {
        Taken::Again { retry_after, .. } => assert!(retry_after.is_some()),
        other => panic!("a 429 ended the write: {other:?}"),
    }
    assert_eq!(
        state_of(&take(&tool("w-4", "c-4")).await),
        Some(WriteState::Succeeded)
    );
    assert_eq!(applied("c-4"), 1);

    // Refused by the provider, or by Nango (an unknown tool): failed, nothing applied.
    server.provider.inject([WriteFault::Refuse]);
    let refused = take(&tool("w-5", "c-5")).await;
    assert_eq!(state_of(&refused), Some(WriteState::Failed));
    let Taken::Ended(refused) = refused else {
        unreachable!()
    };
    assert!(refused.outcome.unwrap().starts_with("424 "));
    let mut unknown_tool = tool("w-6", "c-6");
    unknown_tool.run = write(json!({"v": 1, "id": "x", "provider_config_key": "p",
        "connection_id": "c", "run": {"kind": "tool", "name": "archive-Contact", "input": {}}}))
    .run;
    assert_eq!(
        state_of(&take(&unknown_tool).await),
        Some(WriteState::Failed)
    );
    // A 500 from Nango may have come after the script ran: never sent blindly again.
    server.provider.inject([WriteFault::ServerErrorBefore]);
    assert_eq!(
        state_of(&take(&tool("w-7", "c-7")).await),
        Some(WriteState::Unknown)
    );
    assert_eq!(applied("c-5") + applied("c-6") + applied("c-7"), 0);
    assert!(server
        .provider
        .applied()
        .iter()
        .all(|w| w.nango_retries.is_none()));
}

#[tokio::test]
async fn writes_through_nango_on_sqlite() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("nango-writes")));
    through_nango(Store::sqlite(
        SqliteDb::open(&path).unwrap(),
        DeleteMode::Tombstone,
    ))
    .await;
}

fn received(id: &str, body: String) -> ReceivedMessage {
    ReceivedMessage {
        message_id: id.to_owned(),
        receipt_handle: format!("handle-{id}"),
        body,
        group_id: Some("w-1".to_owned()),
    }
}

/// Write requests as queue messages, through the worker that takes every job (issue "Two-way
/// sync", item 1): a bare request or a job message, delivered twice, timed out after the
/// provider applied it, rate limited past the invocation's deadline, or reusing an id.
#[tokio::test]
async fn the_worker_takes_write_messages_at_most_once() {
    let sim = Arc::new(Simulator::new());
    sim.add_connection(StreamKey::new("hubspot", "u-1", "Contact", "base").connection());
    let server = SimServer::start(Arc::clone(&sim), ServerSettings::default())
        .await
        .unwrap();
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("worker-writes")));
    let store = Store::sqlite(SqliteDb::open(&path).unwrap(), DeleteMode::Tombstone);
    let app = WorkerApp {
        source: nango_client(&server.url, 100),
        records: store.clone(),
        state: store.clone(),
        queue: MemoryQueue::new(),
        settings: WorkerSettings::default(),
    };
    let request = |id: &str, record: &str| {
        json!({"v": 1, "id": id, "provider_config_key": "hubspot", "connection_id": "u-1",
            "run": {"kind": "tool", "name": "save-Contact", "input": {"id": record}},
            "record": {"model": "Contact", "id": record}})
    };
    let applied = |record: &str| server.provider.applied_to(record);
    let state = |id: &str| {
        let store = store.clone();
        let id = id.to_owned();
        async move { store.get_write(&id).await.unwrap().map(|w| w.position) }
    };
    let far = Some(Instant::now() + Duration::from_secs(600));

    // A bare request, delivered twice: sent once, both deliveries done.
    let bare = received("m-1", request("w-1", "c-1").to_string());
    for _ in 0..2 {
        assert!(app
            .handle(std::slice::from_ref(&bare), far)
            .await
            .is_empty());
    }
    assert_eq!(applied("c-1"), 1);
    assert_eq!(
        state("w-1").await.map(|p| p.state),
        Some(WriteState::Succeeded)
    );

    // Read your writes: a sync of the record's stream was queued (once per delivery, under one
    // deduplication id), and running it brings the provider's new state into the copy.
    let contacts = StreamKey::new("hubspot", "u-1", "Contact", "base");
    let follow_ups = app.queue.sent();
    assert_eq!(follow_ups.len(), 2, "one per delivery");
    assert_eq!(follow_ups[0].dedup_id, follow_ups[1].dedup_id);
    let job = JobMessage::decode(&follow_ups[0].body).unwrap();
    assert_eq!(job.sync_target(), Some((contacts.clone(), Trigger::Write)));
    assert!(store.read_stream(&contacts).await.unwrap().is_empty());
    let sync = received("m-sync", follow_ups[0].body.clone());
    assert!(app.handle(&[sync], far).await.is_empty());
    assert!(store
        .read_stream(&contacts)
        .await
        .unwrap()
        .contains_key("c-1"));

    // The job message form.
    let wrapped = json!({"v": 1, "received_at": "2026-12-07T10:00:00.000Z",
        "job": {"write": request("w-2", "c-2")}});
    assert!(app
        .handle(&[received("m-2", wrapped.to_string())], far)
        .await
        .is_empty());
    assert_eq!(applied("c-2"), 1);

    // Applied, then no answer: the write ends unknown and its message is done with (the
    // outcome is kept; sending it again is not the queue's call).
    server.provider.inject([WriteFault::ApplyThenDrop]);
    let unsure = received("m-3", request("w-3", "c-3").to_string());
    assert!(app
        .handle(std::slice::from_ref(&unsure), far)
        .await
        .is_empty());
    assert!(app
        .handle(std::slice::from_ref(&unsure), far)
        .await
        .is_empty());
    assert_eq!(applied("c-3"), 1);
    assert_eq!(
        state("w-3").await.map(|p| p.state),
        Some(WriteState::Unknown)
    );

    // A 429 with the invocation's deadline too near for the wait: the message fails (it comes
    // back), the write waits accepted, and the next delivery sends it.
    server.provider.inject([WriteFault::TooManyRequests]);
    let limited = received("m-4", request("w-4", "c-4").to_string());
    let near = Some(Instant::now() + WorkerSettings::default().deadline_margin);
    assert_eq!(
        app.handle(std::slice::from_ref(&limited), near).await,
        ["m-4"]
    );
    assert_eq!(
        state("w-4").await.map(|p| p.state),
        Some(WriteState::Accepted)
    );
    assert!(app
        .handle(std::slice::from_ref(&limited), far)
        .await
        .is_empty());
    assert_eq!(applied("c-4"), 1);

    // A 429 within the deadline is waited out in the same invocation.
    server.provider.inject([WriteFault::TooManyRequests]);
    let waited = received("m-5", request("w-5", "c-5").to_string());
    assert!(app
        .handle(std::slice::from_ref(&waited), far)
        .await
        .is_empty());
    assert_eq!(
        state("w-5").await.map(|p| (p.state, p.attempts)),
        Some((WriteState::Succeeded, 2))
    );

    // An id reused for another write fails its message (to the dead-letter queue in time),
    // and nothing is sent.
    let reused = received("m-6", request("w-1", "c-6").to_string());
    assert_eq!(app.handle(&[reused], far).await, ["m-6"]);
    assert_eq!(applied("c-6"), 0);
}

/// Writes and a backfill under one account rate limit (issue "Two-way sync", done when): the
/// backfill's reads leave the writes' share of each window, so a write sent once the reads have
/// drawn the window down goes at once instead of waiting for the next window; every write and
/// every record goes through.
#[tokio::test]
async fn a_backfill_leaves_writes_their_share_of_the_rate_limit() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("share")));
    let store = Store::sqlite(SqliteDb::open(&path).unwrap(), DeleteMode::Tombstone);
    backfill_leaves_writes_their_share(store).await;
}

/// The share of the rate limit kept for writes, over a store (SQLite here, DynamoDB in
/// `aws::contract`).
pub(crate) async fn backfill_leaves_writes_their_share(store: Store) {
    const LIMIT: u64 = 20;
    let sim = Arc::new(Simulator::new());
    let streams = sim.populate("crm", 1, &["Contact", "Deal"], 1_000);
    let settings = ServerSettings {
        account_limit: Some(AccountLimit {
            requests: LIMIT,
            window: Duration::from_secs(4),
        }),
        ..ServerSettings::default()
    };
    let server = SimServer::start(Arc::clone(&sim), settings).await.unwrap();
    let kept = Arc::new(crate::job_metrics::Kept::default());
    let app = WorkerApp {
        // 10% of 20 points kept for writes: the reads stop at 2 left.
        source: nango_client(&server.url, 50).with_write_share(10),
        records: store.clone(),
        state: store.clone(),
        queue: MemoryQueue::new(),
        settings: WorkerSettings {
            metrics: Some(kept.clone()),
            ..WorkerSettings::default()
        },
    };
    let backfill: Vec<ReceivedMessage> = streams
        .iter()
        .map(|s| ReceivedMessage {
            message_id: s.encode(),
            receipt_handle: s.encode(),
            body: crate::common::sync_job(s),
            group_id: Some(s.message_group_id()),
        })
        .collect();
    let connection = streams[0].connection();
    let writes: Vec<ReceivedMessage> = (0..2)
        .map(|n| {
            let body = json!({"v": 1, "id": format!("w-{n}"),
                "provider_config_key": connection.provider_config_key,
                "connection_id": connection.connection_id,
                "run": {"kind": "tool", "name": "save-Note", "input": {"id": format!("n-{n}")}}});
            let mut message = received(&format!("m-{n}"), body.to_string());
            message.group_id = Some(format!("w-{n}"));
            message
        })
        .collect();
    let far = Some(Instant::now() + Duration::from_secs(600));
    let send_writes = async {
        // Once the reads have drawn the first window down to the writes' share.
        while server
            .stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
            < LIMIT - 2
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let failed = app.handle(&writes, far).await;
        (failed, started.elapsed())
    };
    let (backfill_failed, (writes_failed, writes_took)) =
        tokio::join!(app.handle(&backfill, far), send_writes);
    assert!(backfill_failed.is_empty() && writes_failed.is_empty());
    // The writes drew on the points the reads left: no wait for Nango's budget at all.
    let write_waits: Vec<u64> = kept
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.write_state.is_some())
        .map(|m| m.nango.waited_ms)
        .collect();
    assert_eq!(
        write_waits,
        [0, 0],
        "the writes waited for the window the backfill drew down"
    );
    assert!(writes_took < Duration::from_secs(3), "{writes_took:?}");
    for n in 0..2 {
        let write = store.get_write(&format!("w-{n}")).await.unwrap().unwrap();
        assert_eq!(write.position.state, WriteState::Succeeded);
    }
    for s in &streams {
        assert_eq!(store.read_stream(s).await.unwrap().len(), 1_000);
    }
}
