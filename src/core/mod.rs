//! The core: what nango-sync does, free of any edge (no AWS, Lambda, SQLite, HTTP or CLI crate).
//! It reaches the world through [`crate::ports`].

pub mod clock;
pub mod connection;
pub mod drift;
pub mod events;
pub mod job;
pub mod live_change;
pub mod metrics;
pub mod nango_status;
pub mod outcome;
pub mod page_budget;
pub mod payload;
pub mod reconcile;
pub mod record;
pub mod reread;
pub(crate) mod rotation;
pub mod seen;
pub mod signature;
pub mod state;
pub mod stream;
pub mod sync;
pub mod webhook;
pub mod worker;
pub mod write;
pub mod writes;
