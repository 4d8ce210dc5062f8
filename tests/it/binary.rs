//! The real `cadenced run` binary as systemd runs it: killed with SIGKILL at arbitrary
//! moments while publishing to a Mastodon-like server that also fails some requests, and
//! talking the notify protocol on a real datagram socket.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fake_mastodon::{CreateFault, FakeMastodon, TOKEN};
use crate::support::{Killed, Project, kill9, published_count};

fn cadenced(p: &Project, log: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cadenced"));
    cmd.current_dir(p.root())
        .args(["run", "--config"])
        .arg(p.config())
        .env("SHOP_TOKEN", TOKEN)
        .env("RUST_LOG", "debug")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        );
    cmd
}

const TEXTS: [&str; 8] = [
    "New trail runners arrived today in six colours",
    "How to keep suede dry through a rainy winter week",
    "Our free repair workshop is back on 12 December",
    "Kids sizes are restocked in every colour this weekend",
    "Meet Ana, who has repaired our customers' soles for ten years",
    "Five ways to lace your sneakers for wide feet",
    "The recycled canvas line explained, from bottle to shoe",
    "冬季促销：全场运动鞋八折，周六门店还有免费护理讲座",
];

#[test]
fn sigkill_at_arbitrary_moments_posts_each_file_exactly_once() {
    let server = FakeMastodon::start_on_thread();
    // Failures the platform throws in, before and after the status is created; the hangs
    // keep a request in flight after the status exists, so a kill lands mid-request.
    for fault in [
        CreateFault::HangAfterCreate,
        CreateFault::ErrorAfterCreate(500),
        CreateFault::ErrorBeforeCreate(503),
        CreateFault::HangAfterCreate,
        CreateFault::DropAfterCreate,
        CreateFault::ErrorAfterCreate(502),
        CreateFault::HangAfterCreate,
    ] {
        server.fail_next_create(fault);
    }
    let p = Project::new(&format!(
        r#"
[defaults]
timezone = "UTC"

[channels.shop]
platform = "mastodon"
instance = "{}"
token = {{ env = "SHOP_TOKEN" }}
slots = ["* * * * * *"]
max_per_day = 100
min_gap = "0s"
max_characters = 500
"#,
        server.url()
    ));
    for (i, text) in TEXTS.iter().enumerate() {
        p.post(&format!("shop/{i:03}.md"), &format!("{text}\n"));
    }
    let stderr = p.root().join("stderr.log");

    // Kill at moments spread over the publishing (a fixed sequence: repeatable, varied).
    for millis in [1300, 450, 900, 250, 1700, 600, 1100, 350, 800, 1500] {
        let mut child = cadenced(&p, &stderr).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(millis)); // the kill's moment, not a wait for an event
        kill9(&mut child);
        if published_count(&p, "shop") == TEXTS.len() {
            break;
        }
    }
    // Then let it finish: every post reaches the server, every file reaches published/.
    server.clear_faults();
    let mut child = cadenced(&p, &stderr).spawn().unwrap();
    server.wait_until_blocking("every text posted", |s| {
        TEXTS.iter().all(|t| s.statuses_with_text(t) >= 1)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while published_count(&p, "shop") < TEXTS.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "SIGTERM exits 0");

    for text in TEXTS {
        assert_eq!(
            server.statuses_with_text(text),
            1,
            "posted exactly once: {text}"
        );
    }
    assert_eq!(
        published_count(&p, "shop"),
        TEXTS.len(),
        "every file ends in published/"
    );
    let left: Vec<_> = std::fs::read_dir(p.root().join("queue/shop"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".md"))
        .collect();
    assert!(left.is_empty(), "nothing left in the queue: {left:?}");

    // The kills did land mid-request: restarts resent interrupted attempts with their key.
    let logs = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        logs.contains("resending an interrupted attempt with the same idempotency key"),
        "no kill interrupted a request"
    );
    assert!(
        server.create_requests() > TEXTS.len(),
        "the faults and kills caused resends"
    );

    // The token reached the server and nowhere else.
    assert!(!logs.contains(TOKEN), "a log line holds the token");
    let db = std::fs::read(p.root().join("state/cadenced.sqlite")).unwrap();
    assert!(
        !db.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "the database holds the token"
    );
}

#[test]
fn the_notify_socket_hears_ready_status_watchdog_and_stopping() {
    let p = Project::new(
        "[defaults]\ntimezone = \"UTC\"\n\n[channels.news]\nplatform = \"outbox\"\nslots = [\"10:00\"]\n",
    );
    p.post("news/a.md", "A post that waits for ten o'clock.\n");
    let socket_path = p.root().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let child = Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
        .current_dir(p.root())
        .args(["run", "--config"])
        .arg(p.config())
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "2000000")
        .env("JOURNAL_STREAM", "8:1234")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut heard = Vec::new();
    let mut buf = [0u8; 512];
    let mut wait_for = |prefix: &str, heard: &mut Vec<String>| {
        loop {
            let n = socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("waiting for {prefix}: {e}; heard {heard:?}"));
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            heard.push(msg.clone());
            if msg.starts_with(prefix) {
                return msg;
            }
        }
    };
    wait_for("READY=1", &mut heard);
    let status = wait_for("STATUS=", &mut heard);
    assert!(status.contains("1 queued; next: news "), "{status}");
    wait_for("WATCHDOG=1", &mut heard);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_for("STOPPING=1", &mut heard);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // Under journald, lines carry no timestamp of their own.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        !first.starts_with("20"),
        "no timestamp under journald: {first}"
    );
}

