//! The outbox, webhook and exec adapters against real things: files in temp folders, a real
//! HTTP server on loopback (a few lines over tokio, so each test decides exactly how the
//! server answers, hangs or hangs up), and real programs (`sh` scripts run as argv, never
//! through a shell string). The adapters come from `adapter::connect` where the config
//! decides which one a channel gets.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use cadenced::config::{self, Channel, Config};
use cadenced::platforms::Platform;
use cadenced::platforms::adapter::{
    self, AnyAdapter, AttemptInfo, ConnectCtx, MemoryMemo, Outgoing, OutgoingMedia, PlainFiles,
    PublishError, Receipt, Reconciled, Sent,
};
use cadenced::platforms::exec::ExecAdapter;
use cadenced::platforms::keys::{Settings, Value as KeyValue};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A credential value that must never reach a file, a message or a request description.
const SECRET: &str = "tok-SECRET-4f3e2d1c0b";

fn now() -> Timestamp {
    "2026-11-27T09:00:05Z".parse().unwrap()
}

fn platform(name: &str) -> Platform {
    Platform::named(name).expect("a registered platform")
}

fn outgoing(channel: &str, platform: Platform, key: &str) -> Outgoing {
    Outgoing {
        started: now(),
        channel: channel.into(),
        platform,
        file: format!("{channel}/black-friday.md"),
        text: "Black Friday: 30% off all sneakers https://shop.com/bf".into(),
        media: vec![OutgoingMedia {
            path: PathBuf::from("/srv/queue/_media/sale.jpg"),
            rel: PathBuf::from("_media/sale.jpg"),
            alt: Some("Red sneakers on a shelf".into()),
            bytes: 123_456,
            dimensions: None,
        }],
        link: None,
        lang: Some("en".into()),
        fields: toml::Table::new(),
        idempotency_key: key.into(),
    }
}

fn attempt(key: &str) -> AttemptInfo {
    AttemptInfo {
        started: now(),
        idempotency_key: key.into(),
        normalized: String::new(),
    }
}

/// A project config in `dir` with one channel of every kind; `extra` is appended.
fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        r#"
queue = "queue"
database = "state/cadenced.sqlite"
outbox = "outbox"

[defaults]
timezone = "Europe/Madrid"
slots = ["10:00"]

[channels.shop-mastodon]
platform = "mastodon"
instance = "https://mastodon.example"
token = {{ env = "SHOP_MASTODON_TOKEN" }}
dry_run = true

[channels.shop-x]
platform = "x"
token = {{ env = "SHOP_X_TOKEN" }}
dry_run = true

[channels.shop-bluesky]
platform = "bluesky"
service = "https://pds.example"
handle = "shop.bsky.social"
app_password = {{ env = "SHOP_BSKY_PASSWORD" }}
dry_run = true

[channels.announce]
platform = "webhook"
url = "https://hooks.example/in"
dry_run = true

[channels.newsletter]
platform = "outbox"
{extra}
"#
    );
    let path = dir.join("cadenced.toml");
    match config::parse(&path, &text) {
        Ok(loaded) => loaded.config,
        Err(errors) => panic!("test config is valid: {errors:?}"),
    }
}

fn channel<'c>(config: &'c Config, name: &str) -> &'c Channel {
    Channel::find(&config.channels, name).expect("channel exists")
}

/// The environment every test sees: each credential set to [`SECRET`].
fn env(name: &str) -> Option<String> {
    name.starts_with("SHOP_").then(|| SECRET.to_string())
}

/// The adapter the daemon would build for `name`.
fn for_channel(
    config: &Config,
    channel: &Channel,
    env: impl Fn(&str) -> Option<String>,
) -> Result<AnyAdapter, String> {
    let ctx = ConnectCtx {
        env: &env,
        credentials_dir: None,
        outbox: &config.outbox,
        tokens: None,
        media: Arc::new(PlainFiles { max_bytes: 1 << 20 }),
        hidden_env: Vec::new(),
        client: Default::default(),
    };
    adapter::connect(
        channel.platform,
        &channel.name,
        &channel.settings,
        channel.dry_run,
        &ctx,
    )
}

