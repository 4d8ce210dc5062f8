//! X through the daemon, against `fake_x` (a local server that follows X API v2's contract):
//! one test per documented behaviour, each showing the post ends published exactly once or
//! `unknown`, never twice, and what the publish log says. The daemon runs in-process on
//! tokio's paused clock (see `harness`), the fake on the same clock.

use std::sync::Arc;
use std::time::Duration;

use cadenced::secret::Secret;
use cadenced::tokens::{Stored, TokenStore};
use jiff::{SignedDuration, Timestamp};

use crate::fake_x::{self, FakeX, Fault};
use crate::harness::{self, Logs, Row, log, queued, statuses, wait_for_log};
use crate::support::{Project, TestClock};

const CHANNEL: &str = "shop-x";
/// 09:59:30 UTC: the first slot (every 15 minutes) is half a minute away; a publish keeps
/// its claim on the slot (resends included) until the next one.
const START: &str = "2026-11-27T09:59:30Z";
/// Long enough for every scenario here (a backoff, a rate-limit reset), in virtual time.
const LIMIT: Duration = Duration::from_secs(40 * 60);

/// How the channel logs in.
enum Login {
    /// OAuth 2.0 with a refresh token `cadenced auth` stored (the way X recommends).
    Refresh,
    /// OAuth 1.0a with these consumer and token secrets.
    OAuth1 {
        api_secret: &'static str,
        token_secret: &'static str,
    },
}

fn project(fake: &FakeX, login: Login) -> Project {
    let p = Project::new("");
    let keys = match login {
        Login::Refresh => {
            let secret = harness::secret_file(&p, "x-client-secret", fake_x::CLIENT_SECRET);
            format!(
                "client_id = \"{}\"\nclient_secret = {{ file = \"{}\" }}\n",
                fake_x::CLIENT_ID,
                secret.display()
            )
        }
        Login::OAuth1 {
            api_secret,
            token_secret,
        } => {
            let file = |name: &str, value: &str| harness::secret_file(&p, name, value);
            format!(
                "api_key = {{ file = \"{}\" }}\napi_secret = {{ file = \"{}\" }}\naccess_token = {{ file = \"{}\" }}\naccess_token_secret = {{ file = \"{}\" }}\n",
                file("x-api-key", fake_x::CONSUMER_KEY).display(),
                file("x-api-secret", api_secret).display(),
                file("x-access-token", fake_x::ACCESS_TOKEN).display(),
                file("x-access-token-secret", token_secret).display(),
            )
        }
    };
    let config = format!(
        r#"
[defaults]
timezone = "UTC"

[channels.{CHANNEL}]
platform = "x"
api = "{}"
{keys}slots = ["0 */15 * * * *"]
max_per_day = 20
min_gap = "0s"
"#,
        fake.url()
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

/// Stores a refresh token for the channel, as `cadenced auth` leaves it.
fn seed_refresh_token(p: &Project, token: &str, now: Timestamp) {
    TokenStore::beside(&harness::database(p))
        .update(CHANNEL, now, |t| {
            t.values.insert(
                "refresh_token".into(),
                Stored {
                    value: Secret::new(token),
                    expires: None,
                },
            );
        })
        .unwrap();
}

/// A project whose channel logs in with OAuth 2.0 and a stored refresh token.
async fn oauth2_setup() -> (Arc<TestClock>, FakeX, Project) {
    let clock = TestClock::at(START);
    let fake = FakeX::start_with_clock(clock.clone()).await;
    let p = project(&fake, Login::Refresh);
    seed_refresh_token(&p, &fake.issue_refresh_token(), clock_now(&clock));
    (clock, fake, p)
}

fn clock_now(clock: &Arc<TestClock>) -> Timestamp {
    cadenced::clock::Clock::now(&**clock)
}

fn rows_of<'a>(rows: &'a [Row], file: &str) -> Vec<&'a Row> {
    rows.iter().filter(|r| r.file == file).collect()
}

fn published_row(p: &Project, file: &str) -> Row {
    let rows = log(p);
    let published: Vec<&Row> = rows_of(&rows, file)
        .into_iter()
        .filter(|r| r.status == "published")
        .collect();
    assert_eq!(published.len(), 1, "published exactly once: {rows:#?}");
    published[0].clone()
}

