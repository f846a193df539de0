//! The `nango-sync` binary's operator commands on the embedded backend: a held sweep shown by
//! `status`, decided by `sweep`, and bad input refused with a clear error and no change.

use std::process::Command;
use std::sync::Arc;

use nango_sync::adapters::sqlite::SqliteDb;
use nango_sync::core::record::NangoRecord;
use nango_sync::core::seen::seen_on_page;
use nango_sync::core::state::{HeldSweep, StreamStatus};
use nango_sync::core::stream::StreamKey;
use nango_sync::core::write::DeleteMode;
use nango_sync::local::backend::Store;
use nango_sync::ports::{RecordStore, StateStore};
use nango_sync::simulator::server::{ServerSettings, SimServer};
use nango_sync::simulator::writes::WriteFault;
use nango_sync::simulator::Simulator;
use serde_json::{json, Value};

use crate::common::{replay, unique_name, API_KEY, TEST_SIGNING_KEY};

fn record(id: &str) -> NangoRecord {
    let object = json!({"id": id, "name": id, "_nango_metadata": {"first_seen_at": "2026-11-27T00:00:00+00:00",
        "last_modified_at": "2026-11-27T00:00:00+00:00", "last_action": "ADDED", "deleted_at": null,
        "pruned_at": null, "cursor": format!("cursor-{id}")}});
    NangoRecord::from_object(object.as_object().unwrap().clone()).unwrap()
}

/// The CLI on `db`, blind to the caller's Nango key and backend choice.
fn command(db: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nango-sync"));
    command
        .args(args)
        .arg("--db")
        .arg(db)
        .env_remove("NANGO_API_KEY")
        .env_remove("NANGO_SYNC_STORE")
        .env_remove("NANGO_SYNC_QUEUE");
    command
}

