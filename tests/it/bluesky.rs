//! Bluesky through the daemon, against `fake_bluesky` (a local server that behaves like the
//! reference PDS): one test per documented behaviour, each showing the post ends published
//! exactly once or `unknown`, never twice, and what the publish log says. The daemon runs
//! in-process on tokio's paused clock (see `harness`), the fake on the same clock.
//! (`pds.rs` runs the real reference server, when it is installed.)

use std::sync::Arc;
use std::time::Duration;

use cadenced::tokens::TokenStore;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::fake_bluesky::{self, FakeBluesky, Fault};
use crate::harness::{self, Logs, Row, log, queued, statuses, wait_for_log};
use crate::support::{Project, TestClock};

const CHANNEL: &str = "shop-bsky";
/// 09:59:30 UTC: the first slot (every 15 minutes) is half a minute away.
const START: &str = "2026-11-27T09:59:30Z";
const LIMIT: Duration = Duration::from_secs(40 * 60);

fn project(fake: &FakeBluesky, app_password: &str) -> Project {
    let p = Project::new("");
    let password = harness::secret_file(&p, "bsky-app-password", app_password);
    let config = format!(
        r#"
[defaults]
timezone = "UTC"

[channels.{CHANNEL}]
platform = "bluesky"
service = "{}"
handle = "{}"
app_password = {{ file = "{}" }}
slots = ["0 */15 * * * *"]
max_per_day = 20
min_gap = "0s"
"#,
        fake.url(),
        fake_bluesky::HANDLE,
        password.display()
    );
    std::fs::write(
        p.config(),
        format!(
            "queue = \"../queue\"\ndatabase = \"../state/cadenced.sqlite\"\noutbox = \"../outbox\"\n{config}"
        ),
    )
    .unwrap();
    p
}

async fn setup() -> (Arc<TestClock>, FakeBluesky, Project) {
    let clock = TestClock::at(START);
    let fake = FakeBluesky::start_with_clock(clock.clone()).await;
    let p = project(&fake, fake_bluesky::APP_PASSWORD);
    (clock, fake, p)
}

async fn until_done(p: &Project, file: &str, final_status: &str) {
    let (f, status) = (file.to_string(), final_status.to_string());
    wait_for_log(
        p,
        &format!("{file} is {final_status}"),
        LIMIT,
        move |rows| rows.iter().any(|r| r.file == f && r.status == status),
    )
    .await;
}

fn published_row(p: &Project, file: &str) -> Row {
    let rows = log(p);
    let published: Vec<&Row> = rows
        .iter()
        .filter(|r| r.file == file && r.status == "published")
        .collect();
    assert_eq!(published.len(), 1, "published exactly once: {rows:#?}");
    published[0].clone()
}

/// The text a facet covers, by its UTF-8 byte offsets.
fn covered<'a>(text: &'a str, facet: &Value) -> &'a str {
    let start = facet["index"]["byteStart"].as_u64().unwrap() as usize;
    let end = facet["index"]["byteEnd"].as_u64().unwrap() as usize;
    &text[start..end]
}

