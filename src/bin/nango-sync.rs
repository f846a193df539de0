//! The nango-sync CLI: the demo, local runs and operator tools (`src/cli`).

// One thread, as in the bootstraps: the work waits on I/O, and SQLite runs on the blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    nango_sync::cli::main().await
}
