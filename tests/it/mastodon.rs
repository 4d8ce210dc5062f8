//! The Mastodon adapter against a local server that behaves like Mastodon
//! (`fake_mastodon`): what it sends, how it classifies each failure, the idempotency window,
//! and the read-back after an unknown outcome. No sleeps: every test awaits the adapter or
//! the server's state.

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use cadenced::cadence::similarity::normalize;
use cadenced::config::Secret;
use cadenced::platforms::Platform;
use cadenced::platforms::adapter::{
    AnyAdapter, AttemptInfo, Credentials, HttpAdapter, MemoryMemo, Outgoing, OutgoingMedia,
    PlainFiles, PublishError, Receipt, Reconciled, Sent,
};
use cadenced::platforms::keys::{Settings, Value as KeyValue};
use jiff::{SignedDuration, Timestamp};

use crate::fake_mastodon::{CreateFault, FakeMastodon, TOKEN, UploadFault};

const CHANNEL: &str = "shop-mastodon";

/// reqwest is built without a crypto provider; the daemon installs ring at start-up.
fn install_crypto() {
    // Err means another test installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A Mastodon channel's adapter, as `adapter::connect` builds it, with every request's
/// time-out capped at `cap`.
struct Masto(AnyAdapter);

fn masto_at(instance: String, token: &str, cap: Option<Duration>) -> Masto {
    install_crypto();
    let mut credentials = Credentials::default();
    credentials.insert("token", Secret::new(token));
    Masto(AnyAdapter::Http(HttpAdapter {
        platform: Platform::named("mastodon").unwrap(),
        channel: CHANNEL.into(),
        settings: Settings::new().with("instance", KeyValue::Url(instance)),
        credentials,
        client: cadenced::platforms::http::client().unwrap(),
        tokens: None,
        media: Arc::new(PlainFiles { max_bytes: 1 << 20 }),
        timeout_cap: cap,
    }))
}

fn adapter(fake: &FakeMastodon) -> Masto {
    masto_at(fake.url(), TOKEN, None)
}

impl Masto {
    /// One attempt as the daemon runs it: calls again when the adapter says "not yet" (the
    /// fake's processing is counted in polls, so nothing needs to wait), up to 50 times.
    async fn publish(&self, post: &Outgoing, now: Timestamp) -> Result<Receipt, PublishError> {
        let memo = MemoryMemo::default();
        for _ in 0..50 {
            match self.0.publish(post, &memo, now).await? {
                Sent::Published(receipt) => return Ok(receipt),
                Sent::NotYet { .. } => continue,
            }
        }
        panic!("still not done after 50 calls")
    }

    async fn reconcile(
        &self,
        post: &Outgoing,
        attempt: &AttemptInfo,
        now: Timestamp,
    ) -> Reconciled {
        self.0.reconcile(post, attempt, now).await
    }

    fn can_resend_same_key(&self, started: Timestamp, now: Timestamp) -> bool {
        self.0.can_resend_same_key(started, now)
    }

    async fn max_characters(&self) -> Option<usize> {
        self.0
            .learn_limits(t(NOW))
            .await
            .and_then(|l| l.max_characters)
    }
}

fn post(text: &str, key: &str) -> Outgoing {
    Outgoing {
        started: t(NOW),
        channel: CHANNEL.into(),
        platform: Platform::named("mastodon").unwrap(),
        file: format!("{CHANNEL}/black-friday.md"),
        text: text.into(),
        media: Vec::new(),
        link: None,
        lang: None,
        fields: toml::Table::new(),
        idempotency_key: key.into(),
    }
}

fn attempt(post: &Outgoing, started: Timestamp) -> AttemptInfo {
    AttemptInfo {
        started,
        idempotency_key: post.idempotency_key.clone(),
        normalized: normalize(&post.text),
    }
}

/// A time for `now` arguments; the adapter only uses it when the server sends no `Date`.
fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-11-27T09:00:00Z";

#[tokio::test]
async fn publishes_the_text_with_its_link_fields_and_key() {
    let fake = FakeMastodon::start().await;
    let mut post = post("Black Friday: 30% off & free shipping!", "key-text-1");
    post.link = Some("https://shop.example/black-friday".into());
    post.lang = Some("de-AT".into());
    post.fields = r#"
        visibility = "unlisted"
        spoiler_text = "Sale"
        sensitive = true
    "#
    .parse()
    .unwrap();

    let receipt = adapter(&fake).publish(&post, t(NOW)).await.unwrap();

    let statuses = fake.statuses();
    assert_eq!(statuses.len(), 1);
    let status = &statuses[0];
    assert_eq!(
        status.text,
        "Black Friday: 30% off & free shipping!\n\nhttps://shop.example/black-friday"
    );
    assert_eq!(status.idempotency_key.as_deref(), Some("key-text-1"));
    assert_eq!(status.visibility, "unlisted");
    assert_eq!(status.spoiler_text, "Sale");
    assert!(status.sensitive);
    assert_eq!(status.language.as_deref(), Some("de"));
    assert_eq!(receipt.remote_id.as_deref(), Some(status.id.as_str()));
    assert_eq!(
        receipt.remote_url,
        Some(format!("{}/@shop/{}", fake.url(), status.id))
    );
    assert_eq!(receipt.http_status, Some(200));
    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/statuses")
        .unwrap();
    assert_eq!(
        create.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn uploads_media_with_alt_text_and_waits_while_it_processes() {
    let fake = FakeMastodon::start().await;
    // Two polls answer 206 (still processing) before the attachment is ready.
    fake.set_processing_polls(2);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("sneakers.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\nnot really an image").unwrap();
    let jpg = dir.path().join("box.JPG");
    std::fs::write(&jpg, vec![0xffu8; 5000]).unwrap();
    let mut post = post("Red sneakers are back", "key-media-1");
    post.media = vec![
        OutgoingMedia {
            path: png.clone(),
            rel: PathBuf::from("img/sneakers.png"),
            alt: Some("Red sneakers on a white shelf".into()),
            bytes: 27,
            dimensions: None,
        },
        OutgoingMedia {
            path: jpg,
            rel: PathBuf::from("img/box.JPG"),
            alt: None,
            bytes: 5000,
            dimensions: None,
        },
    ];

    let receipt = adapter(&fake).publish(&post, t(NOW)).await.unwrap();

    let media = fake.media();
    assert_eq!(media.len(), 2);
    assert_eq!(media[0].file_name.as_deref(), Some("sneakers.png"));
    assert_eq!(media[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(media[0].bytes, 27);
    assert_eq!(
        media[0].description.as_deref(),
        Some("Red sneakers on a white shelf")
    );
    assert_eq!(media[0].polls, 3, "two 206 answers, then 200");
    assert_eq!(media[1].content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(media[1].description, None);
    let statuses = fake.statuses();
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        statuses[0].media_ids,
        vec![media[0].id.clone(), media[1].id.clone()]
    );
    assert_eq!(receipt.remote_id, Some(statuses[0].id.clone()));
}

#[tokio::test]
async fn media_still_processing_is_not_yet_and_the_upload_is_not_repeated() {
    let fake = FakeMastodon::start().await;
    fake.set_processing_polls(3);
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("clip.mp4");
    std::fs::write(&mp4, b"....ftypisom").unwrap();
    let mut post = post("Watch the clip", "key-media-slow");
    post.media = vec![OutgoingMedia {
        path: mp4,
        rel: PathBuf::from("img/clip.mp4"),
        alt: Some("A clip".into()),
        bytes: 12,
        dimensions: None,
    }];
    let adapter = adapter(&fake);
    let memo = MemoryMemo::default();

    // The adapter does not wait: it says when to ask again, and keeps the media id.
    let mut not_yet = 0;
    let receipt = loop {
        match adapter.0.publish(&post, &memo, t(NOW)).await.unwrap() {
            Sent::NotYet { at, why } => {
                assert!(at > t(NOW), "{at}");
                assert!(why.contains("img/clip.mp4"), "{why}");
                assert_eq!(
                    fake.create_requests(),
                    0,
                    "no create with unprocessed media"
                );
                not_yet += 1;
                assert!(not_yet < 10);
            }
            Sent::Published(receipt) => break receipt,
        }
    };
    assert_eq!(
        not_yet, 3,
        "one answer per poll that found it still processing"
    );
    assert_eq!(fake.media().len(), 1, "uploaded once, polled again");
    assert_eq!(fake.statuses().len(), 1);
    assert_eq!(receipt.remote_id, Some(fake.statuses()[0].id.clone()));
}

#[tokio::test]
async fn a_failed_media_upload_is_transient_and_creates_nothing() {
    let fake = FakeMastodon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.png");
    std::fs::write(&png, b"png").unwrap();
    let mut post = post("With a picture", "key-upload-500");
    post.media = vec![OutgoingMedia {
        path: png,
        rel: PathBuf::from("a.png"),
        alt: Some("A picture".into()),
        bytes: 3,
        dimensions: None,
    }];
    let adapter = adapter(&fake);

    fake.fail_next_upload(UploadFault::Status(503));
    let err = adapter.publish(&post, t(NOW)).await.unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Transient {
                http_status: Some(503),
                ..
            }
        ),
        "{err:?}"
    );
    fake.fail_next_upload(UploadFault::Drop);
    let err = adapter.publish(&post, t(NOW)).await.unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    assert_eq!(fake.create_requests(), 0);
    assert!(fake.statuses().is_empty());
}

#[tokio::test]
async fn the_same_idempotency_key_creates_one_status_for_an_hour() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    let post = post("Only once, please", "key-replay");

    let first = adapter.publish(&post, t(NOW)).await.unwrap();
    let second = adapter.publish(&post, t(NOW)).await.unwrap();

    assert_eq!(first, second, "the replay returns the same status");
    assert_eq!(fake.create_requests(), 2);
    assert_eq!(fake.statuses_with_key("key-replay"), 1);
    assert_eq!(fake.statuses_with_text("Only once, please"), 1);

    // A new key is a new post.
    let mut other = post.clone();
    other.idempotency_key = "key-replay-2".into();
    let third = adapter.publish(&other, t(NOW)).await.unwrap();
    assert_ne!(third.remote_id, first.remote_id);

    // After an hour Mastodon has forgotten the key: why the adapter stops at 55 minutes.
    fake.advance(SignedDuration::from_mins(61));
    let late = adapter.publish(&post, t(NOW)).await.unwrap();
    assert_ne!(late.remote_id, first.remote_id);
    assert_eq!(fake.statuses_with_key("key-replay"), 2);
}

#[tokio::test]
async fn a_refused_token_is_permanent_and_names_the_channel_not_the_token() {
    let fake = FakeMastodon::start().await;
    install_crypto();
    let wrong = "wrong-token-5f4dcc3b5aa765d61d8327deb882cf99";
    let adapter = masto_at(fake.url(), wrong, None);

    let err = adapter
        .publish(&post("Hello", "key-401"), t(NOW))
        .await
        .unwrap_err();

    let PublishError::Permanent {
        reason,
        fix,
        http_status,
    } = &err
    else {
        panic!("expected permanent, got {err:?}");
    };
    assert_eq!(*http_status, Some(401));
    assert!(
        reason.contains("refused the token of channel `shop-mastodon` (HTTP 401"),
        "{reason}"
    );
    assert!(reason.contains("The access token is invalid"), "{reason}");
    assert!(fix.contains("write:statuses and write:media"), "{fix}");
    assert!(!format!("{err:?}").contains(wrong));
    assert!(fake.statuses().is_empty());

    // A token without the write scopes: 403, the same fix.
    fake.set_read_only(true);
    let err = self::adapter(&fake)
        .publish(&post("Hello", "key-403"), t(NOW))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Permanent {
                http_status: Some(403),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_422_is_permanent_with_the_servers_words() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);

    fake.fail_next_create(CreateFault::Reject422(
        "Validation failed: Text contains a forbidden word".into(),
    ));
    let err = adapter
        .publish(&post("Hello", "key-422"), t(NOW))
        .await
        .unwrap_err();
    let PublishError::Permanent {
        reason,
        http_status,
        ..
    } = &err
    else {
        panic!("expected permanent, got {err:?}");
    };
    assert_eq!(*http_status, Some(422));
    assert!(
        reason.contains("Validation failed: Text contains a forbidden word"),
        "{reason}"
    );

    // Media the instance has not finished: nothing was created, and waiting helps.
    fake.fail_next_create(CreateFault::Reject422(
        "Cannot attach files that have not finished processing. Try again in a moment!".into(),
    ));
    let sent = adapter
        .0
        .publish(
            &post("Hello", "key-422-media"),
            &MemoryMemo::default(),
            t(NOW),
        )
        .await
        .unwrap();
    assert!(
        matches!(&sent, Sent::NotYet { at, .. } if *at > t(NOW)),
        "{sent:?}"
    );

    // The fake's own validation: an instance with a smaller limit than the config said.
    fake.set_max_characters(10);
    let err = adapter
        .publish(&post("This is longer than ten", "key-422-long"), t(NOW))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Text character limit of 10 exceeded"),
        "{err}"
    );
    assert!(fake.statuses().is_empty());
}

#[tokio::test]
async fn a_429_is_transient_and_waits_until_the_reset() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    let post = post("Hello", "key-429");

    // Mastodon's reset carries microseconds; the Date header is whole seconds. The wait is
    // measured on the server's clock, whatever ours says.
    let date = t("2026-11-27T09:00:00Z");
    fake.fail_next_create(CreateFault::TooManyRequests {
        reset: Some(t("2026-11-27T09:05:00.250000Z")),
        date: Some(date),
        retry_after: None,
    });
    let err = adapter
        .publish(&post, t("2026-11-27T08:00:00Z"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Transient {
            reason: "Mastodon is rate limiting the post: Too many requests".into(),
            retry_after: Some(SignedDuration::new(300, 250_000_000)),
            http_status: Some(429),
        }
    );

    // Without a Date header the reset counts from `now`.
    fake.fail_next_create(CreateFault::TooManyRequests {
        reset: Some(t("2026-11-27T09:01:30Z")),
        date: None,
        retry_after: None,
    });
    let err = adapter.publish(&post, t(NOW)).await.unwrap_err();
    assert!(
        matches!(err, PublishError::Transient { retry_after: Some(d), .. } if d == SignedDuration::from_secs(90)),
        "{err:?}"
    );

    // A proxy's Retry-After, when there is no reset header.
    fake.fail_next_create(CreateFault::TooManyRequests {
        reset: None,
        date: Some(date),
        retry_after: Some("120".into()),
    });
    let err = adapter.publish(&post, t(NOW)).await.unwrap_err();
    assert!(
        matches!(err, PublishError::Transient { retry_after: Some(d), .. } if d == SignedDuration::from_secs(120)),
        "{err:?}"
    );
    assert!(fake.statuses().is_empty());
    assert_eq!(fake.create_requests(), 3);
}

#[tokio::test]
async fn a_500_before_the_create_is_unknown_then_not_posted_and_safe_to_resend() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    let post = post("Resend me safely", "key-500-before");
    let started = fake.now();
    // The same text went out yesterday: an earlier post, not this attempt.
    fake.add_status("Resend me safely", started - SignedDuration::from_hours(24));

    fake.fail_next_create(CreateFault::ErrorBeforeCreate(500));
    let err = adapter.publish(&post, t(NOW)).await.unwrap_err();
    // The client cannot tell a 500 before the insert from one after it.
    assert!(
        matches!(
            err,
            PublishError::Unknown {
                http_status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        adapter
            .reconcile(&post, &attempt(&post, started), t(NOW))
            .await,
        Reconciled::NotPosted
    );
    adapter.publish(&post, t(NOW)).await.unwrap();
    assert_eq!(fake.statuses_with_key("key-500-before"), 1);
    assert_eq!(fake.statuses_with_text("Resend me safely"), 2);
}

#[tokio::test]
async fn a_500_after_the_create_is_unknown_and_the_read_back_finds_the_post() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    // HTML-significant characters, a line break, a long link, a hashtag and a mention:
    // the read-back sees only the rendered HTML.
    let mut post = post(
        "Black Friday <today> & \"tomorrow\": 30% off!\nAsk @help@shop.example #Sale",
        "key-500-after",
    );
    post.link = Some("https://shop.example/black-friday/deals?ref=mastodon".into());
    let started = fake.now();
    // Older statuses, one with the same text from a day before: not this attempt.
    fake.add_status(
        "Black Friday <today> & \"tomorrow\": 30% off!\nAsk @help@shop.example #Sale\n\n\
         https://shop.example/black-friday/deals?ref=mastodon",
        started - SignedDuration::from_hours(24),
    );
    fake.add_status("Something else", started - SignedDuration::from_mins(1));

    fake.fail_next_create(CreateFault::ErrorAfterCreate(500));
    let err = adapter.publish(&post, t(NOW)).await.unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Unknown {
                http_status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    let created = fake
        .statuses()
        .into_iter()
        .find(|s| s.idempotency_key.as_deref() == Some("key-500-after"))
        .expect("the fake created the status before failing");

    let found = adapter
        .reconcile(&post, &attempt(&post, started), t(NOW))
        .await;
    let Reconciled::Posted(receipt) = found else {
        panic!("expected posted, got {found:?}");
    };
    assert_eq!(receipt.remote_id.as_deref(), Some(created.id.as_str()));
    assert_eq!(
        receipt.remote_url,
        Some(format!("{}/@shop/{}", fake.url(), created.id))
    );
    // Reading back created nothing.
    assert_eq!(fake.statuses().len(), 3);
}

#[tokio::test]
async fn a_connection_dropped_after_the_create_is_unknown_and_found_by_the_read_back() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    let post = post("Dropped on the way back", "key-drop-after");
    let started = fake.now();

    fake.fail_next_create(CreateFault::DropAfterCreate);
    let err = adapter.publish(&post, t(NOW)).await.unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Unknown {
                http_status: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fake.statuses_with_key("key-drop-after"), 1);
    assert!(matches!(
        adapter
            .reconcile(&post, &attempt(&post, started), t(NOW))
            .await,
        Reconciled::Posted(_)
    ));
}

#[tokio::test]
async fn a_connection_dropped_before_the_create_is_unknown_then_not_posted() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    let post = post("Dropped before", "key-drop-before");
    let started = fake.now();

    fake.fail_next_create(CreateFault::DropBeforeCreate);
    let err = adapter.publish(&post, t(NOW)).await.unwrap_err();
    assert!(matches!(err, PublishError::Unknown { .. }), "{err:?}");
    assert_eq!(
        adapter
            .reconcile(&post, &attempt(&post, started), t(NOW))
            .await,
        Reconciled::NotPosted
    );
}

