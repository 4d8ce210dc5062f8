//! Bluesky end to end against the real reference server (`@atproto/pds`, started by
//! `tests/servers/bluesky-pds/`), with the real `cadenced run` binary killed with SIGKILL
//! while it publishes: posts with a link card, hashtags, CJK text with a CJK hashtag, a
//! mention, an emoji ZWJ sequence and an image with alt text arrive exactly as intended, and
//! each exactly once.
//!
//! The switch: these tests run when `CADENCED_PDS_URL` names a running server
//! (`URL=$(tests/servers/bluesky-pds/start.sh)` prints it; `.ci/run` does this). Without it
//! they print why they were skipped and pass, so `cargo test` on a machine without Node works.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Project, kill9, published_count};

const APP_PASSWORD_VAR: &str = "PDS_APP_PASSWORD";

fn pds() -> Option<String> {
    match std::env::var("CADENCED_PDS_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_string()),
        _ => {
            eprintln!(
                "skipped: set CADENCED_PDS_URL to a running reference PDS to run the Bluesky end-to-end tests \
                 (tests/servers/bluesky-pds/setup.sh once, then CADENCED_PDS_URL=$(tests/servers/bluesky-pds/start.sh))"
            );
            None
        }
    }
}

/// One request to the PDS, answered as JSON (the test itself is synchronous: it drives
/// the binary).
fn call(request: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder) -> Value {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let request = request(&client);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let answer = request.send().await.unwrap();
            let status = answer.status();
            let body: Value = answer.json().await.unwrap();
            assert!(status.is_success(), "{status}: {body}");
            body
        })
}

/// A new account on the PDS: `(handle, did, app password)`.
fn account(pds: &str, name: &str) -> (String, String, String) {
    let handle = format!("{name}{}.test", &cadenced::platforms::http::nonce()[..8]);
    let created = call(|c| {
        c.post(format!("{pds}/xrpc/com.atproto.server.createAccount"))
            .json(&json!({ "handle": handle, "email": format!("{handle}@example.com"), "password": "pw-not-the-app-password-1" }))
    });
    let jwt = created["accessJwt"].as_str().unwrap().to_string();
    let app = call(|c| {
        c.post(format!("{pds}/xrpc/com.atproto.server.createAppPassword"))
            .bearer_auth(jwt)
            .json(&json!({ "name": "cadenced" }))
    });
    (
        handle,
        created["did"].as_str().unwrap().to_string(),
        app["password"].as_str().unwrap().to_string(),
    )
}

/// Every post record of the account, as the server has them.
fn records(pds: &str, handle: &str) -> Vec<(String, Value)> {
    let answer = call(|c| {
        c.get(format!(
            "{pds}/xrpc/com.atproto.repo.listRecords?repo={handle}&collection=app.bsky.feed.post&limit=100"
        ))
    });
    answer["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["uri"].as_str().unwrap().to_string(), r["value"].clone()))
        .collect()
}

/// A web page with Open Graph metadata, for the link card, on loopback.
fn card_page() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/winter-sale", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "<html><head><title>Shop</title>\
                <meta property=\"og:title\" content=\"Winter sale &amp; repairs\">\
                <meta property=\"og:description\" content=\"30% off every sneaker until Sunday\">\
                </head><body>…</body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A real 3×2 PNG (the PDS and its readers see an image; its header gives the ratio).
fn png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let chunk = |kind: &[u8], data: &[u8]| -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        c.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        c
    };
    let mut ihdr = 3u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&2u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend(chunk(b"IHDR", &ihdr));
    // Two rows of three red pixels, stored (uncompressed) in a zlib stream.
    let raw: Vec<u8> = (0..2)
        .flat_map(|_| [0u8, 255, 0, 0, 255, 0, 0, 255, 0, 0])
        .collect();
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    z.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for byte in &raw {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    png.extend(chunk(b"IDAT", &z));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn cadenced(p: &Project, log: &Path, password: &str) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cadenced"));
    cmd.current_dir(p.root())
        .args(["run", "--config"])
        .arg(p.config())
        .env(APP_PASSWORD_VAR, password)
        .env("RUST_LOG", "debug")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        );
    cmd
}

/// The text a facet covers, by its UTF-8 byte offsets.
fn faceted<'a>(text: &'a str, facet: &Value) -> &'a str {
    let start = facet["index"]["byteStart"].as_u64().unwrap() as usize;
    let end = facet["index"]["byteEnd"].as_u64().unwrap() as usize;
    &text[start..end]
}