/// One publish call, as the daemon makes it; these adapters never answer "not yet".
async fn send(adapter: &AnyAdapter, post: &Outgoing) -> Result<Receipt, PublishError> {
    match adapter.publish(post, &MemoryMemo::default(), now()).await? {
        Sent::Published(receipt) => Ok(receipt),
        Sent::NotYet { why, .. } => panic!("unexpected \"not yet\": {why}"),
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

// --- outbox ----------------------------------------------------------------------------------

#[tokio::test]
async fn outbox_names_files_by_utc_time_and_stem_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let adapter = for_channel(&config, channel(&config, "newsletter"), env).unwrap();
    assert!(matches!(adapter, AnyAdapter::Outbox(_)));
    let post = outgoing("newsletter", platform("outbox"), "k1");

    let first = send(&adapter, &post).await.unwrap();
    let second = send(&adapter, &post).await.unwrap();
    let third = send(&adapter, &post).await.unwrap();
    assert_eq!(
        first.remote_id.as_deref(),
        Some("20261127T090005Z-black-friday.json")
    );
    assert_eq!(
        second.remote_id.as_deref(),
        Some("20261127T090005Z-black-friday-2.json")
    );
    assert_eq!(
        third.remote_id.as_deref(),
        Some("20261127T090005Z-black-friday-3.json")
    );
    let folder = dir.path().join("outbox/newsletter");
    let url = first.remote_url.unwrap();
    assert_eq!(
        url,
        format!(
            "file://{}",
            folder.join("20261127T090005Z-black-friday.json").display()
        )
    );
    // Exactly the three files: no temporary file left behind.
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");

    let doc = read_json(&folder.join("20261127T090005Z-black-friday.json"));
    assert_eq!(doc["channel"], "newsletter");
    assert_eq!(doc["platform"], "outbox");
    assert_eq!(doc["file"], "newsletter/black-friday.md");
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["requests"], json!([]));
    assert_eq!(doc["idempotency_key"], "k1");
    assert_eq!(doc["post"]["text"], post.text);
    assert_eq!(doc["post"]["media"][0]["path"], "_media/sale.jpg");
}

#[tokio::test]
async fn outbox_reconcile_reads_the_key_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let adapter = for_channel(&config, channel(&config, "newsletter"), env).unwrap();
    let post = outgoing("newsletter", platform("outbox"), "k-found");

    // Nothing written yet (not even the folder): certainly not posted.
    assert_eq!(
        adapter.reconcile(&post, &attempt("k-found"), now()).await,
        Reconciled::NotPosted
    );
    let receipt = send(&adapter, &post).await.unwrap();
    assert_eq!(
        adapter.reconcile(&post, &attempt("k-found"), now()).await,
        Reconciled::Posted(receipt)
    );
    assert_eq!(
        adapter.reconcile(&post, &attempt("k-other"), now()).await,
        Reconciled::NotPosted
    );
}

