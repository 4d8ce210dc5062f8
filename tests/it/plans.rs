//! One plan, two executors: for every registered platform, the dry run's requests (what
//! the outbox writes) and the requests the network executor actually sends to a recording
//! server are the same, request by request: method, path and query, the plan's headers, the
//! authorization scheme, and the body (JSON, form fields, multipart parts, raw file), with
//! the dry run's placeholders standing for whatever the server gave and `***` for secrets.
//!
//! The suite runs over `Platform::all()`: a platform without a fixture below fails the test,
//! so a new platform cannot skip it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cadenced::config;
use cadenced::platforms::adapter::{
    self, AnyAdapter, ConnectCtx, MemoryMemo, Outgoing, OutgoingMedia, PlainFiles, Sent,
};
use cadenced::platforms::plan::{REDACTED, Rendered, RenderedAuth, RenderedBody, RenderedPart};
use cadenced::platforms::{ChannelCtx, Platform, Transport, run};
use cadenced::secret::Secret;
use cadenced::tokens::{Stored, TokenStore};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A credential value that must never reach the dry run.
const SECRET: &str = "s3cr3t-value-9b8a";

/// Each HTTP platform's channel keys, with `{url}` for the recording server. A new platform
/// adds its line.
const FIXTURES: &[(&str, &str)] = &[
    (
        "mastodon",
        "instance = \"{url}\"\ntoken = { env = \"TOKEN\" }",
    ),
    (
        "bluesky",
        "service = \"{url}\"\nhandle = \"shop.bsky.social\"\napp_password = { env = \"TOKEN\" }",
    ),
    ("x", "client_id = \"app-123\"\napi = \"{url}\""),
    ("webhook", "url = \"{url}/hook\""),
];

/// Extra fixtures for the other ways a platform can be set up (X with OAuth 1.0a).
const VARIANTS: &[(&str, &str)] = &[(
    "x",
    "api = \"{url}\"\napi_key = { env = \"TOKEN\" }\napi_secret = { env = \"TOKEN\" }\naccess_token = { env = \"TOKEN\" }\naccess_token_secret = { env = \"TOKEN\" }",
)];

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A server that records every request and answers each with one JSON document holding
/// every value a plan may keep (`/id`, `/data/id`, `/blob`, `/accessJwt`…).
async fn recorder() -> (String, Arc<Mutex<Vec<Recorded>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.unwrap().to_bytes().to_vec();
                        log.lock().unwrap().push(Recorded {
                            method: parts.method.to_string(),
                            path_and_query: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect(),
                            body,
                        });
                        let answer = universal_answer();
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(200)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(answer.to_string())))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

fn jwt(exp: i64) -> String {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{{\"exp\":{exp}}}").as_bytes());
    format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln")
}

fn universal_answer() -> Value {
    json!({
        "id": "109999",
        "url": "https://server.example/p/109999",
        "uri": "at://did:plc:abc/app.bsky.feed.post/3kabc",
        "cid": "bafyreib",
        "data": { "id": "1146654567674912769", "text": "x" },
        "blob": { "$type": "blob", "ref": { "$link": "bafkrei" }, "mimeType": "image/png", "size": 3 },
        "accessJwt": jwt(4_102_444_800),
        "refreshJwt": jwt(4_102_444_800),
        "did": "did:plc:abc",
        "access_token": "new-access",
        "refresh_token": "new-refresh",
        "expires_in": 7200,
    })
}

fn now() -> Timestamp {
    "2026-11-27T09:00:00.250Z".parse().unwrap()
}

