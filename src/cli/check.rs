//! `cadenced check`: the config and every queued file, compiler-style, with a summary line.
//! Invalid and held files are problems (exit 1); warnings alone are not, unless `--strict`.

use std::path::Path;
use std::process::ExitCode;

use crate::cadence::day;
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
    /// Ready posts whose `at` has passed (counted in `ready` too).
    overdue: usize,
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
        let channel = loaded.config.channels.iter().find(|c| c.name == f.channel);
        let tz = channel.map_or(jiff::tz::TimeZone::UTC, |c| c.rules.timezone.clone());
        match &f.verdict {
            Verdict::Ready(p) => {
                summary.ready += 1;
                // Ready, but not when its writer meant: say so rather than let "ready"
                // suggest it goes out as planned. Within `catch_up` the policy still treats
                // it as due; later, it waits for a slot like any post (cadence::policy).
                if let (Some(at), Some(ch)) = (p.at.filter(|at| *at < now), channel) {
                    summary.overdue += 1;
                    let when = if now.duration_since(at) <= ch.rules.catch_up {
                        "it goes out as soon as the daily cap and the minimum gap allow"
                    } else {
                        "it goes out at one of the channel's slots instead"
                    };
                    diags.push(
                        Diagnostic::warning(
                            &f.path,
                            format!("its time, {}, has passed: {when}", day::show(at, &tz)),
                        )
                        .with_help("to give it a new time, change `at`; if it must not go out late, set `expires` or remove the file"),
                    );
                }
            }
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
                    Diagnostic::warning(
                        &f.path,
                        format!("it expired at {} before it was published", day::show(*at, &tz)),
                    )
                    .with_help("the daemon will move it to expired/; to publish it, set a later `expires` or remove it"),
                );
            }
        }
    }
    // Each problem counts, also the further ones of a file that reports several.
    let all = || diags.iter().flat_map(|d| d.all());
    summary.errors = all().filter(|d| d.is_error()).count();
    summary.warnings = all().count() - summary.errors;

    if args.json {
        for d in diags.iter().flat_map(|d| d.all()) {
            let d = d.clone().relative_to(&out.cwd);
            outln!("{}", d.to_json());
        }
        outln!("{}", serde_json::json!({ "summary": summary }));
    } else {
        for d in &diags {
            outln!("{}", out.show(d));
        }
        outln!(
            "{}: {} channel{}, {} queued file{}: {} ready{}, {} held, {} invalid, {} expired; {} error{}, {} warning{}",
            out.path(&loaded.config.path),
            summary.channels,
            plural(summary.channels),
            summary.files,
            plural(summary.files),
            summary.ready,
            if summary.overdue > 0 {
                format!(" ({} overdue)", summary.overdue)
            } else {
                String::new()
            },
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
