//! The daemon's publishing against the Mastodon-like server in real time (the server runs on
//! its own thread, the daemon in-process with the real clock and slots every second):
//! regressions of issue 7 in the publish loop, each named after what it pins, and the
//! instance's refusals (422, 401) followed through to the queue and the log.

use std::sync::Arc;
use std::time::Duration;

use cadenced::clock::SystemClock;
use cadenced::daemon::{self, Control, Options};
use tokio::sync::mpsc;

use crate::fake_mastodon::{CreateFault, FakeMastodon, TOKEN};
use crate::support::Project;

struct Running {
    control: mpsc::UnboundedSender<Control>,
    handle: tokio::task::JoinHandle<anyhow::Result<usize>>,
}

fn project(server: &FakeMastodon, extra: &str) -> Project {
    // SAFETY: tests set this one variable to the same value; nothing reads it concurrently
    // in a way that could see a torn value.
    unsafe { std::env::set_var("PUBLISHING_TEST_TOKEN", TOKEN) };
    project_with_token(server, "PUBLISHING_TEST_TOKEN", extra)
}

/// The channel `shop` on `server`, its token from the environment variable `token_env`.
fn project_with_token(server: &FakeMastodon, token_env: &str, extra: &str) -> Project {
    Project::new(&format!(
        r#"
[defaults]
timezone = "UTC"

[channels.shop]
platform = "mastodon"
instance = "{}"
token = {{ env = "{token_env}" }}
slots = ["* * * * * *"]
max_per_day = 100
min_gap = "0s"
max_characters = 500
{extra}
"#,
        server.url()
    ))
}

fn start(p: &Project, options: Options) -> Running {
    let (control, rx) = mpsc::unbounded_channel();
    let config = p.config();
    let handle = tokio::spawn(async move {
        daemon::run(&config, Arc::new(SystemClock), options, Some(rx)).await
    });
    Running { control, handle }
}

impl Running {
    async fn stop(self) -> usize {
        self.control.send(Control::Stop).unwrap();
        self.handle.await.unwrap().unwrap()
    }
}

fn attempts(p: &Project) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT state, detail FROM attempts a LEFT JOIN (SELECT attempt_id, detail FROM events WHERE id IN (SELECT MAX(id) FROM events GROUP BY attempt_id)) e ON e.attempt_id = a.id ORDER BY a.id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_post_waits_in_a_429_backoff_exits_at_once() {
    let server = FakeMastodon::start_on_thread();
    server.fail_next_create(CreateFault::TooManyRequests {
        reset: None,
        date: None,
        retry_after: Some("60".into()),
    });
    let p = project(&server, "");
    p.post("shop/001.md", "Winter boots are back in every size\n");
    let running = start(&p, Options::default());
    server
        .wait_until("the first create was refused with 429", |s| {
            s.create_requests == 1
        })
        .await;
    // The publish now waits 60 s (Retry-After) to resend. A stop must not wait for that.
    let stopped = tokio::time::timeout(Duration::from_secs(20), running.stop()).await;
    assert!(
        stopped.is_ok(),
        "the daemon did not stop while a post waited to be resent"
    );
    assert_eq!(server.create_requests(), 1, "no create after the stop");
    // The attempt is recorded as not published (nothing was created): it stays queued.
    let rows = attempts(&p);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "retried", "{rows:?}");
    assert!(p.root().join("queue/shop/001.md").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tries_are_not_read_back_when_the_claim_ends() {
    // Every create answers 429: nothing was ever created, so when the slot's claim ends
    // the post is simply queued again, with no read-back and no "unknown".
    let server = FakeMastodon::start_on_thread();
    for _ in 0..50 {
        server.fail_next_create(CreateFault::TooManyRequests {
            reset: None,
            date: None,
            retry_after: None,
        });
    }
    let p = project(&server, "catch_up = \"2s\"\n");
    p.post("shop/001.md", "Repair workshop dates for December are up\n");
    let running = start(
        &p,
        Options {
            backoff: Duration::from_millis(300),
            ..Options::default()
        },
    );
    server
        .wait_until("a few refused tries", |s| s.create_requests >= 3)
        .await;
    // Wait for an attempt to end (its claim lasts until the next slot, a second away).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !attempts(&p).iter().any(|(s, _)| s != "sending") && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await; // polling the log with a deadline
    }
    running.stop().await;
    let rows = attempts(&p);
    assert!(
        rows.iter().all(|(s, _)| s == "retried" || s == "sending"),
        "{rows:?}"
    );
    assert!(rows.iter().any(|(s, _)| s == "retried"), "{rows:?}");
    let reads = server
        .requests()
        .iter()
        .filter(|r| r.path.contains("verify_credentials") || r.path.contains("/statuses?"))
        .count();
    assert_eq!(reads, 0, "a refused try was read back");
    assert!(server.statuses().is_empty());
}

