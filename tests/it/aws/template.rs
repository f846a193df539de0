//! The local twin of the stack (`--local-aws`) created on moto with the settings template.yaml
//! deploys (the deploy rehearsal, `aws::deploy_rehearsal`, creates the template itself).

use nango_sync::adapters::aws::stack;
use nango_sync::ports::DEFAULT_MAX_RECEIVE_COUNT;

use crate::common::{moto_sdk_config, unique_name};
use crate::template::{scalar, template};

#[tokio::test]
async fn local_setup_creates_the_stack_resources_on_moto() {
    let sdk = moto_sdk_config().await;
    let resources = stack::create(&sdk, &unique_name("local")).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&resources.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let get = |name: &str| {
        attributes
            .get(&aws_sdk_sqs::types::QueueAttributeName::from(name))
            .cloned()
    };
    assert_eq!(get("FifoQueue").as_deref(), Some("true"));
    assert_eq!(get("VisibilityTimeout").as_deref(), Some("1800"));
    let redrive: serde_json::Value = serde_json::from_str(&get("RedrivePolicy").unwrap()).unwrap();
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        DEFAULT_MAX_RECEIVE_COUNT.to_string()
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    for table in [&resources.records_table, &resources.state_table] {
        let described = dynamo
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap();
        let keys: Vec<_> = described
            .table
            .unwrap()
            .key_schema
            .unwrap()
            .into_iter()
            .map(|k| k.attribute_name)
            .collect();
        assert_eq!(keys, ["pk", "sk"]);
    }
    // The records table's change feed, as template.yaml's StreamSpecification has it.
    let t = template();
    let feed = &t["Resources"]["RecordsTable"]["Properties"]["StreamSpecification"];
    assert_eq!(scalar(&feed["StreamViewType"]), "NEW_AND_OLD_IMAGES");
    let described = dynamo
        .describe_table()
        .table_name(&resources.records_table)
        .send()
        .await
        .unwrap();
    let local = described.table.unwrap().stream_specification.unwrap();
    assert!(local.stream_enabled);
    assert_eq!(
        local.stream_view_type.unwrap().as_str(),
        scalar(&feed["StreamViewType"])
    );
}
