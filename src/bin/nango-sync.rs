//! The nango-sync CLI: the demo, local runs and operator tools (`src/cli`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    nango_sync::cli::main().await
}
