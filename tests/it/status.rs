//! `cadenced status` shows the running daemon's view: a staff member without the daemon's
//! credentials sees the channels the daemon can publish on as enabled, with the next post
//! the daemon will send; when the daemon stops, `status` says so and shows its own view.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use predicates::prelude::*;

use crate::support::Project;

const CONFIG: &str = r#"
[defaults]
timezone = "Europe/Madrid"
slots = ["10:00"]

[channels.masto]
platform = "mastodon"
instance = "http://127.0.0.1:9"
token = { env = "CADENCED_STATUS_TEST_TOKEN" }

[channels.news]
platform = "outbox"
paused = true
"#;

fn json(p: &Project) -> Vec<serde_json::Value> {
    let out = p
        .cmd(&["status", "--json"])
        .env_remove("CADENCED_STATUS_TEST_TOKEN")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn status_shows_the_daemons_view_to_a_shell_without_its_credentials() {
    let p = Project::new(CONFIG);
    p.post(
        "masto/001-sale.md",
        "Winter sale: every pair 20% off this week.\n",
    );
    p.post("news/001-weekly.md", "This week in the shop.\n");
    let socket_path = p.root().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut daemon = Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
        .current_dir(p.root())
        .args(["run", "--config"])
        .arg(p.config())
        .env("CADENCED_STATUS_TEST_TOKEN", "the-daemons-token")
        .env("NOTIFY_SOCKET", &socket_path)
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The daemon records each channel before it sends STATUS=.
    let mut buf = [0u8; 512];
    loop {
        let n = socket.recv(&mut buf).expect("the daemon's STATUS=");
        if buf[..n].starts_with(b"STATUS=") {
            break;
        }
    }

    // The files were written just before the start: the daemon takes them once they have
    // settled (a second), and records the channel again then.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let lines = json(&p);
        let judged = lines
            .iter()
            .any(|l| l["channel"] == "masto" && l["queued"] == 1);
        if judged || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let masto = lines.iter().find(|l| l["channel"] == "masto").unwrap();
    assert_eq!(masto["source"], "daemon", "{masto}");
    assert_eq!(
        masto["disabled"], false,
        "the daemon has the token: {masto}"
    );
    assert_eq!(masto["next_post"], "masto/001-sale.md", "{masto}");
    let at: jiff::Timestamp = masto["next_post_at"].as_str().unwrap().parse().unwrap();
    let local = at.to_zoned(jiff::tz::TimeZone::get("Europe/Madrid").unwrap());
    assert_eq!((local.hour(), local.minute()), (10, 0), "{masto}");
    assert!(masto["recorded_at"].is_string(), "{masto}");
    assert_eq!(
        (masto["failed"].as_u64(), masto["unknown"].as_u64()),
        (Some(0), Some(0))
    );
    let news = lines.iter().find(|l| l["channel"] == "news").unwrap();
    assert_eq!(
        (news["paused"].as_bool(), news["next_post"].is_null()),
        (Some(true), true)
    );

    p.cmd(&["status"])
        .env_remove("CADENCED_STATUS_TEST_TOKEN")
        .assert()
        .success()
        .stdout(predicate::str::contains("as the daemon (process"))
        .stdout(predicate::str::contains("NEXT POST"))
        .stdout(predicate::str::contains("FAILED"))
        .stdout(predicate::str::contains("10:00 CET  001-sale.md"))
        .stdout(predicate::str::contains("DISABLED").not());

    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    assert!(daemon.wait().unwrap().success());

    // Stopped: said so, and this shell's own view (which cannot read the token).
    let lines = json(&p);
    let masto = lines.iter().find(|l| l["channel"] == "masto").unwrap();
    assert_eq!(masto["source"], "this_shell", "{masto}");
    assert_eq!(masto["disabled"], true, "{masto}");
    p.cmd(&["status"])
        .env_remove("CADENCED_STATUS_TEST_TOKEN")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "The daemon is not running (its last record is from",
        ))
        .stdout(predicate::str::contains(
            "could not publish from this shell",
        ));
}
