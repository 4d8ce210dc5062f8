//! The reading commands (`log`, `status`, `report`) and the user's answers (`retry`,
//! `resolve`) through the real binary, against a real SQLite log seeded with
//! `cadenced::store::Store` the way the daemon writes it.
//!
//! The binary reads the real clock, so rows are seeded relative to the current time read
//! here, in the test (src may not read the clock; tests may).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use cadenced::platforms::Platform;
use cadenced::store::{NewAttempt, NewEvent, Store};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use predicates::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::support::Project;

const CONFIG: &str = r#"
[defaults]
timezone = "Europe/Madrid"
slots = ["10:00", "17:30"]

[channels.shop-x]
platform = "x"
token = { env = "SHOP_X_TOKEN" }
dry_run = true

[channels.shop-mastodon]
platform = "mastodon"
instance = "https://mastodon.social"
token = { env = "SHOP_MASTODON_TOKEN" }
"#;

/// `log --json`, pinned: exactly the SPEC's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogLine {
    time: String,
    channel: String,
    platform: String,
    file: String,
    status: String,
    remote_id: Option<String>,
    remote_url: Option<String>,
    detail: String,
}

/// `status --json`: the SPEC's fields (more are allowed) and the flags this command adds.
#[derive(Debug, Deserialize)]
struct StatusLine {
    channel: String,
    platform: String,
    queued: u64,
    published_today: u64,
    max_per_day: u32,
    next_slot: Option<String>,
    held: u64,
    unknown: u64,
    last_error: Option<String>,
    paused: bool,
    dry_run: bool,
    disabled: bool,
}

#[derive(Debug, Deserialize)]
struct ReportLine {
    channel: String,
    posts: u64,
    previous_posts: u64,
    change_percent: Option<f64>,
    dry_run_posts: u64,
    previous_dry_run_posts: u64,
}

#[allow(clippy::disallowed_methods)] // tests may read the clock; the binary reads it too
fn now() -> Timestamp {
    Timestamp::now()
}

fn madrid() -> TimeZone {
    TimeZone::get("Europe/Madrid").unwrap()
}

fn database(p: &Project) -> PathBuf {
    p.root().join("state/cadenced.sqlite")
}

fn store(p: &Project) -> Store {
    Store::open(&database(p)).unwrap()
}

fn platform_of(file: &str) -> Platform {
    if file.starts_with("shop-x/") {
        Platform::named("x").unwrap()
    } else {
        Platform::named("mastodon").unwrap()
    }
}

/// An attempt as the daemon records it: begun at `started`, finished a second later in
/// `state` (left `sending` when that is the state).
#[allow(clippy::too_many_arguments)] // one call per seeded row reads best flat
fn attempt(
    s: &mut Store,
    file: &str,
    hash: &str,
    started: Timestamp,
    state: &str,
    url: Option<&str>,
    detail: &str,
    dry_run: bool,
) -> i64 {
    let id = s
        .begin_attempt(&NewAttempt {
            started,
            channel: file.split('/').next().unwrap(),
            platform: platform_of(file),
            file,
            hash,
            normalized: file,
            idempotency_key: "key-1",
            key_started: started,
            dry_run,
        })
        .unwrap();
    if state != "sending" {
        s.finish_attempt(
            id,
            started + SignedDuration::from_secs(1),
            state,
            url.map(|_| "remote-1"),
            url,
            detail,
        )
        .unwrap();
    }
    id
}

fn event(s: &Store, file: &str, at: Timestamp, status: &str, detail: &str) {
    s.log_event(&NewEvent {
        time: at,
        channel: file.split('/').next().unwrap(),
        platform: platform_of(file),
        file,
        hash: Some("h"),
        status,
        detail,
        attempt: None,
    })
    .unwrap();
}