#[tokio::test]
async fn a_time_out_after_the_create_is_unknown() {
    let fake = FakeMastodon::start().await;
    install_crypto();
    // Long enough that a loaded machine still gets the request to the fake before the
    // time-out (a shorter cap made this flaky under the full suite).
    let adapter = masto_at(fake.url(), TOKEN, Some(Duration::from_secs(3)));
    let post = post("Slow server", "key-hang");

    fake.fail_next_create(CreateFault::HangAfterCreate);
    let publish = tokio::spawn({
        let post = post.clone();
        async move { adapter.publish(&post, t(NOW)).await }
    });
    // The status exists while the request still waits for its answer.
    fake.wait_until("the hanging create stored its status", |s| {
        s.statuses_with_key("key-hang") == 1
    })
    .await;
    let err = publish.await.unwrap().unwrap_err();
    assert!(matches!(err, PublishError::Unknown { .. }), "{err:?}");
    assert!(err.to_string().contains("may have been published"), "{err}");
}

#[tokio::test]
async fn an_unreachable_instance_is_transient() {
    install_crypto();
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let adapter = masto_at(format!("http://127.0.0.1:{port}"), TOKEN, None);
    let err = adapter
        .publish(&post("Hello", "key-refused"), t(NOW))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    // Nor can it read back: unknown, never "not posted".
    let post = post("Hello", "key-refused");
    assert_eq!(
        adapter
            .reconcile(&post, &attempt(&post, t(NOW)), t(NOW))
            .await,
        Reconciled::Unknown
    );
}

