//! `cadenced status`: one line per channel, as the running daemon sees it. The daemon
//! records each channel's state in the log after every evaluation (`daemon::status`):
//! whether it can publish (only the daemon can read its credentials), the next post and
//! when it goes out, failed and unknown counts, the last attempt. So a staff member without
//! the daemon's environment sees the truth, not "disabled" for every channel.
//!
//! When the daemon is not running (its lock on the log is free) or its record is stale,
//! `status` says so and shows what it can judge itself: the queue by the same `review` as
//! `check` and `plan`, and credentials as this shell can read them. Times are in each
//! channel's zone, named. Informational: it exits 0 whatever it finds.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::cadence::day::show;
use crate::clock::Clock;
use crate::config::{Channel, Config, SecretRef};
use crate::daemon::status::{AttemptFacts, channel_records};
use crate::store::{ChannelRecord, Store};

use super::log::{clean, pad, pad_left, width};
use super::{Output, load_config, review_queue};

/// When the lock cannot be probed from here, a record older than this counts as gone. (With
/// the lock, a record is the running daemon's when it carries the lock holder's process id:
/// the daemon records a channel when it evaluates it, not on a timer, since an idle daemon
/// does not wake; a stuck daemon is systemd's watchdog's to restart.)
const STALE_AFTER: SignedDuration = SignedDuration::from_mins(15);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per channel and line: `channel`, `platform`, `queued`,
    /// `published_today`, `max_per_day`, `next_slot`, `held`, `unknown`, `last_error`, ...
    #[arg(long)]
    pub json: bool,
}

/// Whose view a line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Source {
    /// The running daemon's record.
    Daemon,
    /// The daemon runs but has no record of this channel (a config not reloaded yet).
    NotInDaemon,
    /// The daemon is not running, or its record is stale: judged by this command.
    ThisShell,
}

/// A line of `status --json`. The SPEC names the first nine fields; the rest are extra.
#[derive(Debug, serde::Serialize)]
struct ChannelStatus {
    channel: String,
    platform: String,
    /// Files ready to go out.
    queued: u32,
    /// Posts that count for today's cap, today being the channel's local day.
    published_today: u32,
    max_per_day: u32,
    /// RFC 3339 with the channel's offset; `null` when no slot fires.
    next_slot: Option<String>,
    /// Held and invalid files.
    held: u32,
    /// Attempts whose outcome is unknown: they wait for `retry` or `resolve`.
    unknown: u32,
    /// The detail of the channel's newest `failed` row.
    last_error: Option<String>,
    last_error_at: Option<String>,
    /// Attempts that failed for good (their files are in `failed/`).
    failed: u32,
    /// The file the daemon publishes next, and when (RFC 3339 with the channel's offset).
    next_post: Option<String>,
    next_post_at: Option<String>,
    last_attempt_at: Option<String>,
    last_attempt_state: Option<String>,
    last_attempt_file: Option<String>,
    unknown_files: Vec<String>,
    paused: bool,
    dry_run: bool,
    /// The channel cannot publish (a credential the daemon cannot read...).
    disabled: bool,
    disabled_reason: Option<String>,
    /// Whose view this is: `daemon`, `not_in_daemon`, `this_shell`.
    source: Source,
    /// When the daemon recorded it (RFC 3339 UTC), for `daemon` lines.
    recorded_at: Option<String>,
    /// Where the credential is a systemd credential and this shell cannot read it: not
    /// checked (only for `this_shell` lines).
    credential_unchecked: bool,
    #[serde(skip)]
    tz: TimeZone,
    #[serde(skip)]
    next_post_time: Option<Timestamp>,
    #[serde(skip)]
    last_error_time: Option<Timestamp>,
}

/// What is known about the daemon.
#[derive(Debug)]
enum DaemonState {
    Running {
        pid: u32,
        recorded: Timestamp,
        records: Vec<ChannelRecord>,
    },
    /// Its lock is held but its record is old (or missing): it may be stuck.
    Stuck {
        recorded: Option<Timestamp>,
    },
    NotRunning {
        recorded: Option<Timestamp>,
    },
    /// No log yet: it never ran with this config.
    NeverRan,
}

