//! `cadenced run`: the daemon, as systemd starts it. Logs go to stderr: journald-friendly
//! (no timestamps) when `JOURNAL_STREAM` is set, level from the config or `RUST_LOG`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::Clock;
use crate::daemon;

use super::{EXIT_CONFIG, Output, load_config};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(
    config_path: Option<&Path>,
    _args: Args,
    clock: Arc<dyn Clock>,
    out: &Output,
) -> ExitCode {
    let loaded = match load_config(config_path, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    init_logging(&loaded.config.log_level);
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let path = loaded.config.path.clone();
    match runtime.block_on(daemon::run(&path, clock, daemon::Options::default(), None)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: could not start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

/// stderr logging: no ANSI unless a terminal (and no `NO_COLOR`), no timestamps under
/// journald (it stamps lines itself), `RUST_LOG` over the config's level.
pub fn init_logging(level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    let result = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (tests run several commands in one process): keep the first.
    let _ = result;
}
