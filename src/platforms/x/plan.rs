//! A post as X requests: renew the OAuth 2.0 access token if the channel uses one, upload
//! each image and give it its alt text, then create the post. Pure.

use std::time::Duration;

use serde_json::json;

use super::rules::FIELDS;
use super::{AuthMode, api, auth_mode, text_to_send};
use crate::platforms::ChannelCtx;
use crate::platforms::adapter::Outgoing;
use crate::platforms::plan::{
    Auth, Body, Cond, Expiry, From, Keep, Part, Plan, Role, Step, Text, Tpl, media_ref,
    toml_to_json,
};

/// Where a user authorizes an app (X's OAuth 2.0 documentation).
pub const AUTHORIZE_URL: &str = "https://x.com/i/oauth2/authorize";

/// What cadenced asks for: to post and upload media, to read its own posts (the read-back
/// and the account's id), and a refresh token.
pub const SCOPES: &[&str] = &[
    "tweet.read",
    "tweet.write",
    "users.read",
    "media.write",
    "offline.access",
];

const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// How the channel's requests are authorized.
pub fn auth(ch: &ChannelCtx<'_>) -> Auth {
    match auth_mode(ch.settings) {
        AuthMode::OAuth1 => Auth::OAuth1 {
            consumer_key: "api_key",
            consumer_secret: "api_secret",
            token: "access_token",
            token_secret: "access_token_secret",
        },
        AuthMode::Token => Auth::Bearer(Text::secret("token")),
        AuthMode::Refresh => Auth::Bearer(Text::hole("access_token")),
    }
}

/// `POST /2/oauth2/token` with the refresh token: a confidential client authenticates with
/// its id and secret (HTTP Basic), a public one names its id in the form.
pub fn refresh_step(ch: &ChannelCtx<'_>) -> Step {
    let client_id = ch.settings.text("client_id").unwrap_or_default();
    let mut form = vec![
        ("grant_type".to_string(), Text::lit("refresh_token")),
        ("refresh_token".to_string(), Text::hole("refresh_token")),
    ];
    let auth = if ch.settings.contains("client_secret") {
        Auth::Basic {
            user: Text::lit(client_id),
            password: Text::secret("client_secret"),
        }
    } else {
        form.push(("client_id".to_string(), Text::lit(client_id)));
        Auth::None
    };
    token_binds(
        Step::new(
            "refresh",
            Role::Session,
            "POST",
            format!("{}/2/oauth2/token", api(ch)),
            "the renewal of the access token",
        )
        .when(Cond::Has("refresh_token".into()))
        .when(Cond::Missing("access_token".into()))
        .auth(auth)
        .body(Body::Form(form)),
    )
}

/// What an OAuth 2.0 token answer gives: the access token (two hours) and the new refresh
/// token that replaces the old one.
pub fn token_binds(step: Step) -> Step {
    step.bind(
        "access_token",
        From::Json("/access_token".into()),
        Keep::Session(Expiry::Seconds("/expires_in".into())),
    )
    .bind(
        "refresh_token",
        From::Json("/refresh_token".into()),
        Keep::Session(Expiry::Never),
    )
}

/// `GET /2/users/me`: the credentials work, and whose they are.
pub fn account_check(ch: &ChannelCtx<'_>) -> Step {
    Step::new(
        "account",
        Role::Session,
        "GET",
        format!("{}/2/users/me", api(ch)),
        "the check of the account",
    )
    .auth(auth(ch))
    .bind("account", From::Json("/data/username".into()), Keep::Plan)
}

