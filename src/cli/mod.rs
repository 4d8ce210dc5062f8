//! The command line: one file per subcommand; rendering for people and `--json` lives with
//! each command. Exit codes (SPEC): 0 ok, 1 problems found, 2 usage or config error.
//!
//! Commands write to stdout only through [`outln!`] and [`out!`] (clippy's `print_stdout`
//! refuses `println!` and `print!` here): a reader that goes away (`cadenced plan | head -1`)
//! ends the command quietly with exit 0, as the end of a pipe should, instead of a panic.

#![warn(clippy::print_stdout)]

/// `println!` for command output: see [`write_stdout`].
macro_rules! outln {
    () => { $crate::cli::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for command output: see [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!($($arg)*)) };
}

pub mod answer;
pub mod auth;
pub mod check;
pub mod demo;
pub mod init;
pub mod log;
pub mod manual;
pub mod plan;
pub mod reference;
pub mod report;
pub mod run;
pub mod status;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use jiff::Timestamp;

use crate::clock::Clock;
use crate::config::{self, Loaded};
use crate::diag::Diagnostic;
use crate::queue;
use crate::review::{self, LogView, Review};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "cadenced",
    version,
    about = "Keeps social accounts on a steady, human cadence: one or two unique posts a day per network, a different text for each platform.",
    after_help = "Config: --config PATH, else $CADENCED_CONFIG, else ./config/cadenced.toml, else /etc/cadenced/cadenced.toml.\nExit codes: 0 ok, 1 problems found, 2 usage or config error."
)]
pub struct Cli {
    /// The config file (also accepted after the subcommand).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: watch the queue, publish at the slots, log every decision (what systemd starts).
    #[command(
        after_help = "Example:\n  cadenced run --config /etc/cadenced/cadenced.toml\n\nSIGHUP reloads the config (a broken one is refused and the old one kept); SIGTERM or SIGINT finish the request in flight, then exit 0."
    )]
    Run(run::Args),
    /// A first look: the real daemon on a temporary copy of the bundled example, slots seconds apart, then the log.
    #[command(
        after_help = "Example:\n  cadenced demo\n\nNeeds no network and no account; touches no file outside a new temporary folder."
    )]
    Demo(demo::Args),
    /// Validate the config and every queued file.
    #[command(
        after_help = "Example:\n  cadenced check --config config/cadenced.toml\n\nExit codes: 0 all good (warnings allowed), 1 an invalid or held file or a failed check, 2 config error."
    )]
    Check(check::Args),
    /// Show the projected timetable: which file goes out where and when, and why held files wait.
    #[command(
        after_help = "Examples:\n  cadenced plan\n  cadenced plan --from 2027-03-13T00:00:00-05:00 --days 3 --json"
    )]
    Plan(plan::Args),
    /// Show the publish log: every decision and attempt, newest last.
    #[command(
        after_help = "Examples:\n  cadenced log --since 7d\n  cadenced log --channel shop-x --status failed,unknown --limit 20\n  cadenced log --follow\n  cadenced log --json | jq -r 'select(.status == \"published\") | .remote_url'\n\nStatuses: accepted, held, deferred, sending, published, failed, unknown, retried, resolved, expired, withdrawn.\nTimes are shown in each channel's zone, named; --json gives RFC 3339 UTC."
    )]
    Log(log::Args),
    /// Per channel, as the running daemon sees it: queued files, today's count against the cap, the next post and when, held, failed and unsure posts.
    #[command(
        after_help = "Examples:\n  cadenced status\n  cadenced status --json\n\nThe daemon records each channel's state in the publish log, so anyone who can read the log (the cadenced group) sees the daemon's view, credentials included. When the daemon is not running or its record is stale, status says so and shows what it can judge itself."
    )]
    Status(status::Args),
    /// Per channel: posts that went out in the last N days against the N days before.
    #[command(after_help = "Examples:\n  cadenced report\n  cadenced report --days 7 --json")]
    Report(report::Args),
    /// A failed or unknown post was not published: queue it again (with a new idempotency key).
    #[command(
        after_help = "Examples:\n  cadenced retry shop-x/sale.md\n  cadenced retry queue/shop-x/failed/sale.md\n\nExit codes: 0 queued again, 1 its latest attempt is not `unknown` or `failed` (nothing changed), 2 usage or config error."
    )]
    Retry(answer::RetryArgs),
    /// An unknown (or failed) post did go out: record it as published and move it to published/.
    #[command(
        after_help = "Examples:\n  cadenced resolve shop-x/sale.md --posted https://mastodon.social/@shop/1234\n  cadenced resolve shop-x/sale.md --posted\n\nExit codes: 0 recorded, 1 its latest attempt is not `unknown` or `failed` (nothing changed), 2 usage or config error."
    )]
    Resolve(answer::ResolveArgs),
    /// Connect a channel to its account: OAuth authorization (X), or a check of its credentials (Bluesky, Mastodon).
    #[command(
        after_help = "Examples:\n  sudo -u cadenced cadenced auth shop-x\n  cadenced auth shop-bluesky --config config/cadenced.toml\n\nFor X (with `client_id` in the channel): prints an address to open in a browser, takes back the address the browser was sent to, and keeps the tokens in the token store beside the database, where the daemon renews them.\nFor Bluesky: logs in with the app password. For Mastodon: reads the account with the token.\nRun it as the user the daemon runs as, with the credentials where the daemon finds them.\nExit codes: 0 connected, 1 the platform refused, 2 usage or config error."
    )]
    Auth(auth::Args),
    /// Set up a new folder: a commented config and queue folders with a sample post each, then check them.
    #[command(
        after_help = "Examples:\n  cadenced init myshop\n  cadenced init myshop --yes --timezone Europe/Madrid --channel shop-mastodon:mastodon --channel shop-bluesky:bluesky\n\nWrites DIR/config/cadenced.toml and DIR/queue/<channel>/001-hello.md; never overwrites a config.\nChannels on a network start with dry_run = true (they write to the outbox) until you remove it.\nFrom DIR, `cadenced check` and `cadenced plan` then find the config by themselves."
    )]
    Init(init::Args),
    /// Print shell completions for bash, zsh or fish.
    #[command(
        after_help = "Examples:\n  cadenced completions bash > ~/.local/share/bash-completion/completions/cadenced\n  cadenced completions zsh > ~/.zfunc/_cadenced\n  cadenced completions fish > ~/.config/fish/completions/cadenced.fish\n\nThe Debian package installs them (and the manual pages) for every user."
    )]
    Completions(manual::CompletionsArgs),
}

