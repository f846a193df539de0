//! The drift check and what guards it. After a reconcile's sync, the drift check compares the
//! stream's live count with Nango's `recordCount` ([`check`]); when Nango lost records without
//! reporting them deleted (a cache wipe), a sweep re-reads the stream and marks deleted what
//! Nango no longer has.
//!
//! The copy exists to outlive Nango's cache, so nothing here deletes on Nango's word alone beyond
//! a small bound ([`guard::SweepGuard`]):
//! - no check while Nango is mid-pass: a run under way, or a checkpointed pass not finished;
//! - no check, and status `nango_purged`, once Nango's retention may have purged the stream (no
//!   successful run for 60 days) or the sync is gone from `/sync/status` ([`guard::readiness`]);
//! - a count of 0 while Nango's records API still serves live records is not trusted;
//! - a sweep's deletes apply only within the guard's bound; beyond it they are held for an
//!   operator ([`held`]: `nango-sync sweep --confirm | --discard`).

mod check;
mod guard;
mod held;
mod sweep;

pub use check::{DriftCheck, DriftSettings, DriftStep};
pub use guard::SweepGuard;
pub use held::{decide_held, HoldDecision, HoldError};
pub use sweep::{compare, heal, Comparison, Healed};