pub fn run(config_path: Option<&Path>, args: Args, clock: &dyn Clock, out: &Output) -> ExitCode {
    let loaded = match load_config(config_path, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let config = &loaded.config;
    let now = clock.now();
    let (review, log, notes) = review_queue(&loaded, now);
    for n in &notes {
        eprintln!("{}", out.show(n));
    }

    // An unreadable log: `review_queue` has said why already.
    let store = Store::open_read_only(&config.database).unwrap_or_default();
    let daemon = daemon_state(&config.database, store.as_ref(), now);
    let facts = store
        .as_ref()
        .map(AttemptFacts::load)
        .transpose()
        .unwrap_or_else(|e| {
            eprintln!("warning: could not read the publish log: {e}");
            None
        })
        .unwrap_or_default();
    let mut unknown_files: HashMap<String, Vec<String>> = HashMap::new();
    let mut failures: HashMap<String, (Timestamp, String)> = HashMap::new();
    if let Some(store) = &store {
        let read = store.attempts_in_state("unknown").and_then(|attempts| {
            for a in attempts {
                unknown_files
                    .entry(a.channel.clone())
                    .or_default()
                    .push(a.file);
            }
            for ch in &config.channels {
                if let Some(f) = store.last_failure(&ch.name)? {
                    failures.insert(ch.name.clone(), f);
                }
            }
            Ok(())
        });
        if let Err(e) = read {
            eprintln!("warning: could not read the publish log: {e}");
        }
    }

    // This shell's view, for channels the daemon has no (fresh) record of.
    let creds_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
    let mut shell_disabled = HashMap::new();
    let mut unchecked = Vec::new();
    for ch in &config.channels {
        match credential_state(ch, creds_dir.as_deref()) {
            Credentials::Readable => {}
            Credentials::Unreadable(why) => {
                shell_disabled.insert(ch.name.clone(), why);
            }
            Credentials::Unchecked => unchecked.push(ch.name.clone()),
        }
    }
    let own = channel_records(config, &review, &log, &facts, &shell_disabled, now);

    let daemon_records: HashMap<&str, &ChannelRecord> = match &daemon {
        DaemonState::Running { records, .. } => {
            records.iter().map(|r| (r.channel.as_str(), r)).collect()
        }
        _ => HashMap::new(),
    };
    let running = matches!(daemon, DaemonState::Running { .. });
    let lines: Vec<ChannelStatus> = config
        .channels
        .iter()
        .zip(own)
        .map(|(ch, own)| {
            let (record, source) = match daemon_records.get(ch.name.as_str()) {
                Some(r) => ((*r).clone(), Source::Daemon),
                None if running => (own, Source::NotInDaemon),
                None => (own, Source::ThisShell),
            };
            let tz = ch.rules.timezone.clone();
            let failure = failures.remove(&ch.name);
            let next_slot = ch.rules.slots.next_after(now, &tz);
            ChannelStatus {
                channel: ch.name.clone(),
                platform: record.platform.clone(),
                queued: record.queued,
                published_today: record.published_today,
                max_per_day: record.max_per_day,
                next_slot: next_slot.map(|t| rfc3339(t, &tz)),
                held: record.held,
                unknown: record.unknown,
                last_error_at: failure.as_ref().map(|(t, _)| rfc3339(*t, &tz)),
                last_error_time: failure.as_ref().map(|(t, _)| *t),
                last_error: failure.map(|(_, detail)| detail),
                failed: record.failed,
                next_post: record.next_post.as_ref().map(|(f, _)| f.clone()),
                next_post_at: record.next_post.as_ref().map(|(_, t)| rfc3339(*t, &tz)),
                next_post_time: record.next_post.as_ref().map(|(_, t)| *t),
                last_attempt_at: record
                    .last_attempt
                    .as_ref()
                    .map(|(t, _, _)| rfc3339(*t, &tz)),
                last_attempt_state: record.last_attempt.as_ref().map(|(_, s, _)| s.clone()),
                last_attempt_file: record.last_attempt.as_ref().map(|(_, _, f)| f.clone()),
                unknown_files: unknown_files.remove(&ch.name).unwrap_or_default(),
                paused: record.paused,
                dry_run: record.dry_run,
                disabled: record.disabled.is_some(),
                disabled_reason: record.disabled.clone(),
                recorded_at: (source == Source::Daemon)
                    .then(|| crate::store::format_time(record.recorded)),
                credential_unchecked: source != Source::Daemon && unchecked.contains(&ch.name),
                source,
                tz,
            }
        })
        .collect();

    if args.json {
        for line in &lines {
            outln!(
                "{}",
                serde_json::to_string(line).expect("plain values serialize")
            );
        }
        return ExitCode::SUCCESS;
    }
    print_table(&lines, config, &daemon, now);
    ExitCode::SUCCESS
}

/// Whether the daemon holds its lock on the log, and what it last recorded.
fn daemon_state(database: &Path, store: Option<&Store>, now: Timestamp) -> DaemonState {
    let Some(store) = store else {
        return DaemonState::NeverRan;
    };
    let records = store.channel_records().unwrap_or_default();
    let recorded = records.iter().map(|r| r.recorded).max();
    let fresh = recorded.is_some_and(|t| now.duration_since(t) <= STALE_AFTER);
    let holder = lock_holder(database);
    let by_holder = holder.is_some_and(|pid| records.iter().any(|r| r.pid == pid));
    let running = DaemonState::Running {
        pid: records.first().map_or(0, |r| r.pid),
        recorded: recorded.unwrap_or(now),
        records,
    };
    match lock_held(database) {
        Some(false) => DaemonState::NotRunning { recorded },
        Some(true) if by_holder => running,
        Some(true) => DaemonState::Stuck { recorded },
        None if fresh => running,
        // The lock cannot be probed from here and the record is old: most likely stopped.
        None => DaemonState::NotRunning { recorded },
    }
}

/// The process id the running daemon wrote into its lock file.
fn lock_holder(database: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(crate::daemon::lock::lock_path(database)).ok()?;
    text.trim().parse().ok()
}

/// Whether a daemon holds the lock on `database` (`None`: cannot tell from here). A shared
/// probe, released at once: it never keeps a daemon from starting.
fn lock_held(database: &Path) -> Option<bool> {
    let file = std::fs::File::open(crate::daemon::lock::lock_path(database)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => Some(false),
        Err(std::fs::TryLockError::WouldBlock) => Some(true),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

enum Credentials {
    Readable,
    Unreadable(String),
    Unchecked,
}

/// Whether this shell can read the channel's credentials. A dry-run channel never sends
/// them, so it is never disabled for them (as `check` sees it).
fn credential_state(ch: &Channel, creds_dir: Option<&Path>) -> Credentials {
    if ch.dry_run {
        return Credentials::Readable;
    }
    let mut state = Credentials::Readable;
    for (key, secret) in ch.secrets() {
        if matches!(secret, SecretRef::Credential(_)) && creds_dir.is_none() {
            // Only the service sees systemd credentials; calling that "disabled" from a
            // shell would be wrong as often as it is right.
            state = Credentials::Unchecked;
            continue;
        }
        if let Err(why) = secret.read(|name| std::env::var(name).ok(), creds_dir) {
            return Credentials::Unreadable(format!("cannot read `{key}`: {why}"));
        }
    }
    state
}

fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The header: when, and whose view the table shows.
fn header_line(config: &Config, daemon: &DaemonState, now: Timestamp) -> String {
    let zone = super::common_zone(config);
    let at = show(now, &zone);
    let ago = |t: Timestamp| show(t, &zone);
    match daemon {
        DaemonState::Running { pid, recorded, .. } => format!(
            "Status at {at}, as the daemon (process {pid}) recorded it at {}",
            ago(*recorded)
        ),
        DaemonState::Stuck { recorded } => format!(
            "Status at {at}. The daemon holds the log but {}: it may be stuck; `systemctl status cadenced` and `journalctl -u cadenced` say more. What follows is what this shell sees.",
            recorded.map_or("has recorded nothing".to_string(), |t| format!(
                "last recorded at {}",
                ago(t)
            ))
        ),
        DaemonState::NotRunning { recorded } => format!(
            "Status at {at}. The daemon is not running{}; start it with `systemctl start cadenced` (or `cadenced run`). What follows is what this shell sees.",
            recorded.map_or(String::new(), |t| format!(
                " (its last record is from {})",
                ago(t)
            ))
        ),
        DaemonState::NeverRan => format!(
            "Status at {at}. The daemon has not run with this config yet (no publish log). What follows is what this shell sees."
        ),
    }
}

fn print_table(lines: &[ChannelStatus], config: &Config, daemon: &DaemonState, now: Timestamp) {
    let header = [
        "CHANNEL",
        "PLATFORM",
        "QUEUED",
        "TODAY",
        "NEXT POST",
        "HELD",
        "FAILED",
        "UNKNOWN",
        "",
    ];
    let rows: Vec<[String; 9]> = lines
        .iter()
        .map(|l| {
            let mut flags = Vec::new();
            if l.disabled {
                flags.push("DISABLED");
            }
            if l.paused {
                flags.push("paused");
            }
            if l.dry_run {
                flags.push("dry run");
            }
            let next = match (&l.next_post, l.next_post_time) {
                (Some(file), Some(t)) => {
                    let name = file.rsplit('/').next().unwrap_or(file);
                    format!("{}  {}", show(t, &l.tz), clean(name))
                }
                _ if l.disabled => "none: disabled".to_string(),
                _ if l.paused => "none: paused".to_string(),
                _ => "none".to_string(),
            };
            [
                l.channel.clone(),
                l.platform.clone(),
                l.queued.to_string(),
                format!("{}/{}", l.published_today, l.max_per_day),
                next,
                l.held.to_string(),
                l.failed.to_string(),
                l.unknown.to_string(),
                flags.join(", "),
            ]
        })
        .collect();
    let mut widths = header.map(width);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(cell));
        }
    }
    // Counts read better right-aligned; names and times left.
    let numeric = [false, false, true, true, false, true, true, true, false];
    let render = |cells: [&str; 9]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if numeric[i] {
                line.push_str(&pad_left(cell, widths[i]));
            } else {
                line.push_str(&pad(cell, widths[i]));
            }
        }
        line.trim_end().to_string()
    };
    outln!("{}", header_line(config, daemon, now));
    outln!("{}", render(header));
    for r in &rows {
        outln!("{}", render(r.each_ref().map(String::as_str)));
    }

    let mut notes = Vec::new();
    for l in lines {
        if l.source == Source::NotInDaemon {
            notes.push(format!(
                "{}: the running daemon does not know this channel yet. Reload it to take the new config: `systemctl reload cadenced`.",
                l.channel
            ));
        }
        if let Some(why) = &l.disabled_reason {
            let whose = if l.source == Source::Daemon {
                "the daemon cannot publish on it"
            } else {
                "it could not publish from this shell"
            };
            notes.push(format!(
                "{}: disabled: {whose} ({}). `cadenced check` says how to fix it.",
                l.channel,
                clean(why)
            ));
        }
        if l.credential_unchecked {
            notes.push(format!(
                "{}: its systemd credential can be read only inside the service, so it was not checked from here.",
                l.channel
            ));
        }
        for file in &l.unknown_files {
            let file = clean(file);
            notes.push(format!(
                "{}: {file} may or may not have gone out. Look at the account, then run `cadenced resolve {file} --posted [URL]` if it did or `cadenced retry {file}` if not.",
                l.channel
            ));
        }
        if let (Some(detail), Some(at)) = (&l.last_error, l.last_error_time) {
            notes.push(format!(
                "{}: last error {}: {}",
                l.channel,
                show(at, &l.tz),
                clean(detail)
            ));
        }
        if l.held > 0 {
            notes.push(format!(
                "{}: {} held or invalid file{}: `cadenced check` says why.",
                l.channel,
                l.held,
                if l.held == 1 { "" } else { "s" }
            ));
        }
    }
    if !notes.is_empty() {
        outln!();
        for n in notes {
            outln!("{n}");
        }
    }
}
