//! nango-sync: keep a copy of Nango-synced records in your own AWS account.
//!
//! - [`core`]: the pure logic (signatures, webhooks, jobs, the sync loop, reconcile), talking to
//!   the world only through the small traits in [`ports`].
//! - [`adapters`]: those traits over AWS (SQS, DynamoDB, Secrets Manager), Nango's API, SQLite
//!   and memory.
//! - [`lambda`]: Lambda's events and responses, converted to and from the core's types.
//! - [`local`]: the whole pipeline in one process, and the operator actions; [`cli`] drives it,
//!   [`simulator`] fakes Nango for it.
//! - [`config`] reads the environment, [`setup`] builds the deployed functions from it.
//!
//! Features: `local` (default) adds the CLI, the embedded backend, the local server and the
//! simulator; the Lambda bootstraps build without it. `test-util` adds the memory adapters and
//! the fuzzers' properties.

pub mod adapters;
#[cfg(feature = "local")]
pub mod cli;
pub mod config;
pub mod core;
#[cfg(feature = "test-util")]
pub mod fuzzing;
pub mod lambda;
#[cfg(feature = "local")]
pub mod local;
pub mod ports;
pub mod retry;
pub mod setup;
#[cfg(feature = "local")]
pub mod simulator;
pub mod telemetry;
