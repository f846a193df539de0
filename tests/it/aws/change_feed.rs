//! The change feed, on moto: the records table's DynamoDB stream (as template.yaml and the local
//! stack enable it) carries one change per record written, with its item before and after, read
//! back with GetRecords. The example consumer (infra/change-feed/consumer.py) turns the same
//! stream records into added / updated / deleted / pruned changes, compressed records included.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, Record, ShardIteratorType};
use base64::Engine;
use nango_sync::adapters::aws::dynamodb::{DynamoRecordStore, DynamoStateStore};
use nango_sync::adapters::aws::stack;
use nango_sync::core::stream::StreamKey;
use nango_sync::local::backend::Store;
use nango_sync::ports::RecordStore;
use nango_sync::simulator::sample_payload;
use serde_json::{json, Map, Value};

use crate::common::{change_kinds, fast_writes, moto_sdk_config, unique_name};
use crate::reconcile::{rig, Backend};

/// Every stream record of `table` so far, in order (moto keeps one shard).
async fn stream_records(sdk: &aws_config::SdkConfig, table: &str) -> Vec<Record> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let described = dynamo
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let arn = described
        .table
        .unwrap()
        .latest_stream_arn
        .expect("the table has a stream");
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let shards = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id.unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(at) = iterator {
            let page = streams
                .get_records()
                .shard_iterator(at)
                .send()
                .await
                .unwrap();
            let got = page.records.unwrap_or_default();
            // A page of records already read (a stream that hands the same ones again) ends the
            // read as an empty one does: the shard has nothing new.
            let newest = |r: &[Record]| {
                r.last()
                    .and_then(|r| r.dynamodb.as_ref())
                    .and_then(|d| d.sequence_number.clone())
            };
            let seq = |s: Option<String>| s.and_then(|s| s.parse::<u128>().ok());
            if got.is_empty() || seq(newest(&got)) <= seq(newest(&records)) {
                break;
            }
            records.extend(got);
            iterator = page.next_shard_iterator;
        }
    }
    records
}

/// A stream record's image as DynamoDB JSON, the wire form a Lambda consumer receives.
fn wire(value: &AttributeValue) -> Value {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b.as_ref())}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(n) => json!({"NULL": n}),
        AttributeValue::M(m) => json!({"M": image(m)}),
        AttributeValue::L(l) => json!({"L": l.iter().map(wire).collect::<Vec<_>>()}),
        AttributeValue::Ss(s) => json!({"SS": s}),
        AttributeValue::Ns(n) => json!({"NS": n}),
        AttributeValue::Bs(b) => {
            json!({"BS": b.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>()})
        }
        other => panic!("an attribute type the store never writes: {other:?}"),
    }
}

fn image(item: &std::collections::HashMap<String, AttributeValue>) -> Map<String, Value> {
    item.iter().map(|(k, v)| (k.clone(), wire(v))).collect()
}

fn wire_record(record: &Record) -> Value {
    let data = record.dynamodb.as_ref().unwrap();
    let mut dynamodb = Map::new();
    dynamodb.insert(
        "Keys".into(),
        Value::Object(image(data.keys.as_ref().unwrap())),
    );
    for (name, item) in [("OldImage", &data.old_image), ("NewImage", &data.new_image)] {
        if let Some(item) = item {
            dynamodb.insert(name.into(), Value::Object(image(item)));
        }
    }
    json!({"eventName": record.event_name.as_ref().unwrap().as_str(), "dynamodb": dynamodb})
}

