//! Async actions through the worker (issue "Two-way sync", item 3 and "done when"): Nango takes
//! the action (202), runs it later, and says so with the `async_action` webhook; the write that
//! ran it ends as `GET /action/{id}` says, once, and a webhook Nango dropped is made up for by
//! the reconcile. Over HTTP against the simulator, on SQLite here and on DynamoDB in
//! `aws::contract`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nango_sync::adapters::memory::MemoryQueue;
use nango_sync::adapters::sqlite::SqliteDb;
use nango_sync::core::job::{jobs_for, messages_for, JobMessage, Trigger};
use nango_sync::core::outcome::JobOutcome;
use nango_sync::core::payload::NangoWebhook;
use nango_sync::core::stream::{ConnectionKey, StreamKey};
use nango_sync::core::worker::{WorkerApp, WorkerSettings};
use nango_sync::core::write::DeleteMode;
use nango_sync::core::writes::state::ActionResult;
use nango_sync::core::writes::state::WriteState;
use nango_sync::local::backend::Store;
use nango_sync::ports::{OutgoingMessage, WriteSender, WriteStore};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::webhooks::async_action_done;
use nango_sync::simulator::writes::WriteFault;
use nango_sync::simulator::Simulator;
use serde_json::{json, value::RawValue};

use crate::common::{nango_client, sync_job, unique_name};

/// The queue messages the webhook function makes of a verified webhook body.
fn webhook_messages(body: &str) -> Vec<OutgoingMessage> {
    let raw: Box<RawValue> = serde_json::from_str(body).unwrap();
    let jobs = jobs_for(NangoWebhook::from_raw(&raw), &raw);
    messages_for(body.as_bytes(), jobs, "2026-12-07T12:00:00.000Z")
}

