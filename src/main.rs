//! The `syncwarden` binary: parse the command line, start logging, run,
//! and turn the outcome into an exit code.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // reqwest is built without a default TLS provider: install ring's
    // before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = syncwarden::cli::Cli::parse();
    // Logging (and OpenTelemetry, for `serve`) starts in `cli::run`, once
    // the configuration is known.
    match syncwarden::cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("syncwarden: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