/// Every dry-run channel writes its own platform's requests, with `***` for its secret.
#[tokio::test]
async fn dry_run_channels_write_their_platforms_requests_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let mut docs = std::collections::BTreeMap::new();
    for (name, platform) in [
        ("shop-mastodon", platform("mastodon")),
        ("shop-x", platform("x")),
        ("shop-bluesky", platform("bluesky")),
        ("announce", platform("webhook")),
    ] {
        let adapter = for_channel(&config, channel(&config, name), env).unwrap();
        assert!(matches!(adapter, AnyAdapter::Outbox(_)), "{name}");
        let receipt = send(&adapter, &outgoing(name, platform, "key-7"))
            .await
            .unwrap();
        let path = dir
            .path()
            .join("outbox")
            .join(name)
            .join(receipt.remote_id.unwrap());
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(
            !raw.contains(SECRET),
            "{name}: the secret leaked into {raw}"
        );
        let doc: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(doc["dry_run"], true, "{name}");
        assert_eq!(doc["platform"], platform.name(), "{name}");
        docs.insert(name, doc);
    }
    let calls = |name: &str| -> Vec<(String, String)> {
        docs[name]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_string(),
                    r["url"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let post = |m: &str, u: &str| (m.to_string(), u.to_string());

    // Mastodon: the upload (multipart, with its description), then the status.
    assert_eq!(
        calls("shop-mastodon"),
        [
            post("POST", "https://mastodon.example/api/v2/media"),
            post("POST", "https://mastodon.example/api/v1/statuses"),
        ]
    );
    let m = &docs["shop-mastodon"]["requests"];
    assert_eq!(m[0]["headers"]["Authorization"], "Bearer ***");
    assert_eq!(
        m[0]["body"],
        json!([
            { "name": "file", "file_name": "sale.jpg", "content_type": "image/jpeg", "bytes": 123456 },
            { "name": "description", "content_type": "text/plain; charset=utf-8", "bytes": 23, "value": "Red sneakers on a shelf" },
        ])
    );
    assert_eq!(m[1]["headers"]["Idempotency-Key"], "key-7");
    assert_eq!(m[1]["headers"]["Authorization"], "Bearer ***");
    assert_eq!(m[1]["body"]["media_ids"], json!(["<media_id:1>"]));
    assert_eq!(m[1]["body"]["language"], "en");

    // X: upload, alt text, post.
    assert_eq!(
        calls("shop-x"),
        [
            post("POST", "https://api.x.com/2/media/upload"),
            post("POST", "https://api.x.com/2/media/metadata"),
            post("POST", "https://api.x.com/2/tweets"),
        ]
    );
    let x = &docs["shop-x"]["requests"];
    assert_eq!(
        x[2]["body"],
        json!({ "text": "Black Friday: 30% off all sneakers https://shop.com/bf", "media": { "media_ids": ["<media_id:1>"] } })
    );
    assert_eq!(x[2]["headers"]["Authorization"], "Bearer ***");

    // Bluesky: session (password `***`), blob, record with the link facet and the image.
    assert_eq!(
        calls("shop-bluesky"),
        [
            post(
                "POST",
                "https://pds.example/xrpc/com.atproto.server.createSession"
            ),
            post(
                "POST",
                "https://pds.example/xrpc/com.atproto.repo.uploadBlob"
            ),
            post(
                "POST",
                "https://pds.example/xrpc/com.atproto.repo.createRecord"
            ),
        ]
    );
    let b = &docs["shop-bluesky"]["requests"];
    assert_eq!(
        b[0]["body"],
        json!({ "identifier": "shop.bsky.social", "password": "***" })
    );
    assert_eq!(
        b[1]["body"],
        json!({ "file_name": "sale.jpg", "content_type": "image/jpeg", "bytes": 123456 })
    );
    let record = &b[2]["body"]["record"];
    assert_eq!(record["$type"], "app.bsky.feed.post");
    assert_eq!(record["createdAt"], "2026-11-27T09:00:05.000Z");
    assert_eq!(
        record["facets"][0]["index"],
        json!({ "byteStart": 35, "byteEnd": 54 })
    );
    assert_eq!(
        record["embed"]["images"][0],
        json!({ "image": "<blob:1>", "alt": "Red sneakers on a shelf" })
    );
    assert_eq!(b[2]["headers"]["Authorization"], "Bearer <access_jwt>");
    assert_eq!(b[2]["body"]["rkey"].as_str().unwrap().len(), 13);

    // Webhook: the one POST, with the key and the document.
    assert_eq!(
        calls("announce"),
        [post("POST", "https://hooks.example/in")]
    );
    let w = &docs["announce"]["requests"][0];
    assert_eq!(w["headers"]["Idempotency-Key"], "key-7");
    assert_eq!(w["body"]["idempotency_key"], "key-7");
    assert_eq!(w["body"]["media"][0]["alt"], "Red sneakers on a shelf");
}

// --- registry --------------------------------------------------------------------------------

#[test]
fn every_platform_gets_its_adapter_and_unreadable_credentials_say_where_they_should_be() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), "");
    for c in &mut config.channels {
        c.dry_run = false;
    }
    // Mastodon, X and Bluesky publish for real, through the network executor.
    for name in ["shop-mastodon", "shop-x", "shop-bluesky", "announce"] {
        let adapter = for_channel(&config, channel(&config, name), env).unwrap();
        assert!(matches!(adapter, AnyAdapter::Http(_)), "{name}");
        assert_eq!(adapter.platform(), channel(&config, name).platform);
        // The credentials are held, never shown.
        assert!(!format!("{adapter:?}").contains(SECRET), "{adapter:?}");
    }
    assert!(matches!(
        for_channel(&config, channel(&config, "newsletter"), env).unwrap(),
        AnyAdapter::Outbox(_)
    ));

    // An unreadable credential names the channel, the key and where it should come from.
    for (name, var) in [
        ("shop-x", "SHOP_X_TOKEN"),
        ("shop-mastodon", "SHOP_MASTODON_TOKEN"),
        ("shop-bluesky", "SHOP_BSKY_PASSWORD"),
    ] {
        let err = for_channel(&config, channel(&config, name), |_| None).unwrap_err();
        assert!(err.contains(&format!("channel `{name}`")), "{err}");
        assert!(err.contains(var), "{err}");
    }
}

