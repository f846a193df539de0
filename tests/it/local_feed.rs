//! The embedded backend's change feed (the `changes` table its triggers keep) and
//! `nango-sync watch`: the same changes the DynamoDB stream carries (tests/it/aws/change_feed.rs
//! runs the same story there), resumable from a sequence number, and followed as they happen.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use nango_sync::adapters::sqlite::SqliteDb;
use nango_sync::core::stream::StreamKey;
use nango_sync::core::write::DeleteMode;
use nango_sync::core::write::Removal;
use nango_sync::local::backend::Store;
use nango_sync::ports::RecordStore;
use nango_sync::simulator::sample_payload;
use serde_json::Value;

use crate::common::{change_kinds, unique_name};
use crate::reconcile::{rig, Backend};

fn watch(db: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_nango-sync"))
        .arg("watch")
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn watch_shows_each_change_once_resumes_from_a_seq_and_follows() {
    let db = std::env::temp_dir().join(format!("{}.db", unique_name("feed")));
    let store = Store::sqlite(SqliteDb::open(&db).unwrap(), DeleteMode::Tombstone);
    let mut rig = rig(Backend::Sqlite).await;
    rig.app.records = store.clone();
    rig.app.state = store.clone();

    let s = StreamKey::new("crm", "conn-0", "Contact", "base");
    rig.sim
        .save(&s, (0..30).map(|i| (format!("c{i}"), sample_payload(i))));
    rig.webhook_sync(&s).await;
    let first = watch(&db, &["--since", "0", "--no-follow", "--json"]);
    assert_eq!(first.len(), 30, "one change per record written");
    assert!(first
        .iter()
        .all(|c| c["change"] == "added" && c["stream"] == s.encode()));
    let seqs: Vec<u64> = first.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");

    // Two updated, one deleted, one pruned; then the stream is read again and rewritten whole
    // (a reset's re-read). Nango's prune moves no cursor, so the re-read is what shows it; the
    // other records it rewrites change nothing a reader cares about.
    rig.sim.tick();
    rig.sim.save(
        &s,
        (0..2).map(|i| (format!("c{i}"), sample_payload(i + 100))),
    );
    rig.sim.delete(&s, &["c2"]);
    rig.sim.prune(&s, &["c3"]);
    rig.webhook_sync(&s).await;
    // The re-read: every record as Nango serves it, written again at the version stored.
    let page = rig.sim.page(&s, None, 100).unwrap().to_string();
    let records = nango_sync::core::record::RecordsPage::parse(page.as_bytes())
        .unwrap()
        .records;
    assert_eq!(records.len(), 30);
    store.write_page(&s, &records).await.unwrap();

    let last_seen = seqs.last().unwrap().to_string();
    let later = watch(&db, &["--since", &last_seen, "--no-follow", "--json"]);
    let expected = [
        ("c0", "updated"),
        ("c1", "updated"),
        ("c2", "deleted"),
        ("c3", "pruned"),
    ];
    assert_eq!(
        change_kinds(&later),
        expected.map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let other = "crm|conn-0|Deal|base";
    assert!(watch(
        &db,
        &["--since", "0", "--no-follow", "--json", "--stream", other]
    )
    .is_empty());
    assert_eq!(
        watch(
            &db,
            &[
                "--since",
                "0",
                "--no-follow",
                "--json",
                "--stream",
                &s.encode()
            ]
        )
        .len(),
        34
    );

    // The deleted record undeleted, then pruned before it was read: live again, named as an
    // undelete is (updated), not as a prune (payload kept, Nango's gone).
    rig.sim.tick();
    rig.sim.save(&s, [("c2".to_owned(), sample_payload(200))]);
    rig.sim.prune(&s, &["c2"]);
    rig.webhook_sync(&s).await;
    let last_seen = later.last().unwrap()["seq"].as_u64().unwrap().to_string();
    let undeleted = watch(&db, &["--since", &last_seen, "--no-follow", "--json"]);
    assert_eq!(
        change_kinds(&undeleted),
        [("c2".to_owned(), "updated".to_owned())]
    );

    // Following: started now, it prints what is written next (a purge: every record removed).
    let mut child = Command::new(env!("CARGO_BIN_EXE_nango-sync"))
        .args(["watch", "--json", "--stream", &s.encode(), "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .take(30)
            .map(|l| l.unwrap())
            .collect::<Vec<_>>()
    });
    // Give it time to read the latest seq before the purge.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.remove_stream(&s, Removal::Purge).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let lines = reader.join().unwrap();
    assert_eq!(lines.len(), 30, "every record removed, as it happened");
    assert!(
        lines.iter().all(|l| l.contains("\"change\":\"removed\"")),
        "{lines:?}"
    );
}