/// The example consumer's changes for these stream records (`python3 consumer.py`, boto3 from
/// the venv that runs moto).
fn consumer_changes(records: &[Record]) -> Vec<Value> {
    let input = json!({"Records": records.iter().map(wire_record).collect::<Vec<_>>()});
    let python = std::env::var("NANGO_SYNC_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into());
    let mut child = Command::new(&python)
        .arg("infra/change-feed/consumer.py")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} runs (scripts/moto.sh installs it): {e}"));
    serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the consumer failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn by_id(records: &[Record]) -> BTreeMap<String, Vec<&Record>> {
    let mut out: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in records {
        let keys = r.dynamodb.as_ref().unwrap().keys.as_ref().unwrap();
        let AttributeValue::S(id) = &keys["sk"] else {
            panic!("sk is a string")
        };
        out.entry(id.clone()).or_default().push(r);
    }
    out
}

#[tokio::test]
async fn a_sync_puts_one_change_per_record_on_the_records_stream_on_moto() {
    let sdk = moto_sdk_config().await;
    let resources = stack::create(&sdk, &unique_name("feed")).await.unwrap();
    let mut rig = rig(Backend::Dynamo).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = Store::Dynamo {
        records: DynamoRecordStore::new(client.clone(), &resources.records_table, fast_writes()),
        state: DynamoStateStore::new(client, &resources.state_table),
    };
    rig.app.records = store.clone();
    rig.app.state = store;

    let s = StreamKey::new("crm", "conn-0", "Contact", "base");
    let mut big = sample_payload(99);
    big.insert(
        "notes".into(),
        Value::String("a long note. ".repeat(40_000)),
    );
    let mut first: Vec<(String, Map<String, Value>)> = (0..30)
        .map(|i| (format!("c{i}"), sample_payload(i)))
        .collect();
    first.push(("big".into(), big.clone()));
    rig.sim.save(&s, first);
    rig.webhook_sync(&s).await;

    let records = stream_records(&sdk, &resources.records_table).await;
    assert_eq!(records.len(), 31, "one change per record written");
    assert!(records
        .iter()
        .all(|r| r.event_name == Some(OperationType::Insert)));
    let inserted = by_id(&records);
    let big_image = inserted["big"][0]
        .dynamodb
        .as_ref()
        .unwrap()
        .new_image
        .as_ref()
        .unwrap();
    assert!(
        big_image.contains_key("record_gz") && !big_image.contains_key("record"),
        "the big record is stored compressed"
    );
    let changes = consumer_changes(&records);
    assert_eq!(changes.len(), 31);
    assert!(
        changes.iter().all(|c| c["change"] == "added"),
        "{changes:?}"
    );
    let big_change = changes.iter().find(|c| c["id"] == "big").unwrap();
    assert_eq!(
        big_change["record"]["notes"], big["notes"],
        "the compressed record reads back"
    );
    assert_eq!(big_change["stream"], s.encode());

    // A second run: two updated, one deleted, one pruned. Nango's prune moves no cursor, so
    // the copy learns of it when it reads the record again from the start (a reset's re-read,
    // a sweep): here the pruned record as that read serves it.
    rig.sim.tick();
    rig.sim.save(
        &s,
        (0..2).map(|i| (format!("c{i}"), sample_payload(i + 100))),
    );
    rig.sim.delete(&s, &["c2"]);
    rig.sim.prune(&s, &["c3"]);
    rig.webhook_sync(&s).await;
    let page = rig.sim.page(&s, None, 100).unwrap().to_string();
    let reread: Vec<_> = nango_sync::core::record::RecordsPage::parse(page.as_bytes())
        .unwrap()
        .records
        .into_iter()
        .filter(|r| r.id == "c3")
        .collect();
    rig.app.records.write_page(&s, &reread).await.unwrap();

    let records = stream_records(&sdk, &resources.records_table).await;
    let later = &records[31..];
    assert_eq!(
        later.len(),
        4,
        "one change per record written in the second run"
    );
    let changed = by_id(later);
    for (id, record) in &changed {
        assert_eq!(record.len(), 1, "{id}");
        assert_eq!(record[0].event_name, Some(OperationType::Modify), "{id}");
        let data = record[0].dynamodb.as_ref().unwrap();
        assert!(
            data.old_image.is_some() && data.new_image.is_some(),
            "{id}: both images"
        );
    }
    let new_of = |id: &str| {
        changed[id][0]
            .dynamodb
            .as_ref()
            .unwrap()
            .new_image
            .clone()
            .unwrap()
    };
    assert!(
        matches!(new_of("c2").get("deleted_at"), Some(AttributeValue::S(_))),
        "a tombstone"
    );
    assert!(
        new_of("c3").contains_key("record"),
        "a pruned record keeps its stored payload"
    );

    let kinds = change_kinds(&consumer_changes(later));
    let expected = [
        ("c0", "updated"),
        ("c1", "updated"),
        ("c2", "deleted"),
        ("c3", "pruned"),
    ];
    assert_eq!(kinds, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    let updated = consumer_changes(later);
    let c0 = updated.iter().find(|c| c["id"] == "c0").unwrap();
    assert_eq!(
        c0["record"]["name"],
        sample_payload(100)["name"],
        "the new image's record"
    );
}