// --- webhook ---------------------------------------------------------------------------------

/// What one connection to the test server does after reading a request.
enum Reply {
    /// Answer with this raw status line, headers and body.
    With(u16, Vec<(&'static str, String)>, String),
    /// Read the request and never answer.
    Hang,
    /// Read the request and close the connection.
    HangUp,
}

#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A one-connection HTTP/1.1 server on loopback: reads one request, sends it to the test,
/// then does what `reply` says. Returns its URL and the channel of received requests.
async fn serve_once(reply: Reply) -> (String, mpsc::UnboundedReceiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let request = read_request(&mut stream).await;
        tx.send(request).unwrap();
        match reply {
            Reply::With(status, headers, body) => {
                let mut head = format!(
                    "HTTP/1.1 {status} Test\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("connection: close\r\n\r\n");
                stream.write_all(head.as_bytes()).await.unwrap();
                stream.write_all(body.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            }
            // Holding the stream open until the test's runtime ends.
            Reply::Hang => std::future::pending::<()>().await,
            Reply::HangUp => drop(stream),
        }
    });
    (url, rx)
}

async fn read_request(stream: &mut TcpStream) -> Request {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed before sending a request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let method = first.next().unwrap().to_string();
    let path = first.next().unwrap().to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    Request {
        method,
        path,
        headers,
        body,
    }
}

fn webhook(url: &str) -> AnyAdapter {
    let settings = Settings::new()
        .with("url", KeyValue::Url(url.to_string()))
        .with("timeout", KeyValue::Duration(SignedDuration::from_secs(1)));
    let ctx = ConnectCtx {
        env: &|_: &str| None,
        credentials_dir: None,
        outbox: Path::new("/nonexistent"),
        tokens: None,
        media: Arc::new(PlainFiles { max_bytes: 1 << 20 }),
        hidden_env: Vec::new(),
        client: Default::default(),
    };
    adapter::connect(platform("webhook"), "announce", &settings, false, &ctx).unwrap()
}

#[tokio::test]
async fn webhook_2xx_is_published_with_the_key_and_the_document() {
    let (url, mut requests) = serve_once(Reply::With(
        201,
        vec![("content-type", "application/json".into())],
        r#"{"id": 981, "url": "https://hooks.example/p/981"}"#.into(),
    ))
    .await;
    let post = outgoing("announce", platform("webhook"), "key-w1");
    let receipt = send(&webhook(&url), &post).await.unwrap();
    assert_eq!(receipt.remote_id.as_deref(), Some("981"));
    assert_eq!(
        receipt.remote_url.as_deref(),
        Some("https://hooks.example/p/981")
    );
    assert_eq!(receipt.http_status, Some(201));

    let request = requests.recv().await.unwrap();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(request.header("Idempotency-Key"), Some("key-w1"));
    assert_eq!(request.header("Content-Type"), Some("application/json"));
    assert!(
        request
            .header("User-Agent")
            .is_some_and(|ua| ua.starts_with("cadenced/")),
        "{:?}",
        request.header("User-Agent")
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "channel": "announce",
            "platform": "webhook",
            "file": "announce/black-friday.md",
            "text": post.text,
            "link": null,
            "lang": "en",
            "media": [{
                "path": "_media/sale.jpg",
                "alt": "Red sneakers on a shelf",
                "bytes": 123456,
                "local_path": "/srv/queue/_media/sale.jpg",
            }],
            "fields": {},
            "idempotency_key": "key-w1",
        })
    );
}

