//! The integration suite: one crate (the AWS SDK links once). Tests over the wire need the moto
//! server that `scripts/test.sh` starts; without it they fail, they never skip. Their paths say
//! so, for `scripts/test.sh fast` to leave them out: `moto` in the module or test name,
//! `on_dynamodb` / `on_sqs` for a contract or scenario run on AWS, and the `chaos`,
//! `runtime_loop` and `worker_handler` modules.

mod bad_inputs;
mod change_feed_moto;
mod chaos;
mod cli;
mod common;
mod contract;
mod deploy_rehearsal_moto;
mod events;
mod fault_proxy;
mod fuzz;
mod job_log;
mod job_metrics;
mod local_feed;
mod local_run;
mod local_server;
mod ops_moto;
mod rate_limits;
mod reconcile;
mod runtime_loop;
mod secrets_moto;
mod signature_vectors;
mod sqs_moto;
mod stream_events_moto;
mod sync_loop;
mod template;
mod webhook_metrics;
mod worker_handler;
mod worker_moto;