/// Runs the CLI on `db`; returns (success, stdout, stderr).
fn cli(db: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = command(db, args)
        .output()
        .expect("the nango-sync binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A database at `db` with one stream synced to its one record, r0.
async fn one_synced_stream(db: &std::path::Path) -> (Store, StreamKey) {
    let store = Store::sqlite(SqliteDb::open(db).unwrap(), DeleteMode::Tombstone);
    let s = StreamKey::new("crm", "conn-0", "Contact", "base");
    store.write_page(&s, &[record("r0")]).await.unwrap();
    store
        .advance_cursor(&s, None, "cursor-r0", 1, &[], None)
        .await
        .unwrap();
    (store, s)
}

/// `drain --json` on `db`: one parsed line per message taken off, and the raw output.
fn drain_json(db: &std::path::Path) -> (Vec<Value>, String) {
    let (ok, out, stderr) = cli(db, &["drain", "--json", "--yes"]);
    assert!(ok, "{stderr}");
    let lines = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, out)
}

#[tokio::test]
async fn a_held_sweep_is_shown_confirmed_and_bad_decisions_change_nothing() {
    let db = std::env::temp_dir().join(format!("{}.db", unique_name("cli")));
    let store = Store::sqlite(SqliteDb::open(&db).unwrap(), DeleteMode::Tombstone);
    let held = StreamKey::new("crm", "conn-0", "Contact", "base");
    let fine = StreamKey::new("crm", "conn-0", "Deal", "base");
    let ids: Vec<String> = (0..4).map(|i| format!("r{i}")).collect();
    let records: Vec<NangoRecord> = ids.iter().map(|id| record(id)).collect();
    for s in [&held, &fine] {
        store.write_page(s, &records).await.unwrap();
        store
            .advance_cursor(s, None, "cursor-r3", 4, &[], None)
            .await
            .unwrap();
    }
    // A sweep that saw r0 only, held: it would mark the other 3 of 4 deleted.
    store
        .note_seen(&held, "sweep 1", "", &seen_on_page(&records[..1]))
        .await
        .unwrap();
    let hold = HeldSweep {
        sweep_id: "sweep 1".into(),
        would_delete: 3,
        live_count: 4,
        nango_count: 1,
        last_success_at: Some("2026-12-01T00:00:00.000Z".into()),
        held_at: "2026-12-03T00:00:00.000Z".into(),
        reason: "would mark deleted 3 of 4".into(),
    };
    store.hold_sweep(&held, &hold).await.unwrap();
    let (held_arg, fine_arg) = (held.encode(), fine.encode());

    let (ok, table, _) = cli(&db, &["status"]);
    assert!(ok);
    let line = table.lines().find(|l| l.starts_with(&held_arg)).unwrap();
    assert!(
        line.contains("held") && line.contains("would delete 3 of 4"),
        "{line}"
    );
    let (ok, lines, _) = cli(&db, &["status", "--json"]);
    assert!(ok);
    let statuses: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(statuses[0]["status"], "held", "{}", statuses[0]);
    assert_eq!(statuses[0]["state"]["held"]["would_delete"], 3);

    // Refused, each with its reason, changing nothing.
    for (args, says) in [
        (
            vec!["sweep", "--stream", &fine_arg, "--confirm"],
            "has no held sweep",
        ),
        (
            vec!["sweep", "--stream", "crm|conn-0|Ticket|base", "--confirm"],
            "no stream",
        ),
        (
            vec!["sweep", "--stream", "not a stream", "--confirm"],
            "--stream",
        ),
        (vec!["sweep", "--stream", &held_arg], "--confirm"),
        (
            vec!["sweep", "--stream", &held_arg, "--confirm", "--discard"],
            "cannot be used",
        ),
        (vec!["forget", "--connection", "a|b|c"], "--connection"),
    ] {
        let (ok, _, stderr) = cli(&db, &args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // Counts that moved since the hold: a record written after it lost the sweep's stamp.
    store.write_page(&held, &[record("r4")]).await.unwrap();
    // A destructive decision is not taken without --yes where nobody can be asked.
    let (ok, _, stderr) = cli(&db, &["sweep", "--stream", &held_arg, "--confirm"]);
    assert!(
        !ok && stderr.contains("refused without --yes")
            && stderr.contains("marks deleted 3 of the 4"),
        "{stderr}"
    );
    let (ok, _, stderr) = cli(&db, &["sweep", "--stream", &held_arg, "--confirm", "--yes"]);
    assert!(
        !ok && stderr.contains("changed since its sweep was held"),
        "{stderr}"
    );
    assert_eq!(store.count_live(&held).await.unwrap(), 5, "nothing changed");
    assert_eq!(
        store.get_stream(&held).await.unwrap().unwrap().status(),
        StreamStatus::Held
    );

    // As held: confirmed.
    let mut hold = hold;
    hold.would_delete = 4;
    hold.live_count = 5;
    store.hold_sweep(&held, &hold).await.unwrap();
    let (ok, out, stderr) = cli(
        &db,
        &[
            "sweep",
            "--integration",
            "crm",
            "--connection",
            "conn-0",
            "--model",
            "Contact",
            "--confirm",
            "--json",
            "--yes",
        ],
    );
    assert!(ok, "{stderr}");
    let result: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(result["sweep"]["outcome"], "confirmed");
    assert_eq!(result["sweep"]["tombstoned"], 4);
    assert_eq!(store.count_live(&held).await.unwrap(), 1);
    assert_eq!(
        store.get_stream(&held).await.unwrap().unwrap().status(),
        StreamStatus::Ok
    );

    // Forget a connection by hand: its streams stop syncing, their live records marked deleted.
    let (ok, out, stderr) = cli(&db, &["forget", "--connection", "crm|conn-0", "--json"]);
    assert!(ok, "{stderr}");
    let forgotten: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(forgotten["streams"].as_array().unwrap().len(), 2);
    assert_eq!(store.count_live(&fine).await.unwrap(), 0);
    assert_eq!(
        store.get_stream(&fine).await.unwrap().unwrap().status(),
        StreamStatus::ConnectionDeleted
    );
}

#[tokio::test]
async fn drain_json_prints_one_parsable_line_per_message() {
    let db = std::env::temp_dir().join(format!("{}.db", unique_name("cli-drain")));
    let store = Store::sqlite(SqliteDb::open(&db).unwrap(), DeleteMode::Tombstone);
    let streams = [
        StreamKey::new("crm", "conn-0", "Contact", "base"),
        StreamKey::new("crm", "conn-0", "Deal", "base"),
    ];
    for s in &streams {
        store.write_page(s, &[record("r0")]).await.unwrap();
        store
            .advance_cursor(s, None, "cursor-r0", 1, &[], None)
            .await
            .unwrap();
    }
    let (ok, out, stderr) = cli(&db, &["sync", "--all", "--json"]);
    assert!(ok, "{stderr}");
    let enqueued: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(enqueued["enqueued"], 2, "{out}");

    let (lines, out) = drain_json(&db);
    assert_eq!(lines.len(), 2, "{out}");
    let mut drained: Vec<String> = lines
        .iter()
        .map(|line| {
            assert!(line["message_id"].is_string(), "{line}");
            assert!(line["group_id"].is_string(), "{line}");
            assert_eq!(line["job"]["v"], 1, "{line}");
            serde_json::from_value::<StreamKey>(line["job"]["job"]["sync"]["stream"].clone())
                .unwrap()
                .encode()
        })
        .collect();
    drained.sort();
    let mut expected: Vec<String> = streams.iter().map(StreamKey::encode).collect();
    expected.sort();
    assert_eq!(drained, expected);

    let (ok, out, _) = cli(&db, &["drain", "--json"]);
    assert!(ok && out.is_empty(), "drained: nothing left ({out})");
}

/// The README's `nango-sync serve --webhook-only`, as a user runs it: it says where it listens, a
/// signed sample webhook is answered 200, and the job it acknowledged is on the queue even after
/// the process is killed.
#[tokio::test]
async fn serve_answers_a_signed_webhook_and_its_job_outlives_the_process() {
    use std::io::BufRead;
    let db = std::env::temp_dir().join(format!("{}.db", unique_name("cli-serve")));
    let serve_args = [
        "serve",
        "--webhook-only",
        "--reconcile-every",
        "0",
        "--listen",
        "127.0.0.1:0",
    ];
    let mut serve = command(&db, &serve_args)
        .env("NANGO_WEBHOOK_SIGNING_KEY", TEST_SIGNING_KEY)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the nango-sync binary runs");
    let mut stderr = std::io::BufReader::new(serve.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    // Keep reading: a closed pipe would make its next log line fail.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let url = first
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("serve says where it listens: {first:?}"))
        .to_owned();
    let client = reqwest::Client::new();
    let answered = replay(&client, &url, "webhook-sync-success.json").await;
    let forged = replay(&client, &url, "webhook-bad-signature.json").await;
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert_eq!((answered.as_u16(), forged.as_u16()), (200, 401));

    let (jobs, out) = drain_json(&db);
    assert_eq!(jobs.len(), 1, "only the genuine webhook is queued: {out}");
    assert!(jobs[0]["job"]["job"]["sync"].is_object(), "{out}");
}

/// The README promises `--json` on every command that reports.
#[test]
fn every_reporting_command_takes_json() {
    let commands = [
        "status",
        "sync",
        "reset",
        "replay",
        "drain",
        "reconcile",
        "sweep",
        "forget",
        "sign",
        "demo",
        "watch",
        "doctor",
        "write",
        "writes",
    ];
    for command in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_nango-sync"))
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command} --help");
        assert!(help.contains("--json"), "{command} has no --json:\n{help}");
    }
}

/// Destructive commands never wait for an answer without a terminal: without --yes they refuse
/// and change nothing; on a terminal they ask, and only "yes" goes ahead.
#[tokio::test]
async fn destructive_commands_ask_on_a_terminal_and_need_yes_elsewhere() {
    let db = std::env::temp_dir().join(format!("{}.db", unique_name("cli-yes")));
    let (store, s) = one_synced_stream(&db).await;
    let (ok, _, stderr) = cli(&db, &["sync", "--all"]);
    assert!(ok, "{stderr}");
    let stream = s.encode();
    for args in [
        vec!["drain"],
        vec!["reset", "--stream", &stream],
        vec!["forget", "--connection", "crm|conn-0", "--purge"],
    ] {
        let started = std::time::Instant::now();
        let (ok, _, stderr) = cli(&db, &args);
        assert!(
            !ok && stderr.contains("refused without --yes"),
            "{args:?}: {stderr}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "it did not wait"
        );
    }
    assert_eq!(store.count_live(&s).await.unwrap(), 1, "nothing was purged");
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(
        state.cursor.as_deref(),
        Some("cursor-r0"),
        "nothing was reset"
    );

    // On a terminal (script(1) gives the command one): "no" changes nothing, "yes" goes ahead.
    let on_a_terminal = |args: &str, typed: &str| {
        let command = format!(
            "{} {args} --db {}",
            env!("CARGO_BIN_EXE_nango-sync"),
            db.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env_remove("NANGO_API_KEY")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("script(1) runs (util-linux)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(typed.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let reset = format!("reset --stream '{stream}'");
    let (ok, shown) = on_a_terminal(&reset, "no\n");
    assert!(!ok && shown.contains("Type yes to go ahead"), "{shown}");
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(
        state.cursor.as_deref(),
        Some("cursor-r0"),
        "\"no\" reset nothing"
    );
    let (ok, shown) = on_a_terminal(&reset, "yes\n");
    assert!(ok && shown.contains("cursor of"), "{shown}");
    let state = store.get_stream(&s).await.unwrap().unwrap();
    assert_eq!(state.cursor, None, "\"yes\" reset it");
}

/// Read-only commands pointed at a missing database say so, and create nothing.
#[test]
fn a_missing_database_is_refused_not_created() {
    let db = std::env::temp_dir().join(format!("{}.db", unique_name("cli-missing")));
    for args in [
        vec!["status"],
        vec!["watch", "--no-follow"],
        vec!["drain"],
        vec!["sync", "--all"],
    ] {
        let (ok, _, stderr) = cli(&db, &args);
        assert!(
            !ok && stderr.contains("no database at"),
            "{args:?}: {stderr}"
        );
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}

/// `status --check` for cron and CI: 0 when nothing needs an operator, 8 for a stream in error,
/// held or purged, 16 for jobs in the dead-letter queue, 24 for both (flags clear of clap's 2).
#[tokio::test]
async fn status_check_exits_with_what_needs_an_operator() {
    use nango_sync::adapters::sqlite::{QueueSettings, SqliteQueue};
    use nango_sync::core::state::SyncReport;
    use nango_sync::ports::{JobConsumer, JobQueue, OutgoingMessage};
    let db = std::env::temp_dir().join(format!("{}.db", unique_name("cli-check")));
    let (store, s) = one_synced_stream(&db).await;
    let check = |db: &std::path::Path| {
        let out = command(db, &["status", "--check"]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, stderr) = check(&db);
    assert_eq!(status, Some(0), "{stderr}");
    let error = SyncReport {
        sync_name: "contacts".into(),
        at: "2026-12-07T00:00:00.000Z".into(),
        webhook_at: None,
        error: Some("Nango API key refused".into()),
    };
    store.report_sync(&s, &error).await.unwrap();
    let (status, stderr) = check(&db);
    assert_eq!(status, Some(8), "{stderr}");
    assert!(
        stderr.contains(&s.encode()) && stderr.contains("(error)"),
        "{stderr}"
    );
    // A job in the dead-letter queue as well: one receive allowed, and it was not deleted.
    let queue = SqliteQueue::ingest(
        SqliteDb::open(&db).unwrap(),
        QueueSettings {
            max_receive_count: 1,
            visibility_timeout: std::time::Duration::ZERO,
            retry_delay: std::time::Duration::ZERO,
            ..QueueSettings::default()
        },
    );
    queue
        .send(&[OutgoingMessage {
            group_id: "g".into(),
            dedup_id: "d".into(),
            body: "{}".into(),
        }])
        .await
        .unwrap();
    let taken = queue.receive(1, std::time::Duration::ZERO).await.unwrap();
    queue.release(&taken[0].receipt_handle).await.unwrap();
    let again = queue.receive(1, std::time::Duration::ZERO).await.unwrap();
    assert!(again.is_empty(), "moved to the dead-letter queue");
    let (status, stderr) = check(&db);
    assert_eq!(status, Some(24), "{stderr}");
    // A wrong command line is clap's 2, never mistaken for either.
    let out = command(&db, &["status", "--chek"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("dead-letter queue holds 1"), "{stderr}");
}

/// Shell completions and the man page come from the command-line definitions.
#[test]
fn completions_and_the_man_page_are_generated() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_nango-sync"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("complete -F _nango__sync") && bash.contains("--stack"),
        "{bash}"
    );
    assert!(run(&["completions", "zsh"]).contains("#compdef nango-sync"));
    let man = run(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH nango-sync"),
        "{man}"
    );
    assert!(man.contains("doctor") && man.contains("status"), "{man}");
}

/// `write` sends a write through Nango once, and the same request again reports the first one's
/// outcome; one that ended unknown exits non-zero and says how to resolve it; `writes` lists
/// them and `writes resolve` decides only an unknown one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_sends_once_and_writes_lists_and_resolves() {
    let db = std::env::temp_dir().join(format!("{}.db", unique_name("cli-write")));
    let sim = Arc::new(Simulator::new());
    sim.add_connection(StreamKey::new("hubspot", "u-1", "Contact", "base").connection());
    let server = SimServer::start(Arc::clone(&sim), ServerSettings::default())
        .await
        .unwrap();
    let request = |id: &str, record: &str| {
        let path = std::env::temp_dir().join(format!("{}.json", unique_name(id)));
        let body = json!({"v": 1, "id": id, "provider_config_key": "hubspot", "connection_id": "u-1",
            "run": {"kind": "tool", "name": "save-Contact", "input": {"id": record}},
            "record": {"model": "Contact", "id": record}});
        std::fs::write(&path, body.to_string()).unwrap();
        path
    };
    let url = server.url.clone();
    let run = move |args: Vec<String>| {
        let (db, url) = (db.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = command(&db, &args)
                .env("NANGO_API_KEY", API_KEY)
                .env("NANGO_BASE_URL", url)
                .output()
                .unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        })
    };
    let applied = |record: &str| server.provider.applied_to(record);
    let first = request("w-1", "c-1").display().to_string();
    for _ in 0..2 {
        let (ok, out, err) = run(vec!["write".into(), first.clone()]).await.unwrap();
        assert!(
            ok && out.contains("w-1  succeeded  attempts 1"),
            "{out}{err}"
        );
    }
    assert_eq!(applied("c-1"), 1, "the same request twice ran once");
    // Read your writes: one sync of the record's stream queued (the second run's has the same
    // deduplication id), for `serve` or `work` to run.
    let (ok, out, err) = run(vec!["drain".into(), "--json".into(), "--yes".into()])
        .await
        .unwrap();
    let jobs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(ok && jobs.len() == 1, "{out}{err}");
    assert_eq!(jobs[0]["job"]["job"]["sync"]["trigger"], "write", "{out}");

    server.provider.inject([WriteFault::ApplyThenDrop]);
    let second = request("w-2", "c-2").display().to_string();
    let (ok, out, err) = run(vec!["write".into(), second]).await.unwrap();
    assert!(!ok && out.contains("w-2  unknown"), "{out}{err}");
    assert!(err.contains("writes resolve w-2"), "{err}");
    assert_eq!(applied("c-2"), 1);

    let (ok, out, _) = run(vec!["writes".into(), "--json".into()]).await.unwrap();
    let listed: Vec<(String, String)> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|w| {
            (
                w["request"]["id"].as_str().unwrap().to_owned(),
                w["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(ok);
    assert_eq!(
        listed,
        [
            ("w-1".to_owned(), "succeeded".to_owned()),
            ("w-2".to_owned(), "unknown".to_owned())
        ]
    );
    let resolve = |id: &str, how: &str| {
        vec![
            "writes".into(),
            "resolve".into(),
            id.to_owned(),
            how.to_owned(),
        ]
    };
    let (ok, _, err) = run(resolve("w-1", "--failed")).await.unwrap();
    assert!(!ok && err.contains("is succeeded, not unknown"), "{err}");
    let (ok, out, err) = run(resolve("w-2", "--succeeded")).await.unwrap();
    assert!(ok && out.contains("w-2  succeeded"), "{out}{err}");
    assert_eq!(applied("c-2"), 1, "resolving sent nothing");
    // --retry: the operator checked the provider does not have it; it goes again now.
    server.provider.inject([WriteFault::ApplyThenDrop]);
    let third = request("w-3", "c-3").display().to_string();
    assert!(!run(vec!["write".into(), third]).await.unwrap().0);
    let (ok, _, err) = run(resolve("w-3", "--retry")).await.unwrap();
    assert!(
        !ok && err.contains("may still land until"),
        "too soon: {err}"
    );
    assert_eq!(
        applied("c-3"),
        1,
        "nothing sent while the first request may still land"
    );
    let mut forced = resolve("w-3", "--retry");
    forced.push("--force".into());
    let (ok, out, err) = run(forced).await.unwrap();
    assert!(
        ok && out.contains("w-3  succeeded  attempts 2"),
        "{out}{err}"
    );
    assert_eq!(applied("c-3"), 2, "sent again, as the operator decided");
}