async fn until_done(p: &Project, file: &str, final_status: &str) {
    let f = file.to_string();
    let status = final_status.to_string();
    wait_for_log(
        p,
        &format!("{file} is {final_status}"),
        LIMIT,
        move |rows| rows.iter().any(|r| r.file == f && r.status == status),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_post_goes_out_once_and_the_log_gets_its_id_and_url() {
    let (clock, fake, p) = oauth2_setup().await;
    let text = "Black Friday: 30% off every sneaker & free returns <today only>";
    p.post(&format!("{CHANNEL}/001-sale.md"), &format!("{text}\n"));

    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-sale.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].text, text);
    assert_eq!(posts[0].auth, "oauth2");
    let row = published_row(&p, "shop-x/001-sale.md");
    assert_eq!(row.remote_id.as_deref(), Some(posts[0].id.as_str()));
    assert_eq!(
        row.remote_url,
        Some(format!("https://x.com/i/web/status/{}", posts[0].id))
    );
    assert!(posts[0].id.len() == 19 && posts[0].id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        statuses(&p, "shop-x/001-sale.md"),
        ["accepted", "sending", "published"]
    );
    assert!(queued(&p, "shop-x/published/001-sale.md"));
    // Went out at the 10:00 slot, not before.
    assert!(posts[0].created_at >= "2026-11-27T10:00:00Z".parse().unwrap());
    assert_eq!(fake.create_requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_expired_access_token_is_renewed_and_the_rotated_refresh_token_kept_only_in_the_token_store()
 {
    let logs = Logs::capture();
    let (clock, fake, p) = oauth2_setup().await;
    p.post(
        &format!("{CHANNEL}/001-first.md"),
        "The winter collection lands in store this Saturday morning.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-first.md", "published").await;

    // Three hours later (the access token lasts two), the second post.
    clock.skip(SignedDuration::from_hours(3));
    p.post(
        &format!("{CHANNEL}/002-second.md"),
        "Free lace swap at the counter all weekend, bring your old pair.\n",
    );
    until_done(&p, "shop-x/002-second.md", "published").await;
    assert_eq!(d.stop().await, 2);

    let state = fake.state();
    assert_eq!(state.posts.len(), 2);
    // The stored token was used once, then each renewal used the token the last one gave.
    assert_eq!(state.refresh_issued.len(), 3, "{state:#?}");
    assert_eq!(state.refresh_used, state.refresh_issued[..2]);
    assert!(state.refresh_refused.is_empty(), "{state:#?}");
    let newest_refresh = state.refresh_issued[2].clone();
    let newest_access = state.access_issued.last().unwrap().clone();
    let every_token: Vec<String> = state
        .refresh_issued
        .iter()
        .chain(&state.access_issued)
        .cloned()
        .collect();
    drop(state);

    // The pair in use sits in the token store, owner-only.
    let store = TokenStore::beside(&harness::database(&p));
    let tokens = store.get(CHANNEL).unwrap();
    assert_eq!(
        tokens.values["refresh_token"].value.expose(),
        newest_refresh
    );
    assert_eq!(tokens.values["access_token"].value.expose(), newest_access);
    assert!(tokens.needs_auth.is_none());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(store.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "tokens.json is owner-only");

    // No token anywhere else: not in the database, the outbox, the queue or the log lines.
    let mut elsewhere = harness::all_bytes_under(&p.root().join("state"));
    elsewhere.retain(|(path, _)| path != store.path());
    elsewhere.extend(harness::all_bytes_under(&p.root().join("outbox")));
    elsewhere.extend(harness::all_bytes_under(&p.root().join("queue")));
    let lines = logs.text();
    assert!(lines.contains("published"), "the log lines were captured");
    for token in &every_token {
        for (path, bytes) in &elsewhere {
            assert!(
                !harness::contains(bytes, token),
                "{} holds a token",
                path.display()
            );
        }
        assert!(!lines.contains(token.as_str()), "a log line holds a token");
    }
    assert!(!lines.contains(fake_x::CLIENT_SECRET));
}

#[tokio::test(start_paused = true)]
async fn oauth1_requests_are_signed_and_the_fake_verifies_every_signature() {
    let clock = TestClock::at(START);
    let fake = FakeX::start_with_clock(clock.clone()).await;
    let p = project(
        &fake,
        Login::OAuth1 {
            api_secret: fake_x::CONSUMER_SECRET,
            token_secret: fake_x::ACCESS_TOKEN_SECRET,
        },
    );
    std::fs::create_dir_all(p.root().join("queue/_media")).unwrap();
    std::fs::write(
        p.root().join("queue/_media/sneakers.png"),
        harness::png(1200, 800, 4096),
    )
    .unwrap();
    p.post(
        &format!("{CHANNEL}/001-photo.md"),
        "+++\nmedia = [{ path = \"../_media/sneakers.png\", alt = \"Red sneakers on a white shelf\" }]\nlink = \"https://shop.example/red?utm=x&ref=1\"\n+++\nThe red ones are back in every size.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-photo.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].auth, "oauth1");
    assert_eq!(
        posts[0].text,
        "The red ones are back in every size.\n\nhttps://shop.example/red?utm=x&ref=1"
    );
    let media = fake.media();
    assert_eq!(media.len(), 1);
    assert_eq!(posts[0].media_ids, [media[0].id.clone()]);
    assert_eq!(
        media[0].alt_text.as_deref(),
        Some("Red sneakers on a white shelf")
    );
    assert_eq!(media[0].category, "tweet_image");
    // Every request was signed (the fake answers 401 to a bad signature), with a nonce of its own.
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for r in &requests {
        let auth = r.authorization.as_deref().unwrap_or_default();
        assert!(auth.starts_with("OAuth "), "{auth}");
        assert!(
            !auth.contains(fake_x::CONSUMER_SECRET) && !auth.contains(fake_x::ACCESS_TOKEN_SECRET)
        );
    }
    // X's rendering: the link is a t.co link that expands to it, and the photo has its own.
    let rendered = fake.rendered(&posts[0].id).unwrap();
    let urls = rendered["entities"]["urls"].as_array().unwrap();
    assert_eq!(urls.len(), 2, "{rendered:#}");
    assert_eq!(
        urls[0]["expanded_url"],
        "https://shop.example/red?utm=x&ref=1"
    );
    assert!(urls[1]["media_key"].is_string());
}

#[tokio::test(start_paused = true)]
async fn a_401_fails_the_post_with_a_note_and_nothing_is_created() {
    let clock = TestClock::at(START);
    let fake = FakeX::start_with_clock(clock.clone()).await;
    // A token secret that does not match: every signature is wrong.
    let p = project(
        &fake,
        Login::OAuth1 {
            api_secret: fake_x::CONSUMER_SECRET,
            token_secret: "not-the-token-secret",
        },
    );
    p.post(
        &format!("{CHANNEL}/001-sale.md"),
        "Sale on all trail runners until Sunday night.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-sale.md", "failed").await;
    assert_eq!(d.stop().await, 0);

    assert!(fake.posts().is_empty());
    assert_eq!(
        fake.state().requests_to("POST", "/2/tweets"),
        1,
        "a refusal is not resent"
    );
    assert!(queued(&p, "shop-x/failed/001-sale.md"));
    let note =
        std::fs::read_to_string(p.root().join("queue/shop-x/failed/001-sale.md.error")).unwrap();
    assert!(note.contains("HTTP 401"), "{note}");
    assert!(note.contains("cadenced retry shop-x/001-sale.md"), "{note}");
    assert_eq!(
        statuses(&p, "shop-x/001-sale.md"),
        ["accepted", "sending", "failed"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_content_refusal_is_read_back_and_the_post_counts_once() {
    let (clock, fake, p) = oauth2_setup().await;
    // The post is created but its answer is a 503, and X's timeline shows it one read late:
    // the first read-back misses it, so the daemon sends again and X says "duplicate".
    fake.fail_next_create(Fault::ErrorAfterCreate(503));
    fake.set_timeline_lag(1);
    let text = "Our repair workshop is back on 12 December, free for members.";
    p.post(&format!("{CHANNEL}/001-workshop.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-workshop.md", "published").await;
    assert_eq!(d.stop().await, 1);

    assert_eq!(fake.posts_with_text(text), 1, "posted exactly once");
    assert_eq!(fake.create_requests(), 2);
    let row = published_row(&p, "shop-x/001-workshop.md");
    assert_eq!(row.remote_id.as_deref(), Some(fake.posts()[0].id.as_str()));
    assert!(queued(&p, "shop-x/published/001-workshop.md"));
}

#[tokio::test(start_paused = true)]
async fn a_400_note_gives_x_s_own_reason_not_only_its_generic_detail() {
    let (clock, fake, p) = oauth2_setup().await;
    fake.fail_next_create(Fault::Invalid(
        "The `reply_settings` value is not allowed for this account.".into(),
    ));
    p.post(
        &format!("{CHANNEL}/001-sale.md"),
        "+++\n[platform]\nreply_settings = \"verified\"\n+++\nMembers-only preview of the spring line.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-sale.md", "failed").await;
    assert_eq!(d.stop().await, 0);

    assert!(fake.posts().is_empty());
    assert_eq!(fake.create_requests(), 1);
    let note =
        std::fs::read_to_string(p.root().join("queue/shop-x/failed/001-sale.md.error")).unwrap();
    assert!(note.contains("HTTP 400"), "{note}");
    assert!(note.contains("is not allowed for this account"), "{note}");
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_until_x_rate_limit_reset_then_publishes_once() {
    let (clock, fake, p) = oauth2_setup().await;
    let reset: Timestamp = "2026-11-27T10:03:00Z".parse().unwrap();
    fake.fail_next_create(Fault::TooManyRequests { reset });
    p.post(
        &format!("{CHANNEL}/001-sale.md"),
        "Trail runners in six colours, in store today.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-sale.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let creates: Vec<Timestamp> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/2/tweets")
        .map(|r| r.at)
        .collect();
    assert_eq!(creates.len(), 2, "{creates:?}");
    assert!(creates[0] < reset);
    assert!(
        creates[1] >= reset,
        "the resend waited for x-rate-limit-reset: {creates:?}"
    );
    assert!(
        creates[1] < reset + SignedDuration::from_secs(30),
        "and not much longer: {creates:?}"
    );
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(
        statuses(&p, "shop-x/001-sale.md"),
        ["accepted", "sending", "sending", "published"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_5xx_after_the_post_was_created_is_read_back_and_not_sent_again() {
    let (clock, fake, p) = oauth2_setup().await;
    fake.fail_next_create(Fault::ErrorAfterCreate(500));
    let text = "Kids sizes are restocked in every colour this weekend.";
    p.post(&format!("{CHANNEL}/001-kids.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-kids.md", "published").await;
    assert_eq!(d.stop().await, 1);

    assert_eq!(fake.posts_with_text(text), 1);
    assert_eq!(fake.create_requests(), 1, "read back, never resent");
    assert!(fake.state().timeline_reads >= 1);
    let row = published_row(&p, "shop-x/001-kids.md");
    assert_eq!(row.remote_id.as_deref(), Some(fake.posts()[0].id.as_str()));
}

#[tokio::test(start_paused = true)]
async fn a_5xx_before_anything_was_created_is_read_back_then_sent_once_more() {
    let (clock, fake, p) = oauth2_setup().await;
    fake.fail_next_create(Fault::ErrorBeforeCreate(503));
    let text = "Five ways to lace your sneakers for wide feet.";
    p.post(&format!("{CHANNEL}/001-laces.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-laces.md", "published").await;
    assert_eq!(d.stop().await, 1);

    assert_eq!(fake.posts_with_text(text), 1);
    assert_eq!(fake.create_requests(), 2, "resent once after the read-back");
    assert_eq!(fake.state().timeline_reads, 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_dropped_after_the_post_was_created_is_read_back_not_resent() {
    let (clock, fake, p) = oauth2_setup().await;
    fake.fail_next_create(Fault::DropAfterCreate);
    let text = "Meet Ana, who has repaired our customers' soles for ten years.";
    p.post(&format!("{CHANNEL}/001-ana.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-ana.md", "published").await;
    assert_eq!(d.stop().await, 1);

    assert_eq!(fake.posts_with_text(text), 1);
    assert_eq!(fake.create_requests(), 1, "never a second create");
    let row = published_row(&p, "shop-x/001-ana.md");
    assert_eq!(row.remote_id.as_deref(), Some(fake.posts()[0].id.as_str()));
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_never_comes_times_out_and_is_read_back() {
    let (clock, fake, p) = oauth2_setup().await;
    fake.fail_next_create(Fault::HangAfterCreate);
    let text = "The recycled canvas line explained, from bottle to shoe.";
    p.post(&format!("{CHANNEL}/001-canvas.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-canvas.md", "published").await;
    assert_eq!(d.stop().await, 1);

    assert_eq!(fake.posts_with_text(text), 1);
    assert_eq!(fake.create_requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_redirect_is_a_permanent_error_naming_the_new_address_and_is_not_followed() {
    let (clock, fake, p) = oauth2_setup().await;
    let elsewhere = FakeX::start_with_clock(clock.clone()).await;
    let location = format!("{}/2/tweets", elsewhere.url());
    fake.fail_next_create(Fault::Redirect {
        status: 307,
        location: location.clone(),
    });
    p.post(
        &format!("{CHANNEL}/001-moved.md"),
        "Our opening hours change from Monday: 10 to 19.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-moved.md", "failed").await;
    assert_eq!(d.stop().await, 0);

    assert!(fake.posts().is_empty());
    assert_eq!(fake.create_requests(), 1);
    assert!(
        elsewhere.requests().is_empty(),
        "nothing went to the new location"
    );
    let note =
        std::fs::read_to_string(p.root().join("queue/shop-x/failed/001-moved.md.error")).unwrap();
    assert!(note.contains(&location), "the note names it: {note}");
    assert!(note.contains("HTTP 307"), "{note}");
}

#[tokio::test(start_paused = true)]
async fn media_is_uploaded_once_across_a_resend() {
    let (clock, fake, p) = oauth2_setup().await;
    fake.fail_next_create(Fault::ErrorBeforeCreate(503));
    std::fs::create_dir_all(p.root().join("queue/_media")).unwrap();
    std::fs::write(
        p.root().join("queue/_media/box.png"),
        harness::png(800, 800, 2048),
    )
    .unwrap();
    p.post(
        &format!("{CHANNEL}/001-box.md"),
        "+++\nmedia = [{ path = \"../_media/box.png\", alt = \"A shoe box in recycled card\" }]\n+++\nNew boxes, same shoes.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-box.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let state = fake.state();
    assert_eq!(state.create_requests, 2);
    assert_eq!(
        state.requests_to("POST", "/2/media/upload"),
        1,
        "uploaded once"
    );
    assert_eq!(state.requests_to("POST", "/2/media/metadata"), 1);
    assert_eq!(state.posts.len(), 1);
    assert_eq!(state.posts[0].media_ids, [state.media[0].id.clone()]);
    let media_id = state.media[0].id.clone();
    drop(state);
    // The id a resend used came from the attempt's memory in the database.
    let kept = harness::attempt_state(&p);
    assert!(
        kept.iter()
            .any(|(_, name, value)| name == "media_id:1" && value.contains(&media_id)),
        "{kept:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_refused_right_after_its_renewal_pauses_the_channel_instead_of_renewing_forever() {
    let (clock, fake, p) = oauth2_setup().await;
    // The user revoked the app: X renews tokens but refuses every one of them.
    fake.refuse_bearer_tokens(true);
    p.post(
        &format!("{CHANNEL}/001-sale.md"),
        "Sale on all trail runners until Sunday night.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-sale.md", "retried").await;
    // Later slots come and go: the paused channel sends nothing more.
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    assert_eq!(d.stop().await, 0);

    let state = fake.state();
    assert_eq!(
        state.requests_to("POST", "/2/tweets"),
        1,
        "{:#?}",
        state.requests
    );
    assert_eq!(state.refresh_used.len(), 1);
    assert!(state.posts.is_empty());
    drop(state);
    assert!(queued(&p, "shop-x/001-sale.md"), "the post stays queued");
    let rows = log(&p);
    let retried = rows_of(&rows, "shop-x/001-sale.md")
        .into_iter()
        .find(|r| r.status == "retried")
        .unwrap()
        .clone();
    assert!(
        retried.detail.contains("cadenced auth shop-x"),
        "{retried:#?}"
    );
    let tokens = TokenStore::beside(&harness::database(&p))
        .get(CHANNEL)
        .unwrap();
    assert!(
        tokens.needs_auth.is_some(),
        "status can say the channel needs `cadenced auth`"
    );
}

#[tokio::test(start_paused = true)]
async fn an_access_token_revoked_before_its_time_is_renewed_once_and_the_post_goes_out() {
    let (clock, fake, p) = oauth2_setup().await;
    // The store holds an access token X no longer knows, valid for another hour as far as
    // cadenced can tell.
    TokenStore::beside(&harness::database(&p))
        .update(CHANNEL, clock_now(&clock), |t| {
            t.values.insert(
                "access_token".into(),
                Stored {
                    value: Secret::new("fakexat-revoked-by-x"),
                    expires: Some(clock_now(&clock) + SignedDuration::from_hours(1)),
                },
            );
        })
        .unwrap();
    let text = "Winter opening hours: 10 to 19, Monday to Saturday.";
    p.post(&format!("{CHANNEL}/001-hours.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-hours.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let state = fake.state();
    assert_eq!(state.posts_with_text(text), 1);
    assert_eq!(
        state.requests_to("POST", "/2/tweets"),
        2,
        "refused once, then sent with the new token"
    );
    assert_eq!(state.refresh_used.len(), 1);
    let stored = TokenStore::beside(&harness::database(&p))
        .get(CHANNEL)
        .unwrap();
    assert_eq!(
        stored.values["access_token"].value.expose(),
        state.access_issued[0]
    );
}

/// The real binary, killed with SIGKILL at moments spread over its publishing to the fake X
/// (which also fails some creates before and after making the post, and leaves some
/// answers hanging so a kill lands mid-request): each text ends on X exactly once, each
/// file in `published/`. OAuth 1.0a, so no kill can fall between a token rotation and its
/// write (that case leaves the channel asking for `cadenced auth`, by design).
#[test]
fn sigkill_while_publishing_to_x_posts_each_file_exactly_once() {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use crate::support::{kill9, published_count};

    const TEXTS: [&str; 6] = [
        "New trail runners arrived today in six colours",
        "How to keep suede dry through a rainy winter week",
        "Our free repair workshop is back on 12 December",
        "Kids sizes are restocked in every colour this weekend",
        "Five ways to lace your sneakers for wide feet",
        "冬季促销：全场运动鞋八折，周六门店还有免费护理讲座",
    ];
    let fake = FakeX::start_on_thread();
    // Creates #1 and #3 hang (the kills land there); #2, #4 and #5 fail in the daemon's
    // hands.
    for fault in [
        Fault::HangAfterCreate,
        Fault::DropAfterCreate,
        Fault::HangBeforeCreate,
        Fault::ErrorAfterCreate(500),
        Fault::ErrorBeforeCreate(503),
    ] {
        fake.fail_next_create(fault);
    }
    let p = project(
        &fake,
        Login::OAuth1 {
            api_secret: fake_x::CONSUMER_SECRET,
            token_secret: fake_x::ACCESS_TOKEN_SECRET,
        },
    );
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

    // Kills where they matter, on the fake's word: while the first create hangs after X
    // made the post, and while the third hangs before it did.
    for creates in [1, 3] {
        let mut child = cadenced();
        fake.wait_until_blocking(&format!("create #{creates} is in flight"), |s| {
            s.create_requests >= creates
        });
        kill9(&mut child);
    }
    // Then a few at fixed moments (repeatable, varied: they land wherever the daemon is).
    for millis in [900, 250, 600] {
        let mut child = cadenced();
        std::thread::sleep(Duration::from_millis(millis)); // the kill's moment, not a wait for an event
        kill9(&mut child);
    }
    // Then let it finish (the faults left are met in one run).
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

    for text in TEXTS {
        assert_eq!(fake.posts_with_text(text), 1, "posted exactly once: {text}");
    }
    assert_eq!(published_count(&p, CHANNEL), TEXTS.len());
    let state = fake.state();
    assert!(state.create_faults.is_empty(), "every fault was met");
    assert!(
        state.requests_to("POST", "/2/tweets") > TEXTS.len(),
        "the faults and kills caused resends"
    );
    assert!(state.timeline_reads > 0, "unsure attempts were read back");
    drop(state);
    // Every log row of a published post names its post on X; some were found by reading
    // back (X answers 201 to a create; 200 is the read-back's).
    let rows = log(&p);
    assert!(
        rows.iter()
            .any(|r| r.status == "published" && r.detail == "HTTP 200"),
        "{rows:#?}"
    );
    for row in rows.iter().filter(|r| r.status == "published") {
        let id = row.remote_id.as_deref().unwrap();
        assert_eq!(
            row.remote_url.as_deref(),
            Some(format!("https://x.com/i/web/status/{id}").as_str())
        );
    }
    let lines = std::fs::read_to_string(&stderr).unwrap();
    let db = std::fs::read(harness::database(&p)).unwrap();
    for secret in [fake_x::CONSUMER_SECRET, fake_x::ACCESS_TOKEN_SECRET] {
        assert!(!lines.contains(secret), "a log line holds a secret");
        assert!(
            !harness::contains(&db, secret),
            "the database holds a secret"
        );
    }
}

/// What `cadenced auth` printed so far, shared with the "user" who reads it.
#[derive(Clone, Default)]
struct Screen(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The user at the keyboard: reads the authorization address off the screen, allows the
/// app on (fake) X's page, and pastes the address the browser was sent back to.
struct User<'a> {
    fake: &'a FakeX,
    screen: Screen,
    pasted: Option<std::io::Cursor<Vec<u8>>>,
}

impl User<'_> {
    fn pasted(&mut self) -> &mut std::io::Cursor<Vec<u8>> {
        if self.pasted.is_none() {
            let shown = String::from_utf8(self.screen.0.lock().unwrap().clone()).unwrap();
            let line = shown
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("https://x.com/i/oauth2/authorize?"))
                .unwrap_or_else(|| panic!("no authorization address shown: {shown}"));
            let url = url::Url::parse(line).unwrap();
            let q: std::collections::HashMap<String, String> =
                url.query_pairs().into_owned().collect();
            assert_eq!(q["client_id"], fake_x::CLIENT_ID);
            assert_eq!(q["code_challenge_method"], "S256");
            let code = self
                .fake
                .authorize(&q["code_challenge"], &q["redirect_uri"], &q["scope"]);
            let back = format!("{}?state={}&code={code}\n", q["redirect_uri"], q["state"]);
            self.pasted = Some(std::io::Cursor::new(back.into_bytes()));
        }
        self.pasted.as_mut().unwrap()
    }
}

impl std::io::Read for User<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.pasted().read(buf)
    }
}

impl std::io::BufRead for User<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.pasted().fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.pasted().consume(amount);
    }
}

#[tokio::test(start_paused = true)]
async fn cadenced_auth_connects_the_account_with_pkce_and_the_daemon_posts_with_that_session() {
    let clock = TestClock::at(START);
    let fake = FakeX::start_with_clock(clock.clone()).await;
    let p = project(&fake, Login::Refresh);
    let channel = cadenced::config::load(&p.config())
        .unwrap_or_else(|_| panic!("the config loads"))
        .config
        .channels
        .remove(0);
    let tokens = TokenStore::beside(&harness::database(&p));
    let screen = Screen::default();
    let mut user = User {
        fake: &fake,
        screen: screen.clone(),
        pasted: None,
    };
    {
        let _ticker = crate::fake_server::Ticker::start(harness::TICK);
        cadenced::cli::auth::connect(
            &channel,
            &tokens,
            &p.root().join("outbox"),
            &*clock,
            &mut user,
            &mut screen.clone(),
        )
        .await
        .unwrap();
    }
    let shown = String::from_utf8(screen.0.lock().unwrap().clone()).unwrap();
    assert!(
        shown.contains(&format!("as @{}", fake_x::USERNAME)),
        "{shown}"
    );
    // The fake gave tokens only for the verifier of the challenge it was shown.
    let (refresh, access) = {
        let state = fake.state();
        assert_eq!(state.refresh_issued.len(), 1);
        (
            state.refresh_issued[0].clone(),
            state.access_issued[0].clone(),
        )
    };
    assert!(
        !shown.contains(&refresh) && !shown.contains(&access),
        "{shown}"
    );
    let stored = tokens.get(CHANNEL).unwrap();
    assert_eq!(stored.values["refresh_token"].value.expose(), refresh);

    // The daemon posts with that session: no renewal needed yet.
    let text = "Connected: the first post from the new account link.";
    p.post(&format!("{CHANNEL}/001-hello.md"), &format!("{text}\n"));
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-hello.md", "published").await;
    assert_eq!(d.stop().await, 1);
    let state = fake.state();
    assert_eq!(state.posts_with_text(text), 1);
    assert!(
        state.refresh_used.is_empty(),
        "the access token was still fresh"
    );
    let create = state
        .requests
        .iter()
        .find(|r| r.path == "/2/tweets")
        .unwrap();
    assert_eq!(
        create.authorization.as_deref(),
        Some(format!("Bearer {access}").as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_of_an_older_post_is_not_resent_every_slot_and_does_not_block_the_queue() {
    let (clock, fake, p) = oauth2_setup().await;
    // The shop posted this text by hand an hour before: X refuses it as a duplicate, and
    // no post since this attempt began has it.
    let text = "Free lace swap at the counter all weekend, bring your old pair.";
    fake.add_post(text, clock_now(&clock) - SignedDuration::from_hours(1));
    p.post(&format!("{CHANNEL}/001-laces.md"), &format!("{text}\n"));
    p.post(
        &format!("{CHANNEL}/002-next.md"),
        "Kids sizes are restocked in every colour this weekend.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/002-next.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let state = fake.state();
    assert_eq!(
        state.posts_with_text(text),
        1,
        "still only the shop's own post"
    );
    let duplicates = state
        .requests
        .iter()
        .filter(|r| r.path == "/2/tweets" && r.body.contains("Free lace swap"))
        .count();
    assert_eq!(duplicates, 1, "not sent again: {:#?}", state.requests);
    drop(state);
    let rows = log(&p);
    let last = rows
        .iter()
        .rfind(|r| r.file == "shop-x/001-laces.md")
        .unwrap();
    assert_eq!(last.status, "failed", "{rows:#?}");
    assert!(last.detail.contains("duplicate"), "{last:#?}");
    let note =
        std::fs::read_to_string(p.root().join("queue/shop-x/failed/001-laces.md.error")).unwrap();
    assert!(
        note.contains("cadenced resolve shop-x/001-laces.md --posted")
            && note.contains("cadenced retry shop-x/001-laces.md"),
        "{note}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_upload_is_tried_again_and_the_post_goes_out_once() {
    let (clock, fake, p) = oauth2_setup().await;
    fake.fail_next_upload(Fault::ErrorBeforeCreate(503));
    std::fs::create_dir_all(p.root().join("queue/_media")).unwrap();
    std::fs::write(
        p.root().join("queue/_media/box.png"),
        harness::png(800, 800, 2048),
    )
    .unwrap();
    let text = "New boxes, same shoes.";
    p.post(
        &format!("{CHANNEL}/001-box.md"),
        &format!(
            "+++\nmedia = [{{ path = \"../_media/box.png\", alt = \"A shoe box\" }}]\n+++\n{text}\n"
        ),
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-box.md", "published").await;
    assert_eq!(d.stop().await, 1);

    let state = fake.state();
    assert_eq!(state.requests_to("POST", "/2/media/upload"), 2);
    assert_eq!(state.media.len(), 1, "the refused upload stored nothing");
    assert_eq!(
        state.create_requests, 1,
        "nothing was posted before the upload worked"
    );
    assert_eq!(state.posts_with_text(text), 1);
}

#[tokio::test(start_paused = true)]
async fn an_image_only_post_whose_answer_is_lost_ends_unknown_and_is_not_resent() {
    let (clock, fake, p) = oauth2_setup().await;
    fake.fail_next_create(Fault::ErrorAfterCreate(500));
    std::fs::create_dir_all(p.root().join("queue/_media")).unwrap();
    std::fs::write(
        p.root().join("queue/_media/shelf.png"),
        harness::png(800, 600, 2048),
    )
    .unwrap();
    // No text: nothing to recognise the post by among the account's posts.
    p.post(
        &format!("{CHANNEL}/001-shelf.md"),
        "+++\nmedia = [{ path = \"../_media/shelf.png\", alt = \"The new shelf\" }]\n+++\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-shelf.md", "unknown").await;
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    assert_eq!(d.stop().await, 0);

    let state = fake.state();
    assert_eq!(state.posts.len(), 1, "it went out, once");
    assert_eq!(state.create_requests, 1, "never resent blind");
    drop(state);
    let rows = log(&p);
    let unknown: Vec<&Row> = rows.iter().filter(|r| r.status == "unknown").collect();
    assert_eq!(unknown.len(), 1, "{rows:#?}");
    assert!(
        unknown[0]
            .detail
            .contains("cadenced resolve shop-x/001-shelf.md --posted"),
        "{:#?}",
        unknown[0]
    );
}

#[tokio::test(start_paused = true)]
async fn a_refresh_token_x_refuses_pauses_the_channel_and_asks_for_cadenced_auth() {
    let clock = TestClock::at(START);
    let fake = FakeX::start_with_clock(clock.clone()).await;
    let p = project(&fake, Login::Refresh);
    // Rotated away by another copy of the token (or revoked): X no longer knows it.
    seed_refresh_token(&p, "fakexrt-not-known-to-x", clock_now(&clock));
    p.post(
        &format!("{CHANNEL}/001-sale.md"),
        "Sale on all trail runners until Sunday night.\n",
    );
    let d = harness::start(&p, &clock);
    until_done(&p, "shop-x/001-sale.md", "retried").await;
    tokio::time::sleep(Duration::from_secs(16 * 60)).await;
    assert_eq!(d.stop().await, 0);

    let state = fake.state();
    assert_eq!(
        state.refresh_refused,
        ["fakexrt-not-known-to-x"],
        "asked once"
    );
    assert_eq!(state.requests_to("POST", "/2/tweets"), 0);
    drop(state);
    assert!(queued(&p, "shop-x/001-sale.md"), "the post stays queued");
    let rows = log(&p);
    let retried: Vec<&Row> = rows.iter().filter(|r| r.status == "retried").collect();
    assert_eq!(retried.len(), 1, "{rows:#?}");
    assert!(
        retried[0].detail.contains("cadenced auth shop-x")
            && retried[0]
                .detail
                .contains("Value passed for the token was invalid."),
        "{:#?}",
        retried[0]
    );
    let tokens = TokenStore::beside(&harness::database(&p))
        .get(CHANNEL)
        .unwrap();
    assert!(tokens.needs_auth.is_some());
    assert!(
        !harness::contains(
            &std::fs::read(harness::database(&p)).unwrap(),
            "fakexrt-not-known-to-x"
        ),
        "the refused token is not in the database either"
    );
}