/// Runs the command line with the given clock; returns the process exit code.
pub fn run(cli: Cli, clock: Arc<dyn Clock>) -> ExitCode {
    let out = Output::detect();
    let clock_ref: &dyn Clock = &*clock;
    match cli.command {
        Command::Run(args) => run::run(cli.config.as_deref(), args, clock.clone(), &out),
        Command::Demo(args) => demo::run(cli.config.as_deref(), args, clock.clone(), &out),
        Command::Check(args) => check::run(cli.config.as_deref(), args, clock_ref, &out),
        Command::Plan(args) => plan::run(cli.config.as_deref(), args, clock_ref, &out),
        Command::Log(args) => log::run(cli.config.as_deref(), args, clock_ref, &out),
        Command::Status(args) => status::run(cli.config.as_deref(), args, clock_ref, &out),
        Command::Report(args) => report::run(cli.config.as_deref(), args, clock_ref, &out),
        Command::Retry(args) => answer::retry(cli.config.as_deref(), args, clock_ref, &out),
        Command::Resolve(args) => answer::resolve(cli.config.as_deref(), args, clock_ref, &out),
        Command::Auth(args) => auth::run(cli.config.as_deref(), args, clock_ref, &out),
        Command::Init(args) => init::run(cli.config.as_deref(), args, clock_ref, &out),
        Command::Completions(args) => manual::completions(args),
    }
}

/// Writes command output to stdout. A closed pipe (the reader is gone: `| head -1`) ends
/// the process quietly with exit 0, as ripgrep does; any other write error ends it with a
/// message and exit 1. Commands write their output after their work is done and committed,
/// so ending here loses nothing.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let buffered = BUFFER.with_borrow_mut(|buffer| {
        let buffer = buffer.as_mut()?;
        // Writing into a `Vec` cannot fail.
        let _ = buffer.write_fmt(args);
        Some(buffer.len() >= BUFFER_FLUSH_AT)
    });
    match buffered {
        Some(true) => flush_buffer(),
        Some(false) => {}
        None => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
                exit_on_write_error(&e);
            }
        }
    }
}

thread_local! {
    /// Output held back while a [`BufferedStdout`] lives on this thread.
    static BUFFER: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// Bytes of held-back output written at once.
const BUFFER_FLUSH_AT: usize = 64 * 1024;

/// While it lives, [`write_stdout`] on this thread writes in blocks of 64 KiB instead of a
/// system call per line (`plan` writes a line per queued post: 100,000 `write` calls);
/// what is left is written when it is dropped. For commands that print a long answer at
/// the end of their work, not for the daemon, whose lines must show as they happen.
pub struct BufferedStdout(());

impl BufferedStdout {
    pub fn start() -> BufferedStdout {
        BUFFER.with_borrow_mut(|b| *b = Some(Vec::with_capacity(BUFFER_FLUSH_AT)));
        BufferedStdout(())
    }
}

impl Drop for BufferedStdout {
    fn drop(&mut self) {
        flush_buffer();
        BUFFER.with_borrow_mut(|b| *b = None);
    }
}

/// Writes the held-back output.
fn flush_buffer() {
    use std::io::Write;
    let bytes = BUFFER.with_borrow_mut(|b| b.as_mut().map(std::mem::take).unwrap_or_default());
    if bytes.is_empty() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
        exit_on_write_error(&e);
    }
}