#[test]
fn bluesky_posts_arrive_as_intended_and_once_across_sigkills_on_the_reference_server() {
    let Some(pds) = pds() else { return };
    let (handle, _did, password) = account(&pds, "shop");
    let (friend, friend_did, _) = account(&pds, "anna");
    let page = card_page();

    let p = Project::new(&format!(
        r#"
[defaults]
timezone = "UTC"

[channels.shop]
platform = "bluesky"
service = "{pds}"
handle = "{handle}"
app_password = {{ env = "{APP_PASSWORD_VAR}" }}
slots = ["* * * * * *"]
max_per_day = 100
min_gap = "0s"
"#
    ));
    std::fs::create_dir_all(p.root().join("queue/_media")).unwrap();
    std::fs::write(p.root().join("queue/_media/red.png"), png()).unwrap();
    p.post(
        "shop/001-card.md",
        &format!("+++\nlink = \"{page}\"\n+++\nOur winter sale starts today #WinterSale\n"),
    );
    p.post(
        "shop/002-cjk.md",
        &format!("冬季促销：全场八折！ #冬季促销 感谢 @{friend}\n"),
    );
    p.post(
        "shop/003-family.md",
        "Family day at the shop 👩‍👩‍👧 bring everyone #家族の日\n",
    );
    p.post(
        "shop/004-image.md",
        "+++\nmedia = [{ path = \"../_media/red.png\", alt = \"A red swatch of the new canvas\" }]\n+++\nThe new canvas colour is here: shop.com/canvas\n",
    );
    let stderr = p.root().join("stderr.log");

    // Kills at moments spread over the publishing (a fixed, varied sequence).
    for millis in [1500, 700, 2300, 400, 1200, 900] {
        let mut child = cadenced(&p, &stderr, &password).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(millis)); // the kill's moment, not a wait
        kill9(&mut child);
        if published_count(&p, "shop") == 4 {
            break;
        }
    }
    let started = |log: &str| log.matches("cadenced is running").count();
    let before = started(&std::fs::read_to_string(&stderr).unwrap_or_default());
    let mut child = cadenced(&p, &stderr, &password).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Until this run is up (its signal handlers installed) and every file is out.
    while (published_count(&p, "shop") < 4
        || started(&std::fs::read_to_string(&stderr).unwrap_or_default()) == before)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100)); // polling the outcome with a deadline
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "SIGTERM exits 0");
    let logs = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(
        published_count(&p, "shop"),
        4,
        "every file ends in published/\n{logs}"
    );

    let records = records(&pds, &handle);
    let texts: Vec<&str> = records
        .iter()
        .map(|(_, r)| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(records.len(), 4, "each post exactly once: {texts:#?}");
    let find = |start: &str| {
        records
            .iter()
            .find(|(_, r)| r["text"].as_str().unwrap().starts_with(start))
            .unwrap_or_else(|| panic!("no record starting {start}: {texts:#?}"))
            .1
            .clone()
    };

    // The card: its title and description read from the page; the hashtag a tag facet.
    let card = find("Our winter sale");
    assert_eq!(card["embed"]["$type"], "app.bsky.embed.external");
    assert_eq!(card["embed"]["external"]["uri"], page.as_str());
    assert_eq!(card["embed"]["external"]["title"], "Winter sale & repairs");
    assert_eq!(
        card["embed"]["external"]["description"],
        "30% off every sneaker until Sunday"
    );
    let text = card["text"].as_str().unwrap();
    assert_eq!(faceted(text, &card["facets"][0]), "#WinterSale");
    assert_eq!(card["facets"][0]["features"][0]["tag"], "WinterSale");

    // CJK: the hashtag and the mention at their UTF-8 byte offsets; the mention is the DID.
    let cjk = find("冬季促销");
    let text = cjk["text"].as_str().unwrap();
    let facets = cjk["facets"].as_array().unwrap();
    assert_eq!(faceted(text, &facets[0]), "#冬季促销");
    assert_eq!(facets[0]["features"][0]["tag"], "冬季促销");
    assert_eq!(facets[0]["index"]["byteStart"], 31);
    assert_eq!(faceted(text, &facets[1]), format!("@{friend}"));
    assert_eq!(facets[1]["features"][0]["did"], friend_did.as_str());

    // The emoji ZWJ sequence is kept whole; the tag after it is at the right bytes.
    let family = find("Family day");
    let text = family["text"].as_str().unwrap();
    assert!(text.contains("👩‍👩‍👧"), "{text}");
    assert_eq!(faceted(text, &family["facets"][0]), "#家族の日");

    // The image with its alt text and its aspect ratio; the bare domain a link facet.
    let image = find("The new canvas");
    assert_eq!(image["embed"]["$type"], "app.bsky.embed.images");
    let img = &image["embed"]["images"][0];
    assert_eq!(img["alt"], "A red swatch of the new canvas");
    assert_eq!(img["aspectRatio"], json!({ "width": 3, "height": 2 }));
    assert_eq!(img["image"]["mimeType"], "image/png");
    let text = image["text"].as_str().unwrap();
    assert_eq!(faceted(text, &image["facets"][0]), "shop.com/canvas");
    assert_eq!(
        image["facets"][0]["features"][0]["uri"],
        "https://shop.com/canvas"
    );

    // The log has the at:// URI and the bsky.app address of each; no secret anywhere.
    let db = rusqlite::Connection::open(p.root().join("state/cadenced.sqlite")).unwrap();
    let rows: Vec<(String, String)> = db
        .prepare("SELECT remote_id, remote_url FROM publish_log WHERE status = 'published'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (uri, url) in &rows {
        assert!(
            records.iter().any(|(u, _)| u == uri),
            "{uri} is a record on the server"
        );
        let rkey = uri.rsplit('/').next().unwrap();
        assert_eq!(
            url,
            &format!("https://bsky.app/profile/{handle}/post/{rkey}")
        );
    }
    assert!(
        !logs.contains(&password),
        "a log line holds the app password"
    );
    let raw = std::fs::read(p.root().join("state/cadenced.sqlite")).unwrap();
    assert!(
        !raw.windows(password.len())
            .any(|w| w == password.as_bytes())
    );
    let tokens = std::fs::read_to_string(p.root().join("state/tokens.json")).unwrap();
    assert!(
        tokens.contains("access_jwt"),
        "the session is kept in the token store"
    );
}

