//! `cadenced demo`: the real daemon on a temporary copy of the bundled example, with slots
//! seconds apart, until the queue's slot posts are out; then the log. The example is
//! embedded in the binary, so the demo works from any folder and touches no repository file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::SignedDuration;

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

/// Writes the example into `folder` (which must not exist yet or be empty).
pub fn write_example(folder: &Path) -> std::io::Result<PathBuf> {
    for (rel, content) in EXAMPLE {
        let path = folder.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
    }
    Ok(folder.join("config/cadenced.toml"))
}

/// Runs the demo in `folder`; stops when the slot posts are out or after `limit`.
pub async fn run(
    folder: &Path,
    clock: Arc<dyn Clock>,
    limit: Duration,
) -> anyhow::Result<DemoReport> {
    let config_path = write_example(folder)
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
        exit_when_done: true,
        max_sleep: Duration::from_secs(1),
        backoff: Duration::from_secs(1),
        ..super::Options::default()
    };
    let database = config.database.clone();
    let run = super::run_config(config, None, clock, options, None);
    let published = match tokio::time::timeout(limit, run).await {
        Ok(result) => result?,
        Err(_) => 0,
    };
    Ok(DemoReport {
        folder: folder.to_path_buf(),
        published,
        log: render_log(&database)?,
    })
}

/// The log as the demo prints it: the same rows `cadenced log` reads.
fn render_log(database: &Path) -> anyhow::Result<String> {
    let Some(store) = crate::store::Store::open_read_only(database)? else {
        return Ok(String::new());
    };
    let mut out = String::new();
    for row in store.log_rows(&crate::store::LogQuery::default())? {
        let extra = row.remote_id.unwrap_or(row.detail);
        let _ = writeln!(
            out,
            "{}  {:<14} {:<10} {}  {extra}",
            row.time.strftime("%H:%M:%S"),
            row.channel,
            row.status,
            row.file
        );
    }
    Ok(out)
}
