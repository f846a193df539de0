//! Shared helpers: sample events, the documented test key, and the moto connection.

use std::path::PathBuf;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use nango_sync::signature::{SigningKey, Verifier};

/// The key that signs the samples in events/ (see events/README.md).
pub const TEST_SIGNING_KEY: &str = "nango-sync-test-signing-key";

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn test_verifier() -> Verifier {
    Verifier::new(SigningKey::new(TEST_SIGNING_KEY), None)
}

/// The moto server's URL. Set by scripts/test.sh; a missing server is a failure, not a skip.
pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOTO_ENDPOINT is not set: the over-the-wire tests need moto's server. \
             Run the suite with scripts/test.sh, which installs and starts it."
        )
    })
}

/// SDK settings aimed at moto, with the static test credentials it accepts.
pub async fn moto_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(moto_endpoint())
        .load()
        .await
}

/// A name no other test uses, so tests share one moto server without resets.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
