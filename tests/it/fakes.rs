//! The local platform servers themselves, against the platforms' contracts and documented
//! behaviour: if a fake drifted from the platform, every test driven through it would prove
//! less. Plain HTTP from the test (reqwest), no cadenced code in the requests except the
//! OAuth 1.0a signer, whose signature the fake checks independently.

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

use crate::fake_bluesky::{self, FakeBluesky};
use crate::fake_x::{self, FakeX, schema_errors};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `url?pairs`, encoded (reqwest is built without its `query` feature).
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{url}?{query}")
}

/// A form body (reqwest is built without its `form` feature).
fn form(request: reqwest::RequestBuilder, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish(),
        )
}

async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn assert_meets(pointer: &'static str, value: &Value) {
    let errors = schema_errors(pointer, value);
    assert!(errors.is_empty(), "{pointer}: {value:#}\n{errors:#?}");
}

#[tokio::test]
async fn fake_x_answers_meet_the_contract_s_response_schemas() {
    let fake = FakeX::start().await;
    let token = fake.issue_access_token();
    let c = client();
    let api = fake.url();

    let png = crate::harness::png(640, 480, 1024);
    let form = reqwest::multipart::Form::new()
        .part(
            "media",
            reqwest::multipart::Part::bytes(png)
                .file_name("shoe.png")
                .mime_str("image/png")
                .unwrap(),
        )
        .text("media_category", "tweet_image");
    let (status, upload) = answer(
        c.post(format!("{api}/2/media/upload"))
            .bearer_auth(&token)
            .multipart(form),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{upload}");
    assert_meets("/components/schemas/MediaUploadResponse", &upload);
    assert_eq!(upload["data"]["image"]["w"], 640);
    let media_id = upload["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(upload["data"]["media_key"], format!("3_{media_id}"));

    let (status, meta) = answer(
        c.post(format!("{api}/2/media/metadata"))
            .bearer_auth(&token)
            .json(&json!({ "id": media_id, "metadata": { "alt_text": { "text": "A shoe" } } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_meets("/components/schemas/CreateMediaMetadataResponse", &meta);

    let text = "Sale & more: https://shop.example/bf?a=1&b=2 <now>";
    let (status, created) = answer(
        c.post(format!("{api}/2/tweets"))
            .bearer_auth(&token)
            .json(&json!({ "text": text, "media": { "media_ids": [media_id] } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_meets("/components/schemas/CreatePostsResponse", &created);
    let id = created["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 19);

    let (status, page) = answer(
        c.get(with_query(
            &format!("{api}/2/users/{}/tweets", fake_x::USER_ID),
            &[
                ("max_results", "5"),
                ("tweet.fields", "created_at,entities"),
            ],
        ))
        .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_meets("/components/schemas/GetUsersPostsResponse", &page);
    let post = &page["data"][0];
    let shown = post["text"].as_str().unwrap();
    assert!(
        shown.starts_with("Sale &amp; more: https://t.co/"),
        "{shown}"
    );
    assert!(shown.contains("&lt;now&gt;"), "{shown}");
    assert_eq!(
        post["entities"]["urls"][0]["expanded_url"],
        "https://shop.example/bf?a=1&b=2"
    );
    assert_eq!(
        post["entities"]["urls"][1]["media_key"],
        format!("3_{media_id}")
    );
    assert_eq!(page["meta"]["result_count"], 1);

    // The same text again: X's duplicate refusal, in its own shape.
    let (status, dup) = answer(
        c.post(format!("{api}/2/tweets"))
            .bearer_auth(&token)
            .json(&json!({ "text": text })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        dup,
        json!({"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403})
    );
    // A body the contract refuses, and media X never issued: 400 with a Problem.
    for body in [
        json!({ "text": "x", "reply_settings": "everyone" }),
        json!({ "text": "x", "media": { "media_ids": ["1146654567674912769"] } }),
    ] {
        let (status, problem) = answer(
            c.post(format!("{api}/2/tweets"))
                .bearer_auth(&token)
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["title"], "Invalid Request");
        assert!(problem["errors"][0]["message"].is_string(), "{problem}");
    }
    // Every answer carries the rate-limit headers, the reset in epoch seconds.
    let response = c
        .get(format!("{api}/2/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let reset: i64 = response.headers()["x-rate-limit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > fake.now().as_second());
    assert_eq!(response.headers()["x-rate-limit-limit"], "75");
    // No token, or one X does not know: 401 in X's shape.
    let (status, body) = answer(c.get(format!("{api}/2/users/me")).bearer_auth("nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"})
    );
}

#[tokio::test]
async fn fake_x_rotates_refresh_tokens_and_refuses_a_used_one() {
    let fake = FakeX::start().await;
    let c = client();
    let first = fake.issue_refresh_token();
    let refresh = |token: &str| {
        form(
            c.post(format!("{}/2/oauth2/token", fake.url()))
                .basic_auth(fake_x::CLIENT_ID, Some(fake_x::CLIENT_SECRET)),
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
    };
    let (status, pair) = answer(refresh(&first)).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!(pair["expires_in"], 7200);
    assert_eq!(pair["token_type"], "bearer");
    let second = pair["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    // The used one is dead.
    let (status, refused) = answer(refresh(&first)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused,
        json!({"error":"invalid_request","error_description":"Value passed for the token was invalid."})
    );
    // The new one works, once; a public client names its id instead of Basic.
    let (status, _) = answer(form(
        c.post(format!("{}/2/oauth2/token", fake.url())),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", second.as_str()),
            ("client_id", fake_x::CLIENT_ID),
        ],
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    // The access token it gave works for two hours.
    let access = pair["access_token"].as_str().unwrap();
    let me = |token: &str| {
        c.get(format!("{}/2/users/me", fake.url()))
            .bearer_auth(token)
    };
    let (status, user) = answer(me(access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["data"]["username"], fake_x::USERNAME);
    fake.advance(jiff::SignedDuration::from_secs(7201));
    assert_eq!(answer(me(access)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn fake_x_exchanges_a_code_only_with_the_verifier_of_its_pkce_challenge() {
    let fake = FakeX::start().await;
    let c = client();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let redirect = "http://127.0.0.1:8976/callback";
    let exchange = |code: &str, verifier: &str| {
        form(
            c.post(format!("{}/2/oauth2/token", fake.url())),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
                ("client_id", fake_x::CLIENT_ID),
            ],
        )
    };
    let code = fake.authorize(
        &challenge,
        redirect,
        "tweet.read tweet.write users.read offline.access",
    );
    assert_eq!(
        answer(exchange(&code, "not-the-verifier")).await.0,
        StatusCode::BAD_REQUEST
    );
    let code = fake.authorize(
        &challenge,
        redirect,
        "tweet.read tweet.write users.read offline.access",
    );
    let (status, tokens) = answer(exchange(&code, verifier)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(
        tokens["refresh_token"].is_string(),
        "offline.access gives a refresh token"
    );
    // A code works once.
    assert_eq!(
        answer(exchange(&code, verifier)).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn fake_x_verifies_oauth1_signatures_and_refuses_a_replayed_nonce() {
    use cadenced::platforms::http::{OAuth1, oauth1_header};
    let fake = FakeX::start().await;
    let c = client();
    let url = format!("{}/2/users/me", fake.url());
    let params = [("user.fields".to_string(), "created_at".to_string())];
    let sign = |secret: &str, nonce: &str| {
        oauth1_header(
            &OAuth1 {
                consumer_key: fake_x::CONSUMER_KEY,
                consumer_secret: fake_x::CONSUMER_SECRET,
                token: fake_x::ACCESS_TOKEN,
                token_secret: secret,
            },
            "GET",
            &url,
            params.iter(),
            nonce,
            fake.now().as_second(),
        )
    };
    let get = |header: String, query: &'static str| {
        c.get(with_query(&url, &[("user.fields", query)]))
            .header("authorization", header)
    };
    let good = sign(fake_x::ACCESS_TOKEN_SECRET, "nonce-1");
    assert_eq!(
        answer(get(good.clone(), "created_at")).await.0,
        StatusCode::OK
    );
    // The same request again (same nonce and timestamp): a replay.
    assert_eq!(
        answer(get(good, "created_at")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The wrong secret; a query changed after signing.
    assert_eq!(
        answer(get(sign("wrong-secret", "nonce-2"), "created_at"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        answer(get(sign(fake_x::ACCESS_TOKEN_SECRET, "nonce-3"), "id"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn fake_pds_answers_sessions_records_and_errors_like_the_reference_server() {
    let fake = FakeBluesky::start().await;
    let c = client();
    let xrpc = |m: &str| format!("{}/xrpc/{m}", fake.url());
    let login = |password: &str| {
        c.post(xrpc("com.atproto.server.createSession"))
            .json(&json!({ "identifier": fake_bluesky::HANDLE, "password": password }))
    };
    let (status, body) = answer(login("wrong-pass-word-1234")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error":"AuthenticationRequired","message":"Invalid identifier or password"})
    );
    let (status, session) = answer(login(fake_bluesky::APP_PASSWORD)).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["did"], fake_bluesky::DID);
    let access = session["accessJwt"].as_str().unwrap().to_string();
    let refresh = session["refreshJwt"].as_str().unwrap().to_string();
    // The access token says when it expires: two hours on.
    let exp = cadenced::platforms::run::jwt_expiry(&access).unwrap();
    assert_eq!(exp.as_second() - fake.now().as_second(), 7200);

    // A refresh rotates the pair; the old refresh token is revoked.
    let renew = |token: &str| {
        c.post(xrpc("com.atproto.server.refreshSession"))
            .bearer_auth(token)
    };
    let (status, renewed) = answer(renew(&refresh)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(renewed["refreshJwt"], session["refreshJwt"]);
    let (status, body) = answer(renew(&refresh)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "ExpiredToken");
    // An access token is no refresh token.
    assert_eq!(answer(renew(&access)).await.1["error"], "InvalidToken");

    let create = |rkey: &str, token: &str| {
        c.post(xrpc("com.atproto.repo.createRecord"))
            .bearer_auth(token)
            .json(&json!({
                "repo": fake_bluesky::HANDLE,
                "collection": "app.bsky.feed.post",
                "rkey": rkey,
                "record": { "$type": "app.bsky.feed.post", "text": "hello", "createdAt": "2026-11-27T10:00:00.000Z" },
            }))
    };
    let (status, body) = answer(create("post-1", &access)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "InvalidRequest");
    let (status, created) = answer(create("3lbxzk2kadc2a", &access)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(
        created["uri"],
        format!(
            "at://{}/app.bsky.feed.post/3lbxzk2kadc2a",
            fake_bluesky::DID
        )
    );
    // The same key again: HTTP 500, as the reference server answers.
    let (status, body) = answer(create("3lbxzk2kadc2a", &access)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"error":"InternalServerError","message":"Internal Server Error"})
    );
    // Too long a text.
    let long = "鞋".repeat(301);
    let (status, body) = answer(
        c.post(xrpc("com.atproto.repo.createRecord"))
            .bearer_auth(&access)
            .json(&json!({
                "repo": fake_bluesky::DID,
                "collection": "app.bsky.feed.post",
                "rkey": "3lbxzk2kadc2b",
                "record": { "$type": "app.bsky.feed.post", "text": long, "createdAt": "2026-11-27T10:00:00.000Z" },
            })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("300 graphemes"),
        "{body}"
    );

    // getRecord by handle: found, and RecordNotFound for a key nobody used.
    let get = |rkey: &str| {
        c.get(with_query(
            &xrpc("com.atproto.repo.getRecord"),
            &[
                ("repo", fake_bluesky::HANDLE),
                ("collection", "app.bsky.feed.post"),
                ("rkey", rkey),
            ],
        ))
    };
    assert_eq!(
        answer(get("3lbxzk2kadc2a")).await.1["value"]["text"],
        "hello"
    );
    let (status, body) = answer(get("3lbxzk2kadc2c")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "RecordNotFound");
    // resolveHandle.
    let (status, body) = answer(c.get(with_query(
        &xrpc("com.atproto.identity.resolveHandle"),
        &[("handle", "nobody.test")],
    )))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Unable to resolve handle");

    // A blob over the PDS's limit: 413.
    let (status, body) = answer(
        c.post(xrpc("com.atproto.repo.uploadBlob"))
            .bearer_auth(renewed["accessJwt"].as_str().unwrap())
            .header("content-type", "image/png")
            .body(vec![0u8; fake_bluesky::BLOB_LIMIT + 1]),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "PayloadTooLargeError");

    // Past its `exp` on the server's clock, the access token is refused as expired.
    fake.advance(jiff::SignedDuration::from_hours(3));
    let (status, body) = answer(create("3lbxzk2kadc2d", &access)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error":"ExpiredToken","message":"Token has expired"})
    );
}
