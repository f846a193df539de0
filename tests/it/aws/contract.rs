//! The store and queue contracts (`crate::contract`) over the wire: DynamoDB and SQS on moto.

use aws_sdk_sqs::types::QueueAttributeName;
use nango_sync::adapters::aws::dynamodb::{
    create_table, DynamoRecordStore, DynamoStateStore, WriteSettings,
};
use nango_sync::adapters::aws::sqs::SqsQueue;
use nango_sync::core::write::DeleteMode;
use nango_sync::local::backend::{Queue, Store};
use serde_json::json;

use crate::common::{moto_sdk_config, unique_name};
use crate::contract::{memory_trace, queue_contract, store_contract, trace};
use crate::writes::{async_action_contract, take_contract, through_nango, write_store_contract};

pub(crate) async fn dynamo_store() -> Store {
    dynamo_store_deleting(DeleteMode::Tombstone).await
}

async fn dynamo_store_deleting(delete_mode: DeleteMode) -> Store {
    let sdk = moto_sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let (records, state) = (unique_name("c-records"), unique_name("c-state"));
    create_table(&client, &records).await.unwrap();
    create_table(&client, &state).await.unwrap();
    Store::Dynamo {
        records: DynamoRecordStore::new(
            client.clone(),
            records,
            WriteSettings {
                delete_mode,
                ..WriteSettings::default()
            },
        ),
        state: DynamoStateStore::new(client, state),
    }
}

/// A FIFO queue with a 1 s visibility timeout and a DLQ after 2 receives, on moto.
async fn sqs_queues() -> (Queue, Queue) {
    let sdk = moto_sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let dlq_name = format!("{}.fifo", unique_name("c-dlq"));
    let dlq = SqsQueue::create_fifo(client.clone(), &dlq_name)
        .await
        .unwrap();
    let arn = client
        .get_queue_attributes()
        .queue_url(dlq.queue_url())
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let url = client
        .create_queue()
        .queue_name(format!("{}.fifo", unique_name("c-ingest")))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": 2}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (Queue::Sqs(SqsQueue::new(client, url)), Queue::Sqs(dlq))
}

#[tokio::test]
async fn store_contract_on_dynamodb() {
    store_contract(dynamo_store().await).await;
}

#[tokio::test]
async fn a_backfill_leaves_writes_their_share_of_the_rate_limit_on_dynamodb() {
    crate::writes::backfill_leaves_writes_their_share(dynamo_store().await).await;
}

#[tokio::test]
async fn pending_write_contract_on_dynamodb() {
    crate::contract::pending_write_contract(dynamo_store().await).await;
}

#[tokio::test]
async fn write_store_contract_on_dynamodb() {
    write_store_contract(dynamo_store().await).await;
}

#[tokio::test]
async fn writes_run_at_most_once_on_dynamodb() {
    take_contract(dynamo_store().await).await;
}

#[tokio::test]
async fn async_actions_end_as_their_result_says_on_dynamodb() {
    async_action_contract(dynamo_store().await).await;
}

#[tokio::test]
async fn async_actions_end_through_their_webhook_on_dynamodb() {
    crate::async_actions::async_actions_through_the_worker(dynamo_store().await).await;
}

#[tokio::test]
async fn writes_through_nango_on_dynamodb() {
    through_nango(dynamo_store().await).await;
}

#[tokio::test]
async fn queue_contract_on_sqs() {
    let (queue, dead) = sqs_queues().await;
    queue_contract(queue, dead).await;
}

#[tokio::test]
async fn dynamodb_applies_the_write_policy_as_memory_and_sqlite_do_item_for_item() {
    for mode in [DeleteMode::Tombstone, DeleteMode::Hard] {
        let dynamo = trace(&dynamo_store_deleting(mode).await).await;
        assert_eq!(dynamo, memory_trace(mode).await, "{mode:?}");
    }
}

/// A move whose UpdateItem applied but whose answer was lost: the SDK sends it again, the
/// condition no longer holds, and the store still knows the move was its own (its mark), while
/// another mover's identical move is refused.
#[tokio::test]
async fn a_write_move_applied_with_its_answer_lost_is_known_as_done() {
    use nango_sync::core::writes::request::WriteRequest;
    use nango_sync::core::writes::stored::{Move, Position};
    use nango_sync::ports::WriteStore;
    use std::sync::atomic::Ordering;

    let sdk = moto_sdk_config().await;
    let admin = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique_name("c-lost");
    create_table(&admin, &table).await.unwrap();
    let proxy = crate::aws::fault_proxy::FaultProxy::start(crate::common::moto_endpoint()).await;
    let through_proxy = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&proxy.url)
            .build(),
    );
    let store = DynamoStateStore::new(through_proxy, &table);
    let request = WriteRequest::parse(
        json!({"v": 1, "id": "w-lost", "provider_config_key": "p", "connection_id": "c",
            "run": {"kind": "tool", "name": "t", "input": {}}})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let at = "2026-12-07T10:00:00.000Z";
    store.accept_write(&request, at).await.unwrap();
    let begin = Move {
        from: Position::ACCEPTED,
        to: Position::ACCEPTED.sending(),
        outcome: None,
        at,
        reached: None,
        action_id: None,
    };
    proxy.faults.lose_update_answer.store(1, Ordering::SeqCst);
    assert!(
        store.move_write("w-lost", &begin).await.unwrap(),
        "the move applied; its retry must not say another mover won"
    );
    assert_eq!(
        proxy.faults.injected.load(Ordering::SeqCst),
        1,
        "the answer was lost"
    );
    let kept = store.get_write("w-lost").await.unwrap().unwrap();
    assert_eq!(kept.position, Position::ACCEPTED.sending());
    assert!(
        !store.move_write("w-lost", &begin).await.unwrap(),
        "another mover's identical move is refused"
    );
}
