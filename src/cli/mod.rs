//! The `nango-sync` command line: the demo, local runs and operator tools. Every command calls
//! the library; [`args`] holds the commands and their flags, one file per group below.

mod args;
mod backend;
mod doctor;
mod queue;
mod run;
mod sign;
mod streams;
mod watch;
mod writes;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::core::stream::{StreamKey, BASE_VARIANT};
use crate::telemetry;
pub use args::{Cli, Command};
use args::{StreamArgs, YesArgs};

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// A command that ran and found something that needs an operator (`status --check`): its exit
/// code says what (documented with the flag), its message sums it up.
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub struct NeedsOperator {
    pub code: u8,
    pub summary: String,
}

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
        Command::Write(args) => writes::write(args).await,
        Command::Writes(args) => writes::writes(args).await,
        Command::Doctor(args) => doctor::doctor(args).await,
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "nango-sync",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => match error.downcast_ref::<NeedsOperator>() {
            Some(needs) => {
                eprintln!("{}", needs.summary);
                ExitCode::from(needs.code)
            }
            None => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

impl StreamArgs {
    /// The stream named, by its key or by its parts; `None` when none is.
    fn selected(&self) -> Result<Option<StreamKey>, Box<dyn std::error::Error>> {
        if let Some(text) = &self.stream {
            return parse_stream(text).map(Some);
        }
        // clap's `requires_all` makes a partial set of parts an error before this.
        Ok(match (&self.integration, &self.connection, &self.model) {
            (Some(integration), Some(connection), Some(model)) => Some(StreamKey::new(
                integration.as_str(),
                connection.as_str(),
                model.as_str(),
                self.variant.as_deref().unwrap_or(BASE_VARIANT),
            )),
            _ => None,
        })
    }

    /// The stream named; an error saying how to name one when none is.
    fn required(&self) -> Result<StreamKey, Box<dyn std::error::Error>> {
        self.selected()?.ok_or_else(|| {
            "name the stream: --stream 'providerConfigKey|connectionId|Model|variant' (quoted), or --integration, --connection and --model [--variant]".into()
        })
    }
}

/// A destructive command goes ahead with --yes, or when the person at the terminal types yes.
/// Without a terminal it never waits for input: it refuses.
fn confirm(yes: YesArgs, what: &str) -> Result<(), String> {
    if yes.yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(format!(
            "{what}: refused without --yes (standard input is not a terminal, so nobody can be asked)"
        ));
    }
    ask(&mut stdin.lock(), &mut std::io::stderr(), what)
}

/// Asks `what` on `output` and reads the answer from `input`: only "yes" goes ahead.
fn ask(input: &mut impl BufRead, output: &mut impl Write, what: &str) -> Result<(), String> {
    let _ = write!(output, "{what}. Type yes to go ahead: ");
    let _ = output.flush();
    let mut answer = String::new();
    input
        .read_line(&mut answer)
        .map_err(|e| format!("could not read the answer: {e}"))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err("not confirmed: nothing was changed".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_goes_ahead() {
        for (typed, goes) in [
            ("yes\n", true),
            ("YES\n", false),
            ("y\n", false),
            ("", false),
        ] {
            let mut shown = Vec::new();
            let answer = ask(&mut typed.as_bytes(), &mut shown, "drain 3 jobs");
            assert_eq!(answer.is_ok(), goes, "{typed:?}");
            assert!(String::from_utf8(shown)
                .unwrap()
                .starts_with("drain 3 jobs."));
        }
    }

    #[test]
    fn a_stream_is_named_by_its_key_or_its_parts() {
        let parts = StreamArgs {
            integration: Some("hubspot".into()),
            connection: Some("user|42".into()),
            model: Some("Contact".into()),
            ..StreamArgs::default()
        };
        let key = parts.required().unwrap();
        assert_eq!(key.encode(), "hubspot|user%7C42|Contact|base");
        let by_key = StreamArgs {
            stream: Some(key.encode()),
            ..StreamArgs::default()
        };
        assert_eq!(by_key.required().unwrap(), key);
        assert!(StreamArgs::default().required().is_err());
        assert_eq!(StreamArgs::default().selected().unwrap(), None);
    }
}