fn sha(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

fn stdout(p: &Project, args: &[&str]) -> String {
    let out = p.cmd(args).env("TZ", "Europe/Madrid").assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn log_lines(p: &Project, args: &[&str]) -> Vec<LogLine> {
    let mut all = vec!["log", "--json"];
    all.extend_from_slice(args);
    stdout(p, &all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn files(lines: &[LogLine]) -> Vec<(&str, &str)> {
    lines
        .iter()
        .map(|l| (l.file.as_str(), l.status.as_str()))
        .collect()
}

#[test]
fn log_json_has_exactly_the_documented_fields() {
    let p = Project::new(CONFIG);
    let mut s = store(&p);
    // Whole seconds: the log keeps milliseconds.
    let t = Timestamp::from_second(now().as_second() - 3600).unwrap();
    event(&s, "shop-mastodon/sale.md", t, "accepted", "");
    attempt(
        &mut s,
        "shop-mastodon/sale.md",
        "h",
        t,
        "published",
        Some("https://mastodon.social/@shop/1"),
        "HTTP 200",
        false,
    );
    let lines = log_lines(&p, &[]);
    assert_eq!(
        files(&lines),
        [
            ("shop-mastodon/sale.md", "accepted"),
            ("shop-mastodon/sale.md", "sending"),
            ("shop-mastodon/sale.md", "published"),
        ]
    );
    let last = &lines[2];
    assert_eq!(last.channel, "shop-mastodon");
    assert_eq!(last.platform, "mastodon");
    assert_eq!(last.remote_id.as_deref(), Some("remote-1"));
    assert_eq!(
        last.remote_url.as_deref(),
        Some("https://mastodon.social/@shop/1")
    );
    assert_eq!(last.detail, "HTTP 200");
    assert!(last.time.ends_with('Z'), "UTC: {}", last.time);
    let time: Timestamp = last.time.parse().unwrap();
    assert_eq!(time, t + SignedDuration::from_secs(1));
    assert_eq!(lines[0].remote_url, None);
}

#[test]
fn log_filters_by_channel_status_since_and_limit() {
    let p = Project::new(CONFIG);
    let mut s = store(&p);
    let now = now();
    let days = |d: i64| now - SignedDuration::from_hours(24 * d);
    event(&s, "shop-x/old.md", days(10), "accepted", "");
    event(&s, "shop-x/held.md", days(2), "held", "too long");
    attempt(
        &mut s,
        "shop-mastodon/a.md",
        "h",
        days(1),
        "failed",
        None,
        "401",
        false,
    );
    attempt(
        &mut s,
        "shop-mastodon/b.md",
        "h",
        now - SignedDuration::from_hours(1),
        "unknown",
        None,
        "time-out",
        false,
    );

    assert_eq!(log_lines(&p, &[]).len(), 6);
    assert_eq!(
        files(&log_lines(&p, &["--channel", "shop-x"])),
        [("shop-x/old.md", "accepted"), ("shop-x/held.md", "held")]
    );
    assert_eq!(
        files(&log_lines(&p, &["--status", "failed,unknown"])),
        [
            ("shop-mastodon/a.md", "failed"),
            ("shop-mastodon/b.md", "unknown")
        ]
    );
    assert_eq!(
        files(&log_lines(&p, &["--status", "held", "--status", "failed"])),
        [("shop-x/held.md", "held"), ("shop-mastodon/a.md", "failed")]
    );
    assert_eq!(log_lines(&p, &["--since", "7d"]).len(), 5);
    assert_eq!(
        files(&log_lines(&p, &["--since", "3h"])),
        [
            ("shop-mastodon/b.md", "sending"),
            ("shop-mastodon/b.md", "unknown")
        ]
    );
    let since = days(3).to_string();
    assert_eq!(log_lines(&p, &["--since", &since]).len(), 5);
    // The last N, still oldest first.
    assert_eq!(
        files(&log_lines(&p, &["--limit", "2"])),
        [
            ("shop-mastodon/b.md", "sending"),
            ("shop-mastodon/b.md", "unknown")
        ]
    );
    assert_eq!(
        files(&log_lines(
            &p,
            &[
                "--channel",
                "shop-mastodon",
                "--status",
                "sending",
                "--limit",
                "1"
            ]
        )),
        [("shop-mastodon/b.md", "sending")]
    );
}

#[test]
fn log_refuses_an_unknown_status_listing_the_statuses() {
    let p = Project::new(CONFIG);
    drop(store(&p));
    p.cmd(&["log", "--status", "posted"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("posted"))
        .stderr(predicate::str::contains("published"))
        .stderr(predicate::str::contains("withdrawn"));
    p.cmd(&["log", "--since", "last week"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("7d"));
}

#[test]
fn log_without_a_database_says_the_daemon_has_not_run() {
    let p = Project::new(CONFIG);
    p.cmd(&["log"])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("no publish log yet at"))
        .stderr(predicate::str::contains("the daemon has not run"));
    assert!(!database(&p).exists(), "a reader must not create the log");
}

/// Display width by the rule the table uses: CJK takes two cells.
fn cells(s: &str) -> usize {
    s.chars()
        .map(|c| {
            if ('\u{2E80}'..='\u{9FFF}').contains(&c) || ('\u{FF00}'..='\u{FF60}').contains(&c) {
                2
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn log_table_keeps_cjk_file_names_aligned_in_local_time() {
    let p = Project::new(CONFIG);
    let s = store(&p);
    let t: Timestamp = "2026-01-15T09:00:00Z".parse().unwrap();
    event(
        &s,
        "shop-x/冬季促销：全场八折.md",
        t,
        "held",
        "too long\nfor X",
    );
    event(&s, "shop-x/sale.md", t, "accepted", "LAST");
    event(
        &s,
        "shop-mastodon/セール.md",
        t,
        "withdrawn",
        "renamed or removed",
    );
    let out = stdout(&p, &["log"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("TIME"), "{out}");
    // 09:00 UTC is 10:00 in Madrid in January.
    assert!(lines[1].starts_with("2026-01-15 10:00:00 CET"), "{out}");
    assert!(lines[1].contains("冬季促销：全场八折.md"), "{out}");
    assert!(
        lines[1].contains("too long for X"),
        "line breaks flattened: {out}"
    );
    // The last column starts at the same display column on every line.
    let starts: Vec<usize> = [
        (lines[0], "URL / DETAIL"),
        (lines[1], "too long"),
        (lines[2], "LAST"),
        (lines[3], "renamed"),
    ]
    .iter()
    .map(|(line, needle)| cells(&line[..line.find(needle).unwrap()]))
    .collect();
    assert!(starts.iter().all(|&c| c == starts[0]), "{starts:?}\n{out}");
}

#[test]
fn log_follow_prints_rows_as_they_are_written() {
    let p = Project::new(CONFIG);
    let s = store(&p);
    event(&s, "shop-x/before.md", now(), "accepted", "");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
        .current_dir(p.root())
        .env_remove("CADENCED_CONFIG")
        .env("NO_COLOR", "1")
        .arg("--config")
        .arg(p.config())
        .args(["log", "--follow", "--json", "--channel", "shop-x"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("no line for {what} within 15 s"))
    };
    let first: LogLine = serde_json::from_str(&next("the existing row")).unwrap();
    assert_eq!(first.file, "shop-x/before.md");
    // Written while the follower runs; the other channel's row is filtered out.
    event(&s, "shop-mastodon/other.md", now(), "accepted", "");
    event(&s, "shop-x/after.md", now(), "held", "too long");
    let second: LogLine = serde_json::from_str(&next("the new row")).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        (second.file.as_str(), second.status.as_str()),
        ("shop-x/after.md", "held")
    );
}

#[test]
fn status_counts_today_in_the_channels_zone() {
    let p = Project::new(CONFIG);
    p.post("shop-mastodon/a.md", "Our winter sale starts today.\n");
    p.post("shop-mastodon/long.md", &"too long ".repeat(80));
    let mut s = store(&p);
    let tz = madrid();
    let midnight = now()
        .to_zoned(tz.clone())
        .start_of_day()
        .unwrap()
        .timestamp();
    let m = "shop-mastodon/";
    // Today in Madrid (before UTC's midnight, too): counts.
    attempt(
        &mut s,
        &format!("{m}p1.md"),
        "h",
        midnight + SignedDuration::from_mins(30),
        "published",
        None,
        "",
        false,
    );
    // Went out in the last second of yesterday in Madrid (the helper finishes attempts one
    // second after they start, and a post counts when it went out): does not count.
    attempt(
        &mut s,
        &format!("{m}p0.md"),
        "h",
        midnight - SignedDuration::from_secs(2),
        "published",
        None,
        "",
        false,
    );
    // Unsure: counts toward the cap, and waits for an answer.
    attempt(
        &mut s,
        &format!("{m}u.md"),
        "h",
        midnight + SignedDuration::from_mins(45),
        "unknown",
        None,
        "time-out",
        false,
    );
    attempt(
        &mut s,
        &format!("{m}f.md"),
        "h",
        midnight - SignedDuration::from_hours(3),
        "failed",
        None,
        "401 Unauthorized — renew the token",
        false,
    );
    drop(s);

    let run = |token: bool| -> Vec<StatusLine> {
        let mut cmd = p.cmd(&["status", "--json"]);
        cmd.env_remove("SHOP_X_TOKEN");
        if token {
            cmd.env("SHOP_MASTODON_TOKEN", "t0ken");
        } else {
            cmd.env_remove("SHOP_MASTODON_TOKEN");
        }
        let out = cmd.assert().success().get_output().stdout.clone();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let lines = run(true);
    let names: Vec<&str> = lines.iter().map(|l| l.channel.as_str()).collect();
    assert_eq!(names, ["shop-mastodon", "shop-x"]);
    let ms = &lines[0];
    assert_eq!(ms.platform, "mastodon");
    assert_eq!((ms.queued, ms.held), (1, 1));
    assert_eq!(ms.published_today, 2, "{ms:?}");
    assert_eq!(ms.max_per_day, 2);
    assert_eq!(ms.unknown, 1);
    assert_eq!(
        ms.last_error.as_deref(),
        Some("401 Unauthorized — renew the token")
    );
    assert!(!ms.paused && !ms.dry_run && !ms.disabled, "{ms:?}");
    let next_slot = ms.next_slot.as_deref().unwrap();
    let slot: Timestamp = next_slot.parse().unwrap();
    assert!(slot > now() - SignedDuration::from_secs(60));
    let local = slot.to_zoned(tz.clone());
    assert!(
        [(10, 0), (17, 30)].contains(&(local.hour(), local.minute())),
        "{next_slot}"
    );
    assert!(
        next_slot.ends_with(&local.strftime("%:z").to_string()),
        "written with Madrid's offset: {next_slot}"
    );
    let x = &lines[1];
    assert!(
        x.dry_run && !x.disabled,
        "a dry-run channel needs no token: {x:?}"
    );
    assert_eq!((x.queued, x.published_today, x.unknown), (0, 0, 0));
    assert_eq!(x.last_error, None);

    let without = run(false);
    assert!(without[0].disabled, "{:?}", without[0]);

    // People see the same, and what to do about the unsure post.
    p.cmd(&["status"])
        .env("SHOP_MASTODON_TOKEN", "t0ken")
        .assert()
        .success()
        .stdout(predicate::str::contains("2/2"))
        .stdout(predicate::str::contains(
            "cadenced resolve shop-mastodon/u.md --posted",
        ))
        .stdout(predicate::str::contains("401 Unauthorized"));
}

#[test]
fn report_compares_the_last_days_with_the_days_before() {
    let p = Project::new(CONFIG);
    let mut s = store(&p);
    let now = now();
    let ago = |d: i64| now - SignedDuration::from_hours(24 * d);
    let m = "shop-mastodon/";
    // The last 7 days: 3 (resolved counts: the user said it went out).
    attempt(
        &mut s,
        &format!("{m}a.md"),
        "h",
        ago(1),
        "published",
        None,
        "",
        false,
    );
    attempt(
        &mut s,
        &format!("{m}b.md"),
        "h",
        ago(3),
        "published",
        None,
        "",
        false,
    );
    attempt(
        &mut s,
        &format!("{m}c.md"),
        "h",
        ago(5),
        "resolved",
        None,
        "",
        false,
    );
    // Not posts: a failure and an unsure attempt.
    attempt(
        &mut s,
        &format!("{m}d.md"),
        "h",
        ago(2),
        "failed",
        None,
        "401",
        false,
    );
    attempt(
        &mut s,
        &format!("{m}e.md"),
        "h",
        ago(2),
        "unknown",
        None,
        "",
        false,
    );
    // The 7 days before: 1; and one older than both windows.
    attempt(
        &mut s,
        &format!("{m}f.md"),
        "h",
        ago(10),
        "published",
        None,
        "",
        false,
    );
    attempt(
        &mut s,
        &format!("{m}g.md"),
        "h",
        ago(20),
        "published",
        None,
        "",
        false,
    );
    // Dry runs, apart.
    attempt(
        &mut s,
        "shop-x/a.md",
        "h",
        ago(2),
        "published",
        None,
        "",
        true,
    );
    attempt(
        &mut s,
        "shop-x/b.md",
        "h",
        ago(9),
        "published",
        None,
        "",
        true,
    );
    attempt(
        &mut s,
        "shop-x/c.md",
        "h",
        ago(12),
        "published",
        None,
        "",
        true,
    );
    drop(s);

    let out = stdout(&p, &["report", "--days", "7", "--json"]);
    let lines: Vec<ReportLine> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let ms = lines.iter().find(|l| l.channel == "shop-mastodon").unwrap();
    assert_eq!((ms.posts, ms.previous_posts), (3, 1));
    assert_eq!(ms.change_percent, Some(200.0));
    assert_eq!((ms.dry_run_posts, ms.previous_dry_run_posts), (0, 0));
    let x = lines.iter().find(|l| l.channel == "shop-x").unwrap();
    assert_eq!((x.posts, x.previous_posts, x.change_percent), (0, 0, None));
    assert_eq!((x.dry_run_posts, x.previous_dry_run_posts), (1, 2));

    // The default period is 28 days: everything above falls in the current one.
    let out = stdout(&p, &["report", "--json"]);
    let ms: ReportLine = out
        .lines()
        .map(|l| serde_json::from_str::<ReportLine>(l).unwrap())
        .find(|l| l.channel == "shop-mastodon")
        .unwrap();
    assert_eq!((ms.posts, ms.previous_posts), (5, 0));

    let human = stdout(&p, &["report", "--days", "7"]);
    assert!(human.contains("+200%"), "{human}");
}

/// The newest attempt's state, read the way the daemon reads it.
fn state_of(p: &Project, file: &str) -> String {
    let out = stdout(
        p,
        &[
            "log",
            "--json",
            "--status",
            "retried,resolved,failed,unknown,published",
        ],
    );
    out.lines()
        .map(|l| serde_json::from_str::<LogLine>(l).unwrap())
        .rfind(|l| l.file == file)
        .map(|l| l.status)
        .unwrap_or_default()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn retry_moves_a_failed_post_back_and_queues_it_again() {
    let p = Project::new(CONFIG);
    let text = "Winter sale: 20% off.\n";
    let failed = p.post("shop-mastodon/failed/sale.md", text);
    p.post(
        "shop-mastodon/failed/sale.md.error",
        "sale.md was not published: 401\n",
    );
    let mut s = store(&p);
    attempt(
        &mut s,
        "shop-mastodon/sale.md",
        &sha(text),
        now() - 2.hours(),
        "failed",
        None,
        "401 Unauthorized",
        false,
    );
    drop(s);

    p.cmd(&["retry", "shop-mastodon/sale.md"])
        .assert()
        .success()
        .stdout(predicate::str::contains("retried"))
        .stdout(predicate::str::contains("new idempotency key"));
    let back = p.root().join("queue/shop-mastodon/sale.md");
    assert_eq!(read(&back), text);
    assert!(!failed.exists());
    assert!(
        !p.root()
            .join("queue/shop-mastodon/failed/sale.md.error")
            .exists(),
        "the answered note goes"
    );
    assert_eq!(state_of(&p, "shop-mastodon/sale.md"), "retried");
    let retried = log_lines(&p, &["--status", "retried"]);
    assert_eq!(retried.len(), 1);
    assert!(
        retried[0].detail.contains("was failed"),
        "{}",
        retried[0].detail
    );

    // Asked again, it is no longer failed: refused, nothing changes.
    p.cmd(&["retry", "shop-mastodon/sale.md"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already"));
    assert_eq!(log_lines(&p, &["--status", "retried"]).len(), 1);
}

#[test]
fn retry_takes_the_path_inside_failed_and_never_overwrites() {
    let p = Project::new(CONFIG);
    let failed = p.post("shop-mastodon/failed/sale.md", "old text\n");
    // A new version already dropped in under the same name: it must survive.
    let queued = p.post("shop-mastodon/sale.md", "new text\n");
    let mut s = store(&p);
    attempt(
        &mut s,
        "shop-mastodon/sale.md",
        &sha("old text\n"),
        now() - 2.hours(),
        "failed",
        None,
        "422",
        false,
    );
    drop(s);
    p.cmd(&["retry", failed.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("queued already"));
    assert_eq!(read(&queued), "new text\n");
    assert_eq!(read(&failed), "old text\n");
    assert_eq!(state_of(&p, "shop-mastodon/sale.md"), "retried");
}

#[test]
fn retry_and_resolve_refuse_posts_that_need_no_answer() {
    let p = Project::new(CONFIG);
    p.post("shop-mastodon/published/done.md", "done\n");
    let mut s = store(&p);
    attempt(
        &mut s,
        "shop-mastodon/done.md",
        &sha("done\n"),
        now() - 2.hours(),
        "published",
        Some("https://mastodon.social/@shop/9"),
        "",
        false,
    );
    attempt(
        &mut s,
        "shop-mastodon/busy.md",
        "h",
        now(),
        "sending",
        None,
        "",
        false,
    );
    drop(s);
    for args in [
        &["retry", "shop-mastodon/done.md"][..],
        &["resolve", "shop-mastodon/done.md", "--posted"][..],
    ] {
        p.cmd(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("went out"))
            .stderr(predicate::str::contains("https://mastodon.social/@shop/9"));
    }
    p.cmd(&["retry", "shop-mastodon/busy.md"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("being sent right now"));
    p.cmd(&["retry", "shop-mastodon/never.md"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("never sent"));
    p.cmd(&["retry", "/etc/passwd"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("queue"));
    assert_eq!(state_of(&p, "shop-mastodon/done.md"), "published");
    assert_eq!(state_of(&p, "shop-mastodon/busy.md"), "");
    assert!(log_lines(&p, &["--status", "retried,resolved"]).is_empty());
}

#[test]
fn answers_without_a_log_say_so_and_create_none() {
    let p = Project::new(CONFIG);
    p.cmd(&["retry", "shop-mastodon/sale.md"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no publish log yet"));
    assert!(!database(&p).exists());
}

#[test]
fn resolve_records_the_url_and_moves_the_post_to_published() {
    let p = Project::new(CONFIG);
    let text = "Flash sale until midnight.\n";
    let file = p.post("shop-mastodon/flash.md", text);
    // An older post of the same name is already there: it must stay untouched.
    let older = p.post(
        "shop-mastodon/published/flash.md",
        "last year's flash sale\n",
    );
    let mut s = store(&p);
    attempt(
        &mut s,
        "shop-mastodon/flash.md",
        &sha(text),
        now() - 1.hours(),
        "unknown",
        None,
        "time-out",
        false,
    );
    drop(s);

    let url = "https://mastodon.social/@shop/112233";
    p.cmd(&["resolve", "queue/shop-mastodon/flash.md", "--posted", url])
        .assert()
        .success()
        .stdout(predicate::str::contains("recorded as published"))
        .stdout(predicate::str::contains("will not send it again"));
    assert!(!file.exists());
    assert_eq!(read(&older), "last year's flash sale\n");
    assert_eq!(
        read(&p.root().join("queue/shop-mastodon/published/flash-2.md")),
        text
    );
    let resolved = log_lines(&p, &["--status", "resolved"]);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].remote_url.as_deref(), Some(url));
    assert_eq!(resolved[0].file, "shop-mastodon/flash.md");
    // A resolved post counts for today's cap (when it was sent today in Madrid).
    let today = now().to_zoned(madrid()).start_of_day().unwrap().timestamp();
    if now() - 1.hours() >= today {
        let st = stdout(&p, &["status", "--json"]);
        assert!(st.contains(r#""channel":"shop-mastodon""#));
        let ms: StatusLine = serde_json::from_str(st.lines().next().unwrap()).unwrap();
        assert_eq!(ms.published_today, 1, "{st}");
        assert_eq!(ms.unknown, 0);
    }
}

#[test]
fn resolve_a_failed_post_from_failed_and_without_url() {
    let p = Project::new(CONFIG);
    let text = "It went out despite the 502.\n";
    let failed = p.post("shop-mastodon/failed/odd.md", text);
    let mut s = store(&p);
    attempt(
        &mut s,
        "shop-mastodon/odd.md",
        &sha(text),
        now() - 1.hours(),
        "failed",
        None,
        "502",
        false,
    );
    drop(s);
    p.cmd(&["resolve", "shop-mastodon/odd.md", "--posted"])
        .assert()
        .success();
    assert!(!failed.exists());
    assert_eq!(
        read(&p.root().join("queue/shop-mastodon/published/odd.md")),
        text
    );
    assert_eq!(state_of(&p, "shop-mastodon/odd.md"), "resolved");
}

#[test]
fn resolve_keeps_a_file_edited_since_it_was_sent() {
    let p = Project::new(CONFIG);
    let file = p.post("shop-mastodon/sale.md", "the edited text\n");
    let mut s = store(&p);
    attempt(
        &mut s,
        "shop-mastodon/sale.md",
        &sha("the text that was sent\n"),
        now() - 1.hours(),
        "unknown",
        None,
        "",
        false,
    );
    drop(s);
    p.cmd(&["resolve", "shop-mastodon/sale.md", "--posted"])
        .assert()
        .success()
        .stdout(predicate::str::contains("changed since it was sent"));
    assert_eq!(read(&file), "the edited text\n");
    assert_eq!(state_of(&p, "shop-mastodon/sale.md"), "resolved");
}

#[test]
fn resolve_needs_posted_and_a_web_address() {
    let p = Project::new(CONFIG);
    let mut s = store(&p);
    attempt(
        &mut s,
        "shop-mastodon/sale.md",
        "h",
        now() - 1.hours(),
        "unknown",
        None,
        "",
        false,
    );
    drop(s);
    p.cmd(&["resolve", "shop-mastodon/sale.md"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--posted"));
    p.cmd(&["resolve", "--posted", "shop-mastodon/sale.md"])
        .assert()
        .code(2);
    p.cmd(&[
        "resolve",
        "shop-mastodon/sale.md",
        "--posted",
        "mastodon.social/@shop/1",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("https://"));
    assert_eq!(state_of(&p, "shop-mastodon/sale.md"), "unknown");
}