#[tokio::test]
async fn the_read_back_pages_through_newer_statuses() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    let post = post("Find me below the fold", "key-paging");
    let started = fake.now();
    fake.fail_next_create(CreateFault::DropAfterCreate);
    adapter.publish(&post, t(NOW)).await.unwrap_err();
    // 45 newer statuses push it off the first page of 40.
    for i in 0..45 {
        fake.add_status(
            &format!("Later post {i}"),
            started + SignedDuration::from_secs(i + 1),
        );
    }

    let found = adapter
        .reconcile(&post, &attempt(&post, started), t(NOW))
        .await;
    assert!(matches!(found, Reconciled::Posted(_)), "{found:?}");
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/statuses?"))
        .count();
    assert_eq!(pages, 2);
    // The other attempt's text is not there.
    let missing = self::post("Never sent", "key-never");
    assert_eq!(
        adapter
            .reconcile(&missing, &attempt(&missing, started), t(NOW))
            .await,
        Reconciled::NotPosted
    );
}

#[tokio::test]
async fn a_read_back_with_a_refused_token_is_unknown() {
    let fake = FakeMastodon::start().await;
    install_crypto();
    let adapter = masto_at(fake.url(), "wrong", None);
    let post = post("Hello", "key-unknown");
    assert_eq!(
        adapter
            .reconcile(&post, &attempt(&post, fake.now()), t(NOW))
            .await,
        Reconciled::Unknown
    );
}

