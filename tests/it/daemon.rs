//! The daemon in-process against a real queue folder, a real SQLite log and the outbox, with
//! a clock that follows tokio's paused time: slots, caps across restarts, catch-up after
//! downtime, appointments, expiry, edits and withdrawals, reloads and bad input.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cadenced::daemon::{self, Control, Options};
use jiff::SignedDuration;
use tokio::sync::mpsc;

use crate::support::{Project, TestClock};

struct Running {
    control: mpsc::UnboundedSender<Control>,
    handle: tokio::task::JoinHandle<anyhow::Result<usize>>,
}

fn start(p: &Project, clock: &Arc<TestClock>) -> Running {
    let (control, rx) = mpsc::unbounded_channel();
    let options = Options {
        settle: Duration::ZERO,
        max_sleep: Duration::from_secs(600),
        backoff: Duration::from_secs(60),
        ..Options::default()
    };
    let config = p.config();
    let clock: Arc<dyn cadenced::clock::Clock> = clock.clone();
    let handle = tokio::spawn(async move { daemon::run(&config, clock, options, Some(rx)).await });
    Running { control, handle }
}

impl Running {
    /// Stops the daemon; returns how many posts it published.
    async fn stop(self) -> usize {
        self.control.send(Control::Stop).unwrap();
        self.handle.await.unwrap().unwrap()
    }
}

async fn pass(minutes: i64) {
    tokio::time::sleep(Duration::from_secs(60 * minutes as u64)).await;
}

/// `(status, file, detail)` of every row of the publish log.
fn log(p: &Project) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT status, file, detail FROM publish_log")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn statuses(p: &Project, file: &str) -> Vec<String> {
    log(p)
        .into_iter()
        .filter(|(_, f, _)| f == file)
        .map(|(s, _, _)| s)
        .collect()
}

