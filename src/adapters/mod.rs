//! Adapters: the ports implemented over real services and in memory.

pub mod memory;
pub mod secrets;
pub mod sqs;
