//! `cadenced demo`: a first look. The real daemon runs on a temporary copy of the bundled
//! example with slots seconds apart, publishes to the outbox (no network, no account), then
//! prints the publish log. Nothing in the repository or the current folder is touched.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::daemon;

use super::Output;
use super::run::{init_logging, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stop after this many seconds even if posts are left.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
}

pub fn run(config: Option<&Path>, args: Args, clock: Arc<dyn Clock>, out: &Output) -> ExitCode {
    // The demo always runs the bundled example; taking a config and ignoring it would show
    // someone else's channels as if they were theirs.
    if let Some(config) = config {
        eprintln!(
            "error: `cadenced demo` runs the bundled example and does not read {}.\nhelp: to see what your config would do, run `cadenced check --config {0}` and `cadenced plan --config {0}`.",
            out.path(config)
        );
        return ExitCode::from(super::EXIT_CONFIG);
    }
    init_logging("info");
    let folder = std::env::temp_dir().join(format!(
        "cadenced-demo-{}-{}",
        std::process::id(),
        clock.now().as_second()
    ));
    if let Err(e) = std::fs::create_dir_all(&folder) {
        eprintln!("error: could not create {}: {e}", folder.display());
        return ExitCode::FAILURE;
    }
    outln!(
        "cadenced demo: the bundled example in {}, slots every 4 seconds, publishing to its outbox.\n",
        folder.display()
    );
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = match runtime.block_on(daemon::demo::run(
        &folder,
        clock,
        Duration::from_secs(args.seconds),
    )) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    outln!("\nThe publish log ({} published):\n", report.published);
    out!("{}", report.log);
    outln!(
        "\nWhat went out is in {}/outbox/<channel>/ (the requests each platform would receive);\nthe posted files moved to {}/queue/<channel>/published/. Read the log again with:\n  cadenced log --config {}/config/cadenced.toml",
        report.folder.display(),
        report.folder.display(),
        report.folder.display()
    );
    if report.published > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