/// Outbox files of a channel, sorted (their names start with the UTC time of publishing).
fn outbox(p: &Project, channel: &str) -> Vec<String> {
    let dir = p.root().join("outbox").join(channel);
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn exists(p: &Project, rel: &str) -> bool {
    Path::new(&p.root().join("queue").join(rel)).exists()
}

const NEWS: &str = r#"
[defaults]
timezone = "Europe/Madrid"

[channels.news]
platform = "outbox"
slots = ["10:00", "12:00", "14:00"]
max_per_day = 2
min_gap = "1h"
"#;

fn three_posts(p: &Project) {
    p.post(
        "news/001-trail.md",
        "New trail runners arrived today, in six colours.\n",
    );
    p.post(
        "news/002-suede.md",
        "How to keep suede dry through a rainy winter week.\n",
    );
    p.post(
        "news/003-workshop.md",
        "Our free repair workshop is back on 12 December.\n",
    );
}

#[tokio::test(start_paused = true)]
async fn slots_publish_in_order_and_a_restart_cannot_exceed_the_cap() {
    let p = Project::new(NEWS);
    three_posts(&p);
    let clock = TestClock::at("2026-11-23T08:30:00Z"); // 09:30 in Madrid

    let d = start(&p, &clock);
    pass(3 * 60).await; // to 12:30
    assert_eq!(d.stop().await, 2);
    assert_eq!(
        outbox(&p, "news"),
        [
            "20261123T090000Z-001-trail.json",
            "20261123T110000Z-002-suede.json"
        ]
    );
    assert!(exists(&p, "news/published/001-trail.md") && exists(&p, "news/published/002-suede.md"));
    assert_eq!(
        statuses(&p, "news/001-trail.md"),
        ["accepted", "sending", "published"]
    );

    // A restart before the 14:00 slot: the log, not memory, says the cap is used up.
    let d = start(&p, &clock);
    pass(2 * 60).await; // to 14:30
    assert_eq!(d.stop().await, 0);
    assert!(exists(&p, "news/003-workshop.md"));
    assert!(
        log(&p).iter().any(|(s, f, d)| s == "deferred"
            && f == "news/003-workshop.md"
            && d.contains("daily cap of 2")),
        "{:#?}",
        log(&p)
    );

    // The next local day it goes at the first slot.
    let d = start(&p, &clock);
    pass(20 * 60).await; // to 10:30 the next day
    assert_eq!(d.stop().await, 1);
    assert_eq!(
        outbox(&p, "news").last().unwrap(),
        "20261124T090000Z-003-workshop.json"
    );
}

#[tokio::test(start_paused = true)]
async fn after_downtime_one_missed_slot_is_caught_up_once_and_a_first_start_catches_up_nothing() {
    let p = Project::new(&NEWS.replace("max_per_day = 2", "max_per_day = 3"));
    three_posts(&p);
    // First start at 10:30: the 10:00 slot passed before cadenced ever ran.
    let clock = TestClock::at("2026-11-23T09:30:00Z");
    let d = start(&p, &clock);
    pass(15).await;
    assert_eq!(d.stop().await, 0, "a first start catches up nothing");

    // Down from 10:45 to 14:20: 12:00 and 14:00 missed; the latest is 20 minutes old.
    clock.skip(SignedDuration::from_mins(3 * 60 + 35));
    let d = start(&p, &clock);
    pass(30).await; // to 14:50
    assert_eq!(d.stop().await, 1, "one post for all the missed slots");
    assert_eq!(outbox(&p, "news"), ["20261123T132000Z-001-trail.json"]);

    // Down again until 15:20 the next day: its latest slot (14:00) is more than catch_up
    // (1h) old, so nothing is caught up.
    clock.skip(SignedDuration::from_mins(24 * 60 + 30));
    let d = start(&p, &clock);
    pass(5).await;
    assert_eq!(d.stop().await, 0);
}

#[tokio::test(start_paused = true)]
async fn appointments_expiry_edits_and_withdrawals_are_logged() {
    let p = Project::new(NEWS);
    p.post(
        "news/appt.md",
        "+++\nat = \"2026-11-23T11:15\"\n+++\nDoors open at 11:15 for the sneaker swap.\n",
    );
    p.post(
        "news/flash.md",
        "+++\nexpires = \"2026-11-23T09:50\"\n+++\nFlash sale until 09:50 only!\n",
    );
    let gone = p.post("news/gone.md", "A post the shop changes its mind about.\n");
    let edited = p.post(
        "news/edited.md",
        "First draft of the winter opening hours.\n",
    );
    let clock = TestClock::at("2026-11-23T08:30:00Z"); // 09:30

    let d = start(&p, &clock);
    pass(1).await;
    std::fs::remove_file(&gone).unwrap();
    std::fs::write(
        &edited,
        "Winter opening hours: 10:00 to 19:00, Monday to Saturday.\n",
    )
    .unwrap();
    pass(24).await; // 09:55, past 09:50: the flash sale expired
    assert!(
        exists(&p, "news/expired/flash.md"),
        "expired posts move to expired/, never deleted"
    );
    assert_eq!(statuses(&p, "news/flash.md"), ["accepted", "expired"]);
    assert_eq!(statuses(&p, "news/gone.md"), ["accepted", "withdrawn"]);
    assert_eq!(
        statuses(&p, "news/edited.md"),
        ["accepted", "accepted"],
        "each version is logged once"
    );

    pass(2 * 60 + 6).await; // to 12:01
    assert_eq!(d.stop().await, 2);
    // 10:00 took the edited post; the appointment went at its own time, 11:15.
    assert_eq!(
        outbox(&p, "news"),
        ["20261123T090000Z-edited.json", "20261123T101500Z-appt.json"]
    );
    let sent =
        std::fs::read_to_string(p.root().join("outbox/news/20261123T090000Z-edited.json")).unwrap();
    assert!(
        sent.contains("10:00 to 19:00"),
        "the version sent is the edited one: {sent}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_broken_config_on_reload_is_refused_and_the_old_one_kept() {
    let p = Project::new(NEWS);
    three_posts(&p);
    let clock = TestClock::at("2026-11-23T08:30:00Z");
    let d = start(&p, &clock);
    pass(5).await;
    let good = std::fs::read_to_string(p.config()).unwrap();
    std::fs::write(
        p.config(),
        good.replace("max_per_day = 2", "max_per_day = 0"),
    )
    .unwrap();
    d.control.send(Control::Reload).unwrap();
    pass(60).await; // past 10:00
    assert_eq!(d.stop().await, 1, "still publishing with the old config");
}

#[tokio::test(start_paused = true)]
async fn bad_input_is_held_untouched_and_good_files_still_go_out() {
    let p = Project::new(NEWS);
    let q = p.root().join("queue/news");
    p.post(
        "news/001-good.md",
        "A perfectly fine post about trail shoes.\n",
    );
    p.post(
        "news/bad-toml.md",
        "+++\nat = \n+++\nBroken front matter.\n",
    );
    p.post(
        "news/bad-key.md",
        "+++\nprority = 3\n+++\nA typo in a key.\n",
    );
    p.post("news/yaml.md", "---\ntitle: x\n---\nYAML front matter.\n");
    p.post("news/empty.md", "");
    std::fs::write(q.join("binary.md"), [0u8, 159, 146, 150, 0, 1]).unwrap();
    std::fs::write(q.join("latin1.md"), b"Caf\xe9 con leche\n").unwrap();
    std::fs::write(q.join("huge.md"), "x".repeat(300 * 1024)).unwrap();
    p.post(
        "news/no-media.md",
        "+++\nmedia = [{ path = \"missing.png\", alt = \"x\" }]\n+++\nWhere is it?\n",
    );
    p.post(
        "news/escape.md",
        "+++\nmedia = [{ path = \"../../../etc/passwd\", alt = \"x\" }]\n+++\nOut!\n",
    );
    std::os::unix::fs::symlink("/etc/hostname", q.join("link-out.md")).unwrap();
    let fifo = std::ffi::CString::new(q.join("pipe.md").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::fs::create_dir_all(p.root().join("queue/unknown-channel")).unwrap();
    std::fs::write(p.root().join("queue/unknown-channel/a.md"), "hello").unwrap();

    let clock = TestClock::at("2026-11-23T08:30:00Z");
    let d = start(&p, &clock);
    pass(60).await; // past 10:00
    assert_eq!(d.stop().await, 1, "the good file went out");
    assert!(exists(&p, "news/published/001-good.md"));
    for bad in [
        "bad-toml.md",
        "bad-key.md",
        "yaml.md",
        "empty.md",
        "binary.md",
        "latin1.md",
        "huge.md",
        "no-media.md",
        "escape.md",
        "link-out.md",
        "pipe.md",
    ] {
        let path = q.join(bad);
        assert!(
            std::fs::symlink_metadata(&path).is_ok(),
            "{bad} is still there"
        );
        let note = std::fs::read_to_string(q.join(format!("{bad}.held")))
            .unwrap_or_else(|e| panic!("{bad}.held: {e}"));
        assert!(note.contains(bad), "the note names the file: {note}");
        assert_eq!(statuses(&p, &format!("news/{bad}")), ["held"], "{bad}");
    }
    assert!(p.root().join("queue/unknown-channel/a.md").exists());
}

/// A post whose retries cross midnight counts on the local day it actually went out: the
/// next post that day waits for the cap. Real time here (a real program runs), compressed
/// to seconds: the clock starts at 23:59:57 in Madrid.
#[tokio::test]
async fn retries_that_cross_midnight_count_on_the_day_the_post_went_out() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("post.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat '{d}/count' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{d}/count'\ncat > /dev/null\n[ $n -le 2 ] && exit 75\necho '{{\"id\":\"42\",\"url\":\"https://example.test/42\"}}'\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let p = Project::new(&format!(
        r#"
[defaults]
timezone = "Europe/Madrid"

[channels.hook]
platform = "exec"
command = ["/bin/sh", "{}"]
timeout = "10s"
slots = ["59 59 23 * * *", "5 0 0 * * *"]
max_per_day = 1
min_gap = "0s"
"#,
        script.display()
    ));
    p.post(
        "hook/a-late.md",
        "The last post of Sunday, sent a second before midnight.\n",
    );
    p.post(
        "hook/b-next.md",
        "A Monday post that must wait for Monday's cap.\n",
    );
    let clock = TestClock::at("2026-11-22T22:59:57Z"); // 23:59:57 on Sunday in Madrid
    let (control, rx) = mpsc::unbounded_channel();
    let options = Options {
        settle: Duration::ZERO,
        max_sleep: Duration::from_secs(1),
        backoff: Duration::from_millis(900),
        ..Options::default()
    };
    let config = p.config();
    let dyn_clock: Arc<dyn cadenced::clock::Clock> = clock.clone();
    let handle =
        tokio::spawn(async move { daemon::run(&config, dyn_clock, options, Some(rx)).await });
    tokio::time::sleep(Duration::from_secs(12)).await; // to 00:00:09 on Monday
    control.send(Control::Stop).unwrap();
    assert_eq!(handle.await.unwrap().unwrap(), 1);

    assert_eq!(
        std::fs::read_to_string(dir.path().join("count"))
            .unwrap()
            .trim(),
        "3"
    );
    assert_eq!(
        statuses(&p, "hook/a-late.md"),
        ["accepted", "sending", "sending", "sending", "published"],
        "two transient failures, then published after midnight"
    );
    assert!(
        exists(&p, "hook/b-next.md"),
        "Monday's cap was used by the post that went out on Monday"
    );
    assert!(
        log(&p)
            .iter()
            .any(|(s, f, d)| s == "deferred" && f == "hook/b-next.md" && d.contains("2026-11-23")),
        "{:#?}",
        log(&p)
    );
}

#[tokio::test(start_paused = true)]
async fn a_channel_whose_credential_cannot_be_read_is_disabled_and_the_others_keep_running() {
    let p = Project::new(&format!(
        "{NEWS}\n[channels.masto]\nplatform = \"mastodon\"\ninstance = \"http://127.0.0.1:9\"\ntoken = {{ env = \"CADENCED_TEST_TOKEN_THAT_IS_NOT_SET\" }}\nslots = [\"10:00\"]\n"
    ));
    p.post(
        "news/001.md",
        "Trail runners in six colours, in store today.\n",
    );
    p.post("masto/001.md", "A toot that has no token to go out with.\n");
    let clock = TestClock::at("2026-11-23T08:30:00Z");
    let d = start(&p, &clock);
    pass(60).await; // past 10:00
    assert_eq!(d.stop().await, 1, "the healthy channel published");
    assert!(exists(&p, "news/published/001.md"));
    assert!(
        exists(&p, "masto/001.md"),
        "the disabled channel's post waits in the queue"
    );
    assert!(!statuses(&p, "masto/001.md").iter().any(|s| s == "sending"));
}

/// Starts the daemon with `options` (the harness above fixes most of them).
fn start_with(p: &Project, clock: &Arc<TestClock>, options: Options) -> Running {
    let (control, rx) = mpsc::unbounded_channel();
    let config = p.config();
    let clock: Arc<dyn cadenced::clock::Clock> = clock.clone();
    let handle = tokio::spawn(async move { daemon::run(&config, clock, options, Some(rx)).await });
    Running { control, handle }
}

/// Waits (real time) until the log has `status` for `file`; how long it took.
async fn until_logged(p: &Project, file: &str, status: &str, limit: Duration) -> Duration {
    let started = std::time::Instant::now();
    let db = p.root().join("state/cadenced.sqlite");
    loop {
        if db.exists() && statuses(p, file).iter().any(|s| s == status) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "no `{status}` for {file} within {limit:?}: {:#?}",
            log(p)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A slot that never falls due while a test runs: 29 February.
const QUIET: &str = r#"
[defaults]
timezone = "Europe/Madrid"

[channels.news]
platform = "outbox"
slots = ["0 0 29 2 *"]
"#;

/// The daemon on `p` with a settle time of 300 ms (real time: file times are real).
fn start_settling_in_300ms(p: &Project) -> Running {
    let clock = TestClock::at("2026-11-23T08:30:00Z");
    start_with(
        p,
        &clock,
        Options {
            settle: Duration::from_millis(300),
            ..Options::default()
        },
    )
}

/// Before, a file younger than the settle time when the daemon started waited for an
/// unrelated wake (with a slot a day away, a day). Real time here: file times are real.
#[tokio::test]
async fn a_file_written_just_before_the_start_is_accepted_after_its_settle_time() {
    let p = Project::new(QUIET);
    p.post(
        "news/fresh.md",
        "Written a moment before the daemon started.\n",
    );
    let d = start_settling_in_300ms(&p);
    let took = until_logged(&p, "news/fresh.md", "accepted", Duration::from_secs(10)).await;
    assert!(
        took >= Duration::from_millis(100),
        "taken before it settled: {took:?}"
    );
    assert_eq!(d.stop().await, 0);
}

/// Before, a file whose time of modification lay in the future (copied from a camera or a
/// machine with a wrong clock, or unpacked from an archive) was never old enough to have
/// settled: never taken, and looked at again every settle time, forever. Now a file that
/// did not change for the settle time is complete whatever its time says.
#[tokio::test]
async fn a_file_modified_in_the_future_is_accepted_after_its_settle_time() {
    let p = Project::new(QUIET);
    let path = p.post(
        "news/future.md",
        "Copied from a camera whose clock is a day ahead.\n",
    );
    crate::support::modified_a_day_ahead(&path);
    let d = start_settling_in_300ms(&p);
    until_logged(&p, "news/future.md", "accepted", Duration::from_secs(10)).await;
    assert_eq!(d.stop().await, 0);
}

/// Before, a file renamed into a new channel's folder just before the reload that adds the
/// channel waited for an unrelated wake (up to 300 s). Real time here: file times are real.
#[tokio::test]
async fn a_file_renamed_into_a_new_channels_folder_before_the_reload_is_taken_at_the_reload() {
    let p = Project::new(QUIET);
    // The folder exists (an unknown channel, reported) and is watched from the start.
    std::fs::create_dir_all(p.root().join("queue/promo")).unwrap();
    let clock = TestClock::at("2026-11-23T08:30:00Z");
    let d = start_with(
        &p,
        &clock,
        Options {
            settle: Duration::from_secs(1),
            max_sleep: Duration::from_secs(600),
            ..Options::default()
        },
    );
    let staged = p.root().join("promo-a.md");
    std::fs::write(
        &staged,
        "A promotion for the new channel, written and renamed in.\n",
    )
    .unwrap();
    std::fs::rename(&staged, p.root().join("queue/promo/a.md")).unwrap();
    let config = std::fs::read_to_string(p.config()).unwrap();
    std::fs::write(
        p.config(),
        format!("{config}\n[channels.promo]\nplatform = \"outbox\"\nslots = [\"0 0 29 2 *\"]\n"),
    )
    .unwrap();
    d.control.send(Control::Reload).unwrap();
    until_logged(&p, "promo/a.md", "accepted", Duration::from_secs(5)).await;
    assert_eq!(d.stop().await, 0);
}

/// Before, the daemon woke every 5 minutes (12 times an hour) to notice a clock step; now a
/// timerfd says when the clock is set, and nothing due means no wake at all.
#[tokio::test(start_paused = true)]
async fn nothing_due_means_no_wake_up_for_hours() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let p = Project::new(QUIET);
    for i in 0..50 {
        p.post(
            &format!("news/{i:02}.md"),
            &format!(
                "Queued post {i}: {}\n",
                (0..8)
                    .map(|k| format!("w{}", i * 31 + k * 977))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
    }
    let wakes = Arc::new(AtomicU64::new(0));
    let clock = TestClock::at("2026-11-23T08:30:00Z");
    let d = start_with(
        &p,
        &clock,
        Options {
            settle: Duration::ZERO,
            wakes: Some(wakes.clone()),
            ..Options::default()
        },
    );
    pass(1).await;
    assert_eq!(statuses(&p, "news/00.md"), ["accepted"]);
    let before = wakes.load(Ordering::Relaxed);
    pass(5 * 60).await;
    assert_eq!(
        wakes.load(Ordering::Relaxed),
        before,
        "five idle hours, no wake-up"
    );
    pass(60 + 1).await;
    assert_eq!(
        wakes.load(Ordering::Relaxed),
        before + 1,
        "the safety-net listing after six hours, once"
    );
    assert_eq!(d.stop().await, 0);
}
