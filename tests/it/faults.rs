//! Hostile inputs and faults, one regression test each, named after the bug it pins: far
//! dates, unreadable folders, files where folders belong, invisible texts, broken pipes, a
//! second daemon, a database that fails or vanishes under the daemon.

use std::sync::Arc;
use std::time::Duration;

use cadenced::daemon::{self, Control, Options};
use predicates::prelude::*;
use tokio::sync::mpsc;

use crate::support::{Killed, Project, TestClock, distinct_text};

struct Running {
    control: mpsc::UnboundedSender<Control>,
    handle: tokio::task::JoinHandle<anyhow::Result<usize>>,
}

/// The daemon in-process on `p`'s config, on tokio's paused clock.
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
    async fn stop(self) -> anyhow::Result<usize> {
        let _ = self.control.send(Control::Stop);
        self.handle.await.expect("the daemon task did not panic")
    }
}

async fn pass(minutes: u64) {
    tokio::time::sleep(Duration::from_secs(60 * minutes)).await;
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

fn exists(p: &Project, rel: &str) -> bool {
    p.root().join("queue").join(rel).exists()
}

const OUTBOX: &str = r#"
[defaults]
timezone = "Europe/Madrid"
slots = ["10:00", "17:30"]

[channels.news]
platform = "outbox"
"#;

#[test]
fn at_in_year_9999_is_an_error_not_a_panic() {
    let p = Project::new(OUTBOX);
    p.post(
        "news/far.md",
        "+++\nat = \"9999-12-31T23:59\"\n+++\nSee you then.\n",
    );
    p.post("news/fine.md", "A post that is fine.\n");
    p.cmd(&["check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("queue/news/far.md:2"))
        .stdout(predicate::str::contains("`at` is out of range"))
        .stdout(predicate::str::contains("1 invalid"));
    p.cmd(&["plan", "--from", "2026-11-23T00:00:00+01:00", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"file\":\"news/fine.md\""));

    // The same overflow through the command line: an error, not a panic.
    for (args, says) in [
        (&["plan", "--from", "9999-12-31"][..], "9999"),
        (&["plan", "--from", "9999-12-30T22:00:00Z"][..], "9999"),
        (&["plan", "--from=-009999-01-01"][..], "-9999"),
        (&["log", "--since", "9999-12-31"][..], "9999"),
    ] {
        p.cmd(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[tokio::test(start_paused = true)]
async fn at_in_year_9999_does_not_stop_the_daemon() {
    let p = Project::new(OUTBOX);
    p.post(
        "news/far.md",
        "+++\nat = \"9999-12-31T23:59\"\n+++\nSee you then.\n",
    );
    p.post("news/fine.md", "A post that is fine.\n");
    let clock = TestClock::at("2026-11-23T08:30:00Z"); // 09:30 in Madrid
    let d = start(&p, &clock);
    pass(60).await; // past the 10:00 slot
    assert_eq!(d.stop().await.unwrap(), 1);
    assert!(exists(&p, "news/published/fine.md"));
    assert!(exists(&p, "news/far.md"), "the bad file stays where it is");
    let far: Vec<_> = log(&p)
        .into_iter()
        .filter(|(_, file, _)| file == "news/far.md")
        .collect();
    assert!(
        far.len() == 1 && far[0].0 == "held" && far[0].2.contains("`at` is out of range"),
        "{far:#?}"
    );
}

#[test]
fn min_gap_of_999999999d_is_a_config_error_not_a_panic() {
    let p = Project::new(&format!("{OUTBOX}min_gap = \"999999999d\"\n"));
    p.post("news/fine.md", "A post that is fine.\n");
    for cmd in ["check", "plan"] {
        p.cmd(&[cmd])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("cadenced.toml:11"))
            .stderr(predicate::str::contains("too long"));
    }
}

/// `cadenced <args>` on `p`'s config, with the permission checks an unprivileged daemon
/// meets: as root (tests run as root here and in CI) without the capabilities that bypass
/// file modes, through `setpriv`. `None` when that cannot be arranged (root without
/// `setpriv`), so a test that needs it says so and checks nothing.
fn unprivileged(p: &Project, args: &[&str]) -> Option<std::process::Command> {
    let bin = assert_cmd::cargo::cargo_bin("cadenced");
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let mut cmd = std::process::Command::new(setpriv);
        cmd.arg("--bounding-set=-dac_override,-dac_read_search")
            .arg(bin);
        cmd
    } else {
        std::process::Command::new(bin)
    };
    cmd.current_dir(p.root())
        .env_remove("CADENCED_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env("NO_COLOR", "1")
        .arg("--config")
        .arg(p.config())
        .args(args);
    Some(cmd)
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Polls for a condition on the file system (what the daemon does is only visible there),
/// up to 20 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn accepted(p: &Project, file: &str) -> bool {
    let db = p.root().join("state/cadenced.sqlite");
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return false;
    };
    conn.query_row(
        "SELECT count(*) FROM publish_log WHERE file = ?1 AND status = 'accepted'",
        [file],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

#[test]
fn an_unreadable_folder_in_the_queue_is_a_diagnostic_not_fatal() {
    // No slot for a year: the daemon wakes only for queue events (and its 5-minute cap), so
    // each `accepted` below comes from the watcher.
    let p = Project::new(
        r#"
[defaults]
timezone = "UTC"
slots = ["0 0 1 1 *"]

[channels.news]
platform = "outbox"

[channels.staff]
platform = "outbox"
"#,
    );
    let private = p.root().join("queue/_media/private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(private.join("draft.png"), "x").unwrap();
    for (rel, text) in [
        ("news/a.md", "A post in a folder the daemon can read.\n"),
        (
            "staff/b.md",
            "A post in a folder the daemon cannot read yet.\n",
        ),
    ] {
        // Settled long ago: taken at start-up, not after a settle time.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(p.post(rel, text))
            .unwrap();
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000))
            .unwrap();
    }
    chmod(&private, 0o000);
    chmod(&p.root().join("queue/staff"), 0o000);
    let stderr_path = p.root().join("stderr.log");
    let Some(mut cmd) = unprivileged(&p, &["run"]) else {
        eprintln!("skipped: running as root without setpriv, EACCES cannot be provoked");
        return;
    };
    let mut child = Killed(
        cmd.stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    // It runs, takes the folder it can read, and a file renamed in later.
    wait_for("news/a.md accepted", || {
        accepted(&p, "news/a.md") || child.try_wait().unwrap().is_some()
    });
    assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
    let later = p.root().join("later.md");
    std::fs::write(&later, "Renamed in while the daemon runs.\n").unwrap();
    std::fs::rename(&later, p.root().join("queue/news/later.md")).unwrap();
    wait_for("news/later.md accepted", || accepted(&p, "news/later.md"));
    // Once readable (and only a chmod says so), the other folder is watched and read too.
    chmod(&p.root().join("queue/staff"), 0o755);
    wait_for("staff/b.md accepted", || accepted(&p, "staff/b.md"));
    let c = p.root().join("c.md");
    std::fs::write(&c, "Renamed into the folder that is watched now.\n").unwrap();
    std::fs::rename(&c, p.root().join("queue/staff/c.md")).unwrap();
    wait_for("staff/c.md accepted", || accepted(&p, "staff/c.md"));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "SIGTERM exits 0");
    chmod(&private, 0o755);

    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let unreadable: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot read the channel folder"))
        .collect();
    assert!(
        unreadable.len() == 1 && unreadable[0].contains("queue/staff"),
        "the unreadable channel folder is reported once: {stderr}"
    );
    assert!(!stderr.contains("_media/private"), "{stderr}");
}

#[tokio::test]
async fn folders_watched_one_level_deep_still_see_new_and_returning_channel_folders() {
    use cadenced::queue::watch::{QueueEvent, QueueWatcher};
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    std::fs::create_dir_all(queue.join("shop")).unwrap();
    let (_w, mut rx) = QueueWatcher::start_with_settle(&queue, Duration::from_millis(50)).unwrap();
    let next = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<QueueEvent>| {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event within 5 s")
            .expect("the watcher runs")
    };
    // What comes after the rescans: a move is two inotify events, which a loaded machine
    // may hand over apart, so one change can bring two rescans (harmless: a rescan is
    // idempotent). The point is the file's own event after them.
    let after_rescans = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<QueueEvent>| loop {
        match next(rx).await {
            QueueEvent::Rescan => continue,
            other => break other,
        }
    };
    let rename_in = |rel: &str| {
        let from = dir.path().join("staged.md");
        std::fs::write(&from, "x").unwrap();
        std::fs::rename(&from, queue.join(rel)).unwrap();
        queue.join(rel)
    };
    // A channel folder created after the start: a rescan, then events for its files.
    std::fs::create_dir(queue.join("news")).unwrap();
    assert_eq!(next(&mut rx).await, QueueEvent::Rescan);
    let a = rename_in("news/a.md");
    assert_eq!(after_rescans(&mut rx).await, QueueEvent::Ready(a));
    // Moved away and back: watched again under its name.
    std::fs::rename(queue.join("news"), dir.path().join("news")).unwrap();
    assert_eq!(next(&mut rx).await, QueueEvent::Rescan);
    std::fs::rename(dir.path().join("news"), queue.join("news")).unwrap();
    assert_eq!(next(&mut rx).await, QueueEvent::Rescan);
    let b = rename_in("news/b.md");
    assert_eq!(after_rescans(&mut rx).await, QueueEvent::Ready(b));
    // Sub-folders of channel folders are not watched at all.
    std::fs::create_dir(queue.join("shop/published")).unwrap();
    rename_in("shop/published/c.md");
    let d = rename_in("shop/d.md");
    assert_eq!(after_rescans(&mut rx).await, QueueEvent::Ready(d));
}

/// The `post.text` of each file the daemon wrote to a channel's outbox.
fn outbox_texts(p: &Project, channel: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(p.root().join("outbox").join(channel)) else {
        return Vec::new();
    };
    dir.map(|e| {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        doc["post"]["text"].as_str().unwrap_or_default().to_string()
    })
    .collect()
}

#[tokio::test(start_paused = true)]
async fn invisible_texts_are_held_and_bare_cr_files_publish_their_text() {
    let p = Project::new(OUTBOX);
    p.post("news/a-zwj.txt", "\u{200D}\u{200D}\u{200D}\n");
    p.post(
        "news/b-bidi.txt",
        "+++\npriority = 1\n+++\n\u{202E}\u{2066}\u{2069}\n",
    );
    p.post(
        "news/c-mac.txt",
        "+++\rpriority = 2\r+++\rHello from a classic Mac editor.\rSecond line.\r",
    );
    let clock = TestClock::at("2026-11-23T08:30:00Z"); // 09:30 in Madrid
    let d = start(&p, &clock);
    pass(60).await; // past the 10:00 slot
    assert_eq!(d.stop().await.unwrap(), 1);
    assert_eq!(
        outbox_texts(&p, "news"),
        ["Hello from a classic Mac editor.\nSecond line."]
    );
    assert!(exists(&p, "news/a-zwj.txt") && exists(&p, "news/b-bidi.txt"));
    for file in ["news/a-zwj.txt", "news/b-bidi.txt"] {
        assert!(
            log(&p).iter().any(|(status, f, detail)| f == file
                && status == "held"
                && detail.contains("only invisible characters")),
            "{file}: {:#?}",
            log(&p)
        );
    }
}

#[test]
fn a_reader_that_goes_away_ends_a_command_quietly_with_exit_0() {
    use std::process::Stdio;
    let p = Project::new(OUTBOX);
    p.post(
        "news/001-post.md",
        "A post that goes out at the next slot.\n",
    );
    p.post(
        "news/002-typo.md",
        "+++\nprority = 1\n+++\nA typo in the front matter.\n",
    );
    std::fs::create_dir_all(p.root().join("state")).unwrap();
    let store = cadenced::store::Store::open(&p.root().join("state/cadenced.sqlite")).unwrap();
    store
        .log_event(&cadenced::store::NewEvent {
            time: "2026-11-20T09:00:00Z".parse().unwrap(),
            channel: "news",
            platform: cadenced::platforms::Platform::parse("outbox").unwrap(),
            file: "news/000-old.md",
            hash: None,
            status: "accepted",
            detail: "",
            attempt: None,
        })
        .unwrap();
    drop(store);
    for args in [
        &["plan"][..],
        &["plan", "--json"],
        &["check"],
        &["check", "--json"],
        &["status"],
        &["status", "--json"],
        &["report"],
        &["log"],
        &["log", "--json"],
        &["log", "--follow"],
        &["completions", "bash"],
    ] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
            .current_dir(p.root())
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .arg("--config")
            .arg(p.config())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the first write (`| head -c 0`): every write fails.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_second_daemon_on_the_same_log_is_refused_naming_the_first() {
    let p = Project::new(OUTBOX);
    p.post("news/a.md", "A post for the 10:00 slot.\n");
    let clock = TestClock::at("2026-11-23T08:30:00Z"); // 09:30 in Madrid
    let first = start(&p, &clock);
    pass(1).await;
    let second = start(&p, &clock);
    let err = second
        .handle
        .await
        .unwrap()
        .expect_err("a second daemon on the same database must not run");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!(
            "another cadenced (process {}) is already running on the publish log",
            std::process::id()
        )) && msg.contains("state/cadenced.sqlite"),
        "{msg}"
    );
    pass(60).await;
    assert_eq!(
        first.stop().await.unwrap(),
        1,
        "the first one kept publishing"
    );
    // Once the first one is gone, the next one starts.
    let third = start(&p, &clock);
    pass(1).await;
    assert_eq!(third.stop().await.unwrap(), 0);
}

/// The rows of the publish log with `status`, as `(file, detail)`.
fn rows_with(p: &Project, status: &str) -> Vec<(String, String)> {
    log(p)
        .into_iter()
        .filter(|(s, _, _)| s == status)
        .map(|(_, f, d)| (f, d))
        .collect()
}

/// Every `.held` note under the queue, relative to it.
fn held_notes(p: &Project) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|x| x == "held") {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    let root = p.root().join("queue");
    walk(&root, &root, &mut out);
    out.sort();
    out
}

#[test]
fn a_publish_racing_the_next_evaluation_moves_once_and_is_never_its_own_duplicate() {
    // Many channels with a slot every second on the real (multi-threaded) binary: each
    // publish task records its outcome and moves its file while the main loop evaluates
    // the queue. That interleaving made `cadenced demo` log "could not move to
    // published/", hold the post as a near-duplicate of itself and then call it withdrawn.
    const CHANNELS: usize = 12;
    const POSTS: usize = 4;
    let mut config = String::from(
        "[defaults]\ntimezone = \"UTC\"\nslots = [\"* * * * * *\"]\nmax_per_day = 100\nmin_gap = \"0s\"\n",
    );
    for c in 0..CHANNELS {
        config.push_str(&format!("\n[channels.c{c:02}]\nplatform = \"outbox\"\n"));
    }
    let p = Project::new(&config);
    for c in 0..CHANNELS {
        for i in 0..POSTS {
            let path = p.post(&format!("c{c:02}/{i}.md"), &distinct_text(c * POSTS + i));
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000))
                .unwrap();
        }
    }
    let stderr_path = p.root().join("stderr.log");
    let mut child = Killed(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
            .current_dir(p.root())
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .args(["run", "--config"])
            .arg(p.config())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let done = |p: &Project| {
        (0..CHANNELS).all(|c| (0..POSTS).all(|i| exists(p, &format!("c{c:02}/published/{i}.md"))))
    };
    wait_for("every post published and moved", || done(&p));
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    assert!(child.0.wait().unwrap().success());

    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert_eq!(rows_with(&p, "held"), vec![], "{stderr}");
    assert_eq!(rows_with(&p, "withdrawn"), vec![], "{stderr}");
    assert_eq!(rows_with(&p, "published").len(), CHANNELS * POSTS);
    assert_eq!(held_notes(&p), Vec::<String>::new());
}

/// Captures the daemon's log lines in-process (tests on tokio's current-thread runtime run
/// the daemon and its tasks on the test's own thread, where this subscriber is the default).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_file_named_published_is_reported_once_and_the_post_is_never_its_own_duplicate() {
    let logs = Captured::default();
    let _guard = logs.install();
    let p = Project::new(OUTBOX);
    p.post("news/a.md", "Our repair workshop is back on Saturday.\n");
    p.post(
        "news/published",
        "someone's notes, in the way of a folder\n",
    );
    let clock = TestClock::at("2026-11-23T08:30:00Z"); // 09:30 in Madrid
    let d = start(&p, &clock);
    pass(60).await; // the 10:00 slot: sent, but the move fails
    let first = logs.count("is a file, not a folder");
    assert!(first >= 1, "{}", logs.text());
    pass(24 * 60).await; // a day of wakes (slots, the 10-minute cap)
    assert_eq!(
        logs.count("is a file, not a folder"),
        first,
        "{}",
        logs.text()
    );
    assert!(exists(&p, "news/a.md"), "the move could not happen");
    assert_eq!(rows_with(&p, "published").len(), 1);
    assert_eq!(
        rows_with(&p, "held"),
        vec![],
        "never held as its own duplicate"
    );
    assert_eq!(rows_with(&p, "withdrawn"), vec![]);
    assert_eq!(held_notes(&p), Vec::<String>::new());
    assert_eq!(outbox_texts(&p, "news").len(), 1, "sent once");

    // The fix the message gives: move the file out; the post then moves where it belongs.
    std::fs::rename(
        p.root().join("queue/news/published"),
        p.root().join("notes.txt"),
    )
    .unwrap();
    pass(24 * 60).await;
    assert_eq!(d.stop().await.unwrap(), 1);
    assert!(exists(&p, "news/published/a.md"));
    assert_eq!(outbox_texts(&p, "news").len(), 1, "still sent once");
    assert_eq!(rows_with(&p, "held"), vec![]);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_held_file_takes_its_note_with_it_even_across_restarts() {
    let p = Project::new(OUTBOX);
    let bad = p.post(
        "news/bad.md",
        "+++\nprority = 1\n+++\nA typo in the front matter.\n",
    );
    let clock = TestClock::at("2026-11-23T08:30:00Z");
    let d = start(&p, &clock);
    pass(1).await;
    assert_eq!(held_notes(&p), ["news/bad.md.held"]);
    std::fs::remove_file(&bad).unwrap();
    pass(20).await; // the next wake (an event, or the 10-minute cap at the latest)
    assert_eq!(held_notes(&p), Vec::<String>::new());
    assert_eq!(d.stop().await.unwrap(), 0);

    // A note left by an older version (or while the daemon was stopped): gone at start-up.
    std::fs::write(
        p.root().join("queue/news/gone.md.held"),
        "gone.md is held: …\n",
    )
    .unwrap();
    std::fs::write(
        p.root().join("queue/news/kept.md.held"),
        "kept.md is held: …\n",
    )
    .unwrap();
    p.post(
        "news/kept.md",
        "+++\nprority = 1\n+++\nStill there, still held.\n",
    );
    let d = start(&p, &clock);
    pass(1).await;
    assert_eq!(d.stop().await.unwrap(), 0);
    assert_eq!(held_notes(&p), ["news/kept.md.held"]);
}

#[tokio::test(start_paused = true)]
async fn a_note_beside_a_post_that_is_not_held_goes_whoever_left_it() {
    // The daemon removes a `.held` note only where one may be: where the listing of the
    // folder showed one, where it wrote one, or beside a file the watcher reported. Each
    // of those notes must still go once its post is fine.
    let p = Project::new(OUTBOX);
    // Left by an earlier run, its post fixed while the daemon was stopped.
    p.post("news/fixed.md", "Fixed while the daemon was stopped.\n");
    std::fs::write(p.root().join("queue/news/fixed.md.held"), "held: …\n").unwrap();
    let clock = TestClock::at("2026-11-23T08:30:00Z");
    let d = start(&p, &clock);
    pass(1).await;
    assert_eq!(
        held_notes(&p),
        Vec::<String>::new(),
        "the listing saw the note"
    );

    // Written by this run, then its post fixed.
    let bad = p.post("news/bad.md", "+++\nprority = 1\n+++\nA typo.\n");
    pass(20).await;
    assert_eq!(held_notes(&p), ["news/bad.md.held"]);
    std::fs::write(&bad, "+++\npriority = 1\n+++\nA typo, fixed.\n").unwrap();
    pass(20).await;
    assert_eq!(
        held_notes(&p),
        Vec::<String>::new(),
        "the daemon wrote the note"
    );

    // Brought in with its post, which the watcher reports.
    std::fs::write(p.root().join("queue/news/moved.md.held"), "held: …\n").unwrap();
    let staged = p.root().join("moved.md");
    std::fs::write(&staged, "Moved in with an old note.\n").unwrap();
    std::fs::rename(&staged, p.root().join("queue/news/moved.md")).unwrap();
    pass(20).await;
    assert_eq!(
        held_notes(&p),
        Vec::<String>::new(),
        "the watcher reported the post"
    );
    d.stop().await.unwrap();
}

/// Makes every write of `sql_event` on `table` fail, from another connection, the way a
/// full disk or a read-only file fails the daemon's own writes: a real SQLite error in the
/// real database. `heal` takes it away again.
fn break_writes(p: &Project, table: &str) {
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    conn.execute_batch(&format!(
        "CREATE TRIGGER injected_{table} BEFORE INSERT ON {table}
         BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;"
    ))
    .unwrap();
}

fn heal_writes(p: &Project, table: &str) {
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    conn.execute_batch(&format!("DROP TRIGGER injected_{table};"))
        .unwrap();
}

/// `(status, file, time)` rows of the publish log.
fn rows_at(p: &Project) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT status, file, time FROM publish_log")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn fresh_log(p: &Project) {
    std::fs::create_dir_all(p.root().join("state")).unwrap();
    drop(cadenced::store::Store::open(&p.root().join("state/cadenced.sqlite")).unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_write_is_retried_soon_and_the_slot_that_fell_due_is_not_lost() {
    let logs = Captured::default();
    let _guard = logs.install();
    let p = Project::new(OUTBOX);
    p.post("news/a.md", "Our repair workshop is back on Saturday.\n");
    let clock = TestClock::at("2026-11-23T08:30:00Z"); // 09:30 in Madrid
    fresh_log(&p);
    let d = start(&p, &clock);
    pass(20).await;
    break_writes(&p, "attempts");
    pass(11).await; // 10:01: the 10:00 slot fell due and could not record its attempt
    assert!(
        logs.text().contains(
            "the attempt to send news/a.md was not recorded in the publish log, so it was not sent"
        ),
        "{}",
        logs.text()
    );
    assert!(outbox_texts(&p, "news").is_empty());
    heal_writes(&p, "attempts"); // the disk has room again
    pass(3).await;
    // Sent at a retry wake a minute or two after the slot, not at the 17:30 slot.
    let published: Vec<String> = rows_at(&p)
        .into_iter()
        .filter(|(s, f, _)| s == "published" && f == "news/a.md")
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(published.len(), 1, "{:#?}", rows_at(&p));
    assert!(published[0].as_str() < "2026-11-23T09:05", "{published:?}");
    assert_eq!(d.stop().await.unwrap(), 1);
}

/// Several channels due at one slot record their attempts in one transaction: when it
/// fails (here on one of them), none is sent, not even the ones written before it in the
/// transaction, and all of them go out at the retry.
#[tokio::test(start_paused = true)]
async fn attempts_failing_in_one_pass_send_nothing_and_all_go_out_at_the_retry() {
    let logs = Captured::default();
    let _guard = logs.install();
    let p = Project::new(&format!(
        "{OUTBOX}\n[channels.shop]\nplatform = \"outbox\"\n\n[channels.zine]\nplatform = \"outbox\"\n"
    ));
    p.post("news/a.md", "Our repair workshop is back on Saturday.\n");
    p.post("shop/b.md", "Linen shirts are half price until Sunday.\n");
    p.post(
        "zine/c.md",
        "The winter issue is out, with a piece on bread.\n",
    );
    let clock = TestClock::at("2026-11-23T08:30:00Z"); // 09:30 in Madrid
    fresh_log(&p);
    let d = start(&p, &clock);
    pass(20).await;
    // Only the middle channel's attempt fails, as a full disk would fail it.
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER injected_shop BEFORE INSERT ON attempts WHEN NEW.file = 'shop/b.md'
         BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;",
    )
    .unwrap();
    pass(11).await; // 10:01: the 10:00 slot fell due for all three
    for file in ["news/a.md", "shop/b.md", "zine/c.md"] {
        assert!(
            logs.text().contains(&format!(
                "the attempt to send {file} was not recorded in the publish log, so it was not sent"
            )),
            "{}",
            logs.text()
        );
    }
    for channel in ["news", "shop", "zine"] {
        assert!(outbox_texts(&p, channel).is_empty(), "{channel}");
    }
    assert!(rows_with(&p, "sending").is_empty(), "{:#?}", rows_at(&p));
    conn.execute_batch("DROP TRIGGER injected_shop;").unwrap();
    pass(3).await;
    // All three at a retry wake a minute or two after the slot, not at the 17:30 slot.
    let published: Vec<(String, String)> = rows_at(&p)
        .into_iter()
        .filter(|(s, _, _)| s == "published")
        .map(|(_, f, t)| (f, t))
        .collect();
    let mut files: Vec<&str> = published.iter().map(|(f, _)| f.as_str()).collect();
    files.sort();
    assert_eq!(
        files,
        ["news/a.md", "shop/b.md", "zine/c.md"],
        "{published:?}"
    );
    assert!(
        published
            .iter()
            .all(|(_, t)| t.as_str() < "2026-11-23T09:05"),
        "{published:?}"
    );
    for channel in ["news", "shop", "zine"] {
        assert_eq!(outbox_texts(&p, channel).len(), 1, "{channel}");
    }
    assert_eq!(d.stop().await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn accepted_is_said_only_once_its_row_is_written_and_a_failed_row_is_retried() {
    let logs = Captured::default();
    let _guard = logs.install();
    let p = Project::new(OUTBOX);
    p.post("news/a.md", "Our repair workshop is back on Saturday.\n");
    let clock = TestClock::at("2026-11-23T06:30:00Z"); // 07:30 in Madrid: no slot for hours
    fresh_log(&p);
    break_writes(&p, "events");
    let d = start(&p, &clock);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        logs.text()
            .contains("`accepted` for news/a.md was not recorded in the publish log"),
        "{}",
        logs.text()
    );
    assert_eq!(logs.count(" accepted "), 0, "{}", logs.text());
    heal_writes(&p, "events");
    // The retry wake (5 s, then 10 s...) records it: no slot or file event needed.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        rows_with(&p, "accepted"),
        [("news/a.md".to_string(), String::new())]
    );
    assert_eq!(logs.count(" accepted "), 1, "{}", logs.text());
    assert_eq!(d.stop().await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_publish_log_deleted_under_the_daemon_stops_publishing_until_it_is_back() {
    let logs = Captured::default();
    let _guard = logs.install();
    let p = Project::new(OUTBOX);
    p.post("news/a.md", "Our repair workshop is back on Saturday.\n");
    let clock = TestClock::at("2026-11-23T08:30:00Z"); // 09:30 in Madrid
    let db = p.root().join("state/cadenced.sqlite");
    let aside = p.root().join("aside.sqlite");
    let d = start(&p, &clock);
    pass(20).await;
    std::fs::rename(&db, &aside).unwrap(); // as good as deleted, for the path
    pass(20).await; // the 10:00 slot passes
    assert!(
        outbox_texts(&p, "news").is_empty(),
        "nothing published without the log"
    );
    assert_eq!(
        logs.count("was deleted while cadenced runs"),
        1,
        "{}",
        logs.text()
    );
    std::fs::rename(&aside, &db).unwrap();
    pass(5).await; // within catch_up: the missed slot is caught up
    assert_eq!(outbox_texts(&p, "news").len(), 1);
    assert!(logs.text().contains("the publish log is back"));
    assert_eq!(d.stop().await.unwrap(), 1);
    assert_eq!(
        rows_with(&p, "published").len(),
        1,
        "the outcome is in the file"
    );

    // Replaced by another file (a copy is another inode): the same, until it is back.
    let d = start(&p, &clock);
    pass(1).await;
    std::fs::copy(&db, &aside).unwrap();
    std::fs::rename(&db, p.root().join("original.sqlite")).unwrap();
    std::fs::rename(&aside, &db).unwrap();
    p.post("news/b.md", "Kids sizes are restocked in every colour.\n");
    clock.skip(jiff::SignedDuration::from_hours(8)); // past the 17:30 slot
    pass(20).await;
    assert_eq!(
        logs.count("was replaced by another file"),
        1,
        "{}",
        logs.text()
    );
    assert_eq!(outbox_texts(&p, "news").len(), 1);
    assert_eq!(d.stop().await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_restart_without_its_publish_log_refuses_a_silent_fresh_history() {
    let p = Project::new(OUTBOX);
    p.post("news/a.md", "Our repair workshop is back on Saturday.\n");
    let clock = TestClock::at("2026-11-23T08:30:00Z");
    let d = start(&p, &clock);
    pass(60).await;
    assert_eq!(d.stop().await.unwrap(), 1);
    for name in [
        "cadenced.sqlite",
        "cadenced.sqlite-wal",
        "cadenced.sqlite-shm",
    ] {
        let _ = std::fs::remove_file(p.root().join("state").join(name));
    }
    let err = start(&p, &clock).handle.await.unwrap().unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("is missing, but cadenced has run with it before")
            && msg.contains("remove")
            && msg.contains("cadenced.sqlite.lock"),
        "{msg}"
    );
    assert!(
        !p.root().join("state/cadenced.sqlite").exists(),
        "no empty log was created"
    );
    // The explicit way to start over.
    std::fs::remove_file(p.root().join("state/cadenced.sqlite.lock")).unwrap();
    let d = start(&p, &clock);
    pass(1).await;
    assert_eq!(d.stop().await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_post_whose_accepted_row_failed_is_not_sent_before_that_row_is_written() {
    // Seen in the locked-log reliability test: the `accepted` write failed, the channel was
    // evaluated before the retry, the post went out, and its `accepted` row never was.
    let logs = Captured::default();
    let _guard = logs.install();
    let p = Project::new(OUTBOX);
    p.post("news/a.md", "Our repair workshop is back on Saturday.\n");
    // 09:59:58 in Madrid: the 10:00 slot comes before the first retry (5 s).
    let clock = TestClock::at("2026-11-23T08:59:58Z");
    fresh_log(&p);
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    // Only the `accepted` row fails: the attempt's rows could be written.
    conn.execute_batch(
        "CREATE TRIGGER injected_accepted BEFORE INSERT ON events WHEN NEW.status = 'accepted'
         BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;",
    )
    .unwrap();
    let d = start(&p, &clock);
    // Past the slot, where the file is read again and its row fails again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        logs.count("`accepted` for news/a.md was not recorded in the publish log"),
        2,
        "{}",
        logs.text()
    );
    conn.execute_batch("DROP TRIGGER injected_accepted;")
        .unwrap();
    pass(8 * 60).await; // the 17:30 slot too, whichever the post takes
    let statuses: Vec<String> = log(&p)
        .into_iter()
        .filter(|(s, f, _)| f == "news/a.md" && s != "deferred")
        .map(|(s, _, _)| s)
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "sending", "published"],
        "{}",
        logs.text()
    );
    assert_eq!(d.stop().await.unwrap(), 1);
}

/// A timer that fell due while the publish log was gone (here a file's settle time; a
/// hold's end the same) could not be handled, since nothing is judged without the log, and
/// stayed due: the loop woke for it at once, again and again, at 100 % of a core until
/// the log was back. Found as a daemon left spinning after its test's folder was deleted.
#[tokio::test]
async fn a_timer_due_while_the_publish_log_is_gone_does_not_spin_the_loop() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let logs = Captured::default();
    let _guard = logs.install();
    let p = Project::new(OUTBOX);
    let db = p.root().join("state/cadenced.sqlite");
    let aside = p.root().join("aside.sqlite");
    let wakes = Arc::new(AtomicU64::new(0));
    let (control, rx) = mpsc::unbounded_channel();
    let options = Options {
        // Written just before the start: taken by a timer once it has settled.
        settle: Duration::from_secs(3),
        max_sleep: Duration::from_secs(600),
        wakes: Some(wakes.clone()),
        ..Options::default()
    };
    p.post("news/a.md", "Our repair workshop is back on Saturday.\n");
    let config = p.config();
    let clock: Arc<dyn cadenced::clock::Clock> = TestClock::at("2026-11-23T06:30:00Z");
    let d = Running {
        control,
        handle: tokio::spawn(async move { daemon::run(&config, clock, options, Some(rx)).await }),
    };
    async fn until(what: &str, ok: impl Fn() -> bool) {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        while !ok() {
            assert!(tokio::time::Instant::now() < give_up, "waited for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    until("the start", || logs.text().contains("cadenced is running")).await;
    std::fs::rename(&db, &aside).unwrap();
    until("the settle time", || {
        logs.text().contains("was deleted while cadenced runs")
    })
    .await;
    // The next wake is the retry, 5 s on: none meanwhile (the first ten thousand came
    // within milliseconds).
    let at_error = wakes.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let woken = wakes.load(Ordering::Relaxed) - at_error;
    assert!(woken <= 1, "{woken} wake-ups in a second without the log");
    std::fs::rename(&aside, &db).unwrap();
    until("the retry", || {
        logs.text().contains("the publish log is back")
    })
    .await;
    until("the file", || !rows_with(&p, "accepted").is_empty()).await;
    assert_eq!(d.stop().await.unwrap(), 0);
}