fn published_files(p: &Project, channel: &str) -> usize {
    std::fs::read_dir(p.root().join("queue").join(channel).join("published"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "md")
            })
            .count()
        })
        .unwrap_or(0)
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling files with a deadline
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsure_post_is_resent_at_the_next_slot_with_the_same_key() {
    let server = FakeMastodon::start_on_thread();
    // The first create makes the status but answers 500 (unsure); the resends of that
    // attempt are refused (503) until its claim ends; the read-back cannot tell (reads
    // fail). The key is still valid, so the next slot resends with it: no second status.
    server.fail_next_create(CreateFault::ErrorAfterCreate(500));
    for _ in 0..3 {
        server.fail_next_create(CreateFault::ErrorBeforeCreate(503));
    }
    server.set_reads_fail(true);
    let p = project(&server, "");
    p.post("shop/001.md", "Our gift cards are back, wrapped for free\n");
    let running = start(
        &p,
        Options {
            backoff: Duration::from_millis(400),
            ..Options::default()
        },
    );
    until("the post is published", || published_files(&p, "shop") == 1).await;
    running.stop().await;
    assert_eq!(
        server.statuses_with_text("Our gift cards are back, wrapped for free"),
        1
    );
    let keys: std::collections::BTreeSet<Option<String>> = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/statuses")
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(keys.len(), 1, "every create carried the one key: {keys:?}");
    let rows = attempts(&p);
    assert!(rows.len() >= 2, "a later attempt did the resend: {rows:?}");
    assert!(
        rows.iter().any(|(_, d)| d.contains("same idempotency key")),
        "{rows:?}"
    );
    assert!(rows.iter().all(|(s, _)| s != "unknown"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_307_from_the_instance_is_not_followed() {
    let moved = FakeMastodon::start_on_thread();
    let server = FakeMastodon::start_on_thread();
    server.fail_next_create(CreateFault::Redirect(format!(
        "{}/api/v1/statuses",
        moved.url()
    )));
    let p = project(&server, "");
    p.post("shop/001.md", "New laces in twelve colours\n");
    let running = start(&p, Options::default());
    until("the post failed", || {
        p.root().join("queue/shop/failed/001.md").exists()
    })
    .await;
    running.stop().await;
    assert!(moved.requests().is_empty(), "the redirect was followed");
    assert!(server.statuses().is_empty());
    let note = std::fs::read_to_string(p.root().join("queue/shop/failed/001.md.error")).unwrap();
    assert!(
        note.contains(&moved.url()),
        "the note names the new location: {note}"
    );
    assert!(note.contains("HTTP 307"), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mastodon_instance_that_never_answers_does_not_hold_the_daemon() {
    // An instance that accepts connections and never answers: the look-up of its text limit
    // runs in the background, so another channel publishes meanwhile and the daemon stops
    // when asked.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream); // keep every connection open, say nothing
        }
    });
    unsafe { std::env::set_var("PUBLISHING_TEST_TOKEN", TOKEN) };
    let p = Project::new(&format!(
        r#"
[defaults]
timezone = "UTC"
slots = ["* * * * * *"]
min_gap = "0s"

[channels.shop]
platform = "mastodon"
instance = "{url}"
token = {{ env = "PUBLISHING_TEST_TOKEN" }}

[channels.news]
platform = "outbox"
"#
    ));
    p.post("shop/001.md", "Held until the instance tells its limit\n");
    p.post("news/001.md", "The newsletter goes out regardless\n");
    let running = start(&p, Options::default());
    until("the other channel published", || {
        published_files(&p, "news") == 1
    })
    .await;
    assert!(p.root().join("queue/shop/001.md").exists());
    let stopped = tokio::time::timeout(Duration::from_secs(20), running.stop()).await;
    assert!(stopped.is_ok(), "the daemon did not stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_needing_auth_stays_paused_across_restarts_and_status_says_why() {
    // The platform refused the channel's refresh token before a restart: the token store
    // says so, and the restarted daemon pauses the channel with the reason at once instead
    // of trying (and failing) with each post.
    let p = Project::new(
        r#"
[defaults]
timezone = "UTC"
slots = ["* * * * * *"]

[channels.shop-x]
platform = "x"
client_id = "app-1"
api = "http://127.0.0.1:9"

[channels.news]
platform = "outbox"
"#,
    );
    p.post(
        "shop-x/001.md",
        "Waiting for the account to be connected again\n",
    );
    p.post("news/001.md", "The newsletter goes out meanwhile\n");
    let tokens = cadenced::tokens::TokenStore::beside(&p.root().join("state/cadenced.sqlite"));
    tokens
        .update("shop-x", "2026-11-27T09:00:00Z".parse().unwrap(), |t| {
            t.needs_auth = Some("X refused the refresh token (HTTP 400: invalid_request)".into())
        })
        .unwrap();
    let running = start(&p, Options::default());
    until("the other channel published", || {
        published_files(&p, "news") == 1
    })
    .await;
    running.stop().await;
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    let reason: Option<String> = conn
        .query_row(
            "SELECT disabled_reason FROM channel_status WHERE channel = 'shop-x'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let reason = reason.expect("the channel is recorded as disabled");
    assert!(reason.contains("refused the refresh token"), "{reason}");
    assert!(reason.contains("cadenced auth shop-x"), "{reason}");
    assert!(
        p.root().join("queue/shop-x/001.md").exists(),
        "the post stays queued"
    );
    let attempts: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM attempts WHERE channel = 'shop-x'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(attempts, 0, "no attempt while the channel needs the user");
}

fn failed_note(p: &Project, name: &str) -> String {
    let path = p
        .root()
        .join("queue/shop/failed")
        .join(format!("{name}.error"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_422_fails_the_post_with_the_instances_words_and_the_next_post_still_goes_out() {
    let server = FakeMastodon::start_on_thread();
    server.fail_next_create(CreateFault::Reject422(
        "Validation failed: Text contains a forbidden word".into(),
    ));
    let p = project(&server, "");
    p.post("shop/001.md", "Our first post says the forbidden word\n");
    p.post("shop/002.md", "Resoling for walking boots takes a week\n");
    let running = start(&p, Options::default());
    until("the second post is published", || {
        published_files(&p, "shop") == 1
    })
    .await;
    running.stop().await;
    assert!(p.root().join("queue/shop/failed/001.md").exists());
    let note = failed_note(&p, "001.md");
    assert!(
        note.contains("Validation failed: Text contains a forbidden word"),
        "{note}"
    );
    assert!(note.contains("cadenced retry shop/001.md"), "{note}");
    assert_eq!(
        server.statuses_with_text("Our first post says the forbidden word"),
        0
    );
    assert_eq!(
        server.statuses_with_text("Resoling for walking boots takes a week"),
        1
    );
    assert_eq!(
        server.create_requests(),
        2,
        "one create per post: a refusal is not resent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_the_post_once_and_never_shows_the_token() {
    let server = FakeMastodon::start_on_thread();
    // SAFETY: as in `project`: one value per variable, set before the daemon reads it.
    unsafe { std::env::set_var("PUBLISHING_TEST_WRONG_TOKEN", "not-the-token-0123456789") };
    let p = project_with_token(&server, "PUBLISHING_TEST_WRONG_TOKEN", "");
    p.post("shop/001.md", "Gift wrapping is free all December\n");
    let running = start(&p, Options::default());
    until("the post has failed", || {
        p.root().join("queue/shop/failed/001.md").exists()
    })
    .await;
    running.stop().await;
    assert!(server.statuses().is_empty());
    let note = failed_note(&p, "001.md");
    assert!(note.contains("401"), "{note}");
    assert!(!note.contains("not-the-token-0123456789"), "{note}");
    let rows = attempts(&p);
    assert_eq!(rows.len(), 1, "one attempt, not resent: {rows:?}");
    assert_eq!(rows[0].0, "failed", "{rows:?}");
    assert!(
        rows.iter()
            .all(|(_, d)| !d.contains("not-the-token-0123456789")),
        "{rows:?}"
    );
}
