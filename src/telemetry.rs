//! Logging set-up. Lambda functions use the runtime's default subscriber, which follows the
//! function's LoggingConfig (AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL); the CLI logs to stderr.

/// For the Lambda binaries.
pub fn init_lambda() {
    lambda_http::tracing::init_default_subscriber();
}

/// For the CLI: human-readable lines on stderr, at `default_level` unless `RUST_LOG` says
/// otherwise.
pub fn init_cli(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
