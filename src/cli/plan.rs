//! `cadenced plan`: the projected timetable, simulated with the daemon's own policy code,
//! from the log's history and the files in the queue now.

use std::path::Path;
use std::process::ExitCode;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::cadence::day::resolve_local;
use crate::cadence::simulate::{self, Fate};
use crate::clock::Clock;
use crate::config::Config;
use crate::review::Verdict;

use super::{EXIT_CONFIG, Output, load_config, review_queue};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Start of the projection: RFC 3339 (`2027-03-13T00:00:00-05:00`), or a local date or
    /// date-time (`2027-03-13`, `2027-03-13T09:00`) read in the channels' time zone when
    /// they share one, else the system's. Default: now.
    #[arg(long, value_name = "DATETIME")]
    pub from: Option<String>,
    /// How many days to project.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=366))]
    pub days: u16,
    /// One JSON object per line: `channel`, `file`, and `at` or `held`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config_path: Option<&Path>, args: Args, clock: &dyn Clock, out: &Output) -> ExitCode {
    let loaded = match load_config(config_path, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let config = &loaded.config;
    let from = match &args.from {
        None => clock.now(),
        Some(s) => match parse_from(s, config) {
            Ok(t) => t,
            Err(msg) => {
                eprintln!("error: --from {s:?}: {msg}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let until = from + SignedDuration::from_hours(24 * i64::from(args.days));
    let (review, log, notes) = review_queue(&loaded, from);
    for n in &notes {
        eprintln!("{}", out.show(n));
    }
    let plan = simulate::simulate(&review.sim_channels(config, &log), from, until);
    let _stdout = super::BufferedStdout::start();

    if args.json {
        for p in &plan {
            if let Fate::Published(t) = p.fate {
                let tz = zone_of(config, &p.channel);
                outln!(
                    "{}",
                    serde_json::json!({ "channel": p.channel, "file": p.id, "at": rfc3339(t, &tz) })
                );
            }
        }
        for f in &review.files {
            if let Some(reason) = held_reason(&f.verdict) {
                outln!(
                    "{}",
                    serde_json::json!({ "channel": f.channel, "file": f.id, "held": reason })
                );
            }
        }
        return ExitCode::SUCCESS;
    }

    outln!(
        "Plan for {} day{} from {} (as the daemon would decide it with the files queued now)",
        args.days,
        if args.days == 1 { "" } else { "s" },
        crate::cadence::day::show(from, &super::common_zone(config))
    );
    // Each channel's entries, in plan order, found once (not a pass over the whole plan
    // per channel: 1,000 channels × 100,000 posts).
    let mut by_channel: std::collections::HashMap<&str, Vec<_>> = std::collections::HashMap::new();
    for p in &plan {
        by_channel.entry(p.channel.as_str()).or_default().push(p);
    }
    for ch in &config.channels {
        let tz = &ch.rules.timezone;
        outln!(
            "\n{} ({}, {}{}{})",
            ch.name,
            ch.platform,
            tz.iana_name().unwrap_or("fixed offset"),
            if ch.dry_run { ", dry run" } else { "" },
            if ch.rules.paused { ", paused" } else { "" },
        );
        let mut last_day = None;
        let mut any = false;
        for p in by_channel.remove(ch.name.as_str()).unwrap_or_default() {
            match &p.fate {
                Fate::Published(t) => {
                    any = true;
                    let local = t.to_zoned(tz.clone());
                    if last_day != Some(local.date()) {
                        outln!("  {}", local.strftime("%a %Y-%m-%d"));
                        last_day = Some(local.date());
                    }
                    outln!("    {}  {}", local.strftime("%H:%M %Z"), p.id);
                }
                Fate::Expired(t) => {
                    any = true;
                    outln!(
                        "    expires unpublished at {}: {}",
                        t.to_zoned(tz.clone()).strftime("%a %Y-%m-%d %H:%M %Z"),
                        p.id
                    );
                }
                Fate::Waiting(reason) => {
                    any = true;
                    let why = reason
                        .as_ref()
                        .map(|w| format!(" (last passed over: {})", w.describe_in(tz)))
                        .unwrap_or_default();
                    outln!("    still queued after the window: {}{why}", p.id);
                }
            }
        }
        if !any {
            outln!("  nothing queued");
        }
    }
    let held: Vec<_> = review
        .files
        .iter()
        .filter_map(|f| Some((f, held_reason(&f.verdict)?)))
        .collect();
    if !held.is_empty() {
        outln!("\nHeld (fix these files; `cadenced check` shows the details):");
        for (f, reason) in held {
            outln!("  {}: {reason}", f.id);
        }
    }
    for p in &review.problems {
        outln!("{}", out.show(p));
    }
    ExitCode::SUCCESS
}

/// Why a file will not go out: held, invalid or expired.
fn held_reason(v: &Verdict) -> Option<String> {
    match v {
        Verdict::Ready(_) => None,
        Verdict::Held(d) | Verdict::Invalid(d) => Some(match &d.help {
            Some(h) => format!("{} ({h})", d.message.trim_start_matches("held: ")),
            None => d.message.trim_start_matches("held: ").to_string(),
        }),
        Verdict::Expired(t) => Some(format!("expired at {t}")),
    }
}

fn zone_of(config: &Config, channel: &str) -> TimeZone {
    config
        .channels
        .iter()
        .find(|c| c.name == channel)
        .map(|c| c.rules.timezone.clone())
        .unwrap_or(TimeZone::UTC)
}

fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// `--from`: an exact instant, or a local date/date-time in the channels' shared zone,
/// within the years cadenced plans with (the projection adds days to it).
fn parse_from(s: &str, config: &Config) -> Result<Timestamp, String> {
    let t = parse_from_any(s, config)?;
    match crate::cadence::day::instant_out_of_range(t) {
        Some(reason) => Err(reason),
        None => Ok(t),
    }
}

fn parse_from_any(s: &str, config: &Config) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(z) = s.parse::<jiff::Zoned>() {
        return Ok(z.timestamp());
    }
    let civil = s
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| s.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight())))
        .map_err(|_| {
            "expected RFC 3339 (2027-03-13T00:00:00-05:00), a local date-time (2027-03-13T09:00) or a date (2027-03-13)".to_string()
        })?;
    let tz = super::common_zone(config);
    resolve_local(civil, &tz).ok_or_else(|| {
        crate::cadence::day::out_of_range(civil.date())
            .unwrap_or_else(|| "that time does not exist".to_string())
    })
}
