//! The records table's DynamoDB stream read as a change feed (`nango-sync watch --store
//! dynamodb`): the changes the embedded backend's feed keeps (added, updated, deleted, pruned,
//! removed; a rewrite of the same version skipped), each named by its stream sequence number.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, ShardIteratorType};
use serde::Serialize;

use super::item::attr;

/// One change to a record (no payload: read the record by its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamChange {
    /// The stream record's sequence number: increasing within a shard; resume after it.
    pub seq: String,
    pub at: String,
    pub stream: String,
    pub id: String,
    /// added, updated, deleted, pruned or removed.
    pub change: &'static str,
}

/// Where reading starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Only changes from now on.
    Now,
    /// Every change the stream keeps (24 hours).
    Oldest,
    /// The changes after this sequence number.
    After(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("table {0} has no stream: template.yaml gives the records table a StreamSpecification (NEW_AND_OLD_IMAGES)")]
    NoStream(String),
    #[error("reading the records table's stream: {0}")]
    Read(String),
}

fn read_error(e: impl std::error::Error) -> FeedError {
    FeedError::Read(aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())
}

/// How often an open shard is polled again while following.
const POLL: Duration = Duration::from_secs(1);
/// While following, the shards are listed again this often (DynamoDB opens new ones).
const RELIST: Duration = Duration::from_secs(60);
/// Without following: rounds in a row with nothing read before the feed is taken as read.
const EMPTY_ROUNDS_TO_STOP: u32 = 3;

pub struct DynamoFeed {
    tables: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
}

impl DynamoFeed {
    pub fn new(sdk: &aws_config::SdkConfig, table: &str) -> Self {
        Self {
            tables: aws_sdk_dynamodb::Client::new(sdk),
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            table: table.to_owned(),
        }
    }

    /// Reads the changes from `start`, in order within each shard, and hands each to `each`.
    /// Without `follow` it stops once every shard has had nothing more for a few rounds (a
    /// stream can answer an empty page with more records behind it); with it, it polls on, and
    /// picks up the shards DynamoDB opens when it closes one (about every four hours).
    pub async fn read(
        &self,
        start: Start,
        follow: bool,
        mut each: impl FnMut(StreamChange),
    ) -> Result<(), FeedError> {
        let arn = self
            .tables
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(read_error)?
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| FeedError::NoStream(self.table.clone()))?;
        let after = match &start {
            Start::After(seq) => Some(seq.clone()),
            _ => None,
        };
        let mut known = std::collections::HashSet::new();
        let mut iterators = Vec::new();
        // The shards there are now start where asked; any found later starts at its oldest.
        let mut first = match start {
            Start::Now => ShardIteratorType::Latest,
            Start::Oldest | Start::After(_) => ShardIteratorType::TrimHorizon,
        };
        let mut empty_rounds = 0;
        let mut listed_at: Option<std::time::Instant> = None;
        let mut shard_closed = false;
        loop {
            // The shards are listed at the start, when one closed (its children are new), and
            // every minute while following.
            if listed_at.is_none_or(|at| at.elapsed() >= RELIST) || shard_closed {
                for shard in self.shards(&arn).await? {
                    if known.insert(shard.clone()) {
                        iterators.extend(self.iterator(&arn, shard, first.clone()).await?);
                    }
                }
                first = ShardIteratorType::TrimHorizon;
                listed_at = Some(std::time::Instant::now());
            }
            let mut read_any = false;
            let mut next = Vec::new();
            for iterator in &iterators {
                let out = self
                    .streams
                    .get_records()
                    .shard_iterator(iterator.as_str())
                    .send()
                    .await
                    .map_err(read_error)?;
                for record in out.records() {
                    read_any = true;
                    if let Some(change) = change_in(record, after.as_deref()) {
                        each(change);
                    }
                }
                // A closed shard (split or expired) has no next iterator: it is done.
                next.extend(out.next_shard_iterator);
            }
            shard_closed = next.len() < iterators.len();
            iterators = next;
            empty_rounds = if read_any { 0 } else { empty_rounds + 1 };
            if !follow && empty_rounds >= EMPTY_ROUNDS_TO_STOP {
                return Ok(());
            }
            if !read_any {
                tokio::time::sleep(if follow { POLL } else { POLL / 10 }).await;
            }
        }
    }

    async fn iterator(
        &self,
        arn: &str,
        shard: String,
        kind: ShardIteratorType,
    ) -> Result<Option<String>, FeedError> {
        Ok(self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .send()
            .await
            .map_err(read_error)?
            .shard_iterator)
    }

    /// The stream's shards, parents first (as DescribeStream lists them).
    async fn shards(&self, arn: &str) -> Result<Vec<String>, FeedError> {
        let mut shards = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let described = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(from.clone())
                .send()
                .await
                .map_err(read_error)?
                .stream_description;
            let Some(description) = described else {
                return Ok(shards);
            };
            shards.extend(
                description
                    .shards()
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_owned)),
            );
            match description.last_evaluated_shard_id {
                Some(last) => from = Some(last),
                None => return Ok(shards),
            }
        }
    }
}