#[tokio::test(start_paused = true)]
async fn a_post_goes_out_once_with_its_facets_and_the_log_gets_the_uri_and_the_app_address() {
    let (clock, fake, p) = setup().await;
    let text = "冬季促销 #运动鞋 八折！Ask @ana-repairs.test about resoling 👩‍🔧 #SneakerCare https://shop.example/winter";
    p.post(&format!("{CHANNEL}/001-winter.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-winter.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let records = fake.records();
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record.text(), text);
    assert!(fake_bluesky::is_tid(&record.rkey));
    let facets = record.value["facets"].as_array().unwrap();
    let by_type = |t: &str| -> Vec<(&str, &Value)> {
        facets
            .iter()
            .filter(|f| f["features"][0]["$type"] == t)
            .map(|f| (covered(text, f), &f["features"][0]))
            .collect()
    };
    let tags = by_type("app.bsky.richtext.facet#tag");
    assert_eq!(tags.len(), 2, "{facets:#?}");
    assert_eq!(tags[0].0, "#运动鞋");
    assert_eq!(tags[0].1["tag"], "运动鞋");
    assert_eq!(tags[1].0, "#SneakerCare");
    let mentions = by_type("app.bsky.richtext.facet#mention");
    assert_eq!(mentions.len(), 1);
    assert_eq!(mentions[0].0, "@ana-repairs.test");
    assert_eq!(mentions[0].1["did"], fake_bluesky::FRIEND_DID);
    // A link on a domain X's rules do not know is still a link on Bluesky.
    let links = by_type("app.bsky.richtext.facet#link");
    assert_eq!(links.len(), 1, "{facets:#?}");
    assert_eq!(links[0].0, "https://shop.example/winter");
    assert_eq!(links[0].1["uri"], "https://shop.example/winter");

    let row = published_row(&p, "shop-bsky/001-winter.md");
    assert_eq!(row.remote_id.as_deref(), Some(record.uri.as_str()));
    assert_eq!(
        record.uri,
        format!(
            "at://{}/app.bsky.feed.post/{}",
            fake_bluesky::DID,
            record.rkey
        )
    );
    assert_eq!(
        row.remote_url,
        Some(format!(
            "https://bsky.app/profile/{}/post/{}",
            fake_bluesky::HANDLE,
            record.rkey
        ))
    );
    assert!(queued(&p, "shop-bsky/published/001-winter.md"));
    assert_eq!(fake.create_requests(), 1);
    assert_eq!(fake.state().sessions_created, 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_app_password_pauses_the_channel_with_the_reason_and_the_post_stays_queued() {
    let clock = TestClock::at(START);
    let fake = FakeBluesky::start_with_clock(clock.clone()).await;
    let p = project(&fake, "aaaa-bbbb-cccc-dddd");
    p.post(
        &format!("{CHANNEL}/001-sale.md"),
        "Trail runners in six colours, in store today.\n",
    );
    p.post(
        &format!("{CHANNEL}/002-laces.md"),
        "Five ways to lace your sneakers for wide feet.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-sale.md", "retried").await;
    // The next slots come and go: the paused channel tries nothing.
    tokio::time::sleep(Duration::from_secs(16 * 60)).await;
    assert_eq!(d.stop().await, 0);

    let state = fake.state();
    assert_eq!(
        state.requests_to("com.atproto.server.createSession"),
        1,
        "one login, not one per slot"
    );
    assert_eq!(state.create_requests, 0);
    assert!(state.records.is_empty());
    drop(state);
    assert!(queued(&p, "shop-bsky/001-sale.md") && queued(&p, "shop-bsky/002-laces.md"));
    let rows = log(&p);
    let retried: Vec<&Row> = rows.iter().filter(|r| r.status == "retried").collect();
    assert_eq!(retried.len(), 1, "{rows:#?}");
    assert!(
        retried[0].detail.contains("Invalid identifier or password"),
        "{:#?}",
        retried[0]
    );
    assert!(retried[0].detail.contains("paused"), "{:#?}", retried[0]);
    assert!(
        !statuses(&p, "shop-bsky/002-laces.md").contains(&"sending".to_string()),
        "{rows:#?}"
    );
    let tokens = TokenStore::beside(&harness::database(&p))
        .get(CHANNEL)
        .unwrap();
    assert!(tokens.needs_auth.is_some());
}

#[tokio::test(start_paused = true)]
async fn the_session_is_kept_between_posts_and_renewed_when_it_expires() {
    let logs = Logs::capture();
    let (clock, fake, p) = setup().await;
    p.post(
        &format!("{CHANNEL}/001-first.md"),
        "The winter collection lands in store this Saturday morning.\n",
    );
    p.post(
        &format!("{CHANNEL}/002-second.md"),
        "Free lace swap at the counter all weekend, bring your old pair.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/002-second.md", "published").await;
    {
        let state = fake.state();
        assert_eq!(state.records.len(), 2);
        assert_eq!(
            state.sessions_created, 1,
            "the second post used the kept session"
        );
        assert_eq!(state.refreshes, 0);
    }

    // Three hours on, the access token has expired: the third post renews the session.
    clock.skip(SignedDuration::from_hours(3));
    p.post(
        &format!("{CHANNEL}/003-third.md"),
        "Our repair workshop is back on 12 December, free for members.\n",
    );
    until_done(&p, "shop-bsky/003-third.md", "published").await;
    assert_eq!(d.stop().await, 3);

    let state = fake.state();
    assert_eq!(state.records.len(), 3);
    assert_eq!(
        state.sessions_created, 1,
        "no new login with the app password"
    );
    assert_eq!(state.refreshes, 1);
    assert!(state.refresh_refused.is_empty(), "{state:#?}");
    let stored = TokenStore::beside(&harness::database(&p))
        .get(CHANNEL)
        .unwrap();
    assert_eq!(
        stored.values["refresh_jwt"].value.expose(),
        state.refresh_issued.last().unwrap()
    );
    assert_eq!(
        stored.values["access_jwt"].value.expose(),
        state.access_issued.last().unwrap()
    );
    // The session is nowhere but the token store.
    let store = TokenStore::beside(&harness::database(&p));
    let mut elsewhere = harness::all_bytes_under(&p.root().join("state"));
    elsewhere.retain(|(path, _)| path != store.path());
    elsewhere.extend(harness::all_bytes_under(&p.root().join("outbox")));
    let lines = logs.text();
    assert!(lines.contains("published"));
    for token in state.access_issued.iter().chain(&state.refresh_issued) {
        for (path, bytes) in &elsewhere {
            assert!(
                !harness::contains(bytes, token),
                "{} holds a token",
                path.display()
            );
        }
        assert!(!lines.contains(token.as_str()), "a log line holds a token");
    }
    assert!(!lines.contains(fake_bluesky::APP_PASSWORD));
}

#[tokio::test(start_paused = true)]
async fn an_access_token_the_pds_expires_early_is_renewed_and_the_post_goes_out_once() {
    let (clock, fake, p) = setup().await;
    p.post(
        &format!("{CHANNEL}/001-first.md"),
        "The winter collection lands in store this Saturday morning.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-first.md", "published").await;
    // The PDS's clock runs three hours ahead: the token cadenced holds is expired there.
    fake.advance(SignedDuration::from_hours(3));
    let text = "Kids sizes are restocked in every colour this weekend.";
    p.post(&format!("{CHANNEL}/002-kids.md"), &format!("{text}\n"));
    until_done(&p, "shop-bsky/002-kids.md", "published").await;
    assert_eq!(d.stop().await, 2);

    let state = fake.state();
    assert_eq!(state.posts_with_text(text), 1);
    assert_eq!(
        state.requests_to("com.atproto.repo.createRecord"),
        3,
        "refused once with ExpiredToken, then sent"
    );
    assert_eq!(state.refreshes, 1);
    assert_eq!(state.sessions_created, 1);
}

#[tokio::test(start_paused = true)]
async fn a_400_invalid_request_fails_the_post_with_the_pds_message() {
    let (clock, fake, p) = setup().await;
    fake.fail_next_create(Fault::Invalid(
        "Invalid app.bsky.feed.post record: Record/langs/0 must be a valid language code".into(),
    ));
    p.post(
        &format!("{CHANNEL}/001-sale.md"),
        "Sale on all trail runners until Sunday night.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-sale.md", "failed").await;
    assert_eq!(d.stop().await, 0);

    assert!(fake.records().is_empty());
    assert_eq!(fake.create_requests(), 1);
    let note =
        std::fs::read_to_string(p.root().join("queue/shop-bsky/failed/001-sale.md.error")).unwrap();
    assert!(note.contains("HTTP 400"), "{note}");
    assert!(note.contains("must be a valid language code"), "{note}");
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_until_ratelimit_reset_then_publishes_once() {
    let (clock, fake, p) = setup().await;
    let reset: Timestamp = "2026-11-27T10:02:00Z".parse().unwrap();
    fake.fail_next_create(Fault::TooManyRequests { reset });
    let text = "Trail runners in six colours, in store today.";
    p.post(&format!("{CHANNEL}/001-sale.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-sale.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let creates: Vec<Timestamp> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/xrpc/com.atproto.repo.createRecord")
        .map(|r| r.at)
        .collect();
    assert_eq!(creates.len(), 2, "{creates:?}");
    assert!(creates[0] < reset);
    assert!(
        creates[1] >= reset,
        "waited for RateLimit-Reset: {creates:?}"
    );
    assert!(
        creates[1] < reset + SignedDuration::from_secs(30),
        "{creates:?}"
    );
    assert_eq!(fake.posts_with_text(text), 1);
}

#[tokio::test(start_paused = true)]
async fn a_5xx_after_the_record_was_created_is_read_back_by_its_key_and_not_sent_again() {
    let (clock, fake, p) = setup().await;
    fake.fail_next_create(Fault::ErrorAfter(502));
    let text = "Meet Ana, who has repaired our customers' soles for ten years.";
    p.post(&format!("{CHANNEL}/001-ana.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-ana.md", "published").await;
    assert_eq!(d.stop().await, 1);

    assert_eq!(fake.posts_with_text(text), 1);
    assert_eq!(fake.create_requests(), 1, "read back, never resent");
    let row = published_row(&p, "shop-bsky/001-ana.md");
    assert_eq!(
        row.remote_id.as_deref(),
        Some(fake.records()[0].uri.as_str())
    );
    let reads: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/xrpc/com.atproto.repo.getRecord"))
        .map(|r| r.path)
        .collect();
    assert_eq!(reads.len(), 1);
    assert!(
        reads[0].contains(&format!("rkey={}", fake.records()[0].rkey)),
        "{reads:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_5xx_before_anything_was_created_is_read_back_then_sent_once_more_with_the_same_key() {
    let (clock, fake, p) = setup().await;
    fake.fail_next_create(Fault::ErrorBefore(503));
    let text = "Five ways to lace your sneakers for wide feet.";
    p.post(&format!("{CHANNEL}/001-laces.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-laces.md", "published").await;
    assert_eq!(d.stop().await, 1);

    assert_eq!(fake.posts_with_text(text), 1);
    assert_eq!(fake.create_requests(), 2);
    let keys: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/xrpc/com.atproto.repo.createRecord")
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["rkey"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        keys[0], keys[1],
        "the resend used the key chosen before the first try"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_dropped_after_the_record_was_created_is_read_back_not_resent() {
    let (clock, fake, p) = setup().await;
    fake.fail_next_create(Fault::DropAfter);
    let text = "The recycled canvas line explained, from bottle to shoe.";
    p.post(&format!("{CHANNEL}/001-canvas.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-canvas.md", "published").await;
    assert_eq!(d.stop().await, 1);

    assert_eq!(fake.posts_with_text(text), 1);
    assert_eq!(fake.create_requests(), 1, "never a second create");
}

#[tokio::test(start_paused = true)]
async fn when_the_read_back_cannot_tell_the_post_ends_unknown_and_is_not_sent_again() {
    let (clock, fake, p) = setup().await;
    fake.fail_next_create(Fault::ErrorAfter(500));
    fake.fail_next_get(Fault::ErrorBefore(503));
    let text = "Winter opening hours: 10 to 19, Monday to Saturday.";
    p.post(&format!("{CHANNEL}/001-hours.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-hours.md", "unknown").await;
    // Later slots pass: an unknown post is the user's to settle, never resent on its own.
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    assert_eq!(d.stop().await, 0);

    assert_eq!(fake.posts_with_text(text), 1, "it did go out, once");
    assert_eq!(fake.create_requests(), 1);
    let rows = log(&p);
    let unknown: Vec<&Row> = rows.iter().filter(|r| r.status == "unknown").collect();
    assert_eq!(unknown.len(), 1, "{rows:#?}");
    assert!(
        unknown[0]
            .detail
            .contains("cadenced resolve shop-bsky/001-hours.md --posted"),
        "{:#?}",
        unknown[0]
    );
    assert!(
        queued(&p, "shop-bsky/001-hours.md"),
        "left in place for the user"
    );
}

#[tokio::test(start_paused = true)]
async fn a_redirect_is_a_permanent_error_naming_the_new_address_and_is_not_followed() {
    let (clock, fake, p) = setup().await;
    let elsewhere = FakeBluesky::start_with_clock(clock.clone()).await;
    let location = format!("{}/xrpc/com.atproto.repo.createRecord", elsewhere.url());
    fake.fail_next_create(Fault::Redirect {
        status: 308,
        location: location.clone(),
    });
    p.post(
        &format!("{CHANNEL}/001-moved.md"),
        "Our opening hours change from Monday: 10 to 19.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-moved.md", "failed").await;
    assert_eq!(d.stop().await, 0);

    assert!(fake.records().is_empty());
    assert!(
        elsewhere.requests().is_empty(),
        "nothing went to the new location"
    );
    let note = std::fs::read_to_string(p.root().join("queue/shop-bsky/failed/001-moved.md.error"))
        .unwrap();
    assert!(note.contains(&location), "{note}");
    assert!(note.contains("HTTP 308"), "{note}");
}

#[tokio::test(start_paused = true)]
async fn an_image_is_uploaded_once_across_a_resend_and_its_blob_and_size_reach_the_record() {
    let (clock, fake, p) = setup().await;
    fake.fail_next_create(Fault::ErrorBefore(503));
    std::fs::create_dir_all(p.root().join("queue/_media")).unwrap();
    let png = harness::png(1200, 800, 3000);
    std::fs::write(p.root().join("queue/_media/red.png"), &png).unwrap();
    p.post(
        &format!("{CHANNEL}/001-red.md"),
        "+++\nmedia = [{ path = \"../_media/red.png\", alt = \"Red sneakers on a white shelf\" }]\n+++\nThe red ones are back in every size.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-red.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let state = fake.state();
    assert_eq!(state.create_requests, 2);
    assert_eq!(
        state.requests_to("com.atproto.repo.uploadBlob"),
        1,
        "uploaded once"
    );
    assert_eq!(state.blobs.len(), 1);
    assert_eq!(state.blobs[0].size, png.len());
    assert_eq!(state.blobs[0].mime_type, "image/png");
    assert!(state.blobs[0].cid.starts_with("bafkrei"));
    let record = &state.posts()[0].value;
    let image = &record["embed"]["images"][0];
    assert_eq!(image["image"]["ref"]["$link"], state.blobs[0].cid.as_str());
    assert_eq!(image["alt"], "Red sneakers on a white shelf");
    assert_eq!(image["aspectRatio"]["width"], 1200);
    assert_eq!(image["aspectRatio"]["height"], 800);
    let cid = state.blobs[0].cid.clone();
    drop(state);
    let kept = harness::attempt_state(&p);
    assert!(
        kept.iter()
            .any(|(_, name, value)| name == "blob:1" && value.contains(&cid)),
        "{kept:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refresh_token_the_pds_no_longer_takes_falls_back_to_the_app_password_once() {
    let (clock, fake, p) = setup().await;
    p.post(
        &format!("{CHANNEL}/001-first.md"),
        "The winter collection lands in store this Saturday morning.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-first.md", "published").await;
    // A hundred days pass on the PDS: both of the session's tokens have expired there,
    // while cadenced still holds them as good.
    fake.advance(SignedDuration::from_hours(100 * 24));
    let text = "Kids sizes are restocked in every colour this weekend.";
    p.post(&format!("{CHANNEL}/002-kids.md"), &format!("{text}\n"));
    until_done(&p, "shop-bsky/002-kids.md", "published").await;
    assert_eq!(d.stop().await, 2);

    let state = fake.state();
    assert_eq!(state.posts_with_text(text), 1);
    assert_eq!(state.refresh_refused.len(), 1, "the renewal was tried once");
    assert_eq!(
        state.sessions_created, 2,
        "then one login with the app password"
    );
    assert_eq!(state.requests_to("com.atproto.repo.createRecord"), 3);
    let stored = TokenStore::beside(&harness::database(&p))
        .get(CHANNEL)
        .unwrap();
    assert_eq!(
        stored.values["refresh_jwt"].value.expose(),
        state.refresh_issued.last().unwrap()
    );
    assert!(stored.needs_auth.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_link_becomes_a_card_with_the_page_s_title_or_the_post_s_own() {
    let (clock, fake, p) = setup().await;
    fake.serve_page(
        "/winter-sale",
        "<html><head><title>Shop</title><meta property=\"og:title\" content=\"冬季促销 &amp; Winter sale\"><meta property=\"og:description\" content=\"All sneakers 20% off\"></head><body>…</body></html>",
    );
    let page = format!("{}/winter-sale", fake.url());
    p.post(
        &format!("{CHANNEL}/001-card.md"),
        &format!("+++\nlink = \"{page}\"\n+++\nOur winter sale starts today.\n"),
    );
    p.post(
        &format!("{CHANNEL}/002-own.md"),
        &format!(
            "+++\nlink = \"{page}\"\n[platform]\ntitle = \"Repair days\"\ndescription = \"Free resoling for members\"\n+++\nRepair days are back.\n"
        ),
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/002-own.md", "published").await;
    assert_eq!(d.stop().await, 2);

    let state = fake.state();
    let posts = state.posts();
    let card = |text: &str| {
        posts
            .iter()
            .find(|r| r.text() == text)
            .unwrap_or_else(|| panic!("{text}: {posts:#?}"))
            .value["embed"]
            .clone()
    };
    let read = card("Our winter sale starts today.");
    assert_eq!(read["$type"], "app.bsky.embed.external");
    assert_eq!(read["external"]["uri"], page.as_str());
    assert_eq!(read["external"]["title"], "冬季促销 & Winter sale");
    assert_eq!(read["external"]["description"], "All sneakers 20% off");
    let own = card("Repair days are back.");
    assert_eq!(own["external"]["title"], "Repair days");
    assert_eq!(own["external"]["description"], "Free resoling for members");
    let page_reads = state
        .requests
        .iter()
        .filter(|r| r.path == "/winter-sale")
        .count();
    assert_eq!(
        page_reads, 1,
        "the post with its own title did not read the page"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_never_comes_times_out_and_the_key_is_read_back() {
    let (clock, fake, p) = setup().await;
    fake.fail_next_create(Fault::HangAfter);
    let text = "Our free repair workshop is back on 12 December.";
    p.post(&format!("{CHANNEL}/001-workshop.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-bsky/001-workshop.md", "published").await;
    assert_eq!(d.stop().await, 1);

    assert_eq!(fake.posts_with_text(text), 1);
    assert_eq!(fake.create_requests(), 1);
}

/// The real binary, killed with SIGKILL while it publishes to the fake PDS: twice on the
/// fake's word (a create hanging after the record exists, one hanging before), then at
/// fixed moments. Each text ends as one record, each file in `published/`, and no session
/// token or app password in the logs or the database. (`pds.rs` does this against the
/// reference server when it is installed; this one runs everywhere.)
#[test]
fn sigkill_while_publishing_to_bluesky_makes_each_record_exactly_once() {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use crate::support::{kill9, published_count};

    const TEXTS: [&str; 6] = [
        "New trail runners arrived today in six colours #sneakers",
        "How to keep suede dry through a rainy winter week",
        "Our free repair workshop is back on 12 December",
        "Kids sizes are restocked in every colour this weekend 👟",
        "Five ways to lace your sneakers for wide feet",
        "冬季促销：全场运动鞋八折 #运动鞋",
    ];
    let fake = FakeBluesky::start_on_thread();
    for fault in [
        Fault::HangAfter,
        Fault::DropAfter,
        Fault::HangBefore,
        Fault::ErrorAfter(500),
        Fault::ErrorBefore(503),
    ] {
        fake.fail_next_create(fault);
    }
    let p = project(&fake, fake_bluesky::APP_PASSWORD);
    let config = std::fs::read_to_string(p.config())
        .unwrap()
        .replace("slots = [\"0 */15 * * * *\"]", "slots = [\"* * * * * *\"]")
        .replace("max_per_day = 20", "max_per_day = 100");
    std::fs::write(p.config(), config).unwrap();
    for (i, text) in TEXTS.iter().enumerate() {
        p.post(&format!("{CHANNEL}/{i:03}.md"), &format!("{text}\n"));
    }
    let stderr = p.root().join("stderr.log");
    let cadenced = || {
        Command::new(assert_cmd::cargo::cargo_bin("cadenced"))
            .current_dir(p.root())
            .args(["run", "--config"])
            .arg(p.config())
            .env("RUST_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&stderr)
                    .unwrap(),
            )
            .spawn()
            .unwrap()
    };
    for creates in [1, 3] {
        let mut child = cadenced();
        fake.wait_until_blocking(&format!("create #{creates} is in flight"), |s| {
            s.create_requests >= creates
        });
        kill9(&mut child);
    }
    for millis in [900, 250, 600] {
        let mut child = cadenced();
        std::thread::sleep(Duration::from_millis(millis)); // the kill's moment, not a wait for an event
        kill9(&mut child);
    }
    let mut child = cadenced();
    fake.wait_until_blocking("every text posted", |s| {
        TEXTS.iter().all(|t| s.posts_with_text(t) >= 1)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while published_count(&p, CHANNEL) < TEXTS.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "SIGTERM exits 0");

    let state = fake.state();
    for text in TEXTS {
        assert_eq!(state.posts_with_text(text), 1, "one record: {text}");
    }
    assert!(state.create_faults.is_empty(), "every fault was met");
    assert!(
        state.requests_to("com.atproto.repo.getRecord") > 0,
        "read back by key"
    );
    assert!(
        state.sessions_created <= 6,
        "the session is kept across restarts"
    );
    let tokens: Vec<String> = state
        .access_issued
        .iter()
        .chain(&state.refresh_issued)
        .cloned()
        .collect();
    drop(state);
    assert_eq!(published_count(&p, CHANNEL), TEXTS.len());
    let lines = std::fs::read_to_string(&stderr).unwrap();
    let db = std::fs::read(harness::database(&p)).unwrap();
    for secret in tokens
        .iter()
        .map(String::as_str)
        .chain([fake_bluesky::APP_PASSWORD])
    {
        assert!(!lines.contains(secret), "a log line holds a secret");
        assert!(
            !harness::contains(&db, secret),
            "the database holds a secret"
        );
    }
}
