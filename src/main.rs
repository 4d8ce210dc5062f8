//! The `cadenced` binary: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cadenced::cli::Cli::parse();
    cadenced::cli::run(cli, std::sync::Arc::new(cadenced::clock::SystemClock))
}
