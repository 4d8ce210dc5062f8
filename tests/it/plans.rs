//! One plan, two executors: for every registered platform, the dry run's requests (what
//! the outbox writes) and the requests the network executor actually sends to a recording
//! server are the same, request by request: method, path and query, the plan's headers, the
//! authorization scheme, and the body (JSON, form fields, multipart parts, raw file), with
//! the dry run's placeholders standing for whatever the server gave and `***` for secrets.
//!
//! The suite runs over `Platform::all()`: a platform without a fixture below fails the test,
//! so a new platform cannot skip it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadenced::clock::SystemClock;
use cadenced::config;
use cadenced::platforms::adapter::{
    self, AnyAdapter, ConnectCtx, MemoryMemo, Outgoing, OutgoingMedia, PlainFiles, Sent,
};
use cadenced::platforms::plan::{REDACTED, Rendered, RenderedAuth, RenderedBody, RenderedPart};
use cadenced::platforms::{ChannelCtx, Platform, Transport, run};
use cadenced::secret::Secret;
use cadenced::tokens::{Stored, TokenStore};
use hyper::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::fake_server::{Outcome, Received, Server, Shared, json_response, parse_multipart};

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

/// A server that records every request and answers each with one JSON document holding
/// every value a plan may keep (`/id`, `/data/id`, `/blob`, `/accessJwt`…).
async fn recorder() -> Server<Vec<Received>> {
    fn handle(shared: &Shared<Vec<Received>>, request: &Received) -> Outcome {
        shared.update(|seen| seen.push(request.clone()));
        Outcome::Answer(json_response(StatusCode::OK, &universal_answer()))
    }
    Server::start("recorder", Vec::new(), Arc::new(SystemClock), handle).await
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

fn compare(platform: &str, shown: &Rendered, got: &Received, url: &str, media: &[u8]) {
    let what = format!("{platform}: {} {}", shown.method, shown.url);
    assert_eq!(shown.method, got.method.as_str(), "{what}");
    let shown_url = shown.full_url();
    let shown_path = shown_url.strip_prefix(url).unwrap_or(&shown_url);
    let got_path = got.path_and_query();
    assert!(
        same_text(shown_path, &got_path),
        "{what}: {shown_path} vs {got_path}"
    );
    for (k, v) in &shown.headers {
        let sent = got.header(k);
        assert!(
            sent.is_some_and(|s| same_text(v, s)),
            "{what}: header {k}: {v} vs {sent:?}"
        );
    }
    let authorization = got.header("authorization").map(str::to_string);
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
            let sent = parse_multipart(got.header("content-type").unwrap_or(""), &got.body)
                .unwrap_or_else(|| panic!("{what}: not a multipart body"));
            assert_eq!(parts.len(), sent.len(), "{what}");
            for (p, part) in parts.iter().zip(&sent) {
                match p {
                    RenderedPart::Text { name, value } => {
                        assert_eq!(name, &part.name, "{what}");
                        let got = String::from_utf8_lossy(&part.data);
                        assert!(same_text(value, &got), "{what}");
                    }
                    RenderedPart::File { name, media: m } => {
                        assert_eq!(name, &part.name, "{what}");
                        assert_eq!(part.file_name.as_deref(), Some(&*m.file_name), "{what}");
                        assert_eq!(
                            part.content_type.as_deref(),
                            Some(&*m.content_type),
                            "{what}"
                        );
                        assert_eq!(part.data, media, "{what}: the file's bytes");
                    }
                }
            }
        }
        RenderedBody::File(m) => {
            assert_eq!(got.body.as_ref(), media, "{what}");
            assert_eq!(got.header("content-type"), Some(&*m.content_type), "{what}");
        }
    }
}

async fn check(platform: Platform, keys: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = recorder().await;
    let url = server.url();
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
        client: Default::default(),
    };
    let adapter = adapter::connect(platform, "c", &ch.settings, false, &connect).unwrap();
    assert!(matches!(adapter, AnyAdapter::Http(_)));
    let sent = adapter
        .publish(&post, &MemoryMemo::default(), now())
        .await
        .unwrap();
    assert!(matches!(sent, Sent::Published(_)), "{platform}: {sent:?}");

    let got = server.state().clone();
    let shown_list: Vec<String> = shown
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    let got_list: Vec<String> = got
        .iter()
        .map(|r| format!("{} {}", r.method, r.path_and_query()))
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
        client: Default::default(),
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
