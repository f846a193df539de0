//! The integration suite: one crate (the AWS SDK links once). Everything that needs the moto
//! server `scripts/test.sh` starts is in `aws/`: `scripts/test.sh fast` runs all but that folder
//! (`--skip aws::`), and a test outside it that reaches for moto fails loudly for want of
//! MOTO_ENDPOINT rather than leaving the fast tier.

mod async_actions;
mod aws;
mod bad_inputs;
mod cli;
mod clock;
mod common;
mod contract;
mod events;
mod fuzz;
mod house;
mod job_log;
mod job_metrics;
mod local_feed;
mod local_run;
mod local_server;
mod rate_limits;
mod reconcile;
mod side_by_side;
mod signature_vectors;
mod sweep;
mod sync_loop;
mod template;
mod webhook_metrics;
mod writes;