fn post(platform: Platform, dir: &Path) -> Outgoing {
    let image = dir.join("sale.png");
    std::fs::write(&image, b"\x89PNG\r\n\x1a\n-not-a-real-png").unwrap();
    Outgoing {
        channel: "c".into(),
        platform,
        file: "c/black-friday.md".into(),
        text: "Black Friday 冬季促销 👩‍👩‍👧 @anna.bsky.social #Sale: 30% off https://shop.com/bf"
            .into(),
        media: vec![OutgoingMedia {
            path: image,
            rel: PathBuf::from("_media/sale.png"),
            alt: Some("Red sneakers on a shelf".into()),
            bytes: 23,
            dimensions: Some((1200, 800)),
        }],
        link: None,
        lang: Some("de-AT".into()),
        fields: toml::Table::new(),
        idempotency_key: "key-1".into(),
        started: now(),
    }
}

fn channel(platform: &str, keys: &str, url: &str, dir: &Path) -> config::Channel {
    let text = format!(
        "[defaults]\ntimezone = \"UTC\"\n[channels.c]\nplatform = \"{platform}\"\n{}\n",
        keys.replace("{url}", url)
    );
    let loaded = config::parse(&dir.join("cadenced.toml"), &text)
        .unwrap_or_else(|e| panic!("fixture of {platform}: {e:?}"));
    loaded.config.channels.into_iter().next().unwrap()
}

/// Whether `got` is what `shown` describes: placeholders and `***` stand for any value.
fn same_json(shown: &Value, got: &Value) -> bool {
    match (shown, got) {
        (Value::String(s), _) if s == REDACTED || (s.starts_with('<') && s.ends_with('>')) => true,
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_json(v, w)))
        }
        (a, b) => a == b,
    }
}

fn same_text(shown: &str, got: &str) -> bool {
    same_json(&json!(shown), &json!(got))
}

/// One part of a multipart body: name, file name, content type, content.
type SentPart = (String, Option<String>, Option<String>, Vec<u8>);

fn multipart_parts(recorded: &Recorded) -> Vec<SentPart> {
    let content_type = recorded
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap();
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .unwrap()
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let body = &recorded.body;
    let mut out = Vec::new();
    let text = body.as_slice();
    let positions: Vec<usize> = (0..text.len().saturating_sub(delimiter.len()))
        .filter(|&i| &text[i..i + delimiter.len()] == delimiter.as_bytes())
        .collect();
    for pair in positions.windows(2) {
        let chunk = &text[pair[0] + delimiter.len()..pair[1]];
        let chunk = chunk.strip_prefix(b"\r\n").unwrap_or(chunk);
        let split = chunk.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&chunk[..split]).to_string();
        let mut content = chunk[split + 4..].to_vec();
        if content.ends_with(b"\r\n") {
            content.truncate(content.len() - 2);
        }
        let attr = |name: &str| {
            head.split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(&format!("{name}=\"")))
                .map(|v| {
                    v.trim_end_matches('"')
                        .trim_end_matches("\"\r\ncontent-type: ")
                        .to_string()
                })
        };
        let name = attr("name")
            .map(|n| n.split('"').next().unwrap().to_string())
            .unwrap();
        let file_name = attr("filename").map(|n| n.split('"').next().unwrap().to_string());
        let part_type = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        });
        out.push((name, file_name, part_type, content));
    }
    out
}

