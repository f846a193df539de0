//! AWS: the DynamoDB stores, the SQS queue, Secrets Manager, CloudWatch metrics (EMF), EventBridge, and the stack's resources created on
//! any endpoint (moto) for local runs and tests.

#[cfg(feature = "local")]
pub(crate) mod cloudformation;
pub mod dynamodb;
pub mod emf;
pub mod eventbridge;
pub(crate) mod secrets;
pub mod sqs;
pub mod stack;
