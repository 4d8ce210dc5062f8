//! `cadenced check`: the config and every queued file, compiler-style, with a summary line.
//! Invalid and held files are problems (exit 1); warnings alone are not, unless `--strict`.

use std::path::Path;
use std::process::ExitCode;

use crate::clock::Clock;
use crate::config;
use crate::diag::Diagnostic;
use crate::review::Verdict;

use super::{EXIT_PROBLEMS, Output, load_config, review_queue};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Treat warnings as problems (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// One JSON object per problem, then a summary object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    channels: usize,
    files: usize,
    ready: usize,
    held: usize,
    invalid: usize,
    expired: usize,
    errors: usize,
    warnings: usize,
}

pub fn run(config_path: Option<&Path>, args: Args, clock: &dyn Clock, out: &Output) -> ExitCode {
    let loaded = match load_config(config_path, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let now = clock.now();
    let mut diags: Vec<Diagnostic> = loaded.warnings.clone();
    let creds_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
    diags.extend(config::check_credentials(
        &loaded.config,
        |name| std::env::var(name).ok(),
        creds_dir.as_deref(),
    ));
    let (review, _log, notes) = review_queue(&loaded, now);
    diags.extend(notes);
    diags.extend(review.problems.iter().cloned());

    let mut summary = Summary {
        channels: loaded.config.channels.len(),
        files: review.files.len(),
        ..Summary::default()
    };
    for f in &review.files {
        match &f.verdict {
            Verdict::Ready(_) => summary.ready += 1,
            Verdict::Invalid(d) => {
                summary.invalid += 1;
                diags.push(d.clone());
            }
            Verdict::Held(d) => {
                summary.held += 1;
                diags.push(d.clone());
            }
            Verdict::Expired(at) => {
                summary.expired += 1;
                diags.push(
                    Diagnostic::warning(&f.path, format!("expired at {at} before it was published"))
                        .with_help("the daemon will move it to expired/; change or remove `expires` to publish it"),
                );
            }
        }
    }
    summary.errors = diags.iter().filter(|d| d.is_error()).count();
    summary.warnings = diags.len() - summary.errors;

    if args.json {
        for d in &diags {
            let d = d.clone().relative_to(&out.cwd);
            println!("{}", d.to_json());
        }
        println!("{}", serde_json::json!({ "summary": summary }));
    } else {
        for d in &diags {
            println!("{}", out.show(d));
        }
        println!(
            "{}: {} channel{}, {} queued file{}: {} ready, {} held, {} invalid, {} expired; {} error{}, {} warning{}",
            out.path(&loaded.config.path),
            summary.channels,
            plural(summary.channels),
            summary.files,
            plural(summary.files),
            summary.ready,
            summary.held,
            summary.invalid,
            summary.expired,
            summary.errors,
            plural(summary.errors),
            summary.warnings,
            plural(summary.warnings),
        );
    }
    if summary.errors > 0 || (args.strict && summary.warnings > 0) {
        ExitCode::from(EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
