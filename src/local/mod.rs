//! The one-process run and the operator's actions: the webhook endpoint on localhost, the job
//! loop, the backends chosen at run time, and the demo.

pub mod backend;
pub mod demo;
pub(crate) mod jobs;
pub mod ops;
pub mod run;
pub mod server;
