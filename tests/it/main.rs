//! The integration suite: one crate (the AWS SDK links once). Tests marked "over the wire" need
//! the moto server that `scripts/test.sh` starts; without it they fail, they never skip.

mod bad_inputs;
mod chaos;
mod cli;
mod common;
mod contract;
mod events;
mod fault_proxy;
mod fuzz;
mod local_run;
mod local_server;
mod ops_moto;
mod reconcile;
mod runtime_loop;
mod secrets_moto;
mod signature_vectors;
mod sqs_moto;
mod sync_loop;
mod template;
mod worker_handler;
mod worker_moto;
