//! What the benches on moto share: the SDK's configuration for moto, and fresh tables.

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use nango_sync::adapters::aws::dynamodb::create_table;

/// The AWS SDK's configuration for the moto server at `MOTO_ENDPOINT`; `script` starts one.
pub async fn moto_sdk(script: &str) -> SdkConfig {
    let endpoint = std::env::var("MOTO_ENDPOINT")
        .unwrap_or_else(|_| panic!("MOTO_ENDPOINT is not set: run {script}, which starts moto"));
    aws_config::defaults(nango_sync::setup::behavior_version())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A records table and a state table of this run's own, named after `bench`.
#[allow(dead_code)] // Not every bench keeps records.
pub async fn fresh_tables(client: &aws_sdk_dynamodb::Client, bench: &str) -> (String, String) {
    let suffix = std::process::id();
    let tables = (
        format!("bench-{bench}-records-{suffix}"),
        format!("bench-{bench}-state-{suffix}"),
    );
    create_table(client, &tables.0).await.unwrap();
    create_table(client, &tables.1).await.unwrap();
    tables
}
