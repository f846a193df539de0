//! The embedded backend: records, state and the job queue in one SQLite file (the bundled
//! library), for local runs with no AWS account. It keeps the DynamoDB and SQS adapters'
//! behaviour (the contract suite in tests/it/contract.rs runs against both), and its JSON columns
//! can be queried with sqlite3's `json_extract`. The schema is [`SCHEMA`], documented in README.md.
//!
//! rusqlite is synchronous: every call runs on tokio's blocking pool, one connection behind a
//! mutex (local runs write far below what one SQLite connection handles).
//!
//! - [`db`]: the file, its schema and the connection;
//! - [`records`]: records ([`SqliteRecordStore`]), [`state`]: streams, connections and events
//!   ([`SqliteStateStore`]), as `dynamodb/` has them;
//! - [`writes`]: writes to the provider, kept by the state store as the state table keeps them;
//! - [`queue`]: the FIFO job queue and its dead-letter queue ([`SqliteQueue`]);
//! - [`feed`]: the change feed the schema's triggers keep ([`SqliteFeed`]).

mod db;
mod feed;
mod queue;
mod records;
mod state;
mod writes;

pub use db::{SqliteDb, CHANGES_KEPT, SCHEMA};
pub use feed::{Change, SqliteFeed};
pub use queue::{QueueSettings, SqliteQueue};
pub use records::SqliteRecordStore;
pub use state::SqliteStateStore;