#[tokio::test]
async fn webhook_429_is_transient_and_keeps_retry_after() {
    let (url, _requests) = serve_once(Reply::With(
        429,
        vec![("retry-after", "7".into())],
        String::new(),
    ))
    .await;
    let err = send(
        &webhook(&url),
        &outgoing("announce", platform("webhook"), "k"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        PublishError::Transient {
            reason: format!("the webhook {url} answered HTTP 429: Too Many Requests"),
            retry_after: Some(SignedDuration::from_secs(7)),
            http_status: Some(429),
        }
    );
}

#[tokio::test]
async fn webhook_5xx_is_transient_with_an_http_date_retry_after() {
    let (url, _requests) = serve_once(Reply::With(
        503,
        vec![("retry-after", "Fri, 27 Nov 2026 09:01:05 GMT".into())],
        "down for maintenance".into(),
    ))
    .await;
    match send(
        &webhook(&url),
        &outgoing("announce", platform("webhook"), "k"),
    )
    .await
    {
        Err(PublishError::Transient {
            reason,
            retry_after,
            http_status,
        }) => {
            assert_eq!(retry_after, Some(SignedDuration::from_secs(60)));
            assert_eq!(http_status, Some(503));
            assert!(reason.ends_with(": down for maintenance"), "{reason}");
        }
        other => panic!("expected transient, got {other:?}"),
    }
    let (url, _requests) = serve_once(Reply::With(500, vec![], String::new())).await;
    let err = send(
        &webhook(&url),
        &outgoing("announce", platform("webhook"), "k"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Transient {
                http_status: Some(500),
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn webhook_4xx_is_permanent_and_quotes_the_answer() {
    let (url, _requests) = serve_once(Reply::With(
        400,
        vec![],
        "{\"error\": \"text too long\"}\nmore".into(),
    ))
    .await;
    match send(
        &webhook(&url),
        &outgoing("announce", platform("webhook"), "k"),
    )
    .await
    {
        Err(PublishError::Permanent {
            reason,
            fix,
            http_status,
        }) => {
            assert_eq!(http_status, Some(400));
            assert!(reason.contains("HTTP 400"), "{reason}");
            assert!(reason.contains("text too long"), "{reason}");
            assert!(fix.contains("cadenced retry"), "{fix}");
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    // A redirect is not followed (a POST could be sent twice); the user fixes the URL.
    let (url, _requests) = serve_once(Reply::With(
        308,
        vec![("location", "https://new.example/hook".into())],
        String::new(),
    ))
    .await;
    match send(
        &webhook(&url),
        &outgoing("announce", platform("webhook"), "k"),
    )
    .await
    {
        Err(PublishError::Permanent { fix, .. }) => {
            assert!(fix.contains("https://new.example/hook"), "{fix}")
        }
        other => panic!("expected permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn webhook_without_an_answer_is_unknown() {
    // The server reads the whole request, then never answers: the post may have landed.
    let (url, mut requests) = serve_once(Reply::Hang).await;
    let err = send(
        &webhook(&url),
        &outgoing("announce", platform("webhook"), "k"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PublishError::Unknown { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(err.to_string().contains("may have been published"), "{err}");
    assert!(requests.recv().await.is_some(), "the request was sent");

    // The server reads the request, then hangs up.
    let (url, mut requests) = serve_once(Reply::HangUp).await;
    let err = send(
        &webhook(&url),
        &outgoing("announce", platform("webhook"), "k"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PublishError::Unknown { .. }), "{err:?}");
    assert!(requests.recv().await.is_some(), "the request was sent");
}

#[tokio::test]
async fn webhook_that_cannot_be_reached_is_transient() {
    // A port that was just free: connecting is refused, so nothing was sent.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let err = send(
        &webhook(&url),
        &outgoing("announce", platform("webhook"), "k"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Transient {
                http_status: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        webhook(&url)
            .reconcile(
                &outgoing("announce", platform("webhook"), "k"),
                &attempt("k"),
                now()
            )
            .await,
        Reconciled::Unknown
    );
}

// --- exec ------------------------------------------------------------------------------------

/// Writes an executable `sh` script and returns its path.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn exec(argv: &[&Path], timeout: Duration) -> ExecAdapter {
    ExecAdapter::new(
        argv.iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        timeout,
    )
}

async fn run(adapter: ExecAdapter, post: &Outgoing) -> Result<Receipt, PublishError> {
    send(&AnyAdapter::Exec(adapter), post).await
}

#[tokio::test]
async fn exec_exit_0_is_published_and_the_program_reads_the_post_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    let env_seen = dir.path().join("env.txt");
    let program = script(
        dir.path(),
        "publish",
        r#"cat > "$1"
printf '%s' "${HOME-hidden}" > "$2"
echo '{"id": "e-1", "url": "https://social.example/e-1"}'"#,
    );
    let adapter = exec(&[&program, &input, &env_seen], Duration::from_secs(10))
        .hiding_env(["HOME".to_string()]);
    let post = outgoing("publisher", platform("exec"), "key-e1");
    let receipt = run(adapter, &post).await.unwrap();
    assert_eq!(receipt.remote_id.as_deref(), Some("e-1"));
    assert_eq!(
        receipt.remote_url.as_deref(),
        Some("https://social.example/e-1")
    );
    let received = read_json(&input);
    assert_eq!(received["idempotency_key"], "key-e1");
    assert_eq!(received["text"], post.text);
    assert_eq!(
        received["media"][0]["local_path"],
        "/srv/queue/_media/sale.jpg"
    );
    // A variable the adapter hides (credentials, in the daemon) is not inherited.
    assert_eq!(std::fs::read_to_string(&env_seen).unwrap(), "hidden");
}

#[tokio::test]
async fn exec_exit_75_is_transient_and_other_codes_are_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let later = script(
        dir.path(),
        "later",
        "cat >/dev/null\necho 'rate limited' >&2\nexit 75",
    );
    let err = run(
        exec(&[&later], Duration::from_secs(10)),
        &outgoing("publisher", platform("exec"), "k"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    assert!(err.to_string().contains("rate limited"), "{err}");

    let refuse = script(
        dir.path(),
        "refuse",
        "echo 'token rejected' >&2\necho 'see docs' >&2\nexit 1",
    );
    match run(
        exec(&[&refuse], Duration::from_secs(10)),
        &outgoing("publisher", platform("exec"), "k"),
    )
    .await
    {
        Err(PublishError::Permanent { reason, fix, .. }) => {
            assert!(reason.contains("(exit status 1)"), "{reason}");
            assert!(reason.contains("token rejected / see docs"), "{reason}");
            assert!(fix.contains("cadenced retry"), "{fix}");
            assert!(!fix.contains("75"), "no internal codes for the shop: {fix}");
        }
        other => panic!("expected permanent, got {other:?}"),
    }

    let missing = dir.path().join("no-such-program");
    let err = run(
        exec(&[&missing], Duration::from_secs(10)),
        &outgoing("publisher", platform("exec"), "k"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PublishError::Permanent { .. }), "{err:?}");
}

#[tokio::test]
async fn exec_time_out_is_unknown_and_kills_what_the_program_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // The program starts a helper and waits for it; the helper writes its pid first.
    let program = script(
        dir.path(),
        "slow",
        r#"sleep 600 &
echo $! > "$1.tmp" && mv "$1.tmp" "$1"
wait"#,
    );
    let err = run(
        exec(&[&program, &pid_file], Duration::from_millis(1500)),
        &outgoing("publisher", platform("exec"), "k"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PublishError::Unknown { .. }), "{err:?}");
    assert!(
        err.to_string().contains("did not finish within 1.5 s"),
        "{err}"
    );

    // The helper got SIGKILL with the group.
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL reaches every process of the group before kill(2) returns, but the kernel
    // may still be tearing the helper down: look again a bounded number of times.
    let mut alive = running(pid);
    for _ in 0..100 {
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        alive = running(pid);
    }
    assert!(!alive, "the helper {pid} still runs");
    assert_eq!(
        AnyAdapter::Exec(exec(&[&program], Duration::from_secs(1)))
            .reconcile(
                &outgoing("publisher", platform("exec"), "k"),
                &attempt("k"),
                now()
            )
            .await,
        Reconciled::Unknown
    );
}

/// Whether a process runs: it exists and is not a zombie (dead, waiting to be reaped).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest.trim_start());
        !state.starts_with('Z') && !state.starts_with('X')
    })
}

#[tokio::test]
async fn a_post_name_of_233_bytes_or_more_gets_a_shortened_outbox_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let adapter = for_channel(&config, channel(&config, "newsletter"), env).unwrap();
    let long = |c: char| {
        let mut post = outgoing("newsletter", platform("outbox"), "k-long");
        post.file = format!("newsletter/{}.md", c.to_string().repeat(240));
        post
    };
    // Two long names that differ only at their end still get two files.
    let mut a = long('a');
    a.file = format!("newsletter/{}x.md", "冬".repeat(80));
    let mut b = long('a');
    b.file = format!("newsletter/{}y.md", "冬".repeat(80));
    let first = send(&adapter, &a).await.unwrap().remote_id.unwrap();
    let second = send(&adapter, &b).await.unwrap().remote_id.unwrap();
    let third = send(&adapter, &long('b')).await.unwrap().remote_id.unwrap();
    for name in [&first, &second, &third] {
        assert!(name.len() <= 230, "{} bytes: {name}", name.len());
        assert!(name.starts_with("20261127T090005Z-"), "{name}");
        assert!(name.ends_with(".json"), "{name}");
    }
    assert_ne!(first, second);
    assert!(
        first.contains("冬冬冬"),
        "the name keeps a readable start: {first}"
    );
}

#[tokio::test]
async fn an_endless_answer_is_read_up_to_a_cap() {
    // A receiver that answers 200 and then streams a body that never ends.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = read_request(&mut stream).await;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n")
            .await
            .unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
        // Until the client hangs up.
        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    let receipt = send(
        &webhook(&url),
        &outgoing("announce", platform("webhook"), "k"),
    )
    .await
    .unwrap();
    assert_eq!(receipt.http_status, Some(200));
    assert_eq!(receipt.remote_id, None, "a cut-off body gives no id");
}
