//! `cadenced status`: one line per channel: what is queued, today's count against the cap,
//! the next slot, what is held or unsure, the last error, and whether the channel is
//! paused, in dry-run mode or disabled (a credential that cannot be read).
//!
//! The queue is judged by the same `review` as `check` and `plan`, so the three never
//! disagree on what is held; the log is only read (opened read-only, never blocking the
//! daemon). Informational: it exits 0 whatever it finds.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::cadence::day::local_day;
use crate::clock::Clock;
use crate::config::{Channel, SecretRef};
use crate::review::Verdict;
use crate::store::{AttemptSummary, Store};

use super::log::{clean, pad, pad_left, width};
use super::{Output, load_config, review_queue};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per channel and line: `channel`, `platform`, `queued`,
    /// `published_today`, `max_per_day`, `next_slot`, `held`, `unknown`, `last_error`, ...
    #[arg(long)]
    pub json: bool,
}

/// A line of `status --json`. The SPEC names the first nine fields; the rest are extra.
#[derive(Debug, serde::Serialize)]
struct ChannelStatus {
    channel: String,
    platform: String,
    /// Files ready to go out.
    queued: usize,
    /// Posts that count for today's cap, today being the channel's local day.
    published_today: usize,
    max_per_day: u32,
    /// RFC 3339 with the channel's offset; `null` when no slot fires.
    next_slot: Option<String>,
    /// Held and invalid files.
    held: usize,
    /// Attempts whose outcome is unknown: they wait for `retry` or `resolve`.
    unknown: usize,
    /// The detail of the channel's newest `failed` row.
    last_error: Option<String>,
    last_error_at: Option<String>,
    expired: usize,
    unknown_files: Vec<String>,
    paused: bool,
    dry_run: bool,
    /// A credential cannot be read: the daemon does not publish on this channel.
    disabled: bool,
    disabled_reason: Option<String>,
    /// Where the credential is a systemd credential and `$CREDENTIALS_DIRECTORY` is not set
    /// (`status` run by hand, outside the service): it could not be checked from here.
    credential_unchecked: bool,
    /// `next_slot` and `last_error_at` as instants, for the table.
    #[serde(skip)]
    next_slot_at: Option<Timestamp>,
    #[serde(skip)]
    last_error_time: Option<Timestamp>,
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

    // What `review` does not read: unsure attempts and the last failure.
    let mut unknown: HashMap<String, Vec<AttemptSummary>> = HashMap::new();
    let mut failures: HashMap<String, (Timestamp, String)> = HashMap::new();
    match Store::open_read_only(&config.database) {
        Ok(Some(store)) => {
            let read = store.attempts_in_state("unknown").and_then(|attempts| {
                for a in attempts {
                    unknown.entry(a.channel.clone()).or_default().push(a);
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
        Ok(None) => eprintln!(
            "no publish log yet at {}: the daemon has not run",
            out.path(&config.database)
        ),
        // `review_queue` has said so already.
        Err(_) => {}
    }

    let creds_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
    let mut lines = Vec::new();
    for ch in &config.channels {
        let tz = &ch.rules.timezone;
        let files = review.files.iter().filter(|f| f.channel == ch.name);
        let (mut queued, mut held, mut expired) = (0, 0, 0);
        for f in files {
            match f.verdict {
                Verdict::Ready(_) => queued += 1,
                Verdict::Held(_) | Verdict::Invalid(_) => held += 1,
                Verdict::Expired(_) => expired += 1,
            }
        }
        let today = local_day(now, tz);
        let published_today = log
            .history
            .get(&ch.name)
            .map_or(0, |h| h.iter().filter(|t| today.contains(**t)).count());
        let unsure = unknown.remove(&ch.name).unwrap_or_default();
        let failure = failures.remove(&ch.name);
        let credentials = credential_state(ch, creds_dir.as_deref());
        let next_slot = ch.rules.slots.next_after(now, tz);
        lines.push(ChannelStatus {
            channel: ch.name.clone(),
            platform: ch.platform.name().to_string(),
            queued,
            published_today,
            max_per_day: ch.rules.max_per_day,
            next_slot: next_slot.map(|t| rfc3339(t, tz)),
            next_slot_at: next_slot,
            last_error_time: failure.as_ref().map(|(t, _)| *t),
            held,
            unknown: unsure.len(),
            last_error_at: failure.as_ref().map(|(t, _)| rfc3339(*t, tz)),
            last_error: failure.map(|(_, detail)| detail),
            expired,
            unknown_files: unsure.into_iter().map(|a| a.file).collect(),
            paused: ch.rules.paused,
            dry_run: ch.dry_run,
            disabled: matches!(credentials, Credentials::Unreadable(_)),
            disabled_reason: match &credentials {
                Credentials::Unreadable(why) => Some(why.clone()),
                _ => None,
            },
            credential_unchecked: matches!(credentials, Credentials::Unchecked),
        });
    }

    if args.json {
        for line in &lines {
            outln!(
                "{}",
                serde_json::to_string(line).expect("plain values serialize")
            );
        }
        return ExitCode::SUCCESS;
    }
    print_table(&lines, config, now);
    ExitCode::SUCCESS
}

enum Credentials {
    Readable,
    Unreadable(String),
    Unchecked,
}

/// Whether the daemon can read the channel's credentials, judged from here. A dry-run
/// channel never sends them, so it is never disabled for them (as `check` sees it).
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

fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

fn print_table(lines: &[ChannelStatus], config: &crate::config::Config, now: Timestamp) {
    let header = [
        "CHANNEL",
        "PLATFORM",
        "QUEUED",
        "TODAY",
        "NEXT SLOT",
        "HELD",
        "UNKNOWN",
        "",
    ];
    let zone = |name: &str| {
        Channel::find(&config.channels, name)
            .map(|c| c.rules.timezone.clone())
            .unwrap_or(TimeZone::UTC)
    };
    let rows: Vec<[String; 8]> = lines
        .iter()
        .map(|l| {
            let tz = zone(&l.channel);
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
            [
                l.channel.clone(),
                l.platform.clone(),
                l.queued.to_string(),
                format!("{}/{}", l.published_today, l.max_per_day),
                l.next_slot_at.map_or("none".to_string(), |t| local(t, &tz)),
                l.held.to_string(),
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
    let numeric = [false, false, true, true, false, true, true, false];
    let render = |cells: [&str; 8]| {
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
    outln!(
        "Status at {}",
        crate::cadence::day::show(now, &super::common_zone(config))
    );
    outln!("{}", render(header));
    for r in &rows {
        outln!("{}", render(r.each_ref().map(String::as_str)));
    }

    let mut notes = Vec::new();
    for l in lines {
        let tz = zone(&l.channel);
        if let Some(why) = &l.disabled_reason {
            notes.push(format!(
                "{}: disabled, {}; `cadenced check` says how to fix it",
                l.channel,
                clean(why)
            ));
        }
        if l.credential_unchecked {
            notes.push(format!(
                "{}: its systemd credential can be read only inside the service; not checked from here",
                l.channel
            ));
        }
        for file in &l.unknown_files {
            let file = clean(file);
            notes.push(format!(
                "{}: {file} may or may not have gone out: look at the account, then run `cadenced resolve {file} --posted [URL]` if it did or `cadenced retry {file}` if not",
                l.channel
            ));
        }
        if let (Some(detail), Some(at)) = (&l.last_error, l.last_error_time) {
            let at = local(at, &tz);
            notes.push(format!("{}: last error {at}: {}", l.channel, clean(detail)));
        }
        if l.held > 0 {
            notes.push(format!(
                "{}: {} held or invalid file{}: `cadenced check` says why",
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
