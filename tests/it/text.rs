//! The text that goes out: a `.md` post is Markdown-aware (soft-wrapped lines joined, blank
//! lines kept as paragraph breaks, hard breaks kept), a `.txt` post goes out exactly as
//! written, and the length rules count what goes out.

use std::sync::Arc;
use std::time::Duration;

use cadenced::daemon::{self, Control, Options};
use tokio::sync::mpsc;

use crate::support::{Project, TestClock};

const WRAPPED: &str = "Our winter sale starts today: every pair of\nsneakers is 20% off.  \nUntil Sunday.\n\n冬季促销：全场运动鞋\n八折！\n";

/// The `post.text` of the one outbox file of `channel`.
fn sent_text(p: &Project, channel: &str) -> String {
    let dir = p.root().join("outbox").join(channel);
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .expect("one outbox file")
        .unwrap()
        .path();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    json["post"]["text"].as_str().unwrap().to_string()
}

#[tokio::test(start_paused = true)]
async fn a_wrapped_md_post_goes_out_joined_and_a_txt_post_exactly_as_written() {
    let p = Project::new(
        r#"
[defaults]
timezone = "Europe/Madrid"
slots = ["10:00"]
variation = false

[channels.md]
platform = "outbox"

[channels.txt]
platform = "outbox"
"#,
    );
    p.post("md/sale.md", WRAPPED);
    p.post("txt/sale.txt", WRAPPED);
    let clock: Arc<dyn cadenced::clock::Clock> = TestClock::at("2026-11-23T08:30:00Z");
    let (control, rx) = mpsc::unbounded_channel();
    let options = Options {
        settle: Duration::ZERO,
        max_sleep: Duration::from_secs(600),
        ..Options::default()
    };
    let config = p.config();
    let handle = tokio::spawn(async move { daemon::run(&config, clock, options, Some(rx)).await });
    tokio::time::sleep(Duration::from_secs(3600)).await; // past 10:00 in Madrid
    control.send(Control::Stop).unwrap();
    assert_eq!(handle.await.unwrap().unwrap(), 2);

    assert_eq!(
        sent_text(&p, "md"),
        "Our winter sale starts today: every pair of sneakers is 20% off.\nUntil Sunday.\n\n冬季促销：全场运动鞋八折！"
    );
    assert_eq!(sent_text(&p, "txt"), WRAPPED.trim_end());
}

#[test]
fn the_length_rules_count_the_md_text_that_goes_out() {
    // 30 indented, wrapped lines of 8 graphemes: well over 300 as written (indentation
    // and line breaks), but the Markdown text that goes out is 30 × 9 − 1 = 269 graphemes,
    // under Bluesky's 300.
    let body: String = (0..30).map(|i| format!("    line {i:03}\n")).collect();
    let p = Project::new(
        r#"
[defaults]
timezone = "Europe/Madrid"
slots = ["10:00"]

[channels.sky]
platform = "bluesky"
service = "https://bsky.social"
handle = "shop.bsky.social"
app_password = { env = "SKY_APP_PASSWORD" }
dry_run = true
"#,
    );
    p.post("sky/wrapped.md", &body);
    p.post("sky/wrapped.txt", &body.replace("line", "text"));
    let out = p
        .cmd(&["check", "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let held: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["severity"] == "error")
        .collect();
    assert_eq!(held.len(), 1, "{text}");
    assert_eq!(held[0]["file"], "queue/sky/wrapped.txt", "{text}");
    assert!(
        held[0]["message"]
            .as_str()
            .unwrap()
            .contains("Bluesky allows 300"),
        "held for its length as written: {text}"
    );
}
