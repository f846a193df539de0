//! nango-sync: keep a copy of Nango-synced records in your own AWS account.
//!
//! The pure core (signatures, webhook payloads, stream keys, job messages, the webhook decision)
//! talks to the world through the small traits in [`ports`]; [`adapters`] implement them over SQS,
//! Secrets Manager and in memory. The binaries in `src/bin` only wire these together.

pub mod adapters;
pub mod backend;
pub mod config;
pub mod demo;
pub mod fuzzing;
pub mod item;
pub mod job;
pub mod local_run;
pub mod local_server;
pub mod ops;
pub mod payload;
pub mod ports;
pub mod reconcile;
pub mod record;
pub mod runner;
pub mod setup;
pub mod signature;
pub mod simulator;
pub mod stream;
pub mod sync;
pub mod telemetry;
pub mod webhook;
pub mod worker;