/// A review of a large queue against a large log takes minutes on a slow machine, on the
/// loop's thread: it sent systemd nothing meanwhile, so `TimeoutStartSec=` (90 s by
/// default) killed a start-up that was advancing, and `WatchdogSec=` a reload's review.
/// The review now tells systemd it advances, with more time asked for at start-up and a
/// watchdog ping, paced by the review's own steps (so one that stalls still times out).
#[test]
fn a_long_review_of_the_queue_is_not_killed_by_systemds_start_timeout_or_watchdog() {
    let p = Project::new(
        "[defaults]\ntimezone = \"UTC\"\n\n[channels.news]\nplatform = \"outbox\"\nslots = [\"10:00\"]\nvariation = false\n",
    );
    for i in 0..200 {
        p.post(
            &format!("news/{i:03}.md"),
            &format!("Post number {i} of a long queue, each about something else.\n"),
        );
    }
    let (child, socket) = run_with_a_long_watchdog(&p);
    let until = |last: &str| hear_until(&socket, last);
    let start = until("READY=1");
    assert!(
        start.iter().any(|m| m == STILL_WORKING),
        "the start-up's review asked for more time: {start:?}"
    );
    // A reload judges the queue again from scratch (after READY=1 for the new config).
    unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) };
    let reload = until(STILL_WORKING);
    assert!(reload.iter().any(|m| m == "RELOADING=1"), "{reload:?}");
    stops_cleanly_without_the_loops_own_ping(child, &reload);
}

/// What a long piece of work sends systemd as it advances (the watchdog at ten minutes:
/// three times the ten seconds between two of them).
const STILL_WORKING: &str = "EXTEND_TIMEOUT_USEC=30000000\nWATCHDOG=1";

/// `cadenced run` on `p` with a notify socket and a watchdog of ten minutes, so that the
/// loop's own ping (every five) falls inside no test.
fn run_with_a_long_watchdog(p: &Project) -> (Killed, UnixDatagram) {
    let socket_path = p.root().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let child = Killed(
        Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
            .current_dir(p.root())
            .args(["run", "--config"])
            .arg(p.config())
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "600000000")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (child, socket)
}

/// Asserts that none of `heard` was the loop's own watchdog ping (which would make the
/// keep-alive heard in a test prove nothing), then stops the daemon and asserts it exits 0.
fn stops_cleanly_without_the_loops_own_ping(mut child: Killed, heard: &[String]) {
    assert!(
        !heard.iter().any(|m| m == "WATCHDOG=1"),
        "the loop's own ping fell inside the test: {heard:?}"
    );
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    assert!(child.0.wait().unwrap().success());
}

/// The messages on `socket` up to the first that starts with `last`, that one included.
fn hear_until(socket: &UnixDatagram, last: &str) -> Vec<String> {
    let mut buf = [0u8; 512];
    let mut heard = Vec::new();
    loop {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {last}: {e}; heard {heard:?}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = msg.starts_with(last);
        heard.push(msg);
        if done {
            return heard;
        }
    }
}

/// Files dropped while the daemon runs are taken on the loop's thread, all that arrived
/// together in one go: 10,000 with 100,000 posts of history went 10.4 s without a
/// watchdog ping (BENCHMARKS.md, round 9), so with `WatchdogSec=60s` a copy of some
/// 60,000 files would have had the daemon killed in the middle. Taking files in now tells
/// systemd it advances.
#[test]
fn a_burst_of_files_dropped_while_running_is_not_killed_by_the_watchdog() {
    let p = Project::new(
        "[defaults]\ntimezone = \"UTC\"\n\n[channels.news]\nplatform = \"outbox\"\nslots = [\"10:00\"]\n",
    );
    // The channel's folder is there before: a folder that appears is a rescan, which says
    // it advances anyway.
    std::fs::create_dir_all(p.root().join("queue/news")).unwrap();
    let staged = p.root().join("late.md");
    std::fs::write(&staged, "A post dropped in while the daemon runs.\n").unwrap();
    let (child, socket) = run_with_a_long_watchdog(&p);
    hear_until(&socket, "READY=1");
    std::fs::rename(&staged, p.root().join("queue/news/late.md")).unwrap();
    let taking = hear_until(&socket, STILL_WORKING);
    stops_cleanly_without_the_loops_own_ping(child, &taking);
}

/// The same for files found at start-up that had not settled yet (a queue copied in just
/// before `systemctl start`): all their settle times fall due together, and they were
/// taken with no watchdog ping meanwhile. A time of modification in the future keeps the
/// file unsettled at start-up however long the start takes.
#[test]
fn files_that_settle_together_after_the_start_are_not_killed_by_the_watchdog() {
    let p = Project::new(
        "[defaults]\ntimezone = \"UTC\"\n\n[channels.news]\nplatform = \"outbox\"\nslots = [\"10:00\"]\n",
    );
    let path = p.post("news/copied.md", "Copied in just before the start.\n");
    crate::support::modified_a_day_ahead(&path);
    let (child, socket) = run_with_a_long_watchdog(&p);
    hear_until(&socket, "READY=1");
    let settled = hear_until(&socket, STILL_WORKING);
    stops_cleanly_without_the_loops_own_ping(child, &settled);
}
