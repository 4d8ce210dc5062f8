//! Start-up as systemd sees it, with the real binary: `READY=1` as soon as the queue is
//! reviewed, and attempts a crash left `sending` reconciled afterwards, channel by channel,
//! while the other channels publish.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cadenced::platforms::Platform;
use cadenced::store::{NewAttempt, Store};
use sha2::Digest;

use crate::support::Project;

/// `(status, file)` rows of the publish log.
fn rows(p: &Project) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT status, file FROM publish_log")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Before, a crash during a Mastodon create followed by a start while the instance hung
/// kept the daemon from `READY=1` (and every channel from publishing) until the read-back
/// gave up: systemd's start time-out killed it first.
#[test]
fn ready_comes_before_a_hanging_reconciliation_and_the_other_channels_publish_meanwhile() {
    // An instance that takes connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let p = Project::new(&format!(
        r#"
[defaults]
timezone = "UTC"

[channels.masto]
platform = "mastodon"
instance = "http://{addr}"
token = {{ env = "CADENCED_TEST_MASTO_TOKEN" }}
max_characters = 500
slots = ["0 0 29 2 *"]

[channels.news]
platform = "outbox"
slots = ["* * * * * *"]
min_gap = "0s"
max_per_day = 5
"#
    ));
    let text = "A toot that was being sent when the machine went down.\n";
    p.post("masto/a.md", text);
    p.post(
        "news/a.md",
        "A post of another channel, due every second.\n",
    );
    // As a crash during the create left it: the attempt recorded, its outcome not.
    std::fs::create_dir_all(p.root().join("state")).unwrap();
    let mut store = Store::open(&p.root().join("state/cadenced.sqlite")).unwrap();
    let started: jiff::Timestamp = "2026-01-01T09:00:00Z".parse().unwrap();
    let hash = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    store
        .begin_attempt(&NewAttempt {
            started,
            channel: "masto",
            platform: Platform::named("mastodon").unwrap(),
            file: "masto/a.md",
            hash: &hash,
            normalized: "a toot that was being sent when the machine went down",
            idempotency_key: "cadenced-test",
            key_started: started,
            dry_run: false,
        })
        .unwrap();
    drop(store);

    let socket_path = p.root().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
        .current_dir(p.root())
        .args(["run", "--config"])
        .arg(p.config())
        .env("CADENCED_TEST_MASTO_TOKEN", "secret-token")
        .env("NOTIFY_SOCKET", &socket_path)
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    loop {
        let n = socket.recv(&mut buf).expect("READY=1 within 20 s");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break;
        }
    }
    let ready = started.elapsed();
    // The other channel publishes while the reconciliation still waits for the instance.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rows(&p).contains(&("published".to_string(), "news/a.md".to_string())) {
        assert!(
            Instant::now() < deadline,
            "news/a.md not published: {:#?}",
            rows(&p)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let masto: Vec<String> = rows(&p)
        .into_iter()
        .filter(|(_, f)| f == "masto/a.md")
        .map(|(s, _)| s)
        .collect();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(ready < Duration::from_secs(10), "READY=1 after {ready:?}");
    assert_eq!(masto, ["sending"], "still being reconciled");
    assert!(
        status.success(),
        "a hanging reconciliation does not hold the stop"
    );
}