/// One stream record as a change, if it is one a reader cares about and comes after `after`.
fn change_in(
    record: &aws_sdk_dynamodbstreams::types::Record,
    after: Option<&str>,
) -> Option<StreamChange> {
    let data = record.dynamodb()?;
    let seq = data.sequence_number().unwrap_or_default();
    if after.is_some_and(|after| !later(seq, after)) {
        return None;
    }
    let change = change_of(record.event_name()?, data.old_image(), data.new_image())?;
    let text = |name: &str| match data.keys().and_then(|k| k.get(name)) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    Some(StreamChange {
        seq: seq.to_owned(),
        at: data
            .approximate_creation_date_time()
            .and_then(|t| {
                t.fmt(aws_sdk_dynamodbstreams::primitives::DateTimeFormat::DateTime)
                    .ok()
            })
            .unwrap_or_default(),
        stream: text(attr::PK),
        id: text(attr::SK),
        change,
    })
}

/// Whether sequence number `seq` comes after `after` (decimal strings of any length).
fn later(seq: &str, after: &str) -> bool {
    let (seq, after) = (seq.trim_start_matches('0'), after.trim_start_matches('0'));
    (seq.len(), seq) > (after.len(), after)
}

type Image = HashMap<String, AttributeValue>;

/// What a stream record says happened to a record, as the embedded feed's triggers name it;
/// `None` for a write that changes nothing a reader cares about (the same version rewritten,
/// or a `seen_in` stamp of a sweep before sweeps kept their notes apart).
pub fn change_of(
    event: &OperationType,
    old: Option<&Image>,
    new: Option<&Image>,
) -> Option<&'static str> {
    let has = |image: Option<&Image>, name: &str| image.is_some_and(|i| i.contains_key(name));
    match event {
        OperationType::Insert if has(new, attr::DELETED_AT) => Some("deleted"),
        OperationType::Insert => Some("added"),
        OperationType::Remove => Some("removed"),
        OperationType::Modify => {
            let same = |name: &str| old.and_then(|i| i.get(name)) == new.and_then(|i| i.get(name));
            if same(attr::LAST_MODIFIED_AT) && same(attr::DELETED_AT) && same(attr::PRUNED_AT) {
                None
            } else if has(new, attr::DELETED_AT) && !has(old, attr::DELETED_AT) {
                Some("deleted")
            } else if has(old, attr::DELETED_AT) && !has(new, attr::DELETED_AT) {
                // Live again: an undelete, even one Nango pruned meanwhile.
                Some("updated")
            } else if has(new, attr::PRUNED_AT) && !has(old, attr::PRUNED_AT) {
                Some("pruned")
            } else {
                Some("updated")
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(pairs: &[(&str, &str)]) -> Image {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
            .collect()
    }

    #[test]
    fn changes_are_named_as_the_embedded_feed_names_them() {
        let live = image(&[(attr::LAST_MODIFIED_AT, "t1")]);
        let newer = image(&[(attr::LAST_MODIFIED_AT, "t2")]);
        let stamped = image(&[(attr::LAST_MODIFIED_AT, "t1"), ("seen_in", "sweep-1")]);
        let deleted = image(&[(attr::LAST_MODIFIED_AT, "t2"), (attr::DELETED_AT, "t2")]);
        let pruned = image(&[(attr::LAST_MODIFIED_AT, "t1"), (attr::PRUNED_AT, "t3")]);
        let modify =
            |old: &Image, new: &Image| change_of(&OperationType::Modify, Some(old), Some(new));
        assert_eq!(
            change_of(&OperationType::Insert, None, Some(&live)),
            Some("added")
        );
        assert_eq!(
            change_of(&OperationType::Insert, None, Some(&deleted)),
            Some("deleted")
        );
        assert_eq!(modify(&live, &newer), Some("updated"));
        assert_eq!(modify(&live, &deleted), Some("deleted"));
        assert_eq!(modify(&live, &pruned), Some("pruned"));
        assert_eq!(modify(&deleted, &newer), Some("updated"), "an undelete");
        assert_eq!(
            modify(&deleted, &pruned),
            Some("updated"),
            "an undelete Nango pruned meanwhile"
        );
        assert_eq!(modify(&live, &stamped), None, "a sweep's stamp");
        assert_eq!(
            change_of(&OperationType::Remove, Some(&live), None),
            Some("removed")
        );
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(later("100", "99"));
        assert!(later("000000000000000000010", "9"));
        assert!(!later("99", "100"));
        assert!(!later("5", "5"));
    }
}