pub(crate) async fn async_actions_through_the_worker(store: Store) {
    let sim = Arc::new(Simulator::new());
    let contacts = StreamKey::new("hubspot", "u-1", "Contact", "base");
    sim.add_connection(contacts.connection());
    let server = SimServer::start(Arc::clone(&sim), ServerSettings::default())
        .await
        .unwrap();
    let app = WorkerApp {
        source: nango_client(&server.url, 100),
        records: store.clone(),
        state: store.clone(),
        queue: MemoryQueue::new(),
        settings: WorkerSettings::default(),
    };
    let far = Some(Instant::now() + Duration::from_secs(600));
    let run = |body: String| {
        let app = &app;
        async move { app.process(&body, far).await.unwrap() }
    };
    let request = |id: &str, record: &str| {
        json!({"v": 1, "id": id, "provider_config_key": "hubspot", "connection_id": "u-1",
            "run": {"kind": "action", "name": "save-Contact", "input": {"id": record}, "async": true},
            "record": {"model": "Contact", "id": record}})
        .to_string()
    };
    let write = |id: &str| {
        let store = store.clone();
        let id = id.to_owned();
        async move { store.get_write(&id).await.unwrap().unwrap() }
    };
    let connection = ConnectionKey {
        provider_config_key: "hubspot".into(),
        connection_id: "u-1".into(),
    };

    // The copy holds the record the write concerns.
    sim.save(
        &contacts,
        [(
            "c-1".to_owned(),
            json!({"id": "c-1", "name": "before"})
                .as_object()
                .unwrap()
                .clone(),
        )],
    );
    run(sync_job(&contacts)).await;
    let pending = |id: &str| {
        let (store, contacts, id) = (store.clone(), contacts.clone(), id.to_owned());
        async move {
            store
                .pending_write(&contacts, &id)
                .await
                .unwrap()
                .map(|p| (p.id, p.state))
        }
    };
    assert_eq!(pending("c-1").await, None);

    // Nango takes the action: the write runs, its message is done, nothing reached the
    // provider yet; a redelivery sends nothing. The stored record shows the write running.
    for _ in 0..2 {
        let outcome = run(request("w-async", "c-1")).await;
        assert!(
            matches!(&outcome, JobOutcome::WriteWaiting { id, state: WriteState::Running } if id == "w-async"),
            "{outcome:?}"
        );
    }
    assert_eq!(server.provider.async_actions_taken(), 1);
    assert_eq!(server.provider.applied_to("c-1"), 0);
    let running = write("w-async").await;
    let action_id = running.action_id.clone().expect("the action's id is kept");
    assert_eq!(
        pending("c-1").await,
        Some(("w-async".to_owned(), WriteState::Running))
    );

    // Nango runs it and sends its webhook: the write succeeds with the action's output, and a
    // sync reads it back into the copy.
    let finished = server.provider.run_async_actions(&sim);
    assert_eq!(finished, [(connection.clone(), action_id.clone())]);
    let [message] = webhook_messages(&async_action_done(&connection, &action_id))
        .try_into()
        .unwrap();
    let outcome = run(message.body.clone()).await;
    let JobOutcome::WriteEnded {
        write: ended,
        read_back,
        first,
    } = &outcome
    else {
        panic!("the async_action webhook did not end the write: {outcome:?}")
    };
    assert_eq!(ended.position.state, WriteState::Succeeded);
    assert!(ended.outcome.as_deref().unwrap().contains("c-1"));
    assert!(*read_back && *first);
    assert_eq!(server.provider.applied_to("c-1"), 1);
    assert_eq!(
        server
            .stats
            .sync_triggers
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "Nango asked to run the record's sync, so that its records show the provider's new state"
    );
    assert_eq!(
        pending("c-1").await,
        Some(("w-async".to_owned(), WriteState::Succeeded))
    );
    let sync = app
        .queue
        .sent()
        .into_iter()
        .find(|m| {
            JobMessage::decode(&m.body).unwrap().sync_target()
                == Some((contacts.clone(), Trigger::Write))
        })
        .expect("a sync reads the write back");
    run(sync.body).await;
    assert!(store
        .read_stream(&contacts)
        .await
        .unwrap()
        .contains_key("c-1"));
    assert_eq!(
        pending("c-1").await,
        None,
        "the sync that read the provider's new state wrote the record whole"
    );

    // The same webhook again (Nango retries it): the write stays as it ended, nothing is
    // sent; its end is told again, as for a duplicate request.
    let again = run(message.body).await;
    assert!(
        matches!(&again, JobOutcome::WriteEnded { first: false, write, .. } if write.position == ended.position),
        "{again:?}"
    );
    assert_eq!(write("w-async").await.position, ended.position);
    assert_eq!(server.provider.applied_to("c-1"), 1);

    // A webhook Nango dropped: the reconcile asks for the result of every action still
    // running. Before the action ran, Nango has none (404): still running; after, it ends.
    run(request("w-lost", "c-2")).await;
    let reconcile =
        |at: &str| json!({"v": 1, "received_at": at, "job": {"reconcile": {}}}).to_string();
    let checks_after = |at: &str| {
        let app = &app;
        let body = reconcile(at);
        async move {
            let before = app.queue.sent().len();
            let outcome = app.process(&body, far).await.unwrap();
            assert!(
                matches!(
                    outcome,
                    JobOutcome::Reconciled {
                        actions_checked: 1,
                        ..
                    }
                ),
                "{outcome:?}"
            );
            app.queue
                .sent()
                .split_off(before)
                .into_iter()
                .filter(|m| m.body.contains("action_result"))
                .collect::<Vec<_>>()
        }
    };
    let [check] = checks_after("2026-12-07T12:15:00.000Z")
        .await
        .try_into()
        .unwrap();
    assert!(matches!(
        run(check.body).await,
        JobOutcome::WriteWaiting {
            state: WriteState::Running,
            ..
        }
    ));
    server.provider.run_async_actions(&sim);
    let [check] = checks_after("2026-12-07T12:30:00.000Z")
        .await
        .try_into()
        .unwrap();
    let outcome = run(check.body).await;
    assert!(
        matches!(&outcome, JobOutcome::WriteEnded { write, .. } if write.position.state == WriteState::Succeeded),
        "{outcome:?}"
    );
    assert_eq!(server.provider.applied_to("c-2"), 1);

    // The provider refused it when it ran: the webhook is the same, the result says failed.
    server.provider.inject([WriteFault::Refuse]);
    run(request("w-refused", "c-3")).await;
    let [(_, refused_id)] = server.provider.run_async_actions(&sim).try_into().unwrap();
    let [message] = webhook_messages(&async_action_done(&connection, &refused_id))
        .try_into()
        .unwrap();
    run(message.body).await;
    let refused = write("w-refused").await;
    assert_eq!(refused.position.state, WriteState::Failed);
    assert!(refused.outcome.unwrap().starts_with("424 "));

    // A script that failed after it ran, for a write safe to repeat: accepted again, and sent
    // anew as a message of its own. Were that message not queued (the queue refusing it, or the
    // worker stopping between the move and the send), the webhook's redelivery queues it.
    server.provider.inject([WriteFault::ApplyThenFail]);
    let mut repeatable: serde_json::Value =
        serde_json::from_str(&request("w-again", "c-5")).unwrap();
    repeatable["safe_to_repeat"] = json!(true);
    run(repeatable.to_string()).await;
    let [(_, failed_id)] = server.provider.run_async_actions(&sim).try_into().unwrap();
    let [message] = webhook_messages(&async_action_done(&connection, &failed_id))
        .try_into()
        .unwrap();
    app.queue.set_failing(true);
    assert!(app.process(&message.body, far).await.is_err());
    app.queue.set_failing(false);
    assert_eq!(write("w-again").await.position.state, WriteState::Accepted);
    let before = app.queue.sent().len();
    run(message.body).await;
    let again: Vec<String> = app.queue.sent()[before..]
        .iter()
        .map(|m| m.body.clone())
        .filter(|b| b.contains("w-again"))
        .collect();
    let [again] = again.try_into().unwrap();
    let taken = run(again).await;
    assert!(
        matches!(
            &taken,
            JobOutcome::WriteWaiting {
                state: WriteState::Running,
                ..
            }
        ),
        "{taken:?}"
    );
    let [(_, second_id)] = server.provider.run_async_actions(&sim).try_into().unwrap();
    assert_ne!(second_id, failed_id, "a new action");
    let [message] = webhook_messages(&async_action_done(&connection, &second_id))
        .try_into()
        .unwrap();
    run(message.body).await;
    let again = write("w-again").await;
    assert_eq!(
        (again.position.state, again.position.attempts),
        (WriteState::Succeeded, 2)
    );
    assert_eq!(
        server.provider.applied_to("c-5"),
        2,
        "safe to repeat: the failed run and the second"
    );

    // A result purged before it was read (Nango deletes them about 5 days after the action
    // ended): Nango answers 404, as for an action still to run; the write stays running until
    // the window is past (`finish`'s contract tests the end of the window).
    run(request("w-purged", "c-4")).await;
    let purged = write("w-purged").await;
    server.provider.run_async_actions(&sim);
    server.provider.purge_action_results();
    let purged_id = purged.action_id.clone().unwrap();
    assert_eq!(
        app.source.action_result(&purged.request, &purged_id).await,
        ActionResult::NotFound
    );
    let [message] = webhook_messages(&async_action_done(&connection, &purged_id))
        .try_into()
        .unwrap();
    assert!(matches!(
        run(message.body).await,
        JobOutcome::WriteWaiting {
            state: WriteState::Running,
            ..
        }
    ));
    assert_eq!(server.provider.applied_to("c-4"), 1);

    // Nango's webhook for an action nango-sync did not start is stored for the application,
    // as before, and ends no write.
    let [message] = webhook_messages(&async_action_done(
        &connection,
        "0b7c3f2e-0000-4000-a000-000000000000",
    ))
    .try_into()
    .unwrap();
    assert_eq!(run(message.body).await, JobOutcome::EventStored);
    let running: Vec<String> = store
        .running_writes()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.request.id)
        .collect();
    assert_eq!(running, ["w-purged"]);
}

#[tokio::test]
async fn async_actions_end_through_their_webhook_on_sqlite() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("async-worker")));
    let store = Store::sqlite(SqliteDb::open(&path).unwrap(), DeleteMode::Tombstone);
    async_actions_through_the_worker(store).await;
}
