//! What the benches share: the median of their runs; for those on moto, the SDK's configuration
//! and fresh tables. Each bench uses only some of it.
#![allow(dead_code)]

use std::time::Duration;

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

/// The median of some runs' times (the upper one of an even count).
pub fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}
