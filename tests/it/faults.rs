//! Hostile inputs and faults, one regression test each, named after the bug it pins: far
//! dates, unreadable folders, files where folders belong, invisible texts, broken pipes, a
//! second daemon, a database that fails or vanishes under the daemon.

use std::sync::Arc;
use std::time::Duration;

use cadenced::daemon::{self, Control, Options};
use predicates::prelude::*;
use tokio::sync::mpsc;

use crate::support::{Project, TestClock};

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
