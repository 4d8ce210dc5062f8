//! `cadenced demo` on any date: the bundled example's appointments and flash sales carry
//! real dates, which pass; the demo moves them to its own start, so every bundled post goes
//! out whenever it runs. The daemon runs in-process on tokio's paused clock.

use std::time::Duration;

use cadenced::daemon::demo;

use crate::support::TestClock;

/// Every bundled post file, as the demo copies it.
const BUNDLED_POSTS: usize = 7;

async fn demo_at(rfc3339: &str) -> (demo::DemoReport, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = TestClock::at(rfc3339);
    let report = demo::run(tmp.path(), clock, Duration::from_secs(120))
        .await
        .unwrap();
    (report, tmp)
}

#[tokio::test(start_paused = true)]
async fn the_demo_publishes_every_bundled_post_a_year_after_its_dates() {
    // The example's Black Friday posts are dated 27 November 2026; a year later they
    // used to be `expired` before the demo began.
    let (report, tmp) = demo_at("2027-11-28T09:00:00Z").await;
    assert_eq!(report.published, BUNDLED_POSTS, "{}", report.log);
    assert!(!report.log.contains("expired"), "{}", report.log);
    for channel in ["shop-x", "shop-mastodon", "shop-bluesky"] {
        assert!(
            tmp.path()
                .join("queue")
                .join(channel)
                .join("published/001-black-friday.md")
                .exists(),
            "{channel}'s appointment went out: {}",
            report.log
        );
    }
    // Times are shown in the channels' zone, named.
    assert!(report.log.contains(" CET "), "{}", report.log);
}

#[tokio::test(start_paused = true)]
async fn the_demo_publishes_every_bundled_post_the_day_before_its_dates() {
    // Before the dates, the appointments would otherwise wait for 27 November.
    let (report, _tmp) = demo_at("2026-11-26T16:00:00Z").await;
    assert_eq!(report.published, BUNDLED_POSTS, "{}", report.log);
}

#[test]
fn the_demo_moves_appointments_to_its_start_and_keeps_their_expiry_distance() {
    let now: jiff::Timestamp = "2030-06-01T12:00:00Z".parse().unwrap();
    let original = b"+++\nat = \"2026-11-27T09:00\"\nexpires = \"2026-11-28T00:00\"\nlink = \"https://shop.example/bf\"\n+++\nBlack Friday.\n";
    let moved = demo::move_dates(original, now);
    let post = cadenced::post::parse(&moved).unwrap();
    let utc = jiff::tz::TimeZone::UTC;
    let at = post.front.at.unwrap().resolve(&utc);
    let expires = post.front.expires.unwrap().resolve(&utc);
    assert_eq!(at, "2030-06-01T12:00:06Z".parse().unwrap());
    assert_eq!(
        expires.duration_since(at),
        jiff::SignedDuration::from_hours(15)
    );
    assert_eq!(post.front.link.as_deref(), Some("https://shop.example/bf"));
    assert_eq!(post.body, "Black Friday.");
    // A post without dates is copied byte for byte.
    assert_eq!(demo::move_dates(b"Just text.\n", now), b"Just text.\n");
}