/// How a command that writes to stdout ends when the write fails: see [`write_stdout`].
pub fn exit_on_write_error(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// How to write for this terminal.
#[derive(Debug, Clone)]
pub struct Output {
    pub color: bool,
    /// Shown paths are relative to this folder where possible.
    pub cwd: PathBuf,
}

impl Output {
    pub fn detect() -> Output {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            color: !no_color && std::io::stdout().is_terminal(),
            cwd: std::env::current_dir().unwrap_or_default(),
        }
    }

    pub fn show(&self, d: &Diagnostic) -> String {
        d.clone().relative_to(&self.cwd).render(self.color)
    }

    /// A path as the user would write it from here: relative below the current folder,
    /// absolute otherwise (and from `/`, where `etc/…` would read as a typo).
    pub fn path(&self, p: &Path) -> String {
        match p.strip_prefix(&self.cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() && self.cwd != Path::new("/") => {
                rel.display().to_string()
            }
            _ => p.display().to_string(),
        }
    }
}

/// The zone for times that belong to no one channel (headers, a `--from` or `--since`
/// date): the channels' zone when they all share one, else this machine's (`$TZ`). Times
/// of one channel are shown in that channel's zone.
pub fn common_zone(config: &config::Config) -> jiff::tz::TimeZone {
    let first = config.channels.first().map(|c| c.rules.timezone.clone());
    first
        .filter(|tz| config.channels.iter().all(|c| &c.rules.timezone == tz))
        .unwrap_or_else(jiff::tz::TimeZone::system)
}

pub const EXIT_PROBLEMS: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;

/// The config, loaded; on failure the diagnostics are printed and the exit code returned.
pub fn load_config(explicit: Option<&Path>, out: &Output) -> Result<Loaded, ExitCode> {
    let env = std::env::var_os("CADENCED_CONFIG");
    let path = match config::locate(explicit, env.as_deref(), &out.cwd) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{}", out.show(&d));
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    };
    config::load(&path).map_err(|diags| {
        for d in &diags {
            eprintln!("{}", out.show(d));
        }
        eprintln!(
            "{}: {} error{} in the config; nothing was checked further",
            out.path(&path),
            diags.len(),
            if diags.len() == 1 { "" } else { "s" }
        );
        ExitCode::from(EXIT_CONFIG)
    })
}

/// The queue and the log, judged at `now`. A log that cannot be read is reported and
/// treated as empty: the verdicts then lack history, which the warning says.
pub fn review_queue(loaded: &Loaded, now: Timestamp) -> (Review, LogView, Vec<Diagnostic>) {
    let config = &loaded.config;
    let mut notes = Vec::new();
    let store = match Store::open_read_only(&config.database) {
        Ok(store) => store,
        Err(e) => {
            notes.push(unreadable_log(&config.database, &e.to_string()));
            None
        }
    };
    let log = match store.as_ref().map(|s| LogView::load(s, config, now)) {
        Some(Ok(view)) => view,
        Some(Err(e)) => {
            notes.push(unreadable_log(&config.database, &e.to_string()));
            LogView::default()
        }
        None => LogView::default(),
    };
    let names: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
    let scan = queue::scan(&config.queue, &names);
    let judge = |s| review::review(config, scan, &review::LogSource::new(s, config), now);
    let review = match &store {
        Some(s) => s.reading(|_| judge(Some(s))),
        None => judge(None),
    };
    (review, log, notes)
}

fn unreadable_log(path: &Path, why: &str) -> Diagnostic {
    Diagnostic::warning(path, format!("could not read the publish log: {why}"))
        .with_help("caps, gaps and uniqueness are judged without history; check the file's permissions (staff need the `cadenced` group)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_held_back_while_buffered() {
        // What is held is written when the guard goes (`plan`'s tests read it); here only
        // that a line is held instead of written, so the test writes nothing itself.
        let held = || BUFFER.with_borrow(|b| b.clone());
        assert_eq!(held(), None, "not buffered by default");
        let guard = BufferedStdout::start();
        write_stdout(format_args!("a line\n"));
        assert_eq!(held(), Some(b"a line\n".to_vec()));
        BUFFER.with_borrow_mut(|b| b.as_mut().map(Vec::clear));
        drop(guard);
        assert_eq!(held(), None);
    }
}