fn compare(platform: &str, shown: &Rendered, got: &Recorded, url: &str, media: &[u8]) {
    let what = format!("{platform}: {} {}", shown.method, shown.url);
    assert_eq!(shown.method, got.method, "{what}");
    let shown_url = shown.full_url();
    let shown_path = shown_url.strip_prefix(url).unwrap_or(&shown_url);
    assert!(
        same_text(shown_path, &got.path_and_query),
        "{what}: {shown_path} vs {}",
        got.path_and_query
    );
    for (k, v) in &shown.headers {
        let sent = got
            .headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str());
        assert!(
            sent.is_some_and(|s| same_text(v, s)),
            "{what}: header {k}: {v} vs {sent:?}"
        );
    }
    let authorization = got
        .headers
        .iter()
        .find(|(h, _)| h == "authorization")
        .map(|(_, v)| v.clone());
    match &shown.auth {
        RenderedAuth::None => assert_eq!(authorization, None, "{what}"),
        RenderedAuth::Header(h) => {
            let scheme = h.split(' ').next().unwrap();
            let sent = authorization.unwrap_or_default();
            assert!(
                sent.starts_with(&format!("{scheme} ")),
                "{what}: {h} vs {sent}"
            );
            assert!(!h.contains(SECRET), "{what}: the dry run shows a secret");
        }
        RenderedAuth::OAuth1 { .. } => {
            let sent = authorization.unwrap_or_default();
            assert!(
                sent.starts_with("OAuth ") && sent.contains("oauth_signature="),
                "{what}: {sent}"
            );
        }
    }
    match &shown.body {
        RenderedBody::None => assert!(got.body.is_empty(), "{what}"),
        RenderedBody::Json(v) => {
            let sent: Value = serde_json::from_slice(&got.body).unwrap();
            assert!(same_json(v, &sent), "{what}:\n{v:#}\nvs\n{sent:#}");
        }
        RenderedBody::Form(fields) => {
            let sent: Vec<(String, String)> =
                form_urlencoded::parse(&got.body).into_owned().collect();
            assert_eq!(fields.len(), sent.len(), "{what}: {fields:?} vs {sent:?}");
            for ((k, v), (sk, sv)) in fields.iter().zip(&sent) {
                assert!(k == sk && same_text(v, sv), "{what}: {k}={v} vs {sk}={sv}");
            }
        }
        RenderedBody::Multipart(parts) => {
            let sent = multipart_parts(got);
            assert_eq!(parts.len(), sent.len(), "{what}");
            for (p, (name, file_name, part_type, content)) in parts.iter().zip(&sent) {
                match p {
                    RenderedPart::Text { name: n, value } => {
                        assert_eq!(n, name, "{what}");
                        assert!(
                            same_text(value, &String::from_utf8_lossy(content)),
                            "{what}"
                        );
                    }
                    RenderedPart::File { name: n, media: m } => {
                        assert_eq!(n, name, "{what}");
                        assert_eq!(file_name.as_deref(), Some(m.file_name.as_str()), "{what}");
                        assert_eq!(
                            part_type.as_deref(),
                            Some(m.content_type.as_str()),
                            "{what}"
                        );
                        assert_eq!(content.as_slice(), media, "{what}: the file's bytes");
                    }
                }
            }
        }
        RenderedBody::File(m) => {
            assert_eq!(got.body, media, "{what}");
            let sent_type = got
                .headers
                .iter()
                .find(|(h, _)| h == "content-type")
                .map(|(_, v)| v.as_str());
            assert_eq!(sent_type, Some(m.content_type.as_str()), "{what}");
        }
    }
}

async fn check(platform: Platform, keys: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = recorder().await;
    let ch = channel(platform.name(), keys, &url, dir.path());
    let post = post(platform, dir.path());
    let media = std::fs::read(&post.media[0].path).unwrap();

    // The dry run, as the outbox writes it.
    let ctx = ChannelCtx {
        name: "c",
        settings: &ch.settings,
        now: now(),
    };
    let shown = run::dry_run(platform, &ctx, &post);
    assert!(!shown.is_empty(), "{platform}: a plan with no request");
    let shown_json =
        serde_json::to_string(&shown.iter().map(Rendered::to_json).collect::<Vec<_>>()).unwrap();
    assert!(
        !shown_json.contains(SECRET),
        "{platform}: the dry run shows a secret"
    );

    // The network executor, against the recorder. The token store holds what `cadenced
    // auth` leaves (a refresh token) and nothing else, as on a channel's first post.
    let tokens = TokenStore::beside(&dir.path().join("state/db"));
    tokens
        .update("c", now(), |t| {
            t.values.insert(
                "refresh_token".into(),
                Stored {
                    value: Secret::new(SECRET),
                    expires: None,
                },
            );
        })
        .unwrap();
    let env = |_: &str| Some(SECRET.to_string());
    let connect = ConnectCtx {
        env: &env,
        credentials_dir: None,
        outbox: &dir.path().join("outbox"),
        tokens: Some(tokens.clone()),
        media: Arc::new(PlainFiles { max_bytes: 1 << 20 }),
        hidden_env: Vec::new(),
    };
    let adapter = adapter::connect(platform, "c", &ch.settings, false, &connect).unwrap();
    assert!(matches!(adapter, AnyAdapter::Http(_)));
    let sent = adapter
        .publish(&post, &MemoryMemo::default(), now())
        .await
        .unwrap();
    assert!(matches!(sent, Sent::Published(_)), "{platform}: {sent:?}");

    let got = seen.lock().unwrap().clone();
    let shown_list: Vec<String> = shown
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    let got_list: Vec<String> = got
        .iter()
        .map(|r| format!("{} {}", r.method, r.path_and_query))
        .collect();
    assert_eq!(
        shown.len(),
        got.len(),
        "{platform}:\n{shown_list:#?}\nvs\n{got_list:#?}"
    );
    for (s, g) in shown.iter().zip(&got) {
        compare(platform.name(), s, g, &url, &media);
    }
}

