//! `cadenced demo`: the real daemon on a temporary copy of the bundled example, with slots
//! seconds apart, until the queue's slot posts are out; then the log. The example is
//! embedded in the binary, so the demo works from any folder and touches no repository file.
//!
//! The example's posts show appointments (`at`) and flash sales (`expires`) with real dates,
//! which pass. The demo's copy moves every such post to a few seconds after the demo starts
//! (keeping the time between `at` and `expires`), so it shows the same thing on any date.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};

use crate::cadence::{Schedule, Slot};
use crate::clock::Clock;
use crate::config;

/// The bundled example: path relative to the project root, and content.
const EXAMPLE: &[(&str, &[u8])] = &[
    (
        "config/cadenced.toml",
        include_bytes!("../../config/cadenced.toml"),
    ),
    (
        "queue/shop-x/001-black-friday.md",
        include_bytes!("../../queue/shop-x/001-black-friday.md"),
    ),
    (
        "queue/shop-x/002-winter-care.md",
        include_bytes!("../../queue/shop-x/002-winter-care.md"),
    ),
    (
        "queue/shop-mastodon/001-black-friday.md",
        include_bytes!("../../queue/shop-mastodon/001-black-friday.md"),
    ),
    (
        "queue/shop-mastodon/002-winter-sale-zh.md",
        include_bytes!("../../queue/shop-mastodon/002-winter-sale-zh.md"),
    ),
    (
        "queue/shop-bluesky/001-black-friday.md",
        include_bytes!("../../queue/shop-bluesky/001-black-friday.md"),
    ),
    (
        "queue/shop-bluesky/002-repair-workshop.md",
        include_bytes!("../../queue/shop-bluesky/002-repair-workshop.md"),
    ),
    (
        "queue/newsletter/001-weekly.md",
        include_bytes!("../../queue/newsletter/001-weekly.md"),
    ),
    (
        "queue/_media/red-sneakers.png",
        include_bytes!("../../queue/_media/red-sneakers.png"),
    ),
];

/// Every few seconds instead of the example's realistic slots.
const DEMO_SLOT: &str = "*/4 * * * * *";

/// What the demo did, for the caller to print.
pub struct DemoReport {
    pub folder: PathBuf,
    pub published: usize,
    pub log: String,
}

/// Appointments in the demo's copy are due this long after the demo starts: after the
/// first slot, so the demo shows slot posts and appointments side by side.
const DEMO_AT: SignedDuration = SignedDuration::from_secs(6);

/// Writes the example into `folder` (which must not exist yet or be empty), with its
/// appointments moved to just after `now` (see [`move_dates`]).
pub fn write_example(folder: &Path, now: Timestamp) -> std::io::Result<PathBuf> {
    for (rel, content) in EXAMPLE {
        let path = folder.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let content = if rel.starts_with("queue/") && rel.ends_with(".md") {
            move_dates(content, now)
        } else {
            content.to_vec()
        };
        std::fs::write(&path, content)?;
    }
    Ok(folder.join("config/cadenced.toml"))
}

/// A post of the example with its `at` moved to [`DEMO_AT`] after `now` and its `expires`
/// as far after the new `at` as it was after the old one (a day after `now` without `at`).
/// Written as exact UTC times, so no zone is needed. Lines are rewritten in place: the
/// example is ours and keeps `at`/`expires` on lines of their own, which a test pins.
pub fn move_dates(content: &[u8], now: Timestamp) -> Vec<u8> {
    let Ok(post) = crate::post::parse(content) else {
        return content.to_vec();
    };
    let (at, expires) = (post.front.at, post.front.expires);
    if at.is_none() && expires.is_none() {
        return content.to_vec();
    }
    // The distance between the two as written; both are read in the same zone, which is
    // exact for the example's local times.
    let utc = jiff::tz::TimeZone::UTC;
    let new_at = at.map(|_| now + DEMO_AT);
    let new_expires = expires.map(|e| match (at, new_at) {
        (Some(a), Some(n)) => n + e.resolve(&utc).duration_since(a.resolve(&utc)),
        _ => now + SignedDuration::from_hours(24),
    });
    let text = String::from_utf8_lossy(content);
    let mut out = String::with_capacity(text.len());
    let mut fences = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "+++" {
            fences += 1;
        }
        let key = line.split('=').next().unwrap_or("").trim();
        let replacement = match (fences, key) {
            (1, "at") => new_at,
            (1, "expires") => new_expires,
            _ => None,
        };
        match replacement {
            Some(t) => out.push_str(&format!(
                "{key} = \"{}\"\n",
                t.round(jiff::Unit::Second).unwrap_or(t)
            )),
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// Runs the demo in `folder`; stops when the slot posts are out or after `limit`.
pub async fn run(
    folder: &Path,
    clock: Arc<dyn Clock>,
    limit: Duration,
) -> anyhow::Result<DemoReport> {
    let config_path = write_example(folder, clock.now())
        .with_context(|| format!("writing the example into {}", folder.display()))?;
    let loaded = config::load(&config_path).map_err(|d| {
        anyhow::anyhow!(
            "the bundled example does not load: {}",
            d.first().map(|d| d.to_string()).unwrap_or_default()
        )
    })?;
    let mut config = loaded.config;
    let slot = Slot::parse(DEMO_SLOT).map_err(|e| anyhow::anyhow!("{e}"))?;
    for ch in &mut config.channels {
        ch.rules.slots = Schedule::new(vec![slot.clone()]);
        ch.rules.min_gap = SignedDuration::from_secs(2);
    }
    let options = super::Options {
        // The example is written completely before the daemon starts: nothing to wait for.
        settle: Duration::ZERO,
        exit_when_done: true,
        max_sleep: Duration::from_secs(1),
        backoff: Duration::from_secs(1),
        ..super::Options::default()
    };
    let database = config.database.clone();
    let shown = config.clone();
    let run = super::run_config(config, None, clock, options, None);
    let published = match tokio::time::timeout(limit, run).await {
        Ok(result) => result?,
        Err(_) => 0,
    };
    Ok(DemoReport {
        folder: folder.to_path_buf(),
        published,
        log: render_log(&database, &shown)?,
    })
}

/// The log as the demo prints it: the same rows `cadenced log` reads, each time in its
/// channel's zone with the zone named.
fn render_log(database: &Path, config: &config::Config) -> anyhow::Result<String> {
    let Some(store) = crate::store::Store::open_read_only(database)? else {
        return Ok(String::new());
    };
    let mut out = String::new();
    for row in store.log_rows(&crate::store::LogQuery::default())? {
        let tz = config
            .channels
            .iter()
            .find(|c| c.name == row.channel)
            .map_or(jiff::tz::TimeZone::UTC, |c| c.rules.timezone.clone());
        let extra = row.remote_id.unwrap_or(row.detail);
        let _ = writeln!(
            out,
            "{}  {:<14} {:<10} {}  {extra}",
            row.time.to_zoned(tz).strftime("%H:%M:%S %Z"),
            row.channel,
            row.status,
            row.file
        );
    }
    Ok(out)
}