/// How `cadenced auth` connects an X channel: OAuth 2.0 with PKCE when it has a client id,
/// else a check of the fixed credentials.
pub fn auth_flow(ch: &ChannelCtx<'_>) -> crate::platforms::AuthFlow {
    use crate::platforms::AuthFlow;
    if auth_mode(ch.settings) != AuthMode::Refresh {
        return AuthFlow::Check(vec![account_check(ch)]);
    }
    let client_id = ch.settings.text("client_id").unwrap_or_default();
    let redirect = ch.settings.url("redirect_uri").unwrap_or_default();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", &SCOPES.join(" "))
        .finish();
    let mut form = vec![
        ("grant_type".to_string(), Text::lit("authorization_code")),
        ("code".to_string(), Text::hole("code")),
        ("redirect_uri".to_string(), Text::lit(redirect)),
        ("code_verifier".to_string(), Text::hole("code_verifier")),
    ];
    let client_auth = if ch.settings.contains("client_secret") {
        Auth::Basic {
            user: Text::lit(client_id),
            password: Text::secret("client_secret"),
        }
    } else {
        form.push(("client_id".to_string(), Text::lit(client_id)));
        Auth::None
    };
    let exchange = token_binds(
        Step::new(
            "exchange",
            Role::Session,
            "POST",
            format!("{}/2/oauth2/token", api(ch)),
            "the exchange of the authorization code",
        )
        .auth(client_auth)
        .body(Body::Form(form)),
    );
    AuthFlow::OAuth2 {
        authorize_url: format!("{AUTHORIZE_URL}?{query}"),
        exchange: Box::new(exchange),
        check: vec![account_check(ch)],
    }
}

pub fn plan(ch: &ChannelCtx<'_>, post: &Outgoing) -> Plan {
    let api = api(ch);
    let auth = auth(ch);
    let mut steps = Vec::new();
    let mut assumed = Vec::new();
    if auth_mode(ch.settings) == AuthMode::Refresh {
        steps.push(refresh_step(ch));
        assumed.push("refresh_token".to_string());
    }
    let mut media_ids = Vec::new();
    for (i, media) in post.media.iter().enumerate() {
        let id = format!("media_id:{}", i + 1);
        let reference = media_ref(i, media);
        let category = match reference.content_type.as_str() {
            "image/gif" => "tweet_gif",
            t if t.starts_with("video/") => "tweet_video",
            _ => "tweet_image",
        };
        let rel = media.rel.display();
        steps.push(
            Step::new(
                "upload",
                Role::Prepare,
                "POST",
                format!("{api}/2/media/upload"),
                format!("the upload of {rel}"),
            )
            .auth(auth.clone())
            .body(Body::Multipart(vec![
                Part::file("media", reference),
                Part::text("media_category", category),
            ]))
            .bind(id.clone(), From::Json("/data/id".into()), Keep::Attempt)
            .timeout(UPLOAD_TIMEOUT),
        );
        if let Some(alt) = media.alt.as_deref().filter(|a| !a.trim().is_empty()) {
            let done = format!("alt_text:{}", i + 1);
            steps.push(
                Step::new(
                    "alt_text",
                    Role::Prepare,
                    "POST",
                    format!("{api}/2/media/metadata"),
                    format!("the alt text of {rel}"),
                )
                .when(Cond::Missing(done.clone()))
                .auth(auth.clone())
                .body(Body::Json(Tpl::obj([
                    ("id", Tpl::hole(id.clone())),
                    (
                        "metadata",
                        Tpl::Value(json!({ "alt_text": { "text": alt.trim() } })),
                    ),
                ])))
                // The answer echoes the id; keeping it marks the step done for a resend.
                .bind(done, From::Json("/data/id".into()), Keep::Attempt),
            );
        }
        media_ids.push(Tpl::hole(id));
    }

    // `text` is always sent (X rejects a post without it, even with media).
    let mut tweet = Tpl::obj([("text", Tpl::str(post.with_view(text_to_send)))]);
    if !media_ids.is_empty() {
        tweet.push("media", Tpl::obj([("media_ids", Tpl::Array(media_ids))]));
    }
    for key in FIELDS {
        if let Some(value) = post.fields.get(*key) {
            tweet.push(*key, Tpl::Value(toml_to_json(value)));
        }
    }
    steps.push(
        Step::new(
            "create",
            Role::Create,
            "POST",
            format!("{api}/2/tweets"),
            "the post",
        )
        .auth(auth)
        .body(Body::Json(tweet))
        .bind("remote_id", From::Json("/data/id".into()), Keep::Plan),
    );
    Plan { steps, assumed }
}
