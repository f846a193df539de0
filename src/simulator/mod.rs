//! A Nango simulator: an in-memory records cache with Nango's semantics (contract §4–§5), served
//! over HTTP by [`server`]. The tests use it as the fake Nango; the CLI will offer it to users.
//!
//! What it keeps faithful: one row per (stream, id) holding only the latest payload; ascending
//! order by (last_modified_at, uuid) with a strict `>` after the cursor; cursors are base64 of
//! `<postgres timestamptz>||<uuid>`; soft deletes keep the payload and bump last_modified_at; an
//! undelete resets first_seen_at and shows ADDED; prunes drop the payload; `next_cursor` is null on
//! the last page; an undecodable cursor is a 500.
//!
//! - [`cache`]: the records cache and its mutations ([`Simulator`]);
//! - [`wire`]: timestamps, cursors and uuids as Nango writes them;
//! - [`generate`]: generated payloads;
//! - [`in_process`]: the cache as a source, without HTTP ([`InProcessSource`]);
//! - [`server`]: Nango's API over HTTP, with faults; [`webhooks`]: signed sync webhooks;
//! - [`writes`]: the write APIs (tools, actions, proxy) and the fake provider behind them.

mod cache;
mod generate;
mod http;
mod in_process;
pub mod server;
pub mod webhooks;
mod wire;
pub mod writes;

pub use cache::{Changes, Simulator, SyncRun};
pub use generate::{incompressible_text, sample_payload, RecordShape};
pub use in_process::InProcessSource;
pub use wire::{decode_cursor, encode_cursor, pg_timestamp, Micros, SimError};