#[tokio::test]
async fn the_same_key_is_resent_only_within_55_minutes() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    let started = t(NOW);
    let at = |mins| started + SignedDuration::from_mins(mins);
    assert!(adapter.can_resend_same_key(started, at(0)));
    assert!(adapter.can_resend_same_key(started, at(54)));
    assert!(adapter.can_resend_same_key(started, at(55)));
    assert!(!adapter.can_resend_same_key(started, at(56)));
    assert!(!adapter.can_resend_same_key(started, at(120)));
}

#[tokio::test]
async fn reads_the_instances_character_limit() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    assert_eq!(adapter.max_characters().await, Some(500));
    fake.set_max_characters(11_000);
    assert_eq!(adapter.max_characters().await, Some(11_000));
    // Public: a refused token does not hide it.
    let wrong = masto_at(fake.url(), "wrong", None);
    assert_eq!(wrong.max_characters().await, Some(11_000));
}

#[tokio::test]
async fn a_media_only_post_is_read_back_by_its_descriptions() {
    let fake = FakeMastodon::start().await;
    let adapter = adapter(&fake);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.png");
    std::fs::write(&png, b"png").unwrap();
    let mut post = post("", "key-media-only");
    post.media = vec![OutgoingMedia {
        path: png,
        rel: PathBuf::from("a.png"),
        alt: Some("The new autumn collection".into()),
        bytes: 3,
        dimensions: None,
    }];
    let started = fake.now();
    // Another text-less post in the window, with other media.
    fake.add_status("", started);

    fake.fail_next_create(CreateFault::DropAfterCreate);
    adapter.publish(&post, t(NOW)).await.unwrap_err();
    let created = fake.statuses().pop().unwrap();
    assert_eq!(created.idempotency_key.as_deref(), Some("key-media-only"));

    let found = adapter
        .reconcile(&post, &attempt(&post, started), t(NOW))
        .await;
    let Reconciled::Posted(receipt) = found else {
        panic!("expected posted, got {found:?}");
    };
    assert_eq!(receipt.remote_id, Some(created.id));
    // The same post with another description was not sent.
    post.media[0].alt = Some("Another picture".into());
    assert_eq!(
        adapter
            .reconcile(&post, &attempt(&post, started), t(NOW))
            .await,
        Reconciled::NotPosted
    );
}

/// The way a crash test uses the fake: on its own thread, the publisher elsewhere (here a
/// runtime on another thread; there the `cadenced` binary), the test waiting without a
/// runtime.
#[test]
fn the_fake_runs_on_its_own_thread_for_synchronous_tests() {
    let fake = FakeMastodon::start_on_thread();
    fake.fail_next_create(CreateFault::HangAfterCreate);
    let url = fake.url();
    let publisher = std::thread::spawn(move || {
        let adapter = masto_at(url, TOKEN, Some(Duration::from_secs(5)));
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(adapter.publish(&post("From another process", "key-thread"), t(NOW)))
    });
    fake.wait_until_blocking("the create arrived", |s| {
        s.statuses_with_key("key-thread") == 1
    });
    assert_eq!(fake.statuses_with_text("From another process"), 1);
    // Stopping the server ends the hanging request: the publisher cannot tell.
    drop(fake);
    let err = publisher.join().unwrap().unwrap_err();
    assert!(matches!(err, PublishError::Unknown { .. }), "{err:?}");
}
