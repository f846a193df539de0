//! AWS: the DynamoDB stores, the SQS queue, Secrets Manager, CloudWatch metrics (EMF), and the stack's resources created on
//! any endpoint (moto) for local runs and tests.

pub mod dynamodb;
pub mod emf;
pub mod secrets;
pub mod sqs;
pub mod stack;