#[test]
fn a_wrong_app_password_pauses_the_channel_with_the_reason() {
    let Some(pds) = pds() else { return };
    let (handle, _, _) = account(&pds, "wrong");
    let p = Project::new(&format!(
        "[defaults]\ntimezone = \"UTC\"\n[channels.shop]\nplatform = \"bluesky\"\nservice = \"{pds}\"\nhandle = \"{handle}\"\napp_password = {{ env = \"{APP_PASSWORD_VAR}\" }}\nslots = [\"* * * * * *\"]\n"
    ));
    p.post("shop/001.md", "Hello from the shop\n");
    let stderr = p.root().join("stderr.log");
    let mut child = cadenced(&p, &stderr, "aaaa-bbbb-cccc-dddd")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut logs = String::new();
    while Instant::now() < deadline {
        logs = std::fs::read_to_string(&stderr).unwrap_or_default();
        if logs.contains("channel disabled until the config is reloaded") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100)); // polling the log with a deadline
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    assert!(
        logs.contains("channel disabled until the config is reloaded"),
        "{logs}"
    );
    assert!(
        logs.contains("refused the credentials of channel `shop`"),
        "{logs}"
    );
    assert!(
        p.root().join("queue/shop/001.md").exists(),
        "the post stays queued"
    );
    assert!(!logs.contains("aaaa-bbbb-cccc-dddd"));
}

#[test]
fn a_second_create_with_the_same_record_key_is_refused_and_the_read_back_finds_the_first() {
    use cadenced::platforms::Platform;
    use cadenced::platforms::adapter::{
        self, AttemptInfo, ConnectCtx, MemoryMemo, Outgoing, PlainFiles, PublishError, Reconciled,
        Sent,
    };
    use cadenced::platforms::keys::{Settings, Value as KeyValue};
    use cadenced::secret::SecretRef;

    let Some(pds) = pds() else { return };
    let (handle, _, password) = account(&pds, "again");
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::new()
        .with("service", KeyValue::Url(pds.clone()))
        .with("handle", KeyValue::Text(handle.clone()))
        .with("app_password", KeyValue::Secret(SecretRef::Env("P".into())));
    let env = |_: &str| Some(password.clone());
    let ctx = ConnectCtx {
        env: &env,
        credentials_dir: None,
        outbox: dir.path(),
        tokens: Some(cadenced::tokens::TokenStore::beside(&dir.path().join("db"))),
        media: std::sync::Arc::new(PlainFiles { max_bytes: 1 << 20 }),
        hidden_env: Vec::new(),
        client: Default::default(),
    };
    let platform = Platform::named("bluesky").unwrap();
    let adapter = adapter::connect(platform, "shop", &settings, false, &ctx).unwrap();
    let now: jiff::Timestamp = "2026-11-27T09:00:00.123Z".parse().unwrap();
    let post = Outgoing {
        channel: "shop".into(),
        platform,
        file: "shop/once.md".into(),
        text: "Only once, whatever happens".into(),
        media: Vec::new(),
        link: None,
        lang: None,
        fields: toml::Table::new(),
        idempotency_key: "key-once".into(),
        started: now,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let first = adapter
            .publish(&post, &MemoryMemo::default(), now)
            .await
            .unwrap();
        let Sent::Published(first) = first else {
            panic!("{first:?}")
        };
        // The same attempt sent again (as after a lost answer): the server refuses the key
        // with HTTP 500, which cadenced reads as "maybe": never as "not posted".
        let again = adapter
            .publish(&post, &MemoryMemo::default(), now)
            .await
            .unwrap_err();
        assert!(
            matches!(
                again,
                PublishError::Unknown {
                    http_status: Some(500),
                    ..
                }
            ),
            "{again:?}"
        );
        let attempt = AttemptInfo {
            started: now,
            idempotency_key: "key-once".into(),
            normalized: String::new(),
        };
        match adapter.reconcile(&post, &attempt, now).await {
            Reconciled::Posted(found) => assert_eq!(found.remote_id, first.remote_id),
            other => panic!("the read-back did not find the post: {other:?}"),
        }
    });
    assert_eq!(records(&pds, &handle).len(), 1, "one record");
}
