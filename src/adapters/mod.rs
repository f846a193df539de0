//! Adapters: the ports implemented over real services, SQLite and memory. Each receives its
//! settings; none reads the configuration.

pub mod aws;
#[cfg(feature = "test-util")]
pub mod memory;
pub mod nango;
#[cfg(feature = "local")]
pub mod sqlite;
