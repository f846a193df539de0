//! The `nango-sync` command line: the demo, local runs and operator tools. Every command calls
//! the library; [`args`] holds the commands and their flags, one file per group below.

mod args;
mod backend;
mod queue;
mod run;
mod sign;
mod streams;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::core::stream::StreamKey;
use crate::telemetry;
pub use args::{Cli, Command};

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Parses the command line, runs the command, and reports an error the user can act on.
pub async fn main() -> ExitCode {
    let command = Cli::parse().command;
    // The demo draws progress bars: only warnings and errors interleave with them.
    telemetry::init_cli(if matches!(command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    });
    let result = match command {
        Command::Demo(args) => run::demo(args).await,
        Command::Serve(args) => run::serve(args).await,
        Command::Work(args) => run::work(args).await,
        Command::Simulate(args) => run::simulate(args).await,
        Command::Status(args) => streams::status(args).await,
        Command::Sync(args) => streams::sync_now(args).await,
        Command::Reset(args) => streams::reset(args).await,
        Command::Reconcile(args) => streams::reconcile(args).await,
        Command::Sweep(args) => streams::sweep(args).await,
        Command::Forget(args) => streams::forget(args).await,
        Command::Replay(args) => queue::replay(args).await,
        Command::Drain(args) => queue::drain(args).await,
        Command::Sign(args) => sign::sign(args).await,
        Command::Watch(args) => watch::watch(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A `--stream` argument.
fn parse_stream(text: &str) -> Result<StreamKey, Box<dyn std::error::Error>> {
    StreamKey::decode(text).map_err(|e| {
        format!("--stream {text:?}: {e}; write it as providerConfigKey|connectionId|model|variant")
            .into()
    })
}

/// Prints `json` with --json, else the human line.
fn report(json: bool, value: serde_json::Value, human: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{human}");
    }
}
