//! `watch`: the embedded backend's change feed, printed as it grows.

use std::time::Duration;

use super::args::WatchArgs;
use super::{parse_stream, CliResult};
use crate::adapters::sqlite::{Change, SqliteDb, SqliteFeed};

/// How often the feed is read for new changes while following.
const POLL: Duration = Duration::from_millis(250);
const BATCH: usize = 1000;

pub async fn watch(args: WatchArgs) -> CliResult {
    let stream = args.stream.as_deref().map(parse_stream).transpose()?;
    let feed = SqliteFeed::new(SqliteDb::open(&args.db)?);
    let mut after = match args.since {
        Some(seq) => seq,
        None => feed.latest().await?,
    };
    loop {
        let changes = feed.after(after, stream.as_ref(), BATCH).await?;
        for change in &changes {
            println!("{}", line(change, args.json));
        }
        match changes.last() {
            Some(last) => after = last.seq,
            None if args.no_follow => return Ok(()),
            None => tokio::time::sleep(POLL).await,
        }
    }
}

fn line(change: &Change, json: bool) -> String {
    if json {
        serde_json::to_string(change).expect("a change serializes")
    } else {
        format!(
            "{:>8}  {}  {:<8} {}  {}",
            change.seq, change.at, change.change, change.stream, change.id
        )
    }
}
