//! Adapters: the ports implemented over real services and in memory.

pub mod dynamodb;
pub mod local_aws;
pub mod memory;
pub mod nango;
pub mod secrets;
pub mod sqlite;
pub mod sqs;
