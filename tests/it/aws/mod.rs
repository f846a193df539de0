//! Everything over the wire: DynamoDB, SQS, Secrets Manager, EventBridge and CloudFormation on
//! the moto server `scripts/test.sh` starts, and the Lambda bootstraps run against it. Without
//! the server these tests fail, they never skip. `scripts/test.sh fast` runs all but this folder.

mod change_feed;
mod chaos;
mod contract;
mod deploy_rehearsal;
pub(crate) mod fault_proxy;
mod ops;
mod reconcile;
pub(crate) mod runtime_loop;
pub(crate) mod secrets;
mod signing;
mod sqs;
mod stream_events;
mod template;
mod worker;
mod worker_handler;
