//! `cadenced auth CHANNEL` against a local server that answers as X's OAuth 2.0 token
//! endpoint and `users/me` do: the authorization address the user is shown, the code
//! exchanged with the PKCE verifier that matches the challenge, the tokens kept in the
//! owner-only token store (never printed), and a refusal reported with what to do.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use cadenced::cli::auth::{connect, pkce_challenge};
use cadenced::clock::SystemClock;
use cadenced::config;
use cadenced::tokens::TokenStore;
use hyper::StatusCode;
use serde_json::json;

use crate::fake_server::{Outcome, Received, Server, Shared, form_pairs, json_response};
use crate::support::TestClock;

/// The form fields of each token request.
type Seen = Vec<Vec<(String, String)>>;

/// Answers `POST /2/oauth2/token` (code `good-code` only) and `GET /2/users/me` (with the
/// access token it issued only), as X documents them.
async fn x_like() -> Server<Seen> {
    fn handle(shared: &Shared<Seen>, request: &Received) -> Outcome {
        let (status, answer) = match request.path.as_str() {
            "/2/oauth2/token" => {
                let form = form_pairs(&request.body);
                shared.update(|seen| seen.push(form.clone()));
                let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                if get("grant_type") == Some("authorization_code")
                    && get("code") == Some("good-code")
                {
                    (
                        StatusCode::OK,
                        json!({ "token_type": "bearer", "expires_in": 7200,
                        "access_token": "AT-issued-1", "refresh_token": "RT-issued-1",
                        "scope": "tweet.read tweet.write users.read media.write offline.access" }),
                    )
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        json!({ "error": "invalid_request",
                        "error_description": "Value passed for the authorization code was invalid." }),
                    )
                }
            }
            "/2/users/me" if request.header("authorization") == Some("Bearer AT-issued-1") => (
                StatusCode::OK,
                json!({ "data": { "id": "2244994945", "name": "Sneaker Shop", "username": "sneakershop" } }),
            ),
            _ => (
                StatusCode::UNAUTHORIZED,
                json!({ "title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized" }),
            ),
        };
        Outcome::Answer(json_response(status, &answer))
    }
    Server::start("x-like", Seen::new(), Arc::new(SystemClock), handle).await
}

fn x_channel(dir: &std::path::Path, api: &str) -> config::Channel {
    let text = format!(
        "[defaults]\ntimezone = \"UTC\"\n[channels.shop-x]\nplatform = \"x\"\nclient_id = \"app-42\"\napi = \"{api}\"\ndry_run = true\n"
    );
    config::parse(&dir.join("cadenced.toml"), &text)
        .unwrap()
        .config
        .channels
        .remove(0)
}

#[tokio::test]
async fn auth_connects_x_with_pkce_and_keeps_the_tokens_owner_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = x_like().await;
    let dir = tempfile::tempdir().unwrap();
    let channel = x_channel(dir.path(), &server.url());
    let tokens = TokenStore::beside(&dir.path().join("state/cadenced.sqlite"));
    let clock = TestClock::at("2026-11-27T09:00:00Z");
    // The user pastes the address the browser landed on (state checked against what was
    // printed is covered by the unit test; a bare code is accepted too).
    let mut input = std::io::Cursor::new("good-code\n");
    let mut output = Vec::new();
    connect(
        &channel,
        &tokens,
        &dir.path().join("outbox"),
        &*clock,
        &mut input,
        &mut output,
    )
    .await
    .unwrap();
    let said = String::from_utf8(output).unwrap();

    // The address asks for the right scopes with a PKCE challenge…
    let url_line = said
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("https://x.com/i/oauth2/authorize?")
        })
        .unwrap();
    let url = url::Url::parse(url_line.trim()).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "app-42");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["scope"],
        "tweet.read tweet.write users.read media.write offline.access"
    );
    assert_eq!(q["redirect_uri"], "http://127.0.0.1:8976/callback");
    // …and the exchange sent the verifier that matches it.
    let form = server.state()[0].clone();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("grant_type"), "authorization_code");
    assert_eq!(get("client_id"), "app-42");
    assert_eq!(pkce_challenge(&get("code_verifier")), q["code_challenge"]);

    // Connected, as the account the check read; no token on the screen.
    assert!(said.contains("connected to X as @sneakershop"), "{said}");
    assert!(said.contains("remove that line"), "{said}");
    assert!(
        !said.contains("AT-issued-1") && !said.contains("RT-issued-1"),
        "{said}"
    );

    // The pair is in the token store, owner-only; the access token with its expiry.
    let stored = tokens.get("shop-x").unwrap();
    assert_eq!(stored.values["refresh_token"].value.expose(), "RT-issued-1");
    assert_eq!(stored.values["access_token"].value.expose(), "AT-issued-1");
    // Two hours (`expires_in`) after the exchange.
    let expires = stored.values["access_token"].expires.unwrap();
    let two_hours: jiff::Timestamp = "2026-11-27T11:00:00Z".parse().unwrap();
    assert!(
        expires >= two_hours && expires < two_hours + jiff::SignedDuration::from_mins(1),
        "{expires}"
    );
    let mode = std::fs::metadata(tokens.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_refused_code_says_what_to_do_and_keeps_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = x_like().await;
    let dir = tempfile::tempdir().unwrap();
    let channel = x_channel(dir.path(), &server.url());
    let tokens = TokenStore::beside(&dir.path().join("state/cadenced.sqlite"));
    let clock = TestClock::at("2026-11-27T09:00:00Z");
    let mut input = std::io::Cursor::new("https://shop.example/cb?code=stale-code\n");
    let mut output = Vec::new();
    let err = connect(
        &channel,
        &tokens,
        &dir.path().join("outbox"),
        &*clock,
        &mut input,
        &mut output,
    )
    .await
    .unwrap_err();
    assert!(err.contains("could not connect channel `shop-x`"), "{err}");
    assert!(err.contains("authorization code was invalid"), "{err}");
    assert!(err.contains("help: "), "{err}");
    assert!(tokens.get("shop-x").unwrap().values.is_empty());
}
