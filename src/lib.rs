//! nango-sync: keep a copy of Nango-synced records in your own AWS account.
//!
//! - [`core`]: the pure logic (signatures, webhooks, jobs, the sync loop, reconcile) and its
//!   model (state, records, streams), talking to the world only through the traits in [`ports`].
//! - [`adapters`]: those traits over AWS (SQS, DynamoDB, Secrets Manager, EventBridge), Nango's
//!   API, SQLite and memory.
//! - [`lambda`]: Lambda's events and responses, converted to and from the core's types.
//! - [`local`]: the whole pipeline in one process, and the operator actions; [`cli`] drives it,
//!   [`simulator`] fakes Nango for it.
//! - [`config`] reads the environment, [`setup`] builds the deployed functions from it.
//!
//! The public surface is what the binaries (`src/bin/`), the integration tests, the benches and
//! the fuzz targets use: the modules above and the items they export. What only the crate uses
//! is `pub(crate)` or private: the secret rotation, the drift check's parts (re-exported from
//! [`core::drift`]), DynamoDB's item and wire encodings, the change feeds, the stack outputs
//! reader, the secrets reader and the local job loop. No API is promised to other crates yet: the
//! version is 0.x and this is an application's library.
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
