//! Adapters: the ports implemented over real services, SQLite and memory. Each receives its
//! settings; none reads the configuration.

pub mod aws;
pub mod memory;
pub mod nango;
pub mod sqlite;
