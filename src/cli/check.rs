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
    diags.extend(refusals(&loaded.config, creds_dir.as_deref()));
    diags.extend(database_problem(&loaded.config));
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

/// What makes `cadenced run` disable a channel makes `check` fail: each channel is
/// connected the daemon's way (`daemon::connect_ctx`, `adapter::connect`). Only a refusal
/// because a credential cannot be read from this shell stays a warning (SPEC: a staff
/// member's shell does not have the service's credentials); `check_credentials` gives it.
fn refusals(config: &config::Config, credentials_dir: Option<&Path>) -> Vec<Diagnostic> {
    let env = |n: &str| std::env::var(n).ok();
    let ctx = crate::daemon::connect_ctx(config, &env, credentials_dir);
    let text = std::fs::read_to_string(&config.path).unwrap_or_default();
    let mut out = Vec::new();
    for ch in &config.channels {
        let Err(why) = crate::platforms::adapter::connect(
            ch.platform,
            &ch.name,
            &ch.settings,
            ch.dry_run,
            &ctx,
        ) else {
            continue;
        };
        let unreadable = ch
            .secrets()
            .iter()
            .any(|(_, secret)| secret.read(env, credentials_dir).is_err());
        if unreadable {
            continue;
        }
        out.push(
            Diagnostic::error(
                &config.path,
                format!("`cadenced run` would disable this channel: {why}"),
            )
            .at_first(&text, &format!("[channels.{}]", ch.name))
            .with_help(
                "fix the channel's keys as the message says; `man cadenced.toml` lists every key",
            ),
        );
    }
    out
}

/// `run` stops at once when it cannot create the publish log; say so here. A folder this
/// user cannot write to is only a warning: the daemon may run as another user.
fn database_problem(config: &config::Config) -> Option<Diagnostic> {
    let db = &config.database;
    if db.is_dir() {
        return Some(
            Diagnostic::error(
                &config.path,
                format!("`database` names a folder: {}", db.display()),
            )
            .at_first(
                &std::fs::read_to_string(&config.path).unwrap_or_default(),
                "database",
            )
            .with_help(
                "name a file in it, e.g. `database = \"/var/lib/cadenced/cadenced.sqlite\"`",
            ),
        );
    }
    if db.exists() {
        return None;
    }
    let existing = db.ancestors().skip(1).find(|a| a.exists())?;
    let text = std::fs::read_to_string(&config.path).unwrap_or_default();
    if !existing.is_dir() {
        return Some(
            Diagnostic::error(
                &config.path,
                format!(
                    "the publish log {} cannot be created: {} is not a folder",
                    db.display(),
                    existing.display()
                ),
            )
            .at_first(&text, "database")
            .with_help("set `database` to a file in a folder the daemon can write to"),
        );
    }
    let writable = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes())
        .ok()
        // SAFETY: a valid NUL-terminated path; access() only reads it.
        .is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0);
    (!writable).then(|| {
        Diagnostic::warning(
            &config.path,
            format!(
                "the publish log {} does not exist yet, and {} is not writable from here",
                db.display(),
                existing.display()
            ),
        )
        .at_first(&text, "database")
        .with_help(
            "the daemon creates it on its first run: make sure the user it runs as can write there",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::keys::{Settings, Value};

    fn config(dir: &Path, channels: &str) -> config::Config {
        let path = dir.join("cadenced.toml");
        let text = format!(
            "queue = \"q\"\ndatabase = \"s/c.sqlite\"\noutbox = \"o\"\n[defaults]\ntimezone = \"UTC\"\nslots = [\"10:00\"]\n{channels}"
        );
        std::fs::write(&path, &text).unwrap();
        config::parse(&path, &text)
            .unwrap_or_else(|d| panic!("{d:?}"))
            .config
    }

    #[test]
    fn what_run_would_disable_fails_check_naming_the_channel() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(
            dir.path(),
            "[channels.prog]\nplatform = \"exec\"\ncommand = [\"/bin/true\"]\n",
        );
        assert!(refusals(&c, None).is_empty());
        // Settings the parser would never produce, but `connect` refuses: check must too.
        c.channels[0].settings =
            Settings::new().with("command", Value::Argv(vec!["/bin/true".into()]));
        let found = refusals(&c, None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].is_error());
        assert!(
            found[0]
                .message
                .starts_with("`cadenced run` would disable this channel: channel `prog`"),
            "{}",
            found[0].message
        );
        assert_eq!(found[0].line, Some(7), "points at [channels.prog]");
    }

    #[test]
    fn a_publish_log_that_cannot_be_created_fails_check_as_it_stops_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), "[channels.news]\nplatform = \"outbox\"\n");
        assert!(database_problem(&c).is_none(), "its folder can be created");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        c.database = file.join("cadenced.sqlite");
        let d = database_problem(&c).unwrap();
        assert!(
            d.is_error() && d.message.contains("is not a folder"),
            "{d:?}"
        );
        c.database = dir.path().to_path_buf();
        assert!(
            database_problem(&c)
                .unwrap()
                .message
                .contains("names a folder")
        );
    }

    #[test]
    fn an_unreadable_credential_stays_a_warning_and_x_without_dry_run_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("x-token");
        std::fs::write(&token, "a-token\n").unwrap();
        let c = config(
            dir.path(),
            &format!(
                "[channels.shop-x]\nplatform = \"x\"\ntoken = {{ file = \"{}\" }}\n[channels.gone]\nplatform = \"x\"\ntoken = {{ file = \"{}\" }}\n",
                token.display(),
                dir.path().join("missing").display()
            ),
        );
        // shop-x publishes for real (no dry_run) and connects; `gone` cannot read its
        // token from here, which `check_credentials` reports as a warning, not this.
        assert!(refusals(&c, None).is_empty(), "{:?}", refusals(&c, None));
    }
}
