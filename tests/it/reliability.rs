//! The reliability suite (issue 7): what the daemon must survive without posting anything
//! twice, losing a file or exceeding a cap.
//!
//! - 30 % of the requests to a Mastodon-like server and to a webhook receiver failing in
//!   every way ([`crate::fault_proxy`]), driven through the daemon for days of virtual time;
//! - a crash storm: the real binary killed with SIGKILL during start-up reconciliation and
//!   during file moves;
//! - the database locked by another writer for longer than the daemon waits;
//! - 10,000 files renamed into the queue at once while the daemon runs;
//! - (the parsers' fuzzing lives in `fuzz.rs`).
//!
//! Loopback only, bounded in time. `CADENCED_LONG_TESTS=1` runs longer variants (more
//! posts, more days, more kills); `CADENCED_RELIABILITY_SEED=<n>` picks another fault
//! schedule (README, "Tests").

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cadenced::daemon::{self, Control, Options};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;
use tokio::sync::mpsc;

use crate::fake_mastodon::{FakeMastodon, TOKEN};
use crate::fake_server::{self, Outcome, Received, Server, Ticker};
use crate::fault_proxy::{ALL_FAULTS, FaultProxy};
use crate::support::{Project, TestClock, distinct_text};

/// Whether the long variants run.
fn long() -> bool {
    std::env::var_os("CADENCED_LONG_TESTS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The fault schedule's seed: fixed (a run is repeatable), or chosen.
fn seed() -> u64 {
    std::env::var("CADENCED_RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00C4_DE4C_ED00_2026)
}

// --- a webhook receiver -------------------------------------------------------------------

#[derive(Debug, Default)]
struct Hook {
    /// `(idempotency key, text, when)` of every delivery that reached the receiver.
    deliveries: Vec<(String, String, Timestamp)>,
}

/// Takes every delivery (the receiver's own de-duplication by key is what `distinct keys
/// per text` below checks the daemon makes possible).
fn hook_handler(shared: &fake_server::Shared<Hook>, r: &Received) -> Outcome {
    let key = r.header("idempotency-key").unwrap_or_default().to_string();
    let text = r
        .json()
        .and_then(|v| v["text"].as_str().map(str::to_string))
        .unwrap_or_default();
    let now = shared.now();
    shared.update(|s| s.deliveries.push((key.clone(), text, now)));
    Outcome::Answer(fake_server::json_response(
        hyper::StatusCode::OK,
        &json!({ "id": key, "url": format!("https://hooks.example/{key}") }),
    ))
}

// --- the daemon in-process ----------------------------------------------------------------

struct Running {
    control: mpsc::UnboundedSender<Control>,
    handle: tokio::task::JoinHandle<anyhow::Result<usize>>,
    _ticker: Ticker,
}

/// The daemon on tokio's paused clock. The ticker's step bounds how far the clock jumps
/// while an exchange over the loopback is on its way (a few such jumps, far below the
/// 30 s time-outs), and is coarse enough that a virtual day passes in seconds.
fn start(p: &Project, clock: &Arc<TestClock>) -> Running {
    let ticker = Ticker::start(Duration::from_secs(1));
    let (control, rx) = mpsc::unbounded_channel();
    let options = Options {
        settle: Duration::ZERO,
        max_sleep: Duration::from_secs(600),
        backoff: Duration::from_secs(10),
        ..Options::default()
    };
    let config = p.config();
    let clock: Arc<dyn cadenced::clock::Clock> = clock.clone();
    let handle = tokio::spawn(async move { daemon::run(&config, clock, options, Some(rx)).await });
    Running {
        control,
        handle,
        _ticker: ticker,
    }
}

impl Running {
    async fn stop(self) -> usize {
        let _ = self.control.send(Control::Stop);
        self.handle.await.unwrap().unwrap()
    }
}

/// Where each post file of `channel` is now: `"queue"`, `"published"` or `"failed"`.
fn whereabouts(
    p: &Project,
    channel: &str,
    names: &[String],
) -> BTreeMap<String, Vec<&'static str>> {
    let dir = p.root().join("queue").join(channel);
    names
        .iter()
        .map(|n| {
            let mut at = Vec::new();
            for (place, path) in [
                ("queue", dir.join(n)),
                ("published", dir.join("published").join(n)),
                ("failed", dir.join("failed").join(n)),
                ("expired", dir.join("expired").join(n)),
            ] {
                if path.exists() {
                    at.push(place);
                }
            }
            (n.clone(), at)
        })
        .collect()
}

/// The latest attempt state of each file of the log.
fn latest_attempts(p: &Project) -> HashMap<String, String> {
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT file, state FROM attempts WHERE id IN (SELECT MAX(id) FROM attempts GROUP BY file)")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The most posts that went out on one local day in `tz`.
fn most_in_a_day(times: &[Timestamp], tz: &TimeZone) -> usize {
    let mut per_day: HashMap<jiff::civil::Date, usize> = HashMap::new();
    for t in times {
        *per_day.entry(tz.to_datetime(*t).date()).or_default() += 1;
    }
    per_day.into_values().max().unwrap_or(0)
}

const MAX_PER_DAY: usize = 12;

#[tokio::test(start_paused = true)]
async fn thirty_percent_faults_through_the_daemon_never_duplicate_lose_or_exceed_caps() {
    let logs = crate::harness::Logs::capture();
    // More posts than a day's cap: the rest waits for the next day.
    let posts = if long() { 100 } else { 24 };
    let hours = ((posts - 1) / MAX_PER_DAY) as u64 * 24 + 4;
    let clock = TestClock::at("2026-11-23T06:50:00Z"); // Monday, 07:50 in Madrid
    let masto = FakeMastodon::start().await;
    masto.follow(clock.clone());
    let hook = Server::start("hook", Hook::default(), clock.clone(), hook_handler).await;
    // Slower than the clients' 30 s time-out.
    let slow = Duration::from_secs(40);
    let masto_proxy = FaultProxy::start(&masto.url(), seed(), slow, clock.clone()).await;
    let hook_proxy =
        FaultProxy::start(&hook.url(), seed().rotate_left(17), slow, clock.clone()).await;

    // SAFETY: one variable, set to the same value by every test that sets it.
    unsafe { std::env::set_var("RELIABILITY_TOKEN", TOKEN) };
    let p = Project::new(&format!(
        r#"
[defaults]
timezone = "Europe/Madrid"
slots = ["*/15 8-19 * * *"]
max_per_day = {MAX_PER_DAY}
min_gap = "0s"
catch_up = "30m"

[channels.masto]
platform = "mastodon"
instance = "{}"
token = {{ env = "RELIABILITY_TOKEN" }}
max_characters = 500

[channels.hook]
platform = "webhook"
url = "{}/hook"
"#,
        masto_proxy.url(),
        hook_proxy.url()
    ));
    let mut texts: HashMap<(&str, String), String> = HashMap::new();
    for channel in ["masto", "hook"] {
        for i in 0..posts {
            let name = format!("{i:03}.md");
            let text = distinct_text(i + if channel == "hook" { 1000 } else { 0 });
            p.post(&format!("{channel}/{name}"), &text);
            texts.insert((channel, name), text.trim_end().to_string());
        }
    }
    let names: Vec<String> = (0..posts).map(|i| format!("{i:03}.md")).collect();

    let d = start(&p, &clock);
    tokio::time::sleep(Duration::from_secs(hours * 3600)).await;
    d.stop().await;

    let madrid = TimeZone::get("Europe/Madrid").unwrap();
    let attempts = latest_attempts(&p);
    let mut report = String::new();

    // Mastodon: every text at most once on the instance, exactly once when published.
    let statuses = masto.statuses();
    let masto_places = whereabouts(&p, "masto", &names);
    for name in &names {
        let text = &texts[&("masto", name.clone())];
        let on_server = statuses.iter().filter(|s| &s.text == text).count();
        assert!(on_server <= 1, "masto/{name} posted {on_server} times");
        let places = &masto_places[name];
        assert_eq!(
            places.len(),
            1,
            "masto/{name} is in {places:?}: lost or copied"
        );
        if places[0] == "published" {
            assert_eq!(
                on_server, 1,
                "masto/{name} is in published/ but not on the server"
            );
        }
        report.push_str(&format!("masto/{name}: {} {on_server}\n", places[0]));
    }
    let created: Vec<Timestamp> = statuses.iter().map(|s| s.created_at).collect();
    assert!(
        most_in_a_day(&created, &madrid) <= MAX_PER_DAY,
        "the cap was exceeded"
    );

    // Webhook: a text under one idempotency key at most (the receiver drops repeats of a
    // key); exactly one when published.
    let deliveries = hook.state().deliveries.clone();
    let hook_places = whereabouts(&p, "hook", &names);
    let mut first_seen: HashMap<&str, Timestamp> = HashMap::new();
    for (key, _, at) in &deliveries {
        first_seen.entry(key.as_str()).or_insert(*at);
    }
    for name in &names {
        let text = &texts[&("hook", name.clone())];
        let keys: HashSet<&str> = deliveries
            .iter()
            .filter(|(_, t, _)| t == text)
            .map(|(k, _, _)| k.as_str())
            .collect();
        assert!(
            keys.len() <= 1,
            "hook/{name} delivered under {} keys",
            keys.len()
        );
        let places = &hook_places[name];
        assert_eq!(
            places.len(),
            1,
            "hook/{name} is in {places:?}: lost or copied"
        );
        if places[0] == "published" {
            assert_eq!(
                keys.len(),
                1,
                "hook/{name} is in published/ but never delivered"
            );
        }
        if places[0] == "queue" {
            // Still queued: waiting for the user after an unsure outcome, never silently.
            let state = attempts.get(&format!("hook/{name}")).map(String::as_str);
            assert!(
                matches!(state, Some("unknown" | "sending") | None),
                "hook/{name} queued with attempt {state:?}"
            );
        }
        report.push_str(&format!("hook/{name}: {} {}\n", places[0], keys.len()));
    }
    let first: Vec<Timestamp> = first_seen.values().copied().collect();
    assert!(
        most_in_a_day(&first, &madrid) <= MAX_PER_DAY,
        "the cap was exceeded"
    );

    // The faults all happened, and the daemon still got most posts out.
    for proxy in [&masto_proxy, &hook_proxy] {
        let faults = proxy.faults();
        for kind in ALL_FAULTS {
            assert!(
                faults.contains_key(&kind),
                "{kind:?} never happened in {} requests: {faults:?}",
                proxy.seen().len()
            );
        }
    }
    let published = |places: &BTreeMap<String, Vec<&str>>| {
        places.values().filter(|p| p[0] == "published").count()
    };
    assert!(
        published(&masto_places) * 10 >= posts * 7 && published(&hook_places) * 10 >= posts * 5,
        "too few published despite the retries:\n{report}\nfaults: {:?} {:?}",
        masto_proxy.faults(),
        hook_proxy.faults()
    );
    eprintln!(
        "{posts} posts a channel over {hours} h: published {} (Mastodon) and {} (webhook); \
         {} and {} requests, faults {:?} and {:?}",
        published(&masto_places),
        published(&hook_places),
        masto_proxy.seen().len(),
        hook_proxy.seen().len(),
        masto_proxy.faults(),
        hook_proxy.faults()
    );
    let text = logs.text();
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains(TOKEN), "the token reached a log line");
}

// --- the real binary ----------------------------------------------------------------------

/// `cadenced run` on `p`, its stderr appended to `log`; killed when dropped.
struct Daemon(std::process::Child);

impl Daemon {
    fn start(p: &Project, log: &std::path::Path) -> Daemon {
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
            .current_dir(p.root())
            .args(["run", "--config"])
            .arg(p.config())
            .env("RELIABILITY_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        Daemon(child)
    }

    fn kill9(&mut self) {
        crate::support::kill9(&mut self.0);
    }

    /// SIGTERM; it must exit 0 (`log` is shown when it does not).
    fn stop(mut self, log: &std::path::Path) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let status = self.0.wait().unwrap();
        if !status.success() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            panic!(
                "SIGTERM must exit 0, not {status}; the log ends with:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (real time, polling what only the file system shows) until `done`, at most
/// `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count_rows(p: &Project, status: &str) -> usize {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        p.root().join("state/cadenced.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    conn.busy_timeout(Duration::from_secs(1)).unwrap();
    conn.query_row(
        "SELECT count(DISTINCT file) FROM publish_log WHERE status = ?1",
        [status],
        |r| r.get::<_, i64>(0),
    )
    .map_or(0, |n| n as usize)
}

/// Renames `count` new post files (`k`-numbered texts from `first`) into `channel` at once.
fn drop_in(p: &Project, channel: &str, first: usize, count: usize) {
    let staging = p.root().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let dir = p.root().join("queue").join(channel);
    std::fs::create_dir_all(&dir).unwrap();
    for k in first..first + count {
        std::fs::write(staging.join(format!("{k:05}.md")), distinct_text(k)).unwrap();
    }
    for k in first..first + count {
        let name = format!("{k:05}.md");
        std::fs::rename(staging.join(&name), dir.join(&name)).unwrap();
    }
}

fn outbox_files(p: &Project, channel: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(p.root().join("outbox").join(channel))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn the_log_locked_by_another_writer_loses_nothing_and_records_everything_after() {
    let p = Project::new(
        r#"
[defaults]
timezone = "UTC"
slots = ["* * * * * *"]
max_per_day = 100
min_gap = "0s"

[channels.a]
platform = "outbox"

[channels.b]
platform = "outbox"
"#,
    );
    let stderr = p.root().join("stderr.log");
    let d = Daemon::start(&p, &stderr);
    wait_until("the daemon runs", Duration::from_secs(20), || {
        std::fs::read_to_string(&stderr).is_ok_and(|s| s.contains("cadenced is running"))
    });

    // Another writer takes the log for longer than the daemon's busy time-out (5 s).
    let other = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    drop_in(&p, "a", 0, 5);
    drop_in(&p, "b", 5, 5);
    wait_until("the daemon meets the lock", Duration::from_secs(30), || {
        std::fs::read_to_string(&stderr)
            .is_ok_and(|s| s.contains("was not recorded in the publish log"))
    });
    std::thread::sleep(Duration::from_secs(3)); // the lock lasts on: its length is the fault
    assert_eq!(
        outbox_files(&p, "a").len() + outbox_files(&p, "b").len(),
        0,
        "sent while the log was locked"
    );
    other.execute_batch("COMMIT").unwrap();
    drop(other);

    wait_until(
        "all ten published and moved",
        Duration::from_secs(60),
        || {
            crate::support::published_count(&p, "a") == 5
                && crate::support::published_count(&p, "b") == 5
        },
    );
    d.stop(&stderr);
    assert_eq!(
        outbox_files(&p, "a").len(),
        5,
        "{:?}",
        outbox_files(&p, "a")
    );
    assert_eq!(
        outbox_files(&p, "b").len(),
        5,
        "{:?}",
        outbox_files(&p, "b")
    );
    for status in ["accepted", "sending", "published"] {
        assert_eq!(count_rows(&p, status), 10, "`{status}` rows");
    }
    let text = std::fs::read_to_string(&stderr).unwrap();
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn ten_thousand_files_dropped_at_once_are_all_accepted_and_none_lost() {
    let files = 10_000;
    let channels = 4;
    let mut config = String::from("[defaults]\ntimezone = \"UTC\"\nslots = [\"0 0 1 1 *\"]\n");
    for c in 0..channels {
        config.push_str(&format!("\n[channels.c{c}]\nplatform = \"outbox\"\n"));
    }
    let p = Project::new(&config);
    let stderr = p.root().join("stderr.log");
    let d = Daemon::start(&p, &stderr);
    wait_until("the daemon runs", Duration::from_secs(20), || {
        std::fs::read_to_string(&stderr).is_ok_and(|s| s.contains("cadenced is running"))
    });
    let started = std::time::Instant::now();
    for c in 0..channels {
        drop_in(&p, &format!("c{c}"), c * files / channels, files / channels);
    }
    eprintln!("dropped in {:?}", started.elapsed());
    wait_until("every file accepted", Duration::from_secs(240), || {
        count_rows(&p, "accepted") == files
    });
    eprintln!(
        "{files} files renamed in at once: all accepted after {:?}",
        started.elapsed()
    );
    let stopping = std::time::Instant::now();
    d.stop(&stderr);
    eprintln!("stopped after {:?}", stopping.elapsed());
    let queued: usize = (0..channels)
        .map(|c| {
            std::fs::read_dir(p.root().join("queue").join(format!("c{c}")))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "md")
                })
                .count()
        })
        .sum();
    assert_eq!(
        queued, files,
        "every file is still in the queue, none moved or lost"
    );
    assert_eq!(count_rows(&p, "held"), 0, "no file held");
    let text = std::fs::read_to_string(&stderr).unwrap();
    assert!(!text.contains("ERROR"), "{text}");
}

/// Runs the daemon until its stderr says `trigger`, and kills it (SIGKILL) right then: the
/// line is read from a pipe as it is written, so the kill lands within moments of it (a
/// file move follows the `published` line at once). Every line also goes to `log`.
/// Returns whether the trigger came within `limit` (otherwise the daemon is killed then).
fn kill_when(p: &Project, log: &std::path::Path, trigger: &'static str, limit: Duration) -> bool {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
        .current_dir(p.root())
        .args(["run", "--config"])
        .arg(p.config())
        .env("RELIABILITY_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let stderr = child.stderr.take().unwrap();
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(trigger) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let _ = tx.send(());
            }
            let _ = writeln!(out, "{line}");
        }
    });
    let hit = rx.recv_timeout(limit).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap();
    hit
}

