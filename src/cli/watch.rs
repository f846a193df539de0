//! `watch`: the change feed, printed as it grows: the embedded backend's `changes` table, or the
//! records table's DynamoDB stream (`--store dynamodb`, `--stack`).

use std::time::Duration;

use super::args::WatchArgs;
use super::backend::{must_exist, settings};
use super::CliResult;
use crate::adapters::aws::dynamodb::feed::{DynamoFeed, Start, StreamChange};
use crate::adapters::sqlite::{Change, SqliteDb, SqliteFeed};
use crate::local::backend::StoreTarget;

/// How often the embedded feed is read for new changes while following.
const POLL: Duration = Duration::from_millis(250);
const BATCH: usize = 1000;

pub async fn watch(args: WatchArgs) -> CliResult {
    let stream = args.stream.selected()?;
    // Only the records are read: the queue is neither opened nor needed.
    let settings = settings(&args.backend).await?;
    match &settings.store {
        StoreTarget::Sqlite { path } => {
            must_exist(path, "the store")?;
            let since = match &args.since {
                Some(text) => Some(text.parse::<u64>().map_err(|_| {
                    format!(
                        "--since {text:?}: the embedded feed's sequence numbers are whole numbers"
                    )
                })?),
                None => None,
            };
            let feed = SqliteFeed::new(SqliteDb::open(path)?);
            let mut after = match since {
                Some(seq) => seq,
                None => feed.latest().await?,
            };
            loop {
                let changes = feed.after(after, stream.as_ref(), BATCH).await?;
                for change in &changes {
                    println!("{}", sqlite_line(change, args.json));
                }
                match changes.last() {
                    Some(last) => after = last.seq,
                    None if args.no_follow => return Ok(()),
                    None => tokio::time::sleep(POLL).await,
                }
            }
        }
        StoreTarget::Dynamo { records_table, .. } => {
            let start = match args.since.as_deref() {
                None => Start::Now,
                Some("0") => Start::Oldest,
                Some(seq) if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => {
                    Start::After(seq.to_owned())
                }
                Some(other) => {
                    return Err(format!(
                        "--since {other:?}: a DynamoDB stream's sequence number is digits (the `seq` of a change)"
                    )
                    .into())
                }
            };
            let only = stream.map(|s| s.encode());
            DynamoFeed::new(&settings.sdk, records_table)
                .read(start, !args.no_follow, |change| {
                    if only.as_ref().is_none_or(|s| *s == change.stream) {
                        println!("{}", dynamo_line(&change, args.json));
                    }
                })
                .await?;
            Ok(())
        }
    }
}

/// One change, as JSON or as a line of text; both feeds' changes have the same fields.
fn line(
    json: bool,
    change: &impl serde::Serialize,
    seq: &dyn std::fmt::Display,
    fields: [&str; 4],
) -> String {
    if json {
        serde_json::to_string(change).expect("a change serializes")
    } else {
        let [at, change, stream, id] = fields;
        format!("{seq:>8}  {at}  {change:<8} {stream}  {id}")
    }
}

fn sqlite_line(c: &Change, json: bool) -> String {
    line(json, c, &c.seq, [&c.at, &c.change, &c.stream, &c.id])
}

fn dynamo_line(c: &StreamChange, json: bool) -> String {
    line(json, c, &c.seq, [&c.at, c.change, &c.stream, &c.id])
}
