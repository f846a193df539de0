//! Over the wire: the operator actions (sync now, reset, replay the DLQ) on the local twin of the
//! stack's queues and tables.

use nango_sync::adapters::aws::dynamodb::DynamoStateStore;
use nango_sync::adapters::aws::sqs::SqsQueue;
use nango_sync::adapters::aws::stack;
use nango_sync::core::job::{Job, JobMessage, Trigger};
use nango_sync::core::stream::StreamKey;
use nango_sync::local::ops;
use nango_sync::ports::OutgoingMessage;
use nango_sync::ports::{JobQueue, StateStore};

use crate::common::{drain, moto_sdk_config, unique_name};

#[tokio::test]
async fn sync_now_reset_and_replay() {
    let sdk = moto_sdk_config().await;
    let local = stack::create(&sdk, &unique_name("ops")).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = SqsQueue::new(sqs.clone(), &local.queue_url);
    let dlq = SqsQueue::new(sqs, &local.dead_letter_queue_url);
    let state = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), &local.state_table);
    let a = StreamKey::new("hubspot", "c1", "Contact", "base");
    let b = StreamKey::new("hubspot", "c2", "Deal", "base");
    state
        .advance_cursor(&a, None, "Y3Vyc29yLWE=", 3, &[], None)
        .await
        .unwrap();
    state
        .advance_cursor(&b, None, "Y3Vyc29yLWI=", 5, &[], None)
        .await
        .unwrap();

    // Sync now, for every known stream: one manual sync job per stream, in its group.
    let streams = state.list_streams().await.unwrap();
    let count = nango_sync::core::reconcile::enqueue_syncs(
        &queue,
        streams
            .into_iter()
            .map(|(s, _)| nango_sync::core::reconcile::SyncRequest::new(s, "x"))
            .collect(),
        Trigger::Manual,
        "now",
        &nango_sync::core::clock::SystemClock,
    )
    .await
    .unwrap();
    assert_eq!(count, 2);
    let jobs = drain(&queue).await;
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        let Job::Sync {
            stream, trigger, ..
        } = JobMessage::decode(&job.body).unwrap().job
        else {
            panic!()
        };
        assert_eq!(trigger, Trigger::Manual);
        assert_eq!(
            job.group_id.as_deref(),
            Some(stream.message_group_id().as_str())
        );
    }

    // Reset: the cursor is gone, the counts stay.
    state.reset_cursor(&a).await.unwrap();
    let after = state.get_stream(&a).await.unwrap().unwrap();
    assert_eq!((after.cursor, after.records_written), (None, 3));

    // Replay: a job parked in the DLQ goes back to the ingest queue, in its group, and leaves the DLQ.
    let parked = OutgoingMessage {
        group_id: a.message_group_id(),
        dedup_id: "d1".into(),
        body: "{\"v\":1}".into(),
    };
    dlq.send(std::slice::from_ref(&parked)).await.unwrap();
    assert_eq!(
        ops::replay_dead_letters(&dlq, &queue, 100).await.unwrap(),
        1
    );
    let back = drain(&queue).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, parked.body);
    assert_eq!(back[0].group_id.as_deref(), Some(parked.group_id.as_str()));
    assert!(drain(&dlq).await.is_empty());
}