#[tokio::test]
async fn every_platform_sends_exactly_what_its_dry_run_shows() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut covered = BTreeMap::new();
    for platform in Platform::all() {
        match platform.transport() {
            Transport::Http => {
                let keys = FIXTURES
                    .iter()
                    .find(|(name, _)| *name == platform.name())
                    .unwrap_or_else(|| {
                        panic!("add a fixture for `{platform}` to tests/it/plans.rs")
                    })
                    .1;
                check(platform, keys).await;
                covered.insert(platform.name(), true);
            }
            // The program gets the plan's one step: shown by `exec_runs_its_plans_step`.
            Transport::Exec | Transport::Outbox => {}
        }
    }
    for (name, keys) in VARIANTS {
        check(Platform::named(name).unwrap(), keys).await;
    }
    assert!(covered.len() >= 4, "{covered:?}");
}

#[tokio::test]
async fn exec_runs_its_plans_step() {
    let dir = tempfile::tempdir().unwrap();
    let stdin = dir.path().join("stdin.json");
    let args = dir.path().join("args");
    let program = dir.path().join("publish");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\ncat > {}\nprintf '%s\\n' \"$@\" > {}\necho '{{\"id\":\"1\"}}'\n",
            stdin.display(),
            args.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let keys = format!("command = [\"{}\", \"--to\", \"shop\"]", program.display());
    let ch = channel("exec", &keys, "", dir.path());
    let platform = ch.platform;
    let post = post(platform, dir.path());
    let ctx = ChannelCtx {
        name: "c",
        settings: &ch.settings,
        now: now(),
    };
    let shown = run::dry_run(platform, &ctx, &post);
    assert_eq!(shown.len(), 1);
    let env = |_: &str| None;
    let connect = ConnectCtx {
        env: &env,
        credentials_dir: None,
        outbox: &dir.path().join("outbox"),
        tokens: None,
        media: Arc::new(PlainFiles { max_bytes: 1 << 20 }),
        hidden_env: Vec::new(),
    };
    let adapter = adapter::connect(platform, "c", &ch.settings, false, &connect).unwrap();
    adapter
        .publish(&post, &MemoryMemo::default(), now())
        .await
        .unwrap();
    let RenderedBody::Json(document) = &shown[0].body else {
        panic!("{shown:?}")
    };
    let received: Value = serde_json::from_slice(&std::fs::read(&stdin).unwrap()).unwrap();
    assert_eq!(&received, document);
    assert_eq!(shown[0].url, program.display().to_string());
    let shown_args: Vec<&str> = shown[0].headers.iter().map(|(_, v)| v.as_str()).collect();
    let got_args = std::fs::read_to_string(&args).unwrap();
    assert_eq!(got_args.lines().collect::<Vec<_>>(), shown_args);
}
