//! `cadenced report`: per channel, the posts that went out in the last N days against the N
//! days before, the way platform dashboards compare periods, so the user can see whether the
//! cadence holds. Engagement figures join this once adapters fetch them.
//!
//! A post counts when its attempt ended `published` or `resolved` (the user said it went
//! out), at the instant it was sent. Dry runs are counted apart: they show the cadence
//! working, but nobody saw them. The windows are elapsed time (N × 24 h back from now), as
//! the config's durations are; a report does not depend on the channels' zones.

use std::path::Path;
use std::process::ExitCode;

use jiff::{SignedDuration, Timestamp};

use crate::clock::Clock;
use crate::store::{PostCounts, Store, format_time};

use super::log::{pad, pad_left, width};
use super::{EXIT_PROBLEMS, Output, load_config};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Length of each period, in days.
    #[arg(long, default_value_t = 28, value_parser = clap::value_parser!(u16).range(1..=366))]
    pub days: u16,
    /// One JSON object per channel and line: `channel`, `platform`, `days`, `posts`,
    /// `previous_posts`, `change_percent`, `dry_run_posts`, `previous_dry_run_posts`, ...
    #[arg(long)]
    pub json: bool,
}

/// A line of `report --json`.
#[derive(Debug, serde::Serialize)]
struct ChannelReport {
    channel: String,
    platform: String,
    days: u16,
    /// Start of the current period (RFC 3339 UTC); it ends now.
    since: String,
    /// Start of the period before; it ends at `since`.
    previous_since: String,
    posts: u64,
    previous_posts: u64,
    /// `(posts - previous_posts) / previous_posts` in percent, one decimal; `null` when
    /// there was nothing before to compare with.
    change_percent: Option<f64>,
    dry_run_posts: u64,
    previous_dry_run_posts: u64,
    dry_run_change_percent: Option<f64>,
    /// The channel is in dry-run mode now.
    dry_run: bool,
    /// `false` for a channel the log knows but the config no longer names.
    in_config: bool,
}

pub fn run(config_path: Option<&Path>, args: Args, clock: &dyn Clock, out: &Output) -> ExitCode {
    let loaded = match load_config(config_path, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let config = &loaded.config;
    let now = clock.now();
    let span = SignedDuration::from_hours(24 * i64::from(args.days));
    let since = now - span;
    let previous_since = since - span;

    let counts = match Store::open_read_only(&config.database) {
        Ok(Some(store)) => match store.post_counts(previous_since, since, now) {
            Ok(c) => c,
            Err(e) => return unreadable(&e, out, &config.database),
        },
        Ok(None) => {
            eprintln!(
                "no publish log yet at {}: the daemon has not run",
                out.path(&config.database)
            );
            Vec::new()
        }
        Err(e) => return unreadable(&e, out, &config.database),
    };

    let mut lines: Vec<ChannelReport> = Vec::new();
    let line = |c: &PostCounts, dry_run: bool, in_config: bool| ChannelReport {
        channel: c.channel.clone(),
        platform: c.platform.clone(),
        days: args.days,
        since: format_time(since),
        previous_since: format_time(previous_since),
        posts: c.current,
        previous_posts: c.previous,
        change_percent: change(c.current, c.previous),
        dry_run_posts: c.dry_run_current,
        previous_dry_run_posts: c.dry_run_previous,
        dry_run_change_percent: change(c.dry_run_current, c.dry_run_previous),
        dry_run,
        in_config,
    };
    for ch in &config.channels {
        let empty = PostCounts {
            channel: ch.name.clone(),
            platform: ch.platform.name().to_string(),
            ..PostCounts::default()
        };
        let c = counts
            .iter()
            .find(|c| c.channel == ch.name)
            .unwrap_or(&empty);
        let mut l = line(c, ch.dry_run, true);
        // The config says what the channel is now.
        l.platform = ch.platform.name().to_string();
        lines.push(l);
    }
    for c in &counts {
        if !config.channels.iter().any(|ch| ch.name == c.channel) {
            lines.push(line(c, false, false));
        }
    }

    if args.json {
        for l in &lines {
            outln!(
                "{}",
                serde_json::to_string(l).expect("plain values serialize")
            );
        }
        return ExitCode::SUCCESS;
    }
    print_table(&lines, args.days, since, &super::common_zone(config));
    ExitCode::SUCCESS
}

fn unreadable(e: &crate::store::StoreError, out: &Output, path: &Path) -> ExitCode {
    eprintln!(
        "error: could not read the publish log {}: {e}\nhelp: staff need read access to it (the `cadenced` group)",
        out.path(path)
    );
    ExitCode::from(EXIT_PROBLEMS)
}

/// The change from `before` to `now` in percent, to one decimal.
fn change(now: u64, before: u64) -> Option<f64> {
    if before == 0 {
        return None;
    }
    let pct = (now as f64 - before as f64) / before as f64 * 100.0;
    Some((pct * 10.0).round() / 10.0)
}

fn print_table(lines: &[ChannelReport], days: u16, since: Timestamp, tz: &jiff::tz::TimeZone) {
    let period = format!("LAST {days}D");
    let before = format!("{days}D BEFORE");
    let header = [
        "CHANNEL",
        "PLATFORM",
        period.as_str(),
        before.as_str(),
        "CHANGE",
        "DRY RUNS",
        "",
    ];
    let rows: Vec<[String; 7]> = lines
        .iter()
        .map(|l| {
            let mut notes = Vec::new();
            if l.dry_run {
                notes.push("dry run");
            }
            if !l.in_config {
                notes.push("not in the config");
            }
            [
                l.channel.clone(),
                l.platform.clone(),
                l.posts.to_string(),
                l.previous_posts.to_string(),
                percent(l.change_percent, l.posts),
                if l.dry_run_posts + l.previous_dry_run_posts > 0 {
                    format!("{} vs {}", l.dry_run_posts, l.previous_dry_run_posts)
                } else {
                    String::new()
                },
                notes.join(", "),
            ]
        })
        .collect();
    let mut widths = header.map(width);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(cell));
        }
    }
    let numeric = [false, false, true, true, true, true, false];
    let render = |cells: [&str; 7]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            if numeric[i] {
                out.push_str(&pad_left(cell, widths[i]));
            } else {
                out.push_str(&pad(cell, widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    outln!(
        "Posts that went out in the last {days} day{} (since {}) against the {days} before",
        if days == 1 { "" } else { "s" },
        crate::cadence::day::show(since, tz),
    );
    outln!("{}", render(header));
    for r in &rows {
        outln!("{}", render(r.each_ref().map(String::as_str)));
    }
    outln!(
        "\nDry runs went to the outbox, not to the network, and are counted apart. Engagement figures will join this report once adapters fetch them."
    );
}

fn percent(change: Option<f64>, now: u64) -> String {
    match change {
        Some(p) => format!("{p:+.0}%"),
        None if now > 0 => "new".to_string(),
        None => "–".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_is_relative_to_the_period_before() {
        assert_eq!(change(12, 10), Some(20.0));
        assert_eq!(change(5, 10), Some(-50.0));
        assert_eq!(change(1, 3), Some(-66.7));
        assert_eq!(change(4, 0), None);
        assert_eq!(percent(Some(20.0), 12), "+20%");
        assert_eq!(percent(None, 3), "new");
    }
}