#[test]
fn a_crash_storm_in_reconciliation_and_moves_never_duplicates_loses_or_exceeds_a_cap() {
    use crate::fake_mastodon::CreateFault;
    let kills = if long() { 40 } else { 12 };
    let posts = 8;
    let cap = 6;
    let server = FakeMastodon::start_on_thread();
    let p = Project::new(&format!(
        r#"
[defaults]
timezone = "UTC"
slots = ["* * * * * *"]
max_per_day = {cap}
min_gap = "0s"

[channels.shop]
platform = "mastodon"
instance = "{}"
token = {{ env = "RELIABILITY_TOKEN" }}
max_characters = 500

[channels.news]
platform = "outbox"
"#,
        server.url()
    ));
    let mut texts = Vec::new();
    for i in 0..posts {
        for channel in ["shop", "news"] {
            let k = i + if channel == "news" { 100 } else { 0 };
            p.post(&format!("{channel}/{i:03}.md"), &distinct_text(k));
            texts.push((
                channel,
                format!("{i:03}.md"),
                distinct_text(k).trim_end().to_string(),
            ));
        }
    }
    let log = p.root().join("stderr.log");

    // Kills during start-up reconciliation: a create that hangs after the status exists
    // leaves an attempt `sending`; the next start resends it with its key, and is killed
    // as it does (its resend hangs too, the next time round).
    for _ in 0..3 {
        server.fail_next_create(CreateFault::HangAfterCreate);
        let before = server.create_requests();
        let mut d = Daemon::start(&p, &log);
        server.wait_until_blocking("a create in flight", |s| s.create_requests > before);
        d.kill9();
        server.fail_next_create(CreateFault::HangAfterCreate);
        assert!(
            kill_when(
                &p,
                &log,
                "resending an interrupted attempt",
                Duration::from_secs(20)
            ),
            "no reconciliation at start-up"
        );
    }
    server.clear_faults();

    // Kills right as a post is recorded published, before or during its file's move.
    let mut moves_hit = 0;
    for _ in 0..kills {
        if kill_when(&p, &log, "INFO published ", Duration::from_secs(10)) {
            moves_hit += 1;
        }
    }
    assert!(moves_hit > 0, "no kill landed at a move");

    // Then a clean run to the end: everything the caps allow goes out, once.
    let d = Daemon::start(&p, &log);
    wait_until("the caps are reached", Duration::from_secs(60), || {
        crate::support::published_count(&p, "shop") == cap
            && crate::support::published_count(&p, "news") == cap
    });
    std::thread::sleep(Duration::from_secs(3)); // slots every second: room to exceed a cap
    d.stop(&log);

    let statuses = server.statuses();
    assert_eq!(statuses.len(), cap, "the shop's cap: {statuses:#?}");
    // (A kill while the outbox adapter writes leaves its hidden temporary file: not a post.)
    let news: Vec<String> = outbox_files(&p, "news")
        .into_iter()
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(news.len(), cap, "the news cap: {news:?}");
    for (channel, name, text) in &texts {
        let dir = p.root().join("queue").join(channel);
        let queued = dir.join(name).exists();
        let published = dir.join("published").join(name).exists();
        assert!(
            queued != published,
            "{channel}/{name}: queued {queued}, published {published}"
        );
        if *channel == "shop" {
            let on_server = statuses.iter().filter(|s| &s.text == text).count();
            assert_eq!(
                on_server,
                usize::from(published),
                "{channel}/{name} on the server"
            );
        }
    }
    for channel in ["shop", "news"] {
        let published: Vec<String> =
            std::fs::read_dir(p.root().join("queue").join(channel).join("published"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        assert!(
            published.iter().all(|n| !n.contains("-2.")),
            "a file moved twice: {published:?}"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("could not move"), "{text}");
    eprintln!("crash storm: {kills} kills at `published`, {moves_hit} landed");
}
